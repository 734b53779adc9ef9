"""Several models of one dataset side by side: params, MACs, accuracy, size, latency and, from `run --mcu`,
TFLite Micro's arena and flash; with one accuracy-vs-size plot across the models."""

from __future__ import annotations

import re
from pathlib import Path

from ..data.registry import normalize_name
from ..results import format_number, format_value
from ..study import dataset_label
from .document import Block, Heading, Para, Plot, Table
from .load import RunData
from .plots.models import plot_models_accuracy_vs_size
from .rows import variant_rows


def models_section(runs: list[RunData], out_dir: Path, figures: list[Path] | None) -> list[Block]:
    """For each dataset with two or more runs (models): a table of their LiteRT variants and, when drawing,
    accuracy against file size across them. [] when no dataset has two runs."""
    by_dataset: dict[str, list[RunData]] = {}
    for run in runs:
        by_dataset.setdefault(normalize_name(run.dataset), []).append(run)
    blocks: list[Block] = []
    for dataset, group in by_dataset.items():
        if len({run.model for run in group}) < 2:
            continue
        label = dataset_label(dataset)
        blocks += [Heading(2, f"{label}: the models side by side"), _models_table(group)]
        if figures is not None:
            path = plot_models_accuracy_vs_size(
                group,
                out_dir / f"{re.sub(r'[^a-z0-9]+', '-', dataset.lower()).strip('-')}-models-accuracy-vs-size.png",
                f"{label}: accuracy against size, every model",
            )
            if path:
                figures.append(path)
                blocks.append(
                    Plot(
                        path,
                        "models: accuracy against size",
                        (
                            "Every LiteRT variant of every model, by colour: accuracy against the .tflite file size (what a "
                            "microcontroller keeps in flash; log scale). Ringed: the Pareto front across the models."
                        ),
                    )
                )
        if any(r.arena_kb is not None for run in group for r in variant_rows(run)):
            blocks.append(
                Para(
                    "TFLM arena and flash from `dnncomp run --mcu` (TensorFlow Lite Micro's interpreter); "
                    "a dash: not measured on TFLM (float variants are not for microcontrollers)."
                )
            )
    return blocks


def _models_table(runs: list[RunData]) -> Table:
    headers = ["model", "variant", "params", "M MACs", "acc. %", "file MB", "gzip MB", "p50 ms", "TFLM arena kB", "flash kB"]
    body = []
    for run in runs:
        for r in variant_rows(run):
            if not r.comparable:
                continue
            body.append(
                [
                    run.model,
                    f"`{r.name}`",
                    format_value(r.params, "int"),
                    format_number(None if r.macs is None else r.macs / 1e6, 1),
                    format_number(r.best_accuracy_pct),
                    format_number(r.file_mb, 3),
                    format_number(r.gzip_mb, 3),
                    format_value(r.p50_ms, "ms_short"),
                    format_number(r.arena_kb, 1),
                    format_number(r.flash_kb, 1),
                ]
            )
    return Table(headers, body, align="ll" + "r" * (len(headers) - 2))
