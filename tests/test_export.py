"""Keras -> LiteRT conversion options, on a tiny model."""

from __future__ import annotations

import numpy as np
import pytest

from dnncomp.errors import ModelError

pytestmark = [pytest.mark.slow, pytest.mark.tf]


@pytest.fixture(scope="module")
def tiny():
    from dnncomp.keras_env import import_keras

    _, keras = import_keras()
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input(shape=(8, 8, 1)),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    x = np.random.default_rng(0).random((32, 8, 8, 1), dtype=np.float32)
    return model, x


def _run(tflite: bytes, x: np.ndarray) -> np.ndarray:
    from tinymodels import interpreter

    it = interpreter(tflite)
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    it.set_tensor(inp["index"], x.astype(inp["dtype"]))
    it.invoke()
    return it.get_tensor(out["index"])


def test_plain_float_conversion_matches_keras(tiny):
    from dnncomp.export import to_tflite

    model, x = tiny
    tflite = to_tflite(model)
    assert tflite[4:8] == b"TFL3"
    np.testing.assert_allclose(_run(tflite, x[:1]), model.predict(x[:1], verbose=0), rtol=1e-5, atol=1e-6)


def test_full_integer_with_representative_data_and_int8_io(tiny):
    from dnncomp.export import to_tflite
    from tinymodels import interpreter, ops_with_input_dtypes

    model, x = tiny
    tflite = to_tflite(
        model,
        optimizations=["DEFAULT"],
        representative_data=x,
        supported_ops=["TFLITE_BUILTINS_INT8"],
        inference_input_type="int8",
        inference_output_type=np.int8,
    )
    it = interpreter(tflite)
    assert it.get_input_details()[0]["dtype"] == np.int8 and it.get_output_details()[0]["dtype"] == np.int8
    assert all(dtypes[0] == "int8" for name, dtypes in ops_with_input_dtypes(tflite) if name in ("CONV_2D", "FULLY_CONNECTED"))


def test_float16_weights(tiny):
    from dnncomp.export import to_tflite
    from tinymodels import interpreter

    model, _ = tiny
    tflite = to_tflite(model, optimizations=["DEFAULT"], target_spec_dtypes=["float16"])
    assert any(t["dtype"] == np.float16 for t in interpreter(tflite).get_tensor_details())


def test_sparsity_flag_is_accepted(tiny):
    from dnncomp.export import to_tflite

    model, x = tiny
    tflite = to_tflite(model, sparsity=True)  # dense weights: the converter keeps them dense
    np.testing.assert_allclose(_run(tflite, x[:1]), model.predict(x[:1], verbose=0), rtol=1e-5, atol=1e-6)


def test_bad_options_are_model_errors(tiny):
    from dnncomp.export import to_tflite

    model, _ = tiny
    with pytest.raises(ModelError, match="unknown converter optimization 'FASTEST'"):
        to_tflite(model, optimizations=["FASTEST"])
    with pytest.raises(ModelError, match="unknown converter ops set"):
        to_tflite(model, supported_ops=["INT4"])
    with pytest.raises(ModelError, match="unknown dtype"):
        to_tflite(model, inference_input_type="int3")
