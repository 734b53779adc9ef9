"""What ``dnncomp datasets`` shows: for each dataset where it was found, its splits,
classes and image shape, what was skipped and why (by kind), how many images were read
upright from their EXIF orientation, and with ``verify`` the checks against the published
numbers (for an image folder, which has none: every file read, every class in both splits)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ..errors import DataError
from .registry import DATASETS, folder_root, get_spec, load_dataset
from .sources import DatasetNotFound
from .verify import Check, verify_dataset, verify_folder


@dataclass
class DatasetStatus:
    name: str
    state: str  # "ok", "not found" or "error"
    message: str = ""
    source: str = ""
    found_in: str = ""
    train: int | None = None
    test: int | None = None
    classes: int | None = None
    image_shape: tuple[int, ...] | None = None
    load_seconds: float | None = None
    from_cache: bool | None = None
    checks: list[Check] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    ignored: dict = field(default_factory=dict)  # files skipped as not images: kind -> {"count", "example"}
    decode: dict | None = None  # image-file datasets: what decoding converted (images.DECODE_EVENTS keys)
    error: DataError | None = None

    @property
    def failed_checks(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]


def survey(
    names: Sequence[str] = DATASETS,
    data_dir=None,
    verify: bool = False,
    skip_bad: bool = False,
    download: bool = False,
    progress: bool | None = None,
    announce=None,
) -> list[DatasetStatus]:
    """Load each dataset (without downloading unless ``download``) and describe it.

    ``announce(name)`` is called before each load, so a caller can say what it is doing.
    """
    statuses = []
    for name in names:
        if announce:
            announce(name)
        try:
            dataset = load_dataset(name, data_dir=data_dir, skip_bad=skip_bad, download=download, progress=progress)
        except DatasetNotFound as exc:
            statuses.append(DatasetStatus(name, "not found", message=str(exc), error=exc))
            continue
        except DataError as exc:
            statuses.append(DatasetStatus(name, "error", message=str(exc), error=exc))
            continue
        meta = dataset.meta
        status = DatasetStatus(
            name,
            "ok",
            source=str(meta.get("source", "")),
            found_in=str(meta.get("found_in", "")),
            train=len(dataset.y_train),
            test=len(dataset.y_test),
            classes=dataset.num_classes,
            image_shape=tuple(dataset.x_train.shape[1:]),
            load_seconds=meta.get("load_seconds"),
            from_cache=meta.get("from_cache"),
            skipped=list(meta.get("skipped", [])),
            notes=list(meta.get("notes", [])),
            ignored=dict(meta.get("ignored") or {}),
            decode=meta.get("decode"),
        )
        if verify:
            status.checks = (
                verify_folder(dataset) if folder_root(name) is not None else verify_dataset(dataset, get_spec(name).expected)
            )
        statuses.append(status)
    return statuses


def print_survey(statuses: Sequence[DatasetStatus], verify: bool = False, console=None, *, wide: bool = False) -> None:
    """One table per dataset (what was found, or how to get it), then its checks, notes, skipped files.

    ``console``: a rich Console (default :func:`dnncomp.console.console`: the terminal's width, else
    $COLUMNS, else whole lines). ``wide``: the checks' details on one line each.
    """
    from rich.table import Table

    from ..console import Column, print_table
    from ..console import console as default_console

    console = console or default_console()
    for s in statuses:
        table = Table(title=f"[bold]{s.name}[/bold]", title_justify="left", show_header=False, min_width=60)
        table.add_column("field", style="dim", no_wrap=True)
        table.add_column("value", overflow="fold")
        if s.state == "ok":
            cached = ", decoded arrays from the cache" if s.from_cache else ""
            table.add_row("found", f"{s.source} (via {s.found_in})", end_section=False)
            table.add_row("train", f"{s.train:,} images")
            table.add_row("test", f"{s.test:,} images")
            table.add_row("classes", str(s.classes))
            table.add_row("image", "x".join(map(str, s.image_shape)) + " uint8")
            table.add_row("load", f"{s.load_seconds:.2f} s{cached}")
            if s.decode is not None:  # image files: say what a viewer shows that the raw pixels do not
                n = s.decode.get("exif_orientation", 0)
                table.add_row(
                    "orientation",
                    f"{n} image(s) rotated/flipped upright by their EXIF orientation"
                    if n
                    else "no image carries an EXIF orientation",
                )
            if s.ignored:
                table.add_row(
                    "not images",
                    f"{sum(v['count'] for v in s.ignored.values())} skipped: "
                    + "; ".join(f"{v['count']} {kind}" for kind, v in sorted(s.ignored.items(), key=lambda kv: -kv[1]["count"])),
                )
            if s.skipped:
                table.add_row("unreadable", f"[red]{len(s.skipped)} image file(s) skipped (--skip-bad), listed below[/red]")
        elif s.state == "not found":
            table.add_row("found", "[yellow]not found[/yellow]")
            table.add_row("how to get it", s.message)
        else:
            table.add_row("error", f"[red]{s.message}[/red]")
        if verify:
            failed = s.failed_checks
            if s.state != "ok":
                verdict = "[red]not checked[/red]"
            elif not s.checks:
                verdict = "no published numbers to check"
            else:
                verdict = (
                    f"[green]all {len(s.checks)} checks pass[/green]"
                    if not failed
                    else f"[red]{len(failed)} of {len(s.checks)} checks failed[/red]"
                )
            table.add_row("verify", verdict)
        console.print(table)
        if verify and s.checks:
            print_table(
                [Column("check", justify="left"), Column("result", justify="left"), Column("detail", justify="left", wrap=30)],
                [(c.name, "[green]ok[/green]" if c.ok else "[red]FAIL[/red]", c.detail) for c in s.checks],
                wide=wide,
                out=console,
            )
        for note in s.notes:
            console.print(f"note: {note}", highlight=False)
    for s in statuses:
        if s.skipped:
            kinds = ", ".join(f"{n} {kind}" for kind, n in _problem_kinds(s.skipped).most_common())
            console.print(f"{s.name}: skipped {len(s.skipped)} unreadable image(s) ({kinds}):", highlight=False)
            for line in s.skipped:
                console.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)


def _problem_kinds(skipped: Sequence[str]):
    """Unreadable-file lines ("path: problem") counted by the kind of problem."""
    from collections import Counter

    def kind(line: str) -> str:
        problem = line.split(": ", 1)[-1].lower()
        if "does not exist" in problem:
            return "missing"
        if "cannot identify image file" in problem:
            return "not a format Pillow reads"
        if "truncated" in problem or "broken data stream" in problem or "image file is" in problem:
            return "truncated or damaged"
        return "other decode errors"

    return Counter(kind(line) for line in skipped)
