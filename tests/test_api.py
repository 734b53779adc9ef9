"""The public API: `import dnncomp` is light, the names resolve lazily, evaluate and bench work from Python."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

import dnncomp
from tiny_tflite import tiny_flatbuffer


def test_import_dnncomp_and_its_public_names_import_no_tensorflow():
    code = (
        "import sys, dnncomp\n"
        "assert [m for m in sys.modules if m.startswith('dnncomp')] == ['dnncomp'], sorted(sys.modules)\n"
        "names = [dnncomp.run, dnncomp.evaluate, dnncomp.bench, dnncomp.compress, dnncomp.write_report, dnncomp.RunConfig]\n"
        "assert all(callable(n) for n in names)\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tf_keras', 'keras', "
        "'tensorflow_model_optimization', 'matplotlib')]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_modules_stay_modules_and_unknown_names_fail():
    from dnncomp.run import RunConfig, run_pipeline  # the modules still import as before

    assert dnncomp.RunConfig is RunConfig and callable(run_pipeline)
    assert "evaluate" in dir(dnncomp) and "write_report" in dir(dnncomp)
    try:
        dnncomp.no_such_name  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("an unknown attribute must raise AttributeError")


def _tiny_mnist(tmp_path):
    rng = np.random.default_rng(0)
    x_test = rng.integers(0, 256, (60, 28, 28), dtype=np.uint8)
    y_test = rng.integers(0, 10, 60).astype(np.uint8)
    np.savez(tmp_path / "mnist.npz", x_train=x_test, y_train=y_test, x_test=x_test, y_test=y_test)
    weights = rng.normal(size=(10, 784)).astype(np.float32)
    model = tmp_path / "linear.tflite"
    model.write_bytes(tiny_flatbuffer(input_shape=(1, 28, 28, 1), weights=[weights], biases=[np.zeros(10, np.float32)]))
    expected = np.mean(np.argmax(x_test.reshape(60, -1) / 255.0 @ weights.T, axis=1) == y_test)
    return model, expected


def test_evaluate_from_python_scores_what_numpy_computes(tmp_path):
    model, expected = _tiny_mnist(tmp_path)
    notes = []
    document = dnncomp.evaluate(model, "mnist", data_dir=tmp_path, first_n=20, min_count=5, min_seconds=0, say=notes.append)
    accuracy = document["variants"][0]["accuracy"]
    assert accuracy["full_count"] == 60 and accuracy["first_n_count"] == 20
    assert abs(accuracy["full"] - expected) < 1e-9
    assert document["variants"][0]["latency"]["count"] >= 5
    old_name = dnncomp.evaluate(model, "mnist", data_dir=tmp_path, limit=30, latency=False)  # first_n's old name
    assert old_name["variants"][0]["accuracy"]["first_n_count"] == 30


def test_bench_from_python_compares_two_models(tmp_path):
    model, expected = _tiny_mnist(tmp_path)
    copy = tmp_path / "copy.tflite"
    copy.write_bytes(model.read_bytes())
    document = dnncomp.bench(
        [model, copy],
        "mnist",
        data_dir=tmp_path,
        memory=False,
        min_count=5,
        min_seconds=0,
        warmup_min_count=1,
        warmup_min_seconds=0,
    )
    assert [v["name"] for v in document["variants"]] == ["linear", "copy"]
    assert all(abs(v["accuracy"]["full"] - expected) < 1e-9 for v in document["variants"])


def test_first_n_is_one_name_on_the_cli_and_in_json_and_limit_still_works(tmp_path, capsys):
    import json

    from dnncomp.cli import main

    model, _ = _tiny_mnist(tmp_path)
    for flag in ("--first-n", "--limit"):
        out = tmp_path / f"{flag.strip('-')}.json"
        assert (
            main(
                [
                    "evaluate",
                    str(model),
                    "--dataset",
                    "mnist",
                    "--data-dir",
                    str(tmp_path),
                    flag,
                    "20",
                    "--no-latency",
                    "--json",
                    str(out),
                ]
            )
            == 0
        )
        assert json.loads(out.read_text())["variants"][0]["accuracy"]["first_n_count"] == 20
