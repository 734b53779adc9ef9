"""The study beside ours: the comparison table, the figure, and why the numbers differ."""

from __future__ import annotations

from pathlib import Path

from ..data.registry import normalize_name
from ..results import FLOAT_VARIANT, KERAS_BASELINE, MISSING, format_number, format_value
from ..study import STUDY_DATASETS, STUDY_DEVICE, STUDY_TEST_IMAGES, dataset_label, study_row
from .document import Block, Bullets, Heading, Para, Plot, Table
from .load import RunData
from .plots import plot_study_comparison
from .rows import ci_text, first_n_of, num, variant_rows
from .sections import machine_text


def study_section(runs: list[RunData], out_dir: Path, figures: list[Path] | None) -> list[Block]:
    """The runs of the study's datasets beside its published numbers; [] when none is one of them."""
    study_runs = [r for r in runs if normalize_name(r.dataset) in STUDY_DATASETS]
    if not study_runs:
        return []
    blocks: list[Block] = [
        Heading(2, "The study and ours, side by side"),
        Para(
            f"The study's published numbers (shaded; {STUDY_DEVICE}) beside what these runs measured. Its "
            "`baseline` is our `baseline-keras` (Keras .h5, `model.predict`), not our `float`; `quantized` is "
            "`qat`, `pruned` is `prune`, `clustered` is `cluster`."
        ),
        _study_table(study_runs),
    ]
    path = plot_study_comparison(study_runs, out_dir / "study-vs-ours.png") if figures is not None else None
    if path:
        figures.append(path)
        blocks.append(
            Plot(
                path,
                "study vs ours",
                (
                    "Per dataset, the study's number (grey) beside ours, variants by our names (Keras baseline = the "
                    "study's baseline; qat = quantized, prune = pruned, cluster = clustered; float was not in the "
                    "study): accuracy (error bar: 95% interval on the first "
                    "1000 images), latency per image (study: mean on the Jetson Nano; ours: p50 here; log scale) and "
                    "size (study: file; ours: file and gzip; log scale)."
                ),
            )
        )
    blocks += [Heading(3, "Why the numbers differ"), Bullets(_differences(study_runs))]
    return blocks


def _study_table(runs: list[RunData]) -> Table:
    # Our first-N is the run's own (--first-n), which need not be the study's 1000.
    first_n = first_n_of([row for run in runs for row in variant_rows(run)])
    headers = [
        "dataset",
        "study variant",
        "our variant",
        f"study acc. % ({STUDY_TEST_IMAGES})",
        f"our acc. % (first {first_n}) [95% CI]",
        "our acc. % (full)",
        "study ms (Jetson mean)",
        "our ms p50 / mean",
        "study file MB",
        "our file MB",
        "our gzip MB",
    ]
    body = []
    for run in runs:
        rows = {r.name: r for r in variant_rows(run)}
        for name in (KERAS_BASELINE, FLOAT_VARIANT, "qat", "prune", "cluster"):
            study, ours = study_row(run.dataset, name), rows.get(name)
            if study is None and ours is None:
                continue
            body.append(
                [
                    dataset_label(run.dataset),
                    study.variant if study else "– (never timed)",
                    f"`{name}`",
                    format_number(study.accuracy_pct) if study else MISSING,
                    (format_number(ours.acc_first_n_pct) + ci_text(ours.first_n_ci_pct)) if ours else MISSING,
                    format_number(ours.acc_full_pct) if ours else MISSING,
                    format_number(study.latency_ms) if study else MISSING,
                    f"{format_value(ours.p50_ms, 'ms_short')} / {format_value(ours.mean_ms, 'ms_short')}" if ours else MISSING,
                    format_number(study.size_mb) if study else MISSING,
                    format_number(ours.file_mb, 3) if ours else MISSING,
                    format_number(ours.gzip_mb, 3) if ours else MISSING,
                ]
            )
    return Table(headers, body, align="lll" + "r" * 8, shaded=(1, 3, 6, 8))


def _differences(runs: list[RunData]) -> list[str]:
    """Why the two tables differ, with this run's own numbers where they make the point."""
    items = []
    gaps, halves = [], []
    for run in runs:
        for r in variant_rows(run):
            if r.acc_full_pct is not None and r.acc_first_n_pct is not None:
                gaps.append((abs(r.acc_full_pct - r.acc_first_n_pct), run, r))
            if r.first_n_ci_pct:
                halves.append((r.first_n_ci_pct[1] - r.first_n_ci_pct[0]) / 2)
    text = (
        f"**{STUDY_TEST_IMAGES} images vs the full test set.** The study scored each model on the first "
        f"{STUDY_TEST_IMAGES} test images only. On {STUDY_TEST_IMAGES} images a 95% interval is about "
        "±1 point (about ±0.6 near 99%, ±2.5 near 80%)"
    )
    if halves:
        text += f"; in these runs the half-widths range {min(halves):.1f}–{max(halves):.1f} points"
    text += ". Differences between variants, or between the study and us, smaller than that are noise."
    if gaps:
        gap, run, r = max(gaps, key=lambda g: g[0])
        text += (
            f" The first {STUDY_TEST_IMAGES} images are not the test set either: the largest gap here is "
            f"{gap:.2f} points ({dataset_label(run.dataset)} `{r.name}`: {r.acc_first_n_pct:.2f}% on the first "
            f"{r.first_n_count} vs {r.acc_full_pct:.2f}% on all {r.full_count})."
        )
    items.append(text)

    text = (
        "**Keras `predict` vs LiteRT.** The study's baseline latency is Keras `model.predict` on a single image, "
        "which is mostly framework overhead, so its ~160–175 ms says nothing about the model. Our "
        "`baseline-keras` row repeats that measurement; the fair baseline is our `float` LiteRT model, timed in "
        "the same runtime, warmed up, at a fixed thread count, like every other variant."
    )
    speedups = []
    for run in runs:
        keras, flt = run.variant(KERAS_BASELINE), run.variant(FLOAT_VARIANT)
        k_ms = num(keras.latency.p50_ms) if keras and keras.latency else None
        f_ms = num(flt.latency.p50_ms) if flt and flt.latency else None
        if k_ms and f_ms:
            speedups.append(f"{dataset_label(run.dataset)} {k_ms:.1f} ms vs {f_ms:.3f} ms")
    if speedups:
        text += " Keras predict vs float LiteRT (p50) here: " + "; ".join(speedups) + "."
    items.append(text)

    text = (
        "**File size vs gzip size.** The study reports file sizes. A pruned or clustered model stores its zeros "
        "and repeated values as ordinary float32 weights, so on disk it is exactly as large as the float model "
        "(the study's pruned and clustered rows share one size per dataset); the gain appears only under "
        "standard compression (gzip/zip) or a sparse format. The study's baseline size is the .h5 with optimizer "
        "state, about three times the float weights."
    )
    shows = []
    for run in runs:
        rows = {r.name: r for r in variant_rows(run)}
        for name in ("prune", "cluster"):
            r = rows.get(name)
            if r and r.file_ratio and r.gzip_ratio:
                shows.append(f"{dataset_label(run.dataset)} `{name}` ×{r.file_ratio:.2f} on disk, ×{r.gzip_ratio:.2f} gzipped")
    if shows:
        text += " Against our float model: " + "; ".join(shows) + "."
    items.append(text)

    machines = sorted({machine_text(run.results.environment) for run in runs} - {""})
    cores = sorted({str(run.results.environment.cpu_count) for run in runs if run.results.environment} - {"None"})
    text = (
        f"**Jetson Nano vs this machine.** The study's latencies come from an {STUDY_DEVICE}; ours come from "
        f"{', '.join(machines) or 'the machine named in each run’s provenance'}"
        + (f" ({'/'.join(cores)} CPU cores)" if cores else "")
        + ". Absolute milliseconds do not transfer between the two; compare ratios between variants, or rerun "
        "`dnncomp run --eval-only` on the device itself."
    )
    items.append(text)
    not_study = sorted({run.model for run in runs if not run.model.startswith("study-")})
    text = (
        "**Our own training.** Our baselines are trained anew with the study's settings and a fixed seed, "
        "not loaded from the study's weights, so accuracies differ from the study's for that reason alone, "
        "before any compression; the compressed variants start from our baseline, as the study's started "
        "from its own. The study trained for up to 50 epochs with early stopping (patience 5)."
    )
    if not_study:
        # A run of another model (tiny, improved, the user's) is not the study's architecture or settings.
        text = (
            f"**Our own models.** {', '.join(f'`{m}`' for m in not_study)} "
            f"{'is' if len(not_study) == 1 else 'are'} not the study's architecture or training settings, so "
            "the comparison is between different models; the compressed variants start from our baseline."
        )
    trained = []
    for run in runs:
        manifest = run.manifest or {}
        epochs_run = run.stage("baseline").get("epochs_run")
        limit = (manifest.get("config") or {}).get("epochs")
        train_images = (manifest.get("data") or {}).get("train")
        if epochs_run is not None or limit is not None:
            what = f"{dataset_label(run.dataset)}: {epochs_run if epochs_run is not None else '?'} epoch(s)"
            if limit is not None:
                what += f" of at most {limit}"
            if train_images:
                what += f", {train_images} training images before the validation split"
            trained.append(what)
    if trained:
        text += " Here: " + "; ".join(trained) + "."
    items.append(text)
    return items
