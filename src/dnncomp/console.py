"""Everything dnncomp prints to a terminal goes through here: tables that fit, progress lines.

Tables: each column has a priority; at the console's width the columns that fit are kept in
priority order and the rest are left out and named below the table, so an 80-column terminal
shows whole numbers instead of every cell cut to "…". ``wide=True`` (the CLI's ``--wide``)
shows every column. Output that is not a terminal (a log, a pipe) gets whole rows at 200 columns,
or at ``$COLUMNS`` when that is set (``COLUMNS=80 dnncomp recipes | less``).

Progress: :class:`StageProgress` writes one ``[elapsed] message`` line per pipeline stage on
stderr, with the stages done and left and an ETA from earlier wall times.

Device side: rich only; no TensorFlow.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

PIPE_WIDTH = 200  # a log or a pipe is read whole, not on a screen


def console(*, stderr: bool = False, width: int | None = None):
    """A rich Console on stdout (or stderr): the terminal's width, else ``$COLUMNS``, else ``PIPE_WIDTH`` columns."""
    from rich.console import Console

    if width is not None:
        return Console(stderr=stderr, width=width)
    terminal = Console(stderr=stderr)
    if terminal.is_terminal:
        return terminal
    # A pipe has no width of its own: the user's COLUMNS says how wide they read it, else whole rows.
    columns = os.environ.get("COLUMNS", "").strip()
    return Console(stderr=stderr, width=int(columns) if columns.isdigit() and int(columns) > 0 else PIPE_WIDTH)


@dataclass(frozen=True)
class Column:
    """One column of a fitted table.

    ``priority``: 0 is always shown; higher numbers are dropped first when the table is too
    wide. ``justify``: "left" or "right" (numbers). ``wrap``: a prose column (a description)
    that rich wraps; when columns are chosen it counts as this many characters (or its widest
    cell, if narrower), so it gives way to the columns beside it instead of hiding them.
    """

    header: str
    priority: int = 0
    justify: str = "right"
    wrap: int = 0


# rich draws a box: one border column at each side and " │ " between columns.
def _table_width(widths: Sequence[int]) -> int:
    return sum(widths) + 3 * len(widths) + 1


def cell_width(cell: Any) -> int:
    """Characters a cell takes on screen: its widest line, rich markup ("[red]...[/red]") not counted."""
    from rich.errors import MarkupError
    from rich.text import Text

    text = str(cell)
    try:
        lines = Text.from_markup(text).plain.splitlines()
    except MarkupError:  # brackets that are not markup ("[tune: 0.5..0.9]") are shown as they are
        lines = text.splitlines()
    return max((len(line) for line in lines), default=0)


def _natural(columns: Sequence[Column], rows: Sequence[Sequence[str]]) -> list[int]:
    return [max([len(c.header)] + [cell_width(row[i]) for row in rows]) for i, c in enumerate(columns)]


def fit_columns(columns: Sequence[Column], rows: Sequence[Sequence[str]], width: int) -> list[int]:
    """Indexes of the columns to show at ``width`` characters: by priority, then in table order.

    A column is kept only if the whole table with it still fits, so no cell is cut. Columns of
    priority 0 are always kept (rich wraps them if even they do not fit).
    """
    natural = [min(n, max(c.wrap, len(c.header))) if c.wrap else n for n, c in zip(_natural(columns, rows), columns)]
    kept = [i for i, c in enumerate(columns) if c.priority == 0]
    for i in sorted((i for i, c in enumerate(columns) if c.priority > 0), key=lambda i: (columns[i].priority, i)):
        if _table_width([natural[j] for j in kept] + [natural[i]]) <= width:
            kept.append(i)
    return sorted(kept)


def print_table(
    columns: Sequence[Column],
    rows: Sequence[Sequence[Any]],
    *,
    title: str | None = None,
    notes: Sequence[str] = (),
    wide: bool = False,
    out=None,
    show_lines: bool = False,
) -> list[str]:
    """Print a table that fits ``out``'s width (a rich Console; default :func:`console`).

    ``rows``: one sequence of cells per row, in ``columns``' order (cells are turned into
    text; rich markup and several lines allowed). Columns left out for width are named in one
    dim line under the table, with the ``--wide`` hint; ``notes`` follow as dim lines.
    ``show_lines``: a rule between rows (for cells of several lines). Returns the headers shown.
    """
    from rich.table import Table

    out = out or console()
    cells = [[str(cell) for cell in row] for row in rows]
    shown = list(range(len(columns))) if wide else fit_columns(columns, cells, out.width)
    table = Table(title=title, title_justify="left", show_lines=show_lines)
    for i in shown:
        column = columns[i]
        table.add_column(
            column.header,
            justify=column.justify,
            no_wrap=column.priority > 0 and not column.wrap,
            overflow="fold" if column.wrap else "ellipsis",  # a word longer than a prose column breaks, not cut
        )
    for row in cells:
        table.add_row(*(row[i] for i in shown))
    # wide: whole rows even past the terminal's edge (it wraps them; `less -S` scrolls them)
    natural = _table_width([_natural(columns, cells)[i] for i in shown])
    width = out.width
    if wide and natural > width:
        out.width = natural
    try:
        out.print(table)
    finally:
        out.width = width
    hidden = [columns[i].header for i in range(len(columns)) if i not in shown]
    if hidden:
        out.print(f"not shown at {out.width} columns: {', '.join(hidden)} (--wide shows all)", style="dim", highlight=False)
    for note in notes:
        out.print(note, style="dim", highlight=False)
    return [columns[i].header for i in shown]


def format_duration(seconds: float) -> str:
    """12.3 -> "12s", 95 -> "1m 35s", 4000 -> "1h 07m"."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"


class StageProgress:
    """A run's progress on stderr: ``[elapsed] message (k of n stages done, ETA ...)``.

    ``estimates``: stage name -> expected seconds (the manifest's wall time of an earlier run of
    that stage); a stage without one is estimated from this run's stages of the same kind
    (given to :meth:`plan`, else the part of the name before ":"). The ETA is left out while nothing can be estimated and
    marked ">" while some stage left has no estimate.
    """

    def __init__(self, verbose: int, say: Callable[[str], None] | None = None, clock: Callable[[], float] = time.perf_counter):
        self.verbose = verbose
        self.clock = clock
        self.started = clock()
        self._say = say or (lambda line: print(line, file=sys.stderr, flush=True))
        self.names: list[str] = []
        self.estimates: dict[str, float] = {}
        self.finished: set[str] = set()
        self.measured: dict[str, list[float]] = {}
        self.kinds: dict[str, str] = {}

    def plan(self, names: Sequence[str], estimates: dict[str, float] | None = None, kinds: dict[str, str] | None = None) -> None:
        """The stages this run will go through, in order; ``kinds``: stage -> the kind its time is like."""
        self.names = list(names)
        self.estimates = dict(estimates or {})
        self.kinds = dict(kinds or {})

    def line(self, message: str) -> None:
        """One progress line (shown unless quiet)."""
        if self.verbose:
            self._say(f"[{self.clock() - self.started:7.1f}s] {message}")

    def skipped(self, name: str) -> None:
        self.finished.add(name)

    def done(self, name: str, wall_s: float) -> None:
        self.finished.add(name)
        self.measured.setdefault(self._kind(name), []).append(wall_s)

    def _estimate(self, name: str) -> float | None:
        if name in self.estimates:
            return self.estimates[name]
        same_kind = self.measured.get(self._kind(name))
        return sum(same_kind) / len(same_kind) if same_kind else None

    def status(self, current: str) -> str:
        """``2 of 7 stages done, ETA 1m 20s`` for the stage ``current`` about to run."""
        left = [n for n in self.names if n not in self.finished]
        text = f"{len(self.names) - len(left)} of {len(self.names)} stages done"
        guesses = [self._estimate(n) for n in left]
        known = [g for g in guesses if g is not None]
        if known:
            text += f", ETA {'> ' if len(known) < len(guesses) else ''}{format_duration(sum(known))}"
        return text

    def running(self, name: str, message: str) -> None:
        if self.names:
            message = f"{message}  ({self.status(name)})"
        self.line(message)

    def _kind(self, stage: str) -> str:
        return self.kinds.get(stage) or stage.split(":", 1)[0]
