"""`dnncomp run` on a user's own image folder and model (issue 11, kinds 1, 2 and 5).

Fast tests check names, splits and errors without TensorFlow; the slow ones run a
5-class and a 2-class folder end to end, a user's own .keras file, and shared case 22.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dnncomp.cli import main
from dnncomp.errors import ModelError
from dnncomp.models import family_spec, get_model_spec, spec_for_data
from dnncomp.run import RunConfig
from dnncomp.run_target import resolve_target, run_dir_name, safe_name
from dnncomp.train import split_validation, training_settings

QUICK = ["--techniques", "float", "--limit", "50", "--quiet"]


def _error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err) == 1, err
    return err[0]


def write_folder(root: Path, x: np.ndarray, y: np.ndarray) -> Path:
    """``root/<class>/<i>.png``, read class by class: the sorted order that used to hold out whole classes."""
    from PIL import Image

    for i, (image, label) in enumerate(zip(x, y)):
        (root / f"class_{label}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(image.squeeze()).save(root / f"class_{label}" / f"{i:05d}.png")
    return root


# ---- without TensorFlow -----------------------------------------------------------------


def test_run_dirs_have_filesystem_safe_names(tmp_path):
    assert safe_name("folder:/a/b c") == "folder-b_c"
    assert safe_name("folder:photos/") == "folder-photos"
    assert safe_name("tiny-28x28x1-5cls") == "tiny-28x28x1-5cls"
    assert run_dir_name("CIFAR-10") == "cifar10" and run_dir_name("mnist") == "mnist"
    config = RunConfig(dataset="folder:/data/my photos:2", model="tiny-28x28x1-5cls", techniques=["float"], out=tmp_path)
    assert config.run_dir == tmp_path / "folder-my_photos_2" / "tiny-28x28x1-5cls"
    assert ":" not in str(config.run_dir.relative_to(tmp_path)) and len(config.run_dir.relative_to(tmp_path).parts) == 2


def test_stratified_split_keeps_every_class_in_train_and_validation():
    labels = np.repeat(np.arange(5), [40, 40, 40, 40, 7])  # sorted by class, as a folder is read
    train, val = split_validation(len(labels), "stratified:0.2", seed=0, labels=labels)
    assert set(labels[train]) == set(labels[val]) == set(range(5))
    assert np.bincount(labels[val]).tolist() == [8, 8, 8, 8, 1]
    assert len(np.intersect1d(train, val)) == 0 and len(train) + len(val) == len(labels)
    again, _ = split_validation(len(labels), "stratified:0.2", seed=0, labels=labels)
    other, _ = split_validation(len(labels), "stratified:0.2", seed=1, labels=labels)
    assert np.array_equal(train, again) and not np.array_equal(train, other)
    assert split_validation(len(labels), "0.2", seed=0, labels=labels)[1].tolist() == val.tolist()  # a bare fraction
    _, last = split_validation(len(labels), "last:0.2")  # the study's split, for contrast: whole classes held out
    assert set(labels[last]) != set(range(5))
    with pytest.raises(ModelError, match="needs the"):
        split_validation(len(labels), "stratified:0.2")


def test_study_split_only_under_the_study_models_on_their_datasets():
    assert training_settings("study-mnist")["validation"] == "last:0.2"
    assert training_settings("study-gtsrb")["validation"] == "random:0.25"
    for name in ("tiny-mnist", "improved-cifar10", "tiny-gtsrb"):
        assert training_settings(name)["validation"] == "stratified:0.1"
    assert resolve_target("mnist", None).spec.training["validation"] == "last:0.2"
    assert resolve_target("mnist", "study", val_split="0.1").spec.training["validation"] == "stratified:0.1"
    assert resolve_target("gtsrb", "tiny", val_split="random:0.3").spec.training["validation"] == "random:0.3"


def test_families_build_for_any_shape_and_class_count():
    tiny = family_spec("tiny", "folder:x", (28, 28, 1), 5)
    assert (tiny.name, tiny.num_classes, tiny.input_shape, tiny.from_logits) == ("tiny-28x28x1-5cls", 5, (28, 28, 1), True)
    assert tiny.training["validation"] == "stratified:0.1" and "horizontal_flip" not in tiny.training["schedule"]["augment"]
    assert tiny.training["batch_size"] == 32  # enough steps an epoch on a folder of a few hundred images
    study = family_spec("study", "folder:x", (48, 64, 3), 2)
    assert study.training["validation"] == "stratified:0.2" and study.output == "softmax"
    adapted = spec_for_data(get_model_spec("tiny-mnist"), "folder:x", 5)
    assert (adapted.name, adapted.num_classes, adapted.input_shape) == ("tiny-mnist-5cls", 5, (28, 28))
    assert spec_for_data(get_model_spec("tiny-mnist"), "folder:x", 10).name == "tiny-mnist"
    with pytest.raises(ModelError, match="2 or more classes"):
        family_spec("tiny", "folder:x", (28, 28, 1), 1)
    with pytest.raises(ModelError, match="too small"):
        family_spec("study", "folder:x", (8, 8, 1), 3)
    with pytest.raises(ModelError, match=r"did you mean tiny\?"):
        family_spec("tinny", "folder:x", (28, 28, 1), 3)


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "mnsit"], "unknown dataset 'mnsit' (did you mean mnist?)"),
        (["run", "cifar", "--model", "tiny"], "(did you mean cifar10?)"),
        (["run", "mnist", "--model", "improvd"], "unknown model 'improvd' for dataset 'mnist' (did you mean improved?)"),
        (["run", "mnist", "--model", "tiny-mnsit"], "(did you mean tiny-mnist?)"),
        (["run", "mnist", "--val-split", "1.5"], "--val-split 1.5: expected a fraction"),
    ],
)
def test_mistakes_are_named_before_any_work(args, message, tmp_path, capsys):
    assert main([*args, "--out", str(tmp_path / "runs"), *QUICK]) == 2
    assert message in _error_line(capsys)
    assert not (tmp_path / "runs").exists()  # nothing written


def test_folder_mistakes_are_named_before_any_work(tmp_path, capsys):
    x = np.zeros((4, 8, 8), np.uint8)
    folder = write_folder(tmp_path / "photos", x, np.array([0, 0, 1, 1]))
    assert main(["run", f"folder:{folder}", "--model", "tinny", "--out", str(tmp_path / "runs"), *QUICK]) == 2
    assert "unknown model 'tinny' (did you mean tiny?)" in _error_line(capsys)
    assert main(["run", f"folder:{tmp_path / 'nope'}", "--out", str(tmp_path / "runs"), *QUICK]) == 2
    assert "is not a directory" in _error_line(capsys)
    assert not (tmp_path / "runs").exists()


def test_input_range_is_for_a_users_model_only(tmp_path, capsys):
    assert main(["run", "mnist", "--model", "tiny", "--input-range", "-1..1", "--out", str(tmp_path / "runs"), *QUICK]) == 2
    assert "describe your own model's input" in _error_line(capsys)


def test_results_table_of_a_folder_has_no_study_columns():
    from rich.console import Console

    from dnncomp.results import results_document
    from dnncomp.tables import print_results

    variant = {"name": "float", "runtime": "litert", "accuracy": {"full": 0.9, "full_count": 10}, "size": {"file_bytes": 1000}}
    for dataset, shown in (("folder:/data/photos", False), ("mnist", True)):
        console = Console(width=300, record=True)
        print_results(results_document([variant], dataset=dataset, model="tiny"), console=console)
        text = console.export_text()
        assert ("study acc %" in text) == shown and ("Jetson" in text) == shown


# ---- end to end (TensorFlow) ----------------------------------------------------------------


def _mnist(real_data_dir, classes, per_class):
    data = np.load(real_data_dir / "mnist.npz")
    x, y = data["x_train"], data["y_train"].astype(np.int64)
    idx = np.concatenate([np.flatnonzero(y == c)[:per_class] for c in classes])
    return x[idx], np.searchsorted(classes, y[idx])


def _output_classes(tflite: Path) -> int:
    from ai_edge_litert.interpreter import Interpreter

    return int(Interpreter(model_path=str(tflite)).get_output_details()[0]["shape"][-1])


def _float_accuracy(run_dir: Path) -> float:
    results = json.loads((run_dir / "results.json").read_text())
    return next(v for v in results["variants"] if v["name"] == "float")["accuracy"]["full"]


@pytest.mark.tf
@pytest.mark.slow
def test_a_two_class_folder_runs_end_to_end(real_data_dir, tmp_path, capsys):
    """The 5-class folder is case 22's (below); one epoch of a BN model is not yet better than chance."""
    classes = (3, 8)
    x, y = _mnist(real_data_dir, classes, per_class=150)
    folder = write_folder(tmp_path / "digits", x, y)  # one sorted tree: dnncomp splits off test and validation
    out = tmp_path / "runs"
    assert (
        main(["run", f"folder:{folder}", "--model", "tiny", "--epochs", "1", "--batch-size", "16", "--out", str(out), *QUICK])
        == 0
    )
    n = len(classes)
    run_dir = out / "folder-digits" / f"tiny-28x28x1-{n}cls"
    assert _output_classes(run_dir / "float.tflite") == n
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["stages"]["baseline"]["inputs"]["settings"]["validation"] == "stratified:0.1"
    assert len(json.loads((run_dir / "history.json").read_text())["val_accuracy"]) == 1
    assert 0.0 <= _float_accuracy(run_dir) <= 1.0
    assert "study acc" not in capsys.readouterr().out


@pytest.mark.tf
@pytest.mark.slow
def test_a_users_model_is_the_baseline_and_must_fit_the_folder(real_data_dir, tmp_path, capsys):
    from dnncomp.keras_env import import_keras

    _, keras = import_keras()
    x, y = _mnist(real_data_dir, (0, 1, 2), per_class=60)
    folder = write_folder(tmp_path / "three", x, y)
    for classes in (3, 4):
        model = keras.Sequential(
            [keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(classes, activation="softmax")]
        )
        model.save(tmp_path / f"mine{classes}.keras")
    out = tmp_path / "runs"
    assert main(["run", f"folder:{folder}", "--model", str(tmp_path / "mine4.keras"), "--out", str(out), *QUICK]) == 2
    assert "mine4.keras has 4 outputs but" in _error_line(capsys) and not out.exists()

    assert main(["run", f"folder:{folder}", "--model", str(tmp_path / "mine3.keras"), "--out", str(out), *QUICK]) == 0
    run_dir = out / "folder-three" / "user-mine3"
    assert "not trained by dnncomp" in capsys.readouterr().err
    assert not (run_dir / "history.json").exists()  # adopted, not trained
    assert _output_classes(run_dir / "float.tflite") == 3
    adopted = keras.models.load_model(run_dir / "baseline.keras", compile=False)
    original = keras.models.load_model(tmp_path / "mine3.keras", compile=False)
    assert all(np.array_equal(a, b) for a, b in zip(adopted.get_weights(), original.get_weights()))  # the user's weights


@pytest.mark.tf
@pytest.mark.slow
def test_case_22_own_folders_of_10_and_5_classes(case_inputs, tmp_path, capsys):
    """Shared case 22: before, only 10-class folders ran, with a full spec name; 5 classes failed."""
    d = case_inputs("22-run-own-folder-classes")
    out = tmp_path / "runs"
    common = ["--epochs", "1", "--out", str(out), *QUICK]
    assert main(["run", f"folder:{d / 'digits5'}", *common]) == 0  # default: tiny, said once
    assert "note: model: tiny" in capsys.readouterr().err
    default = out / "folder-digits5" / "tiny-28x28x1-5cls"
    assert _output_classes(default / "float.tflite") == 5
    manifest = json.loads((default / "manifest.json").read_text())
    assert manifest["data"]["classes"] == 5 and manifest["stages"]["baseline"]["inputs"]["model"] == "tiny-28x28x1-5cls"
    # one epoch: BatchNorm's moving averages are recomputed after training (precise BN), so the
    # baseline has learned something (before: 20.0 %, one class for every image, and no warning)
    check = json.loads((default / "results.json").read_text())["baseline_check"]
    assert check["holds"] and check["float_accuracy"] >= 0.4, check

    assert main(["run", f"folder:{d / 'digits5'}", "--model", "tiny-mnist", *common]) == 0
    assert "built with 5 outputs, as tiny-mnist-5cls" in capsys.readouterr().err
    assert _output_classes(out / "folder-digits5" / "tiny-mnist-5cls" / "float.tflite") == 5

    # (digits10 with tiny-mnist ran before too: the same code path as digits5 --model tiny, with 10 classes)


@pytest.mark.tf
@pytest.mark.slow
@pytest.mark.parametrize(
    "family, shape, classes",
    [("study", (28, 28, 1), 5), ("study", (48, 64, 3), 2), ("tiny", (30, 40, 3), 7), ("improved", (64, 64, 1), 3)],
)
def test_a_family_builds_for_the_datas_shape_and_classes(family, shape, classes):
    model = family_spec(family, "folder:x", shape, classes).build()
    assert tuple(model.input_shape[1:]) == shape and tuple(model.output_shape) == (None, classes)


@pytest.mark.tf
@pytest.mark.slow
def test_a_users_model_with_its_own_rescaling_is_fed_raw_pixels(real_data_dir, tmp_path, capsys):
    """A model that takes 0..255 (Rescaling inside) scores as in Keras, not at chance from pixel/255 fed twice."""
    from dnncomp.keras_env import import_keras

    _, keras = import_keras()
    keras.utils.set_random_seed(0)
    x, y = _mnist(real_data_dir, (0, 1, 2), per_class=80)
    folder = write_folder(tmp_path / "raw", x, y)
    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Rescaling(1 / 255),
            keras.layers.Flatten(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x[..., None].astype("float32"), y, epochs=15, batch_size=16, verbose=0)
    model.save(tmp_path / "raw.keras")
    out = tmp_path / "runs"
    assert main(["run", f"folder:{folder}", "--model", str(tmp_path / "raw.keras"), "--out", str(out), *QUICK]) == 0
    assert "input range 0..255" in capsys.readouterr().err
    run_dir = out / "folder-raw" / "user-raw"
    assert _float_accuracy(run_dir) > 0.8
    sidecar = json.loads((run_dir / "float.preprocessing.json").read_text())
    assert sidecar["preprocessing"]["input_range"] == [0.0, 255.0]


def test_report_results_table_of_a_folder_has_no_study_columns(tmp_path):
    # Text only: neither the results table nor test_report's make_run imports matplotlib.
    from dnncomp.report import _results_table, load_run, variant_rows
    from test_report import make_run

    for dataset, shown in (("folder-photos", False), ("mnist", True)):
        run = load_run(make_run(tmp_path / dataset, dataset=dataset, model="tiny", anatomy=False))
        table = _results_table(run, variant_rows(run))
        assert any(h.startswith("study acc") for h in table.headers) == shown
        assert all(len(row) == len(table.headers) == len(table.align) for row in table.rows)
