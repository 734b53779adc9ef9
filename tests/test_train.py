"""Baseline training settings, validation splits, saving, safe loading and the study's Keras timing."""

from __future__ import annotations

import numpy as np
import pytest

from dnncomp.errors import ModelError
from dnncomp.models import get_model_spec
from dnncomp.train import parse_validation, split_validation, training_settings


def test_study_settings_and_overrides():
    assert training_settings("study-mnist") == {
        "epochs": 50,
        "batch_size": 32,
        "patience": 5,
        "validation": "last:0.2",
        "seed": 0,
    }
    assert training_settings("study-gtsrb", epochs=3, seed=7)["validation"] == "random:0.25"
    assert training_settings(get_model_spec("study-cifar10"), batch_size=64, patience=2) == {
        "epochs": 50,
        "batch_size": 64,
        "patience": 2,
        "validation": "last:0.2",
        "seed": 0,
    }
    with pytest.raises(ModelError):
        training_settings("study-mnist", epochs=0)
    with pytest.raises(ModelError, match="last:F"):
        parse_validation("first:0.2")


def test_last_split_is_keras_validation_split():
    train, val = split_validation(60000, "last:0.2")
    assert (train[0], train[-1], val[0], val[-1]) == (0, 47999, 48000, 59999)
    train, val = split_validation(11, "last:0.2")  # Keras: split_at = ceil(11 * 0.8) = 9
    assert list(val) == [9, 10]


def test_random_split_is_seeded_disjoint_and_a_quarter():
    train, val = split_validation(39209, "random:0.25", seed=3)
    assert len(val) == 9803 and len(train) + len(val) == 39209
    assert not set(train) & set(val)
    again, _ = split_validation(39209, "random:0.25", seed=3)
    other, _ = split_validation(39209, "random:0.25", seed=4)
    assert np.array_equal(train, again) and not np.array_equal(train, other)
    assert len(split_validation(10, "none")[1]) == 0


@pytest.fixture(scope="module")
def baseline():
    from tinymodels import tiny_baseline

    return tiny_baseline()


@pytest.mark.tf
@pytest.mark.slow
def test_train_save_and_load_round_trip(baseline, tmp_path):
    from dnncomp.train import load_baseline, model_inputs, train_baseline

    path, x, y = baseline
    spec = get_model_spec("study-mnist")
    model, history = train_baseline(spec, x[:64], y[:64], epochs=2, batch_size=16, patience=5, seed=1, verbose=0)
    assert set(history) == {"loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "elapsed_s"}
    assert len(history["loss"]) == 2 and 0 < history["elapsed_s"][0] < history["elapsed_s"][1]
    assert all(isinstance(v, float) for v in history["val_accuracy"])
    # same seed, same data: the same first-epoch loss
    _, again = train_baseline(spec, x[:64], y[:64], epochs=1, batch_size=16, seed=1, verbose=0)
    assert again["loss"][0] == pytest.approx(history["loss"][0], rel=1e-5)

    keras_model = load_baseline(path)
    h5_model = load_baseline(path.with_suffix(".h5"))
    assert keras_model.optimizer is None  # loaded without compiling
    for a, b in zip(keras_model.get_weights(), h5_model.get_weights()):
        assert np.array_equal(a, b)
    inputs = model_inputs(spec, x[:8])
    np.testing.assert_allclose(keras_model.predict(inputs, verbose=0), h5_model.predict(inputs, verbose=0), rtol=1e-6)
    # the .h5 carries Adam's state, so it is about three times the float weights, as the study's file was
    weights_bytes = 4 * keras_model.count_params()
    assert 2.5 * weights_bytes < path.with_suffix(".h5").stat().st_size < 3.5 * weights_bytes
    assert not list(path.parent.glob(".*part*"))  # no temporary files left behind


@pytest.mark.tf
@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:You are saving your model as an HDF5 file")
@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_load_refuses_lambda_layers(tmp_path, suffix):
    from dnncomp.keras_env import import_keras
    from dnncomp.train import load_baseline

    _, keras = import_keras()
    model = keras.Sequential(
        [keras.Input(shape=(4,)), keras.layers.Lambda(lambda t: t * 2, name="doubler"), keras.layers.Dense(2)]
    )
    path = tmp_path / f"evil{suffix}"
    model.save(path)
    with pytest.raises(ModelError, match="Lambda layers \\(doubler\\)"):
        load_baseline(path)


def test_load_errors_are_model_errors(tmp_path):
    from dnncomp.train import load_baseline

    with pytest.raises(ModelError, match="not found"):
        load_baseline(tmp_path / "missing.keras")
    (tmp_path / "junk.keras").write_bytes(b"not a zip")
    with pytest.raises(ModelError, match="not a readable Keras model"):
        load_baseline(tmp_path / "junk.keras")
    (tmp_path / "model.pb").write_bytes(b"x")
    with pytest.raises(ModelError, match="expected a .keras or .h5"):
        load_baseline(tmp_path / "model.pb")


def test_model_inputs_checks_float_shapes():
    from dnncomp.train import model_inputs

    spec = get_model_spec("study-gtsrb")
    x = model_inputs(spec, np.zeros((2, 40, 50, 3), np.uint8))  # resized with PIL to the model's 30x30
    assert x.shape == (2, 30, 30, 3) and x.dtype == np.float32
    with pytest.raises(ModelError, match="does not match"):
        model_inputs(spec, np.zeros((2, 32, 32, 3), np.float32))
    grey = np.full((2, 30, 30, 1), 51, np.uint8)  # grey images are repeated into the colour model's 3 channels
    assert np.allclose(model_inputs(spec, grey), 0.2) and model_inputs(spec, grey).shape == (2, 30, 30, 3)


@pytest.mark.tf
@pytest.mark.slow
def test_keras_predict_latency_times_one_image_per_call(baseline):
    from dnncomp.train import keras_predict_latency, load_baseline, model_inputs

    path, x, _ = baseline
    model = load_baseline(path)
    inputs = model_inputs(get_model_spec("study-mnist"), x[:5])
    stats = keras_predict_latency(model, inputs)
    assert stats["runtime"] == "keras" and stats["count"] == 5
    assert 0 < stats["min_ms"] <= stats["p50_ms"] <= stats["max_ms"]
    assert keras_predict_latency(model, inputs[0], repeats=3)["count"] == 3  # one image, repeated


@pytest.mark.slow
@pytest.mark.tf
@pytest.mark.realdata
def test_a_short_scheduled_training_predicts_above_chance(real_data_dir):
    """One short epoch leaves Keras' BatchNorm moving averages near their initial 0 and 1 (momentum 0.99);
    without recalibration the model predicts one class for every image. Precise BN fixes that."""
    from dnncomp.data import load_dataset
    from dnncomp.train import model_inputs, train_scheduled

    data = load_dataset("mnist", data_dir=real_data_dir)
    spec = get_model_spec("tiny-mnist")
    settings = training_settings(spec, epochs=1, batch_size=32)
    model, _ = train_scheduled(
        spec,
        data.x_train[:960],
        data.y_train[:960],
        epochs=1,
        batch_size=32,
        schedule=settings["schedule"],
        validation="stratified:0.1",
        verbose=0,
    )
    predictions = np.argmax(model.predict(model_inputs(spec, data.x_test[:500]), verbose=0), axis=1)
    assert np.unique(predictions).size >= 8
    assert np.mean(predictions == data.y_test[:500]) > 0.6
