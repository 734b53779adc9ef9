"""Checks of a loaded dataset against its published numbers (``dnncomp datasets --verify``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from .base import Dataset
from .spec import Expected


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def _counts_check(name: str, labels: np.ndarray, num_classes: int, expected: Optional[Sequence[int]]) -> Optional[Check]:
    if expected is None:
        return None
    counts = np.bincount(labels, minlength=num_classes)[:num_classes].tolist() if labels.size else [0] * num_classes
    wrong = [f"class {i}: {got} (expected {want})" for i, (got, want) in enumerate(zip(counts, expected)) if got != want]
    return Check(name, not wrong, "as published" if not wrong else "; ".join(wrong[:3]) + (" ..." if len(wrong) > 3 else ""))


def verify_dataset(dataset: Dataset, expected: Expected) -> list[Check]:
    """Counts, class count, image shape, label range and per-class counts; one Check each."""
    e = expected
    n_train, n_test = len(dataset.y_train), len(dataset.y_test)
    checks = [
        Check("train images", n_train == e.train, f"{n_train} (expected {e.train})"),
        Check("test images", n_test == e.test, f"{n_test} (expected {e.test})"),
        Check("classes", dataset.num_classes == e.num_classes, f"{dataset.num_classes} (expected {e.num_classes})"),
    ]
    shape = tuple(dataset.x_train.shape[1:])
    same_shape = shape == tuple(dataset.x_test.shape[1:])
    if e.image_shape is not None:
        ok = same_shape and shape == e.image_shape
        checks.append(Check("image shape", ok, f"{shape} (expected {e.image_shape})"))
    else:
        ok = same_shape and shape[-1] == e.channels
        checks.append(Check("image shape", ok, f"{shape} (expected {e.channels} channels, any size)"))
    checks.append(Check("pixel dtype", dataset.x_train.dtype == np.uint8 == dataset.x_test.dtype, str(dataset.x_train.dtype)))
    for split, labels in (("train", dataset.y_train), ("test", dataset.y_test)):
        low, high = (int(labels.min()), int(labels.max())) if labels.size else (0, -1)
        checks.append(Check(f"{split} label range", labels.size > 0 and low >= 0 and high < e.num_classes,
                            f"{low}..{high} (expected within 0..{e.num_classes - 1})"))
    for check in (
        _counts_check("train per class", dataset.y_train, e.num_classes, e.train_per_class),
        _counts_check("test per class", dataset.y_test, e.num_classes, e.test_per_class),
    ):
        if check is not None:
            checks.append(check)
    return checks
