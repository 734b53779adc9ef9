"""Reports: results tables, plots and provenance for one or more run directories.

``write_report(run_dirs, out_dir)`` reads what ``dnncomp run`` left in each
``runs/<dataset>/<model>/`` (results.json, manifest.json, history.json, the
.tflite files) and writes ``report.md``, a self-contained ``report.html`` (its
PNGs embedded as data URIs, no external resources) and the PNGs themselves.
``reproduce_study`` runs the study's protocol on its datasets and writes one
combined report with the study's table beside ours.

Only the numbers the runs measured are shown; a missing measurement is a dash,
never a guess. matplotlib is imported lazily (it is in the ``report`` and
``full`` extras, not in the device install), and only through its object API:
no pyplot, so a caller's interactive backend is never switched.
"""

from __future__ import annotations

import base64
import datetime as _dt
import functools
import html
import io
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import DnncompError, MissingDependencyError, RunError
from .fileio import atomic_write_bytes, atomic_write_text
from .study import (
    STUDY_DATASETS,
    STUDY_DEVICE,
    STUDY_TEST_IMAGES,
    dataset_label,
    normalize_dataset,
    study_row,
)

KERAS_BASELINE = "baseline-keras"
FLOAT_VARIANT = "float"
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


# ---- loading ---------------------------------------------------------------------------


@dataclass
class RunData:
    """What one run directory holds; every piece but results.json is optional."""

    run_dir: Path
    results: dict[str, Any]
    manifest: dict[str, Any] | None = None
    history: dict[str, list[float]] | None = None
    notes: list[str] = field(default_factory=list)  # what was missing or skipped, said in the report
    slug_suffix: str = ""  # set when two runs in one report share dataset and model

    @property
    def dataset(self) -> str:
        return str(self.results.get("dataset") or (self.manifest or {}).get("dataset") or self.run_dir.parent.name)

    @property
    def model(self) -> str:
        return str(self.results.get("model") or (self.manifest or {}).get("model") or self.run_dir.name)

    @property
    def label(self) -> str:
        return f"{dataset_label(self.dataset)} / {self.model}"

    @property
    def slug(self) -> str:
        base = re.sub(r"[^a-z0-9]+", "-", f"{normalize_dataset(self.dataset)}-{self.model}".lower()).strip("-")
        return base + self.slug_suffix

    @property
    def variants(self) -> list[dict[str, Any]]:
        return [v for v in self.results.get("variants") or [] if isinstance(v, dict) and v.get("name")]

    def variant(self, name: str) -> dict[str, Any] | None:
        return next((v for v in self.variants if v["name"] == name), None)

    def stage(self, name: str) -> dict[str, Any]:
        """The manifest's record of one stage (``baseline``, ``compress:qat``, ...); {} without one."""
        record = _get(self.manifest, "stages", name)
        return record if isinstance(record, dict) else {}


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunError(f"{path}: not readable JSON ({exc}); rerun `dnncomp run` to rewrite it") from exc


def load_run(run_dir: str | Path) -> RunData:
    """Read a run directory. results.json is required; manifest.json and history.json are optional."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunError(f"{run_dir}: not a directory; pass a run directory such as runs/mnist/study-mnist")
    results_path = run_dir / "results.json"
    if not results_path.is_file():
        raise RunError(f"{results_path}: not found; run `dnncomp run` (or `dnncomp run --eval-only`) first")
    results = _read_json(results_path)
    if not isinstance(results, dict) or not isinstance(results.get("variants", []), list):
        raise RunError(f"{results_path}: not a dnncomp results file (see docs/results-schema.md)")
    run = RunData(run_dir=run_dir, results=results)
    manifest_path = run_dir / "manifest.json"
    if manifest_path.is_file():
        manifest = _read_json(manifest_path)
        run.manifest = manifest if isinstance(manifest, dict) else None
    else:
        run.notes.append("no manifest.json: provenance comes from results.json alone")
    history_path = run_dir / "history.json"
    if history_path.is_file():
        run.history = _normalize_history(_read_json(history_path))
    return run


def _normalize_history(raw: Any) -> dict[str, list[float]] | None:
    """Keras ``History.history`` ({"loss": [...], ...}), possibly wrapped as {"history": {...}}."""
    if isinstance(raw, dict) and isinstance(raw.get("history"), dict):
        raw = raw["history"]
    if not isinstance(raw, dict):
        return None
    history = {}
    for key, values in raw.items():
        if isinstance(values, list) and values and all(isinstance(v, (int, float)) or v is None for v in values):
            history[str(key)] = [float("nan") if v is None else float(v) for v in values]
    return history or None


# ---- numbers ---------------------------------------------------------------------------


def wilson_interval(fraction: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval for an accuracy measured on n images."""
    if not n:
        return (float("nan"), float("nan"))
    denominator = 1 + z * z / n
    centre = (fraction + z * z / (2 * n)) / denominator
    half = z * math.sqrt(fraction * (1 - fraction) / n + z * z / (4 * n * n)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


def pareto_front(points: Sequence[tuple[float | None, float | None]]) -> list[int]:
    """Indices of the points no other point dominates, lowest cost first.

    A point is (cost, value): smaller cost is better (size, latency), larger value
    is better (accuracy). A dominates B when it is no worse in both and strictly
    better in one. Points with a missing coordinate are never on the front.
    """
    valid = [
        (i, float(c), float(v))
        for i, (c, v) in enumerate(points)
        if c is not None and v is not None and math.isfinite(c) and math.isfinite(v)
    ]
    front = []
    for i, cost, value in valid:
        dominated = any(
            (c2 <= cost and v2 >= value) and (c2 < cost or v2 > value) for j, c2, v2 in valid if j != i
        )
        if not dominated:
            front.append((cost, -value, i))
    return [i for _, _, i in sorted(front)]


def _get(mapping: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(mapping, dict):
            return None
        mapping = mapping.get(key)
    return mapping


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


@dataclass
class VariantRow:
    """One variant's numbers, flattened, in display units (%, ms, MB)."""

    name: str
    runtime: str
    artifact: str | None
    acc_full_pct: float | None
    full_count: int | None
    acc_first_n_pct: float | None
    first_n_count: int | None
    first_n_ci_pct: tuple[float, float] | None
    full_ci_pct: tuple[float, float] | None
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    mean_ms: float | None
    min_ms: float | None
    max_ms: float | None
    threads: int | None
    file_mb: float | None
    gzip_mb: float | None
    sparsity_pct: float | None
    file_ratio: float | None  # float file size / this file size
    gzip_ratio: float | None  # float gzip size / this gzip size
    samples_ms: list[float] | None

    @property
    def comparable(self) -> bool:
        """LiteRT rows share a runtime; the Keras baseline (model.predict, .h5) does not."""
        return self.runtime != "keras"

    @property
    def best_accuracy_pct(self) -> float | None:
        """Full test set if measured, else the first-N subset."""
        return self.acc_full_pct if self.acc_full_pct is not None else self.acc_first_n_pct

    @property
    def best_accuracy_ci_pct(self) -> tuple[float, float] | None:
        return self.full_ci_pct if self.acc_full_pct is not None else self.first_n_ci_pct


def variant_rows(run: RunData) -> list[VariantRow]:
    rows = []
    reference = run.variant(FLOAT_VARIANT)
    ref_file = _num(_get(reference, "size", "file_bytes"))
    ref_gzip = _num(_get(reference, "size", "gzip_bytes"))
    for v in run.variants:
        accuracy = v.get("accuracy") or {}
        latency = v.get("latency") or {}
        size = v.get("size") or {}
        full, full_n = _num(accuracy.get("full")), accuracy.get("full_count")
        first, first_n = _num(accuracy.get("first_n")), accuracy.get("first_n_count")
        ci = accuracy.get("first_n_ci95")
        if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(_num(c) is not None for c in ci):
            first_ci = (100 * float(ci[0]), 100 * float(ci[1]))
        elif first is not None and first_n:
            first_ci = tuple(100 * c for c in wilson_interval(first, int(first_n)))
        else:
            first_ci = None
        full_ci = tuple(100 * c for c in wilson_interval(full, int(full_n))) if full is not None and full_n else None
        file_bytes, gzip_bytes = _num(size.get("file_bytes")), _num(size.get("gzip_bytes"))
        samples = latency.get("samples_ms")
        samples = [float(s) for s in samples if _num(s) is not None] if isinstance(samples, list) else None
        sparsity = _num(v.get("sparsity"))
        rows.append(
            VariantRow(
                name=str(v["name"]),
                runtime=str(v.get("runtime") or "litert"),
                artifact=v.get("artifact"),
                acc_full_pct=None if full is None else 100 * full,
                full_count=full_n,
                acc_first_n_pct=None if first is None else 100 * first,
                first_n_count=first_n,
                first_n_ci_pct=first_ci,
                full_ci_pct=full_ci,
                p50_ms=_num(latency.get("p50_ms")),
                p90_ms=_num(latency.get("p90_ms")),
                p99_ms=_num(latency.get("p99_ms")),
                mean_ms=_num(latency.get("mean_ms")),
                min_ms=_num(latency.get("min_ms")),
                max_ms=_num(latency.get("max_ms")),
                threads=latency.get("threads"),
                file_mb=None if file_bytes is None else file_bytes / 1e6,
                gzip_mb=None if gzip_bytes is None else gzip_bytes / 1e6,
                sparsity_pct=None if sparsity is None else 100 * sparsity,
                file_ratio=ref_file / file_bytes if ref_file and file_bytes else None,
                gzip_ratio=ref_gzip / gzip_bytes if ref_gzip and gzip_bytes else None,
                samples_ms=samples or None,
            )
        )
    return rows


# ---- formatting ------------------------------------------------------------------------


def format_number(value: float | None, digits: int = 2, suffix: str = "") -> str:
    """A number for a table cell, or an en dash when it was not measured."""
    return "–" if value is None else f"{value:.{digits}f}{suffix}"


def _ms(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def _ci(ci: tuple[float, float] | None) -> str:
    return "" if ci is None else f" [{ci[0]:.1f}, {ci[1]:.1f}]"


def _ratio(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}×"


def _threads(threads: Any) -> str:
    if not threads:
        return "? threads"
    return f"{threads} thread" + ("" if threads == 1 else "s")


def _first_n(rows: Iterable[VariantRow]) -> int:
    return next((int(r.first_n_count) for r in rows if r.first_n_count), STUDY_TEST_IMAGES)


def _full_n(rows: Iterable[VariantRow]) -> int | None:
    return next((int(r.full_count) for r in rows if r.full_count), None)


# ---- a small document model, rendered to Markdown and to HTML ------------------------------


@dataclass
class Heading:
    level: int
    text: str


@dataclass
class Para:
    text: str  # may hold `code` spans and **bold**


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    align: str = ""  # one of l/r per column; default: first column left, the rest right
    shaded: tuple[int, ...] = ()  # columns shown as "the study's", shaded in HTML


@dataclass
class Plot:
    path: Path
    alt: str
    caption: str


Block = Heading | Para | Bullets | Table | Plot


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(title: str, blocks: list[Block]) -> str:
    out = [f"# {title}", ""]
    for block in blocks:
        if isinstance(block, Heading):
            out += [f"{'#' * block.level} {block.text}", ""]
        elif isinstance(block, Para):
            out += [block.text, ""]
        elif isinstance(block, Bullets):
            out += [f"- {item}" for item in block.items] + [""]
        elif isinstance(block, Table):
            align = block.align or "l" + "r" * (len(block.headers) - 1)
            out.append("| " + " | ".join(_md_cell(h) for h in block.headers) + " |")
            out.append("|" + "|".join("---:" if a == "r" else ":---" for a in align) + "|")
            out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows]
            out.append("")
        elif isinstance(block, Plot):
            out += [f"![{block.alt}]({block.path.name})", "", f"*{block.caption}*", ""]
    return "\n".join(out).rstrip() + "\n"


def _inline_html(text: str) -> str:
    """Escape, then the two inline marks the report uses: `code` and **bold**."""
    escaped = html.escape(text, quote=False)
    escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", escaped)


HTML_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:#1d1d1f;
 max-width:1180px;margin:2rem auto;padding:0 1.2rem;line-height:1.5;font-size:15px}
h1{font-size:1.7rem;border-bottom:2px solid #ddd;padding-bottom:.3rem}
h2{font-size:1.35rem;margin-top:2.4rem;border-bottom:1px solid #e5e5e5;padding-bottom:.2rem}
h3{font-size:1.1rem;margin-top:1.8rem}
table{border-collapse:collapse;margin:.8rem 0;font-size:13px;font-variant-numeric:tabular-nums}
th,td{border:1px solid #d9d9d9;padding:.28rem .5rem;vertical-align:top}
th{background:#f3f4f6;font-weight:600}
tr:nth-child(even) td{background:#fafafa}
td.study,th.study{background:#eef3fb}
tr:nth-child(even) td.study{background:#e6edf8}
td.r,th.r{text-align:right}td.l,th.l{text-align:left}
.scroll{overflow-x:auto}
figure{margin:1.2rem 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:13px;color:#555;margin-top:.3rem}
code{background:#f3f4f6;padding:0 .25rem;border-radius:3px;font-size:90%}
"""


def render_html(title: str, blocks: list[Block]) -> str:
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{HTML_CSS}</style>",
        "</head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"<h{block.level}>{_inline_html(block.text)}</h{block.level}>")
        elif isinstance(block, Para):
            out.append(f"<p>{_inline_html(block.text)}</p>")
        elif isinstance(block, Bullets):
            out.append("<ul>" + "".join(f"<li>{_inline_html(i)}</li>" for i in block.items) + "</ul>")
        elif isinstance(block, Table):
            align = block.align or "l" + "r" * (len(block.headers) - 1)

            def cls(i: int, align: str = align, block: Table = block) -> str:  # bound now: B023
                return align[i] + (" study" if i in block.shaded else "")

            head = "".join(f'<th class="{cls(i)}">{_inline_html(h)}</th>' for i, h in enumerate(block.headers))
            body = "".join(
                "<tr>" + "".join(f'<td class="{cls(i)}">{_inline_html(c)}</td>' for i, c in enumerate(row)) + "</tr>"
                for row in block.rows
            )
            out.append(f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>')
        elif isinstance(block, Plot):
            data = base64.b64encode(block.path.read_bytes()).decode("ascii")
            out.append(
                f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(block.alt)}">'
                f"<figcaption>{_inline_html(block.caption)}</figcaption></figure>"
            )
    out.append("</body></html>")
    return "\n".join(out) + "\n"


# ---- plotting helpers ------------------------------------------------------------------


def _matplotlib():
    """matplotlib's object API with the Agg canvas, or a MissingDependencyError saying how to get it."""
    try:
        import matplotlib
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure as MplFigure
    except ImportError as exc:
        raise MissingDependencyError(
            f"reports need matplotlib, which the device install leaves out: {MATPLOTLIB_HINT}"
        ) from exc
    return matplotlib, MplFigure, FigureCanvasAgg


def _styled(plot):
    """Run a plot function inside the report's rc style: every artist, legend and label it makes
    takes its sizes from _rc(), and the caller's global matplotlib settings are left alone."""

    @functools.wraps(plot)
    def wrapper(*args, **kwargs):
        matplotlib, _, _ = _matplotlib()
        with matplotlib.rc_context(_rc()):
            return plot(*args, **kwargs)

    return wrapper


def _new_figure(width: float, height: float, ncols: int = 1, nrows: int = 1, **kwargs):
    _, MplFigure, FigureCanvasAgg = _matplotlib()
    fig = MplFigure(figsize=(width, height), dpi=FIGURE_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, squeeze=False, **kwargs)


def _rc() -> dict[str, Any]:
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


def _save(fig, path: Path) -> Path:
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


def _plain_log_axis(axis) -> None:
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


def _place_labels(fig, ax, xs: Sequence[float], ys: Sequence[float], labels: Sequence[str], colors: Sequence[str],
                  bars: Sequence[tuple[float, float] | None] = (), ringed: Iterable[int] = (),
                  lines: Sequence[tuple[tuple[float, float], tuple[float, float]]] = ()):
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
                labels[i], (xs[i], ys[i]), xytext=(dx, dy), textcoords="offset points", ha=ha, va=va,
                fontsize=FONT_SIZE - 0.5, color="#222",
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
                labels[i], (xs[i], ys[i]), xytext=(dx, dy), textcoords="offset points",
                ha="left" if dx > 0 else "right" if dx < 0 else "center",
                va="bottom" if dy > 0 else "top" if dy < 0 else "center",
                fontsize=FONT_SIZE - 0.5, color="#222",
                arrowprops={"arrowstyle": "-", "color": colors[i], "lw": 0.7, "shrinkA": 0, "shrinkB": 4},
            )
        placed.append(box)


# ---- the plots -------------------------------------------------------------------------


@_styled
def plot_accuracy_vs(rows: list[VariantRow], cost: str, path: Path, title: str) -> Path | None:
    """Accuracy against gzip size (cost="gzip_mb") or p50 latency (cost="p50_ms"), Pareto front marked."""
    points = [r for r in rows if getattr(r, cost) is not None and r.best_accuracy_pct is not None]
    if not points:
        return None
    fig, axes = _new_figure(6.8, 4.3)
    ax = axes[0][0]
    colors = variant_colors(r.name for r in rows)
    front = pareto_front([(getattr(r, cost) if r.comparable else None, r.best_accuracy_pct) for r in points])
    on_front = set(front)
    for i, r in enumerate(points):
        x, y = getattr(r, cost), r.best_accuracy_pct
        ci = r.best_accuracy_ci_pct
        yerr = [[y - ci[0]], [ci[1] - y]] if ci else None
        bar = ax.errorbar(
            [x], [y], yerr=yerr, fmt="o" if r.comparable else "s", ms=7.5, color=colors[r.name],
            mfc=colors[r.name] if r.comparable else "white", mew=1.5, ecolor=colors[r.name], elinewidth=1.0,
            capsize=2.5, zorder=3,
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
    _plain_log_axis(ax.xaxis)
    which = "full test set" if any(r.acc_full_pct is not None for r in points) else f"first {_first_n(points)} images"
    ax.set_ylabel(f"top-1 accuracy, % ({which})")
    if cost == "gzip_mb":
        ax.set_xlabel("gzip-compressed model size, MB (1e6 bytes, log scale)")
    else:
        threads = next((r.threads for r in points if r.comparable and r.threads), None)
        ax.set_xlabel(f"latency per image, p50 ms (batch 1, {_threads(threads)}, log scale)")
    ax.set_title(title, loc="left")
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], marker="o", ls="none", color="#555", ms=7, label="LiteRT variant"),
        Line2D([], [], marker="o", ls="--", color="#222", mfc="none", ms=12, lw=1.0, label="Pareto front (LiteRT)"),
    ]
    if any(not r.comparable for r in points):
        handles.insert(1, Line2D([], [], marker="s", ls="none", color="#7f7f7f", mfc="white", mew=1.5, ms=7,
                                 label="Keras .h5 baseline (not comparable)"))
    handles.append(Line2D([], [], color="#555", lw=0.9, alpha=0.55, label="95% interval (accuracy)"))
    ax.legend(handles=handles, loc="best", framealpha=0.9)
    _place_labels(
        fig, ax, [getattr(r, cost) for r in points], [r.best_accuracy_pct for r in points],
        [r.name for r in points], [colors[r.name] for r in points], [r.best_accuracy_ci_pct for r in points],
        ringed=on_front, lines=staircase,
    )
    return _save(fig, path)


@_styled
def plot_sizes(rows: list[VariantRow], path: Path, title: str) -> Path | None:
    """File size vs gzip size per variant, grouped bars on a log axis, values printed."""
    rows = [r for r in rows if r.file_mb is not None or r.gzip_mb is not None]
    if not rows:
        return None
    fig, axes = _new_figure(max(5.2, 1.1 * len(rows) + 2.2), 3.9)
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
            [x + offset for x in xs], [v or 0 for v in values], width, label=label,
            color=[colors[r.name] for r in rows],
            alpha=alpha, hatch=hatch, edgecolor="#333", linewidth=0.6, zorder=3,
        )
        for bar, value in zip(bars, values):
            if value:
                ax.annotate(f"{value:.2f}" if value < 10 else f"{value:.1f}", (bar.get_x() + bar.get_width() / 2, value),
                            xytext=(0, 2), textcoords="offset points", ha="center", va="bottom", fontsize=FONT_SIZE - 1.5)
    ax.set_yscale("log")
    ax.margins(y=0.15)
    _plain_log_axis(ax.yaxis)
    ax.set_xticks(list(xs), [r.name + ("\n(.h5)" if not r.comparable else "") for r in rows])
    ax.set_ylabel("size, MB (1e6 bytes, log scale)")
    ax.set_title(title, loc="left")
    from matplotlib.patches import Patch

    ax.legend(handles=[Patch(facecolor="#999", edgecolor="#333", label="file on disk"),
                       Patch(facecolor="#999", alpha=0.55, hatch="//", edgecolor="#333", label="after gzip -9")],
              loc="upper right", framealpha=0.9)
    ax.grid(axis="x", visible=False)
    return _save(fig, path)


def _horizontal_boxplot(ax, samples, y, **kwargs):
    try:  # matplotlib >= 3.10 spells it orientation=; vert= is deprecated there
        return ax.boxplot([samples], positions=[y], orientation="horizontal", **kwargs)
    except TypeError:
        return ax.boxplot([samples], positions=[y], vert=False, **kwargs)


@_styled
def plot_latency(rows: list[VariantRow], path: Path, title: str) -> tuple[Path | None, bool]:
    """Latency per variant: box plot from raw samples, else a percentile range plot. Returns (path, had_samples)."""
    rows = [r for r in rows if r.samples_ms or r.p50_ms is not None]
    if not rows:
        return None, False
    fig, axes = _new_figure(6.8, 0.55 * len(rows) + 1.6)
    ax = axes[0][0]
    colors = variant_colors(r.name for r in rows)
    ys = list(range(len(rows)))[::-1]
    any_samples = any(r.samples_ms for r in rows)
    any_summary = any(not r.samples_ms for r in rows)
    for y, r in zip(ys, rows):
        color = colors[r.name]
        if r.samples_ms:
            _horizontal_boxplot(
                ax, r.samples_ms, y, widths=0.5, whis=(1, 99), showfliers=True,
                patch_artist=True, boxprops={"facecolor": color, "alpha": 0.6, "edgecolor": "#333"},
                medianprops={"color": "#111", "lw": 1.4}, flierprops={"marker": ".", "ms": 2.5, "alpha": 0.4, "mec": color},
                whiskerprops={"color": "#333"}, capprops={"color": "#333"}, manage_ticks=False,
            )
        else:
            if r.min_ms is not None and r.max_ms is not None:
                ax.plot([r.min_ms, r.max_ms], [y, y], color=color, lw=1.0, zorder=2)
                ax.plot([r.min_ms, r.max_ms], [y, y], "|", color=color, ms=9, zorder=2)
            if r.p50_ms is not None and r.p99_ms is not None:
                ax.plot([r.p50_ms, r.p99_ms], [y, y], color=color, lw=6, alpha=0.45, solid_capstyle="butt", zorder=3)
            if r.p90_ms is not None:
                ax.plot([r.p90_ms], [y], "d", color=color, ms=6, mec="#333", mew=0.6, zorder=4)
            if r.p50_ms is not None:
                ax.plot([r.p50_ms], [y], "o", color=color, ms=7, mec="#111", mew=0.8, zorder=5)
        right = max((v for v in (r.samples_ms or []) + [r.max_ms, r.p99_ms, r.p50_ms] if v is not None), default=None)
        if r.p50_ms is not None and right is not None:
            ax.annotate(f"p50 {_ms(r.p50_ms)} ms", (right, y), xytext=(6, 0), textcoords="offset points",
                        ha="left", va="center", fontsize=FONT_SIZE - 1.5, color="#333")
    values = [v for r in rows for v in (r.samples_ms or [r.min_ms, r.p50_ms, r.max_ms, r.p99_ms]) if v]
    ax.margins(x=0.12)
    if values and max(values) / max(min(values), 1e-9) > 15:
        ax.set_xscale("log")
        _plain_log_axis(ax.xaxis)
        scale = ", log scale"
    else:
        scale = ""
    ax.set_yticks(ys, [r.name + (" (Keras)" if not r.comparable else "") for r in rows])
    ax.set_ylim(-0.7, len(rows) - 0.3)
    threads = next((r.threads for r in rows if r.comparable and r.threads), None)
    ax.set_xlabel(f"latency per image, ms (batch 1, {_threads(threads)}{scale})")
    ax.set_title(title, loc="left")
    ax.grid(axis="y", visible=False)
    from matplotlib.lines import Line2D

    handles = []
    if any_samples:
        handles.append(Line2D([], [], color="#333", lw=1, label="box: p25–p75, median; whiskers p1–p99"))
    if any_summary:
        handles += [
            Line2D([], [], marker="o", ls="none", color="#777", mec="#111", label="p50"),
            Line2D([], [], color="#777", lw=6, alpha=0.45, label="p50 to p99"),
            Line2D([], [], marker="d", ls="none", color="#777", mec="#333", label="p90"),
            Line2D([], [], marker="|", color="#777", ms=9, lw=1, label="min to max"),
        ]
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles) if len(handles) <= 4 else 3, frameon=False,
               fontsize=FONT_SIZE - 1)
    return _save(fig, path), any_samples


@_styled
def plot_history(history: dict[str, list[float]], path: Path, title: str) -> Path | None:
    """Training and validation loss and accuracy per epoch, best validation epoch marked."""
    pairs = [(k, f"val_{k}") for k in ("loss", "accuracy") if k in history or f"val_{k}" in history]
    if not pairs:
        return None
    fig, axes = _new_figure(7.6, 3.4, ncols=len(pairs))
    best_epoch = None
    if history.get("val_accuracy"):
        values = history["val_accuracy"]
        best_epoch = max(range(len(values)), key=lambda i: values[i] if math.isfinite(values[i]) else -1) + 1
    for ax, (train_key, val_key) in zip(axes[0], pairs):
        scale = 100 if train_key == "accuracy" else 1
        for key, label, style in ((train_key, "training", "-o"), (val_key, "validation", "-s")):
            if history.get(key):
                epochs = list(range(1, len(history[key]) + 1))
                ax.plot(epochs, [v * scale for v in history[key]], style, ms=3.5, lw=1.4, label=label)
        if best_epoch:
            ax.axvline(best_epoch, color="#888", ls=":", lw=1.1, label=f"best val. accuracy (epoch {best_epoch})")
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy, %" if train_key == "accuracy" else "loss (cross-entropy)")
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=len(handles), frameon=False)
    fig.suptitle(title, x=0.02, ha="left", fontsize=FONT_SIZE + 1.5)
    return _save(fig, path)


# ---- per-layer anatomy -----------------------------------------------------------------

LAYER_VARIANTS = ("prune", "cluster", FLOAT_VARIANT)


def _kernel_label(shape: Any) -> str:
    """A layer label from its kernel's shape, the same in every variant (tensor names are not: QAT
    renames conv2d to quant_conv2d, and converters name constants arbitrarily)."""
    if isinstance(shape, list) and len(shape) == 4:
        out, kh, kw, cin = shape
        if out == 1:  # depthwise: [1, kh, kw, channels]
            return f"dw {kh}×{kw}, {cin}"
        return f"conv {kh}×{kw}\n{cin}→{out}"
    if isinstance(shape, list) and len(shape) == 2:
        return f"dense\n{shape[1]}→{shape[0]}"
    return "×".join(map(str, shape)) if isinstance(shape, list) else "?"


def _tensor_entries(anatomy: Any) -> list[dict[str, Any]] | None:
    """Per-kernel rows (label, elements, sparsity, unique values) from a dnncomp.anatomy summary.

    Reads ``anatomy["weights"]`` (entries with name, shape, size, role, sparsity,
    unique); kernels only (``role == "kernel"``, or rank >= 2 when there is no
    role): biases are neither pruned nor clustered. Each label gets an ordinal
    suffix when two kernels share a shape, so variants line up layer by layer.
    """
    if not isinstance(anatomy, dict):
        return None
    entries = next((anatomy[k] for k in ("weights", "tensors") if isinstance(anatomy.get(k), list)), None)
    if not entries:
        return None
    rows, seen = [], {}
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        shape = entry.get("shape")
        role = entry.get("role")
        if role is not None and role != "kernel":
            continue
        if role is None and not (isinstance(shape, list) and len(shape) >= 2):
            continue
        sparsity, unique = _num(entry.get("sparsity")), _num(entry.get("unique"))
        if sparsity is None and unique is None:
            continue
        label = _kernel_label(shape)
        seen[label] = seen.get(label, 0) + 1
        if seen[label] > 1:
            label += f" ({seen[label]})"
        rows.append({"label": label, "name": str(entry.get("name", "")), "elements": _num(entry.get("size")),
                     "sparsity": sparsity, "unique": unique, "shape": shape})
    return _network_order(rows) or None


def _network_order(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Kernels in the order data flows through them, as far as the shapes tell.

    A flatbuffer lists tensors in no particular order. In a chain of layers each
    kernel's input channels are the previous one's outputs: convolutions first
    ([out, kh, kw, in]), then dense layers ([out, in]), each group chained from
    the kernel whose input no other kernel produces. Where the chain is
    ambiguous (branches, in == out), the rest keep their stored order.
    """

    def chain(group: list[dict[str, Any]], io) -> list[dict[str, Any]]:
        left = list(group)
        ordered = []
        current = next((r for r in left if all(io(r)[0] != io(o)[1] for o in left if o is not r)), None)
        while current is not None:
            ordered.append(current)
            left.remove(current)
            current = next((r for r in left if io(r)[0] == io(ordered[-1])[1]), None)
        return ordered + left

    convs = [r for r in rows if isinstance(r["shape"], list) and len(r["shape"]) == 4]
    denses = [r for r in rows if isinstance(r["shape"], list) and len(r["shape"]) == 2]
    others = [r for r in rows if r not in convs and r not in denses]
    return chain(convs, lambda r: (r["shape"][3], r["shape"][0])) + chain(denses, lambda r: (r["shape"][1], r["shape"][0])) + others


def layer_details(run: RunData, variant: dict[str, Any]) -> list[dict[str, Any]] | None:
    """Per-tensor detail: from results.json's anatomy, else by inspecting the variant's .tflite file."""
    rows = _tensor_entries(variant.get("anatomy"))
    if rows:
        return rows
    artifact = run.run_dir / str(variant.get("artifact") or "")
    if not artifact.is_file() or artifact.suffix != ".tflite":
        return None
    try:
        from .anatomy import inspect_model
    except ImportError:
        return None
    try:
        return _tensor_entries(inspect_model(artifact))
    except Exception as exc:  # a report must not die on one unreadable artifact; it says so instead
        run.notes.append(f"could not inspect {artifact.name}: {exc}")
        return None


@_styled
def plot_layers(details: dict[str, list[dict[str, Any]]], path: Path, title: str) -> Path | None:
    """Per-layer sparsity (%) and unique weight values, one bar group per layer, one bar per variant."""
    details = {k: v for k, v in details.items() if v}
    if not details:
        return None
    layer_names: list[str] = []
    for rows in details.values():
        for row in rows:
            if row["label"] not in layer_names:
                layer_names.append(row["label"])
    fig, axes = _new_figure(max(8.2, 0.9 * len(layer_names) * 2 + 2.2), 3.8, ncols=2)
    colors = variant_colors(details)
    width = 0.8 / len(details)
    for ax, key, ylabel in ((axes[0][0], "sparsity", "zero weights, %"),
                            (axes[0][1], "unique", "distinct weight values (log scale)")):
        for k, (variant, rows) in enumerate(details.items()):
            by_layer = {r["label"]: r for r in rows}
            xs, values = [], []
            for i, layer in enumerate(layer_names):
                value = by_layer.get(layer, {}).get(key)
                if value is not None:
                    xs.append(i - 0.4 + width * (k + 0.5))
                    values.append(100 * value if key == "sparsity" else value)
            ax.bar(xs, values, width * 0.92, color=colors[variant], label=variant, edgecolor="#333", lw=0.5, zorder=3)
            for x, v in zip(xs, values):
                text = f"{v:.0f}" if key == "sparsity" else (f"{v:.0f}" if v < 1e4 else f"{v / 1e3:.0f}k")
                ax.annotate(text, (x, v), xytext=(0, 2), textcoords="offset points", ha="center", va="bottom",
                            fontsize=FONT_SIZE - 2.5)
        many = len(layer_names) > 5
        ax.set_xticks(range(len(layer_names)), layer_names, rotation=30 if many else 0, ha="right" if many else "center",
                      fontsize=FONT_SIZE - 1.5)
        ax.set_ylabel(ylabel)
        ax.set_xlabel("layer (kernel shape, in→out channels)")
        ax.grid(axis="x", visible=False)
        if key == "sparsity":
            ax.set_ylim(0, 108)
        else:
            ax.set_yscale("log")
            ax.margins(y=0.2)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", frameon=False, title="variant")
    fig.suptitle(title, x=0.02, ha="left", fontsize=FONT_SIZE + 1.5)
    return _save(fig, path)


# ---- the combined study-vs-ours figure ----------------------------------------------------


# Short tick labels: the caption says which study row each one stands beside.
COMPARISON_LABELS = {KERAS_BASELINE: "Keras\nbaseline", FLOAT_VARIANT: "float\n(no study)"}


@_styled
def plot_study_comparison(runs: list[RunData], path: Path) -> Path | None:
    """Per dataset: accuracy, latency and size, the study's published number beside ours."""
    runs = [r for r in runs if normalize_dataset(r.dataset) in STUDY_DATASETS]
    if not runs:
        return None
    fig, axes = _new_figure(10.5, 2.75 * len(runs) + 0.6, ncols=3, nrows=len(runs))
    variants = [KERAS_BASELINE, FLOAT_VARIANT, "qat", "prune", "cluster"]
    series = {
        "acc": [("study (first 1000)", STUDY_COLOR, None), ("ours, first 1000", "#4c72b0", None), ("ours, full test set", "#55a868", None)],
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
                    values_by_series.append([study.accuracy_pct if study else None,
                                             ours.acc_first_n_pct if ours else None,
                                             ours.acc_full_pct if ours else None])
                elif metric == "lat":
                    values_by_series.append([study.latency_ms if study else None, ours.p50_ms if ours else None])
                else:
                    values_by_series.append([study.size_mb if study else None, ours.file_mb if ours else None,
                                             ours.gzip_mb if ours else None])
            k = len(series[metric])
            width = 0.8 / k
            for s, (label, color, hatch) in enumerate(series[metric]):
                xs = [i - 0.4 + width * (s + 0.5) for i in range(len(names))]
                vals = [vals[s] for vals in values_by_series]
                ax.bar([x for x, v in zip(xs, vals) if v is not None], [v for v in vals if v is not None], width * 0.92,
                       color=color, hatch=hatch, edgecolor="#333", lw=0.5, label=label, zorder=3)
                if metric == "acc" and s == 1:  # the Wilson interval on the first 1000 images
                    for x, n in zip(xs, names):
                        r = rows.get(n)
                        if r and r.first_n_ci_pct and r.acc_first_n_pct is not None:
                            lo, hi = r.first_n_ci_pct
                            ax.errorbar([x], [r.acc_first_n_pct], yerr=[[r.acc_first_n_pct - lo], [hi - r.acc_first_n_pct]],
                                        fmt="none", ecolor="#111", elinewidth=0.9, capsize=2, zorder=4)
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
                _plain_log_axis(ax.yaxis)
                ax.set_ylabel("latency per image, ms (log)")
                ax.set_title(f"{dataset_label(run.dataset)}: latency", loc="left")
            else:
                ax.set_yscale("log")
                _plain_log_axis(ax.yaxis)
                ax.set_ylabel("size, MB (log)")
                ax.set_title(f"{dataset_label(run.dataset)}: size", loc="left")
            if run is runs[-1]:
                ax.legend(fontsize=FONT_SIZE - 1.5, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.22),
                          ncol=1)
    return _save(fig, path)


def training_time_points(run: RunData) -> dict[str, Any] | None:
    """What one run says about accuracy against training time, or None when it says nothing.

    ``curve``: (minutes, validation accuracy %) per epoch, from history.json's ``elapsed_s``
    (recorded since dnncomp 0.1; older histories have none). ``end``: (minutes, full-test-set
    accuracy % of the int8 and float LiteRT models) at the baseline stage's wall time in the
    manifest, which also counts loading and saving, so it lies a little right of the curve's end.
    """
    history = run.history or {}
    curve = None
    if history.get("elapsed_s") and history.get("val_accuracy"):
        curve = [(t / 60.0, 100.0 * a) for t, a in zip(history["elapsed_s"], history["val_accuracy"])
                 if _num(t) is not None and _num(a) is not None]
    wall_s = _num(run.stage("baseline").get("wall_s"))
    rows = {r.name: r for r in variant_rows(run)}
    end = {}
    if wall_s is not None:
        for name in ("qat", "ptq-int8", FLOAT_VARIANT):
            row = rows.get(name)
            if row is not None and row.acc_full_pct is not None:
                end[name] = (wall_s / 60.0, row.acc_full_pct)
    if not curve and not end:
        return None
    return {"curve": curve, "end": end}


@_styled
def plot_accuracy_vs_training_time(runs: list[RunData], path: Path, title: str) -> Path | None:
    """Validation accuracy against wall-clock training time, one line per run, with the test-set
    accuracy of its float and int8 LiteRT models marked where training ended. None (nothing
    drawn) unless at least one run has a curve: end points alone say too little."""
    points = [(run, training_time_points(run)) for run in runs]
    points = [(run, p) for run, p in points if p]
    if not any(p["curve"] for _, p in points):
        return None
    fig, axes = _new_figure(7.2, 3.9)
    ax = axes[0][0]
    markers = {FLOAT_VARIANT: ("o", "float, test set"), "qat": ("D", "int8 (qat), test set"),
               "ptq-int8": ("s", "int8 (ptq-int8), test set")}
    palette = iter(["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#d62728", "#8c564b", "#17becf", "#7f7f7f"] * 4)
    datasets = {normalize_dataset(run.dataset) for run, _ in points}
    low = 100.0
    for run, p in points:
        color = next(palette)
        label = run.model if len(datasets) == 1 else run.label
        if p["curve"]:
            xs, ys = zip(*p["curve"])
            ax.plot(xs, ys, "-", color=color, lw=1.5, label=f"{label}: validation")
            low = min(low, min(ys[len(ys) // 3:]))  # the early epochs would squash the interesting part
        for i, (name, (x, y)) in enumerate(p["end"].items()):
            marker, _ = markers[name]
            named = not p["curve"] and i == 0  # a run without a curve still needs its colour in the legend
            ax.plot([x], [y], marker, color=color, ms=6, mec="#222", mew=0.6,
                    label=f"{label}: end of training" if named else None)
            low = min(low, y)
    if len(datasets) == 1 and next(iter(datasets)) in STUDY_DATASETS:
        study = study_row(next(iter(datasets)), KERAS_BASELINE)
        if study is not None:  # the bar the improved models are meant to clear
            ax.axhline(study.accuracy_pct, color=STUDY_COLOR, ls="--", lw=1.2,
                       label=f"study, published ({study.accuracy_pct:.1f} %, first {STUDY_TEST_IMAGES} test images)")
            low = min(low, study.accuracy_pct)
    for name, (marker, text) in markers.items():  # one legend entry per marker shape
        if any(name in p["end"] for _, p in points):
            ax.plot([], [], marker, color="#bbb", mec="#222", mew=0.6, label=text)
    ax.set_ylim(max(0.0, math.floor(low - 1.0)), 100.0)
    ax.set_xlim(left=0)
    ax.set_xlabel("training wall time, minutes")
    ax.set_ylabel("accuracy, %")
    ax.legend(loc="lower right", frameon=False, fontsize=FONT_SIZE - 1.5)
    ax.set_title(title, loc="left")
    return _save(fig, path)


# ---- report sections -------------------------------------------------------------------


def _results_table(run: RunData, rows: list[VariantRow]) -> Table:
    first_n, full_n = _first_n(rows), _full_n(rows)
    headers = [
        "variant", "runtime", f"acc. % (all {full_n or '?'})", f"acc. % (first {first_n}) [95% CI]",
        "p50 ms", "p99 ms", "file MB", "gzip MB", "zeros %", "×float file", "×float gzip",
        f"study acc. % ({STUDY_TEST_IMAGES})", "study ms (Jetson, mean)", "study file MB",
    ]
    # The study's columns only for a dataset the study measured: a user's folder would show three empty ones.
    with_study = normalize_dataset(run.dataset) in STUDY_DATASETS
    if not with_study:
        headers = headers[:-3]
    body = []
    for r in rows:
        study = study_row(run.dataset, r.name)
        body.append([
            f"`{r.name}`", r.runtime + (" (.h5)" if not r.comparable else ""),
            format_number(r.acc_full_pct), format_number(r.acc_first_n_pct) + _ci(r.first_n_ci_pct),
            _ms(r.p50_ms), _ms(r.p99_ms), format_number(r.file_mb, 3), format_number(r.gzip_mb, 3),
            format_number(r.sparsity_pct, 1),
            _ratio(r.file_ratio), _ratio(r.gzip_ratio),
        ] + ([
            format_number(study.accuracy_pct) if study else "–", format_number(study.latency_ms) if study else "–",
            format_number(study.size_mb) if study else "–",
        ] if with_study else []))
    return Table(headers, body, align="ll" + "r" * (len(headers) - 2), shaded=(11, 12, 13) if with_study else ())


def _latency_caption(rows: list[VariantRow], run: RunData) -> str:
    litert = next((v.get("latency") for v in run.variants if v.get("runtime", "litert") != "keras" and v.get("latency")), None) or {}
    parts = ["batch 1"]
    if litert.get("threads"):
        parts.append(_threads(litert["threads"]))
    if litert.get("xnnpack") is not None:
        parts.append("XNNPACK " + ("on" if litert["xnnpack"] else "off"))
    if litert.get("warmup_count") is not None:
        parts.append(f"{litert['warmup_count']} warm-up runs")
    if litert.get("count") is not None:
        parts.append(f"{litert['count']} timed runs")
    return ", ".join(parts)


def _run_notes(run: RunData, rows: list[VariantRow]) -> list[str]:
    notes = [
        f"Accuracy: whole test set, and the first {_first_n(rows)} test images (the study's protocol) with a 95% "
        "Wilson interval: on 1000 images a difference of about one point is within sampling error.",
        f"Latency: LiteRT, {_latency_caption(rows, run)}; p50/p99 are percentiles of the per-image wall time.",
        "Size: MB = 1e6 bytes; gzip is the file compressed with gzip at level 9. ×float = the float LiteRT model's size divided by "
        "this one's (higher is smaller). Pruned and clustered files are as large as float on disk; their gain "
        "shows only after gzip.",
        f"Study columns: the published numbers on the {STUDY_DEVICE}, first {STUDY_TEST_IMAGES} images, mean latency, "
        "file size. The study never timed a float LiteRT model, so `float` has none.",
    ]
    if run.variant(KERAS_BASELINE):
        notes.append(
            "`baseline-keras` is the study's baseline measurement: the .h5 file (optimizer state included) timed "
            "through Keras `model.predict` on one image, mostly framework overhead; compare it with nothing but the "
            "study's baseline row."
        )
    if not run.variant(FLOAT_VARIANT):
        notes.append("No `float` variant in this run, so no compression ratios.")
    return notes


def _machine(env: dict[str, Any]) -> str:
    """"workstation, x86_64, AMD EPYC 7B13" / "jetson, aarch64, ..., L4T R32.7.1"."""
    return ", ".join(str(env[k]) for k in ("device", "machine", "cpu_model", "jetson_release") if env.get(k))


def _provenance(run: RunData) -> list[Block]:
    manifest = run.manifest or {}
    env = run.results.get("environment") or manifest.get("environment") or {}
    config = manifest.get("config") or {}
    threads = config.get("threads") or next(
        (r.threads for r in variant_rows(run) if r.comparable and r.threads), None)
    facts = [
        ("command", f"`{manifest['command']}`" if manifest.get("command") else "–"),
        ("dnncomp", manifest.get("dnncomp_version") or env.get("dnncomp") or "–"),
        ("seed", str(run.results.get("seed", manifest.get("seed", "–")))),
        ("threads (LiteRT)", str(threads or "–")),
        ("results written", str(run.results.get("created") or "–")),
        ("run directory", f"`{_display_path(run.run_dir)}`"),
        ("machine", _machine(env) or "–"),
        ("platform", str(env.get("platform") or "–")),
        ("CPU cores", str(env.get("cpu_count") or "–") + (
            f" ({env['cpus_available']} available to the process)"
            if env.get("cpus_available") and env.get("cpus_available") != env.get("cpu_count") else "")),
        ("python", str(env.get("python") or "–")),
    ]
    data = manifest.get("data") or {}
    if data:
        facts.append(("data", f"train {data.get('train', '?')}, test {data.get('test', '?')} images, "
                              f"{data.get('classes', '?')} classes; fingerprint `{data.get('fingerprint', '?')}`"))
    for key in ("epochs", "batch_size", "patience", "limit", "techniques", "eval_only"):
        if config.get(key) is not None:
            value = config[key]
            facts.append((f"config: {key}", ", ".join(map(str, value)) if isinstance(value, list) else str(value)))
    blocks: list[Block] = [Table(["what", "value"], [[k, v] for k, v in facts], align="ll")]
    packages = env.get("packages") or {}
    if packages:
        blocks.append(Para("Packages: " + ", ".join(f"{k} {v}" for k, v in sorted(packages.items()) if v) + "."))
    stages = manifest.get("stages") or {}
    if stages:
        stage_rows = []
        for name, entry in stages.items():
            outputs = entry.get("outputs") or {}
            stage_rows.append([
                f"`{name}`", format_number(_num(entry.get("wall_s")), 1), str(entry.get("finished") or "–"),
                ", ".join(f"{f} `{h[:12]}`" for f, h in outputs.items()) or "–",
            ])
        blocks.append(Table(["stage", "wall s", "finished", "outputs (sha256, first 12)"], stage_rows, align="lrll"))
    if run.notes:
        blocks.append(Bullets([f"Note: {n}" for n in run.notes]))
    return blocks


def _display_path(path: Path) -> str:
    """Relative to the working directory when below it: committed reports should not carry a home path."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _run_section(run: RunData, out_dir: Path, figures: list[Path], level: int) -> list[Block]:
    rows = variant_rows(run)
    blocks: list[Block] = [Heading(level, run.label)]
    h = level + 1
    env = run.results.get("environment") or {}
    where = _machine(env) or "an unrecorded machine"
    blocks.append(Para(f"{len(rows)} variant(s) from `{_display_path(run.run_dir)}`, measured on: {where}."))
    if not rows:
        blocks.append(Para("results.json lists no variants: nothing was measured yet."))
        blocks += [Heading(h, "Provenance"), *_provenance(run)]
        return blocks
    blocks += [Heading(h, "Results"), _results_table(run, rows), Bullets(_run_notes(run, rows))]

    def fig(name: str) -> Path:
        return out_dir / f"{run.slug}-{name}.png"

    plotted = []
    blocks.append(Heading(h, "Accuracy against size and latency"))
    for name, cost, what in (("accuracy-vs-size", "gzip_mb", "gzip size"), ("accuracy-vs-latency", "p50_ms", "p50 latency")):
        path = plot_accuracy_vs(rows, cost, fig(name), f"{run.label}: accuracy vs {what}")
        if path:
            plotted.append(path)
            blocks.append(Plot(path, f"accuracy vs {what}", (
                f"Accuracy against {what}; up and left is better. Circled points, joined by the dashed staircase, "
                "are the Pareto front among the LiteRT variants: no other variant is both smaller/faster and more "
                "accurate. Vertical bars: 95% Wilson interval of the accuracy"
                + ("; the latency spread is in the next plot." if cost == "p50_ms" else ".")
                + (" The hollow square is the Keras .h5 baseline, not comparable and off the front."
                   if any(not r.comparable for r in rows) else "")
            )))
        else:
            blocks.append(Para(f"No variant has both accuracy and {what}: nothing to plot."))
    blocks.append(Heading(h, "Size on disk and after gzip"))
    path = plot_sizes(rows, fig("sizes"), f"{run.label}: file and gzip size")
    if path:
        plotted.append(path)
        blocks.append(Plot(path, "file vs gzip size", (
            "File size and `gzip -9` size per variant (log scale). Pruning and clustering leave the file as large as "
            "float; zeros and repeated values only pay off once the file is compressed.")))
    blocks.append(Heading(h, "Latency distribution"))
    path, had_samples = plot_latency(rows, fig("latency"), f"{run.label}: latency per image")
    if path:
        plotted.append(path)
        summary_only = [r.name for r in rows if not r.samples_ms and r.p50_ms is not None]
        caption = "Per-image latency, one image at a time. "
        if had_samples:
            caption += "Boxes from the raw samples (p25–p75, median line, whiskers p1–p99). "
        if summary_only:
            caption += (f"Raw samples were not recorded for {', '.join(summary_only)}: drawn from the recorded "
                        "percentiles instead (dot p50, band p50–p99, diamond p90, line min–max). ")
        if any(not r.comparable for r in rows):
            caption += "The Keras row is `model.predict` on one image, mostly framework overhead."
        blocks.append(Plot(path, "latency distribution", caption.strip()))
    else:
        blocks.append(Para("No latency measured."))

    layer_data = {}
    for name in LAYER_VARIANTS:
        variant = run.variant(name)
        if variant is not None:
            details = layer_details(run, variant)
            if details:
                layer_data[name] = details
    blocks.append(Heading(h, "Inside the pruned and clustered models"))
    if any(k in layer_data for k in ("prune", "cluster")):
        path = plot_layers(layer_data, fig("layers"), f"{run.label}: per-layer sparsity and distinct values")
        if path:
            plotted.append(path)
            blocks.append(Plot(path, "per-layer sparsity and unique weights", (
                "Per weight tensor (kernels; biases left out): the share of exact zeros, and how many distinct values "
                "it holds (log scale). Pruning shows as zeros, clustering as a handful of distinct values per "
                "tensor; both are what gzip exploits.")))
    else:
        blocks.append(Para(
            "No per-layer detail: the results hold no per-tensor anatomy and the pruned/clustered .tflite files "
            "could not be inspected here (missing files or no `dnncomp.anatomy`)."))

    blocks.append(Heading(h, "Training history"))
    path = plot_history(run.history, fig("history"), f"{run.label}: baseline training") if run.history else None
    if path:
        plotted.append(path)
        epochs = max(len(v) for v in run.history.values())
        blocks.append(Plot(path, "training curves", (
            f"Baseline training over {epochs} epoch(s): training and validation loss and accuracy. The dotted "
            "line marks the epoch with the best validation accuracy (early stopping restores it).")))
    else:
        blocks.append(Para("No history.json in this run (the baseline was not trained here, or its history was not kept)."))

    blocks += [Heading(h, "Provenance"), *_provenance(run)]
    figures += plotted
    return blocks


def _study_table(runs: list[RunData]) -> Table:
    headers = [
        "dataset", "study variant", "our variant", f"study acc. % ({STUDY_TEST_IMAGES})",
        f"our acc. % (first {STUDY_TEST_IMAGES}) [95% CI]", "our acc. % (full)", "study ms (Jetson mean)",
        "our ms p50 / mean", "study file MB", "our file MB", "our gzip MB",
    ]
    body = []
    for run in runs:
        rows = {r.name: r for r in variant_rows(run)}
        for name in (KERAS_BASELINE, FLOAT_VARIANT, "qat", "prune", "cluster"):
            study, ours = study_row(run.dataset, name), rows.get(name)
            if study is None and ours is None:
                continue
            body.append([
                dataset_label(run.dataset), study.variant if study else "– (never timed)", f"`{name}`",
                format_number(study.accuracy_pct) if study else "–",
                (format_number(ours.acc_first_n_pct) + _ci(ours.first_n_ci_pct)) if ours else "–",
                format_number(ours.acc_full_pct) if ours else "–",
                format_number(study.latency_ms) if study else "–",
                f"{_ms(ours.p50_ms)} / {_ms(ours.mean_ms)}" if ours else "–",
                format_number(study.size_mb) if study else "–",
                format_number(ours.file_mb, 3) if ours else "–",
                format_number(ours.gzip_mb, 3) if ours else "–",
            ])
    return Table(headers, body, align="lll" + "r" * 8, shaded=(1, 3, 6, 8))


def _differences(runs: list[RunData]) -> list[str]:
    """Why the two tables differ, with this run's own numbers where they make the point."""
    items = []
    gaps, halves = [], []
    for run in runs:
        for r in variant_rows(run):
            if r.acc_full_pct is not None and r.acc_first_n_pct is not None:
                gaps.append((abs(r.acc_full_pct - r.acc_first_n_pct), run, r))
            if r.first_n_ci_pct:
                halves.append((r.first_n_ci_pct[1] - r.first_n_ci_pct[0]) / 2)
    text = (f"**{STUDY_TEST_IMAGES} images vs the full test set.** The study scored each model on the first "
            f"{STUDY_TEST_IMAGES} test images only. On {STUDY_TEST_IMAGES} images a 95% interval is about "
            "±1 point (about ±0.6 near 99%, ±2.5 near 80%)")
    if halves:
        text += f"; in these runs the half-widths range {min(halves):.1f}–{max(halves):.1f} points"
    text += ". Differences between variants, or between the study and us, smaller than that are noise."
    if gaps:
        gap, run, r = max(gaps, key=lambda g: g[0])
        text += (f" The first {STUDY_TEST_IMAGES} images are not the test set either: the largest gap here is "
                 f"{gap:.2f} points ({dataset_label(run.dataset)} `{r.name}`: {r.acc_first_n_pct:.2f}% on the first "
                 f"{r.first_n_count} vs {r.acc_full_pct:.2f}% on all {r.full_count}).")
    items.append(text)

    text = ("**Keras `predict` vs LiteRT.** The study's baseline latency is Keras `model.predict` on a single image, "
            "which is mostly framework overhead, so its ~160–175 ms says nothing about the model. Our "
            "`baseline-keras` row repeats that measurement; the fair baseline is our `float` LiteRT model, timed in "
            "the same runtime, warmed up, at a fixed thread count, like every other variant.")
    speedups = []
    for run in runs:
        keras, flt = run.variant(KERAS_BASELINE), run.variant(FLOAT_VARIANT)
        k_ms, f_ms = _num(_get(keras, "latency", "p50_ms")), _num(_get(flt, "latency", "p50_ms"))
        if k_ms and f_ms:
            speedups.append(f"{dataset_label(run.dataset)} {k_ms:.1f} ms vs {f_ms:.3f} ms")
    if speedups:
        text += " Keras predict vs float LiteRT (p50) here: " + "; ".join(speedups) + "."
    items.append(text)

    text = ("**File size vs gzip size.** The study reports file sizes. A pruned or clustered model stores its zeros "
            "and repeated values as ordinary float32 weights, so on disk it is exactly as large as the float model "
            "(the study's pruned and clustered rows share one size per dataset); the gain appears only under "
            "standard compression (gzip/zip) or a sparse format. The study's baseline size is the .h5 with optimizer "
            "state, about three times the float weights.")
    shows = []
    for run in runs:
        rows = {r.name: r for r in variant_rows(run)}
        for name in ("prune", "cluster"):
            r = rows.get(name)
            if r and r.file_ratio and r.gzip_ratio:
                shows.append(f"{dataset_label(run.dataset)} `{name}` ×{r.file_ratio:.2f} on disk, ×{r.gzip_ratio:.2f} gzipped")
    if shows:
        text += " Against our float model: " + "; ".join(shows) + "."
    items.append(text)

    machines = sorted({_machine(run.results.get("environment") or {}) for run in runs} - {""})
    cores = sorted({str((run.results.get("environment") or {}).get("cpu_count")) for run in runs} - {"None"})
    text = (f"**Jetson Nano vs this machine.** The study's latencies come from an {STUDY_DEVICE}; ours come from "
            f"{', '.join(machines) or 'the machine named in each run’s provenance'}"
            + (f" ({'/'.join(cores)} CPU cores)" if cores else "")
            + ". Absolute milliseconds do not transfer between the two; compare ratios between variants, or rerun "
              "`dnncomp run --eval-only` on the device itself.")
    items.append(text)
    text = ("**Our own training.** Our baselines are trained anew with the study's settings and a fixed seed, "
            "not loaded from the study's weights, so accuracies differ from the study's for that reason alone, "
            "before any compression; the compressed variants start from our baseline, as the study's started "
            "from its own. The study trained for up to 50 epochs with early stopping (patience 5).")
    trained = []
    for run in runs:
        manifest = run.manifest or {}
        epochs_run = _get(manifest, "stages", "baseline", "epochs_run")
        limit = _get(manifest, "config", "epochs")
        train_images = _get(manifest, "data", "train")
        if epochs_run is not None or limit is not None:
            what = f"{dataset_label(run.dataset)}: {epochs_run if epochs_run is not None else '?'} epoch(s)"
            if limit is not None:
                what += f" of at most {limit}"
            if train_images:
                what += f", {train_images} training images before the validation split"
            trained.append(what)
    if trained:
        text += " Here: " + "; ".join(trained) + "."
    items.append(text)
    return items


def write_report(run_dirs: Sequence[str | Path], out_dir: str | Path, title: str | None = None) -> dict[str, Any]:
    """Write report.md, a self-contained report.html and the PNGs for one or more runs.

    Returns {"markdown": Path, "html": Path, "figures": [Path, ...]}.
    """
    if not run_dirs:
        raise DnncompError("no run directories given; pass at least one, e.g. runs/mnist/study-mnist")
    _matplotlib()  # fail before writing anything when matplotlib is missing
    runs = [load_run(d) for d in run_dirs]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    seen: dict[str, int] = {}
    for run in runs:  # two runs of the same dataset and model still get distinct figure names
        seen[run.slug] = seen.get(run.slug, 0) + 1
        if seen[run.slug] > 1:
            run.slug_suffix = f"-{seen[run.slug]}"
    title = title or ("dnncomp report: " + ", ".join(run.label for run in runs))
    figures: list[Path] = []
    blocks: list[Block] = []
    generated = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    blocks.append(Para(f"Generated {generated} by `dnncomp report` from {len(runs)} run(s). "
                       "Every number below was measured by the run it comes from; a dash means it was not measured."))

    study_runs = [r for r in runs if normalize_dataset(r.dataset) in STUDY_DATASETS]
    comparison: list[Block] = []
    if study_runs:
        comparison.append(Heading(2, "The study and ours, side by side"))
        comparison.append(Para(
            f"The study's published numbers (shaded; {STUDY_DEVICE}) beside what these runs measured. Its "
            "`baseline` is our `baseline-keras` (Keras .h5, `model.predict`), not our `float`; `quantized` is "
            "`qat`, `pruned` is `prune`, `clustered` is `cluster`."))
        comparison.append(_study_table(study_runs))
        path = plot_study_comparison(study_runs, out_dir / "study-vs-ours.png")
        if path:
            figures.append(path)
            comparison.append(Plot(path, "study vs ours", (
                "Per dataset, the study's number (grey) beside ours, variants by our names (Keras baseline = the "
                "study's baseline; qat = quantized, prune = pruned, cluster = clustered; float was not in the "
                "study): accuracy (error bar: 95% interval on the first "
                "1000 images), latency per image (study: mean on the Jetson Nano; ours: p50 here; log scale) and "
                "size (study: file; ours: file and gzip; log scale).")))
        comparison.append(Heading(3, "Why the numbers differ"))
        comparison.append(Bullets(_differences(study_runs)))

    if len(runs) > 1:
        blocks += comparison
    path = plot_accuracy_vs_training_time(runs, out_dir / "accuracy-vs-training-time.png", "Accuracy against training time")
    if path:
        figures.append(path)
        blocks.append(Heading(2, "Accuracy against training time"))
        blocks.append(Plot(path, "accuracy against training time", (
            "Validation accuracy after each epoch against the wall time since training started (history.json's "
            "`elapsed_s`), and, where training ended (the manifest's baseline wall time, which adds loading and "
            "saving), the full-test-set accuracy of the float and int8 LiteRT models. Wall times depend on what "
            "else the machine was running; see each run's provenance.")))
    for run in runs:
        blocks += _run_section(run, out_dir, figures, level=2)
    if len(runs) == 1:
        blocks += comparison

    markdown = render_markdown(title, blocks)
    html_text = render_html(title, blocks)
    md_path = atomic_write_text(out_dir / "report.md", markdown)
    html_path = atomic_write_text(out_dir / "report.html", html_text)
    return {"markdown": md_path, "html": html_path, "figures": figures}


# ---- reproduce -------------------------------------------------------------------------


def reproduce_study(
    datasets: Sequence[str] | None = None,
    *,
    out: str | Path = Path("docs/reproduction"),
    runs_root: str | Path = Path("runs"),
    data_dir: str | Path | None = None,
    epochs: int | None = None,
    threads: int = 1,
    seed: int = 0,
    title: str | None = None,
) -> dict[str, Any]:
    """Run the study's protocol (its models, float + qat + prune + cluster, first 1000 images) and report.

    Each dataset runs through ``dnncomp.run.run_pipeline`` (resumable: a rerun
    reuses what is done); then one combined report goes to ``out``. Returns
    write_report's paths plus {"runs": [run_dir, ...]}.
    """
    keys = [normalize_dataset(d) for d in (datasets or STUDY_DATASETS)]
    unknown = [d for d in keys if d not in STUDY_DATASETS]
    if unknown:
        raise DnncompError(
            f"the study used {', '.join(STUDY_DATASETS)}; not {', '.join(unknown)}. "
            "For other datasets use `dnncomp run` and `dnncomp report`."
        )
    _matplotlib()  # fail now, not after hours of training
    from .run import run_pipeline

    run_dirs = []
    for dataset in keys:
        run_dirs.append(Path(run_pipeline(
            dataset, model=f"study-{dataset}", techniques=None, out=Path(runs_root),
            data_dir=Path(data_dir) if data_dir else None, epochs=epochs, seed=seed,
            limit=STUDY_TEST_IMAGES, threads=threads, eval_only=False,
        )))
    paths = write_report(run_dirs, out, title=title or "The study reproduced: " + ", ".join(dataset_label(d) for d in keys))
    return {**paths, "runs": run_dirs}
