"""Whole measurements behind ``dnncomp evaluate``, ``bench`` and ``inspect``: records and tables.

Each step is a separate pass over the model: anatomy (no inference), accuracy
(batched), latency (timed, interleaved across models), memory (fresh subprocess).
No TensorFlow.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np

from .anatomy import inspect_model
from .bench import LatencyConfig, compare_latency, config_dict, measure_memory
from .errors import ModelError
from .evaluate import InputSpec, evaluate_accuracy, file_sizes, model_input_layout, model_input_spec
from .fileio import sha256_file
from .preprocess import Preprocessing
from .results import flat_rows, format_value, results_document


def variant_names(paths: Sequence[Path]) -> list[str]:
    """File stems, made unique with their parent directory where two are the same."""
    stems = [p.stem for p in paths]
    return [f"{p.parent.name}/{p.stem}" if stems.count(p.stem) > 1 else p.stem for p in paths]


def check_model_paths(paths: Sequence[str | Path]) -> list[Path]:
    paths = [Path(p) for p in paths]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise ModelError(f"model file(s) not found: {', '.join(missing)}")
    return paths


def measurement_inputs(
    models: Sequence[str | Path],
    dataset: str,
    *,
    data_dir: str | Path | None = None,
    skip_bad: bool = False,
    fit: str | None = None,
    input_range: str | None = None,
    mean: str | None = None,
    std: str | None = None,
    data: Any = None,
) -> tuple[list[Path], Preprocessing | None, Any]:
    """What evaluate and bench measure with: (model paths, the pixel mapping given, the dataset).

    ``models``: .tflite files (the first decides the image size). ``input_range``/``mean``/``std``:
    the CLI's options as text (None: not given). ``data``: a Dataset already loaded (the CLI loads
    it first to say its notes and to send it to a device); else it is loaded at the first model's
    input size (:func:`load_for_model`). Checked in this order, so a missing file or a malformed
    range fails before any image is read. Raises ModelError, DataError.
    """
    from .preprocess import preprocessing_from_options

    paths = check_model_paths(models)
    given = preprocessing_from_options(input_range, mean, std)
    if data is None:
        data = load_for_model(dataset, paths[0], Path(data_dir) if data_dir else None, skip_bad=skip_bad, fit=fit)
    return paths, given, data


def load_for_model(dataset: str, model: Path, data_dir: Path | None = None, skip_bad: bool = False, fit: str | None = None):
    """The dataset at the first model's input size (GTSRB's images are resized by the loader).

    Images of another size are fitted as ``fit`` (``--fit``: resize, pad or crop) says, else as
    the model's sidecar says (what compress chose), else as :func:`dnncomp.preprocess.choose_fit`
    chooses; the choice is in ``data.meta["fit"]`` and said in ``data.meta["notes"]``.
    Only the model's input is read here: which output holds the class scores is decided
    once the dataset's classes are known.
    """
    from .preprocess import load_fitted, read_sidecar

    layout = model_input_layout(model)
    if fit is None:
        stored = read_sidecar(model) if isinstance(model, (str, Path)) else None
        fit = stored.fit if stored is not None else None
    data, _, note = load_fitted(dataset, layout.image_size, fit, data_dir=data_dir, skip_bad=skip_bad)
    if note:
        data.meta.setdefault("notes", []).append(note)
    return data


def input_lines(spec: InputSpec, name: str | None = None) -> list[str]:
    """What evaluation says about a model's input (layout, dtype, range and its source) and chosen output."""
    prefix = f"{name}: " if name else ""
    return [prefix + spec.describe_input()] + ([prefix + spec.output_note] if spec.output_note else [])


def _base_record(path: Path, name: str, anatomy: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "name": name,
        "artifact": str(path),
        "runtime": "litert",
        "sha256": sha256_file(path),
        "accuracy": None,
        "latency": None,
        "size": anatomy["size"] if anatomy else file_sizes(path),
        "sparsity": anatomy.get("sparsity") if anatomy else None,
        "anatomy": anatomy,
    }


def _progress(message: str, quiet: bool) -> None:
    if not quiet:
        print(message, file=sys.stderr, flush=True)


def bench_models(
    models: Sequence[str | Path],
    x_test: np.ndarray,
    y_test: np.ndarray | None,
    *,
    dataset: str | None,
    num_classes: int | None = None,
    threads: Sequence[int] = (1,),
    xnnpack: Sequence[bool] = (True,),
    batches: Sequence[int] = (1,),
    base_config: LatencyConfig | None = None,
    accuracy_first_n: int | None = 1000,
    accuracy: bool = True,
    memory: bool = True,
    quiet: bool = False,
    output: str | int | None = None,
    preprocessing: Preprocessing | None = None,
    say=None,
) -> dict[str, Any]:
    """Measure several models side by side; returns a results record (schema dnncomp.results/1).

    Each variant's ``latency`` is the first configuration of the grid (first thread
    count, first XNNPACK setting, batch 1 if asked for); ``latency_runs`` holds all.
    Every pass feeds the images as :func:`dnncomp.evaluate.prepare_inputs` prepares them
    (``output`` and ``preprocessing``, the command line's, as there); each variant's
    ``preprocessing`` says what was used; its input lines go to ``say`` (a callable taking
    one line) when given, else to the progress output.
    """
    paths = check_model_paths(models)
    names = variant_names(paths)
    base = base_config or LatencyConfig()
    records, specs = [], []
    for path, name in zip(paths, names):
        anatomy = inspect_model(path, tensors=False)
        record = _base_record(path, name, anatomy)
        spec = model_input_spec(path, num_classes=num_classes, output=output, preprocessing=preprocessing)
        record["preprocessing"] = spec.preprocessing_record()
        for line in input_lines(spec, name if len(paths) > 1 else None):
            say(line) if say is not None else _progress(line, quiet)
        records.append(record)
        specs.append(spec)
    if accuracy and y_test is not None:
        for path, record, spec in zip(paths, records, specs):
            _progress(f"accuracy: {record['name']} on {len(y_test)} test images", quiet)
            record["accuracy"] = evaluate_accuracy(
                path, x_test, y_test, first_n=accuracy_first_n, threads=threads[0], num_classes=num_classes, spec=spec
            )
    grid = list(product(threads, xnnpack, batches))
    for t, xnn, b in grid:
        config = LatencyConfig(**{**config_dict(base), "threads": t, "xnnpack": xnn, "batch": b})
        _progress(
            f"latency: {len(paths)} model(s) interleaved, {t} thread(s), XNNPACK {'on' if xnn else 'off'}, batch {b}", quiet
        )
        latencies = compare_latency(paths, x_test, config, num_classes=num_classes, output=output, preprocessing=preprocessing)
        for record, latency in zip(records, latencies):
            record.setdefault("latency_runs", []).append(latency)
    for line in xnnpack_warnings(records):
        say(line) if say is not None else print(line, file=sys.stderr, flush=True)
    preferred_batch = 1 if 1 in batches else batches[0]
    for record in records:
        runs = record["latency_runs"]
        record["latency"] = next(
            (r for r in runs if r["threads"] == threads[0] and r["xnnpack"] == xnnpack[0] and r["batch"] == preferred_batch),
            runs[0],
        )
    if memory:
        for path, record in zip(paths, records):
            _progress(f"memory: {record['name']} in a fresh process", quiet)
            record["memory"] = measure_memory(
                path,
                x_test,
                threads=threads[0],
                xnnpack=xnnpack[0],
                num_classes=num_classes,
                output=output,
                preprocessing=preprocessing,
            )
    bench = {
        "config": config_dict(base),
        "grid": {"threads": list(threads), "xnnpack": list(xnnpack), "batch": list(batches)},
        "interleaved": len(paths) > 1,
        "accuracy_first_n": accuracy_first_n,
        "test_images": int(len(x_test)),
    }
    return results_document(records, dataset=dataset, bench=bench)


def evaluate_model(
    model: str | Path,
    x_test: np.ndarray,
    y_test: np.ndarray,
    *,
    dataset: str | None,
    num_classes: int | None = None,
    first_n: int = 1000,
    threads: int = 1,
    latency: LatencyConfig | None = None,
    output: str | int | None = None,
    preprocessing: Preprocessing | None = None,
    say=None,
) -> dict[str, Any]:
    """Accuracy (full and first N), latency at batch 1 and size of one model, as a results record.

    ``output`` picks the class-score output of a model with several; ``preprocessing`` (the
    command line's ``--input-range/--mean/--std``) overrides the sidecar's or the inferred
    range. ``say`` (a callable taking one line) is told the input lines of :func:`input_lines`
    before the work starts. The variant's ``preprocessing`` records what was used.
    """
    (path,) = check_model_paths([model])
    anatomy = inspect_model(path, tensors=False)
    record = _base_record(path, path.stem, anatomy)
    spec = model_input_spec(path, num_classes=num_classes, output=output, preprocessing=preprocessing)
    if say is not None:
        for line in input_lines(spec):
            say(line)
    record["preprocessing"] = spec.preprocessing_record()
    record["accuracy"] = evaluate_accuracy(
        path, x_test, y_test, first_n=first_n, threads=threads, num_classes=num_classes, spec=spec
    )
    if latency is not None:
        record["latency"] = compare_latency(
            [path], x_test, latency, num_classes=num_classes, output=output, preprocessing=preprocessing
        )[0]
    return results_document([record], dataset=dataset)


# ---- console output -----------------------------------------------------------------------


def xnnpack_label(latency: dict[str, Any]) -> str:
    """What ran, from a latency record or flat row: "off", "on (9/13 ops)", or "NOT applied" when asked for and not obtained."""
    if not latency.get("xnnpack"):
        return "off"
    if latency.get("xnnpack_applied") is False:
        return "NOT applied"
    if latency.get("ops_delegated") is not None and latency.get("ops_total"):
        return f"on ({latency['ops_delegated']}/{latency['ops_total']} ops)"
    return "on"


def xnnpack_warnings(records: Sequence[dict[str, Any]]) -> list[str]:
    """One line per model whose XNNPACK was asked for and not applied (its builtin kernels ran)."""
    lines = []
    for record in records:
        for latency in record.get("latency_runs") or [record.get("latency") or {}]:
            if latency.get("xnnpack") and latency.get("xnnpack_applied") is False:
                lines.append(
                    f"warning: {record['name']}: XNNPACK was asked for but LiteRT did not apply it; its builtin "
                    "kernels ran (XNNPACK's CPU detection can fail on an unusual /sys or under emulation)"
                )
                break
    return lines


def rich_console():
    """The terminal's console, else 200 columns for logs and pipes (:func:`dnncomp.console.console`)."""
    from .console import console

    return console()


def print_evaluation(document: dict[str, Any], console=None, *, wide: bool = False) -> None:
    """evaluate's what/value table; a noisy latency gets a warning. ``wide``: values on one line each."""
    from rich.table import Table

    from .bench import latency_noise

    console = console or rich_console()
    variant = document["variants"][0]
    acc, lat, size, anatomy = variant["accuracy"], variant["latency"], variant["size"], variant.get("anatomy") or {}
    table = Table(title=f"{variant['artifact']} on {document.get('dataset')}", title_justify="left", show_header=False)
    table.add_column("what")
    table.add_column("value", no_wrap=wide)
    table.add_row("accuracy, full test set", f"{100 * acc['full']:.2f} % of {acc['full_count']}")
    if acc.get("first_n_count"):
        lo, hi = acc["first_n_ci95"]
        table.add_row(
            f"accuracy, first {acc['first_n_count']}",
            f"{100 * acc['first_n']:.2f} %  (95% CI {100 * lo:.2f}–{100 * hi:.2f})",
        )
    if lat:
        table.add_row(
            f"latency ms, batch {lat['batch']}, {lat['threads']} thread(s), XNNPACK {xnnpack_label(lat)}",
            f"p50 {lat['p50_ms']:.3f}  p90 {lat['p90_ms']:.3f}  p99 {lat['p99_ms']:.3f}  "
            f"mean {lat['mean_ms']:.3f} ± {lat['std_ms']:.3f}  (n={lat['count']})",
        )
        table.add_row("init / first inference ms", f"{lat['init_ms']:.2f} / {lat['first_inference_ms']:.3f}")
        if lat.get("overhead"):
            table.add_row("harness overhead", f"{lat['overhead']['overhead_pct']:.1f} % of invoke")
    table.add_row("size bytes", f"file {size['file_bytes']:,}  gzip {size['gzip_bytes']:,}  zip {size['zip_bytes']:,}")
    if anatomy:
        table.add_row(
            "anatomy",
            f"params {anatomy['params']:,}  MACs {anatomy['macs']:,}  kernel ops "
            + ", ".join(f"{k} {v}" for k, v in sorted(anatomy["kernel_ops_by_dtype"].items()))
            + ("" if anatomy["sparsity"] is None else f"  sparsity {anatomy['sparsity']:.3f}"),
        )
    console.print(table)
    if lat and (reason := latency_noise(lat)):
        console.print(
            f"warning: noisy timing ({reason}): the machine was busy; rerun on an idle machine before trusting this latency",
            style="yellow",
            highlight=False,
        )


def print_bench(document: dict[str, Any], console=None, *, wide: bool = False) -> None:
    """bench's two tables (models; latency per configuration), fitted to the console's width, and a
    warning for every noisy timing (:func:`dnncomp.bench.latency_noise`). ``wide`` shows every column."""
    from .bench import latency_noise
    from .console import Column, print_table

    console = console or rich_console()
    variants = document["variants"]
    first_gzip = (variants[0].get("size") or {}).get("gzip_bytes")
    rows = []
    for v in variants:
        acc, size, anatomy, memory = v.get("accuracy") or {}, v.get("size") or {}, v.get("anatomy") or {}, v.get("memory") or {}
        rows.append(
            (
                v["name"],
                format_value(acc.get("full"), "pct"),
                format_value(acc.get("first_n"), "pct"),
                format_value(size.get("file_bytes"), "mb"),
                format_value(size.get("gzip_bytes"), "mb"),
                format_value(size["gzip_bytes"] / first_gzip if first_gzip and size.get("gzip_bytes") else None, "ratio"),
                format_value(anatomy.get("params"), "int"),
                format_value(anatomy.get("macs"), "int"),
                f"{anatomy.get('int8_kernel_ops', '–')}/{anatomy.get('float_kernel_ops', '–')}/{anatomy.get('hybrid_kernel_ops', '–')}",
                "–" if v.get("sparsity") is None else f"{v['sparsity']:.3f}",
                format_value(memory.get("peak_added_bytes"), "mb"),
            )
        )
    print_table(
        [
            Column("model", 0, "left"),
            Column("acc % (full)", 0),
            Column("acc % (first N)", 3),
            Column("file MB", 4),
            Column("gzip MB", 0),
            Column("gzip / first", 1),
            Column("params", 5),
            Column("MACs/image", 5),
            Column("int8/float/hybrid kernel ops", 6),
            Column("sparsity", 4),
            Column("peak RSS MB", 2),
        ],
        rows,
        title=f"models on {document.get('dataset')} (ratios against {variants[0]['name']})",
        wide=wide,
        out=console,
    )

    flat = flat_rows(document)
    print_table(
        [
            Column("model", 0, "left"),
            Column("threads", 2),
            Column("XNNPACK", 4),
            Column("batch", 2),
            Column("n", 5),
            Column("p50 ms", 0),
            Column("p90 ms", 5),
            Column("p99 ms", 1),
            Column("mean ± std ms", 3),
            Column("p50 / first", 0),
            Column("images/s", 4),
            Column("harness %", 6),
        ],
        [
            (
                row["variant"],
                str(row["threads"]),
                xnnpack_label(row),
                str(row["batch"]),
                str(row["count"]),
                format_value(row["p50_ms"], "ms"),
                format_value(row["p90_ms"], "ms"),
                format_value(row["p99_ms"], "ms"),
                f"{row['mean_ms']:.3f} ± {row['std_ms']:.3f}",
                format_value(row["p50_ratio"], "ratio"),
                format_value(row["images_per_s"], "int"),
                format_value(row["overhead_pct"], "pct1"),
            )
            for row in flat
        ],
        title="latency per call (set_tensor + invoke + get_tensor), real test images",
        wide=wide,
        out=console,
        notes=[
            "p50 / first < 1 means faster than the first model in the same configuration. Timed rounds of all models "
            "were interleaved; peak RSS is what the interpreter adds (load + allocate + invoke), measured in a fresh process."
        ],
    )
    noisy = [(row["variant"], reason) for row in flat if (reason := latency_noise(row))]
    for name, reason in noisy:
        console.print(f"warning: {name}: noisy timing ({reason})", style="yellow", highlight=False)
    if noisy:
        console.print(
            "warning: the machine was busy while timing; rerun on an idle machine (no other jobs, AC power) "
            "before trusting these latencies and ratios",
            style="yellow",
            highlight=False,
        )
