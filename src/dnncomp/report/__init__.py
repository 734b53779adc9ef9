"""Reports: results tables, plots and provenance for one or more run directories.

``write_report(run_dirs, out_dir)`` reads what ``dnncomp run`` left in each
``runs/<dataset>/<model>/`` (results.json, manifest.json, history.json, the
.tflite files) and writes ``report.md``, a self-contained ``report.html`` (its
PNGs embedded as data URIs, no external resources) and the PNGs themselves.

The package, by job: :mod:`.load` (run directories, typed results), :mod:`.rows`
(a variant's numbers in display units, the Pareto front), :mod:`.document` (the
blocks and their Markdown), :mod:`.html` (the page, from a Jinja2 template),
:mod:`.plots` (one module per family of figures, one shared style),
:mod:`.sections` (a run's section), :mod:`.models` (several models of one dataset side by
side) and :mod:`.study` (the study beside ours).
Running the study's protocol is :func:`dnncomp.reproduce.reproduce_study`.

Only the numbers the runs measured are shown; a missing measurement is a dash,
never a guess.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import DnncompError
from ..fileio import atomic_write_text
from .document import Block, Bullets, Heading, Para, Plot, Table, render_markdown
from .html import render_html
from .load import RunData, load_run
from .models import models_section
from .plots import (
    MATPLOTLIB_HINT,
    matplotlib_parts,
    plot_accuracy_vs_training_time,
    training_time_points,
)
from .plots.layers import _tensor_entries
from .rows import VariantRow, pareto_front, variant_rows
from .sections import _results_table, _run_section
from .study import study_section

__all__ = [
    "MATPLOTLIB_HINT",
    "Block",
    "Bullets",
    "Heading",
    "Para",
    "Plot",
    "RunData",
    "Table",
    "VariantRow",
    "_results_table",
    "_tensor_entries",
    "load_run",
    "pareto_front",
    "plot_accuracy_vs_training_time",
    "render_html",
    "render_markdown",
    "training_time_points",
    "variant_rows",
    "write_report",
]


def write_report(
    run_dirs: Sequence[str | Path], out_dir: str | Path, title: str | None = None, *, figures: bool = True
) -> dict[str, Any]:
    """Write report.md, a self-contained report.html and the PNGs for one or more runs.

    ``run_dirs``: run directories (each with a results.json). ``figures=False`` writes the
    same sections and tables without drawing anything (no matplotlib needed). Returns
    {"markdown": Path, "html": Path, "figures": [Path, ...]}. Raises DnncompError for no run
    directories, RunError/ResultsError for an unreadable one, MissingDependencyError without
    matplotlib (when drawing) or Jinja2.
    """
    if not run_dirs:
        raise DnncompError("no run directories given; pass at least one, e.g. runs/mnist/study-mnist")
    if figures:
        matplotlib_parts()  # fail before writing anything when matplotlib is missing
    runs = [load_run(d) for d in run_dirs]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    seen: dict[str, int] = {}
    for run in runs:  # two runs of the same dataset and model still get distinct figure names
        seen[run.slug] = seen.get(run.slug, 0) + 1
        if seen[run.slug] > 1:
            run.slug_suffix = f"-{seen[run.slug]}"
    title = title or ("dnncomp report: " + ", ".join(run.label for run in runs))
    drawn: list[Path] | None = [] if figures else None
    generated = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    blocks: list[Block] = [
        Para(
            f"Generated {generated} by `dnncomp report` from {len(runs)} run(s). "
            "Every number below was measured by the run it comes from; a dash means it was not measured."
        )
    ]
    comparison = study_section(runs, out_dir, drawn)
    if len(runs) > 1:
        blocks += comparison
    path = (
        plot_accuracy_vs_training_time(runs, out_dir / "accuracy-vs-training-time.png", "Accuracy against training time")
        if figures
        else None
    )
    if path:
        drawn.append(path)
        blocks.append(Heading(2, "Accuracy against training time"))
        blocks.append(
            Plot(
                path,
                "accuracy against training time",
                (
                    "Validation accuracy after each epoch against the wall time since training started (history.json's "
                    "`elapsed_s`), and, where training ended (the manifest's baseline wall time, which adds loading and "
                    "saving), the full-test-set accuracy of the float and int8 LiteRT models. Wall times depend on what "
                    "else the machine was running; see each run's provenance."
                ),
            )
        )
    blocks += models_section(runs, out_dir, drawn)
    for run in runs:
        blocks += _run_section(run, out_dir, drawn, level=2)
    if len(runs) == 1:
        blocks += comparison

    page = render_html(title, blocks)  # first: without Jinja2 nothing is written
    md_path = atomic_write_text(out_dir / "report.md", render_markdown(title, blocks))
    html_path = atomic_write_text(out_dir / "report.html", page)
    return {"markdown": md_path, "html": html_path, "figures": drawn or []}
