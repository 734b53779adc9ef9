"""The report's shared plot style: matplotlib loaded lazily (object API, Agg canvas, no pyplot),
one rc style, figure sizes and colours, PNG saving, log axes with plain labels, label placement."""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ...errors import MissingDependencyError
from ...fileio import atomic_write_bytes
from ...results import FLOAT_VARIANT, KERAS_BASELINE

MATPLOTLIB_HINT = "pip install 'dnncomp[report]'  (or: pip install matplotlib)"

# Plots are committed under docs/: small, but readable on a laptop screen.
FIGURE_DPI = 110
FONT_SIZE = 9.5
KNOWN_COLORS = {
    FLOAT_VARIANT: "#1f77b4",
    "qat": "#ff7f0e",
    "prune": "#2ca02c",
    "cluster": "#9467bd",
    KERAS_BASELINE: "#7f7f7f",
}
EXTRA_COLORS = ["#d62728", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#393b79", "#637939", "#843c39"]
STUDY_COLOR = "#b0b0b0"


def matplotlib_parts():
    """matplotlib's object API with the Agg canvas, or a MissingDependencyError saying how to get it."""
    try:
        import matplotlib
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure as MplFigure
    except ImportError as exc:
        raise MissingDependencyError(f"reports need matplotlib, which the device install leaves out: {MATPLOTLIB_HINT}") from exc
    return matplotlib, MplFigure, FigureCanvasAgg


def styled(plot):
    """Run a plot function inside the report's rc style: every artist, legend and label it makes
    takes its sizes from rc_style(), and the caller's global matplotlib settings are left alone."""

    @functools.wraps(plot)
    def wrapper(*args, **kwargs):
        matplotlib, _, _ = matplotlib_parts()
        with matplotlib.rc_context(rc_style()):
            return plot(*args, **kwargs)

    return wrapper


def new_figure(width: float, height: float, ncols: int = 1, nrows: int = 1, **kwargs):
    _, MplFigure, FigureCanvasAgg = matplotlib_parts()
    fig = MplFigure(figsize=(width, height), dpi=FIGURE_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, squeeze=False, **kwargs)


def rc_style() -> dict[str, Any]:
    return {
        "font.size": FONT_SIZE,
        "axes.titlesize": FONT_SIZE + 1.5,
        "axes.labelsize": FONT_SIZE + 0.5,
        "legend.fontsize": FONT_SIZE - 0.5,
        "xtick.labelsize": FONT_SIZE - 0.5,
        "ytick.labelsize": FONT_SIZE - 0.5,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "grid.linewidth": 0.6,
        "savefig.dpi": FIGURE_DPI,
    }


def save_png(fig, path: Path) -> Path:
    """PNG, then re-encoded as an adaptive palette when that is smaller: the report is committed."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=FIGURE_DPI, facecolor="white", metadata={"Software": None})
    data = buffer.getvalue()
    try:
        from PIL import Image

        image = Image.open(io.BytesIO(data)).convert("RGB")
        small = io.BytesIO()
        image.quantize(colors=128, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
            small, format="PNG", optimize=True
        )
        if small.tell() < len(data):
            data = small.getvalue()
    except Exception:  # Pillow is a base dependency, but a plain PNG is always an acceptable fallback
        pass
    return atomic_write_bytes(path, data)


def variant_colors(names: Iterable[str]) -> dict[str, str]:
    colors, extra = {}, iter(EXTRA_COLORS * 4)
    for name in names:
        colors[name] = KNOWN_COLORS.get(name) or next(extra)
    return colors


def plain_log_axis(axis) -> None:
    """Log-scale ticks with plain labels (0.5, 1, 2, 5) instead of 10^x, as dense as the axis has room for.

    Call it after the data and margins are set: it reads the axis' current span.
    """
    from matplotlib.ticker import FuncFormatter, LogLocator

    lo, hi = sorted(axis.get_view_interval())
    decades = math.log10(hi / lo) if lo > 0 and hi > lo else 1.0
    figure, box = axis.axes.figure, axis.axes.get_position()
    inches = box.width * figure.get_figwidth() if axis.axis_name == "x" else box.height * figure.get_figheight()
    room = 2.0 * inches if axis.axis_name == "x" else 3.0 * inches  # labels: wide on x, short on y
    subs = next((s for s in ((1.0, 2.0, 5.0), (1.0, 3.0)) if decades * len(s) <= room), (1.0,))

    def fmt(value, _pos):
        if value <= 0:
            return ""
        if value >= 1:
            return f"{value:g}"
        return f"{value:.3g}"

    axis.set_major_locator(LogLocator(base=10, subs=subs))
    axis.set_major_formatter(FuncFormatter(fmt))
    axis.set_minor_formatter(FuncFormatter(lambda v, p: ""))


def place_labels(
    fig,
    ax,
    xs: Sequence[float],
    ys: Sequence[float],
    labels: Sequence[str],
    colors: Sequence[str],
    bars: Sequence[tuple[float, float] | None] = (),
    ringed: Iterable[int] = (),
    lines: Sequence[tuple[tuple[float, float], tuple[float, float]]] = (),
):
    """Greedy label placement: try offsets around each point, keep the first that overlaps nothing.

    Overlap is checked in display space against labels already placed, every
    marker, every error bar (``bars``: (low, high) in data units, drawn
    vertically through the point; they count less than markers), the legend and
    the axes frame. ``ringed`` points carry a larger ring; ``lines`` are
    segments (data units) to keep clear too. A label that cannot be placed cleanly takes the
    least-overlapping spot, with a thin leader line when it is far.
    """
    renderer = fig.canvas.get_renderer()
    fig.get_layout_engine().execute(fig)
    to_display = ax.transData.transform
    markers = []
    ringed = set(ringed)
    for i, (x, y) in enumerate(zip(xs, ys)):
        px, py = to_display((x, y))
        r = 11 if i in ringed else 6
        markers.append((px - r, py - r, px + r, py + r))
    frame = ax.get_window_extent(renderer)
    thin = []
    for x, bar in zip(xs, bars):
        if bar:
            (px, lo), (_, hi) = to_display((x, bar[0])), to_display((x, bar[1]))
            thin.append((px - 2, lo, px + 2, hi))
    for a, b in lines:
        (ax_, ay), (bx, by) = to_display(a), to_display(b)
        thin.append((min(ax_, bx) - 2, min(ay, by) - 2, max(ax_, bx) + 2, max(ay, by) + 2))
    legend = ax.get_legend()
    if legend is not None:
        lb = legend.get_window_extent(renderer)
        markers.append((lb.x0, lb.y0, lb.x1, lb.y1))
        if hasattr(legend, "set_loc"):  # freeze loc="best" here, or it may move onto the labels when saved
            legend.set_loc(tuple(ax.transAxes.inverted().transform((lb.x0, lb.y0))))
    candidates = []
    for radius in (7, 14, 24, 36):
        for dx, dy in ((1, 0.6), (1, -1), (-1, 0.6), (-1, -1), (0, 1.2), (0, -1.6), (1.3, 0), (-1.3, 0)):
            candidates.append((dx * radius, dy * radius))
    placed: list[tuple[float, float, float, float]] = []

    def area(a, b):
        w = min(a[2], b[2]) - max(a[0], b[0])
        h = min(a[3], b[3]) - max(a[1], b[1])
        return w * h if w > 0 and h > 0 else 0.0

    order = sorted(range(len(xs)), key=lambda i: (-ys[i], xs[i]))
    for i in order:
        best = None
        for dx, dy in candidates:
            ha = "left" if dx > 0 else "right" if dx < 0 else "center"
            va = "bottom" if dy > 0 else "top" if dy < 0 else "center"
            text = ax.annotate(
                labels[i],
                (xs[i], ys[i]),
                xytext=(dx, dy),
                textcoords="offset points",
                ha=ha,
                va=va,
                fontsize=FONT_SIZE - 0.5,
                color="#222",
            )
            bb = text.get_window_extent(renderer)
            box = (bb.x0 - 2, bb.y0 - 1, bb.x1 + 2, bb.y1 + 1)
            score = sum(area(box, other) for other in placed)
            score += sum(area(box, m) for j, m in enumerate(markers) if j != i)
            score += 0.5 * sum(area(box, b) for b in thin)
            outside = bb.width * bb.height - area(box, (frame.x0, frame.y0, frame.x1, frame.y1))
            score += 3 * max(0.0, outside)
            score += 0.01 * (abs(dx) + abs(dy))  # prefer near spots among clean ones
            if best is None or score < best[0]:
                if best is not None:
                    best[1].remove()
                best = (score, text, box, dx, dy)
            else:
                text.remove()
            if score < 1:
                break
        _, text, box, dx, dy = best
        if abs(dx) + abs(dy) > 30:
            text.remove()
            text = ax.annotate(
                labels[i],
                (xs[i], ys[i]),
                xytext=(dx, dy),
                textcoords="offset points",
                ha="left" if dx > 0 else "right" if dx < 0 else "center",
                va="bottom" if dy > 0 else "top" if dy < 0 else "center",
                fontsize=FONT_SIZE - 0.5,
                color="#222",
                arrowprops={"arrowstyle": "-", "color": colors[i], "lw": 0.7, "shrinkA": 0, "shrinkB": 4},
            )
        placed.append(box)
