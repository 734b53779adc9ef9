"""The improved and tiny model families and their training schedule."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dnncomp.errors import ModelError
from dnncomp.models import STUDY_PARAMS, get_model_spec, list_models, resolve_model_name
from dnncomp.train import training_settings

DATASETS = ("mnist", "cifar10", "gtsrb")
NEW_MODELS = [f"{family}-{dataset}" for family in ("improved", "tiny") for dataset in DATASETS]
# What QAT and the LiteRT converter handle well (Reshape only for MNIST's (28, 28) input).
ALLOWED_LAYERS = {"Conv2D", "BatchNormalization", "ReLU", "MaxPooling2D", "GlobalAveragePooling2D", "Dense", "Reshape"}


def _build(name):
    from dnncomp.models import build_model

    return build_model(name)


def test_families_resolve_for_every_dataset():
    assert resolve_model_name("improved", "cifar10") == "improved-cifar10"
    for dataset in DATASETS:
        assert resolve_model_name("tiny", dataset) == f"tiny-{dataset}"
        study, improved = get_model_spec(f"study-{dataset}"), get_model_spec(f"improved-{dataset}")
        assert improved.input_shape == study.input_shape and improved.num_classes == study.num_classes
        assert improved.from_logits
    assert {spec.family for spec in list_models()} >= {"study", "improved", "tiny"}


@pytest.mark.tf
@pytest.mark.parametrize("name", NEW_MODELS)
def test_parameter_budget_and_layers(name):
    spec = get_model_spec(name)
    model = _build(name)
    cap = STUDY_PARAMS[spec.dataset] if spec.family == "improved" else STUDY_PARAMS[spec.dataset] / 10
    assert model.count_params() <= cap
    assert model.count_params() == spec.params_approx
    assert tuple(model.input_shape[1:]) == spec.input_shape and tuple(model.output_shape) == (None, spec.num_classes)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert set(kinds) <= ALLOWED_LAYERS, set(kinds) - ALLOWED_LAYERS
    assert ("Reshape" in kinds) == (spec.dataset == "mnist")
    for index, layer in enumerate(model.layers):
        if kinds[index] == "BatchNormalization":  # folds into the convolution right before it
            assert kinds[index - 1] == "Conv2D" and not model.layers[index - 1].use_bias
        if kinds[index] == "Conv2D":
            assert kinds[index + 1] == "BatchNormalization" and layer.get_config()["activation"] == "linear"
    assert kinds[-1] == "Dense" and model.layers[-1].get_config()["activation"] == "linear"  # logits


def test_the_study_models_are_the_caps():
    for dataset, params in STUDY_PARAMS.items():
        assert get_model_spec(f"study-{dataset}").params_approx == params


def test_training_settings_are_plain_json_and_per_dataset():
    for name in NEW_MODELS:
        settings = training_settings(name, seed=3)
        assert json.loads(json.dumps(settings)) == settings
        assert settings["patience"] is None and settings["schedule"]["name"] == "sgd-nesterov-cosine"
        assert settings["schedule"]["label_smoothing"] == 0.1 and settings["schedule"]["weight_decay"] > 0
    cifar = training_settings("improved-cifar10")["schedule"]["augment"]
    assert cifar["crop_padding"] == 4 and cifar["padding_mode"] == "reflect" and cifar["horizontal_flip"]
    for dataset in ("mnist", "gtsrb"):  # a mirrored digit or sign means something else
        augment = training_settings(f"improved-{dataset}")["schedule"]["augment"]
        assert not augment.get("horizontal_flip") and augment["rotation"] <= 10
    assert training_settings("improved-gtsrb")["schedule"]["augment"]["brightness"] > 0
    overridden = training_settings("improved-cifar10", epochs=2, batch_size=64, patience=3)
    assert (overridden["epochs"], overridden["batch_size"], overridden["patience"]) == (2, 64, 3)
    # the study's settings keep exactly their five keys (a resumed study run must not retrain)
    assert set(training_settings("study-cifar10")) == {"epochs", "batch_size", "patience", "validation", "seed"}


def test_bad_recipes_and_augmentations_are_model_errors():
    from dnncomp.augment import check_augment
    from dnncomp.train import check_schedule

    recipe = training_settings("tiny-mnist")["schedule"]
    with pytest.raises(ModelError, match="unknown key"):
        check_schedule({**recipe, "nesterov": False})
    with pytest.raises(ModelError, match="momentum"):
        check_schedule({**recipe, "momentum": 1.5})
    with pytest.raises(ModelError, match="unknown key"):
        check_augment({"vertical_flip": True})
    with pytest.raises(ModelError, match="fill_mode"):
        check_augment({"fill_mode": "wrap"})
    with pytest.raises(ModelError, match="true or false"):
        check_augment({"horizontal_flip": 1})


def _asymmetric_images(n: int, size: int = 30, channels: int = 3) -> np.ndarray:
    """An 'L' shape on a mid-grey background: no image equals its mirror image."""
    image = np.full((size, size, channels), 0.5, np.float32)
    image[5:25, 6:10] = 1.0
    image[21:25, 6:20] = 0.0
    return np.repeat(image[None], n, axis=0)


def _augment(images, augment, seed=(1, 2)):
    from dnncomp.augment import augment_batch

    return np.asarray(augment_batch(images, augment, np.array(seed, np.int64)))


@pytest.mark.tf
def test_zero_strength_augmentation_is_the_identity():
    images = _asymmetric_images(8)
    zero = {"crop_padding": 0, "horizontal_flip": False, "rotation": 0, "shift": 0, "zoom": 0, "brightness": 0, "contrast": 0}
    assert np.array_equal(_augment(images, zero), images)
    gtsrb = training_settings("improved-gtsrb")["schedule"]["augment"]
    assert np.array_equal(
        _augment(images, {key: (0 if key not in ("fill_mode",) else value) for key, value in gtsrb.items()}), images
    )


@pytest.mark.tf
def test_traffic_sign_augmentation_never_mirrors():
    images = _asymmetric_images(64)
    mirrored = images[:, :, ::-1]
    out = _augment(images, training_settings("improved-gtsrb")["schedule"]["augment"])
    assert out.shape == images.shape and out.min() >= 0 and out.max() <= 1
    assert not np.array_equal(out, images)  # it does augment
    assert not any(np.allclose(o, m, atol=0.05) for o, m in zip(out, mirrored))
    # each output is nearer to the original than to its mirror image
    assert all(np.abs(o - i).mean() < np.abs(o - m).mean() for o, i, m in zip(out, images, mirrored))


@pytest.mark.tf
def test_cifar_flip_and_crop_are_exact_pixel_moves():
    images = _asymmetric_images(64, size=32)
    flipped = _augment(images, {"horizontal_flip": True})
    is_original = [np.array_equal(o, images[0]) for o in flipped]
    is_mirror = [np.array_equal(o, images[0][:, ::-1]) for o in flipped]
    assert all(a != b for a, b in zip(is_original, is_mirror)) and 10 < sum(is_mirror) < 54
    cropped = _augment(images, {"crop_padding": 4, "padding_mode": "reflect"})
    padded = np.pad(images[0], [(4, 4), (4, 4), (0, 0)], mode="reflect")
    windows = {padded[r : r + 32, c : c + 32].tobytes() for r in range(9) for c in range(9)}
    assert all(o.tobytes() in windows for o in cropped)
    again = _augment(images, {"crop_padding": 4, "padding_mode": "reflect"})
    assert np.array_equal(again, cropped)  # stateless: the same seed, the same crops


@pytest.mark.tf
@pytest.mark.slow
def test_one_scheduled_training_run_keeps_the_history_keys(tmp_path):
    from dnncomp.train import load_baseline, save_baseline, train_baseline

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(48, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, size=48)
    settings = training_settings("tiny-cifar10", epochs=2, batch_size=16)
    model, history = train_baseline("tiny-cifar10", x, y, **settings, verbose=0)
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(history) and len(history["val_accuracy"]) == 2
    assert history["learning_rate"][-1] < history["learning_rate"][0] == pytest.approx(settings["schedule"]["learning_rate"])
    assert history["elapsed_s"][0] < history["elapsed_s"][1]
    assert all(isinstance(v, float) for values in history.values() for v in values)
    assert model.optimizer.iterations.numpy() == 2 * (43 // 16)  # 43 training images after the 10% validation split
    save_baseline(model, tmp_path)  # with the optimizer and its schedule, as the study's .h5 kept Adam's state
    inputs = x[:4] / np.float32(255)
    for name in ("baseline.keras", "baseline.h5"):
        assert np.allclose(load_baseline(tmp_path / name).predict(inputs, verbose=0), model.predict(inputs, verbose=0), atol=1e-5)


@pytest.mark.tf
def test_schedule_warms_up_then_decays_to_zero_over_the_budget():
    from dnncomp.train import scheduled_optimizer

    recipe = training_settings("improved-cifar10")["schedule"]
    optimizer = scheduled_optimizer(recipe, total_steps=1000)
    schedule = optimizer.learning_rate if callable(optimizer.learning_rate) else optimizer._learning_rate
    peak = recipe["learning_rate"]
    values = [float(schedule(step)) for step in (0, 75, 150, 575, 1000)]
    assert values[0] == pytest.approx(peak / 10) and values[2] == pytest.approx(peak)
    assert values[0] < values[1] < values[2] > values[3] > values[4] == pytest.approx(0.0, abs=1e-7)
    assert values[3] == pytest.approx(peak / 2, rel=1e-3)  # cosine half-way through the decay
    assert optimizer.nesterov and optimizer.weight_decay == recipe["weight_decay"]


@pytest.mark.tf
@pytest.mark.slow
@pytest.mark.parametrize("name", NEW_MODELS)
def test_tfmot_quantize_model_accepts_it(name):
    from dnncomp.keras_env import import_tfmot

    tfmot = import_tfmot()
    quantized = tfmot.quantization.keras.quantize_model(_build(name))  # raises on any layer it cannot quantize
    wrapped = [layer.layer for layer in quantized.layers if hasattr(layer, "layer")]
    assert {type(layer).__name__ for layer in wrapped} >= {"Conv2D", "Dense"}


def _int8_kernels_and_folded_batch_norm(quantized, x_uint8, y):
    """Convert a QAT model as the qat recipe does and check it: int8 kernels, BN folded away, runs in LiteRT."""
    from dnncomp.evaluate import evaluate_accuracy
    from dnncomp.export import to_tflite
    from tinymodels import ops_with_input_dtypes

    tflite = to_tflite(quantized, optimizations=["DEFAULT"])
    ops = ops_with_input_dtypes(tflite)
    kernels = [dtypes for op, dtypes in ops if op in ("CONV_2D", "FULLY_CONNECTED")]
    assert len(kernels) == 7 and all(dtypes[:2] == ["int8", "int8"] for dtypes in kernels)
    assert not {op for op, _ in ops} & {"MUL", "ADD", "SUB"}, "batch norm left unfolded"
    assert evaluate_accuracy(tflite, x_uint8, y)["full_count"] == len(y)


@pytest.mark.tf
@pytest.mark.slow
def test_quantized_model_converts_to_int8_with_batch_norm_folded():
    from dnncomp.keras_env import import_tfmot

    tfmot = import_tfmot()
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, size=(8, 30, 30, 3), dtype=np.uint8)
    quantized = tfmot.quantization.keras.quantize_model(_build("tiny-gtsrb"))
    quantized.predict(x / np.float32(255), verbose=0)  # sets the activation ranges a little
    _int8_kernels_and_folded_batch_norm(quantized, x, rng.integers(0, 43, size=8))


@pytest.mark.tf
@pytest.mark.slow
def test_the_qat_recipe_folds_batch_norm_too():
    from dnncomp.compress.quantize import quantize_aware

    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, size=(8, 28, 28, 1), dtype=np.uint8)
    quantized = quantize_aware(_build("tiny-mnist")).model
    quantized.predict(x[..., 0] / np.float32(255), verbose=0)
    _int8_kernels_and_folded_batch_norm(quantized, x, rng.integers(0, 10, size=8))


@pytest.mark.tf
def test_compression_fine_tunes_at_the_specs_learning_rate():
    from dnncomp.train import compile_for_training

    learning_rates = {}
    for name in ("study-mnist", "tiny-mnist"):
        model = _build(name)
        compile_for_training(model, get_model_spec(name))
        learning_rates[name] = float(model.optimizer.learning_rate.numpy())
    assert learning_rates["study-mnist"] == pytest.approx(1e-3)  # the study's Adam default, unchanged
    assert learning_rates["tiny-mnist"] == pytest.approx(get_model_spec("tiny-mnist").training["fine_tune_learning_rate"])
