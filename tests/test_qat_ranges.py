"""QAT starts from the activation ranges the model has (recover fine-tuning), not TFMOT's [-6, 6]."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = [pytest.mark.tf]


def _variables(model, suffix: str) -> dict[str, float]:
    return {v.name: float(v.numpy()) for v in model.variables if v.name.endswith(suffix) and v.shape.rank == 0}


def test_calibration_sets_each_activation_range_to_what_the_model_computes():
    from dnncomp.compress.qat_ranges import calibrate_activation_ranges
    from dnncomp.compress.quantize import quantize_aware
    from dnncomp.keras_env import import_keras

    tf, keras = import_keras()
    tf.random.set_seed(0)
    model = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(16, activation="relu", name="hidden"), keras.layers.Dense(3, name="logits")]
    )
    model.layers[1].set_weights([model.layers[1].get_weights()[0] * 10.0, model.layers[1].get_weights()[1]])  # ranges beyond 6
    x = np.random.default_rng(0).uniform(0, 1, size=(200, 8)).astype(np.float32)
    hidden = keras.Model(model.input, model.get_layer("hidden").output)(x).numpy()
    logits = model(x).numpy()
    qat = quantize_aware(model).model
    before = _variables(qat, "post_activation_max:0")
    assert before and all(value == 6.0 for value in before.values())  # TFMOT's start
    others = {v.name: v.numpy().copy() for v in qat.variables if not v.name.endswith(("_min:0", "_max:0"))}
    info = calibrate_activation_ranges(qat, x, seed=0, images=200)
    assert info["images"] == 200
    (hidden_max,) = [v for k, v in _variables(qat, "post_activation_max:0").items() if "hidden" in k]
    assert hidden_max == pytest.approx(hidden.max(), rel=0.03)  # int8 kernels: a few per cent off the float value
    (low,), (high,) = (
        [v for k, v in _variables(qat, f"post_activation_{end}:0").items() if "logits" in k] for end in ("min", "max")
    )
    assert low == pytest.approx(min(logits.min(), 0.0), rel=0.03) and high == pytest.approx(max(logits.max(), 0.0), rel=0.03)
    # Only the quantizers' ranges changed: kernels, biases and step counters are as they were.
    assert len(others) >= 4
    for v in qat.variables:
        if v.name in others:
            np.testing.assert_array_equal(v.numpy(), others[v.name], err_msg=v.name)
