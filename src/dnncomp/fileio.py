"""Atomic writes and hashing: no half-written file ever carries a final name."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import DnncompError, StorageError

TEMP_GLOB = ".*.part*"  # what atomic_path's temporary names look like; a dead writer may leave one behind


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike, size_hint: int | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it into place only on success.

    The temporary name keeps the final suffix (``x.tmp123.keras``) because some
    writers (Keras, h5py) pick the format from the extension. ``size_hint`` (bytes
    about to be written) makes a disk-full message say how much space is needed.

    Raises StorageError (one line naming ``final``) when the disk is full, the
    file system is read-only, permission is missing or ``final`` is a directory;
    the temporary file is removed and an existing ``final`` is left untouched.
    """
    final = Path(final)
    if final.is_dir():
        raise StorageError(f"{final}: is a directory; give a file name (e.g. {final / ('out' + (final.suffix or ''))})")
    tmp_path: Path | None = None
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{final.stem}.", suffix=f".part{final.suffix}", dir=final.parent)
        os.close(fd)
        tmp_path = Path(tmp)
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; artifacts get the usual permissions
        yield tmp_path
        os.replace(tmp_path, final)
    except OSError as exc:
        if exc.errno not in _STORAGE_ERRNOS:
            raise
        written = tmp_path.stat().st_size if tmp_path is not None and tmp_path.exists() else 0
        if tmp_path is not None and tmp_path.exists():
            tmp_path.unlink()  # before measuring what is free: the partial write is not kept
        raise storage_error(final, exc, needed=max(size_hint or 0, written) or None) from exc
    finally:
        if tmp_path is not None and tmp_path.exists():
            tmp_path.unlink()


_STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EISDIR, errno.ENOTDIR}


def storage_error(path: str | os.PathLike, exc: OSError, needed: int | None = None) -> DnncompError | OSError:
    """One line for a failed write of ``path``: which file, why, and what to do (``exc`` itself if not a storage fault).

    ``needed`` is the size the write needed in bytes (known for bytes, a lower bound for a
    writer that stopped part way); the free space is read from the file system.
    """
    path = Path(path)
    if exc.errno not in _STORAGE_ERRNOS:
        return exc
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        free = _free_bytes(path)
        need = f"needs {'at least ' if needed is None else ''}{_mb(needed or 0)}" if needed else "needs more space"
        have = f", {_mb(free)} free" if free is not None else ""
        return StorageError(f"{path}: disk full ({need}{have}); free some space or write elsewhere; no existing file was changed")
    if exc.errno == errno.EISDIR:
        return StorageError(f"{path}: is a directory; give a file name")
    reason = {errno.EROFS: "read-only file system", errno.ENOTDIR: "a parent is not a directory"}.get(
        exc.errno, "permission denied"
    )
    where = exc.filename or path
    return StorageError(f"{path}: cannot write ({reason}: {where}); write elsewhere (--out)")


def _free_bytes(path: Path) -> int | None:
    for candidate in (path, *path.parents):
        try:
            return shutil.disk_usage(candidate).free
        except OSError:
            continue
    return None


def _mb(size: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(final: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(final, size_hint=len(data)) as tmp:
        tmp.write_bytes(data)
    return Path(final)


def atomic_write_text(final: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(final, text.encode("utf-8"))


def atomic_write_json(final: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(final, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(obj: Any):
    # numpy scalars and arrays appear in results; JSON gets plain Python values.
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
