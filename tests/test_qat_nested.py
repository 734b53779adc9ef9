"""QAT folds a Conv->BatchNormalization pair that sits inside a nested backbone, as it does at top level."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.tf]


def test_batch_norm_inside_a_nested_backbone_is_folded_not_left_float():
    from dnncomp.compress.quantize import quantize_aware
    from dnncomp.keras_env import import_keras

    _, keras = import_keras()
    backbone = keras.Sequential(
        [
            keras.layers.Conv2D(8, 3, use_bias=False, input_shape=(28, 28, 1), name="conv"),
            keras.layers.BatchNormalization(name="bn"),
            keras.layers.ReLU(name="relu"),
            keras.layers.GlobalAveragePooling2D(name="pool"),
        ],
        name="backbone",
    )
    inputs = keras.Input((28, 28, 1))
    model = keras.Model(inputs, keras.layers.Dense(10, name="head")(backbone(inputs)))

    wrapped = quantize_aware(model)

    assert "bn" not in wrapped.kept_as_float_ops  # a fold TFMOT does, not a float op left behind
    assert {"conv", "bn", "head"} <= set(wrapped.wrapped)
