"""Shared cases 01, 03, 08, 09, 20 (issue 11, kind 1): `compress` reads the model file, not a registered spec.

Each compressed file is scored with LiteRT on the first 2000 images of the real test set (the
cases' own references are on 2000 test images) beside the float conversion of the same file
through the same path: a recipe must land within a point of float. Fine-tuning and calibration
use each case's small image folder (1000 or 2000 training images), as its run.sh does.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from accuracy_gaps import AccuracyGaps
from dnncomp.cli import main

pytestmark = [pytest.mark.slow, pytest.mark.tf]

TEST_IMAGES = 2000


@pytest.fixture(scope="module")
def test_sets(real_data_dir):
    from dnncomp.data import load_dataset

    cache: dict[tuple[str, int | None], tuple[np.ndarray, np.ndarray]] = {}

    def get(name: str, images: int | None = TEST_IMAGES):
        """The first ``images`` test images of ``name`` (None: all of them)."""
        if (name, images) not in cache:
            data = load_dataset(name, data_dir=real_data_dir)
            cache[(name, images)] = (data.x_test[:images], data.y_test[:images])
        return cache[(name, images)]

    return get


def compress(capsys, tmp_path, model: Path, dataset: str, recipe: str, *extra: str) -> tuple[int, dict | None, str]:
    """``dnncomp compress`` -> (exit code, its --json record or None, what it printed)."""
    out = tmp_path / f"{model.stem}-{recipe}.tflite"
    record = tmp_path / f"{model.stem}-{recipe}.json"
    code = main(
        [
            "compress",
            str(model),
            "--dataset",
            dataset,
            "--recipe",
            recipe,
            "--out",
            str(out),
            "--quiet",
            "--no-evaluate",
            "--json",
            str(record),
            *extra,
        ]
    )
    captured = capsys.readouterr()
    return code, (json.loads(record.read_text()) if code == 0 else None), captured.out + captured.err


def accuracy(record: dict, test_set) -> float:
    from dnncomp.evaluate import evaluate_accuracy

    x, y = test_set
    return evaluate_accuracy(Path(record["out"]), x, y, first_n=0)["full"]


def kernel_dtypes(record: dict) -> dict[str, int]:
    from dnncomp.anatomy import inspect_model

    return inspect_model(Path(record["out"]), tensors=False)["kernel_ops_by_dtype"]


def test_case_08_calibration_and_fine_tuning_take_the_models_own_input_shape(
    case_inputs, capsys, tmp_path, test_sets, real_data_dir
):
    d = case_inputs("08-input-shape-not-from-model")
    folder = f"folder:{d / 'mnist-folder'}"
    mnist = test_sets("mnist")
    code, float_record, _ = compress(capsys, tmp_path, d / "hwc.keras", folder, "float")
    assert code == 0 and float_record["contract"]["input_shape"] == [28, 28, 1]
    reference = accuracy(float_record, mnist)
    assert reference > 0.88  # the case's CNN: 92.5 % in Keras
    gaps = AccuracyGaps()
    for recipe, extra in (("ptq-int8", ()), ("qat", ("--model", "study-mnist"))):  # every full-int8 recipe failed before
        code, record, out = compress(capsys, tmp_path, d / "hwc.keras", folder, recipe, *extra)
        assert code == 0, out
        assert kernel_dtypes(record) == {"int8": 3}
        if recipe == "ptq-int8":
            assert accuracy(record, mnist) >= reference - 0.01, recipe
        else:  # fine-tuned: 90.05 % against 91.25 % on one build under the study's fine-tuning --model used to lend;
            # recover (finetune=auto for a user's file) 94.02 % against 93.73 % on the full test set of another
            assert record["info"]["fine_tuning"]["mode"] == "recover"
            gaps.check(accuracy(record, mnist), reference, f"hwc {recipe}")
    code, lenet_float, _ = compress(capsys, tmp_path, d / "lenet32.keras", folder, "float")
    code, lenet_ptq, out = compress(capsys, tmp_path, d / "lenet32.keras", folder, "ptq-int8")
    assert code == 0, out
    assert lenet_ptq["contract"]["input_shape"] == [32, 32, 1] and kernel_dtypes(lenet_ptq) == {"int8": 5}
    assert abs(accuracy(lenet_ptq, mnist) - accuracy(lenet_float, mnist)) <= 0.01
    # The LeNet was trained on MNIST zero-padded to 32x32 (make.py): 28x28 digits are padded, not
    # resized (2.4 points lost before), said, and kept in the sidecar so evaluate pads the same way.
    assert "padded around the centre with the background 0 (the LeNet convention" in out
    assert lenet_ptq["preprocessing"]["fit"]["mode"] == "pad"
    from dnncomp.evaluate import evaluate_accuracy

    x, y = mnist
    numpy_padded = np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)))
    reference = evaluate_accuracy(Path(lenet_float["out"]), numpy_padded, y, first_n=0)["full"]  # the case's own convention
    record = tmp_path / "eval-lenet-ptq.json"
    assert (
        main(
            [
                "evaluate",
                lenet_ptq["out"],
                "--dataset",
                "mnist",
                "--data-dir",
                str(real_data_dir),
                "--no-latency",
                "--limit",
                str(TEST_IMAGES),
                "--json",
                str(record),
            ]
        )
        == 0
    )
    assert "pad (background 0) (sidecar" in capsys.readouterr().out
    evaluated = json.loads(record.read_text())["variants"][0]["accuracy"]["first_n"]
    assert evaluated >= reference - 0.01, (evaluated, reference)
    gaps.done()


def test_case_09_the_fine_tuning_loss_follows_the_models_output(case_inputs, capsys, tmp_path, test_sets):
    d = case_inputs("09-logits-vs-softmax-loss")
    cifar, mnist = test_sets("cifar10"), test_sets("mnist")
    cifar_folder, mnist_folder = f"folder:{d / 'cifar-folder'}", f"folder:{d / 'mnist-folder'}"
    # A logits model under a softmax spec (study-cifar10): 4.9 points lost under QAT before.
    code, float_record, _ = compress(
        capsys, tmp_path, d / "cifar_logits.keras", cifar_folder, "float", "--model", "study-cifar10"
    )
    code, qat, out = compress(capsys, tmp_path, d / "cifar_logits.keras", cifar_folder, "qat", "--model", "study-cifar10")
    assert code == 0 and qat["contract"]["output"] == "logits" and qat["training_defaults_from"] == "study-cifar10"
    assert "the file outputs logits, which the loss follows" in out
    # --model lends study-cifar10's training defaults, not the study's fine-tuning: the file is the user's, so
    # finetune=auto recovers (on one build: the study's constant Adam 1e-3 48.32 %, recover 53.15 %, float 49.48 %).
    tuning = qat["info"]["fine_tuning"]
    assert tuning["mode"] == "recover" and "cifar_logits.keras is your model, not study-cifar10" in tuning["reason"]
    assert "activation ranges set from 512 training images before QAT" in out
    assert accuracy(qat, cifar) >= accuracy(float_record, cifar) - 0.01
    gaps = AccuracyGaps()
    # A softmax model under a logits spec (study-mnist).
    code, float_record, _ = compress(capsys, tmp_path, d / "mnist_softmax.keras", mnist_folder, "float", "--model", "study-mnist")
    code, qat, out = compress(capsys, tmp_path, d / "mnist_softmax.keras", mnist_folder, "qat", "--model", "study-mnist")
    assert code == 0 and qat["contract"]["output"] == "softmax", out
    gaps.check(accuracy(qat, mnist), accuracy(float_record, mnist), "softmax model")
    gaps.done()


def test_case_03_batch_norms_tfmot_cannot_fold_never_abort_qat(case_inputs, capsys, tmp_path, test_sets):
    d = case_inputs("03-batchnorm-unfusable-qat")
    folder = f"folder:{d / 'mnist-folder'}"
    # The full 10,000 images: on the first 2000 a one-point margin is inside the 95 % interval (+-1.4 points);
    # conv_act_bn's qat measured 88.40 % there against 89.75 % float, and 91.32 % against 91.16 % on all 10,000.
    mnist = test_sets("mnist", None)
    gaps = AccuracyGaps()
    for name, bn in (
        ("conv_act_bn", "batch_normalization"),
        ("dense_bn", "batch_normalization_1"),
        ("pool_bn", "batch_normalization_2"),
    ):
        code, float_record, _ = compress(capsys, tmp_path, d / f"{name}.keras", folder, "float")
        code, qat, out = compress(capsys, tmp_path, d / f"{name}.keras", folder, "qat", "--model", "study-mnist")
        assert code == 0, out  # conv_act_bn and pool_bn aborted before
        kernels = sum(kernel_dtypes(float_record).values())
        assert kernel_dtypes(qat) == {"int8": kernels}, name  # dense_bn kept a float Dense before: no smaller than float
        assert qat["info"]["layers_left_alone"] == {} and bn not in qat["info"]["quantized_layers"]
        assert "ops still computing in float: none" in out
        if name == "dense_bn":  # folded into the Dense before it
            assert qat["info"]["batch_norms_folded"] == [f"dense_1+{bn}"]
        else:  # after the ReLU / the pooling: folded forward into the Dense after it, through pooling and Flatten
            (folded,) = qat["info"]["batch_norms_folded"]
            assert folded.startswith(f"{bn}>dense"), folded
        # conv_act_bn lost 1-4 points (seeds 0-3) while its BN stayed a float op: the case's 1-epoch model has
        # unsettled moving statistics (variance 0.15 against 0.0003-0.06 in the data), QAT trained that BN with
        # batch statistics and its output quantizer on their range, inference then used the moving ones.
        gaps.check(accuracy(qat, mnist), accuracy(float_record, mnist), name)
    gaps.done()


def test_case_01_a_model_with_its_own_rescaling_quantizes_within_a_point(case_inputs, capsys, tmp_path, test_sets):
    d = case_inputs("01-rescaling-qat")
    folder = f"folder:{d / 'mnist-folder'}"
    mnist = test_sets("mnist")
    code, float_record, _ = compress(capsys, tmp_path, d / "model.keras", folder, "float", "--model", "study-mnist")
    code, qat, out = compress(capsys, tmp_path, d / "model.keras", folder, "qat", "--model", "study-mnist")
    assert code == 0, out
    assert qat["contract"]["normalisation"].startswith("rescaling (Rescaling scale 2, offset -1)")
    assert qat["preprocessing"]["input_range"] == [0.0, 1.0]  # Rescaling(2, -1) maps 0..1 to -1..1
    assert "float ops" in qat["info"]["layers_left_alone"]["rescaling"] and "left alone: rescaling (Rescaling" in out
    assert kernel_dtypes(qat) == {"int8": 3}
    assert accuracy(qat, mnist) >= accuracy(float_record, mnist) - 0.01  # 1.2 points lost before
    # The model normalises itself: a contradicting --input-range is refused in one line.
    code, _, out = compress(capsys, tmp_path, d / "model.keras", folder, "float", "--input-range", "0..255")
    assert code == 2 and "normalises its own input" in out and "Traceback" not in out


def test_case_20_a_flat_784_mlp_compresses(case_inputs, capsys, tmp_path, test_sets):
    d = case_inputs("20-flat-784-mlp")
    folder = f"folder:{d / 'mnist-folder'}"
    mnist = test_sets("mnist")
    code, float_record, _ = compress(capsys, tmp_path, d / "mlp.keras", folder, "float")
    code, ptq, out = compress(capsys, tmp_path, d / "mlp.keras", folder, "ptq-int8")
    assert code == 0, out
    assert ptq["contract"]["layout"] == "flat" and ptq["contract"]["image_shape"] == [28, 28, 1]
    assert accuracy(ptq, mnist) >= accuracy(float_record, mnist) - 0.01
    code, pruned, out = compress(
        capsys,
        tmp_path,
        d / "mlp.keras",
        folder,
        "prune",
        "--model",
        "study-mnist",
        "--param",
        "end_step=30",
        "--param",
        "frequency=10",
    )
    assert code == 0, out
    sidecar = json.loads(Path(pruned["sidecar"]).read_text())
    assert sidecar["layout"] == "flat" and sidecar["num_classes"] == 10
    assert sidecar["preprocessing"]["input_range"] == [0.0, 1.0] and sidecar["preprocessing"]["assumed"]


def test_a_model_that_does_not_fit_the_dataset_is_refused_before_fine_tuning(case_inputs, capsys, tmp_path, real_data_dir):
    d = case_inputs("09-logits-vs-softmax-loss")
    # Today's LiteRT reshape.cc error after 37 s of fine-tuning: now one line before any work.
    code, _, out = compress(capsys, tmp_path, d / "mnist_softmax.keras", "cifar10", "qat", "--data-dir", str(real_data_dir))
    assert code == 2 and "mnist_softmax.keras takes 28x28x1 images but cifar10 has 3-channel images" in out
    assert "fine-tuned" not in out and "Traceback" not in out
    code, _, out = compress(
        capsys, tmp_path, d / "mnist_softmax.keras", f"folder:{d / 'cifar-folder'}", "qat", "--model", "study-cifar10"
    )
    assert code == 2 and "mnist_softmax.keras takes 28x28x1 images and has 10 classes, but --model study-cifar10" in out
    assert "fine-tuned" not in out and "Traceback" not in out
