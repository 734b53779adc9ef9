"""``dnncomp run --mcu`` (issue 15): TFLite Micro's arena, flash, ops and agreement per int8 variant in results.json."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from dnncomp.cli import main


def _tiny_mnist(directory, n: int = 320):
    from tinymodels import random_mnist_like

    x, y = random_mnist_like(n, seed=1)
    directory.mkdir()
    np.savez(
        directory / "mnist.npz",
        x_train=x[:256, ..., 0],
        y_train=y[:256].astype(np.uint8),
        x_test=x[256:, ..., 0],
        y_test=y[256:].astype(np.uint8),
    )
    return directory


@pytest.mark.tf
@pytest.mark.slow
def test_run_mcu_records_arena_flash_ops_and_agreement(tmp_path, capsys):
    pytest.importorskip("tflite_micro", reason="needs pip install 'dnncomp[mcu]'")
    from dnncomp.micro import align

    data = _tiny_mnist(tmp_path / "data")
    args = [
        "run",
        "mnist",
        "--model",
        "micro",
        "--data-dir",
        str(data),
        "--out",
        str(tmp_path / "runs"),
        "--epochs",
        "1",
        "--techniques",
        "float,ptq-int8-io",
        "--limit",
        "0",
        "--quiet",
        "--mcu",
        "--mcu-images",
        "40",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    run_dir = tmp_path / "runs" / "mnist" / "micro-mnist"
    variants = {v["name"]: v for v in json.loads((run_dir / "results.json").read_text())["variants"]}
    assert variants["float"]["mcu"]["skipped"].startswith("not an int8 model")
    mcu = variants["ptq-int8-io"]["mcu"]
    assert mcu["runs"] and mcu["int8_io"] and mcu["missing_ops"] == []
    # the arena searched is what TFLM reports using (to its 16-byte alignment)
    assert 0 < mcu["arena_bytes"] and abs(mcu["arena_bytes"] - mcu["arena_reported_bytes"]) < 16
    size = (run_dir / "ptq-int8-io.tflite").stat().st_size
    assert mcu["flash"]["model_bytes"] == size and mcu["flash"]["total_bytes"] == align(size) + 4
    assert "CONV_2D" in mcu["ops"] and "AddConv2D" in mcu["resolver"] and "QUANTIZE" not in mcu["ops"]
    eq = mcu["equivalence"]
    assert eq["images"] == 40 and eq["dataset"] == "mnist"
    assert eq["top1_agreement"] >= 0.95 and eq["max_abs_diff"] <= 2, eq  # int8 steps
    assert "TFLite Micro ptq-int8-io: arena" in out and "TFLite Micro float: not measured on TFLM (not an int8 model: its" in out

    # A rerun asks for the full test set: only the TFLM stages run again, the evaluations are kept.
    manifest = json.loads((run_dir / "manifest.json").read_text())["stages"]
    assert main([*args[:-1], "0"]) == 0
    again = json.loads((run_dir / "manifest.json").read_text())["stages"]
    assert again["evaluate:ptq-int8-io"]["finished"] == manifest["evaluate:ptq-int8-io"]["finished"]
    # (the TFLM stage ran again: its record now holds the whole test set; its timestamp has a one-second
    # resolution, so a fast rerun can keep the same one)
    assert again["mcu:ptq-int8-io"]["record"]["equivalence"]["images"] == 64


def test_run_mcu_without_tflite_micro_refused_before_training(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "tflite_micro", None)  # import now raises ImportError
    assert main(["run", "mnist", "--model", "micro", "--out", str(tmp_path / "runs"), "--mcu"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "--mcu" in err and "pip install 'dnncomp[mcu]'" in err and err.count("\n") == 1
    assert not (tmp_path / "runs").exists()
