"""What the registry knows about each published dataset: where it comes from, how to
find and read it, and the numbers ``dnncomp datasets --verify`` checks."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .base import Dataset
from .sources import Resource


@dataclass(frozen=True)
class Expected:
    """The published dataset's numbers. ``image_shape`` None: any size (it is resized on load)."""

    train: int
    test: int
    num_classes: int
    channels: int
    image_shape: tuple[int, int, int] | None = None
    train_per_class: Sequence[int] | None = None
    test_per_class: Sequence[int] | None = None


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    title: str
    provides: str  # what a user puts in a data directory, for messages
    find: Callable[[Path], Path | None]  # the source inside a search location, or None
    read: Callable[..., Dataset]  # read(source, image_size=None, skip_bad=False, progress=None)
    expected: Expected
    resources: tuple[Resource, ...] = ()
    # After downloading ``resources`` into the cache: lay them out so that ``find(cache)`` succeeds.
    install: Callable[[list[Path], Path], None] | None = None

    def how_to_get(self, cache: Path) -> str:
        urls = " ".join(r.url for r in self.resources)
        return (
            f"download {urls} and put {'them' if len(self.resources) > 1 else 'it'} in {cache} "
            f"(dnncomp lays {'them' if len(self.resources) > 1 else 'it'} out on the next load), "
            f"or pass --data-dir DIR or set DNNCOMP_DATA_DIR to a directory holding {self.provides}"
        )
