"""Post-training quantization: the baseline converted with the LiteRT converter's quantization options, no training.

dynamic-range int8, full-integer int8 (float or integer input/output), float16 weights,
and 16-bit activations with 8-bit weights. Full-integer modes calibrate on a seeded
random sample of the training images.
"""

from __future__ import annotations

from dataclasses import replace

from . import Param, RecipeContext, RecipeResult, register_recipe
from .quantize import INT16_IO_DTYPES, IO_PARAM, REPRESENTATIVE_PARAM, convert


def _ptq(ctx: RecipeContext, mode: str, **options) -> RecipeResult:
    model = ctx.load_baseline()
    tflite, info = convert(model, ctx, mode=mode, **options)
    return RecipeResult(tflite=tflite, info=info, keras_model=model)


@register_recipe(
    "ptq-dynamic",
    description="Post-training dynamic-range quantization: int8 weights, activations quantized on the fly by the "
    "kernels that support it (else float), float32 input and output. No training, no calibration data.",
)
def ptq_dynamic_range_recipe(ctx: RecipeContext) -> RecipeResult:
    return _ptq(ctx, "dynamic")


def ptq_full_integer_recipe(ctx: RecipeContext, *, representative_samples: int, io_dtype: str) -> RecipeResult:
    return _ptq(ctx, "int8", representative_samples=representative_samples, io_dtype=io_dtype)


_FULL_INTEGER_DESCRIPTION = (
    "Post-training full-integer quantization: int8 weights and activations calibrated on a seeded sample of the "
    "training images; ops the converter cannot quantize fall back to float and are reported."
)
register_recipe(
    "ptq-int8",
    description=_FULL_INTEGER_DESCRIPTION + " Float32 input and output by default.",
    params={"representative_samples": REPRESENTATIVE_PARAM, "io_dtype": IO_PARAM},
)(ptq_full_integer_recipe)
register_recipe(
    "ptq-int8-io",
    description=_FULL_INTEGER_DESCRIPTION + " Int8 input and output (the caller quantizes the image with the "
    "input's scale and zero point): an integer-only graph for integer-only accelerators.",
    params={"representative_samples": REPRESENTATIVE_PARAM, "io_dtype": replace(IO_PARAM, default="int8")},
)(ptq_full_integer_recipe)


@register_recipe(
    "ptq-fp16",
    description="Post-training float16 quantization: weights stored as float16 (half the size), dequantized to "
    "float32 for compute on CPU; GPU delegates can compute in float16.",
)
def ptq_float16_recipe(ctx: RecipeContext) -> RecipeResult:
    return _ptq(ctx, "fp16")


@register_recipe(
    "ptq-int16x8",
    description="Post-training 16x8 quantization: int16 activations and int8 weights "
    "(EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8), calibrated on a seeded training sample; "
    "more accurate than int8 where activations have a wide range, slower on most CPUs.",
    params={
        "representative_samples": REPRESENTATIVE_PARAM,
        "io_dtype": Param("float32", "input and output dtype of the flatbuffer", choices=INT16_IO_DTYPES),
    },
)
def ptq_int16x8_recipe(ctx: RecipeContext, *, representative_samples: int, io_dtype: str) -> RecipeResult:
    return _ptq(ctx, "int16x8", representative_samples=representative_samples, io_dtype=io_dtype)
