"""compress's summary says what its numbers are (no TensorFlow: the recipe's info is written by hand)."""

from __future__ import annotations

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
