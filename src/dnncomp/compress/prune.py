"""Pruning recipes: unstructured low-magnitude pruning (the study's).

Later (issue 5): 2:4 structured sparsity, pruning + PTQ, pruning-preserving QAT.
"""

from __future__ import annotations

from . import Param, RecipeContext, RecipeResult, fine_tune, kernel_stats, register_recipe


@register_recipe(
    "prune",
    description="Low-magnitude pruning with polynomial decay of the sparsity (study: 50% -> 80% over steps "
    "0..1000), fine-tuned from the baseline, wrappers stripped, plain float32 conversion. The file is as large "
    "as the float model; the gain shows after gzip.",
    params={
        "initial_sparsity": Param(0.5, "sparsity at begin_step", minimum=0.0, maximum=0.99),
        "final_sparsity": Param(0.8, "sparsity reached at end_step", minimum=0.0, maximum=0.99),
        "begin_step": Param(0, "training step at which pruning starts", minimum=0),
        "end_step": Param(1000, "training step at which final_sparsity is reached", minimum=1),
        "frequency": Param(100, "steps between mask updates; end_step - begin_step must be a multiple", minimum=1),
        "epochs": Param(1, "fine-tuning epochs on the training set", minimum=1),
        "batch_size": Param(32, "fine-tuning batch size", minimum=1),
    },
)
def prune_low_magnitude_recipe(
    ctx: RecipeContext,
    *,
    initial_sparsity: float,
    final_sparsity: float,
    begin_step: int,
    end_step: int,
    frequency: int,
    epochs: int,
    batch_size: int,
) -> RecipeResult:
    from ..errors import RecipeError
    from ..export import to_tflite
    from ..keras_env import import_tfmot

    if initial_sparsity > final_sparsity:
        raise RecipeError(f"prune: initial_sparsity {initial_sparsity} is above final_sparsity {final_sparsity}")
    if end_step <= begin_step or (end_step - begin_step) % frequency:
        # PolynomialDecay prunes only on steps begin_step + k*frequency <= end_step, so any other
        # end_step silently never reaches final_sparsity.
        raise RecipeError(
            f"prune: end_step ({end_step}) - begin_step ({begin_step}) must be a positive multiple of frequency "
            f"({frequency}), or final_sparsity is never reached"
        )
    tfmot = import_tfmot()
    sparsity = tfmot.sparsity.keras
    model = ctx.load_baseline()
    schedule = sparsity.PolynomialDecay(
        initial_sparsity=initial_sparsity,
        final_sparsity=final_sparsity,
        begin_step=begin_step,
        end_step=end_step,
        frequency=frequency,
    )
    pruned = sparsity.prune_low_magnitude(model, pruning_schedule=schedule)
    training = fine_tune(pruned, ctx, epochs=epochs, batch_size=batch_size, callbacks=[sparsity.UpdatePruningStep()])
    steps_done = max((int(layer.pruning_step.numpy()) for layer in pruned.layers if hasattr(layer, "pruning_step")), default=0)
    pruned_names = [
        layer.layer.name for layer in pruned.layers if hasattr(layer, "pruning_step") and layer.layer.trainable_weights
    ]
    stripped = sparsity.strip_pruning(pruned)
    stats = kernel_stats(stripped)
    pruned_total = sum(_size(stats[name]["shape"]) for name in pruned_names if name in stats)
    zeros = sum(stats[name]["sparsity"] * _size(stats[name]["shape"]) for name in pruned_names if name in stats)
    return RecipeResult(
        tflite=to_tflite(stripped),
        info={
            "fine_tune": training,
            "pruning_steps": steps_done,
            "schedule_completed": steps_done >= end_step,
            "pruned_layers": pruned_names,
            "layers_left_alone": [name for name in stats if name not in pruned_names],
            "kernel_sparsity": {name: stats[name]["sparsity"] for name in pruned_names if name in stats},
            "overall_kernel_sparsity": (zeros / pruned_total) if pruned_total else 0.0,
            "conversion": "strip_pruning, plain float32 (zeros stored densely)",
        },
        keras_model=stripped,
    )


def _size(shape) -> int:
    size = 1
    for dim in shape:
        size *= int(dim)
    return size
