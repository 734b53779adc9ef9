"""Datasets stored as one image file per sample (GTSRB, image folders): list the files,
then decode them in parallel or take the arrays from the decoded-array cache."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ..errors import DataError
from .base import Dataset
from .cache import MISSING, DecodedCache, fingerprint, stat_files
from .images import RESIZE_METHOD, DecodedImages, check_failures, decode_images, decode_notes, describe_ignored, stack_images

SPLITS = ("train", "test")


class ImageEntry(NamedTuple):  # a tuple: GTSRB lists 52,000 of them on every load
    path: str
    label: int
    listed_in: tuple[str, int] | None = None  # (annotation file name, row number), for messages


def load_image_splits(
    *,
    kind: str,
    root: Path,
    splits: dict[str, Sequence[ImageEntry]],
    class_names: list[str],
    annotation_files: Sequence[Path] = (),
    image_size: tuple[int, int] | None = None,
    skip_bad: bool = False,
    grey: bool = False,
    options: dict[str, Any] | None = None,
    progress: bool | None = None,
    meta: dict[str, Any] | None = None,
    executor: str = "process",
) -> Dataset:
    """Decode (or fetch from cache) the images of each split into a Dataset.

    A listed file that does not exist, or that cannot be decoded, is an error naming
    it, or with ``skip_bad`` a line in ``meta["skipped"]``. ``meta["from_cache"]``
    says whether the arrays came from the decoded-array cache; ``meta["decode"]`` counts
    what decoding converted (EXIF orientation applied, 16-bit scaled, alpha composited...:
    keys of ``images.DECODE_EVENTS``), also said in ``meta["notes"]``. Files a loader skipped
    as not images, passed in ``meta["ignored"]`` (kind -> {"count", "example"}), are said
    in the notes too.
    """
    entries = [e for split in SPLITS for e in splits[split]]
    stats = stat_files([e.path for e in entries] + [str(p) for p in annotation_files])
    missing = [
        (e.path, "listed in {} row {}, does not exist".format(*e.listed_in) if e.listed_in else "does not exist")
        for e, (_, size, _) in zip(entries, stats)
        if size == MISSING
    ]
    if missing and not skip_bad:
        check_failures(DecodedImages([], missing), skip_bad=False)

    cache = DecodedCache(kind, root, image_size, fingerprint(stats, root), {**(options or {}), "grey": grey})
    cached = cache.load()
    if cached is not None:
        arrays, info = cached
        if info["skipped"] and not skip_bad:  # cached from a --skip-bad load; this caller wants the error
            failures = [tuple(line.split(": ", 1)) for line in info["skipped"]]
            check_failures(DecodedImages([], failures), skip_bad=False)
        from_cache, cache_note = True, None
    else:
        arrays, info, cache_note = _decode(entries, missing, image_size, grey, skip_bad, progress, kind, splits, cache)
        from_cache = False

    meta = dict(meta or {})
    ignored_notes = [f"skipped, not images: {line}" for line in describe_ignored(meta.get("ignored") or {})]
    meta = {
        **meta,
        "source": str(root),
        "image_size": list(arrays["x_train"].shape[1:3]),
        "resize_method": info["resize_method"],
        "skipped": info["skipped"],
        "decode": dict(info.get("decode", {})),
        "notes": ignored_notes + info["notes"] + ([cache_note] if cache_note else []),
        "from_cache": from_cache,
        "cache_file": str(cache.path),
    }
    for split in SPLITS:
        labels = arrays[f"y_{split}"]
        if labels.size and (labels.min() < 0 or labels.max() >= len(class_names)):
            raise DataError(f"{root}: {split} labels range {labels.min()}..{labels.max()}; expected 0..{len(class_names) - 1}")
    return Dataset(name=kind, class_names=list(class_names), meta=meta, **arrays)


def _decode(entries, missing, image_size, grey, skip_bad, progress, kind, splits, cache):
    missing_paths = {path for path, _ in missing}
    todo = [e for e in entries if e.path not in missing_paths]
    start = time.perf_counter()
    decoded = decode_images([e.path for e in todo], image_size, grey=grey, progress=progress, description=f"decoding {kind}")
    skipped = check_failures(DecodedImages(decoded.arrays, missing + decoded.failures), skip_bad)
    good = {e.path: a for e, a in zip(todo, decoded.arrays) if a is not None}

    kept = {split: [e for e in splits[split] if e.path in good] for split in SPLITS}
    stacked, notes = stack_images([good[e.path] for split in SPLITS for e in kept[split]], image_size, kind)
    n_train = len(kept["train"])
    arrays = {
        "x_train": stacked[:n_train],
        "y_train": np.array([e.label for e in kept["train"]], dtype=np.int64),
        "x_test": stacked[n_train:],
        "y_test": np.array([e.label for e in kept["test"]], dtype=np.int64),
    }
    info = {
        "skipped": skipped,
        "decode": dict(decoded.events),
        "notes": decode_notes(decoded.events, len(good)) + notes,
        "resize_method": RESIZE_METHOD if image_size or notes else None,  # notes: mixed sizes were resized
        "decode_seconds": round(time.perf_counter() - start, 2),
    }
    return arrays, info, cache.save(arrays, info)
