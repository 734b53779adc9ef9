"""`dnncomp run` end to end on a tiny MNIST-format file: artifacts, results, skipping and resuming."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dnncomp.cli import main
from run_checks import run_args
from tinymodels import random_mnist_like

pytestmark = [pytest.mark.slow, pytest.mark.tf]


@pytest.fixture(scope="module")
def tiny_mnist_dir(tmp_path_factory):
    """A real-format mnist.npz with 320 learnable images: the loader, not the test, reads it."""
    x, y = random_mnist_like(320, seed=1)
    root = tmp_path_factory.mktemp("tiny-mnist")
    np.savez(
        root / "mnist.npz",
        x_train=x[:256, ..., 0],
        y_train=y[:256].astype(np.uint8),
        x_test=x[256:, ..., 0],
        y_test=y[256:].astype(np.uint8),
    )
    return root


def _run(data_dir, out, techniques):
    return main(run_args(data_dir, out, techniques, 32, "--quiet"))


def _stages(run_dir):
    return json.loads((run_dir / "manifest.json").read_text())["stages"]


def test_run_writes_artifacts_results_and_resumes(tiny_mnist_dir, tmp_path):
    out = tmp_path / "runs"
    run_dir = out / "mnist" / "study-mnist"

    assert _run(tiny_mnist_dir, out, "float") == 0
    for name in ("manifest.json", "baseline.keras", "baseline.h5", "history.json", "float.tflite", "results.json"):
        assert (run_dir / name).is_file(), name
    results = json.loads((run_dir / "results.json").read_text())
    names = [v["name"] for v in results["variants"]]
    assert names == ["baseline-keras", "float"]
    float_record = results["variants"][1]
    assert float_record["accuracy"]["full_count"] == 64 and float_record["accuracy"]["first_n_count"] == 32
    assert float_record["latency"]["threads"] == 1 and float_record["latency"]["count"] > 0
    assert float_record["size"]["gzip_bytes"] < float_record["size"]["file_bytes"]
    first = _stages(run_dir)
    baseline_sha = first["baseline"]["outputs"]["baseline.keras"]

    # Adding a recipe reuses the baseline and the float artifact: only the new stages run.
    assert _run(tiny_mnist_dir, out, "float,qat") == 0
    second = _stages(run_dir)
    assert second["baseline"] == first["baseline"]
    assert second["compress:float"] == first["compress:float"]
    assert second["compress:qat"]["inputs"]["baseline"] == baseline_sha
    assert [v["name"] for v in json.loads((run_dir / "results.json").read_text())["variants"]] == [
        "baseline-keras",
        "float",
        "qat",
    ]

    # A run killed before an artifact was recorded (or a damaged artifact) redoes just that stage.
    (run_dir / "qat.tflite").write_bytes(b"truncated")
    assert _run(tiny_mnist_dir, out, "float,qat") == 0
    third = _stages(run_dir)
    assert third["baseline"] == first["baseline"]
    assert (run_dir / "qat.tflite").stat().st_size > 1000
    assert not list(run_dir.glob(".*part*")), "no temporary files left behind"

    # The run directory accumulates variants: a later run of a subset keeps the others in results.json.
    assert _run(tiny_mnist_dir, out, "float") == 0
    assert [v["name"] for v in json.loads((run_dir / "results.json").read_text())["variants"]] == [
        "baseline-keras",
        "float",
        "qat",
    ]


def test_eval_only_needs_existing_artifacts(tiny_mnist_dir, tmp_path, capsys):
    code = main(["run", "mnist", "--data-dir", str(tiny_mnist_dir), "--out", str(tmp_path), "--eval-only", "--quiet"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no .tflite artifacts" in err[0]
