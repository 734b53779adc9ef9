"""Datasets by name, where they are found, and ``load_dataset``."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..preprocess import resize_images
from . import cifar10, gtsrb, mnist
from .base import Dataset
from .folder import read_folder
from .images import RESIZE_METHOD
from .npz import NPZ_PREFIX, read_test_npz
from .sources import DatasetNotFound, SearchDir, cache_dir, file_digest, search_dirs
from .sources import download as download_resource
from .spec import DatasetSpec

REGISTRY: dict[str, DatasetSpec] = {spec.name: spec for spec in (mnist.SPEC, cifar10.SPEC, gtsrb.SPEC)}
DATASETS: tuple[str, ...] = tuple(REGISTRY)
FOLDER_PREFIX = "folder:"


def normalize_name(name: str) -> str:
    """ "CIFAR-10", "cifar_10", "Cifar 10" -> "cifar10" (the one dataset-name normalisation); other names,
    paths and folders too (``./mnist`` is a folder), are kept as given."""
    key = "".join(ch for ch in str(name).lower() if ch not in "-_ \t")
    return key if key in REGISTRY else name


def get_spec(name: str) -> DatasetSpec:
    key = normalize_name(name)
    if key not in REGISTRY:
        import difflib

        close = difflib.get_close_matches(key.lower(), DATASETS, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise DataError(
            f"unknown dataset {name!r}{hint}; choose one of {', '.join(DATASETS)}, or folder:PATH for an image-folder tree"
        )
    return REGISTRY[key]


def folder_root(name: str) -> Path | None:
    """The root of ``folder:<path>`` or of a name that is a path to a directory; else None."""
    if name.startswith(FOLDER_PREFIX):
        return Path(name[len(FOLDER_PREFIX) :]).expanduser()
    if normalize_name(name) not in REGISTRY and (os.sep in name or Path(name).expanduser().is_dir()):
        return Path(name).expanduser()
    return None


def _fetch(spec: DatasetSpec, download: bool, progress: bool | None) -> Path | None:
    """Put the dataset in the cache from its published files (already there, or downloaded)."""
    cache = cache_dir()
    paths = []
    for resource in spec.resources:
        path = cache / resource.filename
        if path.is_file() and file_digest(path, resource.algorithm) == resource.digest:
            paths.append(path)
        elif download:
            paths.append(download_resource(resource, cache, progress))
        else:
            return None
    if spec.install is not None:
        spec.install(paths, cache)
    return spec.find(cache)


def locate(spec: DatasetSpec, data_dir=None, download: bool = True, progress: bool | None = None) -> tuple[Path, str]:
    """The dataset's source (file or directory) and which search location held it.

    Searches ``data_dir``, ``$DNNCOMP_DATA_DIR`` and the cache; then fetches the
    published files into the cache. Raises DatasetNotFound with one line saying
    what was expected, where, and how to provide it.
    """
    dirs = search_dirs(data_dir)
    for location in dirs:
        if location.path.exists():
            source = spec.find(location.path)
            if source is not None:
                return source, location.origin
    reason = "downloading is off"
    try:
        source = _fetch(spec, download, progress)
        if source is not None:
            return source, "downloaded"
    except DataError as exc:
        reason = f"download failed: {exc}"
    raise DatasetNotFound(_not_found(spec, dirs, reason))


def _not_found(spec: DatasetSpec, dirs: list[SearchDir], reason: str) -> str:
    where = ", ".join(d.describe() for d in dirs)
    return f"{spec.name}: {spec.provides} not found in {where}; {reason}. To provide it: {spec.how_to_get(cache_dir())}"


def _check_image_size(image_size) -> tuple[int, int] | None:
    if image_size is None:
        return None
    try:
        height, width = (int(v) for v in image_size)
    except (TypeError, ValueError):
        raise DataError(f"image_size must be (height, width), not {image_size!r}") from None
    if height < 1 or width < 1:
        raise DataError(f"image_size must be positive, not {image_size!r}")
    return height, width


def load_dataset(
    name: str,
    data_dir: str | os.PathLike | None = None,
    image_size: tuple[int, int] | None = None,
    skip_bad: bool = False,
    download: bool = True,
    *,
    progress: bool | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> Dataset:
    """Load a dataset as uint8 NHWC train and test images, int64 labels and class names.

    ``name``: "mnist", "cifar10", "gtsrb", or "folder:<path>" (or a path) for an
    image-folder tree, split with ``test_fraction`` and ``seed`` unless it has
    train/ and test/ folders. ``image_size`` = (height, width) resizes every image
    with ``PIL.Image.resize((width, height))`` and Pillow's default filter.
    ``skip_bad`` skips unreadable images instead of raising, listing them in
    ``meta["skipped"]``. ``download`` fetches missing published datasets into the
    per-user cache. ``progress`` shows progress bars (default: when stderr is a terminal).
    """
    size = _check_image_size(image_size)
    start = time.perf_counter()
    root = folder_root(name)
    if name.startswith(NPZ_PREFIX):  # a prepared test split (what `--on` sends to a device)
        dataset = read_test_npz(name[len(NPZ_PREFIX) :])
        dataset.meta["found_in"] = "path"
        if size is not None and dataset.x_test.shape[1:3] != size:
            dataset.x_test = resize_images(dataset.x_test, size)
            dataset.x_train = dataset.x_train.reshape((0, *dataset.x_test.shape[1:]))
    elif root is not None:
        dataset = read_folder(root, size, skip_bad, progress, test_fraction=test_fraction, seed=seed)
        dataset.meta["found_in"] = "path"
    else:
        spec = get_spec(name)
        source, origin = locate(spec, data_dir, download, progress)
        dataset = spec.read(source, image_size=size, skip_bad=skip_bad, progress=progress)
        dataset.meta["found_in"] = origin
        if size is not None and dataset.x_train.shape[1:3] != size:  # whole-array formats: resize after reading
            dataset.x_train = resize_images(dataset.x_train, size)
            dataset.x_test = resize_images(dataset.x_test, size)
            dataset.meta.update(image_size=list(size), resize_method=RESIZE_METHOD)
    dataset.meta.setdefault("skipped", [])
    dataset.meta.setdefault("notes", [])
    dataset.meta.setdefault("image_size", list(dataset.x_train.shape[1:3]))
    dataset.meta["counts"] = {"train": int(len(dataset.y_train)), "test": int(len(dataset.y_test))}
    dataset.meta["load_seconds"] = round(time.perf_counter() - start, 3)
    _check_consistent(dataset)
    return dataset


def _check_consistent(dataset: Dataset) -> None:
    for split in ("train", "test"):
        x, y = getattr(dataset, f"x_{split}"), getattr(dataset, f"y_{split}")
        assert x.dtype == np.uint8 and x.ndim == 4 and len(x) == len(y) and y.dtype == np.int64, (split, x.shape, y.dtype)
