"""QAT and a BatchNormalization after an activation or a pooling (case 03's kind): folded forward into the Dense after it."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.tf


def _model(keras, pool: str, gamma_sign: float = 1.0):
    layers = keras.layers
    inputs = keras.Input((8, 8, 1))
    x = layers.Conv2D(4, 3, activation="relu")(inputs)
    x = layers.BatchNormalization(name="bn")(x)
    x = (layers.MaxPooling2D(2) if pool == "max" else layers.GlobalAveragePooling2D())(x)
    if pool == "max":
        x = layers.Flatten()(x)
    model = keras.Model(inputs, layers.Dense(3, name="head")(x))
    rng = np.random.default_rng(0)
    bn = model.get_layer("bn")
    bn.set_weights([gamma_sign * rng.uniform(0.5, 2, 4), rng.normal(size=4), rng.uniform(0, 0.2, 4), rng.uniform(0.01, 0.3, 4)])
    return model


def test_a_batch_norm_after_relu_and_pooling_folds_into_the_dense_after_it_exactly():
    from dnncomp.compress.quantize import fold_batch_norms_forward, quantize_aware
    from dnncomp.keras_env import import_keras

    _, keras = import_keras()
    x = np.random.default_rng(1).uniform(0, 1, (6, 8, 8, 1)).astype(np.float32)
    for pool, sign in (("max", 1.0), ("global-average", -1.0)):  # an average commutes with any scale
        model = _model(keras, pool, sign)
        folded, names = fold_batch_norms_forward(model)
        assert names == ["bn>head"] and "bn" not in [layer.name for layer in folded.layers], pool
        np.testing.assert_allclose(folded(x).numpy(), model(x).numpy(), rtol=1e-4, atol=1e-5)
    negative = _model(keras, "max", -1.0)  # max pooling does not commute with a negative scale: left as it is
    assert fold_batch_norms_forward(negative) == (negative, [])
    wrapped = quantize_aware(_model(keras, "max"))
    assert wrapped.folded == ["bn>head"] and wrapped.kept_as_float_ops == {}  # nothing left as a float op
