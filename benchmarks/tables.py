"""The Markdown tables docs/BENCHMARKS.md quotes, made from run directories (no TensorFlow needed).

    python benchmarks/tables.py catalogue runs/cifar10/study-cifar10
    python benchmarks/tables.py models runs/cifar10/improved-cifar10 runs/cifar10/tiny-cifar10 runs/cifar10/study-cifar10 \\
        --curve docs/img/cifar10-accuracy-vs-training-time.png

``catalogue``: one row per LiteRT variant of one run (`dnncomp run --techniques <all recipes>`):
accuracy on the full test set and its change against the run's float model, p50 latency, file and
gzip size, gzip size against float, sparsity, and the recipe's wall time from the manifest. Ends
with the best combined recipe by gzip ratio among those within 1 point of float.

``models``: one row per run (model): parameters, multiply-accumulates per image, epochs, baseline training wall time (manifest),
float and int8 accuracy on the full test set (QAT, and post-training int8 when the run has it), the
int8 model's file and gzip size and p50 latency. The int8 model is `qat` when the run has it, else
`ptq-int8`. ``--curve`` also draws
validation accuracy against training time (``dnncomp report`` draws the same plot).

Every number comes from the runs' results.json and manifest.json, which record how they were made.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from dnncomp.models import get_model_spec  # noqa: E402
from dnncomp.report import RunData, load_run, plot_accuracy_vs_training_time, variant_rows  # noqa: E402
from dnncomp.results import MISSING, markdown_grid  # noqa: E402
from dnncomp.results import format_number as _f  # noqa: E402
from dnncomp.study import dataset_label  # noqa: E402

INT8_PREFERENCE = ("qat", "ptq-int8")
MAX_LOSS_POINTS = 1.0  # issue 5: the best combined recipe may lose at most 1 point against float


def catalogue_table(run: RunData) -> str:
    rows = [r for r in variant_rows(run) if r.comparable]
    reference = next((r for r in rows if r.name == "float"), None)
    headers = [
        "recipe",
        "acc % full",
        "Δacc pts",
        "acc % first 1000",
        "p50 ms",
        "file MB",
        "gzip MB",
        "gzip vs float",
        "sparsity",
        "recipe wall s",
    ]
    cells = []
    best = None
    for r in rows:
        delta = None if reference is None or r.acc_full_pct is None else r.acc_full_pct - reference.acc_full_pct
        wall = run.stage(f"compress:{r.name}").get("wall_s")
        cells.append(
            [
                r.name,
                _f(r.acc_full_pct),
                MISSING if delta is None else f"{delta:+.2f}",
                _f(r.acc_first_n_pct),
                _f(r.p50_ms, 3),
                _f(r.file_mb, 3),
                _f(r.gzip_mb, 3),
                _f(r.gzip_ratio, 1, "x"),
                _f(None if r.sparsity_pct is None else r.sparsity_pct / 100),
                _f(wall, 1),
            ]
        )
        if (
            delta is not None
            and delta >= -MAX_LOSS_POINTS
            and r.gzip_ratio
            and (best is None or r.gzip_ratio > best[0].gzip_ratio)
        ):
            best = (r, delta)
    lines = [markdown_grid(headers, cells)]
    if best and reference:
        r, delta = best
        lines.append("")
        lines.append(
            f"Best within {MAX_LOSS_POINTS:g} point of float: `{r.name}`, gzip {r.gzip_ratio:.1f}x smaller than float "
            f"({r.gzip_mb:.3f} MB vs {reference.gzip_mb:.3f} MB) at {delta:+.2f} points "
            f"({r.acc_full_pct:.2f} % vs {reference.acc_full_pct:.2f} %)."
        )
    return "\n".join(lines)


def _params(model: str) -> str:
    try:
        params = get_model_spec(model).params_approx
    except Exception:  # a model outside the registry: the table still shows the rest
        params = None
    return MISSING if params is None else f"{params:,}"


def models_table(runs: list[RunData]) -> str:
    headers = [
        "model",
        "params",
        "M MACs",
        "epochs",
        "training wall s",
        "float acc %",
        "int8 acc % (recipe)",
        "ptq-int8 acc %",
        "int8 file MB",
        "int8 gzip MB",
        "int8 p50 ms",
        "float p50 ms",
    ]
    cells = []
    for run in runs:
        rows = {r.name: r for r in variant_rows(run)}
        int8 = next((rows[n] for n in INT8_PREFERENCE if n in rows), None)
        flt, ptq = rows.get("float"), rows.get("ptq-int8")
        anatomy = run.variant("float").anatomy if run.variant("float") else None
        macs = anatomy.macs if anatomy else None  # multiply-accumulates per image
        baseline = run.stage("baseline")
        int8_acc = MISSING if int8 is None else f"{_f(int8.acc_full_pct)} ({int8.name})"
        cells.append(
            [
                run.model,
                _params(run.model),
                _f(macs and macs / 1e6, 1),
                baseline.get("epochs_run", MISSING),
                _f(baseline.get("wall_s"), 0),
                _f(flt and flt.acc_full_pct),
                int8_acc,
                _f(ptq and ptq.acc_full_pct),
                _f(int8 and int8.file_mb, 3),
                _f(int8 and int8.gzip_mb, 3),
                _f(int8 and int8.p50_ms, 3),
                _f(flt and flt.p50_ms, 3),
            ]
        )
    return markdown_grid(headers, cells)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    cat = sub.add_parser("catalogue", help="one run, every recipe")
    cat.add_argument("run_dir", type=Path)
    mod = sub.add_parser("models", help="several runs (models) of one dataset")
    mod.add_argument("run_dirs", type=Path, nargs="+")
    mod.add_argument("--curve", type=Path, help="also write validation accuracy against training time to this PNG")
    args = parser.parse_args(argv)
    if args.what == "catalogue":
        print(catalogue_table(load_run(args.run_dir)))
    else:
        runs = [load_run(d) for d in args.run_dirs]
        print(models_table(runs))
        if args.curve:
            datasets = sorted({dataset_label(r.dataset) for r in runs})
            path = plot_accuracy_vs_training_time(runs, args.curve, f"{', '.join(datasets)}: accuracy against training time")
            print(f"\nwrote {path}" if path else "\nno run has a training history with elapsed_s: no curve")
    return 0


if __name__ == "__main__":
    sys.exit(main())
