"""The compression catalogue (issue 5): every recipe beyond the study's four proves its promise on a tiny study-mnist.

One module-wide fixture runs each recipe once from the same saved baseline (8
training steps each: 256 images, batch 32); the tests then read the flatbuffers.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from dnncomp.compress import RecipeContext, apply_recipe, get_recipe, list_recipes
from dnncomp.errors import RecipeError
from dnncomp.models import get_model_spec

CATALOGUE = [
    "ptq-dynamic",
    "ptq-int8",
    "ptq-int8-io",
    "ptq-fp16",
    "ptq-int16x8",
    "prune-sparse",
    "prune-2x4",
    "prune-ptq-int8",
    "pqat",
    "cluster-per-channel",
    "cluster-sparse",
    "cluster-ptq-int8",
    "cqat",
    "pcqat",
]
TRAINING_RECIPES = [name for name in CATALOGUE if not name.startswith("ptq-")]
PRUNE_TINY = {"end_step": "4", "frequency": "1"}  # the tiny epoch is 8 steps: the schedule completes
CALIBRATION = {"representative_samples": "32"}
# label -> (recipe, params); labels with a suffix are the same recipe with other parameters
RUNS = {
    "ptq-dynamic": ("ptq-dynamic", {}),
    "ptq-int8": ("ptq-int8", CALIBRATION),
    "ptq-int8-io": ("ptq-int8-io", CALIBRATION),
    "ptq-int8/uint8": ("ptq-int8", {**CALIBRATION, "io_dtype": "uint8"}),
    "ptq-fp16": ("ptq-fp16", {}),
    "ptq-int16x8": ("ptq-int16x8", CALIBRATION),
    "ptq-int16x8/int16": ("ptq-int16x8", {**CALIBRATION, "io_dtype": "int16"}),
    "prune/constant": ("prune", {"schedule": "constant", "final_sparsity": "0.6", "frequency": "4", "end_step": "8"}),
    "prune-sparse": ("prune-sparse", PRUNE_TINY),
    "prune-2x4": ("prune-2x4", {}),
    "prune-ptq-int8": ("prune-ptq-int8", {**PRUNE_TINY, **CALIBRATION}),
    "pqat": ("pqat", PRUNE_TINY),
    "cluster-per-channel": ("cluster-per-channel", {"number_of_clusters": "4"}),
    "cluster-sparse": ("cluster-sparse", PRUNE_TINY),
    "cluster-ptq-int8": ("cluster-ptq-int8", {"number_of_clusters": "6", **CALIBRATION}),
    "cqat": ("cqat", {}),
    "pcqat": ("pcqat", PRUNE_TINY),
}
KERNEL_OPS = ("CONV_2D", "FULLY_CONNECTED")


# ---- registry and CLI (no TensorFlow) ----------------------------------------------------------


def test_every_catalogue_recipe_is_registered_with_the_study_budget():
    names = [recipe.name for recipe in list_recipes()]
    assert set(CATALOGUE) <= set(names) and len(names) == len(set(names))
    for name in TRAINING_RECIPES:
        params = get_recipe(name).resolve_params()
        assert (params["epochs"], params["batch_size"]) == (1, 32), name
    for name in ("ptq-int8", "prune-ptq-int8", "cluster-ptq-int8"):
        assert get_recipe(name).resolve_params()["representative_samples"] == 500
    assert get_recipe("ptq-int8").resolve_params()["io_dtype"] == "float32"
    assert get_recipe("ptq-int8-io").resolve_params()["io_dtype"] == "int8"
    assert get_recipe("prune-sparse").resolve_params()["sparse_format"] is True
    assert get_recipe("prune").resolve_params({"sparse_format": "true"})["sparse_format"] is True
    json.dumps([recipe.describe() for recipe in list_recipes()])


@pytest.mark.parametrize(
    "recipe, params, message",
    [
        ("ptq-int8", {"io_dtype": "int16"}, "not one of"),
        ("ptq-int16x8", {"io_dtype": "int8"}, "not one of"),
        ("ptq-fp16", {"io_dtype": "int8"}, "unknown parameter"),
        ("prune", {"schedule": "cubic"}, "not one of"),
        ("prune-2x4", {"fallback": "dense"}, "not one of"),
        ("pcqat", {"number_of_clusters": "1"}, "below its minimum"),
        ("ptq-int8", {"representative_samples": "0"}, "below its minimum"),
    ],
)
def test_bad_catalogue_parameters_raise_recipe_error(recipe, params, message):
    with pytest.raises(RecipeError, match=message):
        get_recipe(recipe).resolve_params(params)


def test_recipes_command_lists_every_recipe_with_its_defaults(capsys):
    from dnncomp.cli import main

    assert main(["recipes", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in listed] == [r.name for r in list_recipes()]
    assert listed[[r["name"] for r in listed].index("pcqat")]["params"]["number_of_clusters"]["default"] == 8
    assert main(["recipes"]) == 0
    table = capsys.readouterr().out
    for recipe in list_recipes():
        assert recipe.name in table
    assert main(["recipes", "prune-2x4"]) == 0
    assert "fallback_sparsity=0.5" in capsys.readouterr().out
    assert main(["recipes", "prune-3x4"]) == 2
    assert "unknown recipe" in capsys.readouterr().err


def test_compress_params_and_model_inference(tmp_path):
    from dnncomp.cli import _parse_key_values

    assert _parse_key_values(("final_sparsity=0.9", "prune.end_step=20"), "prune") == {"final_sparsity": "0.9", "end_step": "20"}
    with pytest.raises(RecipeError, match="KEY=VALUE"):
        _parse_key_values(("cluster.end_step=20",), "prune")
    with pytest.raises(RecipeError, match="KEY=VALUE"):
        _parse_key_values(("end_step",), "prune")
    # The file decides its shape and classes; a registered spec only lends its training defaults:
    # the run dir's model, or --model (which must agree with the file).
    from dnncomp.contract import ModelContract
    from dnncomp.contract import training_spec_for as _training_spec
    from dnncomp.errors import ModelError
    from dnncomp.preprocess import input_layout

    contract = ModelContract(
        path="baseline.keras",
        name="m",
        input_shape=(32, 32, 3),
        layout=input_layout((32, 32, 3)),
        num_classes=10,
        output="softmax",
        output_reason="dense has activation softmax",
    )
    in_run = tmp_path / "runs" / "cifar10" / "study-cifar10" / "baseline.keras"
    assert _training_spec(in_run, "cifar10", None, contract).name == "study-cifar10"
    assert _training_spec(tmp_path / "baseline.keras", "cifar10", None, contract) is None
    assert _training_spec(in_run, "cifar10", "study", contract).name == "study-cifar10"
    with pytest.raises(ModelError, match="--model study-mnist takes 28x28x1"):
        _training_spec(in_run, "mnist", "study", contract)


def test_m_by_n_violations_counts_groups_along_the_input_channels():
    from dnncomp.compress.prune import m_by_n_violations

    good = np.array([[1, 0, 2, 0, 0, 0, 3, 4]], np.float32)  # [out=1, in=8]: 2 of every 4 are zero
    assert m_by_n_violations(good) == 0
    assert m_by_n_violations(np.array([[1, 1, 1, 0, 0, 0, 0, 1]])) == 1
    assert m_by_n_violations(np.array([[1, 0, 0, 0, 1, 1, 1]])) == 1  # a short last group still holds at most 2
    conv = np.zeros((3, 3, 8, 2))  # Keras [kh, kw, in, out]
    conv[..., 0::2, :] = 1.0
    assert m_by_n_violations(conv, layout="keras") == 0
    conv[0, 0, 1, 1] = 1.0
    assert m_by_n_violations(conv, layout="keras") == 1


# ---- every recipe on a tiny trained study-mnist ------------------------------------------------


@pytest.fixture(scope="module")
def catalogue():
    from dnncomp.fileio import sha256_file
    from dnncomp.train import load_baseline
    from tinymodels import tiny_baseline

    baseline_path, x, y = tiny_baseline()
    before_sha = {p.name: sha256_file(p) for p in baseline_path.parent.glob("baseline.*")}
    baseline = load_baseline(baseline_path)
    before_weights = baseline.get_weights()
    ctx = RecipeContext(baseline_path=baseline_path, spec=get_model_spec("study-mnist"), x_train=x, y_train=y, seed=0)
    results = {label: apply_recipe(recipe, ctx, params) for label, (recipe, params) in RUNS.items()}
    return {
        "results": results,
        "ctx": ctx,
        # Keras numbers layer names per process (conv2d, or conv2d_4 after other tests): read them
        "kernel_layers": [layer.name for layer in baseline.layers if hasattr(layer, "kernel")],
        "before_sha": before_sha,
        "after_sha": {p.name: sha256_file(p) for p in baseline_path.parent.glob("baseline.*")},
        "before_weights": before_weights,
        "after_weights": load_baseline(baseline_path).get_weights(),
    }


def _kernels(tflite: bytes) -> list[tuple[str, np.ndarray]]:
    from tinymodels import weight_arrays

    return [(op, w) for op in KERNEL_OPS for w in weight_arrays(tflite, op)]


def _kernel_dtypes(tflite: bytes) -> list[tuple[str, list[str]]]:
    from tinymodels import ops_with_input_dtypes

    return [(name, dtypes) for name, dtypes in ops_with_input_dtypes(tflite) if name in KERNEL_OPS]


def _io_dtypes(tflite: bytes) -> tuple[type, type]:
    from tinymodels import interpreter

    it = interpreter(tflite)
    return it.get_input_details()[0]["dtype"], it.get_output_details()[0]["dtype"]


@pytest.mark.tf
@pytest.mark.slow
def test_baseline_is_bit_identical_after_every_catalogue_recipe(catalogue):
    assert catalogue["after_sha"] == catalogue["before_sha"]
    for a, b in zip(catalogue["before_weights"], catalogue["after_weights"], strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)


@pytest.mark.tf
@pytest.mark.slow
def test_every_catalogue_result_is_a_flatbuffer_with_json_info(catalogue):
    for label, result in catalogue["results"].items():
        assert result.tflite[4:8] == b"TFL3", label
        assert result.info["recipe"] == RUNS[label][0] and result.info["wall_s"] > 0, label
        assert result.info.get("layers_left_alone", {}) == {}, label  # the study model is all supported layers
        json.dumps(result.info)
    assert set(label.split("/")[0] for label in catalogue["results"]) >= set(CATALOGUE)


@pytest.mark.tf
@pytest.mark.slow
def test_dynamic_range_has_int8_weights_and_float_activations(catalogue):
    tflite = catalogue["results"]["ptq-dynamic"].tflite
    assert _io_dtypes(tflite) == (np.float32, np.float32)
    for (op, dtypes), (_, weights) in zip(_kernel_dtypes(tflite), _kernels(tflite)):
        assert dtypes[0] == "float32", op  # activations stay float
        # the converter leaves tensors under 1024 weights in float (here the first 5x5x1x32 convolution)
        assert dtypes[1] == ("int8" if weights.size >= 1024 else "float32"), (op, weights.shape)


@pytest.mark.tf
@pytest.mark.slow
@pytest.mark.parametrize("label, io", [("ptq-int8", np.float32), ("ptq-int8-io", np.int8), ("ptq-int8/uint8", np.uint8)])
def test_full_integer_int8_with_the_requested_io(catalogue, label, io):
    result = catalogue["results"][label]
    kernels = _kernel_dtypes(result.tflite)
    assert [op for op, _ in kernels] == ["CONV_2D", "CONV_2D", "FULLY_CONNECTED", "FULLY_CONNECTED"]
    for op, dtypes in kernels:
        assert dtypes == ["int8", "int8", "int32"], (op, dtypes)
    assert _io_dtypes(result.tflite) == (io, io)
    assert result.info["representative_samples"] == 32 and result.info["float_fallback"] is False
    assert result.info["float_kernel_ops"] == []


@pytest.mark.tf
@pytest.mark.slow
def test_float16_stores_every_kernel_in_half_precision(catalogue):
    from tinymodels import interpreter

    tflite = catalogue["results"]["ptq-fp16"].tflite
    halves = {tuple(t["shape"]) for t in interpreter(tflite).get_tensor_details() if t["dtype"] == np.float16}
    assert {(32, 5, 5, 1), (64, 5, 5, 32), (1024, 1024), (10, 1024)} <= halves
    assert _io_dtypes(tflite) == (np.float32, np.float32)
    float_size = 1_111_946 * 4
    assert len(tflite) < 0.55 * float_size


@pytest.mark.tf
@pytest.mark.slow
@pytest.mark.parametrize("label, io", [("ptq-int16x8", np.float32), ("ptq-int16x8/int16", np.int16)])
def test_int16x8_has_int16_activations_and_int8_weights(catalogue, label, io):
    tflite = catalogue["results"][label].tflite
    kernels = _kernel_dtypes(tflite)
    assert len(kernels) == 4
    for op, dtypes in kernels:
        assert dtypes[:2] == ["int16", "int8"], (op, dtypes)
    assert _io_dtypes(tflite) == (io, io)


@pytest.mark.tf
@pytest.mark.slow
def test_constant_schedule_reaches_its_sparsity(catalogue):
    info = catalogue["results"]["prune/constant"].info
    assert info["schedule_completed"] and info["params"]["schedule"] == "constant"
    for _, weights in _kernels(catalogue["results"]["prune/constant"].tflite):
        assert np.mean(weights == 0) == pytest.approx(0.6, abs=0.01)


@pytest.mark.tf
@pytest.mark.slow
def test_2x4_pattern_holds_in_every_group_of_the_flatbuffer_kernels(catalogue):
    from dnncomp.compress.prune import m_by_n_violations

    result = catalogue["results"]["prune-2x4"]
    info = result.info
    first_conv, *others = catalogue["kernel_layers"]  # conv 5x5x1x32, conv 5x5x32x64, dense, dense
    assert info["structured_layers"] == others
    assert info["unstructured_fallback_layers"] == {first_conv: 0.5}  # 1 input channel: no group of 4 exists
    assert info["m_by_n_violations"] == {name: 0 for name in others}
    kernels = _kernels(result.tflite)
    first_kernel, structured = kernels[0][1], [w for _, w in kernels[1:]]
    assert first_kernel.shape == (32, 5, 5, 1) and np.mean(first_kernel == 0) == pytest.approx(0.5, abs=0.01)
    for weights in structured:  # LiteRT layout: input channels last, groups of 4 along them
        assert weights.shape[-1] % 4 == 0
        groups = (weights.reshape(-1, 4) != 0).sum(axis=1)
        assert groups.max() <= 2 and m_by_n_violations(weights) == 0
        assert np.mean(weights == 0) >= 0.5


@pytest.mark.tf
@pytest.mark.slow
def test_sparse_format_really_stores_sparse_tensors(catalogue):
    from dnncomp.compress.quantize import convert
    from tinymodels import interpreter, ops_with_input_dtypes, sparse_tensors

    result = catalogue["results"]["prune-sparse"]
    assert len(sparse_tensors(result.tflite)) == 4 and result.info["sparse_tensors"] == 4
    assert [op for op, _ in ops_with_input_dtypes(result.tflite)].count("DENSIFY") == 4
    dense, _ = convert(result.keras_model, catalogue["ctx"], mode="float")
    assert sparse_tensors(dense) == []
    assert len(result.tflite) < 0.7 * len(dense)
    # same weights, same answers: the sparse format is storage only
    ctx = catalogue["ctx"]
    outputs = []
    for model in (dense, result.tflite):
        it = interpreter(model)
        inp, out = it.get_input_details()[0], it.get_output_details()[0]
        it.set_tensor(inp["index"], ctx.inputs[:1])
        it.invoke()
        outputs.append(it.get_tensor(out["index"]))
    np.testing.assert_array_equal(outputs[0], outputs[1])


@pytest.mark.tf
@pytest.mark.slow
def test_int8_sparse_format_is_refused_while_xnnpack_cannot_run_it(catalogue):
    from dnncomp.compress.quantize import convert

    # ai-edge-litert 2.3.0 (constraints.txt): XNNPACK fails to prepare FULLY_CONNECTED fed by int8 DENSIFY weights
    with pytest.raises(RecipeError, match="does not run in LiteRT with its default XNNPACK delegate"):
        convert(
            catalogue["results"]["prune-sparse"].keras_model,
            catalogue["ctx"],
            mode="int8",
            representative_samples=8,
            sparse_format=True,
        )


@pytest.mark.tf
@pytest.mark.slow
@pytest.mark.parametrize("label", ["prune-ptq-int8", "pqat"])
def test_pruning_then_int8_keeps_the_zeros(catalogue, label):
    result = catalogue["results"][label]
    assert result.info["pruning"]["schedule_completed"]
    for op, dtypes in _kernel_dtypes(result.tflite):
        assert dtypes[:2] == ["int8", "int8"], (label, op)
    for op, weights in _kernels(result.tflite):
        assert weights.dtype == np.int8 and np.mean(weights == 0) == pytest.approx(0.8, abs=0.01), (label, op)
    if label == "pqat":
        assert result.info["qat"]["scheme"] == "Default8BitPrunePreserveQuantizeScheme"


@pytest.mark.tf
@pytest.mark.slow
def test_per_channel_clustering_limits_each_output_channel(catalogue):
    from tinymodels import max_unique_per_output_channel

    result = catalogue["results"]["cluster-per-channel"]
    assert result.info["per_channel_layers"] == catalogue["kernel_layers"][:2]  # the two Conv2D
    for op, weights in _kernels(result.tflite):
        assert max_unique_per_output_channel(weights) <= 4, op
        if op == "CONV_2D":  # per channel, not per tensor: the channels' centroids differ
            assert np.unique(weights).size > 4
        else:  # Dense kernels are clustered per tensor
            assert np.unique(weights).size <= 4


@pytest.mark.tf
@pytest.mark.slow
def test_sparsity_preserving_clustering_keeps_the_zeros(catalogue):
    result = catalogue["results"]["cluster-sparse"]
    for op, weights in _kernels(result.tflite):
        values = np.unique(weights)
        assert values.size <= 8 and 0.0 in values, op  # zero is one of the 8 centroids
        assert np.mean(weights == 0) == pytest.approx(0.8, abs=0.01), op


@pytest.mark.tf
@pytest.mark.slow
@pytest.mark.parametrize("label, clusters, sparsity", [("cluster-ptq-int8", 6, None), ("cqat", 8, None), ("pcqat", 8, 0.8)])
def test_clustering_survives_int8(catalogue, label, clusters, sparsity):
    from tinymodels import max_unique_per_output_channel

    result = catalogue["results"][label]
    for op, dtypes in _kernel_dtypes(result.tflite):
        assert dtypes[:2] == ["int8", "int8"], (label, op)
    for op, weights in _kernels(result.tflite):
        # int8 weights are quantized per output channel, so the limit holds per channel
        assert max_unique_per_output_channel(weights) <= clusters, (label, op)
        if sparsity is not None:
            assert np.mean(weights == 0) == pytest.approx(sparsity, abs=0.01), (label, op)


@pytest.mark.tf
@pytest.mark.slow
@pytest.mark.parametrize("model_name", ["study-cifar10", "study-gtsrb"])
def test_2x4_and_integer_io_on_the_colour_models(model_name, tmp_path):
    """Three input channels get the unstructured fallback; softmax outputs survive int8 input and output."""
    from dnncomp.compress.prune import m_by_n_violations
    from dnncomp.train import save_baseline, train_baseline
    from tinymodels import interpreter

    spec = get_model_spec(model_name)
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, size=(32, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, spec.num_classes, size=32)
    model, _ = train_baseline(spec, x, y, epochs=1, batch_size=32, seed=0, verbose=0)
    save_baseline(model, tmp_path, formats=("keras",))
    ctx = RecipeContext(baseline_path=tmp_path / "baseline.keras", spec=spec, x_train=x, y_train=y)

    pruned = apply_recipe("prune-2x4", ctx)
    first_conv = model.layers[0].name
    assert pruned.info["unstructured_fallback_layers"] == {first_conv: 0.5}
    assert len(pruned.info["structured_layers"]) == 5  # three more convolutions and both dense layers
    for op, weights in _kernels(pruned.tflite)[1:]:
        assert m_by_n_violations(weights) == 0, op

    result = apply_recipe("ptq-int8-io", ctx, CALIBRATION)
    it = interpreter(result.tflite)
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    assert inp["dtype"] == out["dtype"] == np.int8 and tuple(out["shape"]) == (1, spec.num_classes)
    scale, zero = inp["quantization"]
    it.set_tensor(inp["index"], np.clip(np.round(ctx.inputs[:1] / scale + zero), -128, 127).astype(np.int8))
    it.invoke()
    out_scale, out_zero = out["quantization"]
    probabilities = (it.get_tensor(out["index"]).astype(np.float32) - out_zero) * out_scale
    assert probabilities.sum() == pytest.approx(1.0, abs=0.05)  # the softmax survived


# ---- layers a technique cannot handle, and refusals ------------------------------------------


@pytest.mark.tf
@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["qat", "pcqat"])
def test_a_layer_qat_cannot_handle_is_left_in_float_and_reported(recipe):
    from tinymodels import interpreter, tiny_baseline_with_unsupported_layer

    baseline_path, x, y = tiny_baseline_with_unsupported_layer()
    ctx = RecipeContext(baseline_path=baseline_path, spec=get_model_spec("study-mnist"), x_train=x, y_train=y)
    result = apply_recipe(recipe, ctx, {"end_step": "1", "frequency": "1"} if recipe == "pcqat" else {})
    left = result.info["layers_left_alone"]
    assert list(left) == ["layer_norm"] and "LayerNormalization" in left["layer_norm"]
    qat = result.info if recipe == "qat" else result.info["qat"]
    assert qat["quantized_layers"] == ["reshape", "conv", "pool", "flatten", "logits"]
    kernels = dict(_kernel_dtypes(result.tflite))
    assert kernels["CONV_2D"][:2] == ["int8", "int8"]  # quantized before the unsupported layer
    assert result.info["float_kernel_ops"]  # and the converter says what it left in float after it
    it = interpreter(result.tflite)
    it.set_tensor(it.get_input_details()[0]["index"], ctx.inputs[:1])
    it.invoke()
    assert np.isfinite(it.get_tensor(it.get_output_details()[0]["index"])).all()


@pytest.mark.tf
@pytest.mark.slow
def test_full_integer_falls_back_to_float_ops_when_the_converter_refuses(catalogue, monkeypatch):
    import dnncomp.export as export
    from dnncomp.errors import ModelError

    real = export.to_tflite

    def refuse_integer_only(model, **options):
        if options.get("supported_ops") == ["TFLITE_BUILTINS_INT8"]:
            raise ModelError("LiteRT conversion failed: op FOO has no int8 kernel")
        return real(model, **options)

    monkeypatch.setattr(export, "to_tflite", refuse_integer_only)
    result = apply_recipe("ptq-int8", catalogue["ctx"], CALIBRATION)
    assert result.info["float_fallback"] is True and "FOO" in result.info["strict_conversion_error"]
    assert result.info["float_kernel_ops"] == []  # every kernel of this model still quantizes


@pytest.mark.tf
@pytest.mark.slow
def test_a_schedule_longer_than_the_fine_tuning_is_refused_before_training(catalogue):
    with pytest.raises(RecipeError, match="runs only 8 steps"):
        apply_recipe("prune-ptq-int8", catalogue["ctx"], {})  # end_step 1000 > 256 images / 32
    with pytest.raises(RecipeError, match="multiple of frequency"):
        apply_recipe("pqat", catalogue["ctx"], {"end_step": "5", "frequency": "2"})


# ---- dnncomp compress, end to end ---------------------------------------------------------------


@pytest.mark.tf
@pytest.mark.slow
def test_compress_command_writes_the_flatbuffer_and_says_what_it_did(tmp_path, monkeypatch, capsys):
    import dnncomp.data
    from dnncomp.cli import main
    from dnncomp.data import Dataset
    from dnncomp.fileio import sha256_file
    from tinymodels import tiny_baseline

    baseline_path, x, y = tiny_baseline()
    loads = []

    def load_dataset(name, data_dir=None, image_size=None, **_):
        loads.append((name, image_size))
        return Dataset(name=name, x_train=x, y_train=y, x_test=x[:8], y_test=y[:8], class_names=[str(i) for i in range(10)])

    monkeypatch.setattr(dnncomp.data, "load_dataset", load_dataset)
    before = sha256_file(baseline_path)
    out, info_json = tmp_path / "pruned.tflite", tmp_path / "pruned.json"
    code = main(
        [
            # --model lends study-mnist's training defaults; finetune=study asks for the study's fine-tuning and layer
            # treatment (a file outside a run dir otherwise gets the recovering fine-tuning of issue 13, with denser edges)
            "compress",
            str(baseline_path),
            "--dataset",
            "mnist",
            "--model",
            "study-mnist",
            "--recipe",
            "prune",
            "--param",
            "finetune=study",
            "--param",
            "end_step=4",
            "--param",
            "prune.frequency=1",
            "--out",
            str(out),
            "--json",
            str(info_json),
            "--quiet",
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0 and loads == [("mnist", (28, 28))]
    assert out.read_bytes()[4:8] == b"TFL3" and sha256_file(baseline_path) == before
    assert re.search(r"pruned \(4 layers\): conv2d(_\d+)? 80\.0%", printed), printed
    assert "left alone: none" in printed and "schedule completed" in printed
    assert "sparsity (kernels) 0.800" in printed
    record = json.loads(info_json.read_text())
    assert record["model"] == "study-mnist" and record["info"]["params"]["end_step"] == 4

    assert main(["compress", str(baseline_path), "--dataset", "mnist", "--recipe", "prune", "--param", "end_stp=4"]) == 2
    assert "unknown parameter(s) end_stp" in capsys.readouterr().err
    assert main(["compress", str(tmp_path / "none.keras"), "--dataset", "mnist", "--recipe", "float"]) == 2
    assert "none.keras: model not found" in capsys.readouterr().err
    assert len(loads) == 1  # refused before loading any data


@pytest.mark.tf
@pytest.mark.slow
def test_per_channel_clustering_of_bias_free_convolutions_falls_back_to_per_tensor(tmp_path):
    """TFMOT 0.8.1 silently skips per-channel clustering of a Conv2D without bias (conv + batch norm,
    as in the improved and tiny models): the recipe clusters those per tensor and says so."""
    from dnncomp.train import save_baseline, train_baseline
    from tinymodels import max_unique_per_output_channel, random_mnist_like

    spec = get_model_spec("tiny-mnist")
    x, y = random_mnist_like(64)
    model, _ = train_baseline(spec, x, y, epochs=1, batch_size=32, seed=0, verbose=0, schedule=spec.training["schedule"])
    save_baseline(model, tmp_path, formats=("keras",))
    ctx = RecipeContext(baseline_path=tmp_path / "baseline.keras", spec=spec, x_train=x, y_train=y)
    # every layer alike (edge_layers=include): the first conv would otherwise get twice the clusters (issue 13)
    result = apply_recipe("cluster-per-channel", ctx, {"number_of_clusters": "4", "edge_layers": "include"})
    convs = [layer.name for layer in model.layers if type(layer).__name__ == "Conv2D"]
    assert convs and sorted(result.info["per_tensor_fallback_layers"]) == sorted(convs)
    assert result.info["per_channel_layers"] == []
    conv_kernels = [w for op, w in _kernels(result.tflite) if op == "CONV_2D"]
    assert len(conv_kernels) == len(convs)
    for weights in conv_kernels:  # batch norm folds a per-channel scale in: at most 4 values per channel
        assert max_unique_per_output_channel(weights) <= 4
