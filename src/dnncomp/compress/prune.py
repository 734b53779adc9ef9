"""Pruning: unstructured low-magnitude pruning (the study's) and structured 2:4 (M-by-N) sparsity.

:func:`prune_stage` is the shared step (wrap, fine-tune with UpdatePruningStep,
``strip_pruning``) that the combined recipes (combine.py) start from. Pruned
weights are zeros stored densely unless ``sparse_format`` asks the converter to
store them sparsely.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from . import (
    LAYER_PARAMS,
    RECOVER_PRUNE_BEGIN,
    RECOVER_PRUNE_END,
    Param,
    RecipeContext,
    RecipeResult,
    Search,
    fine_tune,
    fine_tuning_steps,
    has_weights,
    kernel_stats,
    layer_plan,
    register_recipe,
    wrap_layers,
)
from .quantize import SPARSE_PARAM, TRAINING_PARAMS, convert

SCHEDULES = ("polynomial", "constant")

SCHEDULE_PARAMS = {
    "schedule": Param("polynomial", "sparsity schedule: polynomial decay from initial_sparsity, or constant", choices=SCHEDULES),
    "initial_sparsity": Param(0.5, "sparsity at begin_step (polynomial schedule)", minimum=0.0, maximum=0.99),
    "final_sparsity": Param(
        0.8,
        "target sparsity: reached at end_step (polynomial) or at the first update (constant)",
        minimum=0.0,
        maximum=0.99,
        search=Search(0.5, 0.95, stronger="higher"),
    ),
    "begin_step": Param(0, "training step at which pruning starts", minimum=0),
    "end_step": Param(
        1000, "training step at which final_sparsity is reached (polynomial) or pruning stops (constant)", minimum=1
    ),
    "frequency": Param(100, "steps between mask updates; end_step - begin_step must be a multiple", minimum=1),
    "begin": Param(
        None,
        "pruning starts at this fraction of the fine-tuning steps (instead of begin_step; "
        f"recover fine-tuning's default {RECOVER_PRUNE_BEGIN})",
        type=float,
        minimum=0.0,
        maximum=1.0,
        search=Search(0.0, 0.3),
    ),
    "end": Param(
        None,
        "the target sparsity is reached at this fraction of the fine-tuning steps (instead of end_step; "
        f"recover fine-tuning's default {RECOVER_PRUNE_END})",
        type=float,
        minimum=0.0,
        maximum=1.0,
        search=Search(0.4, 0.9),
    ),
    **LAYER_PARAMS,  # per_layer, skip_layers, edge_layers: set on the context
}


def schedule_steps(steps: int, begin: float, end: float, frequency: int) -> tuple[int, int, int]:
    """Fractions ``begin < end`` of ``steps`` fine-tuning steps -> (begin_step, end_step, frequency) for TFMOT.

    TFMOT updates masks only at ``begin_step + k * frequency``; the frequency is lowered to
    fit at least 4 updates into the span, and ``end_step`` rounded down to the last update,
    so the target is always reached within the steps (and never later than ``end``).
    """
    from ..errors import RecipeError

    if not 0.0 <= begin < end <= 1.0:
        raise RecipeError(f"pruning schedule: begin ({begin}) and end ({end}) must be fractions with 0 <= begin < end <= 1")
    begin_step = int(math.floor(begin * steps))
    span = int(math.floor(end * steps)) - begin_step
    if span < 1:
        raise RecipeError(
            f"pruning schedule: begin {begin} .. end {end} of {steps} steps is not a single step; raise epochs or widen it"
        )
    frequency = max(1, min(int(frequency), span // 4))
    return begin_step, begin_step + (span // frequency) * frequency, frequency


def pruning_schedule(
    *, schedule: str, initial_sparsity: float, final_sparsity: float, begin_step: int, end_step: int, frequency: int
):
    """(TFMOT PruningSchedule, the step at which the target sparsity is in place), after checking the numbers."""
    from ..errors import RecipeError
    from ..keras_env import import_tfmot

    if end_step <= begin_step or (end_step - begin_step) % frequency:
        # TFMOT prunes only on steps begin_step + k*frequency <= end_step, so any other
        # end_step silently never reaches final_sparsity.
        raise RecipeError(
            f"pruning schedule: end_step ({end_step}) - begin_step ({begin_step}) must be a positive multiple of frequency "
            f"({frequency}), or final_sparsity is never reached"
        )
    sparsity = import_tfmot().sparsity.keras
    if schedule == "constant":
        # Steps count from 1; the first mask update is the first begin_step + k*frequency >= 1.
        first_update = begin_step + max(0, math.ceil((1 - begin_step) / frequency)) * frequency
        return sparsity.ConstantSparsity(
            final_sparsity, begin_step=begin_step, end_step=end_step, frequency=frequency
        ), first_update
    if initial_sparsity > final_sparsity:
        raise RecipeError(f"pruning schedule: initial_sparsity {initial_sparsity} is above final_sparsity {final_sparsity}")
    decay = sparsity.PolynomialDecay(
        initial_sparsity=initial_sparsity,
        final_sparsity=final_sparsity,
        begin_step=begin_step,
        end_step=end_step,
        frequency=frequency,
    )
    return decay, end_step


def prune_stage(
    model, ctx: RecipeContext, *, layer_params: Callable[[Any], dict[str, Any]], completes_at: int, epochs: int, batch_size: int
) -> tuple[Any, dict[str, Any]]:
    """Prune ``model`` (fresh from the baseline) while fine-tuning, then strip the wrappers.

    ``layer_params(layer)`` gives the ``prune_low_magnitude`` keywords for a layer with
    weights, or raises ValueError to leave it alone (with the message as the reason).
    Returns (stripped Keras model, info).
    """
    from ..errors import RecipeError
    from ..keras_env import import_tfmot

    steps = math.ceil(len(ctx.labels) / batch_size) * epochs
    if steps < completes_at:
        raise RecipeError(
            f"pruning reaches its target at step {completes_at}, but fine-tuning runs only {steps} steps "
            f"({len(ctx.labels)} images / batch {batch_size} x {epochs} epoch(s)); lower end_step or begin_step, or raise epochs"
        )
    sparsity = import_tfmot().sparsity.keras
    wrapped = wrap_layers(model, lambda layer: sparsity.prune_low_magnitude(layer, **layer_params(layer)), applies_to=has_weights)
    training = fine_tune(wrapped.model, ctx, epochs=epochs, batch_size=batch_size, callbacks=[sparsity.UpdatePruningStep()])
    steps_done = max(
        (int(layer.pruning_step.numpy()) for layer in wrapped.model.layers if hasattr(layer, "pruning_step")), default=0
    )
    stripped = sparsity.strip_pruning(wrapped.model)
    stats = kernel_stats(stripped)
    pruned = [name for name in wrapped.wrapped if name in stats]
    pruned_total = sum(stats[name]["size"] for name in pruned)  # a separable conv's two kernels count together
    zeros = sum(stats[name]["sparsity"] * stats[name]["size"] for name in pruned)
    return stripped, {
        "fine_tune": training,
        "pruning_steps": steps_done,
        "schedule_completed": steps_done >= completes_at,
        "pruned_layers": pruned,
        "layers_left_alone": wrapped.left_alone,
        "kernel_sparsity": {name: stats[name]["sparsity"] for name in pruned},
        "overall_kernel_sparsity": (zeros / pruned_total) if pruned_total else 0.0,
    }


def unstructured_prune_stage(
    model,
    ctx: RecipeContext,
    *,
    epochs: int,
    batch_size: int,
    begin: float | None = None,
    end: float | None = None,
    **schedule_params,
) -> tuple[Any, dict[str, Any]]:
    """Low-magnitude pruning of every layer with weights, on one schedule (:data:`SCHEDULE_PARAMS`).

    ``begin``/``end`` (fractions of the fine-tuning steps) replace ``begin_step``/``end_step``
    when given, or by default when the context fine-tunes in ``recover`` mode; the study's
    mode keeps its step numbers.
    """
    recover = ctx.fine_tuning is not None and ctx.fine_tuning.mode == "recover"
    fractions = None
    if begin is not None or end is not None or recover:
        begin = RECOVER_PRUNE_BEGIN if begin is None else begin
        end = RECOVER_PRUNE_END if end is None else end
        steps = fine_tuning_steps(len(ctx.labels), batch_size, epochs)
        begin_step, end_step, frequency = schedule_steps(steps, begin, end, schedule_params["frequency"])
        schedule_params = {**schedule_params, "begin_step": begin_step, "end_step": end_step, "frequency": frequency}
        fractions = {
            "begin": begin,
            "end": end,
            "of_steps": steps,
            "begin_step": begin_step,
            "end_step": end_step,
            "frequency": frequency,
        }
    schedule, completes_at = pruning_schedule(**schedule_params)
    plan = layer_plan(model, ctx, technique="prune", target=schedule_params["final_sparsity"])
    schedules = {
        name: pruning_schedule(
            **{**schedule_params, "final_sparsity": value, "initial_sparsity": min(schedule_params["initial_sparsity"], value)}
        )[0]
        for name, value in plan.settings.items()
    }

    def layer_params(layer) -> dict[str, Any]:
        if layer.name in plan.skipped:
            raise ValueError(plan.skipped[layer.name])
        return {"pruning_schedule": schedules.get(layer.name, schedule)}

    model, info = prune_stage(
        model, ctx, layer_params=layer_params, completes_at=completes_at, epochs=epochs, batch_size=batch_size
    )
    info["schedule"] = fractions or {key: schedule_params[key] for key in ("begin_step", "end_step", "frequency")}
    if plan.skipped or plan.settings:
        info["layer_plan"] = plan.describe()
    return model, info


def prune_low_magnitude_recipe(
    ctx: RecipeContext,
    *,
    schedule: str,
    initial_sparsity: float,
    final_sparsity: float,
    begin_step: int,
    end_step: int,
    frequency: int,
    begin: float | None,
    end: float | None,
    epochs: int,
    batch_size: int,
    sparse_format: bool,
) -> RecipeResult:
    stripped, info = unstructured_prune_stage(
        ctx.load_baseline(),
        ctx,
        schedule=schedule,
        initial_sparsity=initial_sparsity,
        final_sparsity=final_sparsity,
        begin_step=begin_step,
        end_step=end_step,
        frequency=frequency,
        begin=begin,
        end=end,
        epochs=epochs,
        batch_size=batch_size,
    )
    tflite, conversion = convert(stripped, ctx, mode="float", sparse_format=sparse_format)
    return RecipeResult(tflite=tflite, info={**info, **conversion}, keras_model=stripped)


PRUNE_PARAMS = {**SCHEDULE_PARAMS, **TRAINING_PARAMS}
register_recipe(
    "prune",
    description="Low-magnitude pruning (study: polynomial decay 50% -> 80% over steps 0..1000, or a constant "
    "schedule) of every layer with weights, fine-tuned from the baseline, wrappers stripped, float32 conversion. "
    "The zeros are stored densely unless sparse_format: the gain shows after gzip.",
    params={**PRUNE_PARAMS, "sparse_format": SPARSE_PARAM},
)(prune_low_magnitude_recipe)
register_recipe(
    "prune-sparse",
    description="The prune recipe with the converter's sparse weight format on (Optimize.EXPERIMENTAL_SPARSITY): "
    "sparse enough tensors are stored compressed (CSR-like), with DENSIFY ops where the kernel needs dense weights.",
    params={**PRUNE_PARAMS, "sparse_format": replace(SPARSE_PARAM, default=True)},
)(prune_low_magnitude_recipe)


# ---- structured M-by-N sparsity ----------------------------------------------------------

M_BY_N_LAYERS = ("Conv2D", "Dense")  # TFMOT's M-by-N mask handles rank-2 and rank-4 kernels in these layouts


def input_channels(layer) -> int:
    """Input channels of a Conv2D or Dense kernel (the axis along which M-by-N groups run in LiteRT)."""
    return int(layer.kernel.shape[-2])


def m_by_n_violations(kernel: np.ndarray, m: int = 2, n: int = 4, *, layout: str = "tflite") -> int:
    """Groups of ``n`` consecutive input-channel weights with more than ``n - m`` non-zeros.

    ``layout="tflite"``: input channels on the last axis (CONV_2D ``[out, kh, kw, in]``,
    FULLY_CONNECTED ``[out, in]``); ``"keras"``: Keras kernels (``[kh, kw, in, out]``,
    ``[in, out]``), whose output axis is moved first. A last group shorter than ``n``
    is counted against ``n - m`` too (TFMOT pads it with zeros).
    """
    values = np.moveaxis(np.asarray(kernel), -1, 0) if layout == "keras" else np.asarray(kernel)
    rows = values.reshape(-1, values.shape[-1])
    pad = (-rows.shape[1]) % n
    groups = np.pad(rows != 0, ((0, 0), (0, pad))).reshape(rows.shape[0], -1, n)
    return int(np.count_nonzero(groups.sum(axis=-1) > n - m))


def m_by_n_prune_stage(
    model, ctx: RecipeContext, *, m: int, n: int, fallback: str, fallback_sparsity: float, epochs: int, batch_size: int
) -> tuple[Any, dict[str, Any]]:
    """TFMOT ``sparsity_m_by_n=(m, n)`` on Conv2D and Dense kernels whose input channels divide into groups of n.

    Others (e.g. a first convolution over 1 or 3 colour channels, as TFMOT's 2:4 guide
    notes) get unstructured ``fallback_sparsity`` (``fallback="unstructured"``) or are
    left alone (``"none"``).
    """
    from ..keras_env import import_tfmot

    sparsity = import_tfmot().sparsity.keras
    structured: list[str] = []
    unstructured: list[str] = []
    # Structured masks are set at step 1 and kept; the fallback's constant schedule also updates at step 1.
    fallback_schedule = sparsity.ConstantSparsity(fallback_sparsity, begin_step=0, frequency=1)

    def layer_params(layer) -> dict[str, Any]:
        kind = type(layer).__name__
        if kind in M_BY_N_LAYERS and input_channels(layer) % n == 0:
            structured.append(layer.name)
            return {"sparsity_m_by_n": (m, n)}
        why = (
            f"{input_channels(layer)} input channels, not a multiple of {n}"
            if kind in M_BY_N_LAYERS
            else f"{kind} has no {m}:{n} support"
        )
        if fallback == "none":
            raise ValueError(f"{why}; left dense")
        unstructured.append(layer.name)
        return {"pruning_schedule": fallback_schedule}

    stripped, info = prune_stage(model, ctx, layer_params=layer_params, completes_at=1, epochs=epochs, batch_size=batch_size)
    structured = [name for name in structured if name in info["pruned_layers"]]
    unstructured = [name for name in unstructured if name in info["pruned_layers"]]
    kernels = {layer.name: layer.kernel.numpy() for layer in stripped.layers if layer.name in structured}
    return stripped, {
        **info,
        "m_by_n": [m, n],
        "structured_layers": structured,
        "unstructured_fallback_layers": {name: fallback_sparsity for name in unstructured},
        "m_by_n_violations": {name: m_by_n_violations(kernel, m, n, layout="keras") for name, kernel in kernels.items()},
    }


STRUCTURED_PARAMS = {
    "fallback": Param(
        "unstructured",
        "layers whose input channels are not a multiple of 4 (e.g. the first convolution): "
        "unstructured pruning at fallback_sparsity, or none",
        choices=("unstructured", "none"),
    ),
    "fallback_sparsity": Param(
        0.5, "sparsity of the unstructured fallback", minimum=0.0, maximum=0.99, search=Search(0.3, 0.9, stronger="higher")
    ),
    **TRAINING_PARAMS,
}


@register_recipe(
    "prune-2x4",
    description="Structured 2:4 sparsity (TFMOT sparsity_m_by_n=(2, 4)): in every group of 4 consecutive "
    "input-channel weights of each Conv2D and Dense kernel, the 2 smallest are zero (50%), a pattern sparse "
    "hardware kernels can exploit. Fine-tuned from the baseline, stripped, float32 conversion.",
    params={**STRUCTURED_PARAMS, "sparse_format": SPARSE_PARAM},
)
def prune_2_by_4_recipe(
    ctx: RecipeContext, *, fallback: str, fallback_sparsity: float, epochs: int, batch_size: int, sparse_format: bool
) -> RecipeResult:
    stripped, info = m_by_n_prune_stage(
        ctx.load_baseline(),
        ctx,
        m=2,
        n=4,
        fallback=fallback,
        fallback_sparsity=fallback_sparsity,
        epochs=epochs,
        batch_size=batch_size,
    )
    tflite, conversion = convert(stripped, ctx, mode="float", sparse_format=sparse_format)
    return RecipeResult(tflite=tflite, info={**info, **conversion}, keras_model=stripped)


def _size(shape) -> int:
    return int(np.prod([int(d) for d in shape])) if shape else 1
