"""MNIST from the Keras ``mnist.npz``: x_train uint8 (60000, 28, 28), y_train, x_test, y_test."""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataError
from .base import Dataset
from .sources import Resource
from .spec import DatasetSpec, Expected

FILENAME = "mnist.npz"
ARRAYS = ("x_train", "y_train", "x_test", "y_test")
CLASS_NAMES = [str(d) for d in range(10)]

RESOURCE = Resource(
    FILENAME,
    "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz",
    "sha256",
    "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1",  # Keras' file_hash
)


def find(location: Path) -> Path | None:
    if location.is_file() and location.suffix == ".npz":
        return location
    candidate = location / FILENAME
    return candidate if candidate.is_file() else None


def _checked_arrays(path: Path, npz) -> dict[str, np.ndarray]:
    missing = [name for name in ARRAYS if name not in npz.files]
    if missing:
        raise DataError(
            f"{path}: missing array(s) {', '.join(missing)} (has {', '.join(npz.files) or 'none'}); "
            "expected x_train, y_train, x_test, y_test as in the Keras mnist.npz"
        )
    arrays = {}
    for name in ARRAYS:
        try:
            arrays[name] = npz[name]
        except ValueError:  # object arrays need pickle, which is never allowed here
            raise DataError(f"{path}: {name} holds pickled Python objects, not numbers; refused") from None
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.dtype != np.uint8 or x.ndim != 3 or x.shape[1:] != (28, 28):
            raise DataError(f"{path}: x_{split} is {x.dtype} {x.shape}; expected uint8 (N, 28, 28)")
        if not np.issubdtype(y.dtype, np.integer) or y.shape != (x.shape[0],):
            raise DataError(f"{path}: y_{split} is {y.dtype} {y.shape}; expected integer labels of shape ({x.shape[0]},)")
        if y.size and (y.min() < 0 or y.max() > 9):
            raise DataError(f"{path}: y_{split} has labels {y.min()}..{y.max()}; expected digits 0..9")
    return arrays


def read(source: Path, image_size=None, skip_bad: bool = False, progress=None) -> Dataset:
    try:
        npz = np.load(source, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{source}: not a readable .npz file ({exc})") from None
    if not hasattr(npz, "files"):
        raise DataError(f"{source}: holds a single array, not the arrays x_train, y_train, x_test, y_test")
    try:
        with npz:
            arrays = _checked_arrays(source, npz)
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise DataError(f"{source}: damaged .npz file ({exc})") from None
    return Dataset(
        name="mnist",
        x_train=arrays["x_train"][..., None],
        y_train=arrays["y_train"].astype(np.int64),
        x_test=arrays["x_test"][..., None],
        y_test=arrays["y_test"].astype(np.int64),
        class_names=list(CLASS_NAMES),
        meta={"source": str(source), "format": "Keras mnist.npz"},
    )


SPEC = DatasetSpec(
    name="mnist",
    title="MNIST",
    provides=FILENAME,
    find=find,
    read=read,
    resources=(RESOURCE,),
    expected=Expected(
        train=60000,
        test=10000,
        num_classes=10,
        channels=1,
        image_shape=(28, 28, 1),
        train_per_class=(5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949),
        test_per_class=(980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009),
    ),
)
