"""``npz:PATH``: a prepared test split in one compressed .npz (what ``--on`` sends to a device).

The file holds ``x_test`` (uint8 NHWC), ``y_test`` (integer labels) and ``class_names`` (strings);
it is read with ``allow_pickle=False``, so a file holding Python objects is refused, never run.
No TensorFlow here: this runs on the device.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import DataError
from .base import Dataset

NPZ_PREFIX = "npz:"


def write_test_npz(path: str | os.PathLike, x_test: np.ndarray, y_test: np.ndarray, class_names) -> Path:
    """Write ``x_test`` (uint8, N x H x W x C), ``y_test`` (N,) and ``class_names`` to ``path`` atomically."""
    from ..fileio import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:  # a file object: np.savez would otherwise append ".npz" to the temp name
            np.savez_compressed(
                handle,
                x_test=np.ascontiguousarray(x_test, dtype=np.uint8),
                y_test=np.asarray(y_test, dtype=np.int64),
                class_names=np.asarray([str(c) for c in class_names], dtype=str),
            )
    return path


def read_test_npz(path: str | os.PathLike) -> Dataset:
    """The test split in ``path`` as a Dataset with an empty training split.

    Raises DataError when the file is missing, not an npz, holds objects, or lacks
    ``x_test``/``y_test``/``class_names`` of the right shapes.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"{path}: npz test split not found")
    try:
        with np.load(path, allow_pickle=False) as z:
            x, y, names = z["x_test"], z["y_test"], [str(n) for n in z["class_names"]]
    except KeyError as exc:
        raise DataError(f"{path}: npz test split lacks {exc}; it needs x_test, y_test and class_names") from exc
    except (OSError, ValueError) as exc:  # ValueError: an object array (pickle) or not an npz at all
        raise DataError(f"{path}: not a readable npz test split ({exc})") from exc
    if x.dtype != np.uint8 or x.ndim not in (3, 4) or len(x) != len(y):
        raise DataError(
            f"{path}: x_test must be uint8 N x H x W [x C] with one label per image, got {x.dtype} {x.shape}, {len(y)} labels"
        )
    if x.ndim == 3:
        x = x[..., None]
    empty = np.zeros((0, *x.shape[1:]), dtype=np.uint8)
    return Dataset(
        name=f"{NPZ_PREFIX}{path}",
        x_train=empty,
        y_train=np.zeros((0,), dtype=np.int64),
        x_test=x,
        y_test=y.astype(np.int64),
        class_names=names,
        meta={"source": str(path)},
    )
