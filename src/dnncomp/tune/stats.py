"""How much accuracy a variant loses against the float baseline, with its confidence interval.

Both models are scored on the same validation images, so the comparison is paired: only
the images on which they disagree carry information (McNemar's discordant pairs). The
interval is the Agresti-Min (2005) adjusted Wald interval for a difference of paired
proportions (0.5 added to each cell of the 2x2 table), which keeps a sensible width when
the models disagree on few or no images. Pure numpy: no TensorFlow, no Optuna.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

Z95 = 1.959963984540054
METHOD = "paired: Agresti-Min adjusted Wald 95 % interval of the accuracy difference on the same validation images"


def paired_drop(baseline_correct: np.ndarray, variant_correct: np.ndarray, z: float = Z95) -> dict[str, Any]:
    """The accuracy drop (baseline minus variant, in percentage points) and its two-sided interval.

    ``baseline_correct`` and ``variant_correct`` are booleans per validation image (same
    images, same order). Returns ``{drop_points, low_points, high_points, images,
    baseline_only, variant_only, method}``; ``baseline_only`` counts images only the
    baseline gets right. Raises ValueError for arrays of different lengths or none.
    """
    base = np.asarray(baseline_correct, dtype=bool).reshape(-1)
    variant = np.asarray(variant_correct, dtype=bool).reshape(-1)
    if base.shape != variant.shape or base.size == 0:
        raise ValueError(
            f"paired_drop: {base.size} baseline and {variant.size} variant results; need the same images, at least one"
        )
    n = int(base.size)
    baseline_only = int(np.sum(base & ~variant))
    variant_only = int(np.sum(~base & variant))
    adjusted_n = n + 2.0
    b, c = baseline_only + 0.5, variant_only + 0.5
    centre = (b - c) / adjusted_n
    variance = max(0.0, ((b + c) / adjusted_n - centre * centre) / adjusted_n)
    half = z * math.sqrt(variance)
    return {
        "drop_points": round(100.0 * (baseline_only - variant_only) / n, 4),
        "low_points": round(100.0 * (centre - half), 4),
        "high_points": round(100.0 * (centre + half), 4),
        "images": n,
        "baseline_only": baseline_only,
        "variant_only": variant_only,
        "method": METHOD,
    }
