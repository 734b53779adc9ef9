"""A run's section of the report: its results table (with a column pair per other machine that
measured it), notes, figures, per-layer detail, training history and provenance."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..data.registry import normalize_name
from ..results import FLOAT_VARIANT, KERAS_BASELINE, MISSING, Environment, MachineColumn, format_number, format_value
from ..study import STUDY_DATASETS, STUDY_DEVICE, STUDY_TEST_IMAGES, study_row
from .document import Block, Bullets, Heading, Para, Plot, Table
from .load import RunData
from .plots import LAYER_VARIANTS, layer_details, plot_accuracy_vs, plot_history, plot_latency, plot_layers, plot_sizes
from .rows import VariantRow, ci_text, first_n_of, full_n_of, num, threads_text, variant_row, variant_rows


def _results_table(run: RunData, rows: list[VariantRow]) -> Table:
    """The run's variants: this machine's numbers, then accuracy and p50 on every other machine that measured
    the run (one column pair each, named by the device), then the study's published numbers where it has some."""
    first_n, full_n = first_n_of(rows), full_n_of(rows)
    headers = [
        "variant",
        "runtime",
        f"acc. % (all {full_n or '?'})",
        f"acc. % (first {first_n}) [95% CI]",
        "p50 ms",
        "p99 ms",
        "file MB",
        "gzip MB",
        "zeros %",
        "×float file",
        "×float gzip",
    ]
    mcu = any(r.arena_kb is not None for r in rows)  # `run --mcu`: TFLite Micro's numbers per int8 variant
    if mcu:
        headers += ["TFLM arena kB", "flash kB", "TFLM = LiteRT top-1 %"]
    others = other_machines(run)
    for machine in others:
        headers += [f"acc. % on {machine.label}", f"p50 ms on {machine.label}"]
    # The study's columns only for a dataset the study measured: a user's folder would show three empty ones.
    with_study = normalize_name(run.dataset) in STUDY_DATASETS
    if with_study:
        headers += [f"study acc. % ({STUDY_TEST_IMAGES})", "study ms (Jetson, mean)", "study file MB"]
    body = []
    for r in rows:
        study = study_row(run.dataset, r.name)
        cells = [
            f"`{r.name}`",
            r.runtime + (" (.h5)" if not r.comparable else ""),
            format_number(r.acc_full_pct),
            format_number(r.acc_first_n_pct) + ci_text(r.first_n_ci_pct),
            format_value(r.p50_ms, "ms_short"),
            format_value(r.p99_ms, "ms_short"),
            format_number(r.file_mb, 3),
            format_number(r.gzip_mb, 3),
            format_number(r.sparsity_pct, 1),
            format_value(r.file_ratio, "times"),
            format_value(r.gzip_ratio, "times"),
        ]
        if mcu:
            cells += [format_number(r.arena_kb, 1), format_number(r.flash_kb, 1), format_number(r.tflm_agreement_pct)]
        for machine in others:
            there = machine.variants.get(r.name)
            row = variant_row(there) if there is not None else None
            cells += [
                format_number(row.best_accuracy_pct) if row else MISSING,
                format_value(row.p50_ms, "ms_short") if row else MISSING,
            ]
        if with_study:
            cells += [
                format_number(study.accuracy_pct) if study else MISSING,
                format_number(study.latency_ms) if study else MISSING,
                format_number(study.size_mb) if study else MISSING,
            ]
        body.append(cells)
    shaded = tuple(range(len(headers) - 3, len(headers))) if with_study else ()
    return Table(headers, body, align="ll" + "r" * (len(headers) - 2), shaded=shaded)


def other_machines(run: RunData) -> list[MachineColumn]:
    """The machines besides the one that wrote results.json that measured this run (results.json ``measurements``)."""
    return [m for m in run.results.machines() if not m.is_host and m.variants]


def _latency_caption(rows: list[VariantRow], run: RunData) -> str:
    timed = next((v.latency for v in run.variants if v.comparable and v.latency), None)
    litert = timed.to_json() if timed else {}
    parts = ["batch 1"]
    if litert.get("threads"):
        parts.append(threads_text(litert["threads"]))
    if litert.get("xnnpack") is not None:
        parts.append("XNNPACK " + ("on" if litert["xnnpack"] else "off"))
    if litert.get("warmup_count") is not None:
        parts.append(f"{litert['warmup_count']} warm-up runs")
    if litert.get("count") is not None:
        parts.append(f"{litert['count']} timed runs")
    return ", ".join(parts)


def _run_notes(run: RunData, rows: list[VariantRow]) -> list[str]:
    first_n = first_n_of(rows)
    protocol = "the study's protocol" if first_n == STUDY_TEST_IMAGES else f"the study used the first {STUDY_TEST_IMAGES}"
    notes = [
        f"Accuracy: whole test set, and the first {first_n} test images ({protocol}) with a 95% "
        f"Wilson interval: on {STUDY_TEST_IMAGES} images a difference of about one point is within sampling error.",
        f"Latency: LiteRT, {_latency_caption(rows, run)}; p50/p99 are percentiles of the per-image wall time.",
        "Size: MB = 1e6 bytes; gzip is the file compressed with gzip at level 9. ×float = the float LiteRT model's size divided by "
        "this one's (higher is smaller). Pruned and clustered files are as large as float on disk; their gain "
        "shows only after gzip.",
        f"Study columns: the published numbers on the {STUDY_DEVICE}, first {STUDY_TEST_IMAGES} images, mean latency, "
        "file size. The study never timed a float LiteRT model, so `float` has none.",
    ]
    if run.variant(KERAS_BASELINE):
        notes.append(
            "`baseline-keras` is the study's baseline measurement: the .h5 file (optimizer state included) timed "
            "through Keras `model.predict` on one image, mostly framework overhead; compare it with nothing but the "
            "study's baseline row."
        )
    if not run.variant(FLOAT_VARIANT):
        notes.append("No `float` variant in this run, so no compression ratios.")
    if any(r.arena_kb is not None for r in rows):
        notes.append(
            "TFLM (`run --mcu`, TensorFlow Lite Micro's Python interpreter): arena = the smallest tensor arena "
            "that allocates and runs the model; flash = the model, its alignment and the C array's few bytes "
            "(kB = 1e3 bytes); top-1 = the share of test images on which TFLM and LiteRT give the same class. "
            "A dash: not measured there (float models are not for microcontrollers)."
        )
    others = other_machines(run)
    if others:
        host = next((m for m in run.results.machines() if m.is_host), None)
        host_name = host.label.rsplit(" (", 1)[0] if host else "this machine"
        notes.append(
            f"Machines: the columns without a machine's name are this machine's ({host_name}: "
            f"{_identity(host.environment if host else run.results.environment)}); "
            + "; ".join(f"“on {m.label}”: {_identity(m.environment)}, machine id `{m.machine_id}`" for m in others)
            + ". Accuracy there is the full test set where it was measured, else the first N; the same artifacts "
            "(sha256 in each record), each machine's own runtime. Latencies compare between machines only as "
            "measured, batch 1, at each machine's thread count."
        )
    return notes


def _identity(env: Environment | None) -> str:
    """A machine in a few words: what it is and the LiteRT runtime that measured there."""
    if env is None:
        return "environment not recorded"
    runtime = env.extra.get("runtime")
    runtime = f"{runtime.get('name')} {runtime.get('version')}" if isinstance(runtime, dict) and runtime.get("name") else None
    return ", ".join(p for p in (machine_text(env), runtime) if p) or "environment not recorded"


def machine_text(env: dict[str, Any] | Environment | None) -> str:
    """ "workstation, x86_64, AMD EPYC 7B13" / "jetson, aarch64, ..., L4T R32.7.1"; "" when unrecorded."""
    if isinstance(env, dict):
        env = Environment.from_json(env)
    return env.describe() if env else ""


def _provenance(run: RunData) -> list[Block]:
    manifest = run.manifest or {}
    env = (run.results.environment.to_json() if run.results.environment else None) or manifest.get("environment") or {}
    config = manifest.get("config") or {}
    threads = config.get("threads") or next((r.threads for r in variant_rows(run) if r.comparable and r.threads), None)
    facts = [
        ("command", f"`{manifest['command']}`" if manifest.get("command") else MISSING),
        ("dnncomp", manifest.get("dnncomp_version") or env.get("dnncomp") or MISSING),
        ("seed", str(run.results.seed if run.results.seed is not None else manifest.get("seed", MISSING))),
        ("threads (LiteRT)", str(threads or MISSING)),
        ("results written", str(run.results.created or MISSING)),
        ("run directory", f"`{_display_path(run.run_dir)}`"),
        ("machine", machine_text(env) or MISSING),
        ("platform", str(env.get("platform") or MISSING)),
        (
            "CPU cores",
            str(env.get("cpu_count") or MISSING)
            + (
                f" ({env['cpus_available']} available to the process)"
                if env.get("cpus_available") and env.get("cpus_available") != env.get("cpu_count")
                else ""
            ),
        ),
        ("python", str(env.get("python") or MISSING)),
    ]
    data = manifest.get("data") or {}
    if data:
        facts.append(
            (
                "data",
                f"train {data.get('train', '?')}, test {data.get('test', '?')} images, "
                f"{data.get('classes', '?')} classes; fingerprint `{data.get('fingerprint', '?')}`",
            )
        )
    for key in ("epochs", "batch_size", "patience", "first_n", "techniques", "eval_only"):
        if config.get(key) is not None:
            value = config[key]
            facts.append((f"config: {key}", ", ".join(map(str, value)) if isinstance(value, list) else str(value)))
    blocks: list[Block] = [Table(["what", "value"], [[k, v] for k, v in facts], align="ll")]
    packages = env.get("packages") or {}
    if packages:
        blocks.append(Para("Packages: " + ", ".join(f"{k} {v}" for k, v in sorted(packages.items()) if v) + "."))
    stages = manifest.get("stages") or {}
    if stages:
        stage_rows = []
        for name, entry in stages.items():
            outputs = entry.get("outputs") or {}
            stage_rows.append(
                [
                    f"`{name}`",
                    format_number(num(entry.get("wall_s")), 1),
                    str(entry.get("finished") or MISSING),
                    ", ".join(f"{f} `{h[:12]}`" for f, h in outputs.items()) or MISSING,
                ]
            )
        blocks.append(Table(["stage", "wall s", "finished", "outputs (sha256, first 12)"], stage_rows, align="lrll"))
    if run.notes:
        blocks.append(Bullets([f"Note: {n}" for n in run.notes]))
    return blocks


def _display_path(path: Path) -> str:
    """Relative to the working directory when below it: committed reports should not carry a home path."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _run_section(run: RunData, out_dir: Path, figures: list[Path] | None, level: int) -> list[Block]:
    """One run's section: results table, figures (drawn into ``out_dir`` and appended to ``figures``;
    none when ``figures`` is None), per-layer detail, training history and provenance."""
    rows = variant_rows(run)
    blocks: list[Block] = [Heading(level, run.label)]
    h = level + 1
    where = machine_text(run.results.environment) or "an unrecorded machine"
    blocks.append(Para(f"{len(rows)} variant(s) from `{_display_path(run.run_dir)}`, measured on: {where}."))
    if not rows:
        blocks.append(Para("results.json lists no variants: nothing was measured yet."))
        blocks += [Heading(h, "Provenance"), *_provenance(run)]
        return blocks
    blocks += [Heading(h, "Results"), _results_table(run, rows), Bullets(_run_notes(run, rows))]
    draw = figures is not None

    def fig(name: str) -> Path:
        return out_dir / f"{run.slug}-{name}.png"

    def add(path: Path | None, alt: str, caption: str) -> None:
        if path is not None:
            figures.append(path)
            blocks.append(Plot(path, alt, caption))

    blocks.append(Heading(h, "Accuracy against size and latency"))
    for name, cost, what in (("accuracy-vs-size", "gzip_mb", "gzip size"), ("accuracy-vs-latency", "p50_ms", "p50 latency")):
        if not any(getattr(r, cost) is not None and r.best_accuracy_pct is not None for r in rows):
            blocks.append(Para(f"No variant has both accuracy and {what}: nothing to plot."))
        elif draw:
            add(
                plot_accuracy_vs(rows, cost, fig(name), f"{run.label}: accuracy vs {what}"),
                f"accuracy vs {what}",
                (
                    f"Accuracy against {what}; up and left is better. Circled points, joined by the dashed staircase, "
                    "are the Pareto front among the LiteRT variants: no other variant is both smaller/faster and more "
                    "accurate. Vertical bars: 95% Wilson interval of the accuracy"
                    + ("; the latency spread is in the next plot." if cost == "p50_ms" else ".")
                    + (
                        " The hollow square is the Keras .h5 baseline, not comparable and off the front."
                        if any(not r.comparable for r in rows)
                        else ""
                    )
                ),
            )
    blocks.append(Heading(h, "Size on disk and after gzip"))
    if draw:
        add(
            plot_sizes(rows, fig("sizes"), f"{run.label}: file and gzip size"),
            "file vs gzip size",
            (
                "File size and `gzip -9` size per variant (log scale). Pruning and clustering leave the file as large as "
                "float; zeros and repeated values only pay off once the file is compressed."
            ),
        )
    blocks.append(Heading(h, "Latency distribution"))
    if not any(r.p50_ms is not None for r in rows):
        blocks.append(Para("No latency measured."))
    elif draw:
        caption = (
            "Per-image latency, one image at a time, from the recorded percentiles (dot p50, band p50–p99, "
            "diamond p90, line min–max)."
        )
        if any(not r.comparable for r in rows):
            caption += " The Keras row is `model.predict` on one image, mostly framework overhead."
        add(plot_latency(rows, fig("latency"), f"{run.label}: latency per image"), "latency distribution", caption)

    layer_data = {}
    for name in LAYER_VARIANTS:
        variant = run.variant(name)
        if variant is not None:
            details = layer_details(run, variant)
            if details:
                layer_data[name] = details
    blocks.append(Heading(h, "Inside the pruned and clustered models"))
    if not any(run.variant(name) is not None for name in ("prune", "cluster")):
        blocks.append(Para("This run has no pruned or clustered variant (`--techniques`), so there is nothing to show here."))
    elif not any(k in layer_data for k in ("prune", "cluster")):
        blocks.append(
            Para(
                "No per-layer detail: the results hold no per-tensor anatomy and the pruned/clustered .tflite files "
                "could not be inspected here (missing files or no `dnncomp.anatomy`)."
            )
        )
    elif draw:
        add(
            plot_layers(layer_data, fig("layers"), f"{run.label}: per-layer sparsity and distinct values"),
            "per-layer sparsity and unique weights",
            (
                "Per weight tensor (kernels; biases left out): the share of exact zeros, and how many distinct values "
                "it holds (log scale). Pruning shows as zeros, clustering as a handful of distinct values per "
                "tensor; both are what gzip exploits."
            ),
        )

    blocks.append(Heading(h, "Training history"))
    if not run.history:
        blocks.append(Para("No history.json in this run (the baseline was not trained here, or its history was not kept)."))
    elif draw:
        epochs = max(len(v) for v in run.history.values())
        add(
            plot_history(run.history, fig("history"), f"{run.label}: baseline training"),
            "training curves",
            (
                f"Baseline training over {epochs} epoch(s): training and validation loss and accuracy. The dotted "
                "line marks the epoch with the best validation accuracy (early stopping restores it)."
            ),
        )

    blocks += [Heading(h, "Provenance"), *_provenance(run)]
    return blocks
