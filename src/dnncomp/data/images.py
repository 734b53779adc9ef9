"""Decoding image files to uint8 arrays as a person sees them, in parallel, with clear errors for bad files.

Every format Pillow opens is read (PNG, JPEG, BMP, PPM/PGM, WEBP, GIF, TIFF, ...), in any mode:

- EXIF orientation is applied (``PIL.ImageOps.exif_transpose``), as photo viewers do: a phone JPEG
  stored sideways with Orientation=6 is read upright.
- 16-bit images (``I;16*``, and ``I`` images whose values fit 0..65535, which is how Pillow opens
  16-bit PGM) are scaled by 255/65535; other 32-bit integer images by their dtype's range
  (-2**31..2**31-1 -> 0..255). Float (``F``) images are taken as 0..1 when every value is in
  0..1, else as 0..255 (clipped). Nothing is clipped at 255 the way ``convert("L")`` does.
- Transparent pixels are composited on black (``rgb * alpha / 255``), for LA, RGBA, PA and
  palette images with a transparent colour: what is hidden behind full transparency is never
  read, and a fully opaque image is unchanged. Black is the background of the digit-style
  images (MNIST) these folders most often hold.
- Palette images become RGB (or grey when every colour they use is grey); CMYK, YCbCr, LAB,
  HSV become RGB with Pillow's conversion; bilevel ("1") becomes 0/255 grey. Multi-frame files
  (animated GIF/WEBP, multi-page TIFF) are read at their first frame.

What was done is counted per kind (:data:`DECODE_EVENTS`) so the loader can say it once.

Decoding is Python-bound for small images (open, parse header, convert), so it is
spread over worker processes; threads gain little under the GIL (see
docs/BENCHMARKS.md, "Dataset loading"). Workers are started with "spawn": forking
a parent that has TensorFlow's threads running can deadlock.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
from collections import Counter
from collections.abc import Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from ..errors import DataError
from ..preprocess import resize_images
from .sources import progress_bar, show_progress


def _openable_extensions() -> tuple[str, ...]:
    """Every extension Pillow registers for a format it can open (not save-only, not a stub)."""
    Image.init()  # load every plugin, so registered_extensions() is complete

    def openable(fmt: str) -> bool:
        if fmt == "MPO":  # multi-picture JPEGs: opened by the JPEG plugin, registered under MPO
            return True
        opener = Image.OPEN.get(fmt, (None,))[0]
        if opener is None:
            return False  # save-only (PDF, Palm)
        # Stub formats (HDF5, GRIB, BUFR, WMF) open only with an external handler installed.
        return not (isinstance(opener, type) and issubclass(opener, ImageFile.StubImageFile))

    return tuple(sorted(ext.lower() for ext, fmt in Image.registered_extensions().items() if openable(fmt)))


IMAGE_EXTENSIONS = _openable_extensions()
# Which plugin to try first for an extension: with every plugin loaded, Image.open would otherwise
# try them in registration order (five failed attempts before PPM: twice the decode time of GTSRB).
_FORMAT_BY_EXTENSION = {
    ext.lower(): ("JPEG" if fmt == "MPO" else fmt)
    for ext, fmt in Image.registered_extensions().items()
    if ext.lower() in IMAGE_EXTENSIONS
}
# Image.resize((w, h)) with no filter argument, as the study did: bicubic for RGB and L images.
RESIZE_METHOD = "PIL.Image.resize default filter (bicubic)"
_GREY_MODES = {"1", "L", "LA", "La", "I", "F"}  # and every "I;16*"
# Below this many images a pool costs more to start than it saves.
PARALLEL_MIN_IMAGES = 2000

# What decoding did to some images, by key; the loader turns the counts into notes.
DECODE_EVENTS = {
    "exif_orientation": "carried an EXIF orientation; rotated/flipped upright as viewers show them",
    "scaled_16bit": "are 16-bit; scaled to 0..255 by 255/65535",
    "scaled_32bit": "are 32-bit integer; scaled to 0..255 by the int32 range",
    "float_0_1": "are float (mode F) with values in 0..1; scaled by 255",
    "float_0_255": "are float (mode F) with values outside 0..1; read as 0..255, clipped",
    "alpha_composited": "have transparent pixels; composited on black",
    "cmyk": "are CMYK; converted to RGB with Pillow's conversion (no colour profile applied)",
    "multi_frame": "have several frames or pages; the first was read",
}


def decode_notes(counts: dict[str, int], total: int | None = None) -> list[str]:
    """``{"exif_orientation": 12}`` -> ``["12 images carried an EXIF orientation; ..."]``."""
    of = f" of {total}" if total else ""
    return [f"{n}{of} images {DECODE_EVENTS.get(key, key)}" for key, n in sorted(counts.items()) if n]


@dataclass
class DecodedImages:
    """Decoded images in input order (``None`` where a file could not be read), the failures,
    and how many images each :data:`DECODE_EVENTS` conversion applied to."""

    arrays: list[np.ndarray | None]
    failures: list[tuple[str, str]] = field(default_factory=list)  # (path, problem)
    events: Counter = field(default_factory=Counter)


def _is_grey_mode(mode: str) -> bool:
    return mode in _GREY_MODES or mode.startswith("I;16")


def _scaled(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Linear map of lo..hi to 0..255, rounded; values outside are clipped."""
    x = (values.astype(np.float64) - lo) * (255.0 / (hi - lo))
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _composite_on_black(pixels: np.ndarray) -> tuple[np.ndarray, bool]:
    """(H, W, C+1) uint8 with alpha last -> (H, W, C) with colour * alpha / 255; and whether any pixel was transparent."""
    colour, alpha = pixels[..., :-1], pixels[..., -1:]
    if alpha.min() == 255:
        return np.ascontiguousarray(colour), False
    out = (colour.astype(np.uint16) * alpha + 127) // 255
    return out.astype(np.uint8), True


def _pixels(img: Image.Image, events: Counter) -> np.ndarray:
    """A loaded, upright Pillow image in any mode -> uint8 (H, W) grey or (H, W, 3) RGB, as a person sees it."""
    mode = img.mode
    if mode.startswith("I;16"):
        events["scaled_16bit"] += 1
        return _scaled(np.asarray(img), 0, 65535)
    if mode == "I":
        values = np.asarray(img)
        if values.size and values.min() >= 0 and values.max() <= 65535:  # 16-bit data (PGM, some PNG/TIFF)
            events["scaled_16bit"] += 1
            return _scaled(values, 0, 65535)
        events["scaled_32bit"] += 1
        return _scaled(values, -(2**31), 2**31 - 1)
    if mode == "F":
        values = np.nan_to_num(np.asarray(img, dtype=np.float32), nan=0.0)
        if values.size and values.min() >= 0 and values.max() <= 1:
            events["float_0_1"] += 1
            return _scaled(values, 0, 1)
        events["float_0_255"] += 1
        return _scaled(values, 0, 255)
    if mode == "1":
        return np.asarray(img.convert("L"))
    if mode in ("L", "RGB"):
        return np.asarray(img)
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in img.info
        pixels = np.asarray(img.convert("RGBA" if has_alpha else "RGB"))
        if has_alpha:
            pixels, composited = _composite_on_black(pixels)
            events["alpha_composited"] += composited
        if (pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all():
            return np.ascontiguousarray(pixels[..., 0])  # a grey palette (a GIF of grey digits) stays grey
        return pixels
    if mode in ("LA", "La", "RGBA", "RGBa"):
        pixels, composited = _composite_on_black(np.asarray(img.convert("LA" if mode[0] == "L" else "RGBA")))
        events["alpha_composited"] += composited
        return pixels[..., 0] if pixels.shape[-1] == 1 else pixels
    if mode == "CMYK":
        events["cmyk"] += 1
    return np.asarray(img.convert("RGB"))  # CMYK, YCbCr, LAB, HSV, RGBX...


def _is_grey_palette(img: Image.Image) -> bool:
    if img.mode not in ("P", "PA"):
        return False
    used = np.unique(np.asarray(img if img.mode == "P" else img.getchannel(0)))
    palette = np.asarray(img.getpalette("RGB") or [], dtype=np.uint8).reshape(-1, 3)
    used = used[used < len(palette)]
    colours = palette[used]
    return bool(len(colours)) and bool((colours[:, 0] == colours[:, 1]).all() and (colours[:, 1] == colours[:, 2]).all())


def _open(path: str | os.PathLike) -> Image.Image:
    """Image.open, trying the plugin of the file's extension first, then every plugin (a PNG named .jpg)."""
    fmt = _FORMAT_BY_EXTENSION.get(os.path.splitext(str(path))[1].lower())
    if fmt is not None:
        try:
            return Image.open(path, formats=(fmt,))
        except UnidentifiedImageError:
            pass
    return Image.open(path)


def upright_size(path: str | os.PathLike) -> tuple[int, int]:
    """(height, width) of an image file as a viewer shows it, from its header (no pixels decoded):
    EXIF orientations 5 to 8 (a quarter turn) swap the stored height and width."""
    with _open(path) as img:
        height, width = img.height, img.width
        if img.getexif().get(0x0112, 1) in (5, 6, 7, 8):
            height, width = width, height
    return height, width


def decode_image(
    path: str | os.PathLike, size: tuple[int, int] | None = None, grey: bool = False, events: Counter | None = None
) -> np.ndarray:
    """One image file -> uint8 HxWxC (C=3, or 1 when ``grey`` and the file is greyscale), upright.

    Any format and mode Pillow opens, converted as the module docstring says. ``size`` =
    (height, width) resizes with ``Image.resize((width, height))`` and Pillow's default filter.
    ``events`` (a Counter) counts what was converted (keys of :data:`DECODE_EVENTS`). Raises
    whatever Pillow raises for unreadable files.
    """
    events = events if events is not None else Counter()
    with _open(path) as img:
        img.load()
        if getattr(img, "n_frames", 1) > 1:
            events["multi_frame"] += 1
        if img.getexif().get(0x0112, 1) in range(2, 9):  # 1 is upright; anything else is not an orientation
            events["exif_orientation"] += 1
            img = ImageOps.exif_transpose(img)
        grey_file = _is_grey_mode(img.mode) or _is_grey_palette(img)
        if img.mode in ("L", "RGB"):  # most files: nothing to convert, so resize in Pillow without a copy
            if size is not None and img.size != (size[1], size[0]):
                img = img.resize((size[1], size[0]))
            arr = np.asarray(img)
        else:
            arr = _pixels(img, events)
    if arr.ndim == 3 and grey and grey_file:  # a grey palette with transparency came back as RGB
        arr = np.ascontiguousarray(arr[..., 0])
    arr = arr[..., None] if arr.ndim == 2 else arr
    if size is not None and arr.shape[:2] != tuple(size):
        arr = resize_images(arr[None], tuple(size))[0]
    if arr.shape[2] == 1 and not (grey and grey_file):
        arr = np.repeat(arr, 3, axis=2)  # after resizing: one channel to resize, not three
    return arr


def _problem(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, OSError) else f"{type(exc).__name__}: {text}"


def _decode_chunk(paths: Sequence[str], size, grey) -> tuple[list, list, Counter]:
    arrays, failures, events = [], [], Counter()
    for path in paths:
        try:
            arrays.append(decode_image(path, size, grey, events))
        except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError... for bad files
            arrays.append(None)
            failures.append((path, f"cannot read image: {_problem(exc)}"))
    return arrays, failures, events


def _decode_chunk_packed(paths: Sequence[str], size, grey) -> tuple:
    """_decode_chunk for worker processes: same-shape images travel back as one array,
    which pickles several times faster than a list of small ones."""
    arrays, failures, events = _decode_chunk(paths, size, grey)
    good = [a for a in arrays if a is not None]
    if good and all(a.shape == good[0].shape for a in good):
        return np.stack(good), [a is not None for a in arrays], failures, events
    return arrays, None, failures, events


def _unpack(result) -> tuple[list, list, Counter]:
    packed, present, failures, events = result
    if present is None:
        return packed, failures, events
    views = iter(packed)
    return [next(views) if ok else None for ok in present], failures, events


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
    events: Counter = Counter()
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
                if executor == "process"
                else pool.map(_decode_chunk, chunks, [size] * n, [grey] * n)
            )
        try:
            for chunk_paths, (chunk_arrays, chunk_failures, chunk_events) in zip(chunks, results):
                arrays.extend(chunk_arrays)
                failures.extend(chunk_failures)
                events.update(chunk_events)
                advance(len(chunk_paths))
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
    return DecodedImages(arrays, failures, events)


def check_failures(decoded: DecodedImages, skip_bad: bool) -> list[str]:
    """Raise DataError on the first bad file unless ``skip_bad``; return "path: problem" lines."""
    if decoded.failures and not skip_bad:
        path, problem = decoded.failures[0]
        more = f" (and {len(decoded.failures) - 1} more bad files)" if len(decoded.failures) > 1 else ""
        raise DataError(
            f"{path}: {problem}{more}; fix or remove it, or pass --skip-bad (skip_bad=True in Python) to skip unreadable images"
        )
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
    n_grey = sum(a.shape[2] == 1 for a in arrays)
    if channels == 3 and n_grey:
        notes.append(f"{what}: {n_grey} of {len(arrays)} images are greyscale among colour ones; read as RGB (grey repeated)")
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


# Files that are never images, whatever their extension: written by operating systems beside the user's files.
_SYSTEM_FILES = {
    ".ds_store": ".DS_Store files (macOS folder settings)",
    "thumbs.db": "Thumbs.db files (Windows thumbnails)",
    "ehthumbs.db": "Thumbs.db files (Windows thumbnails)",
    "desktop.ini": "desktop.ini files (Windows folder settings)",
    "icon\r": "Icon files (macOS folder icons)",
}
_SYSTEM_DIRS = {"__macosx": "__MACOSX folders (macOS zip metadata)", "@eadir": "@eaDir folders (Synology thumbnails)"}


def not_an_image(path: Path) -> str | None:
    """Why a file is skipped without being opened (its kind, for counting), or None for an image file.

    AppleDouble ``._*`` companions (macOS metadata, with the image's own extension), ``.DS_Store``,
    ``Thumbs.db``, ``desktop.ini``, other hidden files, and files whose extension no Pillow
    format opens (``README.txt``, ``labels.csv``).
    """
    name = path.name
    if name.startswith("._"):
        return "AppleDouble ._* files (macOS metadata, not images)"
    if name.lower() in _SYSTEM_FILES:
        return _SYSTEM_FILES[name.lower()]
    if name.startswith("."):
        return "hidden files"
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        return f"non-image files ({path.suffix.lower() or 'no extension'})"
    return None


def skipped_dir_kind(path: Path) -> str | None:
    """Why a directory is not a class folder (hidden, ``__MACOSX``, ``@eaDir``), or None."""
    if path.name.lower() in _SYSTEM_DIRS:
        return _SYSTEM_DIRS[path.name.lower()]
    if path.name.startswith("."):
        return "hidden folders"
    return None


def count_ignored(ignored: dict[str, dict] | None, kind: str, path: Path) -> None:
    """Add ``path`` to ``ignored[kind]`` = {"count": n, "example": first path}."""
    if ignored is None:
        return
    entry = ignored.setdefault(kind, {"count": 0, "example": str(path)})
    entry["count"] += 1


def list_images(directory: Path, ignored: dict[str, dict] | None = None) -> list[Path]:
    """Image files directly in ``directory`` (by extension, any case, any format Pillow opens), sorted by name.

    Files that are not images (:func:`not_an_image`) and sub-folders are skipped and, when
    ``ignored`` is given, counted there by kind (see :func:`count_ignored`).
    """
    images = []
    for entry in sorted(directory.iterdir()):
        if entry.is_dir():
            count_ignored(ignored, skipped_dir_kind(entry) or "sub-folders inside class folders (not read)", entry)
        elif not entry.is_file():
            continue
        elif (kind := not_an_image(entry)) is not None:
            count_ignored(ignored, kind, entry)
        else:
            images.append(entry)
    return images


def describe_ignored(ignored: dict[str, dict]) -> list[str]:
    """``{"hidden files": {"count": 2, "example": "a/.x"}}`` -> ``["2 hidden files (e.g. a/.x)"]``, most first."""
    items = sorted(ignored.items(), key=lambda kv: (-kv[1]["count"], kv[0]))
    return [f"{v['count']} {kind} (e.g. {v['example']})" for kind, v in items]
