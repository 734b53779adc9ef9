"""A variant's numbers in display units (%, ms, MB), the Pareto front, and the small helpers the sections share."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..results import FLOAT_VARIANT, Accuracy, Latency, Mcu, Size, Variant, wilson_interval
from ..study import STUDY_TEST_IMAGES
from .load import RunData


def pareto_front(points: Sequence[tuple[float | None, float | None]]) -> list[int]:
    """Indices of the points no other point dominates, lowest cost first.

    A point is (cost, value): smaller cost is better (size, latency), larger value
    is better (accuracy). A dominates B when it is no worse in both and strictly
    better in one. Points with a missing coordinate are never on the front.
    """
    valid = [
        (i, float(c), float(v))
        for i, (c, v) in enumerate(points)
        if c is not None and v is not None and math.isfinite(c) and math.isfinite(v)
    ]
    front = []
    for i, cost, value in valid:
        dominated = any((c2 <= cost and v2 >= value) and (c2 < cost or v2 > value) for j, c2, v2 in valid if j != i)
        if not dominated:
            front.append((cost, -value, i))
    return [i for _, _, i in sorted(front)]


def num(value: Any) -> float | None:
    """A finite float, or None for anything else (None, NaN, a bool, a string)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def ci_pct(fraction: float | None, n: int | None) -> tuple[float, float] | None:
    """The 95% Wilson interval of an accuracy measured on n images, in percent; None without both."""
    if fraction is None or not n:
        return None
    interval = wilson_interval(round(fraction * n), int(n))
    return None if interval is None else (100 * interval[0], 100 * interval[1])


@dataclass
class VariantRow:
    """One variant's numbers, flattened, in display units (%, ms, MB)."""

    name: str
    runtime: str
    artifact: str | None
    acc_full_pct: float | None
    full_count: int | None
    acc_first_n_pct: float | None
    first_n_count: int | None
    first_n_ci_pct: tuple[float, float] | None
    full_ci_pct: tuple[float, float] | None
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    mean_ms: float | None
    min_ms: float | None
    max_ms: float | None
    threads: int | None
    file_mb: float | None
    gzip_mb: float | None
    sparsity_pct: float | None
    file_ratio: float | None  # float file size / this file size
    gzip_ratio: float | None  # float gzip size / this gzip size
    params: int | None = None  # from the flatbuffer (anatomy)
    macs: int | None = None  # multiply-accumulates per image (anatomy)
    arena_kb: float | None = None  # TFLM tensor arena, kB (1e3 bytes), `run --mcu`
    flash_kb: float | None = None  # TFLM flash: model + alignment + C array, kB
    tflm_agreement_pct: float | None = None  # TFLM and LiteRT top-1 agree on this share of test images

    @property
    def comparable(self) -> bool:
        """LiteRT rows share a runtime; the Keras baseline (model.predict, .h5) does not."""
        return self.runtime != "keras"

    @property
    def best_accuracy_pct(self) -> float | None:
        """Full test set if measured, else the first-N subset."""
        return self.acc_full_pct if self.acc_full_pct is not None else self.acc_first_n_pct

    @property
    def best_accuracy_ci_pct(self) -> tuple[float, float] | None:
        return self.full_ci_pct if self.acc_full_pct is not None else self.first_n_ci_pct


def variant_row(v: Variant, reference: Variant | None = None) -> VariantRow:
    """One variant as a row; ``reference`` (the float model) gives the size ratios."""
    accuracy, latency, size = v.accuracy or Accuracy(), v.latency or Latency(), v.size or Size()
    mcu = v.mcu or Mcu()
    ref_size = (reference.size if reference else None) or Size()
    ref_file, ref_gzip = num(ref_size.file_bytes), num(ref_size.gzip_bytes)
    full, first = num(accuracy.full), num(accuracy.first_n)
    ci = accuracy.first_n_ci95
    if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(num(c) is not None for c in ci):
        first_ci = (100 * float(ci[0]), 100 * float(ci[1]))
    else:
        first_ci = ci_pct(first, accuracy.first_n_count)
    file_bytes, gzip_bytes = num(size.file_bytes), num(size.gzip_bytes)
    sparsity = num(v.sparsity)
    return VariantRow(
        name=v.name,
        runtime=v.runtime or "litert",
        artifact=v.artifact,
        acc_full_pct=None if full is None else 100 * full,
        full_count=accuracy.full_count,
        acc_first_n_pct=None if first is None else 100 * first,
        first_n_count=accuracy.first_n_count,
        first_n_ci_pct=first_ci,
        full_ci_pct=ci_pct(full, accuracy.full_count),
        p50_ms=num(latency.p50_ms),
        p90_ms=num(latency.p90_ms),
        p99_ms=num(latency.p99_ms),
        mean_ms=num(latency.mean_ms),
        min_ms=num(latency.min_ms),
        max_ms=num(latency.max_ms),
        threads=latency.threads,
        file_mb=None if file_bytes is None else file_bytes / 1e6,
        gzip_mb=None if gzip_bytes is None else gzip_bytes / 1e6,
        sparsity_pct=None if sparsity is None else 100 * sparsity,
        file_ratio=ref_file / file_bytes if ref_file and file_bytes else None,
        gzip_ratio=ref_gzip / gzip_bytes if ref_gzip and gzip_bytes else None,
        params=v.anatomy.params if v.anatomy else None,
        macs=v.anatomy.macs if v.anatomy else None,
        arena_kb=None if mcu.arena_bytes is None else mcu.arena_bytes / 1e3,
        flash_kb=None if mcu.flash_bytes is None else mcu.flash_bytes / 1e3,
        tflm_agreement_pct=None if mcu.top1_agreement is None else 100 * mcu.top1_agreement,
    )


def variant_rows(run: RunData) -> list[VariantRow]:
    """The run's variants (this machine's) as rows, size ratios against its float model."""
    reference = run.variant(FLOAT_VARIANT)
    return [variant_row(v, reference) for v in run.variants]


def ci_text(ci: tuple[float, float] | None) -> str:
    return "" if ci is None else f" [{ci[0]:.1f}, {ci[1]:.1f}]"


def threads_text(threads: Any) -> str:
    if not threads:
        return "? threads"
    return f"{threads} thread" + ("" if threads == 1 else "s")


def first_n_of(rows: Iterable[VariantRow]) -> int:
    return next((int(r.first_n_count) for r in rows if r.first_n_count), STUDY_TEST_IMAGES)


def full_n_of(rows: Iterable[VariantRow]) -> int | None:
    return next((int(r.full_count) for r in rows if r.full_count), None)
