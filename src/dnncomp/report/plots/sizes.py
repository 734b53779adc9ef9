"""File size and gzip size per variant."""

from __future__ import annotations

from pathlib import Path

from ..rows import VariantRow
from .style import FONT_SIZE, new_figure, plain_log_axis, save_png, styled, variant_colors


@styled
def plot_sizes(rows: list[VariantRow], path: Path, title: str) -> Path | None:
    """File size vs gzip size per variant, grouped bars on a log axis, values printed."""
    rows = [r for r in rows if r.file_mb is not None or r.gzip_mb is not None]
    if not rows:
        return None
    fig, axes = new_figure(max(5.2, 1.1 * len(rows) + 2.2), 3.9)
    ax = axes[0][0]
    width = 0.38
    xs = range(len(rows))
    colors = variant_colors(r.name for r in rows)
    for offset, attr, label, hatch, alpha in (
        (-width / 2, "file_mb", "file on disk", None, 1.0),
        (width / 2, "gzip_mb", "after gzip -9", "//", 0.55),
    ):
        values = [getattr(r, attr) for r in rows]
        bars = ax.bar(
            [x + offset for x in xs],
            [v or 0 for v in values],
            width,
            label=label,
            color=[colors[r.name] for r in rows],
            alpha=alpha,
            hatch=hatch,
            edgecolor="#333",
            linewidth=0.6,
            zorder=3,
        )
        for bar, value in zip(bars, values):
            if value:
                ax.annotate(
                    f"{value:.2f}" if value < 10 else f"{value:.1f}",
                    (bar.get_x() + bar.get_width() / 2, value),
                    xytext=(0, 2),
                    textcoords="offset points",
                    ha="center",
                    va="bottom",
                    fontsize=FONT_SIZE - 1.5,
                )
    ax.set_yscale("log")
    ax.margins(y=0.15)
    plain_log_axis(ax.yaxis)
    ax.set_xticks(list(xs), [r.name + ("\n(.h5)" if not r.comparable else "") for r in rows])
    ax.set_ylabel("size, MB (1e6 bytes, log scale)")
    ax.set_title(title, loc="left")
    from matplotlib.patches import Patch

    ax.legend(
        handles=[
            Patch(facecolor="#999", edgecolor="#333", label="file on disk"),
            Patch(facecolor="#999", alpha=0.55, hatch="//", edgecolor="#333", label="after gzip -9"),
        ],
        loc="upper right",
        framealpha=0.9,
    )
    ax.grid(axis="x", visible=False)
    return save_png(fig, path)
