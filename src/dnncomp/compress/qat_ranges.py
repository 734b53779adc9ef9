"""Start quantization-aware training from the activation ranges the model really has.

TFMOT 0.8.1 starts every activation quantizer of a QAT model at [-6, 6] and moves it toward each
training batch's range by 0.1 % a step (``MovingAverageQuantizer``: an EMA with decay 0.999).
Over the study's fine-tuning (1,500 steps on MNIST) the ranges get most of the way; over a user's
small folder (1,000 images: 32 steps) they stay where they started, so a ReLU output in 0..2.6
spends half its 256 levels on negatives and a logit of -32 is clipped at -6. A rate high enough
moves the weights into [-6, 6] instead, a low one leaves the model broken: case 06's qat scored
71.45 % at 1e-4 and 78.41 % at 1e-3 against 78.07 % float, with every range still near +-6 in both
files. :func:`calibrate_activation_ranges` runs a seeded sample of the training inputs through the
QAT model once, in inference mode (BatchNormalization on its moving statistics, no dropout), and
sets each range to what it saw, as post-training calibration does; fine-tuning then moves them on.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np

CALIBRATION_IMAGES = 512
CALIBRATION_BATCH = 64


@contextlib.contextmanager
def _quantizers_observing() -> Iterator[None]:
    """Within the block, TFMOT's quantizers record ranges in inference mode too.

    Activation ranges (``MovingAvgQuantize``) become the min/max over every batch seen inside the
    block (0 always included, as TFMOT requires); the model input's running range
    (``AllValuesQuantize``) and each kernel's range (``LastValueQuantize``) update as in training.
    Patched on TFMOT's ``quant_ops`` module, which every quantizer (the collaborative ones too)
    calls through, and restored on exit.
    """
    from ..keras_env import import_keras, import_tfmot

    tf, _ = import_keras()
    import_tfmot()
    from tensorflow_model_optimization.python.core.quantization.keras import quant_ops

    originals = {name: getattr(quant_ops, name) for name in ("MovingAvgQuantize", "AllValuesQuantize", "LastValueQuantize")}
    seen: set[Any] = set()

    def moving_average(inputs, min_var, max_var, **kwargs):
        first = min_var.ref() not in seen
        seen.add(min_var.ref())
        before = (tf.identity(min_var), tf.identity(max_var))
        outputs = originals["MovingAvgQuantize"](inputs, min_var, max_var, **{**kwargs, "ema_decay": 0.0, "is_training": True})
        if not first:  # ema_decay 0 set this batch's range: widen it to every batch's
            min_var.assign(tf.minimum(min_var, before[0]))
            max_var.assign(tf.maximum(max_var, before[1]))
        return outputs

    def training_mode(name):
        return lambda inputs, min_var, max_var, **kwargs: originals[name](
            inputs, min_var, max_var, **{**kwargs, "is_training": True}
        )

    quant_ops.MovingAvgQuantize = moving_average
    quant_ops.AllValuesQuantize = training_mode("AllValuesQuantize")
    quant_ops.LastValueQuantize = training_mode("LastValueQuantize")
    try:
        yield
    finally:
        for name, function in originals.items():
            setattr(quant_ops, name, function)


def calibrate_activation_ranges(model, inputs: np.ndarray, *, seed: int, images: int = CALIBRATION_IMAGES) -> dict[str, Any]:
    """Set the activation ranges of ``model`` (a TFMOT QAT model, not yet fine-tuned) from ``images`` of ``inputs``.

    ``inputs``: float32 model inputs ``[N, ...]``; a seeded sample of ``images`` (all when fewer)
    is run through ``model`` eagerly, in inference mode, ``CALIBRATION_BATCH`` at a time. Only the
    quantizers' min/max variables change. Returns what was done (JSON-able) for the recipe's info.
    """
    rng = np.random.default_rng(seed)
    count = min(int(images), len(inputs))
    sample = inputs[np.sort(rng.choice(len(inputs), size=count, replace=False))]
    with _quantizers_observing():
        for start in range(0, count, CALIBRATION_BATCH):
            model(sample[start : start + CALIBRATION_BATCH], training=False)
    return {"images": count, "how": "min/max of each activation over a seeded training sample, in inference mode"}
