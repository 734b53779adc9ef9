"""Per-image latency per variant, drawn from the recorded percentiles (results keep statistics, not samples)."""

from __future__ import annotations

from pathlib import Path

from ...results import format_value
from ..rows import VariantRow, threads_text
from .style import FONT_SIZE, new_figure, plain_log_axis, save_png, styled, variant_colors


@styled
def plot_latency(rows: list[VariantRow], path: Path, title: str) -> Path | None:
    """Latency per variant: dot p50, band p50-p99, diamond p90, line min-max; log scale when the spread is wide."""
    rows = [r for r in rows if r.p50_ms is not None]
    if not rows:
        return None
    fig, axes = new_figure(6.8, 0.55 * len(rows) + 1.6)
    ax = axes[0][0]
    colors = variant_colors(r.name for r in rows)
    ys = list(range(len(rows)))[::-1]
    for y, r in zip(ys, rows):
        color = colors[r.name]
        if r.min_ms is not None and r.max_ms is not None:
            ax.plot([r.min_ms, r.max_ms], [y, y], color=color, lw=1.0, zorder=2)
            ax.plot([r.min_ms, r.max_ms], [y, y], "|", color=color, ms=9, zorder=2)
        if r.p99_ms is not None:
            ax.plot([r.p50_ms, r.p99_ms], [y, y], color=color, lw=6, alpha=0.45, solid_capstyle="butt", zorder=3)
        if r.p90_ms is not None:
            ax.plot([r.p90_ms], [y], "d", color=color, ms=6, mec="#333", mew=0.6, zorder=4)
        ax.plot([r.p50_ms], [y], "o", color=color, ms=7, mec="#111", mew=0.8, zorder=5)
        right = max(v for v in (r.max_ms, r.p99_ms, r.p50_ms) if v is not None)
        ax.annotate(
            f"p50 {format_value(r.p50_ms, 'ms_short')} ms",
            (right, y),
            xytext=(6, 0),
            textcoords="offset points",
            ha="left",
            va="center",
            fontsize=FONT_SIZE - 1.5,
            color="#333",
        )
    values = [v for r in rows for v in (r.min_ms, r.p50_ms, r.max_ms, r.p99_ms) if v]
    ax.margins(x=0.12)
    if values and max(values) / max(min(values), 1e-9) > 15:
        ax.set_xscale("log")
        plain_log_axis(ax.xaxis)
        scale = ", log scale"
    else:
        scale = ""
    ax.set_yticks(ys, [r.name + (" (Keras)" if not r.comparable else "") for r in rows])
    ax.set_ylim(-0.7, len(rows) - 0.3)
    threads = next((r.threads for r in rows if r.comparable and r.threads), None)
    ax.set_xlabel(f"latency per image, ms (batch 1, {threads_text(threads)}{scale})")
    ax.set_title(title, loc="left")
    ax.grid(axis="y", visible=False)
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], marker="o", ls="none", color="#777", mec="#111", label="p50"),
        Line2D([], [], color="#777", lw=6, alpha=0.45, label="p50 to p99"),
        Line2D([], [], marker="d", ls="none", color="#777", mec="#333", label="p90"),
        Line2D([], [], marker="|", color="#777", ms=9, lw=1, label="min to max"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncol=4, frameon=False, fontsize=FONT_SIZE - 1)
    return save_png(fig, path)
