"""Several models of one dataset on one accuracy-vs-size plot (micro models beside ResNet-8, issue 15)."""

from __future__ import annotations

from pathlib import Path

from ..load import RunData
from ..rows import pareto_front, variant_rows
from .style import EXTRA_COLORS, KNOWN_COLORS, new_figure, place_labels, plain_log_axis, save_png, styled


@styled
def plot_models_accuracy_vs_size(runs: list[RunData], path: Path, title: str) -> Path | None:
    """Every LiteRT variant of every run: accuracy (%) against file size (MB, log), one colour per model,
    the Pareto front across models ringed. None when fewer than two points can be drawn."""
    points = [
        (run, r)
        for run in runs
        for r in variant_rows(run)
        if r.comparable and r.file_mb is not None and r.best_accuracy_pct is not None
    ]
    if len(points) < 2:
        return None
    palette = iter(list(KNOWN_COLORS.values()) + EXTRA_COLORS * 4)
    colors = {run.model: next(palette) for run in runs}
    fig, axes = new_figure(6.8, 4.3)
    ax = axes[0][0]
    front = set(pareto_front([(r.file_mb, r.best_accuracy_pct) for _, r in points]))
    for i, (run, r) in enumerate(points):
        ax.plot(
            [r.file_mb],
            [r.best_accuracy_pct],
            "o",
            ms=7.5,
            color=colors[run.model],
            zorder=3,
            label=run.model if all(p[0].model != run.model for p in points[:i]) else None,
        )
        if i in front:
            ax.plot([r.file_mb], [r.best_accuracy_pct], "o", ms=14, mfc="none", mec="#222", mew=1.1, zorder=4)
    ax.set_xscale("log")
    ax.margins(x=0.18, y=0.22)
    plain_log_axis(ax.xaxis)
    ax.set_xlabel("model file size, MB (1e6 bytes, log scale): what goes to flash")
    full = all(r.acc_full_pct is not None for _, r in points)
    ax.set_ylabel("top-1 accuracy, %" + (" (full test set)" if full else ""))
    ax.set_title(title, loc="left")
    ax.legend(loc="best", framealpha=0.9, title="model")
    place_labels(
        fig,
        ax,
        [r.file_mb for _, r in points],
        [r.best_accuracy_pct for _, r in points],
        [r.name for _, r in points],
        [colors[run.model] for run, _ in points],
        ringed=front,
    )
    return save_png(fig, path)
