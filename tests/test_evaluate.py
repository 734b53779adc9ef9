"""dnncomp.evaluate: accuracy of LiteRT classifiers on real test images, batched == batch 1, sizes, errors."""

from __future__ import annotations

import gzip
import math

import numpy as np
import pytest

from device_models import float_models, patch_mnist_loader, write_models
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
    # A colour model on grey images is no longer an error: they are repeated into 3 channels (issue 11).
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
    # computed once per content: a second call is a cache hit, and what a caller does to its copy stays there
    sizes["gzip_bytes"] = 0
    assert file_sizes(data)["gzip_bytes"] > 0
    other = data[:-1] + bytes([data[-1] ^ 1])  # one bit changed: its own entry
    assert file_sizes(other)["file_bytes"] == len(data) and file_sizes(other) is not file_sizes(other)


# ---- float and int8-input models (made with TensorFlow) ----------------------------------


@pytest.fixture(scope="module")
def keras_made(real_data_dir, tmp_path_factory):
    return write_models(float_models(real_data_dir), tmp_path_factory.mktemp("device-models"))


@pytest.mark.tf
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


@pytest.mark.tf
@pytest.mark.slow
def test_model_that_cannot_run_batched_falls_back_to_batch_one(keras_made, mnist_test):
    x, y = mnist_test
    fixed = evaluate_accuracy(keras_made["tiny_fixed_batch"], x[:500], y[:500], batch=64)
    assert fixed["batch"] == 1
    reference = evaluate_accuracy(keras_made["tiny_float"], x[:500], y[:500], batch=1)
    assert fixed["full"] == reference["full"]


@pytest.mark.tf
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
    argv = [
        "evaluate",
        str(model),
        "--dataset",
        "mnist",
        "--min-count",
        "20",
        "--min-seconds",
        "0.1",
        "--json",
        str(tmp_path / "e.json"),
    ]
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
    for name, message in (("gtsrb", "43 classes but the dataset has 10"),):
        assert main(["evaluate", str(reference_models_dir / f"{name}_quantized_model.tflite"), "--dataset", "mnist"]) == 2
        err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert len(err) == 1 and message in err[0]


def test_reference_gtsrb_through_the_real_loader(real_data_dir, reference_models_dir, real_gtsrb):
    """GTSRB is loaded at the model's 30x30 with PIL, as the study did (real_gtsrb put that decode in the cache)."""
    data = pytest.importorskip("dnncomp.data")
    if not hasattr(data, "load_dataset"):
        pytest.skip("dnncomp.data.load_dataset is not there yet")
    from dnncomp.measure import load_for_model

    model = reference_models_dir / "gtsrb_quantized_model.tflite"
    dataset = load_for_model("gtsrb", model, real_data_dir)
    assert dataset.x_test.shape[1:] == (30, 30, 3) and dataset.num_classes == 43
    record = evaluate_accuracy(model, dataset.x_test[:1000], dataset.y_test[:1000], num_classes=43)
    assert 0.85 <= record["first_n"] <= 0.95  # study: 89.50 %


# ---- any single-input classifier: layout, batch, outputs, input range (tiny flatbuffers, no TF) -----


def _images(n: int = 24, size: int = 2, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 1)).astype(np.uint8)


def _classes(x_real: np.ndarray, weights: np.ndarray, biases: np.ndarray) -> np.ndarray:
    """What the tiny network predicts for real-valued inputs, computed with numpy."""
    return np.argmax(x_real.reshape(len(x_real), -1) @ weights.T + biases, axis=1)


_W = np.array([[1.0, -1.0, 0.5, 0.0], [-0.5, 1.0, 0.0, 1.0], [0.0, 0.0, -1.0, 1.0]], dtype=np.float32)
_B = np.array([0.3, -0.2, 0.1], dtype=np.float32)


def test_in_graph_rescaling_means_the_model_takes_raw_pixels():
    from tiny_tflite import tiny_flatbuffer

    model = tiny_flatbuffer(pre=[("MUL", 1 / 255.0)], weights=[_W], biases=[_B])
    spec = model_input_spec(model)
    assert spec.preprocessing.input_range == (0.0, 255.0) and not spec.preprocessing.assumed
    assert "rescales its input itself (MUL" in spec.describe_input() and "assumed" not in spec.describe_input()
    x = _images()
    np.testing.assert_array_equal(prepare_inputs(x, spec), x.reshape(len(x), -1).astype(np.float32))  # raw pixels
    # The model divides by 255 itself; fed pixel / 255 it would see values 255 times too small.
    np.testing.assert_array_equal(predict_classes(model, x, batch=8), _classes(x / 255.0, _W, _B))
    assert not np.array_equal(_classes(x / 255.0, _W, _B), _classes(x / 255.0 / 255.0, _W, _B))


@pytest.mark.parametrize(
    "pre, expected, assumed",
    [
        ([("SUB", 33.3), ("DIV", 78.5)], (0.0, 255.0), False),  # a Normalization adapted on raw pixels
        ([("MUL", 1 / 127.5), ("ADD", -1.0)], (0.0, 255.0), False),  # Rescaling(1/127.5, offset=-1)
        ([("MUL", 2.0), ("SUB", 1.0)], (0.0, 1.0), True),  # the model maps 0..1 to -1..1 itself
        ([("QUANTIZE", (2 / 255.0, 0))], (-1.0, 1.0), True),  # a float-io quantized model's own input range
        ([("QUANTIZE", (1 / 255.0, -128))], (0.0, 1.0), True),
        ([], (0.0, 1.0), True),  # nothing says: dnncomp's convention, and said so
    ],
)
def test_float_input_range_is_read_from_the_graph(pre, expected, assumed):
    from tiny_tflite import tiny_flatbuffer

    spec = model_input_spec(tiny_flatbuffer(pre=pre))
    assert spec.preprocessing.input_range == expected and spec.preprocessing.assumed == assumed
    assert ("--input-range" in spec.describe_input()) == assumed


def test_first_layer_sized_for_raw_pixels_means_0_to_255():
    """The converter folds a Rescaling(1/255) in front of a convolution into its kernel: no MUL is left."""
    from dnncomp.signature import first_layer_gain
    from tiny_tflite import tiny_flatbuffer

    folded = tiny_flatbuffer(weights=[_W / 255.0], biases=[_B])
    assert first_layer_gain(folded) == ("FULLY_CONNECTED", pytest.approx(np.median(np.abs(_W).sum(axis=1)) / 255.0, rel=1e-5))
    spec = model_input_spec(folded)
    assert spec.preprocessing.input_range == (0.0, 255.0) and spec.preprocessing.assumed
    assert "inferred from its first layer" in spec.describe_input()
    x = _images()
    np.testing.assert_array_equal(predict_classes(folded, x), _classes(x.astype(np.float64), _W / 255.0, _B))
    assert model_input_spec(tiny_flatbuffer(weights=[_W], biases=[_B])).preprocessing.input_range == (0.0, 1.0)


@pytest.mark.parametrize(
    "dtype, quant, expected",
    [
        ("UINT8", (1.0, 0), (0.0, 255.0)),
        ("UINT8", (2 / 255.0, 128), (-1.0, 1.0)),
        ("UINT8", (1 / 255.0, 0), (0.0, 1.0)),
        ("INT8", (1 / 255.0, -128), (0.0, 1.0)),
        ("INT8", (0.5, 10), (-69.0, 58.5)),  # no named range: the range its quantization covers
        ("INT16", (1 / 32767.0, 0), (-1.0, 1.0)),
    ],
)
def test_integer_input_range_comes_from_its_quantization(dtype, quant, expected):
    from tiny_tflite import tiny_flatbuffer

    model = tiny_flatbuffer(dtype=dtype, quant=quant, weights=[_W], biases=[_B])
    spec = model_input_spec(model)
    lo, hi = spec.preprocessing.input_range
    assert lo == pytest.approx(expected[0], abs=1e-3) and hi == pytest.approx(expected[1], abs=1e-3)
    assert spec.preprocessing.assumed and f"zero point {quant[1]}" in spec.describe_input()
    x = _images()
    real = lo + x.astype(np.float64) / 255.0 * (hi - lo)
    q = np.clip(np.round(real / quant[0]) + quant[1], np.iinfo(spec.dtype).min, np.iinfo(spec.dtype).max)
    prepared = prepare_inputs(x, spec)
    assert prepared.dtype == spec.dtype
    # Within one step: -1..1 on zero point 128 puts every pixel on a rounding tie.
    np.testing.assert_allclose(prepared.astype(np.int64), q.reshape(len(x), -1), atol=1)
    np.testing.assert_array_equal(
        predict_classes(model, x), _classes((prepared.astype(np.float64) - quant[1]) * quant[0], _W, _B)
    )


def test_command_line_beats_sidecar_beats_inference(tmp_path):
    from dnncomp.preprocess import Preprocessing, preprocessing_from_options, write_sidecar
    from tiny_tflite import tiny_flatbuffer

    path = tmp_path / "m.tflite"
    path.write_bytes(tiny_flatbuffer(dtype="UINT8", quant=(1.0, 0)))
    assert model_input_spec(path).preprocessing.input_range == (0.0, 255.0)
    write_sidecar(path, Preprocessing((-1.0, 1.0), mean=(0.5,), std=(0.25,), source="compress"))
    from_sidecar = model_input_spec(path).preprocessing
    assert from_sidecar.input_range == (-1.0, 1.0) and from_sidecar.mean == (0.5,) and "sidecar" in from_sidecar.source
    given = model_input_spec(path, preprocessing=preprocessing_from_options("0..1", None, None)).preprocessing
    assert given.input_range == (0.0, 1.0) and given.source == "command line" and not given.assumed
    (tmp_path / "m.preprocessing.json").write_text("{not json")
    with pytest.raises(ModelError, match="m.preprocessing.json: unreadable"):
        model_input_spec(path)


def test_fixed_batch_is_fed_that_many_images_at_a_time():
    from dnncomp.evaluate import runnable_batch
    from tiny_tflite import tiny_flatbuffer

    # The RESHAPE's constant shape bakes the batch of 4 in: no other batch allocates.
    model = tiny_flatbuffer(input_shape=(4, 2, 2), signature=(4, 2, 2), weights=[_W], biases=[_B])
    spec = model_input_spec(model)
    assert spec.batch == 4 and not spec.batch_resizable and spec.layout.kind == "HW"
    assert "batch fixed at 4" in spec.describe_input()
    assert runnable_batch(model, spec, 1) == 4
    x = _images(n=23)  # not a multiple of 4: the last chunk is padded
    for batch in (1, 4, 256):
        predictions, used = predict_classes(model, x, batch=batch, return_batch=True)
        assert used == 4
        np.testing.assert_array_equal(predictions, _classes(x / 255.0, _W, _B))


def test_class_scores_are_chosen_among_several_outputs():
    from tiny_tflite import tiny_flatbuffer

    model = tiny_flatbuffer(outputs=3)  # 3, 5 and 7 values
    spec = model_input_spec(model, num_classes=5)
    assert spec.num_outputs == 5 and spec.output_name == "scores1"
    assert "1 'scores1' of 3 outputs" in spec.output_note and "--output" in spec.output_note
    assert model_input_spec(model, output="2").num_outputs == 7
    assert model_input_spec(model, output="scores0").num_outputs == 3
    with pytest.raises(ModelError, match=r"has 3 outputs .*choose it with --output NAME\|INDEX"):
        model_input_spec(model)
    with pytest.raises(ModelError, match="--output 'logits' names none of its outputs"):
        model_input_spec(model, output="logits")
    with pytest.raises(ModelError, match="predicts 3 classes but the dataset has 10"):
        evaluate_accuracy(model, _images(), np.zeros(24, dtype=np.int64), num_classes=10, output="0")
    x = _images()
    np.testing.assert_array_equal(
        predict_classes(model, x, num_classes=5),
        predict_classes(model, x, output="scores1"),
    )


def test_io_details_for_inspect():
    from dnncomp.evaluate import open_interpreter
    from dnncomp.signature import describe_tensor, io_details
    from tiny_tflite import tiny_flatbuffer

    io = io_details(
        open_interpreter(tiny_flatbuffer(input_shape=(1, 2, 2), signature=(-1, 2, 2), dtype="UINT8", quant=(2 / 255.0, 128)))
    )
    (inp,), (out,) = io["inputs"], io["outputs"]
    assert inp["dtype"] == "uint8" and inp["shape"] == [1, 2, 2] and inp["batch"] == "resizable"
    assert inp["layout"].startswith("HxW") and inp["quantization"]["zero_point"] == 128
    lo, hi = inp["quantization"]["real_range"]
    assert lo == pytest.approx(-1.0039, abs=1e-3) and hi == pytest.approx(0.9961, abs=1e-3)
    assert "quantized scale 0.00784314 zero point 128 (real -1.004..0.9961)" in describe_tensor(inp)
    assert out["quantization"] is None and out["layout"] is None and "float32 ?x3" in describe_tensor(out)


@pytest.mark.tf
@pytest.mark.slow
def test_float_model_with_rescaling_inside_gets_raw_pixels(real_data_dir, mnist_test, tmp_path):
    """Issue 11: a float model with Rescaling(1/255) inside scored 10 % under evaluate (fed pixel/255)."""
    from dnncomp.export import to_tflite
    from dnncomp.keras_env import import_keras

    _, keras = import_keras()
    keras.utils.set_random_seed(0)
    x_train, y_train, _, _ = __import__("device_models").mnist(real_data_dir)
    layers = keras.layers
    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Rescaling(1 / 255.0),
            layers.Conv2D(8, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dense(10),
        ]
    )
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(x_train[:4000].astype(np.float32), y_train[:4000], epochs=1, batch_size=64, verbose=0)
    x, y = mnist_test
    keras_accuracy = float(np.mean(np.argmax(model.predict(x[:2000].astype(np.float32), verbose=0), axis=1) == y[:2000]))
    path = tmp_path / "rescaling.tflite"
    path.write_bytes(to_tflite(model))

    spec = model_input_spec(path)  # the converter folds the Rescaling into the convolution's kernel
    assert spec.preprocessing.input_range == (0.0, 255.0) and "first layer" in spec.preprocessing.source
    record = evaluate_accuracy(path, x[:2000], y[:2000], num_classes=10)
    assert keras_accuracy > 0.7 and abs(record["full"] - keras_accuracy) <= 0.01
    from dnncomp.preprocess import preprocessing_from_options

    as_before = evaluate_accuracy(path, x[:2000], y[:2000], preprocessing=preprocessing_from_options("0..1", None, None))
    assert as_before["full"] < 0.3  # pixel / 255, what evaluate fed it before


def test_channel_first_input_with_per_channel_mean_and_std():
    from dnncomp.preprocess import preprocessing_from_options
    from tiny_tflite import tiny_flatbuffer

    weights = np.random.default_rng(2).normal(size=(4, 12)).astype(np.float32)
    model = tiny_flatbuffer(input_shape=(1, 3, 2, 2), signature=(-1, 3, 2, 2), weights=[weights], biases=[np.zeros(4)])
    given = preprocessing_from_options("0..1", "0.4,0.5,0.6", "0.2,0.25,0.3")
    spec = model_input_spec(model, preprocessing=given)
    assert spec.layout.kind == "CHW" and spec.layout.channels == 3
    x = np.random.default_rng(3).integers(0, 256, (10, 2, 2, 3)).astype(np.uint8)  # NHWC colour images
    real = (x / 255.0 - np.array([0.4, 0.5, 0.6])) / np.array([0.2, 0.25, 0.3])
    chw = real.transpose(0, 3, 1, 2)  # the model's own order
    np.testing.assert_allclose(prepare_inputs(x, spec), chw, atol=1e-5)
    np.testing.assert_array_equal(
        predict_classes(model, x, preprocessing=given, batch=4), np.argmax(chw.reshape(10, -1) @ weights.T, axis=1)
    )


def test_evaluate_cli_says_the_input_and_refuses_a_malformed_range(
    monkeypatch, real_data_dir, reference_models_dir, tmp_path, capsys
):
    from dnncomp.cli import main

    patch_mnist_loader(monkeypatch, real_data_dir)
    model = reference_models_dir / "mnist_quantized_model.tflite"
    assert main(["evaluate", str(model), "--dataset", "mnist", "--input-range", "0-1", "--no-latency"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "--input-range '0-1'" in err[0]
    assert main(["evaluate", str(model), "--dataset", "mnist", "--no-latency", "--json", str(tmp_path / "e.json")]) == 0
    out = capsys.readouterr().out
    assert "input: HxW (grey, no channel axis), 28x28x1, float32, range 0..1 (inferred from the QUANTIZE after the input" in out
    import json

    pre = json.loads((tmp_path / "e.json").read_text())["variants"][0]["preprocessing"]
    assert pre["input_range"] == [0.0, 1.0] and pre["layout"] == "HW" and pre["assumed"] is True
