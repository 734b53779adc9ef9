"""LiteRT evaluation: accuracy and size of a ``.tflite`` classifier. No TensorFlow: runs on the device.

Everything about the input is read from the model itself (:class:`InputSpec`): its
layout (:func:`dnncomp.preprocess.input_layout`: ``HxW`` such as the study's MNIST
``(1, 28, 28)``, NHWC, channel-first, or a flat vector; images are resized with
Pillow and converted between grey and colour), the batch it was saved with (a batch
baked into the graph is fed that many images at a time), its dtype (float32, int8,
uint8, int16) and quantization, and which output holds the class scores
(:func:`choose_output`). The real value range the input expects comes from the
command line, the sidecar dnncomp writes beside each ``.tflite``, or the model
(:func:`resolve_preprocessing`), and the spec says where it came from. So foreign
models, such as the study's three reference models, are evaluated as they are.

Accuracy is computed in batches (the interpreter input is resized to ``batch``
images) when the model allows it; every batched interpreter is first checked
against the model's own batch on real images and falls back to it when the
model does not give the same answers. Latency lives in :mod:`dnncomp.bench`:
accuracy and timing are separate passes.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ModelError, first_line
from .litert_backend import captured_stderr
from .preprocess import (
    INPUT_RANGES,
    InputLayout,
    Preprocessing,
    input_layout,
    model_input,
    quantize_input,
    quantized_real_range,
    read_sidecar,
)
from .results import wilson_interval
from .signature import first_layer_gain, input_rescaling, read_metadata, signature_names

ModelSource = str | os.PathLike | bytes

DEFAULT_EVAL_BATCH = 256
# How many images the batched interpreter is checked on against batch 1.
BATCH_CHECK_IMAGES = 8


# ---- opening a model ------------------------------------------------------------------


def model_label(model: ModelSource) -> str:
    return "<model bytes>" if isinstance(model, (bytes, bytearray)) else str(model)


def read_model_bytes(model: ModelSource) -> bytes:
    if isinstance(model, (bytes, bytearray)):
        return bytes(model)
    path = Path(model)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    return path.read_bytes()


def open_interpreter(model: ModelSource, *, threads: int = 1, xnnpack: bool = True):
    """A LiteRT ``Interpreter`` (not yet allocated) for a path or flatbuffer bytes.

    ``xnnpack=False`` uses the builtin kernels without LiteRT's default delegate. The runtime is
    :func:`dnncomp.litert_backend.backend`'s (ai-edge-litert, else tflite-runtime); what it prints on
    C stderr while it starts (cpuinfo's complaints about an unusual /sys) becomes one note.
    """
    from .litert_backend import backend, create_interpreter

    if threads < 1:
        raise ModelError(f"threads must be >= 1, got {threads}")
    OpResolverType = backend().OpResolverType
    resolver = OpResolverType.AUTO if xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    kwargs: dict[str, Any] = {"num_threads": int(threads), "experimental_op_resolver_type": resolver}
    if isinstance(model, (bytes, bytearray)):
        kwargs["model_content"] = bytes(model)
    else:
        if not Path(model).is_file():
            raise ModelError(f"{model}: model file not found")
        kwargs["model_path"] = os.fspath(model)
    return create_interpreter(model_label(model), **kwargs)


def delegation(interpreter) -> dict[str, Any]:
    """Which kernels an allocated interpreter really runs: {"delegate_nodes", "ops", "ops_delegated"}.

    Read from the interpreter's nodes, not from the resolver asked for: a delegate that was
    applied adds DELEGATE nodes after the model's ops, each replacing a partition of them. A
    partition is found by walking back from the DELEGATE node's outputs through the ops that
    produce them until its inputs. ``delegate_nodes`` 0 means LiteRT's builtin kernels ran every op
    (XNNPACK asked for but not applied, e.g. when its CPU detection fails on an unusual /sys).
    """
    try:
        nodes = interpreter._get_ops_details()
    except Exception:  # an interpreter without the node list: say nothing rather than guess
        return {"delegate_nodes": None, "ops": None, "ops_delegated": None}
    delegates = [n for n in nodes if n.get("op_name") == "DELEGATE"]
    ops = [n for n in nodes if n.get("op_name") != "DELEGATE"]
    producer = {int(t): i for i, op in enumerate(ops) for t in op.get("outputs", [])}
    covered: set[int] = set()
    for node in delegates:
        boundary = {int(t) for t in node.get("inputs", [])}
        stack = [int(t) for t in node.get("outputs", [])]
        seen: set[int] = set()
        while stack:
            tensor = stack.pop()
            if tensor in boundary or tensor in seen or tensor not in producer:
                continue
            seen.add(tensor)
            index = producer[tensor]
            covered.add(index)
            stack.extend(int(t) for t in ops[index].get("inputs", []) if int(t) >= 0)
    return {"delegate_nodes": len(delegates), "ops": len(ops), "ops_delegated": len(covered)}


# LiteRT prints "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." on the C
# stderr once per process, at the first allocation; the CLI promises one line on
# stderr for an error, so that notice is captured (and anything else passed on).
_DELEGATE_NOTICE = "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
_notice_pending = True


def allocate(interpreter, label: str = "model") -> None:
    """``allocate_tensors`` with LiteRT's one-time delegate notice kept off stderr."""
    global _notice_pending
    if not _notice_pending:
        try:
            interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"{label}: LiteRT cannot allocate its tensors ({first_line(exc)})") from exc
        return
    captured = ""
    error: BaseException | None = None
    with captured_stderr() as read_captured:
        try:
            interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            error = exc
        captured = read_captured()
    if _DELEGATE_NOTICE in captured:
        _notice_pending = False
    from .litert_backend import runtime_notes

    rest = runtime_notes(captured)  # cpuinfo's lines (an unusual /sys) become one note, said once
    rest = "\n".join(line for line in rest.splitlines() if line.strip() and line.strip() != _DELEGATE_NOTICE)
    if error is not None:
        detail = rest.splitlines()[-1] if rest else first_line(error)
        raise ModelError(f"{label}: LiteRT cannot allocate its tensors ({detail})") from error
    if rest:
        sys.stderr.write(rest + "\n")


@dataclass(frozen=True)
class OutputInfo:
    """One output tensor of a model: its position among the outputs, tensor index, names and size."""

    position: int
    index: int
    name: str
    signature_name: str | None
    size: int  # values per image (the output shape without its batch axis, multiplied out)

    def label(self) -> str:
        return f"{self.position} '{self.signature_name or self.name}'"


@dataclass(frozen=True)
class InputSpec:
    """What a classifier's single input tensor wants, and which output holds its class scores, read from the model."""

    index: int
    shape: tuple[int, ...]  # without the batch axis: (H, W), (H, W, C), (C, H, W) or (N,) flat
    dtype: np.dtype
    scale: float
    zero_point: int
    output_index: int
    num_outputs: int  # classes the model predicts
    layout: InputLayout | None = None
    batch: int = 1  # the batch size the model was saved with
    batch_resizable: bool = True  # False when the shape signature fixes the batch axis
    output_name: str = ""
    output_note: str | None = None  # said once when the model has several outputs
    preprocessing: Preprocessing | None = None  # None: pixel / 255 (dnncomp's convention)

    @property
    def image_size(self) -> tuple[int, int]:
        if self.layout is not None:
            return self.layout.image_size
        return int(self.shape[0]), int(self.shape[1])

    def describe_input(self) -> str:
        """``input: NHWC, 28x28x1, uint8, range 0..255 (inferred from ...)``, plus how to override an assumption."""
        layout = self.layout.describe() if self.layout is not None else "x".join(map(str, self.shape))
        pre = self.preprocessing or Preprocessing(source="dnncomp's convention, pixel / 255", assumed=True)
        text = f"input: {layout}, {self.dtype.name}, range {pre.describe()} ({pre.source})"
        if not self.batch_resizable and self.batch > 1:
            text += f"; batch fixed at {self.batch}: fed {self.batch} images at a time"
        if pre.assumed:
            text += "; assumed: if the model was trained otherwise, give --input-range/--mean/--std"
        return text

    def preprocessing_record(self) -> dict[str, Any]:
        """The results record's ``preprocessing`` object: the mapping used, and the input it fed."""
        pre = self.preprocessing or Preprocessing(source="dnncomp's convention, pixel / 255", assumed=True)
        return {
            **pre.to_dict(),
            "layout": self.layout.kind if self.layout is not None else None,
            "input_dtype": self.dtype.name,
            "input_shape": [int(d) for d in self.shape],
            "batch": self.batch,
            "output": self.output_name or None,
        }


INPUT_DTYPES = (np.float32, np.int8, np.uint8, np.int16)


def _output_infos(interpreter, outputs: list[dict], allocated: bool, inp: dict) -> list[OutputInfo]:
    shapes = [_shape(o["shape"]) for o in outputs]
    if allocated and any(int(np.prod(s[1:] or (0,))) < 2 for s in shapes):
        # An output shape only known after inference (a dynamic Reshape): one invoke on a blank input.
        interpreter.set_tensor(int(inp["index"]), np.zeros(inp["shape"], dtype=inp["dtype"]))
        interpreter.invoke()
        shapes = [_shape(interpreter.get_tensor(int(o["index"])).shape) for o in outputs]
    names = signature_names(interpreter)
    return [
        OutputInfo(i, int(o["index"]), str(o["name"]), names.get(int(o["index"])), int(np.prod(s[1:])) if len(s) > 1 else 0)
        for i, (o, s) in enumerate(zip(outputs, shapes))
    ]


def choose_output(
    outputs: list[OutputInfo], num_classes: int | None, output: str | int | None, label: str = "model"
) -> tuple[OutputInfo, str | None]:
    """The output holding the class scores, and a one-line note when the model has several.

    ``output`` (a position, tensor name or signature name) decides when given; else the one
    output whose size matches ``num_classes``, else the single output with 2 or more values.
    Raises ModelError, listing the outputs, when that leaves no single choice.
    """
    listing = ", ".join(f"{o.label()} ({o.size} values)" for o in outputs)
    if output is not None:
        key = str(output).strip()
        chosen = [o for o in outputs if key in (str(o.position), o.name, o.signature_name)]
        if len(chosen) != 1:
            raise ModelError(f"{label}: --output {key!r} names none of its outputs: {listing}")
        return chosen[0], (
            f"output: {chosen[0].label()} ({chosen[0].size} values), chosen with --output" if len(outputs) > 1 else None
        )
    if len(outputs) == 1:
        return outputs[0], None
    candidates = [o for o in outputs if o.size >= 2]
    matching = [o for o in candidates if num_classes is not None and o.size == num_classes]
    if len(matching) == 1:
        why = f"its size matches the dataset's {num_classes} classes"
        chosen = matching[0]
    elif len(candidates) == 1:
        why = "the only one with 2 or more values"
        chosen = candidates[0]
    else:
        raise ModelError(
            f"{label}: has {len(outputs)} outputs ({listing}) and no single one holds the class scores; "
            "choose it with --output NAME|INDEX"
        )
    return (
        chosen,
        f"output: {chosen.label()} of {len(outputs)} outputs ({listing}): {why}; choose another with --output NAME|INDEX",
    )


def _input_detail(interpreter, label: str) -> dict:
    inputs = interpreter.get_input_details()
    if len(inputs) != 1:
        names = ", ".join(f"'{d['name']}' {_shape(d['shape'])}" for d in inputs)
        raise ModelError(
            f"{label}: has {len(inputs)} inputs ({names}); dnncomp evaluates image classifiers with exactly one input"
        )
    inp = inputs[0]
    dtype = np.dtype(inp["dtype"])
    if dtype not in INPUT_DTYPES:
        raise ModelError(f"{label}: input dtype {dtype} is not supported (float32, int8, uint8 or int16)")
    scale, _ = inp["quantization"]
    if dtype.kind in "iu" and not scale:
        raise ModelError(f"{label}: {dtype} input has no quantization scale; cannot map pixels to it")
    return inp


def input_spec(
    interpreter,
    label: str = "model",
    *,
    allocated: bool = False,
    num_classes: int | None = None,
    output: str | int | None = None,
    model: ModelSource | None = None,
    preprocessing: Preprocessing | None = None,
) -> InputSpec:
    """Read the input/output contract of an image classifier from an interpreter.

    With ``allocated=True`` an output whose shape is only known after inference
    (a dynamic Reshape) is resolved by one invoke on a blank input. The class-score
    output is chosen by :func:`choose_output`. With ``model`` (its path or bytes), the
    real value range the input expects is resolved by :func:`resolve_preprocessing`
    (``preprocessing`` given on the command line wins). Raises ModelError for two
    inputs, an unsupported dtype, a non-image input shape or no class-score output.
    """
    inp = _input_detail(interpreter, label)
    full_shape = _shape(inp["shape"])
    shape = full_shape[1:]
    layout = input_layout(shape, label)
    dtype = np.dtype(inp["dtype"])
    scale, zero_point = inp["quantization"]
    signature = _shape(inp.get("shape_signature", inp["shape"]))
    infos = _output_infos(interpreter, interpreter.get_output_details(), allocated, inp)
    chosen, note = choose_output(infos, num_classes, output, label)
    if chosen.size < 2:
        raise ModelError(
            f"{label}: output {chosen.label()} has {chosen.size} value(s) per image; it does not look like class scores"
        )
    pre = preprocessing
    if model is not None:
        pre = resolve_preprocessing(model, dtype, float(scale), int(zero_point), int(inp["index"]), explicit=preprocessing)
    return InputSpec(
        index=int(inp["index"]),
        shape=shape,
        dtype=dtype,
        scale=float(scale),
        zero_point=int(zero_point),
        output_index=chosen.index,
        num_outputs=chosen.size,
        layout=layout,
        batch=max(1, full_shape[0]) if full_shape else 1,
        batch_resizable=not signature or signature[0] == -1,
        output_name=chosen.signature_name or chosen.name,
        output_note=note,
        preprocessing=pre,
    )


def _shape(shape) -> tuple[int, ...]:
    return tuple(int(d) for d in shape)


def model_input_spec(
    model: ModelSource,
    *,
    threads: int = 1,
    xnnpack: bool = True,
    num_classes: int | None = None,
    output: str | int | None = None,
    preprocessing: Preprocessing | None = None,
) -> InputSpec:
    """The input/output contract of a model, read after allocation (output shapes can be dynamic).

    ``preprocessing`` (from ``--input-range/--mean/--std``) overrides what the model's
    sidecar or graph says; see :func:`resolve_preprocessing`.
    """
    interpreter = open_interpreter(model, threads=threads, xnnpack=xnnpack)
    allocate(interpreter, model_label(model))
    return input_spec(
        interpreter,
        model_label(model),
        allocated=True,
        num_classes=num_classes,
        output=output,
        model=model,
        preprocessing=preprocessing,
    )


def model_input_layout(model: ModelSource) -> InputLayout:
    """Where height, width and channels sit in the model's single input (no output is looked at)."""
    interpreter = open_interpreter(model)
    inp = _input_detail(interpreter, model_label(model))
    return input_layout(_shape(inp["shape"])[1:], model_label(model))


# ---- the real values the input expects ------------------------------------------------

# How far (as a fraction of the range's span) a quantization's covered range may lie from
# a named range and still be read as it: calibration rarely sees exactly 0 and 255.
_RANGE_TOLERANCE = 0.05
# A constant scale below this applied to the input inside the graph means the model turns
# raw pixels into small values itself (Rescaling(1/255) is 0.0039, a Normalization of
# MNIST pixels 1/78 = 0.0128); a model that takes 0..1 scales by about 1 or more.
_RAW_PIXEL_SCALE = 0.05
# First-layer gain (signature.first_layer_gain) below which a float model takes raw pixels: models
# trained on 0..1 measure 0.8 to 34 here, with a Rescaling(1/255) folded in 0.004.
_RAW_PIXEL_GAIN = 0.05


def _range_from_quantization(lo: float, hi: float, source: str) -> Preprocessing:
    for nlo, nhi in INPUT_RANGES.values():
        tolerance = _RANGE_TOLERANCE * (nhi - nlo)
        if abs(lo - nlo) <= tolerance and abs(hi - nhi) <= tolerance:
            return Preprocessing((nlo, nhi), source=source, assumed=True)
    return Preprocessing((float(lo), float(hi)), source=source, assumed=True)


def resolve_preprocessing(
    model: ModelSource,
    dtype: np.dtype,
    scale: float = 0.0,
    zero_point: int = 0,
    input_tensor: int | None = None,
    *,
    explicit: Preprocessing | None = None,
) -> Preprocessing:
    """The real value range (and mean/std) a model's input expects, and where that came from.

    In order: ``explicit`` (the command line); the sidecar beside a model path
    (:func:`dnncomp.preprocess.read_sidecar`); then inferred, with ``assumed`` set where it is
    a guess: for an integer input, the real range its quantization covers (scale 1, zero point 0
    on uint8 -> 0..255 raw pixels; about -1..1 or 0..1 -> that range); for a float input, a
    constant MUL/DIV/ADD/SUB right after the input that scales by less than 0.05 (a
    Rescaling(1/255) or Normalization layer inside: raw 0..255 pixels), or a QUANTIZE whose
    range is read like an integer input's, or a first layer whose weights are sized for raw
    pixels (the converter folds a Rescaling into the first kernel; assumed); else 0..1
    (dnncomp's convention, assumed).
    After the sidecar, the model's TFLite Support metadata decides when it states a normalisation
    (NormalizationOptions mean/std, else Stats; :func:`dnncomp.signature.read_metadata`).
    Raises ModelError for an unreadable sidecar.
    """
    if explicit is not None:
        return explicit
    if not isinstance(model, (bytes, bytearray)):
        found = read_sidecar(model)
        if found is not None:
            return found
    try:  # a model published with TFLite Support metadata states its normalisation
        stated = read_metadata(read_model_bytes(model))
    except ModelError:
        stated = None  # unreadable metadata decides nothing; what follows is said to be assumed
    if stated is not None and stated.preprocessing() is not None:
        return stated.preprocessing()
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        lo, hi = quantized_real_range(scale, zero_point, dtype)
        return _range_from_quantization(
            lo, hi, f"inferred from the input quantization: scale {scale:.6g}, zero point {zero_point} cover {lo:.4g}..{hi:.4g}"
        )
    try:
        rescaling = input_rescaling(read_model_bytes(model), input_tensor)
    except Exception:  # an unusual graph is no reason to fail: the default below is said to be assumed
        rescaling = None
    if rescaling is not None and rescaling.kind == "quantize":
        lo, hi = rescaling.real_range
        return _range_from_quantization(lo, hi, f"inferred from the QUANTIZE after the input: it covers {lo:.4g}..{hi:.4g}")
    if rescaling is not None and max(abs(s) for s in rescaling.scale) < _RAW_PIXEL_SCALE:
        factors = ", ".join(f"{s:.6g}" for s in rescaling.scale)
        return Preprocessing(
            (0.0, 255.0),
            source=f"the model rescales its input itself ({'/'.join(rescaling.ops)}, x{factors}): it takes raw pixels",
        )
    if rescaling is None:
        try:
            gain = first_layer_gain(read_model_bytes(model), input_tensor)
        except Exception:  # an unusual graph is no reason to fail: the default below is said to be assumed
            gain = None
        if gain is not None and gain[1] < _RAW_PIXEL_GAIN:
            return Preprocessing(
                (0.0, 255.0),
                source=f"inferred from its first layer: {gain[0]} weights sum to {gain[1]:.3g} per output, "
                "sized for raw pixels (a Rescaling(1/255) folded in)",
                assumed=True,
            )
    return Preprocessing(
        source="dnncomp's convention, pixel / 255: nothing beside or inside the model says otherwise", assumed=True
    )


def prepare_inputs(x_uint8: np.ndarray, spec: InputSpec, label: str = "model") -> np.ndarray:
    """uint8 NHWC images -> the model's input: resized, channels converted, arranged in its layout,
    mapped to its real range (``spec.preprocessing``; pixel / 255 when None), quantized if integer."""
    if x_uint8.ndim == 3:  # (N, H, W) grey images
        x_uint8 = x_uint8[..., None]
    if x_uint8.ndim != 4 or x_uint8.dtype != np.uint8:
        raise ModelError(f"{label}: expected uint8 NHWC images, got {x_uint8.dtype} {x_uint8.shape}")
    layout = input_layout(spec.shape, label, image_shape=x_uint8.shape[1:])  # a flat input takes the data's shape
    x = model_input(x_uint8, layout, spec.preprocessing, label)
    if spec.dtype.kind in "iu":
        return quantize_input(x, spec.scale, spec.zero_point, spec.dtype)
    return np.ascontiguousarray(x, dtype=spec.dtype)


def check_fits_dataset(spec: InputSpec, num_classes: int | None, y: np.ndarray | None, label: str = "model") -> None:
    """A model whose outputs do not match the dataset's classes gets one clear error."""
    if num_classes is not None and spec.num_outputs != num_classes:
        raise ModelError(
            f"{label}: predicts {spec.num_outputs} classes but the dataset has {num_classes}; "
            "choose the dataset the model was trained on"
        )
    if y is not None and len(y) and int(np.max(y)) >= spec.num_outputs:
        raise ModelError(
            f"{label}: predicts {spec.num_outputs} classes but the labels go up to {int(np.max(y))}; "
            "choose the dataset the model was trained on"
        )


# ---- batched prediction ---------------------------------------------------------------


class _Predictor:
    """Runs one interpreter on chunks of exactly ``batch`` images (the last chunk is padded)."""

    def __init__(self, model: ModelSource, spec: InputSpec, batch: int, threads: int, xnnpack: bool):
        self.spec = spec
        self.batch = batch
        self.interpreter = open_interpreter(model, threads=threads, xnnpack=xnnpack)
        if batch != spec.batch:
            self.interpreter.resize_tensor_input(spec.index, [batch, *spec.shape])
        allocate(self.interpreter, model_label(model))

    def scores(self, x_model: np.ndarray) -> np.ndarray:
        """Scores of at most ``batch`` prepared images, one row each."""
        n = len(x_model)
        if n < self.batch:  # pad with the last image so the interpreter never reallocates
            pad = np.repeat(x_model[-1:], self.batch - n, axis=0)
            x_model = np.concatenate([x_model, pad])
        self.interpreter.set_tensor(self.spec.index, x_model)
        self.interpreter.invoke()
        out = self.interpreter.get_tensor(self.spec.output_index)
        if out.shape[0] != self.batch:
            raise ValueError(f"output batch {out.shape[0]} != input batch {self.batch}")
        return out.reshape(self.batch, -1)[:n]

    def all_scores(self, x_model: np.ndarray) -> np.ndarray:
        return np.concatenate([self.scores(x_model[i : i + self.batch]) for i in range(0, len(x_model), self.batch)])


def _batched_predictor(model: ModelSource, spec: InputSpec, x_check: np.ndarray, batch: int, threads: int, xnnpack: bool):
    """A predictor at ``batch`` if it gives the model's own batch's answers on ``x_check``, else None.

    LiteRT's messages about a batch the model cannot take (a RESHAPE with the batch baked in)
    are kept off stderr: falling back is the expected outcome, not an error.
    """
    with captured_stderr() as read_captured:
        try:
            batched = _Predictor(model, spec, batch, threads, xnnpack)
            native = _Predictor(model, spec, spec.batch, threads, xnnpack)
            expected = native.all_scores(x_check)
            got = batched.all_scores(x_check)
        except (ValueError, RuntimeError, ModelError):
            return None
        finally:
            read_captured()
    if got.shape != expected.shape or not np.array_equal(np.argmax(got, axis=1), np.argmax(expected, axis=1)):
        return None
    return batched


def runnable_batch(model: ModelSource, spec: InputSpec, batch: int, *, threads: int = 1, xnnpack: bool = True) -> int:
    """``batch`` when the model allocates and runs at it, else the batch it was saved with.

    A model whose batch is baked into its graph (a fixed-batch RESHAPE) cannot be resized; it
    is fed ``spec.batch`` images at a time instead. Used for latency and memory, where the
    answers are not compared.
    """
    if batch == spec.batch:
        return batch
    with captured_stderr() as read_captured:
        try:
            predictor = _Predictor(model, spec, batch, threads, xnnpack)
            predictor.scores(np.zeros((batch, *spec.shape), dtype=spec.dtype))
            return batch
        except (ValueError, RuntimeError, ModelError):
            return spec.batch
        finally:
            read_captured()


def predict_classes(
    model: ModelSource,
    x_uint8: np.ndarray,
    *,
    threads: int = 1,
    batch: int = DEFAULT_EVAL_BATCH,
    xnnpack: bool = True,
    num_classes: int | None = None,
    return_batch: bool = False,
    spec: InputSpec | None = None,
    output: str | int | None = None,
    preprocessing: Preprocessing | None = None,
):
    """Top-1 class of every image. Images are prepared chunk by chunk, so memory stays small.

    ``batch`` is tried first and verified against the model's own batch (1 for most
    models; a model saved with a fixed batch of 4 is fed 4 images at a time, the last
    chunk padded); a model that cannot run at ``batch`` runs at its own. ``spec`` (from
    :func:`model_input_spec`) saves reading the model again; else ``output`` and
    ``preprocessing`` are passed to it.
    """
    label = model_label(model)
    if isinstance(model, (bytes, bytearray)):
        model = bytes(model)
    if spec is None:
        spec = model_input_spec(
            model, threads=threads, xnnpack=xnnpack, num_classes=num_classes, output=output, preprocessing=preprocessing
        )
    check_fits_dataset(spec, num_classes, None, label)
    n = len(x_uint8)
    predictions = np.empty(n, dtype=np.int64)
    if n == 0:
        return (predictions, spec.batch) if return_batch else predictions
    batch = max(1, min(int(batch), n))
    predictor = None
    if batch > 1 and batch != spec.batch:
        check = prepare_inputs(x_uint8[: min(BATCH_CHECK_IMAGES, batch, n)], spec, label)
        predictor = _batched_predictor(model, spec, check, batch, threads, xnnpack)
    if predictor is None:
        batch = spec.batch
        predictor = _Predictor(model, spec, batch, threads, xnnpack)
    chunk = max(batch, 256)  # prepare (resize, scale) this many images at a time
    for start in range(0, n, chunk):
        x_model = prepare_inputs(x_uint8[start : start + chunk], spec, label)
        for offset in range(0, len(x_model), batch):
            part = x_model[offset : offset + batch]
            scores = predictor.scores(part)
            predictions[start + offset : start + offset + len(part)] = np.argmax(scores, axis=1)
    return (predictions, batch) if return_batch else predictions


# ---- accuracy -------------------------------------------------------------------------


def accuracy_record(predictions: np.ndarray, y: np.ndarray, *, first_n: int | None = 1000) -> dict[str, Any]:
    """The results ``accuracy`` object from predictions and labels (any runtime)."""
    predictions = np.asarray(predictions).reshape(-1)
    y = np.asarray(y).reshape(-1)
    if predictions.shape != y.shape:
        raise ModelError(f"{len(predictions)} predictions for {len(y)} labels")
    correct = predictions == y
    record: dict[str, Any] = {
        "full": float(correct.mean()) if len(y) else None,
        "full_count": int(len(y)),
        "first_n": None,
        "first_n_count": None,
        "first_n_ci95": None,
    }
    if first_n:
        count = min(int(first_n), len(y))
        hits = int(correct[:count].sum())
        interval = wilson_interval(hits, count)
        record.update(
            first_n=hits / count if count else None,
            first_n_count=count,
            first_n_ci95=None if interval is None else [round(interval[0], 6), round(interval[1], 6)],
        )
    return record


def evaluate_accuracy(
    model: ModelSource,
    x_uint8: np.ndarray,
    y: np.ndarray,
    *,
    first_n: int | None = 1000,
    threads: int = 1,
    batch: int = DEFAULT_EVAL_BATCH,
    num_classes: int | None = None,
    spec: InputSpec | None = None,
    output: str | int | None = None,
    preprocessing: Preprocessing | None = None,
) -> dict[str, Any]:
    """Accuracy of a LiteRT classifier on the whole test set and on its first ``first_n`` images.

    ``x_uint8`` are raw uint8 NHWC test images (as the loaders return them),
    ``y`` their labels. Returns the results ``accuracy`` object plus ``batch``,
    the batch size the interpreter actually ran at. ``spec`` (from
    :func:`model_input_spec`) says how images become the model's input; without it,
    ``output`` and ``preprocessing`` (the command line's) are passed to that function.
    """
    label = model_label(model)
    y = np.asarray(y)
    if len(x_uint8) != len(y):
        raise ModelError(f"{len(x_uint8)} images but {len(y)} labels")
    if spec is None:
        spec = model_input_spec(model, num_classes=num_classes, output=output, preprocessing=preprocessing)
    check_fits_dataset(spec, num_classes, y, label)
    predictions, used_batch = predict_classes(
        model, x_uint8, threads=threads, batch=batch, num_classes=num_classes, return_batch=True, spec=spec
    )
    record = accuracy_record(predictions, y, first_n=first_n)
    record["batch"] = used_batch
    return record


# ---- size -----------------------------------------------------------------------------


# Content digest -> sizes. gzip at level 9 is slow on pruned and clustered weights (its lazy matching
# walks long chains through runs of repeated bytes: 2-8 s for a 1-5 MB flatbuffer on this machine), and
# a run or a recipe asks for the same bytes' sizes several times (the recipe's own check, the run's
# measurement, the anatomy).
_SIZES_CACHE: dict[bytes, dict[str, int]] = {}
_SIZES_CACHE_ENTRIES = 64


def file_sizes(model: ModelSource) -> dict[str, int]:
    """File size and what standard compression makes of it.

    ``gzip_bytes``: gzip at level 9 (mtime 0, so it is reproducible);
    ``zip_bytes``: a zip archive holding the file, deflate at zlib's default level,
    as TFMOT's guides measure "compressed size". Computed once per content in a process.
    """
    data = read_model_bytes(model)
    digest = hashlib.sha256(data).digest()
    cached = _SIZES_CACHE.get(digest)
    if cached is None:
        cached = _compressed_sizes(data)
        if len(_SIZES_CACHE) >= _SIZES_CACHE_ENTRIES:
            _SIZES_CACHE.pop(next(iter(_SIZES_CACHE)))
        _SIZES_CACHE[digest] = cached
    return dict(cached)


def _compressed_sizes(data: bytes) -> dict[str, int]:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        # A fixed member name and date: the size depends on the model's bytes alone.
        member = zipfile.ZipInfo("model.tflite", date_time=(1980, 1, 1, 0, 0, 0))
        archive.writestr(member, data, compress_type=zipfile.ZIP_DEFLATED)
    return {
        "file_bytes": len(data),
        "gzip_bytes": len(gzip.compress(data, compresslevel=9, mtime=0)),
        "zip_bytes": len(buffer.getvalue()),
    }


from ._callable import make_callable  # noqa: E402

make_callable(__name__, "dnncomp.api:evaluate")  # dnncomp.evaluate(...) is the public function (dnncomp.api)
