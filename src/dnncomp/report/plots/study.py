"""The study's published numbers beside ours, per dataset: accuracy, latency and size."""

from __future__ import annotations

import math
from pathlib import Path

from ...data.registry import normalize_name
from ...results import FLOAT_VARIANT, KERAS_BASELINE
from ...study import STUDY_DATASETS, STUDY_TEST_IMAGES, dataset_label, study_row
from ..load import RunData
from ..rows import first_n_of, variant_rows
from .style import FONT_SIZE, STUDY_COLOR, new_figure, plain_log_axis, save_png, styled

# ---- the combined study-vs-ours figure ----------------------------------------------------


# Short tick labels: the caption says which study row each one stands beside.
COMPARISON_LABELS = {KERAS_BASELINE: "Keras\nbaseline", FLOAT_VARIANT: "float\n(no study)"}


@styled
def plot_study_comparison(runs: list[RunData], path: Path) -> Path | None:
    """Per dataset: accuracy, latency and size, the study's published number beside ours."""
    runs = [r for r in runs if normalize_name(r.dataset) in STUDY_DATASETS]
    if not runs:
        return None
    fig, axes = new_figure(10.5, 2.75 * len(runs) + 0.6, ncols=3, nrows=len(runs))
    variants = [KERAS_BASELINE, FLOAT_VARIANT, "qat", "prune", "cluster"]
    series = {
        "acc": [
            (f"study (first {STUDY_TEST_IMAGES})", STUDY_COLOR, None),
            (f"ours, first {first_n_of([row for run in runs for row in variant_rows(run)])}", "#4c72b0", None),
            ("ours, full test set", "#55a868", None),
        ],
        "lat": [("study mean (Jetson Nano)", STUDY_COLOR, None), ("ours p50 (this machine)", "#4c72b0", None)],
        "size": [("study file", STUDY_COLOR, None), ("ours file", "#4c72b0", None), ("ours gzip", "#55a868", "//")],
    }
    for row_axes, run in zip(axes, runs):
        rows = {r.name: r for r in variant_rows(run)}
        names = [v for v in variants if v in rows or study_row(run.dataset, v)]
        labels = [COMPARISON_LABELS.get(v, v) for v in names]
        for ax, metric in zip(row_axes, ("acc", "lat", "size")):
            values_by_series = []
            for n in names:
                study = study_row(run.dataset, n)
                ours = rows.get(n)
                if metric == "acc":
                    values_by_series.append(
                        [
                            study.accuracy_pct if study else None,
                            ours.acc_first_n_pct if ours else None,
                            ours.acc_full_pct if ours else None,
                        ]
                    )
                elif metric == "lat":
                    values_by_series.append([study.latency_ms if study else None, ours.p50_ms if ours else None])
                else:
                    values_by_series.append(
                        [study.size_mb if study else None, ours.file_mb if ours else None, ours.gzip_mb if ours else None]
                    )
            k = len(series[metric])
            width = 0.8 / k
            for s, (label, color, hatch) in enumerate(series[metric]):
                xs = [i - 0.4 + width * (s + 0.5) for i in range(len(names))]
                vals = [vals[s] for vals in values_by_series]
                ax.bar(
                    [x for x, v in zip(xs, vals) if v is not None],
                    [v for v in vals if v is not None],
                    width * 0.92,
                    color=color,
                    hatch=hatch,
                    edgecolor="#333",
                    lw=0.5,
                    label=label,
                    zorder=3,
                )
                if metric == "acc" and s == 1:  # the Wilson interval on the first 1000 images
                    for x, n in zip(xs, names):
                        r = rows.get(n)
                        if r and r.first_n_ci_pct and r.acc_first_n_pct is not None:
                            lo, hi = r.first_n_ci_pct
                            ax.errorbar(
                                [x],
                                [r.acc_first_n_pct],
                                yerr=[[r.acc_first_n_pct - lo], [hi - r.acc_first_n_pct]],
                                fmt="none",
                                ecolor="#111",
                                elinewidth=0.9,
                                capsize=2,
                                zorder=4,
                            )
            ax.set_xticks(range(len(names)), labels, fontsize=FONT_SIZE - 2)
            ax.grid(axis="x", visible=False)
            if metric == "acc":
                present = [v for vals in values_by_series for v in vals if v is not None]
                low = min(present) if present else 90
                ax.set_ylim(max(0, math.floor(low - 3)), min(100.5, max(present + [0]) + 1.5))
                ax.set_ylabel("accuracy, %")
                ax.set_title(f"{dataset_label(run.dataset)}: accuracy", loc="left")
            elif metric == "lat":
                ax.set_yscale("log")
                plain_log_axis(ax.yaxis)
                ax.set_ylabel("latency per image, ms (log)")
                ax.set_title(f"{dataset_label(run.dataset)}: latency", loc="left")
            else:
                ax.set_yscale("log")
                plain_log_axis(ax.yaxis)
                ax.set_ylabel("size, MB (log)")
                ax.set_title(f"{dataset_label(run.dataset)}: size", loc="left")
            if run is runs[-1]:
                ax.legend(fontsize=FONT_SIZE - 1.5, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=1)
    return save_png(fig, path)
