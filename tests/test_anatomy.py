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
        24 * 24 * 32 * 25,
        8 * 8 * 64 * 800,
        1024 * 1024,
        10240,
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
    return data[:offset] + replacement.astype(original.dtype).tobytes() + data[offset + len(raw) :]


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


@pytest.mark.tf
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


@pytest.mark.tf
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


# ---- per-layer, per-output-channel analysis of kernel ops ------------------------------------


@pytest.fixture(scope="module")
def channel_models(tmp_path_factory):
    """A float and an int8 flatbuffer of depthwise, separable, transposed and nested convolutions and a dense
    head, whose weights are set so that output channel o holds exactly o + 1 distinct values (channel 0: zeros).

    Counting along any other axis than the op's output-channel axis mixes channels and finds more values.
    """
    from dnncomp.export import to_tflite
    from dnncomp.keras_env import import_keras

    tf, keras = import_keras()
    layers = keras.layers
    inputs = keras.Input((8, 8, 3))
    x = layers.DepthwiseConv2D(3, padding="same", name="dw")(inputs)
    x = layers.SeparableConv2D(6, 3, padding="same", name="sep")(x)
    x = layers.Conv2DTranspose(5, 3, strides=2, padding="same", name="tconv")(x)
    backbone = keras.Sequential(
        [keras.Input((16, 16, 5)), layers.Conv2D(4, 3, name="inner_conv"), layers.GlobalAveragePooling2D()], name="backbone"
    )
    model = keras.Model(inputs, layers.Dense(3, name="head")(backbone(x)), name="mixed")

    def per_channel(shape, axis):
        """Values o * 10 + (position % (o + 1)) for output channel o along ``axis``; channel 0 all zero."""
        moved = list(shape)
        channels = moved.pop(axis)
        count = int(np.prod(moved))
        rows = np.stack([(o * 10 + np.arange(count) % (o + 1)) * (o > 0) for o in range(channels)]).astype(np.float32)
        return np.moveaxis(rows.reshape([channels, *moved]), 0, axis) / 100.0

    dw = model.get_layer("dw")
    dw.set_weights([per_channel(dw.depthwise_kernel.shape, 2), np.zeros(3, np.float32)])
    sep = model.get_layer("sep")
    sep.set_weights(
        [per_channel(sep.depthwise_kernel.shape, 2), per_channel(sep.pointwise_kernel.shape, 3), np.zeros(6, np.float32)]
    )
    tconv = model.get_layer("tconv")  # Keras [kh, kw, out, in]
    tconv.set_weights([per_channel(tconv.kernel.shape, 2), np.zeros(5, np.float32)])
    inner = backbone.get_layer("inner_conv")
    inner.set_weights([per_channel(inner.kernel.shape, 3), np.zeros(4, np.float32)])
    head = model.get_layer("head")
    head.set_weights([per_channel(head.kernel.shape, 1), np.zeros(3, np.float32)])
    data = np.random.default_rng(0).uniform(0, 1, (16, 8, 8, 3)).astype(np.float32)
    return {
        "float": to_tflite(model),
        "int8": to_tflite(model, optimizations=["DEFAULT"], representative_data=data, supported_ops=["TFLITE_BUILTINS_INT8"]),
    }


@pytest.mark.tf
@pytest.mark.slow
def test_kernel_ops_count_distinct_values_along_each_ops_output_channel_axis(channel_models):
    from dnncomp.anatomy import OUTPUT_CHANNEL_AXIS, layer_table

    anatomy = inspect_model(channel_models["float"])
    records = {(r["layer"], r["op"]): r for r in anatomy["kernel_ops"]}
    assert list(records) == [
        ("dw", "DEPTHWISE_CONV_2D"),
        ("sep", "DEPTHWISE_CONV_2D"),
        ("sep", "CONV_2D"),
        ("tconv", "TRANSPOSE_CONV"),
        ("backbone/inner_conv", "CONV_2D"),
        ("head", "FULLY_CONNECTED"),
    ]
    for (layer, op), record in records.items():
        assert record["channel_axis"] == OUTPUT_CHANNEL_AXIS[op]
        channels = record["shape"][record["channel_axis"]]
        # o + 1 values in channel o (as far as the channel has room): the last channel has the most.
        assert record["max_unique_per_channel"] == min(channels, record["size"] // channels), (layer, op)
        assert record["zeros"] == pytest.approx(1 / channels)  # channel 0 is all zero
        assert record["weight_dtype"] == "float32" and record["compute_dtype"] == "float32"
    assert records[("tconv", "TRANSPOSE_CONV")]["max_unique_per_channel"] == 5
    assert records[("sep", "CONV_2D")]["max_unique_per_channel"] == 3  # pointwise: 3 weights per channel
    assert {k: v for k, v in records[("tconv", "TRANSPOSE_CONV")].items() if k in ("shape", "channel_axis")} == {
        "shape": [5, 3, 3, 6],
        "channel_axis": 0,
    }
    table = layer_table(anatomy)
    assert list(table) == ["dw", "sep", "tconv", "backbone/inner_conv", "head"]
    assert table["sep"]["ops"] == ["DEPTHWISE_CONV_2D", "CONV_2D"] and table["sep"]["size"] == 27 + 18
    assert table["sep"]["max_unique_per_channel"] == 3 and table["tconv"]["unique"] == 15
    assert table["sep"]["zeros"] == pytest.approx((9 + 3) / 45)  # 9 of the depthwise kernel, 3 of the pointwise


@pytest.mark.tf
@pytest.mark.slow
def test_int8_kernel_ops_keep_per_channel_values_and_compute_in_int8(channel_models):
    from dnncomp.anatomy import float_ops, layer_table

    anatomy = inspect_model(channel_models["int8"])
    table = layer_table(anatomy)
    assert list(table) == ["dw", "sep", "tconv", "backbone/inner_conv", "head"]
    for layer, row in table.items():
        assert row["weight_dtypes"] == ["int8"] and row["compute_dtypes"] == ["int8"], layer
    # Per-channel scales map each channel's o + 1 values to o + 1 int8 values.
    assert table["tconv"]["max_unique_per_channel"] == 5 and table["backbone/inner_conv"]["max_unique_per_channel"] == 4
    assert float_ops(anatomy) == []


@pytest.mark.tf
@pytest.mark.slow
def test_compression_check_compares_intentions_with_the_file(channel_models):
    from dnncomp.compress.summary import check_lines, compression_check

    anatomy = inspect_model(channel_models["float"])
    # A recipe that says it pruned head and inner_conv to 80 %, clustered sep to 6 values per channel and
    # tconv to 6 per kernel, and clustered a layer the file does not have.
    info = {
        "params": {"final_sparsity": 0.8, "number_of_clusters": 6},
        "pruning": {"pruned_layers": ["head", "inner_conv"], "layers_left_alone": {}},
        "clustering": {
            "clustered_layers": ["sep", "tconv", "ghost"],
            "per_channel_layers": ["sep"],
            "layers_left_alone": {"dw": "DepthwiseConv2D: no"},
        },
        "conversion": "float32, no optimizations",
    }
    check = compression_check(info, anatomy)
    rows = {row["layer"]: row for row in check["layers"]}
    assert rows["head"]["meant"] == {"prune": 0.8} and not rows["head"]["holds"]
    assert rows["head"]["problems"] == ["meant: prune 80%, file: 33.3% zeros"]
    assert rows["backbone/inner_conv"]["meant"] == {"prune": 0.8} and not rows["backbone/inner_conv"]["holds"]
    assert rows["sep"]["holds"]  # 6 values in its busiest channel: as meant, per channel
    # tconv was clustered per tensor to 6 values, but the file holds 5 channels x up to 5 values each
    assert rows["tconv"]["problems"] == ["meant: cluster to 6 values per kernel, file: 15 distinct values per kernel"]
    assert rows["dw"]["meant"] == {} and rows["dw"]["left_alone"] == "DepthwiseConv2D: no" and rows["dw"]["holds"]
    assert check["missing"] == ["ghost"] and not check["holds"] and not check["integer_only"]
    lines = check_lines(check)
    assert lines[-1].startswith("check: DOES NOT HOLD for 4 layer(s): ")
    assert any("ghost: meant to be compressed, but no kernel op" in line for line in lines)


@pytest.mark.tf
@pytest.mark.slow
def test_compression_check_of_an_integer_recipe_lists_float_ops(channel_models):
    from dnncomp.compress.summary import compression_check

    info = {"params": {}, "conversion": "int8", "float_kernel_ops": [], "layers_left_alone": {}}
    int8 = compression_check(info, inspect_model(channel_models["int8"]))
    assert int8["holds"] and int8["integer_only"] and int8["float_ops"] == []
    assert all(row["meant"] == {"quantize": "int8"} for row in int8["layers"])
    # The float file under the same intention: every layer is reported as not int8, and every op as float.
    floats = compression_check(info, inspect_model(channel_models["float"]))
    assert not floats["holds"] and all(not row["holds"] for row in floats["layers"])
    assert floats["layers"][0]["problems"] == ["meant: int8, file: float32 weights computing in float32"]
    assert "MEAN #8" in floats["float_ops"] and not any(op.startswith("SHAPE") for op in floats["float_ops"])
