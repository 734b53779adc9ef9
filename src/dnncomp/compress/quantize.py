"""Quantization recipes: the float32 reference and quantization-aware training.

Later (issue 5) this module also holds post-training quantization (dynamic range,
full integer int8, float16, int16x8): one registered function each.
"""

from __future__ import annotations

from . import Param, RecipeContext, RecipeResult, fine_tune, register_recipe


@register_recipe(
    "float",
    description="The baseline converted to float32 LiteRT, unchanged: every variant is then timed in the same runtime.",
)
def float_recipe(ctx: RecipeContext) -> RecipeResult:
    from ..export import to_tflite

    model = ctx.load_baseline()
    return RecipeResult(tflite=to_tflite(model), info={"conversion": "float32, no optimizations"}, keras_model=model)


@register_recipe(
    "qat",
    description="Quantization-aware training (tfmot quantize_model, default 8-bit scheme) from the baseline, "
    "then conversion with default optimizations: int8 weights and activations, float32 input and output.",
    params={
        "epochs": Param(1, "fine-tuning epochs on the training set", minimum=1),
        "batch_size": Param(32, "fine-tuning batch size", minimum=1),
    },
)
def quantization_aware_training_recipe(ctx: RecipeContext, *, epochs: int, batch_size: int) -> RecipeResult:
    from ..errors import RecipeError
    from ..export import to_tflite
    from ..keras_env import import_tfmot

    tfmot = import_tfmot()
    model = ctx.load_baseline()
    try:
        qat_model = tfmot.quantization.keras.quantize_model(model)
    except (RuntimeError, ValueError) as exc:
        raise RecipeError(f"qat: TFMOT cannot quantize {ctx.spec.name} as a whole ({exc})") from exc
    wrapped = {layer.layer.name for layer in qat_model.layers if hasattr(layer, "layer")}
    training = fine_tune(qat_model, ctx, epochs=epochs, batch_size=batch_size)
    tflite = to_tflite(qat_model, optimizations=["DEFAULT"])
    return RecipeResult(
        tflite=tflite,
        info={
            "fine_tune": training,
            "quantize_wrapped_layers": [layer.name for layer in model.layers if layer.name in wrapped],
            "layers_left_alone": [layer.name for layer in model.layers if layer.name not in wrapped],
            "conversion": "optimizations=[DEFAULT] on the QAT model: int8 weights and activations, float32 input/output",
        },
        keras_model=qat_model,
    )
