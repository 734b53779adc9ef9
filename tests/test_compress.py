"""Compression recipes: the registry's contract, then each study technique proving its promise on a tiny study-mnist."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dnncomp.compress import Param, RecipeContext, apply_recipe, get_recipe, list_recipes
from dnncomp.errors import RecipeError
from dnncomp.models import get_model_spec

STUDY_RECIPES = ["float", "qat", "prune", "cluster"]
# The tiny epoch is 256 images / batch 32 = 8 steps: end the pruning schedule at step 4 so it completes.
TINY_PARAMS = {
    "qat": {"batch_size": "32"},
    "prune": {"end_step": "4", "frequency": "1"},
    "cluster": {},
    "float": {},
}


# ---- registry (no TensorFlow) ---------------------------------------------------------


# How a recipe fine-tunes (issue 13): study models keep the study's way with these at their defaults.
FINE_TUNING = {"finetune": "auto", "learning_rate": None, "augment": None, "distill": None, "alpha": 0.5, "temperature": 4.0}
LAYERS = {"per_layer": "uniform", "skip_layers": "", "edge_layers": "auto"}  # auto: every layer alike for study models


def test_study_recipes_registered_with_study_defaults():
    assert [r.name for r in list_recipes() if r.name in STUDY_RECIPES] == STUDY_RECIPES
    assert get_recipe("prune").resolve_params() == {
        "schedule": "polynomial",
        "initial_sparsity": 0.5,
        "final_sparsity": 0.8,
        "begin_step": 0,
        "end_step": 1000,
        "frequency": 100,
        "begin": None,
        "end": None,
        **LAYERS,
        "epochs": 1,
        "batch_size": 32,
        **FINE_TUNING,
        "sparse_format": False,
    }
    assert get_recipe("cluster").resolve_params() == {
        "number_of_clusters": 8,
        "init": "kmeans_plus_plus",
        **LAYERS,
        "epochs": 1,
        "batch_size": 32,
        **FINE_TUNING,
    }
    assert get_recipe("qat").resolve_params() == {"epochs": 1, "batch_size": 32, **FINE_TUNING, "io_dtype": "float32"}
    assert get_recipe("float").resolve_params() == {}
    described = get_recipe("prune").describe()
    assert described["params"]["final_sparsity"]["type"] == "float" and described["description"]
    json.dumps([r.describe() for r in list_recipes()])


def test_cli_strings_are_converted_to_the_parameter_types():
    params = get_recipe("prune").resolve_params({"final_sparsity": "0.9", "end_step": "2e3", "epochs": 2})
    assert params["final_sparsity"] == 0.9 and params["end_step"] == 2000 and params["epochs"] == 2
    assert Param(False).convert("k", "yes") is True and Param(True).convert("k", "off") is False


@pytest.mark.parametrize(
    "recipe, params, message",
    [
        ("prune", {"final_sparsty": "0.9"}, "unknown parameter"),
        ("prune", {"end_step": "ten"}, "not a valid int"),
        ("prune", {"end_step": "10.5"}, "not a valid int"),
        ("prune", {"final_sparsity": "1.5"}, "above its maximum"),
        ("prune", {"final_sparsity": "nan"}, "not a valid float"),
        ("prune", {"epochs": True}, "not a valid int"),
        ("cluster", {"init": "kmeans"}, "not one of"),
        ("cluster", {"number_of_clusters": "1"}, "below its minimum"),
        ("float", {"epochs": "1"}, "unknown parameter"),
    ],
)
def test_bad_parameters_raise_recipe_error(recipe, params, message):
    with pytest.raises(RecipeError, match=message):
        get_recipe(recipe).resolve_params(params)


def test_unknown_recipe_lists_the_known_ones():
    with pytest.raises(RecipeError, match="known recipes: float, qat, prune, .*cluster"):
        get_recipe("prune-2:4")


def test_missing_baseline_is_a_recipe_error(tmp_path):
    x = np.zeros((4, 28, 28, 1), np.uint8)
    ctx = RecipeContext(
        baseline_path=tmp_path / "baseline.keras", spec=get_model_spec("study-mnist"), x_train=x, y_train=np.zeros(4)
    )
    with pytest.raises(RecipeError, match="train the baseline first"):
        apply_recipe("float", ctx)


def test_context_turns_uint8_images_into_model_inputs(tmp_path):
    x = np.full((3, 28, 28, 1), 255, np.uint8)
    ctx = RecipeContext(baseline_path=tmp_path / "b.keras", spec=get_model_spec("study-mnist"), x_train=x, y_train=np.arange(3))
    assert ctx.inputs.shape == (3, 28, 28) and ctx.inputs.dtype == np.float32 and ctx.inputs.max() == 1.0
    with pytest.raises(RecipeError, match="labels"):
        RecipeContext(baseline_path=tmp_path / "b.keras", spec=get_model_spec("study-mnist"), x_train=x, y_train=np.arange(2))


# ---- the four study techniques on a tiny trained study-mnist -------------------------


@pytest.fixture(scope="module")
def recipe_runs():
    """Run every study recipe once from the same saved baseline; record the baseline before and after."""
    from dnncomp.fileio import sha256_file
    from dnncomp.train import load_baseline
    from tinymodels import tiny_baseline

    baseline_path, x, y = tiny_baseline()
    before_sha = {p.name: sha256_file(p) for p in baseline_path.parent.glob("baseline.*")}
    before_weights = load_baseline(baseline_path).get_weights()
    ctx = RecipeContext(baseline_path=baseline_path, spec=get_model_spec("study-mnist"), x_train=x, y_train=y, seed=0, verbose=0)
    results = {name: apply_recipe(name, ctx, TINY_PARAMS[name]) for name in STUDY_RECIPES}
    return {
        "results": results,
        "ctx": ctx,
        "baseline_path": baseline_path,
        "before_sha": before_sha,
        "after_sha": {p.name: sha256_file(p) for p in baseline_path.parent.glob("baseline.*")},
        "before_weights": before_weights,
        "after_weights": load_baseline(baseline_path).get_weights(),
    }


@pytest.mark.tf
@pytest.mark.slow
def test_baseline_is_bit_identical_after_every_technique(recipe_runs):
    assert set(recipe_runs["before_sha"]) == {"baseline.keras", "baseline.h5"}
    assert recipe_runs["after_sha"] == recipe_runs["before_sha"]
    before, after = recipe_runs["before_weights"], recipe_runs["after_weights"]
    assert len(before) == len(after)
    for a, b in zip(before, after):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    # and each technique really changed its own copy: compressed kernels differ from the baseline's
    for name in ("prune", "cluster"):
        kernels = [w for w in recipe_runs["results"][name].keras_model.get_weights() if w.ndim > 1]
        assert not np.array_equal(kernels[0], [w for w in before if w.ndim > 1][0])


@pytest.mark.tf
@pytest.mark.slow
def test_every_result_is_a_flatbuffer_with_json_info(recipe_runs):
    for name, result in recipe_runs["results"].items():
        assert result.tflite[4:8] == b"TFL3", name
        assert result.info["recipe"] == name and result.info["wall_s"] > 0
        json.dumps(result.info)


@pytest.mark.tf
@pytest.mark.slow
def test_float_recipe_matches_keras(recipe_runs):
    from dnncomp.train import load_baseline
    from tinymodels import interpreter

    ctx = recipe_runs["ctx"]
    it = interpreter(recipe_runs["results"]["float"].tflite)
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    assert inp["dtype"] == np.float32 and tuple(inp["shape"]) == (1, 28, 28)
    keras_out = load_baseline(recipe_runs["baseline_path"]).predict(ctx.inputs[:4], verbose=0)
    for i in range(4):
        it.set_tensor(inp["index"], ctx.inputs[i : i + 1])
        it.invoke()
        np.testing.assert_allclose(it.get_tensor(out["index"])[0], keras_out[i], rtol=1e-4, atol=1e-4)


@pytest.mark.tf
@pytest.mark.slow
def test_pruned_model_reaches_its_target_sparsity(recipe_runs):
    from tinymodels import weight_arrays

    result = recipe_runs["results"]["prune"]
    info = result.info
    assert info["schedule_completed"] and info["pruning_steps"] == 8
    assert len(info["pruned_layers"]) == 4 and info["layers_left_alone"] == {}  # 2 Conv2D + 2 Dense kernels
    for name, sparsity in info["kernel_sparsity"].items():
        assert sparsity == pytest.approx(0.8, abs=0.01), name
    assert info["overall_kernel_sparsity"] == pytest.approx(0.8, abs=0.01)
    # the zeros survive conversion: the flatbuffer's conv and dense weights are 80% zero
    weights = weight_arrays(result.tflite, "CONV_2D") + weight_arrays(result.tflite, "FULLY_CONNECTED")
    assert len(weights) == 4
    for w in weights:
        assert np.mean(w == 0) == pytest.approx(0.8, abs=0.01)


@pytest.mark.tf
@pytest.mark.slow
def test_clustered_model_has_at_most_8_values_per_kernel(recipe_runs):
    from tinymodels import weight_arrays

    result = recipe_runs["results"]["cluster"]
    unique = result.info["unique_values_per_kernel"]
    assert len(unique) == 4 and all(1 < n <= 8 for n in unique.values()), unique
    weights = weight_arrays(result.tflite, "CONV_2D") + weight_arrays(result.tflite, "FULLY_CONNECTED")
    assert len(weights) == 4
    for w in weights:
        assert np.unique(w).size <= 8


@pytest.mark.tf
@pytest.mark.slow
def test_qat_flatbuffer_runs_conv_and_dense_in_int8_with_float_io(recipe_runs):
    from tinymodels import interpreter, ops_with_input_dtypes

    tflite = recipe_runs["results"]["qat"].tflite
    ops = ops_with_input_dtypes(tflite)
    compute = [(name, dtypes) for name, dtypes in ops if name in ("CONV_2D", "FULLY_CONNECTED")]
    assert [name for name, _ in compute] == ["CONV_2D", "CONV_2D", "FULLY_CONNECTED", "FULLY_CONNECTED"]
    for name, dtypes in compute:
        assert dtypes[:2] == ["int8", "int8"], (name, dtypes)  # activations and weights
        assert dtypes[2:] in ([], ["int32"]), (name, dtypes)  # int32 bias
    it = interpreter(tflite)
    assert it.get_input_details()[0]["dtype"] == np.float32
    assert it.get_output_details()[0]["dtype"] == np.float32
    assert "QUANTIZE" in [name for name, _ in ops] and "DEQUANTIZE" in [name for name, _ in ops]
    assert recipe_runs["results"]["qat"].info["layers_left_alone"] == {}


@pytest.mark.tf
@pytest.mark.slow
def test_bad_prune_schedule_is_refused_before_training(recipe_runs):
    with pytest.raises(RecipeError, match="multiple of frequency"):
        apply_recipe("prune", recipe_runs["ctx"], {"end_step": "1050"})
    with pytest.raises(RecipeError, match="above final_sparsity"):
        apply_recipe("prune", recipe_runs["ctx"], {"initial_sparsity": "0.9"})


def test_registration_checks_params_against_the_signature():
    from dnncomp.compress import register_recipe

    with pytest.raises(ValueError, match="do not match"):

        @register_recipe("test-mismatch", description="x", params={"epochs": 1})
        def mismatched(ctx, *, epoch):  # pragma: no cover - never registered
            raise AssertionError


@pytest.mark.tf
@pytest.mark.slow
@pytest.mark.parametrize("model_name", ["study-cifar10", "study-gtsrb"])
def test_every_study_recipe_runs_on_the_colour_models(model_name, tmp_path):
    """Dropout, softmax outputs and 3-channel inputs survive QAT, pruning, clustering and conversion."""
    from dnncomp.train import save_baseline, train_baseline
    from tinymodels import interpreter

    spec = get_model_spec(model_name)
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, size=(32, 32, 32, 3), dtype=np.uint8)  # GTSRB's 30x30 comes from the PIL resize
    y = rng.integers(0, spec.num_classes, size=32)
    model, _ = train_baseline(spec, x, y, epochs=1, batch_size=32, seed=0, verbose=0)
    save_baseline(model, tmp_path, formats=("keras",))
    ctx = RecipeContext(baseline_path=tmp_path / "baseline.keras", spec=spec, x_train=x, y_train=y)
    for name in STUDY_RECIPES:
        params = {"end_step": "1", "frequency": "1"} if name == "prune" else {}
        it = interpreter(apply_recipe(name, ctx, params).tflite)
        inp, out = it.get_input_details()[0], it.get_output_details()[0]
        assert tuple(inp["shape"]) == (1, *spec.input_shape) and inp["dtype"] == np.float32, name
        assert tuple(out["shape"]) == (1, spec.num_classes) and out["dtype"] == np.float32, name
        it.set_tensor(inp["index"], ctx.inputs[:1])
        it.invoke()
        assert it.get_tensor(out["index"]).sum() == pytest.approx(1.0, abs=0.02), name  # softmax survived
