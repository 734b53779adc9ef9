"""Accuracy against size and against latency, with the Pareto front of the LiteRT variants."""

from __future__ import annotations

from pathlib import Path

from ..rows import VariantRow, first_n_of, pareto_front, threads_text
from .style import new_figure, place_labels, plain_log_axis, save_png, styled, variant_colors


@styled
def plot_accuracy_vs(rows: list[VariantRow], cost: str, path: Path, title: str) -> Path | None:
    """Accuracy against gzip size (cost="gzip_mb") or p50 latency (cost="p50_ms"), Pareto front marked."""
    points = [r for r in rows if getattr(r, cost) is not None and r.best_accuracy_pct is not None]
    if not points:
        return None
    fig, axes = new_figure(6.8, 4.3)
    ax = axes[0][0]
    colors = variant_colors(r.name for r in rows)
    front = pareto_front([(getattr(r, cost) if r.comparable else None, r.best_accuracy_pct) for r in points])
    on_front = set(front)
    for i, r in enumerate(points):
        x, y = getattr(r, cost), r.best_accuracy_pct
        ci = r.best_accuracy_ci_pct
        yerr = [[y - ci[0]], [ci[1] - y]] if ci else None
        bar = ax.errorbar(
            [x],
            [y],
            yerr=yerr,
            fmt="o" if r.comparable else "s",
            ms=7.5,
            color=colors[r.name],
            mfc=colors[r.name] if r.comparable else "white",
            mew=1.5,
            ecolor=colors[r.name],
            elinewidth=1.0,
            capsize=2.5,
            zorder=3,
        )
        for line in bar.lines[1] + bar.lines[2]:  # caps and bar: lighter than the point
            line.set_alpha(0.55)
        if i in on_front:
            ax.plot([x], [y], "o", ms=14, mfc="none", mec="#222", mew=1.1, zorder=4)
    staircase = []
    if front:
        fx = [getattr(points[i], cost) for i in front]
        fy = [points[i].best_accuracy_pct for i in front]
        ax.plot(fx, fy, drawstyle="steps-post", color="#222", lw=1.0, ls="--", zorder=2)
        for (x0, y0), (x1, y1) in zip(zip(fx, fy), zip(fx[1:], fy[1:])):
            staircase += [((x0, y0), (x1, y0)), ((x1, y0), (x1, y1))]
    ax.set_xscale("log")
    ax.margins(x=0.18, y=0.22)
    plain_log_axis(ax.xaxis)
    which = "full test set" if any(r.acc_full_pct is not None for r in points) else f"first {first_n_of(points)} images"
    ax.set_ylabel(f"top-1 accuracy, % ({which})")
    if cost == "gzip_mb":
        ax.set_xlabel("gzip-compressed model size, MB (1e6 bytes, log scale)")
    else:
        threads = next((r.threads for r in points if r.comparable and r.threads), None)
        ax.set_xlabel(f"latency per image, p50 ms (batch 1, {threads_text(threads)}, log scale)")
    ax.set_title(title, loc="left")
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], marker="o", ls="none", color="#555", ms=7, label="LiteRT variant"),
        Line2D([], [], marker="o", ls="--", color="#222", mfc="none", ms=12, lw=1.0, label="Pareto front (LiteRT)"),
    ]
    if any(not r.comparable for r in points):
        handles.insert(
            1,
            Line2D(
                [],
                [],
                marker="s",
                ls="none",
                color="#7f7f7f",
                mfc="white",
                mew=1.5,
                ms=7,
                label="Keras .h5 baseline (not comparable)",
            ),
        )
    handles.append(Line2D([], [], color="#555", lw=0.9, alpha=0.55, label="95% interval (accuracy)"))
    ax.legend(handles=handles, loc="best", framealpha=0.9)
    place_labels(
        fig,
        ax,
        [getattr(r, cost) for r in points],
        [r.best_accuracy_pct for r in points],
        [r.name for r in points],
        [colors[r.name] for r in points],
        [r.best_accuracy_ci_pct for r in points],
        ringed=on_front,
        lines=staircase,
    )
    return save_png(fig, path)
