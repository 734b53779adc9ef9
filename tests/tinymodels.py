"""Shared by the TensorFlow-side tests: one tiny trained study baseline per test process, and flatbuffer probes.

The baseline is the real ``study-mnist`` architecture trained for one epoch on 256
random images: cheap, and every recipe then works on the study's real layer stack.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from functools import cache
from pathlib import Path

import numpy as np

TINY_IMAGES = 256


def random_mnist_like(n: int = TINY_IMAGES, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 NHWC grey images with a learnable signal (class = brightness band), int64 labels."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, size=n).astype(np.int64)
    x = rng.integers(0, 64, size=(n, 28, 28, 1)).astype(np.int64) + (y * 19)[:, None, None, None]
    return np.clip(x, 0, 255).astype(np.uint8), y


@cache
def tiny_baseline() -> tuple[Path, np.ndarray, np.ndarray]:
    """(baseline.keras path, x_train uint8, y_train) for a study-mnist trained 1 epoch on tiny data."""
    from dnncomp.models import get_model_spec
    from dnncomp.train import save_baseline, train_baseline

    x, y = random_mnist_like()
    model, _ = train_baseline(get_model_spec("study-mnist"), x, y, epochs=1, batch_size=32, seed=0, verbose=0)
    run_dir = Path(tempfile.mkdtemp(prefix="dnncomp-tiny-baseline-"))
    atexit.register(shutil.rmtree, run_dir, ignore_errors=True)
    save_baseline(model, run_dir)
    return run_dir / "baseline.keras", x, y


def interpreter(tflite: bytes):
    """A LiteRT interpreter without the default XNNPACK delegate, so the model's own ops and tensors are visible."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(model_content=tflite, experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    it.allocate_tensors()
    return it


def ops_with_input_dtypes(tflite: bytes) -> list[tuple[str, list[str]]]:
    it = interpreter(tflite)
    tensors = {t["index"]: t for t in it.get_tensor_details()}
    return [
        (op["op_name"], [np.dtype(tensors[i]["dtype"]).name for i in op["inputs"] if i in tensors])
        for op in it._get_ops_details()
    ]


def weight_arrays(tflite: bytes, op_name: str) -> list[np.ndarray]:
    """The constant weight input (index 1) of every ``op_name`` op, e.g. CONV_2D kernels."""
    it = interpreter(tflite)
    out = []
    for op in it._get_ops_details():
        if op["op_name"] == op_name:
            out.append(np.array(it.get_tensor(op["inputs"][1])))
    return out


@cache
def tiny_baseline_with_unsupported_layer() -> tuple[Path, np.ndarray, np.ndarray]:
    """A study-mnist-shaped model with a LayerNormalization, which TFMOT's 8-bit QAT does not support."""
    from dnncomp.keras_env import import_keras

    _, keras = import_keras()
    layers = keras.layers
    model = keras.Sequential(
        [
            keras.Input(shape=(28, 28)),
            layers.Reshape((28, 28, 1), name="reshape"),
            layers.Conv2D(8, 3, activation="relu", name="conv"),
            layers.MaxPooling2D(2, name="pool"),
            layers.LayerNormalization(name="layer_norm"),
            layers.Flatten(name="flatten"),
            layers.Dense(10, name="logits"),
        ]
    )
    run_dir = Path(tempfile.mkdtemp(prefix="dnncomp-tiny-unsupported-"))
    atexit.register(shutil.rmtree, run_dir, ignore_errors=True)
    model.save(run_dir / "baseline.keras")
    x, y = random_mnist_like(64)
    return run_dir / "baseline.keras", x, y


def sparse_tensors(tflite: bytes) -> list[str]:
    """Names of the tensors stored in the flatbuffer's sparse format (they feed DENSIFY ops)."""
    return [t["name"] for t in interpreter(tflite).get_tensor_details() if t.get("sparsity_parameters")]


def max_unique_per_output_channel(weights: np.ndarray) -> int:
    """LiteRT kernels keep output channels first (CONV_2D [out, kh, kw, in], FULLY_CONNECTED [out, in])."""
    return max(np.unique(channel).size for channel in weights.reshape(weights.shape[0], -1))
