"""Cache of decoded image arrays (GTSRB, image folders), so a second load takes a second.

Entries are plain ``.npz`` files (read with ``allow_pickle=False``: no code can
come out of the cache). An entry is keyed by the dataset kind, the source
directory, the requested image size, the resize method and Pillow's version, any
loader options, and a fingerprint of the source files (relative path, size and
mtime of every image and annotation file), so editing, adding or removing a
source file makes a new entry. Writing an entry removes older entries for the
same source and size.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import PIL

from ..fileio import atomic_path
from .images import RESIZE_METHOD
from .sources import cache_dir

CACHE_FORMAT = 2  # 2: images read upright (EXIF), 16-bit scaled, alpha composited, any Pillow format
MISSING = -1  # size recorded for a file that does not exist


def stat_files(paths: Iterable[Path | str]) -> list[tuple[str, int, int]]:
    """(path, size, mtime_ns) of each file; size is MISSING for files that do not exist."""
    out = []
    for path in paths:
        try:
            st = os.stat(path)
            out.append((str(path), st.st_size, st.st_mtime_ns))
        except FileNotFoundError:
            out.append((str(path), MISSING, 0))
    return out


def fingerprint(stats: Iterable[tuple[str, int, int]], root: Path) -> str:
    digest = hashlib.sha256()
    root_text = str(root)
    for path, size, mtime in stats:
        rel = path[len(root_text) + 1 :] if path.startswith(root_text) else path
        digest.update(f"{rel}\0{size}\0{mtime}\n".encode())
    return digest.hexdigest()


def _short(text: str, n: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


class DecodedCache:
    """One cache entry: ``load()`` returns the arrays and info dict, or None on a miss."""

    def __init__(
        self,
        kind: str,
        source: Path,
        image_size: tuple[int, int] | None,
        source_fingerprint: str,
        options: dict[str, Any] | None = None,
        directory: Path | None = None,
    ):
        source = Path(source).resolve()
        size_tag = f"{image_size[0]}x{image_size[1]}" if image_size else "native"
        key = json.dumps(
            {
                "format": CACHE_FORMAT,
                "kind": kind,
                "source": str(source),
                "image_size": list(image_size) if image_size else None,
                "resize": RESIZE_METHOD,
                "pillow": PIL.__version__,
                "options": options or {},
                "files": source_fingerprint,
            },
            sort_keys=True,
        )
        self.directory = Path(directory) if directory else cache_dir() / "decoded"
        self.prefix = f"{kind}-{_short(str(source), 10)}-{size_tag}-"
        self.path = self.directory / f"{self.prefix}{_short(key, 16)}.npz"

    def load(self) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
        if not self.path.is_file():
            return None
        try:
            with np.load(self.path, allow_pickle=False) as npz:
                arrays = {name: npz[name] for name in npz.files if name != "info_json"}
                info = json.loads(str(npz["info_json"]))
        except Exception:  # a damaged entry is a miss; it is rewritten below
            self.path.unlink(missing_ok=True)
            return None
        return arrays, info

    def save(self, arrays: dict[str, np.ndarray], info: dict[str, Any]) -> str | None:
        """Write the entry; return None, or why it could not be written (a full disk is not fatal)."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            with atomic_path(self.path) as tmp, open(tmp, "wb") as fh:
                np.savez(fh, info_json=np.array(json.dumps(info)), **arrays)
            for stale in self.directory.glob(f"{self.prefix}*.npz"):
                if stale != self.path:
                    stale.unlink(missing_ok=True)
        except OSError as exc:
            return f"decoded-array cache not written to {self.directory}: {exc}"
        return None
