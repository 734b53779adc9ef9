"""A baseline that learned nothing gets a warning, and no compressed variant is called the best beside it."""

from __future__ import annotations

import numpy as np

from dnncomp.run import _baseline_and_best, baseline_check, constant_predictor_accuracy


def _variant(name: str, accuracy: float, gzip_bytes: int) -> dict:
    return {"name": name, "accuracy": {"full": accuracy}, "size": {"gzip_bytes": gzip_bytes}}


def test_constant_predictor_is_the_most_frequent_label_rate():
    assert constant_predictor_accuracy(np.array([0, 1, 1, 2, 1])) == 0.6
    assert constant_predictor_accuracy(np.array([], dtype=np.int64)) is None


def test_a_baseline_at_the_constant_predictor_names_no_best_variant():
    # case 22 at --epochs 1 before precise BN: float 20 % on 5 balanced classes, qat "above" it
    variants = [_variant("float", 0.20, 100_000), _variant("qat", 0.2833, 30_000), _variant("cluster", 0.20, 20_000)]
    check = baseline_check(variants, 0.20)
    assert not check["holds"] and "most frequent class" in check["message"]
    assert _baseline_and_best(variants, 0.20) == {"baseline_check": check, "best_variant": None}


def test_a_trained_baseline_names_the_smallest_variant_within_a_point():
    variants = [_variant("float", 0.99, 100_000), _variant("qat", 0.985, 30_000), _variant("cluster", 0.95, 20_000)]
    result = _baseline_and_best(variants, 0.11)
    assert result["baseline_check"]["holds"] and result["baseline_check"]["message"] is None
    assert result["best_variant"]["name"] == "qat"
