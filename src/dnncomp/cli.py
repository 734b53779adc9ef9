"""Command-line interface (Click). Thin: parse arguments, call the library, print.

Every DnncompError becomes one line on stderr and exit code 2, never a traceback.
Library modules are imported inside the commands so that ``dnncomp --help`` is
instant and the device install never pulls in TensorFlow.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import click

from . import __version__
from .errors import DnncompError

DATA_DIR_HELP = "Directory holding the dataset files (default: $DNNCOMP_DATA_DIR, else the per-user cache)."


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="dnncomp")
def app():
    """dnncomp: train, compress (quantize, prune, cluster), convert to LiteRT, and measure
    accuracy, latency and size side by side."""


# ---- datasets ---------------------------------------------------------------------

# ---- run / evaluate ------------------------------------------------------------------


def _csv_list(value: str | None) -> list[str] | None:
    return [item.strip() for item in value.split(",") if item.strip()] if value else None


def _parse_recipe_params(values: tuple[str, ...]) -> dict[str, dict[str, str]]:
    """``--param prune.final_sparsity=0.9`` -> {"prune": {"final_sparsity": "0.9"}}."""
    from .errors import RecipeError

    params: dict[str, dict[str, str]] = {}
    for item in values:
        key, sep, value = item.partition("=")
        recipe, dot, name = key.partition(".")
        if not sep or not dot or not name:
            raise RecipeError(f"--param {item!r}: expected RECIPE.KEY=VALUE, e.g. prune.final_sparsity=0.9")
        params.setdefault(recipe.strip(), {})[name.strip()] = value.strip()
    return params


@app.command("run")
@click.argument("dataset")
@click.option("--model", "model", default=None, help="Architecture name or family (study, improved, tiny). Default: study-<DATASET>.")
@click.option("--techniques", "--recipes", "techniques", default=None,
              help="Comma-separated recipes to apply. Default: float,qat,prune,cluster (the study's three plus float).")
@click.option("--out", type=click.Path(path_type=Path), default=Path("runs"), show_default=True, help="Runs root; the run goes to OUT/DATASET/MODEL.")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None, help=DATA_DIR_HELP)
@click.option("--epochs", type=int, default=None, help="Maximum baseline epochs (study: 50, early stopping).")
@click.option("--batch-size", type=int, default=None, help="Baseline batch size (study: 32).")
@click.option("--patience", type=int, default=None, help="Early-stopping patience on validation accuracy (study: 5).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--limit", type=int, default=1000, show_default=True, help="Also report accuracy on the first N test images (the study used 1000).")
@click.option("--threads", type=int, default=1, show_default=True, help="LiteRT interpreter threads for latency.")
@click.option("--eval-only/--no-eval-only", default=None,
              help="Only evaluate existing .tflite artifacts (no TensorFlow needed). Default: on for NVIDIA Jetson.")
@click.option("--param", "params", multiple=True, metavar="RECIPE.KEY=VALUE", help="Override a recipe parameter; repeatable.")
@click.option("--quiet", is_flag=True, help="No progress output.")
def run_command(dataset, model, techniques, out, data_dir, epochs, batch_size, patience, seed, limit, threads, eval_only, params, quiet):
    """Train the baseline, compress it with each technique, convert to LiteRT and evaluate.

    Writes runs/DATASET/MODEL/: manifest.json, baseline.keras/.h5, <recipe>.tflite, results.json.
    A rerun skips what is already done; an interrupted run resumes.
    """
    from .run import load_results, run_pipeline

    run_dir = run_pipeline(
        dataset, model=model, techniques=_csv_list(techniques), out=out, data_dir=data_dir, epochs=epochs,
        batch_size=batch_size, patience=patience, seed=seed, limit=limit, threads=threads,
        eval_only=eval_only, recipe_params=_parse_recipe_params(params), verbose=0 if quiet else 1,
    )
    from .tables import print_results

    print_results(load_results(run_dir))
    click.echo(f"run directory: {run_dir}")


# ---- bench ---------------------------------------------------------------------------

# ---- compress / recipes --------------------------------------------------------------

# ---- report / reproduce --------------------------------------------------------------


@app.command("report")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Where report.md, report.html and the PNGs go. Default: the run dir for one run, else ./report.")
@click.option("--title", default=None, help="Report title. Default: the runs' datasets and models.")
def report_command(run_dirs, out, title):
    """Write report.md, a self-contained report.html and PNG plots for one or more run directories.

    Tables (accuracy, latency, size, sparsity, compression ratios, the study's numbers beside ours),
    plots (accuracy vs size and latency with the Pareto front, sizes, latency, per-layer sparsity,
    training curves) and provenance. Needs matplotlib: pip install 'dnncomp[report]'.
    """
    from .report import write_report

    out = out or (run_dirs[0] if len(run_dirs) == 1 else Path("report"))
    paths = write_report(list(run_dirs), out, title=title)
    click.echo(f"report: {paths['markdown']}")
    click.echo(f"html:   {paths['html']}  ({len(paths['figures'])} plots embedded)")


@app.command("reproduce")
@click.option("--datasets", default="mnist,cifar10,gtsrb", show_default=True, help="Comma-separated study datasets.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("docs/reproduction"), show_default=True,
              help="Where the combined report goes.")
@click.option("--runs", "runs_root", type=click.Path(path_type=Path), default=Path("runs"), show_default=True,
              help="Runs root; each dataset's run goes to RUNS/DATASET/study-DATASET (a rerun resumes).")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None, help=DATA_DIR_HELP)
@click.option("--epochs", type=int, default=None, help="Maximum baseline epochs (study: 50, early stopping).")
@click.option("--threads", type=int, default=1, show_default=True, help="LiteRT interpreter threads for latency.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--title", default=None, help="Report title.")
def reproduce_command(datasets, out, runs_root, data_dir, epochs, threads, seed, title):
    """Run the study's full protocol on its datasets and write one combined report.

    For each dataset: the study's model, baseline training, quantization-aware training, pruning
    and clustering, LiteRT conversion, accuracy on the full test set and the first 1000 images,
    latency; then the study's table and ours side by side, the differences explained.
    """
    from .report import reproduce_study

    paths = reproduce_study(
        _csv_list(datasets), out=out, runs_root=runs_root, data_dir=data_dir, epochs=epochs,
        threads=threads, seed=seed, title=title,
    )
    for run_dir in paths["runs"]:
        click.echo(f"run directory: {run_dir}")
    click.echo(f"report: {paths['markdown']}")
    click.echo(f"html:   {paths['html']}")


def main(argv: Optional[List[str]] = None) -> int:
    try:
        app.main(args=argv, prog_name="dnncomp", standalone_mode=False)
    except DnncompError as exc:
        click.echo(f"error: {exc}", err=True)
        return 2
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except KeyboardInterrupt:
        click.echo("interrupted; finished artifacts are kept and a rerun resumes", err=True)
        return 130
    except click.exceptions.ClickException as exc:  # usage errors: click's own one-liner
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
