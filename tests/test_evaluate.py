"""dnncomp.evaluate: accuracy of LiteRT classifiers on real test images, batched == batch 1, sizes, errors."""

from __future__ import annotations

import gzip
import math

import numpy as np
import pytest

from dnncomp.errors import ModelError
from dnncomp.evaluate import (
    accuracy_record,
    evaluate_accuracy,
    file_sizes,
    model_input_spec,
    predict_classes,
    prepare_inputs,
    wilson_interval,
)

from device_models import float_models, mnist_test, patch_mnist_loader, write_models  # noqa: F401 (fixture)

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def cifar_test(real_data_dir):
    import pickle

    with open(real_data_dir / "cifar-10-batches-py" / "test_batch", "rb") as fh:
        batch = pickle.load(fh, encoding="bytes")
    x = batch[b"data"].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy()
    return x, np.asarray(batch[b"labels"], dtype=np.int64)


def test_reference_mnist_int8_reaches_the_study_accuracy(reference_models_dir, mnist_test):
    x, y = mnist_test
    record = evaluate_accuracy(reference_models_dir / "mnist_quantized_model.tflite", x, y, first_n=1000, num_classes=10)
    # The study reports 98.80 % on its first 1000 images for this very file.
    assert record["first_n_count"] == 1000 and record["full_count"] == 10000
    assert 0.980 <= record["first_n"] <= 0.995
    assert record["full"] >= 0.98
    low, high = record["first_n_ci95"]
    assert low < record["first_n"] < high and high - low < 0.03
    assert record["batch"] > 1  # it ran batched


def test_reference_cifar10_int8_on_real_images(reference_models_dir, cifar_test):
    x, y = cifar_test
    record = evaluate_accuracy(reference_models_dir / "cifar10_quantized_model.tflite", x[:1000], y[:1000], first_n=1000)
    assert 0.75 <= record["first_n"] <= 0.83  # study: 79.10 %


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_batched_predictions_equal_batch_one(reference_models_dir, mnist_test, cifar_test, name):
    x, _ = mnist_test if name == "mnist" else cifar_test
    model = reference_models_dir / f"{name}_quantized_model.tflite"
    images = x[:300]
    one = predict_classes(model, images, batch=1)
    for batch in (64, 7):  # 7: the last chunk is padded
        batched, used = predict_classes(model, images, batch=batch, return_batch=True)
        assert used == batch
        np.testing.assert_array_equal(batched, one)


def test_model_bytes_work_like_a_path(reference_models_dir, mnist_test):
    x, y = mnist_test
    path = reference_models_dir / "mnist_quantized_model.tflite"
    from_path = evaluate_accuracy(path, x[:200], y[:200], first_n=100)
    from_bytes = evaluate_accuracy(path.read_bytes(), x[:200], y[:200], first_n=100)
    assert from_path == from_bytes


def test_inputs_follow_the_model(reference_models_dir, mnist_test, cifar_test):
    mnist_spec = model_input_spec(reference_models_dir / "mnist_quantized_model.tflite")
    assert mnist_spec.shape == (28, 28) and mnist_spec.dtype == np.float32 and mnist_spec.num_outputs == 10
    prepared = prepare_inputs(mnist_test[0][:3], mnist_spec)
    assert prepared.shape == (3, 28, 28) and prepared.dtype == np.float32  # channel squeezed, rank 3
    np.testing.assert_allclose(prepared, mnist_test[0][:3, ..., 0] / 255.0, atol=1e-7)

    gtsrb_spec = model_input_spec(reference_models_dir / "gtsrb_quantized_model.tflite")
    assert gtsrb_spec.shape == (30, 30, 3) and gtsrb_spec.num_outputs == 43
    resized = prepare_inputs(cifar_test[0][:2], gtsrb_spec)  # 32x32 -> 30x30 with Pillow
    assert resized.shape == (2, 30, 30, 3)


def test_model_that_does_not_fit_the_dataset_is_one_clear_error(reference_models_dir, mnist_test):
    x, y = mnist_test
    with pytest.raises(ModelError, match="43 classes but the dataset has 10"):
        evaluate_accuracy(reference_models_dir / "gtsrb_quantized_model.tflite", x[:10], y[:10], num_classes=10)
    with pytest.raises(ModelError, match="3-channel images but the dataset has 1"):
        evaluate_accuracy(reference_models_dir / "cifar10_quantized_model.tflite", x[:10], y[:10])
    with pytest.raises(ModelError, match="not found"):
        evaluate_accuracy(reference_models_dir / "missing.tflite", x[:10], y[:10])
    with pytest.raises(ModelError, match="cannot load"):
        evaluate_accuracy(b"TFL3 is not a model" * 10, x[:10], y[:10])


def test_wilson_interval():
    low, high = wilson_interval(988, 1000)
    # Closed form, computed independently.
    z, n, p = 1.959963984540054, 1000, 0.988
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert low == pytest.approx(centre - half) and high == pytest.approx(centre + half)
    assert 0.978 < low < 0.98 and 0.993 < high < 0.994
    assert wilson_interval(0, 0) is None
    low, high = wilson_interval(10, 10)
    assert high == pytest.approx(1.0) and 0.69 < low < 0.73  # not the degenerate [1, 1] of the normal approximation


def test_accuracy_record_counts():
    predictions = np.array([0, 1, 2, 3, 0])
    labels = np.array([0, 1, 2, 0, 0])
    record = accuracy_record(predictions, labels, first_n=3)
    assert record["full"] == pytest.approx(0.8) and record["full_count"] == 5
    assert record["first_n"] == 1.0 and record["first_n_count"] == 3
    assert accuracy_record(predictions, labels, first_n=100)["first_n_count"] == 5
    with pytest.raises(ModelError):
        accuracy_record(predictions, labels[:3])


def test_file_sizes(reference_models_dir):
    path = reference_models_dir / "mnist_quantized_model.tflite"
    sizes = file_sizes(path)
    data = path.read_bytes()
    assert sizes["file_bytes"] == len(data) == 1123456
    assert sizes["gzip_bytes"] == len(gzip.compress(data, compresslevel=9, mtime=0)) < len(data)
    assert abs(sizes["zip_bytes"] - sizes["gzip_bytes"]) < 0.01 * len(data)  # both deflate
    assert file_sizes(path) == sizes == file_sizes(data)  # reproducible, path or bytes


# ---- float and int8-input models (made with TensorFlow) ----------------------------------


@pytest.fixture(scope="module")
def keras_made(real_data_dir, tmp_path_factory):
    return write_models(float_models(real_data_dir), tmp_path_factory.mktemp("device-models"))


@pytest.mark.slow
def test_int8_input_is_quantized_with_the_models_own_scale(keras_made, mnist_test):
    x, y = mnist_test
    spec = model_input_spec(keras_made["tiny_int8_io"])
    assert spec.dtype == np.int8 and spec.scale > 0
    prepared = prepare_inputs(x[:4], spec)
    assert prepared.dtype == np.int8
    np.testing.assert_array_equal(
        prepared, np.clip(np.round(x[:4, ..., 0] / 255.0 / spec.scale) + spec.zero_point, -128, 127).astype(np.int8)
    )
    float_pred = predict_classes(keras_made["tiny_float"], x[:1000])
    int8_pred = predict_classes(keras_made["tiny_int8_io"], x[:1000])
    assert np.mean(float_pred == int8_pred) > 0.97  # same network, quantized: nearly the same answers
    assert np.mean(int8_pred == y[:1000]) > 0.6


@pytest.mark.slow
def test_model_that_cannot_run_batched_falls_back_to_batch_one(keras_made, mnist_test):
    x, y = mnist_test
    fixed = evaluate_accuracy(keras_made["tiny_fixed_batch"], x[:500], y[:500], batch=64)
    assert fixed["batch"] == 1
    reference = evaluate_accuracy(keras_made["tiny_float"], x[:500], y[:500], batch=1)
    assert fixed["full"] == reference["full"]


@pytest.mark.slow
def test_float_model_batched_equals_batch_one(keras_made, mnist_test):
    x, _ = mnist_test
    one = predict_classes(keras_made["tiny_float"], x[:500], batch=1)
    batched = predict_classes(keras_made["tiny_float"], x[:500], batch=256)
    np.testing.assert_array_equal(batched, one)


# ---- `dnncomp evaluate` --------------------------------------------------------------------


def test_evaluate_cli_on_a_foreign_model(monkeypatch, real_data_dir, reference_models_dir, tmp_path, capsys):
    import json

    from dnncomp.cli import main
    from dnncomp.results import validate_results

    calls = patch_mnist_loader(monkeypatch, real_data_dir)
    model = reference_models_dir / "mnist_quantized_model.tflite"
    argv = ["evaluate", str(model), "--dataset", "mnist", "--min-count", "20", "--min-seconds", "0.1", "--json", str(tmp_path / "e.json")]
    assert main(argv) == 0
    assert calls == [("mnist", (28, 28))]
    assert "98.80 %" in capsys.readouterr().out  # first 1000, as the study reports
    document = json.loads((tmp_path / "e.json").read_text())
    assert validate_results(document) == []
    (variant,) = document["variants"]
    assert variant["accuracy"]["first_n"] == 0.988 and variant["latency"]["count"] >= 20
    assert variant["size"]["file_bytes"] == 1123456 and len(variant["sha256"]) == 64


def test_evaluate_cli_wrong_dataset_is_one_line(monkeypatch, real_data_dir, reference_models_dir, capsys):
    from dnncomp.cli import main

    patch_mnist_loader(monkeypatch, real_data_dir)
    for name, message in (("gtsrb", "43 classes but the dataset has 10"), ("cifar10", "3-channel images")):
        assert main(["evaluate", str(reference_models_dir / f"{name}_quantized_model.tflite"), "--dataset", "mnist"]) == 2
        err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert len(err) == 1 and message in err[0]


def test_reference_gtsrb_through_the_real_loader(real_data_dir, reference_models_dir):
    """GTSRB is loaded at the model's 30x30 with PIL, as the study did (needs the data loaders)."""
    data = pytest.importorskip("dnncomp.data")
    if not hasattr(data, "load_dataset"):
        pytest.skip("dnncomp.data.load_dataset is not there yet")
    from dnncomp.measure import load_for_model

    model = reference_models_dir / "gtsrb_quantized_model.tflite"
    dataset = load_for_model("gtsrb", model, real_data_dir)
    assert dataset.x_test.shape[1:] == (30, 30, 3) and dataset.num_classes == 43
    record = evaluate_accuracy(model, dataset.x_test[:1000], dataset.y_test[:1000], num_classes=43)
    assert 0.85 <= record["first_n"] <= 0.95  # study: 89.50 %
