"""Helpers for the device-side tests: real MNIST test images, and small float LiteRT models.

The float models need TensorFlow to be made (tests using them are marked slow);
they are built once per test process and cached.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np


@cache
def mnist(data_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test) from the real mnist.npz, uint8 NHWC and int64."""
    with np.load(Path(data_dir) / "mnist.npz") as z:
        return (
            z["x_train"][..., None],
            z["y_train"].astype(np.int64),
            z["x_test"][..., None],
            z["y_test"].astype(np.int64),
        )


@cache
def float_models(data_dir: Path) -> dict[str, bytes]:
    """LiteRT flatbuffers made with TensorFlow:

    - ``study_mnist_float``: the study's MNIST architecture, float32 (untrained: for timing only);
    - ``tiny_float``: a small CNN trained for one epoch on 4000 real MNIST images;
    - ``tiny_int8_io``: the same, full-integer with int8 input and output tensors;
    - ``tiny_dynamic_range``: the same, dynamic-range quantized (int8 weights, float activations);
    - ``tiny_fixed_batch``: the same, its scores reshaped to ``[1, -1]``, so it cannot run batched;
    - ``tiny_float16``: the same, float16 weights (DEQUANTIZE ops in front of the kernels);
    - ``dense_sparse_format``: a two-layer dense net with 90 % zero kernels, stored sparse (DENSIFY ops).
    """
    from dnncomp.export import to_tflite
    from dnncomp.keras_env import import_keras
    from dnncomp.models import build_model

    tf, keras = import_keras()
    keras.utils.set_random_seed(0)
    x_train, y_train, _, _ = mnist(data_dir)
    x = x_train[:4000, ..., 0].astype(np.float32) / 255.0
    y = y_train[:4000]

    layers = keras.layers
    inputs = keras.Input(shape=(28, 28))
    h = layers.Reshape((28, 28, 1))(inputs)
    h = layers.Conv2D(8, 3, activation="relu")(h)
    h = layers.MaxPooling2D(2)(h)
    h = layers.Conv2D(16, 3, activation="relu")(h)
    h = layers.MaxPooling2D(2)(h)
    h = layers.Flatten()(h)
    outputs = layers.Dense(10)(h)
    tiny = keras.Model(inputs, outputs)
    tiny.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    tiny.fit(x, y, epochs=1, batch_size=64, verbose=0)

    fixed = keras.Model(inputs, layers.Lambda(lambda t: tf.reshape(t, [1, -1]))(outputs))

    # 90 % of every dense kernel zeroed, then stored in TFLite's sparse format.
    sparse = keras.Sequential([keras.Input((28, 28)), layers.Flatten(), layers.Dense(64, activation="relu"), layers.Dense(10)])
    for layer in sparse.layers:
        if layer.get_weights():
            kernel, bias = layer.get_weights()
            kernel[np.abs(kernel) < np.quantile(np.abs(kernel), 0.9)] = 0
            layer.set_weights([kernel, bias])

    return {
        "study_mnist_float": to_tflite(build_model("study-mnist")),
        "tiny_float": to_tflite(tiny),
        "tiny_int8_io": to_tflite(
            tiny,
            optimizations=["DEFAULT"],
            representative_data=x[:200],
            representative_samples=200,
            supported_ops=["TFLITE_BUILTINS_INT8"],
            inference_input_type="int8",
            inference_output_type="int8",
        ),
        "tiny_dynamic_range": to_tflite(tiny, optimizations=["DEFAULT"]),
        "tiny_fixed_batch": to_tflite(fixed),
        "tiny_float16": to_tflite(tiny, optimizations=["DEFAULT"], target_spec_dtypes=["float16"]),
        "dense_sparse_format": to_tflite(sparse, sparsity=True),
    }


def write_models(models: dict[str, bytes], directory: Path) -> dict[str, Path]:
    paths = {}
    for name, data in models.items():
        path = Path(directory) / f"{name}.tflite"
        if not path.exists():
            path.write_bytes(data)
        paths[name] = path
    return paths


def patch_mnist_loader(monkeypatch, data_dir: Path) -> list:
    """Make ``dnncomp.data.load_dataset`` serve MNIST from the real npz, so CLI tests don't depend
    on the loaders; returns the list of (name, image_size) calls it received."""
    import dnncomp.data
    from dnncomp.data.base import Dataset

    calls: list = []

    def load_dataset(name, data_dir=None, image_size=None, skip_bad=False, download=True):
        calls.append((name, image_size))
        x_train, y_train, x_test, y_test = mnist(data_dir_for_test)
        return Dataset("mnist", x_train[:10], y_train[:10], x_test, y_test, [str(i) for i in range(10)])

    data_dir_for_test = Path(data_dir)
    monkeypatch.setattr(dnncomp.data, "load_dataset", load_dataset, raising=False)
    return calls
