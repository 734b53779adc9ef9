"""Cluster-preserving QAT keeps a per-tensor clustering's centroids shared (TFMOT 0.8.1 would split them)."""

import numpy as np
import pytest

pytestmark = [pytest.mark.tf, pytest.mark.slow]


def _clustered_conv_model(keras):
    """A Conv2D whose 4 output channels each hold the same 4 values: TFMOT's cue for per-channel centroids."""
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3), keras.layers.Flatten(), keras.layers.Dense(2)])
    values = np.array([-0.5, -0.1, 0.2, 0.6], np.float32)
    kernel = np.random.default_rng(0).choice(values, size=tuple(model.layers[0].kernel.shape)).astype(np.float32)
    kernel.reshape(-1, 4)[:4, :] = values[:, None]  # every channel holds all four values
    model.layers[0].kernel.assign(kernel)
    return model


def _centroid_shapes(active: bool) -> dict[str, tuple[int, ...]]:
    from dnncomp.compress.combine import _centroids_shared_per_tensor
    from dnncomp.keras_env import import_keras, import_tfmot

    _, keras = import_keras()
    tfmot = import_tfmot()
    with _centroids_shared_per_tensor(active):
        quantized = tfmot.quantization.keras.quantize_apply(
            tfmot.quantization.keras.quantize_annotate_model(_clustered_conv_model(keras)),
            tfmot.experimental.combine.Default8BitClusterPreserveQuantizeScheme(),
        )
    return {w.name.split("/")[0]: tuple(w.shape) for w in quantized.weights if "cluster_centroids" in w.name}


def test_per_tensor_clustering_keeps_one_centroid_set_through_qat():
    from tensorflow_model_optimization.python.core.quantization.keras.collab_opts.cluster_preserve import (
        cluster_preserve_quantize_registry as registry,
    )

    original = registry.get_centroids
    tfmot_choice = _centroid_shapes(False)
    shared = _centroid_shapes(True)
    conv_default = next(shape for name, shape in tfmot_choice.items() if "conv2d" in name)
    conv_shared = next(shape for name, shape in shared.items() if "conv2d" in name)
    assert conv_default == (4, 4)  # TFMOT alone: one set of 4 centroids per output channel
    assert conv_shared == (4,)  # ours: the one set the kernel was clustered to
    assert registry.get_centroids is original  # scoped to the call
