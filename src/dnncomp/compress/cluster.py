"""Weight clustering recipes: the study's k-means++ clustering.

Later (issue 5): per-channel clustering, sparsity-preserving clustering, clustering
+ PTQ, cluster-preserving QAT, prune -> cluster -> QAT.
"""

from __future__ import annotations

from . import Param, RecipeContext, RecipeResult, fine_tune, kernel_stats, register_recipe

CENTROID_INITS = ("kmeans_plus_plus", "linear", "density_based", "random")


@register_recipe(
    "cluster",
    description="Weight clustering (tfmot cluster_weights, study: 8 clusters, k-means++ initialisation), "
    "fine-tuned from the baseline, wrappers stripped, plain float32 conversion. The file is as large as the "
    "float model; the gain shows after gzip.",
    params={
        "number_of_clusters": Param(8, "centroids per clustered weight tensor", minimum=2),
        "init": Param("kmeans_plus_plus", "centroid initialisation", choices=CENTROID_INITS),
        "epochs": Param(1, "fine-tuning epochs on the training set", minimum=1),
        "batch_size": Param(32, "fine-tuning batch size", minimum=1),
    },
)
def cluster_weights_recipe(ctx: RecipeContext, *, number_of_clusters: int, init: str, epochs: int, batch_size: int) -> RecipeResult:
    from ..export import to_tflite
    from ..keras_env import import_tfmot

    tfmot = import_tfmot()
    clustering = tfmot.clustering.keras
    model = ctx.load_baseline()
    clustered = clustering.cluster_weights(
        model,
        number_of_clusters=number_of_clusters,
        cluster_centroids_init=getattr(clustering.CentroidInitialization, init.upper()),
    )
    clustered_names = [
        layer.layer.name for layer in clustered.layers if hasattr(layer, "layer") and layer.layer.trainable_weights
    ]
    training = fine_tune(clustered, ctx, epochs=epochs, batch_size=batch_size)
    stripped = clustering.strip_clustering(clustered)
    stats = kernel_stats(stripped)
    return RecipeResult(
        tflite=to_tflite(stripped),
        info={
            "fine_tune": training,
            "clustered_layers": clustered_names,
            "layers_left_alone": [name for name in stats if name not in clustered_names],
            "unique_values_per_kernel": {name: stats[name]["unique_values"] for name in clustered_names if name in stats},
            "conversion": "strip_clustering, plain float32 (clustered values stored densely)",
        },
        keras_model=stripped,
    )
