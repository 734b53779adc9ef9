"""Where dataset files live, and fetching them from their public sources.

Search order: the ``data_dir`` argument (``--data-dir``), then ``$DNNCOMP_DATA_DIR``,
then the per-user cache (``$DNNCOMP_CACHE_DIR``, else ``$XDG_CACHE_HOME/dnncomp``,
else ``~/.cache/dnncomp``). Downloads go to the cache through a ``.part`` file that
is renamed into place only after its checksum matches.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError

# Tests replace this with a fake opener; nothing else in the package opens URLs.
urlopen = urllib.request.urlopen

DOWNLOAD_TIMEOUT_S = 30
_CHUNK = 1 << 20


class DatasetNotFound(DataError):
    """No search location holds the dataset and it could not be downloaded."""


@dataclass(frozen=True)
class Resource:
    """One published file: where it comes from and the checksum it must have."""

    filename: str
    url: str
    algorithm: str  # "sha256" or "md5": whatever its publishers (Keras, torchvision) list
    digest: str


@dataclass(frozen=True)
class SearchDir:
    origin: str  # "--data-dir", "$DNNCOMP_DATA_DIR", "cache"
    path: Path

    def describe(self) -> str:
        missing = "" if self.path.is_dir() else ", does not exist"
        return f"{self.path} ({self.origin}{missing})"


def cache_dir() -> Path:
    """The per-user cache: downloads and decoded arrays."""
    if os.environ.get("DNNCOMP_CACHE_DIR"):
        return Path(os.environ["DNNCOMP_CACHE_DIR"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "dnncomp"


def search_dirs(data_dir: str | os.PathLike | None = None) -> list[SearchDir]:
    dirs = []
    if data_dir is not None:
        dirs.append(SearchDir("--data-dir", Path(data_dir).expanduser()))
    if os.environ.get("DNNCOMP_DATA_DIR"):
        dirs.append(SearchDir("$DNNCOMP_DATA_DIR", Path(os.environ["DNNCOMP_DATA_DIR"]).expanduser()))
    dirs.append(SearchDir("cache", cache_dir()))
    return dirs


def show_progress(progress: bool | None) -> bool:
    """``None`` means: show progress bars when stderr is a terminal."""
    if progress is None:
        return sys.stderr.isatty()
    return progress


@contextlib.contextmanager
def progress_bar(enabled: bool, description: str, total: float | None, bytes_: bool = False) -> Iterator[Callable]:
    """Yield ``advance(amount)`` for a rich progress bar on stderr (a no-op when not ``enabled``).

    ``bytes_=True`` shows transfer size and speed instead of counts.
    """
    if not enabled:
        yield lambda amount: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = [TextColumn("{task.description}"), BarColumn()]
    columns += [DownloadColumn(), TransferSpeedColumn()] if bytes_ else [MofNCompleteColumn()]
    with Progress(*columns, TimeRemainingColumn(), console=Console(stderr=True)) as progress:
        task = progress.add_task(description, total=total)
        yield lambda amount: progress.advance(task, amount)


def file_digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def download(resource: Resource, dest_dir: Path, progress: bool | None = None) -> Path:
    """Fetch ``resource`` into ``dest_dir``, verify its checksum, and return the final path.

    Raises DataError with the URL and the reason (offline, HTTP error, checksum mismatch).
    """
    dest_dir.mkdir(parents=True, exist_ok=True)
    final = dest_dir / resource.filename
    part = dest_dir / (resource.filename + ".part")
    digest = hashlib.new(resource.algorithm)
    try:
        with urlopen(resource.url, timeout=DOWNLOAD_TIMEOUT_S) as response, open(part, "wb") as out:
            length = response.headers.get("Content-Length") if getattr(response, "headers", None) else None
            total = int(length) if length and length.isdigit() else None
            with progress_bar(show_progress(progress), f"downloading {resource.filename}", total, bytes_=True) as advance:
                for block in iter(lambda: response.read(_CHUNK), b""):
                    out.write(block)
                    digest.update(block)
                    advance(len(block))
    except (urllib.error.URLError, OSError, ValueError) as exc:
        part.unlink(missing_ok=True)
        reason = getattr(exc, "reason", None) or exc
        raise DataError(f"could not download {resource.url}: {reason}") from None
    if digest.hexdigest() != resource.digest:
        part.unlink(missing_ok=True)
        raise DataError(
            f"downloaded {resource.url} but its {resource.algorithm} is {digest.hexdigest()}, expected "
            f"{resource.digest}: the transfer was corrupted or the file changed upstream; retry, or put a good "
            f"copy of {resource.filename} in {dest_dir}"
        )
    os.replace(part, final)
    return final
