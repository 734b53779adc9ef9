"""Issue 13: fine-tuning that recovers (distillation, warm-up + cosine, the family's augmentation,
pruning schedule as fractions of the steps), with the study's settings kept bit for bit."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from dnncomp.compress import RecipeContext, apply_recipe, get_recipe, resolve_fine_tuning
from dnncomp.compress.prune import schedule_steps
from dnncomp.errors import RecipeError
from dnncomp.models import get_model_spec

IMAGES = 256
NEW_PARAMS = {
    "begin",
    "end",
    "finetune",
    "learning_rate",
    "augment",
    "distill",
    "alpha",
    "temperature",
    "per_layer",
    "skip_layers",
    "edge_layers",
}


def _data(n: int = IMAGES, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, size=n).astype(np.int64)
    x = rng.integers(0, 64, size=(n, 28, 28, 1)).astype(np.int64) + (y * 19)[:, None, None, None]
    return np.clip(x, 0, 255).astype(np.uint8), y


def _tiny_model(tmp_path, output: str, images: int = IMAGES):
    """A small conv net on (28, 28) inputs with logits or softmax output, trained 8 epochs, saved as .keras."""
    from dnncomp.keras_env import import_keras
    from dnncomp.train import seed_everything

    _, keras = import_keras()
    seed_everything(0)
    model = keras.Sequential(
        [
            keras.Input((28, 28)),
            keras.layers.Reshape((28, 28, 1)),
            keras.layers.Conv2D(4, 3, strides=2, activation="relu", name="conv"),
            keras.layers.Flatten(),
            keras.layers.Dense(16, activation="relu", name="hidden"),
            keras.layers.Dense(10, activation=None if output == "logits" else "softmax", name="classifier"),
        ]
    )
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=output == "logits"), metrics=["accuracy"])
    x, y = _data(images)
    model.fit(x[..., 0] / 255.0, y, epochs=8, batch_size=32, verbose=0)
    path = tmp_path / f"{output}.keras"
    model.save(path)
    spec = replace(get_model_spec("tiny-mnist"), output=output)  # a non-study family: recover by default
    return RecipeContext(baseline_path=path, spec=spec, x_train=x, y_train=y, seed=0)


# ---- the loss is Hinton's formula ---------------------------------------------------------


def _numpy_distillation(labels, student_logits, teacher_logits, alpha, t):
    def log_softmax(z):
        z = z - z.max(axis=-1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))

    hard = -log_softmax(student_logits)[np.arange(len(labels)), labels]
    pt, log_pt, log_ps = np.exp(log_softmax(teacher_logits / t)), log_softmax(teacher_logits / t), log_softmax(student_logits / t)
    soft = (pt * (log_pt - log_ps)).sum(axis=-1)
    return float(np.mean(alpha * hard + (1 - alpha) * t * t * soft))


@pytest.mark.tf
@pytest.mark.slow
@pytest.mark.tf
@pytest.mark.parametrize("from_logits", [True, False])
def test_distillation_loss_is_the_formula(from_logits):
    from dnncomp.compress import distillation_loss

    rng = np.random.default_rng(3)
    labels = rng.integers(0, 5, size=8)
    student, teacher = rng.normal(size=(8, 5)).astype(np.float32) * 3, rng.normal(size=(8, 5)).astype(np.float32) * 3
    expected = _numpy_distillation(labels, student, teacher, 0.3, 4.0)
    if not from_logits:  # a softmax model gives probabilities: their logs are the logits (up to a constant per row)
        softmax = lambda z: np.exp(z - z.max(-1, keepdims=True)) / np.exp(z - z.max(-1, keepdims=True)).sum(-1, keepdims=True)  # noqa: E731
        student, teacher = softmax(student), softmax(teacher)
    got = float(distillation_loss(labels, student, teacher, alpha=0.3, temperature=4.0, from_logits=from_logits))
    assert got == pytest.approx(expected, rel=1e-4)
    # a teacher identical to the student leaves only alpha * cross-entropy
    logits = student if from_logits else np.log(np.clip(student, 1e-7, 1))
    hard = np.mean(np.log(np.exp(logits).sum(-1)) - logits[np.arange(8), labels])
    same = float(distillation_loss(labels, student, student, alpha=0.3, temperature=4.0, from_logits=from_logits))
    assert same == pytest.approx(0.3 * hard, rel=1e-4)


@pytest.mark.tf
@pytest.mark.slow
@pytest.mark.tf
@pytest.mark.parametrize("output", ["logits", "softmax"])
def test_distilled_qat_on_a_logits_and_a_softmax_model(tmp_path, output):
    ctx = _tiny_model(tmp_path, output)
    result = apply_recipe("qat", ctx, {"epochs": "1"})
    tuning = result.info["fine_tuning"]
    assert tuning["mode"] == "recover" and tuning["distill"] == {
        "alpha": 0.5,
        "temperature": 4.0,
        "teacher": "the float baseline",
    }
    assert tuning["augment"] == get_model_spec("tiny-mnist").training["schedule"]["augment"]
    assert tuning["wall_s"] > 0 and tuning["wall_s"] == pytest.approx(result.info["fine_tune"]["wall_s"], abs=0.01)
    history = result.info["fine_tune"]["history"]
    assert set(history) == {"loss", "accuracy"} and np.isfinite(history["loss"]).all()
    # the distilled student still classifies as well as its float teacher on its training data
    from dnncomp.keras_env import import_keras

    import_keras()
    teacher = ctx.load_baseline()
    float_accuracy = float(np.mean(np.argmax(teacher.predict(ctx.inputs, verbose=0), -1) == ctx.labels))
    student_accuracy = float(np.mean(np.argmax(result.keras_model.predict(ctx.inputs, verbose=0), -1) == ctx.labels))
    assert student_accuracy >= float_accuracy - 0.05


# ---- pruning schedule as fractions -------------------------------------------------------


def test_schedule_fractions_map_to_steps_for_any_data_size():
    # 1,688 steps (54,000 images / 32, one epoch) and 8 steps (256 images)
    assert schedule_steps(1688, 0.0, 0.6, 100) == (0, 1000, 100)
    begin, end, frequency = schedule_steps(8, 0.0, 0.6, 100)
    assert (begin, end, frequency) == (0, 4, 1)
    begin, end, frequency = schedule_steps(1000, 0.1, 0.75, 100)
    assert begin == 100 and end <= 750 and (end - begin) % frequency == 0 and (end - begin) // frequency >= 4
    with pytest.raises(RecipeError, match="fractions"):
        schedule_steps(100, 0.7, 0.5, 10)
    with pytest.raises(RecipeError, match="not a single step"):
        schedule_steps(1, 0.0, 0.5, 10)


@pytest.mark.tf
@pytest.mark.slow
@pytest.mark.tf
def test_recover_pruning_fits_the_data_and_reaches_its_target(tmp_path):
    ctx = _tiny_model(tmp_path, "logits")  # 256 images / 32 = 8 steps: the study's end_step 1000 never completes
    result = apply_recipe("prune", ctx, {"final_sparsity": "0.75"})
    assert result.info["schedule"] == {"begin": 0.0, "end": 0.6, "of_steps": 8, "begin_step": 0, "end_step": 4, "frequency": 1}
    assert result.info["schedule_completed"]
    assert result.info["overall_kernel_sparsity"] == pytest.approx(0.75, abs=0.02)
    with pytest.raises(RecipeError, match="never reached|only 8 steps"):
        apply_recipe("prune", ctx, {"finetune": "study"})  # the study's step numbers do not fit 8 steps


# ---- the study's settings stay the study's ----------------------------------------------


def test_study_models_keep_the_study_fine_tuning():
    x, y = _data(8)
    for name in ("study-mnist", "study-cifar10", "study-gtsrb"):
        ctx = RecipeContext(baseline_path="unused.keras", spec=get_model_spec(name), x_train=x, y_train=y)
        tuning = resolve_fine_tuning(ctx, get_recipe("pcqat").resolve_params())
        assert (tuning.mode, tuning.learning_rate, tuning.augment, tuning.distill) == ("study", None, {}, False), name
    for name in ("improved-cifar10", "tiny-mnist"):
        spec = get_model_spec(name)
        ctx = RecipeContext(baseline_path="unused.keras", spec=spec, x_train=x, y_train=y)
        tuning = resolve_fine_tuning(ctx, get_recipe("pcqat").resolve_params())
        assert tuning.mode == "recover" and tuning.distill and tuning.augment == spec.training["schedule"]["augment"], name
        assert tuning.learning_rate == pytest.approx(10 * spec.training["fine_tune_learning_rate"])
    # A user's file that borrows a study spec's training defaults (--model study-*) is not a study model;
    # the same spec's own run-dir baseline is (compress runs/mnist/study-mnist/baseline.keras).
    contract = object()  # compress always reads the file's contract; only its presence matters here
    for path, mode in (("mine/model.keras", "recover"), ("runs/mnist/study-mnist/baseline.keras", "study")):
        ctx = RecipeContext(baseline_path=path, spec=get_model_spec("study-mnist"), x_train=x, y_train=y, contract=contract)
        tuning = resolve_fine_tuning(ctx, get_recipe("qat").resolve_params())
        assert tuning.mode == mode, path
    assert tuning.reason == "auto: study-mnist is one of the study's models"
    ctx = RecipeContext(
        baseline_path="mine/model.keras", spec=get_model_spec("study-mnist"), x_train=x, y_train=y, contract=contract
    )
    assert "model.keras is your model, not study-mnist" in resolve_fine_tuning(ctx, {"finetune": "auto"}).reason
    # The study's recipe parameters are the paper's (SPEC.md), with the new ones at their neutral defaults.
    assert {k: v for k, v in get_recipe("prune").resolve_params().items() if k not in NEW_PARAMS} == {
        "schedule": "polynomial",
        "initial_sparsity": 0.5,
        "final_sparsity": 0.8,
        "begin_step": 0,
        "end_step": 1000,
        "frequency": 100,
        "epochs": 1,
        "batch_size": 32,
        "sparse_format": False,
    }


@pytest.mark.tf
@pytest.mark.slow
@pytest.mark.tf
def test_study_fine_tuning_is_bit_for_bit_the_old_code(tmp_path):
    """finetune=study runs exactly the old compile+fit: same weights as calling it by hand from the same seed."""
    from dnncomp.compress.quantize import quantize_aware
    from dnncomp.train import compile_for_training, seed_everything

    ctx = _tiny_model(tmp_path, "logits")
    ctx = RecipeContext(
        baseline_path=ctx.baseline_path, spec=get_model_spec("study-mnist"), x_train=ctx.x_train, y_train=ctx.y_train, seed=0
    )
    result = apply_recipe("qat", ctx, {})
    assert result.info["fine_tuning"]["mode"] == "study" and "mode" not in result.info["fine_tune"]

    seed_everything(0)
    model = quantize_aware(ctx.load_baseline()).model
    compile_for_training(model, ctx.spec, None, from_logits=True)
    model.fit(ctx.inputs, ctx.labels, batch_size=32, epochs=1, shuffle=True, verbose=0)
    for a, b in zip(model.get_weights(), result.keras_model.get_weights()):
        assert np.array_equal(a, b)


# ---- the best variant of a run ------------------------------------------------------------


def test_best_variant_is_the_smallest_gzip_within_a_point_of_float():
    from dnncomp.run import best_variant

    def variant(name, accuracy, gzip):
        return {"name": name, "accuracy": {"full": accuracy}, "size": {"gzip_bytes": gzip}}

    variants = [
        variant("float", 0.990, 400_000),
        variant("ptq-int8", 0.989, 100_000),
        variant("pcqat", 0.9795, 20_000),  # 1.05 points below: out
        variant("prune", 0.985, 50_000),
        variant("baseline-keras", 0.99, 1),
    ]
    best = best_variant(variants)
    assert best["name"] == "prune" and best["gzip_ratio_vs_float"] == 8.0 and best["accuracy_change_points"] == -0.5
    assert "test accuracy within 1 point" in best["rule"]
    assert best_variant(variants[:1]) is None and best_variant(variants[1:]) is None


# ---- per-layer sensitivity ----------------------------------------------------------------


@pytest.mark.tf
@pytest.mark.slow
@pytest.mark.tf
@pytest.mark.plots
@pytest.mark.parametrize("technique", ["prune", "cluster", "int8"])
def test_sensitivity_has_one_row_per_kernel_layer_on_the_validation_split(tmp_path, technique):
    from dnncomp.compress.sensitivity import layer_sensitivity, plot, table_lines, validation_split
    from dnncomp.train import split_validation

    ctx = _tiny_model(tmp_path, "softmax")
    record = layer_sensitivity(ctx, technique=technique, sparsity=0.98, clusters=2)
    assert [row["layer"] for row in record["rows"]] == ["conv", "hidden", "classifier"]
    assert [row["params"] for row in record["rows"]] == [36, 13 * 13 * 4 * 16, 160]
    # the model's own split of the TRAINING images (tiny-mnist: stratified 10 %), never the test set
    held_out, split = validation_split(ctx)
    assert split == "stratified:0.1" and record["images"] == len(held_out) == len(
        split_validation(IMAGES, split, 0, ctx.labels)[1]
    )
    for row in record["rows"]:
        assert row["accuracy"] is not None and 0 <= row["accuracy"] <= 1
        assert row["drop_points"] == pytest.approx((record["reference_accuracy"] - row["accuracy"]) * 100, abs=1e-3)
    if technique != "int8":  # 98 % of a kernel pruned, or two values left in it, costs accuracy somewhere
        assert max(row["drop_points"] for row in record["rows"]) > 5
    else:  # the layer really stayed float: its float32 weights make the file larger than the fully int8 one
        for row in record["rows"]:
            assert row["file_bytes"] > record["int8_file_bytes"], row["layer"]
    assert "not the test set" in "\n".join(table_lines(record))
    assert plot(record, tmp_path / "s.png").stat().st_size > 1000


# ---- per_layer=auto, skip_layers and the edge layers ------------------------------------


def test_allocation_keeps_the_parameter_weighted_target_and_spares_sensitive_layers():
    from dnncomp.compress.sensitivity import allocate_per_layer

    rows = [
        {"layer": "a", "params": 1000, "drop_points": 0.0},
        {"layer": "b", "params": 100_000, "drop_points": 0.5},
        {"layer": "c", "params": 10_000, "drop_points": 8.0},
    ]
    for target in (0.5, 0.8, 0.9):
        sparsity = allocate_per_layer(rows, target)
        mean = sum(r["params"] * sparsity[r["layer"]] for r in rows) / sum(r["params"] for r in rows)
        assert mean == pytest.approx(target, abs=1e-4)
        assert sparsity["c"] < sparsity["b"] <= sparsity["a"] <= 0.95
    with pytest.raises(RecipeError, match="outside"):
        allocate_per_layer(rows, 0.99)


@pytest.mark.tf
@pytest.mark.slow
@pytest.mark.tf
def test_per_layer_auto_respects_the_global_target_and_edges_are_skipped_by_default(tmp_path):
    ctx = _tiny_model(tmp_path, "logits", images=2000)  # 200 validation images: drops of 0.5 point
    auto = apply_recipe("prune", ctx, {"final_sparsity": "0.85", "per_layer": "auto", "edge_layers": "include"}).info
    plan = auto["layer_plan"]["per_layer"]
    drops = auto["layer_plan"]["sensitivity"]["drop_points"]
    assert set(plan) == {"conv", "hidden", "classifier"}
    assert (
        len({max(0, d) for d in drops.values()}) > 1 and len(set(plan.values())) > 1
    )  # the layers differ, and so do their targets
    for a in plan:  # the more a layer alone costs, the less it is pruned
        for b in plan:
            if drops[a] > drops[b]:
                assert plan[a] <= plan[b]
    sizes = {"conv": 36, "hidden": 13 * 13 * 4 * 16, "classifier": 160}
    assert sum(sizes[n] * plan[n] for n in sizes) / sum(sizes.values()) == pytest.approx(0.85, abs=1e-3)
    # ... and the stripped kernels hold it (the file's check agrees layer by layer)
    assert auto["overall_kernel_sparsity"] == pytest.approx(0.85, abs=0.01)
    assert not [p for p in auto["compression_check"].get("problems", [])]
    assert set(auto["layer_plan"]["sensitivity"]["drop_points"]) == set(sizes)

    # recover's default: the first convolution and the classifier pruned to half the target (kept denser) ...
    denser = apply_recipe("prune", ctx, {"final_sparsity": "0.8"}).info
    assert denser["layer_plan"]["per_layer"] == {"conv": 0.4, "classifier": 0.4}
    assert denser["kernel_sparsity"]["classifier"] == pytest.approx(0.4, abs=0.01)
    assert denser["kernel_sparsity"]["hidden"] == pytest.approx(0.8, abs=0.01)
    assert denser["compression_check"]["holds"]
    # ... and given twice the clusters; skip_layers leaves a layer alone, edge_layers=skip the edges
    default = apply_recipe("cluster", ctx, {"skip_layers": "hidden", "number_of_clusters": "4"}).info
    assert default["clustered_layers"] == ["conv", "classifier"] and default["layer_plan"]["per_layer"] == {
        "conv": 8,
        "classifier": 8,
    }
    assert default["unique_values_per_kernel"]["classifier"] == 8 and "skip_layers" in default["layers_left_alone"]["hidden"]
    skipped = apply_recipe("cluster", ctx, {"edge_layers": "skip"}).info
    assert skipped["clustered_layers"] == ["hidden"]
    reasons = skipped["layers_left_alone"]
    assert "first convolution" in reasons["conv"] and "classifier" in reasons["classifier"]
    with pytest.raises(RecipeError, match="no layer with a kernel named nope"):
        apply_recipe("cluster", ctx, {"skip_layers": "nope"})
