"""Collaborative optimization: techniques chained so each keeps what the one before it bought.

Following TFMOT's collaborative optimization guide, every stage but the last is
stripped before the next starts:

- prune -> full-integer PTQ (``prune-ptq-int8``); prune -> pruning-preserving QAT
  (``pqat``, Default8BitPrunePreserveQuantizeScheme);
- cluster -> full-integer PTQ (``cluster-ptq-int8``); cluster -> cluster-preserving QAT
  (``cqat``, Default8BitClusterPreserveQuantizeScheme);
- prune -> sparsity-preserving clustering (``cluster-sparse``), and on to
  sparsity- and cluster-preserving QAT (``pcqat``).

``epochs`` is per training stage: pcqat fine-tunes three times.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from . import Param, RecipeContext, RecipeResult, Search, register_recipe
from .cluster import CLUSTER_PARAMS, cluster_stage
from .prune import SCHEDULE_PARAMS, unstructured_prune_stage
from .quantize import IO_PARAM, REPRESENTATIVE_PARAM, SPARSE_PARAM, TRAINING_PARAMS, convert, qat_stage

PER_CHANNEL_PARAM = Param(
    False, "cluster Conv2D kernels per output channel (cluster_per_channel)", search=Search(choices=(False, True))
)


def _schemes():
    from ..keras_env import import_tfmot

    return import_tfmot().experimental.combine


@contextlib.contextmanager
def _centroids_shared_per_tensor(active: bool) -> Iterator[None]:
    """Make TFMOT's cluster-preserving QAT keep one set of centroids per kernel, as it was clustered.

    TFMOT 0.8.1 (``cluster_preserve_quantize_registry.get_centroids``) gives a Conv2D one set of
    centroids per output channel whenever every channel happens to hold the same number of
    distinct values, give or take one, even when the clustering stage clustered the kernel per
    tensor; the per-channel sets then drift apart during QAT. Measured on improved-mnist pcqat
    (docs/BENCHMARKS.md, issue 13): block3b_conv, half the weights, ended with 171 distinct int8
    values in 192 code sets, and the file compressed 14.3x instead of 16.2x. Which layer crosses
    that rule depends on the data, so a per-tensor clustering keeps its centroids per tensor here.
    Scoped to one QAT stage (the quantizers read their centroids when they are built).
    """
    if not active:
        yield
        return
    from ..keras_env import import_tfmot

    import_tfmot()
    from tensorflow_model_optimization.python.core.quantization.keras.collab_opts.cluster_preserve import (
        cluster_preserve_quantize_registry as registry,
    )

    def per_tensor(layer, weight, data_format):  # TFMOT's own per-tensor branch
        centroids, index = registry.get_unique(weight)
        return centroids, registry.tf.size(centroids), index, False

    original = registry.get_centroids
    registry.get_centroids = per_tensor
    try:
        yield
    finally:
        registry.get_centroids = original


def _result(stages: dict[str, dict[str, Any]], tflite: bytes, conversion: dict[str, Any], model) -> RecipeResult:
    """One info record: each stage's own info, and every layer any stage left alone (with the stage)."""
    left_alone = {
        name: f"{stage}: {reason}" for stage, info in stages.items() for name, reason in info.get("layers_left_alone", {}).items()
    }
    return RecipeResult(tflite=tflite, info={**stages, "layers_left_alone": left_alone, **conversion}, keras_model=model)


# ---- pruning + quantization ----------------------------------------------------------------


@register_recipe(
    "prune-ptq-int8",
    description="Pruning (as the prune recipe), stripped, then full-integer int8 post-training quantization calibrated "
    "on a seeded training sample: zeros stay zeros in int8, so the file is ~4x smaller and compresses further.",
    params={
        **SCHEDULE_PARAMS,
        **TRAINING_PARAMS,
        "representative_samples": REPRESENTATIVE_PARAM,
        "io_dtype": IO_PARAM,
        "sparse_format": SPARSE_PARAM,
    },
)
def prune_then_ptq_int8_recipe(
    ctx: RecipeContext,
    *,
    representative_samples: int,
    io_dtype: str,
    sparse_format: bool,
    epochs: int,
    batch_size: int,
    **schedule,
) -> RecipeResult:
    pruned, pruning = unstructured_prune_stage(ctx.load_baseline(), ctx, epochs=epochs, batch_size=batch_size, **schedule)
    tflite, conversion = convert(
        pruned, ctx, mode="int8", io_dtype=io_dtype, representative_samples=representative_samples, sparse_format=sparse_format
    )
    return _result({"pruning": pruning}, tflite, conversion, pruned)


@register_recipe(
    "pqat",
    description="Pruning-preserving quantization-aware training: prune (as the prune recipe), strip, then QAT with "
    "Default8BitPrunePreserveQuantizeScheme so the zeros survive fine-tuning; int8 conversion.",
    params={**SCHEDULE_PARAMS, **TRAINING_PARAMS, "io_dtype": IO_PARAM, "sparse_format": SPARSE_PARAM},
)
def pruning_preserving_qat_recipe(
    ctx: RecipeContext, *, io_dtype: str, sparse_format: bool, epochs: int, batch_size: int, **schedule
) -> RecipeResult:
    pruned, pruning = unstructured_prune_stage(ctx.load_baseline(), ctx, epochs=epochs, batch_size=batch_size, **schedule)
    model, qat = qat_stage(
        pruned,
        ctx,
        epochs=epochs,
        batch_size=batch_size,
        scheme=_schemes().Default8BitPrunePreserveQuantizeScheme(),
        scheme_name="Default8BitPrunePreserveQuantizeScheme",
    )
    tflite, conversion = convert(model, ctx, mode="qat", io_dtype=io_dtype, sparse_format=sparse_format)
    return _result({"pruning": pruning, "qat": qat}, tflite, conversion, model)


# ---- clustering + quantization ------------------------------------------------------------

CLUSTER_STAGE_PARAMS = {**CLUSTER_PARAMS, "per_channel": PER_CHANNEL_PARAM, **TRAINING_PARAMS}


@register_recipe(
    "cluster-ptq-int8",
    description="Clustering (as the cluster recipe), stripped, then full-integer int8 post-training quantization: "
    "each kernel keeps at most number_of_clusters distinct int8 values per output channel.",
    params={**CLUSTER_STAGE_PARAMS, "representative_samples": REPRESENTATIVE_PARAM, "io_dtype": IO_PARAM},
)
def cluster_then_ptq_int8_recipe(
    ctx: RecipeContext, *, representative_samples: int, io_dtype: str, **clustering_params
) -> RecipeResult:
    clustered, clustering = cluster_stage(ctx.load_baseline(), ctx, **clustering_params)
    tflite, conversion = convert(clustered, ctx, mode="int8", io_dtype=io_dtype, representative_samples=representative_samples)
    return _result({"clustering": clustering}, tflite, conversion, clustered)


@register_recipe(
    "cqat",
    description="Cluster-preserving quantization-aware training: cluster (as the cluster recipe), strip, then QAT with "
    "Default8BitClusterPreserveQuantizeScheme so the int8 kernels keep at most number_of_clusters values; int8 conversion.",
    params={**CLUSTER_STAGE_PARAMS, "io_dtype": IO_PARAM},
)
def cluster_preserving_qat_recipe(
    ctx: RecipeContext, *, io_dtype: str, epochs: int, batch_size: int, **clustering_params
) -> RecipeResult:
    clustered, clustering = cluster_stage(ctx.load_baseline(), ctx, epochs=epochs, batch_size=batch_size, **clustering_params)
    # TFMOT's CQAT guide uses the scheme's default (preserve_sparsity=True); with nothing pruned
    # before, the only zeros it keeps are the rare exact-zero weights.
    per_tensor = not clustering_params.get("per_channel")
    with _centroids_shared_per_tensor(per_tensor):
        model, qat = qat_stage(
            clustered,
            ctx,
            epochs=epochs,
            batch_size=batch_size,
            scheme=_schemes().Default8BitClusterPreserveQuantizeScheme(),
            scheme_name="Default8BitClusterPreserveQuantizeScheme",
        )
    qat["centroids"] = "one set per kernel, as clustered" if per_tensor else "TFMOT's choice (per channel where it can)"
    tflite, conversion = convert(model, ctx, mode="qat", io_dtype=io_dtype)
    return _result({"clustering": clustering, "qat": qat}, tflite, conversion, model)


# ---- pruning + clustering (+ quantization) -------------------------------------------------

PRUNE_CLUSTER_PARAMS = {**SCHEDULE_PARAMS, **CLUSTER_PARAMS, **TRAINING_PARAMS}


def _prune_then_cluster(ctx: RecipeContext, *, number_of_clusters: int, init: str, epochs: int, batch_size: int, **schedule):
    pruned, pruning = unstructured_prune_stage(ctx.load_baseline(), ctx, epochs=epochs, batch_size=batch_size, **schedule)
    clustered, clustering = cluster_stage(
        pruned,
        ctx,
        number_of_clusters=number_of_clusters,
        init=init,
        preserve_sparsity=True,
        epochs=epochs,
        batch_size=batch_size,
    )
    return clustered, {"pruning": pruning, "clustering": clustering}


@register_recipe(
    "cluster-sparse",
    description="Sparsity-preserving clustering: prune (as the prune recipe), strip, then cluster with "
    "preserve_sparsity=True (one centroid pinned at zero, zeros stay zeros), strip, float32 conversion.",
    params={**PRUNE_CLUSTER_PARAMS, "sparse_format": SPARSE_PARAM},
)
def sparsity_preserving_cluster_recipe(ctx: RecipeContext, *, sparse_format: bool, **params) -> RecipeResult:
    clustered, stages = _prune_then_cluster(ctx, **params)
    tflite, conversion = convert(clustered, ctx, mode="float", sparse_format=sparse_format)
    return _result(stages, tflite, conversion, clustered)


@register_recipe(
    "pcqat",
    description="The whole chain: prune, strip, cluster with preserve_sparsity, strip, then QAT with "
    "Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=True): int8 kernels that keep both the zeros and "
    "at most number_of_clusters values. Three fine-tuning stages of `epochs` each.",
    params={**PRUNE_CLUSTER_PARAMS, "io_dtype": IO_PARAM, "sparse_format": SPARSE_PARAM},
)
def prune_cluster_qat_recipe(ctx: RecipeContext, *, io_dtype: str, sparse_format: bool, **params) -> RecipeResult:
    clustered, stages = _prune_then_cluster(ctx, **params)
    # The clustering stage here is per tensor: its centroids stay shared through QAT.
    with _centroids_shared_per_tensor(True):
        model, qat = qat_stage(
            clustered,
            ctx,
            epochs=params["epochs"],
            batch_size=params["batch_size"],
            scheme=_schemes().Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=True),
            scheme_name="Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=True)",
        )
    qat["centroids"] = "one set per kernel, as clustered"
    tflite, conversion = convert(model, ctx, mode="qat", io_dtype=io_dtype, sparse_format=sparse_format)
    return _result({**stages, "qat": qat}, tflite, conversion, model)
