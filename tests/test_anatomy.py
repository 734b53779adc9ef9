"""dnncomp.anatomy: what the flatbuffer holds, read without TensorFlow."""

from __future__ import annotations

import numpy as np
import pytest

from dnncomp.anatomy import inspect_model, is_int8_model
from dnncomp.errors import ModelError
from dnncomp.evaluate import file_sizes


@pytest.fixture(scope="module")
def mnist_int8(reference_models_dir):
    return inspect_model(reference_models_dir / "mnist_quantized_model.tflite")


def test_reference_mnist_params_and_macs_match_the_architecture(mnist_int8):
    # SPEC.md: Conv 32 5x5 on 28x28x1, pool, Conv 64 5x5, pool, Dense 1024, Dense 10 (valid padding).
    params = (5 * 5 * 1 * 32 + 32) + (5 * 5 * 32 * 64 + 64) + (4 * 4 * 64 * 1024 + 1024) + (1024 * 10 + 10)
    macs = 24 * 24 * 32 * 25 + 8 * 8 * 64 * (25 * 32) + 1024 * 1024 + 1024 * 10
    assert mnist_int8["params"] == params == 1_111_946
    assert mnist_int8["macs"] == macs
    assert [op["macs"] for op in mnist_int8["op_list"] if op["macs"]] == [
        24 * 24 * 32 * 25, 8 * 8 * 64 * 800, 1024 * 1024, 10240,
    ]


def test_qat_reference_runs_convolutions_and_dense_layers_in_int8(mnist_int8, reference_models_dir):
    assert mnist_int8["kernel_ops_by_dtype"] == {"int8": 4}
    assert mnist_int8["int8_kernel_ops"] == 4 and mnist_int8["float_kernel_ops"] == 0
    assert is_int8_model(mnist_int8)
    ops = [(op["op"], op["dtype"]) for op in mnist_int8["op_list"]]
    assert ops[0] == ("QUANTIZE", "float32->int8") and ops[-1] == ("DEQUANTIZE", "int8->float32")
    for name in ("cifar10", "gtsrb"):
        anatomy = inspect_model(reference_models_dir / f"{name}_quantized_model.tflite", tensors=False)
        assert is_int8_model(anatomy) and anatomy["int8_kernel_ops"] == 6
        assert 1.1e6 < anatomy["params"] < 1.3e6  # SPEC.md: about 1.25 M and 1.17 M


def test_weight_tensors(mnist_int8):
    kernels = [w for w in mnist_int8["weights"] if w["role"] == "kernel"]
    assert [w["shape"] for w in kernels] == [[32, 5, 5, 1], [64, 5, 5, 32], [1024, 1024], [10, 1024]]
    for w in kernels:
        assert w["dtype"] == "int8" and w["bytes"] == w["size"]
        assert 0 <= w["sparsity"] < 0.1 and 2 < w["unique"] <= 256
    conv = kernels[0]
    assert conv["quantization"]["per_channel"] and conv["quantization"]["scales"] == 32
    biases = [w for w in mnist_int8["weights"] if w["role"] == "bias"]
    assert {w["dtype"] for w in biases} == {"int32"} and [w["size"] for w in biases] == [32, 64, 10, 1024]
    assert all(w["role"] in ("kernel", "bias") for w in mnist_int8["weights"])
    assert 0 < mnist_int8["sparsity"] < 0.05  # QAT alone prunes nothing


def _patched(data: bytes, original: np.ndarray, replacement: np.ndarray) -> bytes:
    raw = original.tobytes()
    offset = data.find(raw)
    assert offset > 0 and data.find(raw, offset + 1) == -1
    return data[:offset] + replacement.astype(original.dtype).tobytes() + data[offset + len(raw):]


def test_sparsity_and_unique_values_are_read_from_the_weights(reference_models_dir, mnist_int8):
    """Prune and cluster the 1024x1024 kernel by editing its bytes; anatomy must see both."""
    from dnncomp.anatomy import _Graph

    path = reference_models_dir / "mnist_quantized_model.tflite"
    data = path.read_bytes()
    graph = _Graph(data)
    dense = next(w for w in mnist_int8["weights"] if w["shape"] == [1024, 1024])
    values = graph.values(dense["index"]).copy()

    pruned_values = values.copy()
    pruned_values[np.argsort(np.abs(values.astype(np.int16)), kind="stable")[: int(0.8 * values.size)]] = 0
    pruned = inspect_model(_patched(data, values, pruned_values))
    pruned_dense = next(w for w in pruned["weights"] if w["index"] == dense["index"])
    assert pruned_dense["sparsity"] == pytest.approx(np.mean(pruned_values == 0))
    assert pruned_dense["sparsity"] >= 0.7999
    # Sparsity over all kernels, weighted by size: the big kernel dominates.
    assert 0.75 < pruned["sparsity"] < 0.8
    assert pruned["size"]["file_bytes"] == len(data) and pruned["size"]["gzip_bytes"] < 0.6 * file_sizes(data)["gzip_bytes"]

    centroids = np.array([-100, -50, -20, -5, 5, 20, 50, 100])
    clustered_values = centroids[np.abs(values[:, None].astype(np.int16) - centroids[None, :]).argmin(axis=1)]
    clustered = inspect_model(_patched(data, values, clustered_values))
    clustered_dense = next(w for w in clustered["weights"] if w["index"] == dense["index"])
    assert clustered_dense["unique"] == 8


def test_peak_activation_bytes_is_a_sensible_lower_bound(mnist_int8):
    # int8 activations: the largest op is conv 1 (28x28 input + 24x24x32 output), plus the float input.
    assert 24 * 24 * 32 <= mnist_int8["peak_activation_bytes"] <= 64 * 1024


def test_not_a_flatbuffer_is_a_model_error(tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(ModelError, match="not a LiteRT"):
        inspect_model(bad)
    with pytest.raises(ModelError, match="not found"):
        inspect_model(tmp_path / "missing.tflite")


@pytest.mark.slow
@pytest.mark.realdata
def test_float_and_dynamic_range_models(real_data_dir):
    from device_models import float_models

    models = float_models(real_data_dir)
    study_float = inspect_model(models["study_mnist_float"])
    kernels = [w for w in study_float["weights"] if w["role"] == "kernel"]
    assert sum(w["size"] for w in kernels) == 800 + 51200 + 1048576 + 10240
    # The untrained model's dense biases are all zero, and the converter drops zero biases.
    assert study_float["params"] == sum(w["size"] for w in study_float["weights"]) <= 1_111_946
    assert study_float["float_kernel_ops"] == 4 and study_float["int8_kernel_ops"] == 0
    assert not is_int8_model(study_float)
    assert {w["dtype"] for w in study_float["weights"]} == {"float32"}
    dynamic = inspect_model(models["tiny_dynamic_range"])
    assert dynamic["hybrid_kernel_ops"] >= 1  # int8 weights, float activations
    assert "int8" in dynamic["kernel_weight_dtypes"]


@pytest.mark.slow
@pytest.mark.realdata
def test_weights_behind_densify_and_dequantize_are_the_kernels(real_data_dir):
    from device_models import float_models

    models = float_models(real_data_dir)
    sparse = inspect_model(models["dense_sparse_format"])
    assert sparse["op_counts"].get("DENSIFY") == 2 and len(sparse["sparse_tensors"]) == 2
    kernels = [w for w in sparse["weights"] if w["role"] == "kernel"]
    assert [w["shape"] for w in kernels] == [[64, 784], [10, 64]] and all(w["sparse_format"] for w in kernels)
    assert sparse["sparsity"] == pytest.approx(0.9, abs=0.01)
    assert sparse["macs"] == 784 * 64 + 64 * 10

    half = inspect_model(models["tiny_float16"])
    assert half["kernel_weight_dtypes"] == {"float16": 3}  # stored as float16, dequantized to float32
    assert half["float_kernel_ops"] == 3
