"""Quantization: the float32 reference, quantization-aware training, and the conversions every recipe ends with.

:func:`quantize_aware` is TFMOT's QAT applied the documented way for models with
layers it cannot quantize (annotate only the supported layers, then
``quantize_apply``), optionally with a collaborative scheme that preserves
sparsity or clusters. :func:`convert` is the one place that turns a Keras model into
a float, dynamic-range, float16, full-integer int8 or int16x8 flatbuffer; the PTQ
recipes (ptq.py) and the combined ones (combine.py) all end there.
"""

from __future__ import annotations

from typing import Any

from . import Param, RecipeContext, RecipeResult, WrappedModel, fine_tune, register_recipe, representative_inputs, wrap_layers

IO_DTYPES = ("float32", "int8", "uint8")
INT16_IO_DTYPES = ("float32", "int16")
CONVERSIONS = ("float", "dynamic", "fp16", "int8", "int16x8", "qat")
DEFAULT_REPRESENTATIVE_SAMPLES = 500

TRAINING_PARAMS = {
    "epochs": Param(1, "fine-tuning epochs on the training set (per training stage)", minimum=1),
    "batch_size": Param(32, "fine-tuning batch size", minimum=1),
}
IO_PARAM = Param("float32", "input and output dtype of the flatbuffer (int8/uint8: the caller quantizes)", choices=IO_DTYPES)
SPARSE_PARAM = Param(
    False,
    "also store sparse weights in the flatbuffer's sparse format (converter Optimize.EXPERIMENTAL_SPARSITY); "
    "the converter only does so for tensors it finds sparse enough. Refused when LiteRT's default interpreter "
    "cannot run the result (int8 sparse weights under ai-edge-litert 2.3.0's XNNPACK)",
)
REPRESENTATIVE_PARAM = Param(
    DEFAULT_REPRESENTATIVE_SAMPLES, "training images (a seeded random sample) that calibrate the activation ranges", minimum=1
)

_CONVERSION_TEXT = {
    "float": "float32, no optimizations",
    "dynamic": "optimizations=[DEFAULT], no representative data: int8 weights, float32 activations (dynamic range)",
    "fp16": "optimizations=[DEFAULT], supported_types=[float16]: float16 weights, float32 compute",
    "int8": "optimizations=[DEFAULT] with representative data, TFLITE_BUILTINS_INT8: int8 weights and activations",
    "int16x8": "optimizations=[DEFAULT] with representative data, "
    "EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8: int16 activations, int8 weights",
    "qat": "optimizations=[DEFAULT] on the QAT model: int8 weights and activations from the learned ranges",
}
_STRICT_OPS = {"int8": "TFLITE_BUILTINS_INT8", "int16x8": "EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8"}


def convert(
    model,
    ctx: RecipeContext,
    *,
    mode: str,
    io_dtype: str = "float32",
    representative_samples: int = DEFAULT_REPRESENTATIVE_SAMPLES,
    sparse_format: bool = False,
) -> tuple[bytes, dict[str, Any]]:
    """A Keras model -> (flatbuffer bytes, what the conversion did) in one of :data:`CONVERSIONS`.

    Full-integer modes (int8, int16x8) first ask for integer kernels only; if the
    converter cannot quantize some op, they fall back to float kernels for it (the
    converter's documented fallback) and say so, rather than fail.
    """
    from ..errors import ModelError, RecipeError
    from ..export import to_tflite

    if mode not in CONVERSIONS:
        raise RecipeError(f"unknown conversion {mode!r}; choose from {', '.join(CONVERSIONS)}")
    allowed_io = {"int8": IO_DTYPES, "qat": IO_DTYPES, "int16x8": INT16_IO_DTYPES}.get(mode, ("float32",))
    if io_dtype not in allowed_io:
        raise RecipeError(f"io_dtype {io_dtype} does not fit the {mode} conversion, which takes {', '.join(allowed_io)}")
    integer_io = io_dtype != "float32"
    options: dict[str, Any] = {"sparsity": sparse_format}
    if mode != "float":
        options["optimizations"] = ["DEFAULT"]
    if mode == "fp16":
        options["target_spec_dtypes"] = ["float16"]
    if integer_io:
        options["inference_input_type"] = options["inference_output_type"] = io_dtype
    info: dict[str, Any] = {"conversion": _CONVERSION_TEXT[mode], "io_dtype": io_dtype, "sparse_format": sparse_format}
    if mode in _STRICT_OPS:
        calibration = representative_inputs(ctx, representative_samples)
        options["representative_data"] = calibration
        options["representative_samples"] = len(calibration)
        info["representative_samples"] = len(calibration)
        try:
            tflite = to_tflite(model, supported_ops=[_STRICT_OPS[mode]], **options)
            info["float_fallback"] = False
        except ModelError as exc:
            info["float_fallback"] = True
            info["strict_conversion_error"] = str(exc)[:500]
            tflite = to_tflite(model, supported_ops=[_STRICT_OPS[mode], "TFLITE_BUILTINS"], **options)
    else:
        tflite = to_tflite(model, **options)
    if sparse_format:
        _check_runs_with_default_delegate(tflite, mode)
    return tflite, {**info, **_flatbuffer_facts(tflite, integer=mode in ("int8", "int16x8", "qat"), sparse_format=sparse_format)}


def _check_runs_with_default_delegate(tflite: bytes, mode: str) -> None:
    """Refuse a sparse-format flatbuffer that LiteRT's default interpreter (with XNNPACK) cannot run.

    ai-edge-litert 2.3.0's XNNPACK delegate fails to prepare FULLY_CONNECTED ops fed by
    int8 DENSIFY weights; such a file would pass conversion and break every evaluation.
    """
    import numpy as np

    from ..errors import RecipeError
    from ..evaluate import open_interpreter

    try:
        interpreter = open_interpreter(tflite)
        interpreter.allocate_tensors()
        detail = interpreter.get_input_details()[0]
        interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
        interpreter.invoke()
    except Exception as exc:  # LiteRT raises RuntimeError or ValueError with the delegate's message
        message = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise RecipeError(
            f"sparse_format: the {mode} flatbuffer with sparse weights does not run in LiteRT with its default XNNPACK "
            f"delegate ({message}); leave sparse_format off for {mode} models (their dense file gzips as small) "
            "or use it with the float recipes (prune-sparse, cluster-sparse)"
        ) from exc


def _flatbuffer_facts(tflite: bytes, *, integer: bool, sparse_format: bool) -> dict[str, Any]:
    """What the converter really did: kernels it left in float, tensors it stored sparsely."""
    if not (integer or sparse_format):
        return {}
    from ..anatomy import KERNEL_OPS, inspect_model

    anatomy = inspect_model(tflite)
    facts: dict[str, Any] = {}
    if integer:  # e.g. "FULLY_CONNECTED #12" after a layer QAT could not quantize
        facts["float_kernel_ops"] = [
            f"{op['op']} #{i}" for i, op in enumerate(anatomy["op_list"]) if op["op"] in KERNEL_OPS and op["dtype"] in ("float32", "float16")
        ]
    if sparse_format:  # the converter stores a tensor sparsely only if that pays off
        facts["sparse_tensors"] = len(anatomy["sparse_tensors"])
    return facts


def quantize_aware(model, scheme=None) -> WrappedModel:
    """TFMOT QAT on the layers it supports: annotate those, leave the rest in float, ``quantize_apply``.

    ``scheme`` is a TFMOT QuantizeScheme (default: the per-axis Default8BitQuantizeScheme;
    the collaborative ones preserve sparsity or clusters). For a model TFMOT supports
    entirely this is exactly ``quantize_model``.
    """
    from ..keras_env import import_keras, import_tfmot

    qkeras = import_tfmot().quantization.keras
    default_scheme = qkeras.default_8bit.Default8BitQuantizeScheme()
    registry = default_scheme.get_quantize_registry()

    _, keras = import_keras()

    def annotate(layer):
        # BatchNormalization is not in the registry because TFMOT handles it through its
        # Conv+BN transforms, which fold it into the convolution -- but only if it is annotated
        # too. Left out, it stays float with a fake-quant before it and a MUL per conv in int8.
        if isinstance(layer, keras.layers.BatchNormalization):
            return qkeras.quantize_annotate_layer(layer)
        if not registry.supports(layer):
            raise ValueError("not supported by TFMOT's default 8-bit quantization; left in float")
        return qkeras.quantize_annotate_layer(layer)

    annotated = wrap_layers(model, annotate, applies_to=lambda layer: True)
    with qkeras.quantize_scope():
        quantized = qkeras.quantize_apply(annotated.model, scheme or default_scheme)
    return WrappedModel(model=quantized, wrapped=annotated.wrapped, left_alone=annotated.left_alone)


def qat_stage(model, ctx: RecipeContext, *, epochs: int, batch_size: int, scheme=None, scheme_name: str = "Default8BitQuantizeScheme"):
    """Quantization-aware fine-tuning of ``model``: (QAT model, info)."""
    from ..errors import RecipeError

    try:
        quantized = quantize_aware(model, scheme)
    except (RuntimeError, ValueError) as exc:
        raise RecipeError(f"TFMOT cannot quantize {ctx.spec.name} ({exc})") from exc
    training = fine_tune(quantized.model, ctx, epochs=epochs, batch_size=batch_size)
    return quantized.model, {
        "fine_tune": training,
        "scheme": scheme_name,
        "quantized_layers": quantized.wrapped,
        "layers_left_alone": quantized.left_alone,
    }


@register_recipe(
    "float",
    description="The baseline converted to float32 LiteRT, unchanged: every variant is then timed in the same runtime.",
)
def float_recipe(ctx: RecipeContext) -> RecipeResult:
    model = ctx.load_baseline()
    tflite, info = convert(model, ctx, mode="float")
    return RecipeResult(tflite=tflite, info=info, keras_model=model)


@register_recipe(
    "qat",
    description="Quantization-aware training (tfmot, per-axis default 8-bit scheme; layers it cannot quantize stay "
    "float and are reported) from the baseline, then conversion with default optimizations: int8 weights and "
    "activations, float32 input and output unless io_dtype says otherwise.",
    params={**TRAINING_PARAMS, "io_dtype": IO_PARAM},
)
def quantization_aware_training_recipe(ctx: RecipeContext, *, epochs: int, batch_size: int, io_dtype: str) -> RecipeResult:
    model, info = qat_stage(ctx.load_baseline(), ctx, epochs=epochs, batch_size=batch_size)
    tflite, conversion = convert(model, ctx, mode="qat", io_dtype=io_dtype)
    return RecipeResult(tflite=tflite, info={**info, **conversion}, keras_model=model)
