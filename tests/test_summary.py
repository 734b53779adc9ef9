"""What compress and run say about their numbers: which loss, which variants fell far below float (no TensorFlow)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from dnncomp.compress.summary import summary_lines


def _qat_info(distill: bool) -> dict:
    tuning = {
        "mode": "recover",
        "reason": "a user's file",
        "optimizer": "Adam",
        "augment": None,
        "distill": {"alpha": 0.5, "temperature": 4.0, "teacher": "the float baseline"} if distill else None,
        "wall_s": 6.5,
    }
    training = {
        "epochs": 1,
        "batch_size": 32,
        "steps": 63,
        "examples": 2000,
        "wall_s": 6.3,
        "mode": "recover",
        "distill": distill,
        "history": {"loss": [1.3, 0.7512], "accuracy": [0.41, 0.554]},
    }
    return {"recipe": "qat", "params": {}, "fine_tuning": tuning, "quantized_layers": ["conv2d"], "fine_tune": training}


def test_the_fine_tuning_loss_says_which_loss():
    """Case 09's new user read 'final loss 0.75' of a distilled QAT as a cross-entropy."""
    distilled = "\n".join(summary_lines(_qat_info(distill=True)))
    assert "final fine-tuning loss (0.5 CE + 0.5 T^2 KL, distillation) 0.7512, training accuracy 0.5540" in distilled
    assert "final loss" not in distilled
    plain = "\n".join(summary_lines(_qat_info(distill=False)))
    assert "final fine-tuning loss (cross-entropy) 0.7512" in plain and "distillation)" not in plain


def _variant(name: str, full: float) -> dict:
    return {"name": name, "accuracy": {"full": full, "full_count": 10000}}


def test_large_drops_against_float_are_named_with_their_numbers():
    from dnncomp.run import large_accuracy_drops

    variants = [_variant("baseline-keras", 0.99), _variant("float", 0.99), _variant("qat", 0.985), _variant("prune", 0.912)]
    line = large_accuracy_drops(variants)
    assert line.startswith("1 variant(s) lost more than 5 points against float's 99.00 % (LiteRT, 10,000 test images)")
    assert "prune 91.20 % (7.8 points below)" in line and "qat" not in line
    assert large_accuracy_drops(variants[:3]) is None  # 0.5 points: no warning
    assert large_accuracy_drops([_variant("prune", 0.2)]) is None  # nothing to compare with


@pytest.mark.realdata
def test_run_warns_once_when_a_variant_falls_far_below_float(real_data_dir, reference_models_dir, tmp_path, monkeypatch, capsys):
    """An eval-only run on 300 real MNIST test images: float is the study's int8 file (98-99 %), 'prune' a
    random flat classifier (chance level)."""
    import functools

    import dnncomp.bench
    from dnncomp.cli import main
    from tiny_tflite import tiny_flatbuffer

    # run times each variant for 2 s by default; a few calls say the same here (the timed part through
    # run's --min-count/--min-seconds below, the warm-up and harness overhead, which run does not expose, here)
    quick = functools.partial(dnncomp.bench.LatencyConfig, warmup_min_count=1, warmup_min_seconds=0, overhead_seconds=0.02)
    monkeypatch.setattr(dnncomp.bench, "LatencyConfig", quick)

    data_dir = tmp_path / "data"
    data_dir.mkdir()
    with np.load(real_data_dir / "mnist.npz") as z:
        np.savez(
            data_dir / "mnist.npz",
            x_train=z["x_train"][:10],
            y_train=z["y_train"][:10],
            x_test=z["x_test"][:300],
            y_test=z["y_test"][:300],
        )
    run_dir = tmp_path / "runs" / "mnist" / "study-mnist"
    run_dir.mkdir(parents=True)
    shutil.copy(reference_models_dir / "mnist_quantized_model.tflite", run_dir / "float.tflite")
    weights = np.random.default_rng(0).normal(size=(10, 784)).astype(np.float32)
    (run_dir / "prune.tflite").write_bytes(
        tiny_flatbuffer(input_shape=(1, 784), weights=[weights], biases=[np.zeros(10, np.float32)])
    )
    args = ["run", "mnist", "--eval-only", "--techniques", "float,prune", "--out", str(tmp_path / "runs")]
    assert (
        main([*args, "--data-dir", str(data_dir), "--first-n", "100", "--min-count", "5", "--min-seconds", "0", "--quiet"]) == 0
    )
    warnings = [line for line in capsys.readouterr().err.splitlines() if "lost more than 5 points" in line]
    assert len(warnings) == 1 and warnings[0].startswith("warning: 1 variant(s) lost more than 5 points against float's 9")
    assert "(LiteRT, 300 test images): prune " in warnings[0] and "points below" in warnings[0]
