"""Decoding image files to uint8 arrays, in parallel, with clear errors for bad files.

Decoding is Python-bound for small images (open, parse header, convert), so it is
spread over worker processes; threads gain little under the GIL (see
docs/BENCHMARKS.md, "Dataset loading"). Workers are started with "spawn": forking
a parent that has TensorFlow's threads running can deadlock.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
from concurrent.futures.process import BrokenProcessPool
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from ..errors import DataError
from ..preprocess import resize_images
from .sources import progress_bar, show_progress

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".ppm", ".bmp")
# Image.resize((w, h)) with no filter argument, as the study did: bicubic for RGB and L images.
RESIZE_METHOD = "PIL.Image.resize default filter (bicubic)"
_GREY_MODES = {"1", "L", "LA", "I", "I;16", "F"}
# Below this many images a pool costs more to start than it saves.
PARALLEL_MIN_IMAGES = 2000


@dataclass
class DecodedImages:
    """Decoded images in input order (``None`` where a file could not be read) and the failures."""

    arrays: list[np.ndarray | None]
    failures: list[tuple[str, str]] = field(default_factory=list)  # (path, problem)


def decode_image(path: str | os.PathLike, size: tuple[int, int] | None = None, grey: bool = False) -> np.ndarray:
    """One image file -> uint8 HxWxC (C=3, or 1 when ``grey`` and the file is greyscale).

    ``size`` = (height, width) resizes with ``Image.resize((width, height))`` and Pillow's
    default filter. Raises whatever Pillow raises for unreadable files.
    """
    with Image.open(path) as img:
        img.load()
        mode = "L" if grey and img.mode in _GREY_MODES else "RGB"
        if img.mode != mode:
            img = img.convert(mode)
        if size is not None and img.size != (size[1], size[0]):
            img = img.resize((size[1], size[0]))
        arr = np.asarray(img, dtype=np.uint8)
    return arr[..., None] if arr.ndim == 2 else arr


def _problem(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, OSError) else f"{type(exc).__name__}: {text}"


def _decode_chunk(paths: Sequence[str], size, grey) -> tuple[list, list]:
    arrays, failures = [], []
    for path in paths:
        try:
            arrays.append(decode_image(path, size, grey))
        except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError... for bad files
            arrays.append(None)
            failures.append((path, f"cannot read image: {_problem(exc)}"))
    return arrays, failures


def _decode_chunk_packed(paths: Sequence[str], size, grey) -> tuple:
    """_decode_chunk for worker processes: same-shape images travel back as one array,
    which pickles several times faster than a list of small ones."""
    arrays, failures = _decode_chunk(paths, size, grey)
    good = [a for a in arrays if a is not None]
    if good and all(a.shape == good[0].shape for a in good):
        return np.stack(good), [a is not None for a in arrays], failures
    return arrays, None, failures


def _unpack(result) -> tuple[list, list]:
    packed, present, failures = result
    if present is None:
        return packed, failures
    views = iter(packed)
    return [next(views) if ok else None for ok in present], failures


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def decode_images(
    paths: Sequence[str | os.PathLike],
    size: tuple[int, int] | None = None,
    *,
    grey: bool = False,
    workers: int | None = None,
    executor: str = "process",
    progress: bool | None = None,
    description: str = "decoding images",
) -> DecodedImages:
    """Decode many files, in parallel when there are enough of them.

    ``executor`` is "process" (default), "thread" or "serial". Bad files do not stop
    the others: they come back as ``None`` with a (path, problem) in ``failures``.
    """
    paths = [str(p) for p in paths]
    if executor == "process":
        try:
            return _decode_all(paths, size, grey, workers, "process", progress, description)
        except (BrokenProcessPool, PermissionError):
            pass  # no worker processes allowed here (sandbox, restricted semaphores): use threads
        executor = "thread"
    return _decode_all(paths, size, grey, workers, executor, progress, description)


def _decode_all(paths, size, grey, workers, executor, progress, description) -> DecodedImages:
    workers = workers or default_workers()
    if executor == "serial" or workers == 1 or len(paths) < PARALLEL_MIN_IMAGES:
        executor, workers = "serial", 1
    chunk = max(64, min(1024, len(paths) // (workers * 8) or 1))
    chunks = [paths[i : i + chunk] for i in range(0, len(paths), chunk)]
    arrays: list = []
    failures: list = []
    with progress_bar(show_progress(progress), description, total=len(paths)) as advance:
        if executor == "serial":
            results = map(lambda c: _decode_chunk(c, size, grey), chunks)
            pool = None
        else:
            if executor == "process":
                pool = concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
            elif executor == "thread":
                pool = concurrent.futures.ThreadPoolExecutor(workers)
            else:
                raise ValueError(f"executor must be 'process', 'thread' or 'serial', not {executor!r}")
            n = len(chunks)
            results = (
                map(_unpack, pool.map(_decode_chunk_packed, chunks, [size] * n, [grey] * n))
                if executor == "process" else pool.map(_decode_chunk, chunks, [size] * n, [grey] * n)
            )
        try:
            for chunk_paths, (chunk_arrays, chunk_failures) in zip(chunks, results):
                arrays.extend(chunk_arrays)
                failures.extend(chunk_failures)
                advance(len(chunk_paths))
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
    return DecodedImages(arrays, failures)


def check_failures(decoded: DecodedImages, skip_bad: bool) -> list[str]:
    """Raise DataError on the first bad file unless ``skip_bad``; return "path: problem" lines."""
    if decoded.failures and not skip_bad:
        path, problem = decoded.failures[0]
        more = f" (and {len(decoded.failures) - 1} more bad files)" if len(decoded.failures) > 1 else ""
        raise DataError(f"{path}: {problem}{more}; fix or remove it, or pass skip_bad=True (--skip-bad) to skip bad images")
    return [f"{path}: {problem}" for path, problem in decoded.failures]


def stack_images(arrays: Sequence[np.ndarray], size: tuple[int, int] | None, what: str) -> tuple[np.ndarray, list[str]]:
    """Stack decoded images into one NHWC uint8 array; return it with notes for the user.

    Images of different sizes with no requested ``size`` are resized to the most
    common size (with the same Pillow resize); greyscale images among colour ones
    become RGB. ``arrays`` is a list of decoded images, without ``None``.
    """
    notes: list[str] = []
    if not arrays:
        return np.zeros((0, *(size or (0, 0)), 3), dtype=np.uint8), notes
    channels = 1 if all(a.shape[2] == 1 for a in arrays) else 3
    shapes = Counter(a.shape[:2] for a in arrays)
    target = size or shapes.most_common(1)[0][0]
    if len(shapes) > 1 and size is None:
        notes.append(
            f"{what}: images have {len(shapes)} different sizes; all were resized to the most common, "
            f"{target[0]}x{target[1]} (pass image_size to choose another)"
        )
    out = np.empty((len(arrays), target[0], target[1], channels), dtype=np.uint8)
    for i, arr in enumerate(arrays):
        if arr.shape[:2] != tuple(target):
            arr = resize_images(arr[None], tuple(target))[0]
        out[i] = arr if arr.shape[2] == channels else np.repeat(arr, channels, axis=2)
    return out, notes


def list_images(directory: Path) -> list[Path]:
    """Image files directly in ``directory`` (by extension, any case), sorted by name."""
    return sorted(p for p in directory.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
