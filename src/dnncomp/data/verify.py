"""Checks of a loaded dataset against its published numbers (``dnncomp datasets --verify``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .base import Dataset
from .spec import Expected


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def _counts_check(name: str, labels: np.ndarray, num_classes: int, expected: Sequence[int] | None) -> Check | None:
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
        checks.append(
            Check(
                f"{split} label range",
                labels.size > 0 and low >= 0 and high < e.num_classes,
                f"{low}..{high} (expected within 0..{e.num_classes - 1})",
            )
        )
    for check in (
        _counts_check("train per class", dataset.y_train, e.num_classes, e.train_per_class),
        _counts_check("test per class", dataset.y_test, e.num_classes, e.test_per_class),
    ):
        if check is not None:
            checks.append(check)
    return checks


def verify_folder(dataset: Dataset) -> list[Check]:
    """Checks of an image folder, which has no published numbers: every file read, every class in
    both splits, labels in range, one image shape, uint8 pixels."""
    meta = dataset.meta
    n_classes = dataset.num_classes
    skipped = len(meta.get("skipped") or [])
    read = len(dataset.y_train) + len(dataset.y_test)
    checks = [
        Check(
            "images read",
            skipped == 0 and read > 0,
            f"{read} read" + (f", {skipped} unreadable skipped (--skip-bad)" if skipped else ", none unreadable"),
        ),
        Check("classes", n_classes >= 2, f"{n_classes} (expected at least 2)"),
    ]
    for split, labels in (("train", dataset.y_train), ("test", dataset.y_test)):
        counts = np.bincount(labels, minlength=n_classes)[:n_classes] if labels.size else np.zeros(n_classes, int)
        empty = [dataset.class_names[i] for i in np.flatnonzero(counts == 0)]
        detail = (
            f"{int(counts.min())}..{int(counts.max())} images per class"
            if not empty
            else f"no {split} images for {', '.join(empty[:5])}" + (" ..." if len(empty) > 5 else "")
        )
        checks.append(Check(f"{split} images per class", not empty, detail))
    shape = tuple(dataset.x_train.shape[1:])
    checks.append(Check("image shape", shape == tuple(dataset.x_test.shape[1:]), f"{shape} in train and test"))
    checks.append(Check("pixel dtype", dataset.x_train.dtype == np.uint8 == dataset.x_test.dtype, str(dataset.x_train.dtype)))
    return checks
