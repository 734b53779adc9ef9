"""Weight clustering: the study's k-means++ clustering, and per-channel clustering for Conv2D.

:func:`cluster_stage` is the shared step (wrap, fine-tune, ``strip_clustering``)
that the combined recipes (combine.py: sparsity-preserving clustering, clustering +
PTQ, CQAT, PCQAT) build on. Clustered values are stored densely in float32: the
gain shows after gzip, or after int8 quantization.
"""

from __future__ import annotations

from typing import Any

from . import (
    LAYER_PARAMS,
    Param,
    RecipeContext,
    RecipeResult,
    Search,
    fine_tune,
    has_weights,
    kernel_stats,
    layer_plan,
    register_recipe,
    wrap_layers,
)
from .quantize import TRAINING_PARAMS, convert

CENTROID_INITS = ("kmeans_plus_plus", "linear", "density_based", "random")

CLUSTER_PARAMS = {
    "number_of_clusters": Param(
        8,
        "centroids per clustered weight tensor (per output channel with per-channel clustering)",
        minimum=2,
        search=Search(choices=(4, 8, 16, 32), stronger="lower"),
    ),
    "init": Param("kmeans_plus_plus", "centroid initialisation", choices=CENTROID_INITS),
    **LAYER_PARAMS,  # per_layer, skip_layers, edge_layers: set on the context
}


def cluster_stage(
    model,
    ctx: RecipeContext,
    *,
    number_of_clusters: int,
    init: str,
    epochs: int,
    batch_size: int,
    per_channel: bool = False,
    preserve_sparsity: bool = False,
) -> tuple[Any, dict[str, Any]]:
    """Cluster every layer with weights TFMOT can cluster while fine-tuning, then strip the wrappers.

    ``per_channel``: Conv2D kernels get ``number_of_clusters`` centroids per output
    channel (TFMOT's ``cluster_per_channel``; other layers are clustered per tensor).
    ``preserve_sparsity``: zeros stay zero (one centroid is pinned at zero), for a
    model pruned and stripped before. Returns (stripped Keras model, info).
    """
    from ..keras_env import import_keras, import_tfmot

    _, keras = import_keras()
    clustering = import_tfmot().clustering.keras
    per_channel_layers: list[str] = []
    per_tensor_fallback: dict[str, str] = {}
    plan = layer_plan(model, ctx, technique="cluster", target=number_of_clusters)

    def wrap(layer):
        if layer.name in plan.skipped:
            raise ValueError(plan.skipped[layer.name])
        options: dict[str, Any] = {"preserve_sparsity": preserve_sparsity}
        if per_channel and isinstance(layer, keras.layers.Conv2D):
            if layer.use_bias:
                options["cluster_per_channel"] = True
                per_channel_layers.append(layer.name)
            else:
                # TFMOT 0.8.1 counts channels as the size of the layer's *last* trainable
                # weight, assumed to be the bias; without one (a conv followed by batch norm)
                # that is the kernel, so it finds one weight per channel and silently leaves
                # the layer unclustered. Clustered per tensor instead, and said so.
                per_tensor_fallback[layer.name] = "Conv2D without bias: TFMOT cannot cluster it per channel; clustered per tensor"
        return clustering.cluster_weights(
            layer,
            number_of_clusters=plan.settings.get(layer.name, number_of_clusters),
            cluster_centroids_init=getattr(clustering.CentroidInitialization, init.upper()),
            **options,
        )

    wrapped = wrap_layers(model, wrap, applies_to=has_weights)
    training = fine_tune(wrapped.model, ctx, epochs=epochs, batch_size=batch_size)
    stripped = clustering.strip_clustering(wrapped.model)
    stats = kernel_stats(stripped)
    clustered = [name for name in wrapped.wrapped if name in stats]
    info: dict[str, Any] = {
        "fine_tune": training,
        "clustered_layers": clustered,
        "layers_left_alone": wrapped.left_alone,
        "unique_values_per_kernel": {name: stats[name]["unique_values"] for name in clustered},
    }
    if per_channel:
        info["per_channel_layers"] = [name for name in per_channel_layers if name in clustered]
        info["per_tensor_fallback_layers"] = {name: why for name, why in per_tensor_fallback.items() if name in clustered}
        info["max_unique_values_per_channel"] = {name: stats[name]["max_unique_per_channel"] for name in clustered}
    if preserve_sparsity:
        info["kernel_sparsity"] = {name: stats[name]["sparsity"] for name in clustered}
    if plan.skipped or plan.settings:
        info["layer_plan"] = plan.describe()
    return stripped, info


def _cluster_recipe(ctx: RecipeContext, *, per_channel: bool, **params) -> RecipeResult:
    stripped, info = cluster_stage(ctx.load_baseline(), ctx, per_channel=per_channel, **params)
    tflite, conversion = convert(stripped, ctx, mode="float")
    return RecipeResult(tflite=tflite, info={**info, **conversion}, keras_model=stripped)


@register_recipe(
    "cluster",
    description="Weight clustering (tfmot cluster_weights, study: 8 clusters, k-means++ initialisation), "
    "fine-tuned from the baseline, wrappers stripped, plain float32 conversion. The file is as large as the "
    "float model; the gain shows after gzip.",
    params={**CLUSTER_PARAMS, **TRAINING_PARAMS},
)
def cluster_weights_recipe(
    ctx: RecipeContext, *, number_of_clusters: int, init: str, epochs: int, batch_size: int
) -> RecipeResult:
    return _cluster_recipe(
        ctx, per_channel=False, number_of_clusters=number_of_clusters, init=init, epochs=epochs, batch_size=batch_size
    )


@register_recipe(
    "cluster-per-channel",
    description="Per-channel clustering (tfmot cluster_per_channel=True): each Conv2D output channel gets its "
    "own number_of_clusters centroids (Dense kernels, and Conv2D without bias, which TFMOT cannot cluster per "
    "channel, are clustered per tensor and reported), which keeps more accuracy at few clusters and fits "
    "per-channel int8 quantization. Float32 conversion.",
    params={**CLUSTER_PARAMS, **TRAINING_PARAMS},
)
def cluster_per_channel_recipe(
    ctx: RecipeContext, *, number_of_clusters: int, init: str, epochs: int, batch_size: int
) -> RecipeResult:
    return _cluster_recipe(
        ctx, per_channel=True, number_of_clusters=number_of_clusters, init=init, epochs=epochs, batch_size=batch_size
    )
