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

from . import (
    FINE_TUNE_PARAMS,
    Param,
    RecipeContext,
    RecipeResult,
    Search,
    WrappedModel,
    fine_tune,
    flatten_nested_models,
    register_recipe,
    representative_inputs,
    wrap_layers,
)

IO_DTYPES = ("float32", "int8", "uint8")
INT16_IO_DTYPES = ("float32", "int16")
CONVERSIONS = ("float", "dynamic", "fp16", "int8", "int16x8", "qat")
DEFAULT_REPRESENTATIVE_SAMPLES = 500

TRAINING_PARAMS = {
    "epochs": Param(1, "fine-tuning epochs on the training set (per training stage)", minimum=1, search=Search(1, 3)),
    "batch_size": Param(32, "fine-tuning batch size", minimum=1),
    **FINE_TUNE_PARAMS,  # how every stage fine-tunes (study or recover, distillation): set on the context
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

    anatomy = inspect_model(tflite, sizes=False)
    facts: dict[str, Any] = {}
    if integer:  # e.g. "FULLY_CONNECTED #12" after a layer QAT could not quantize
        facts["float_kernel_ops"] = [
            f"{op['op']} #{i}"
            for i, op in enumerate(anatomy["op_list"])
            if op["op"] in KERNEL_OPS and op["dtype"] in ("float32", "float16")
        ]
    if sparse_format:  # the converter stores a tensor sparsely only if that pays off
        facts["sparse_tensors"] = len(anatomy["sparse_tensors"])
    return facts


# BatchNormalization TFMOT folds during QAT (its Conv2DBatchNorm* transforms): right after one of
# these with no activation of its own. Any other BN is left in float and reported.
_TFMOT_BN_FOLD_INPUTS = ("Conv2D", "DepthwiseConv2D")
# A model's own input scaling. Left unannotated, the converter folds it into the input's QUANTIZE
# (no float op), but with ranges QAT never saw: case 01's MNIST CNN lost 1.2-1.8 points that way.
# With its output quantized it stays a float MUL and ADD and QAT matches float (93.9 vs 93.5 %).
_INPUT_SCALING_LAYERS = ("Rescaling", "Normalization")


def quantize_aware(model, scheme=None) -> WrappedModel:
    """TFMOT QAT on the layers it supports: annotate those, leave the rest in float, ``quantize_apply``.

    ``scheme`` is a TFMOT QuantizeScheme (default: the per-axis Default8BitQuantizeScheme;
    the collaborative ones preserve sparsity or clusters). For a model TFMOT supports
    entirely this is exactly ``quantize_model``. A BatchNormalization is annotated only where
    TFMOT folds it (after a Conv2D/DepthwiseConv2D without activation); one that follows a
    Dense without activation is folded into that Dense first (:func:`fold_dense_batch_norms`),
    one after an activation or a pooling into the Dense it feeds through pooling/Flatten
    (:func:`fold_batch_norms_forward`; ``WrappedModel.folded`` lists both, ``"dense+bn"`` and
    ``"bn>dense"``); any other has nothing to fold into: it keeps its own scale and shift as float ops with its output quantized, and is
    reported in ``WrappedModel.kept_as_float_ops`` (and by :func:`qat_stage` as left alone), rather
    than failing the whole model; so is a model's own ``Rescaling``/``Normalization``.
    """
    from ..keras_env import import_keras, import_tfmot

    qkeras = import_tfmot().quantization.keras
    default_scheme = qkeras.default_8bit.Default8BitQuantizeScheme()
    registry = default_scheme.get_quantize_registry()
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import default_8bit_quantize_configs

    _, keras = import_keras()
    # A nested backbone's Conv->BN pairs are only visible to the fold analysis below once the
    # backbone is opened into the outer graph (wrap_layers would open it later, too late for that).
    model, _ = flatten_nested_models(model)
    model, folded = fold_dense_batch_norms(model)
    model, forward = fold_batch_norms_forward(model)  # a BN after an activation or a pooling, into the Dense after it
    folded = folded + forward
    bn_inputs = {layer.name: _inbound(layer) for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)}
    float_ops: dict[str, str] = {}  # layers kept as float ops with their output quantized, and why

    def annotate(layer):
        if isinstance(layer, keras.layers.BatchNormalization):
            # TFMOT handles BN only through its Conv+BN transforms, which fold it into the convolution,
            # and only if it is annotated too. Annotated anywhere else, quantize_apply refuses the model.
            before = bn_inputs.get(layer.name) or []
            source = before[0] if len(before) == 1 else None
            if source is None or type(source).__name__ not in _TFMOT_BN_FOLD_INPUTS or _activation(source) != "linear":
                # Nothing to fold it into: it stays its own per-channel scale and shift. Its output is
                # quantized, so the layers after it still get int8 input (else their kernels stay float).
                where = (
                    "several inputs"
                    if source is None
                    else f"{type(source).__name__} {source.name}"
                    + (f" with activation {_activation(source)}" if _activation(source) not in ("linear", None) else "")
                )
                float_ops[layer.name] = (
                    f"BatchNormalization: after {where}: TFMOT folds a BatchNormalization only into a Conv2D/DepthwiseConv2D/Dense without "
                    "activation; its per-channel scale and shift stay float ops with the output quantized"
                )
                return qkeras.quantize_annotate_layer(layer, default_8bit_quantize_configs.Default8BitOutputQuantizeConfig())
            return qkeras.quantize_annotate_layer(layer)
        if type(layer).__name__ in _INPUT_SCALING_LAYERS and not layer.trainable_weights:
            float_ops[layer.name] = (
                f"{type(layer).__name__}: TFMOT has no quantize config for it; its scale and shift stay float ops with "
                "the output quantized, so the layers after it are int8"
            )
            return qkeras.quantize_annotate_layer(layer, default_8bit_quantize_configs.Default8BitOutputQuantizeConfig())
        if not registry.supports(layer):
            raise ValueError("not supported by TFMOT's default 8-bit quantization; left in float")
        return qkeras.quantize_annotate_layer(layer)

    annotated = wrap_layers(model, annotate, applies_to=lambda layer: True)
    with qkeras.quantize_scope(
        {"Default8BitOutputQuantizeConfig": default_8bit_quantize_configs.Default8BitOutputQuantizeConfig}
    ):
        quantized = qkeras.quantize_apply(annotated.model, scheme or default_scheme)
    return WrappedModel(
        model=quantized, wrapped=annotated.wrapped, left_alone=annotated.left_alone, folded=folded, kept_as_float_ops=float_ops
    )


def _inbound(layer) -> list:
    nodes = getattr(layer, "_inbound_nodes", None) or []
    if not nodes:
        return []
    inbound = nodes[0].inbound_layers
    return list(inbound) if isinstance(inbound, (list, tuple)) else [inbound]


def _activation(layer) -> str | None:
    activation = getattr(layer, "activation", None)
    return getattr(activation, "__name__", None) if activation is not None else None


def fold_dense_batch_norms(model):
    """Fold each BatchNormalization that directly follows a Dense without activation into that Dense.

    Returns ``(model, folded)``: a new model (``model`` itself when nothing folds) whose Dense
    has ``kernel * g`` and ``(bias - mean) * g + beta`` with ``g = gamma / sqrt(variance + eps)``,
    and no BN; ``folded`` names the ``"dense_name+bn_name"`` pairs. TFMOT's own Dense+BN
    transform keeps the BN in float in the converted file (the Dense kernel then stays float
    too), so this is what makes such a model really int8. Only top-level layers of a
    Sequential or functional model fold, only when the Dense feeds nothing else and the BN
    normalises the last axis; the folded model must give the same outputs on a random probe,
    else the original model is returned unchanged.
    """
    import numpy as np

    from ..keras_env import import_keras

    _, keras = import_keras()
    pairs: dict[str, str] = {}  # bn name -> dense name
    for layer in model.layers:
        if not isinstance(layer, keras.layers.BatchNormalization):
            continue
        source = _inbound(layer)
        if len(source) != 1 or not isinstance(source[0], keras.layers.Dense) or _activation(source[0]) != "linear":
            continue
        dense = source[0]
        axis = layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]
        rank = len(layer.input_shape) if isinstance(layer.input_shape, tuple) else 0
        if (
            list(axis) not in ([-1], [rank - 1])
            or len(getattr(dense, "_outbound_nodes", []) or []) != 1
            or len(dense._inbound_nodes) != 1
        ):
            continue
        pairs[layer.name] = dense.name
    if not pairs:
        return model, []
    old = {layer.name: layer for layer in model.layers}
    weights = {}
    for bn_name, dense_name in pairs.items():
        bn, dense = old[bn_name], old[dense_name]
        kernel = dense.kernel.numpy()
        bias = dense.bias.numpy() if dense.use_bias else np.zeros(kernel.shape[-1], kernel.dtype)
        factor, shift = _batch_norm_affine(bn, len(bias))
        weights[dense_name] = [kernel * factor, bias * factor + shift]
    rebuilt = _without_layers(model, set(pairs), weights)
    if rebuilt is None:
        return model, []
    return rebuilt, [f"{d}+{b}" for b, d in pairs.items()]


def _batch_norm_affine(bn, channels: int):
    """A BatchNormalization at inference as ``x * factor + shift`` per channel (its moving statistics)."""
    import numpy as np

    gamma = bn.gamma.numpy() if bn.scale else np.ones(channels, np.float32)
    beta = bn.beta.numpy() if bn.center else np.zeros(channels, np.float32)
    factor = gamma / np.sqrt(bn.moving_variance.numpy() + bn.epsilon)
    return factor, beta - bn.moving_mean.numpy() * factor


def _without_layers(model, drop: set[str], weights: dict[str, list]):
    """``model`` rebuilt without the single-input layers ``drop`` (their consumers take their input) and with
    ``weights`` set on the named layers (bias turned on); None unless it computes what ``model`` does on a probe."""
    import numpy as np

    from ..keras_env import import_keras

    _, keras = import_keras()
    config = model.get_config()
    entries = config["layers"]
    sequential = isinstance(model, keras.Sequential)
    if not sequential:
        inbound = {e["config"]["name"]: e["inbound_nodes"][0][0] for e in entries if e["config"]["name"] in drop}

        def rewire(ref):
            while isinstance(ref, list) and ref and ref[0] in inbound:
                ref = list(inbound[ref[0]][:3]) + list(ref[3:])
            return ref

        for entry in entries:
            entry["inbound_nodes"] = [[rewire(ref) for ref in node] for node in entry.get("inbound_nodes", [])]
        config["output_layers"] = [rewire(ref) for ref in config["output_layers"]]
    config["layers"] = [e for e in entries if e["config"]["name"] not in drop]
    for entry in config["layers"]:
        if entry["config"]["name"] in weights:
            entry["config"]["use_bias"] = True
    rebuilt = (keras.Sequential if sequential else keras.Model).from_config(config)
    old = {layer.name: layer for layer in model.layers}
    for layer in rebuilt.layers:
        if layer.name in weights:
            layer.set_weights(weights[layer.name])
        elif old[layer.name].weights:
            layer.set_weights(old[layer.name].get_weights())
    probe = np.random.default_rng(0).uniform(0, 1, (4, *model.input_shape[1:])).astype(np.float32)
    expected, got = model(probe, training=False).numpy(), rebuilt(probe, training=False).numpy()
    if not np.allclose(expected, got, rtol=1e-3, atol=1e-4 * max(1.0, float(np.abs(expected).max()))):
        return None
    return rebuilt


# Layers a per-channel affine x * a + b passes through unchanged in form (the layer of a*x+b is a*layer(x)+b):
# average pools and flattening always, max pools when every a > 0, dropout at inference.
_AFFINE_COMMUTING = {"Flatten", "Dropout", "AveragePooling2D", "GlobalAveragePooling2D"}
_POSITIVE_SCALE_COMMUTING = {"MaxPooling2D", "GlobalMaxPooling2D"}


def fold_batch_norms_forward(model):
    """Fold each BatchNormalization with nothing to fold back into (after an activation or a pooling) forward
    into the Dense it feeds, when only pooling, Flatten or Dropout sit between them.

    At inference a BN is ``x * a + b`` per channel (its moving statistics); pooling and flattening
    carry that affine through unchanged (max pooling when every ``a > 0``), so the Dense after it
    can take it: ``kernel[i] * a[c(i)]`` and ``bias + sum_i kernel[i] * b[c(i)]`` with ``c(i)`` the
    channel of input ``i`` (channel-last flattening). The model then computes the same outputs with
    no BN left, and QAT trains and quantizes it as any Conv/Dense model; kept as a float op with
    its output quantized (what :func:`quantize_aware` does otherwise) QAT trained it with batch
    statistics while inference uses the moving ones (case 03: 3 points lost). Returns ``(model,
    folded)``, ``folded`` naming ``"bn_name>dense_name"``; the model unchanged when nothing folds
    or the folded model's outputs differ on a random probe.
    """
    import numpy as np

    from ..keras_env import import_keras

    _, keras = import_keras()
    pairs: dict[str, str] = {}  # bn name -> dense name
    for layer in model.layers:
        if not isinstance(layer, keras.layers.BatchNormalization):
            continue
        axis = layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]
        rank = len(layer.input_shape) if isinstance(layer.input_shape, tuple) else 0
        if list(axis) not in ([-1], [rank - 1]) or len(layer._inbound_nodes) != 1:
            continue
        factor, _ = _batch_norm_affine(layer, int(layer.input_shape[-1]))
        current = layer
        while True:
            consumers = [node.outbound_layer for node in (getattr(current, "_outbound_nodes", None) or [])]
            if len(consumers) != 1 or len(consumers[0]._inbound_nodes) != 1:
                break
            nxt, kind = consumers[0], type(consumers[0]).__name__
            if isinstance(nxt, keras.layers.Dense) and len(nxt.input_shape) == 2:
                if nxt.name not in pairs.values():
                    pairs[layer.name] = nxt.name
                break
            if kind in _AFFINE_COMMUTING or (kind in _POSITIVE_SCALE_COMMUTING and bool(np.all(factor > 0))):
                if kind == "Flatten" and getattr(nxt, "data_format", "channels_last") != "channels_last":
                    break
                current = nxt
                continue
            break
    if not pairs:
        return model, []
    old = {layer.name: layer for layer in model.layers}
    weights = {}
    for bn_name, dense_name in pairs.items():
        bn, dense = old[bn_name], old[dense_name]
        kernel = dense.kernel.numpy()
        channels = int(bn.input_shape[-1])
        factor, shift = _batch_norm_affine(bn, channels)
        per_input = np.arange(kernel.shape[0]) % channels  # the channel of each flattened input
        bias = dense.bias.numpy() if dense.use_bias else np.zeros(kernel.shape[-1], kernel.dtype)
        weights[dense_name] = [kernel * factor[per_input][:, None], bias + shift[per_input] @ kernel]
    rebuilt = _without_layers(model, set(pairs), weights)
    if rebuilt is None:
        return model, []
    return rebuilt, [f"{b}>{d}" for b, d in pairs.items()]


def qat_stage(
    model, ctx: RecipeContext, *, epochs: int, batch_size: int, scheme=None, scheme_name: str = "Default8BitQuantizeScheme"
):
    """Quantization-aware fine-tuning of ``model``: (QAT model, info)."""
    from ..errors import RecipeError

    try:
        quantized = quantize_aware(model, scheme)
    except (RuntimeError, ValueError) as exc:
        raise RecipeError(f"TFMOT cannot quantize {ctx.spec.name} ({exc})") from exc
    ranges = None
    if ctx.fine_tuning is not None and ctx.fine_tuning.mode == "recover":  # the study's way keeps TFMOT's +-6 start
        from .qat_ranges import calibrate_activation_ranges

        ranges = calibrate_activation_ranges(quantized.model, ctx.inputs, seed=ctx.seed)
    training = fine_tune(quantized.model, ctx, epochs=epochs, batch_size=batch_size)
    return quantized.model, {
        "fine_tune": training,
        **({"activation_ranges_calibrated": ranges} if ranges else {}),
        "scheme": scheme_name,
        # A layer whose compute stays float (a BN with nothing to fold into, the model's own Rescaling) is
        # left alone as far as the file goes, even though QAT quantizes its output: reported so.
        "quantized_layers": [name for name in quantized.wrapped if name not in quantized.kept_as_float_ops],
        "layers_left_alone": {**quantized.left_alone, **quantized.kept_as_float_ops},
        **({"batch_norms_folded": quantized.folded} if quantized.folded else {}),
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
