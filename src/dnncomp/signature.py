"""A classifier's inputs and outputs as the ``.tflite`` states them. No TensorFlow: runs on the device.

Two things are read here, both from the model file itself:

- :func:`io_details`: every input and output tensor with its dtype, shape (and
  shape signature: ``-1`` is a resizable axis), the image layout of an input
  (:func:`dnncomp.preprocess.input_layout`) and its quantization (scale, zero
  point and the real range it covers), for ``dnncomp inspect``;
- :func:`input_rescaling`: what the graph does to its input first. A Keras
  ``Rescaling(1/255)`` or ``Normalization`` layer inside the model becomes a
  MUL/DIV/ADD/SUB by constants right after the input (behind shape-only ops such
  as RESHAPE); a float-io quantized model starts with a QUANTIZE whose output
  quantization covers the real input range. Either says which pixel range the
  model takes, where nothing else (a flag, a sidecar) does;
- :func:`first_layer_gain`: when the converter folded such a Rescaling into the
  first convolution's kernel (it does), the kernel's size says it: a model that
  takes 0..255 pixels has first-layer weights about 255 times smaller.

The flatbuffer is read lazily with the schema module ai-edge-litert ships
(``ai_edge_litert.schema_py_generated``), as :mod:`dnncomp.anatomy` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import ModelError
from .preprocess import input_layout, quantized_real_range

# Ops that move or re-type values without changing them: the walk from the input passes through.
_PASS_THROUGH = {"RESHAPE", "EXPAND_DIMS", "SQUEEZE", "TRANSPOSE", "CAST", "DEQUANTIZE", "PAD"}
_KERNEL_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"}
_AFFINE = {"MUL", "DIV", "ADD", "SUB"}
_MAX_STEPS = 8
_FLOAT_DTYPES = {"FLOAT32": np.float32, "FLOAT16": np.float16, "FLOAT64": np.float64}
_INT_DTYPES = {"INT8": np.int8, "UINT8": np.uint8, "INT16": np.int16}


@dataclass(frozen=True)
class InputRescaling:
    """What the graph does to its input before the first real layer.

    ``kind`` is ``"affine"`` (``value * scale + offset`` per channel, from constant
    MUL/DIV/ADD/SUB ops) or ``"quantize"`` (a QUANTIZE op; ``real_range`` is what its
    output quantization covers). ``ops`` lists the ops walked, for the message.
    """

    kind: str
    scale: tuple[float, ...] = ()
    offset: tuple[float, ...] = ()
    real_range: tuple[float, float] | None = None
    ops: tuple[str, ...] = ()


def _schema():
    from .litert_backend import schema_module

    return schema_module()  # ai-edge-litert's, or the tflite package's with tflite-runtime


class _Graph:
    """The first subgraph of a flatbuffer, read lazily (no buffer is copied until asked for)."""

    def __init__(self, data: bytes):
        schema = _schema()
        if len(data) < 8 or data[4:8] != b"TFL3":
            raise ModelError("not a LiteRT/TFLite flatbuffer (file identifier TFL3 missing)")
        self.data = data
        self.model = schema.Model.GetRootAs(data, 0)
        if self.model.SubgraphsLength() < 1:
            raise ModelError("the flatbuffer has no subgraph")
        self.graph = self.model.Subgraphs(0)
        names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_") and isinstance(v, int)}
        self.types = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_") and isinstance(v, int)}
        self.ops: list[tuple[str, list[int], list[int]]] = []
        for i in range(self.graph.OperatorsLength()):
            op = self.graph.Operators(i)
            code = self.model.OperatorCodes(op.OpcodeIndex())
            # Codes above 127 live in BuiltinCode; DeprecatedBuiltinCode keeps the old ones.
            builtin = max(int(code.BuiltinCode()), int(code.DeprecatedBuiltinCode()))
            inputs = [int(t) for t in op.InputsAsNumpy()] if op.InputsLength() else []
            outputs = [int(t) for t in op.OutputsAsNumpy()] if op.OutputsLength() else []
            self.ops.append((names.get(builtin, f"BUILTIN_{builtin}"), inputs, outputs))

    def inputs(self) -> list[int]:
        return [int(t) for t in self.graph.InputsAsNumpy()] if self.graph.InputsLength() else []

    def consumers(self, tensor: int) -> list[tuple[str, list[int], list[int]]]:
        return [op for op in self.ops if tensor >= 0 and tensor in op[1]]

    def value_consumers(self, tensor: int) -> list[tuple[str, list[int], list[int]]]:
        """Ops that read the values of ``tensor`` (a SHAPE op feeding a dynamic RESHAPE reads only its shape)."""
        return [op for op in self.consumers(tensor) if op[0] != "SHAPE"]

    def producer(self, tensor: int):
        return next((op for op in self.ops if tensor in op[2]), None)

    def dtype(self, tensor: int) -> str:
        return self.types.get(self.graph.Tensors(tensor).Type(), "?")

    def quantization(self, tensor: int) -> tuple[np.ndarray, np.ndarray] | None:
        q = self.graph.Tensors(tensor).Quantization()
        if q is None or q.ScaleLength() == 0:
            return None
        zero = q.ZeroPointAsNumpy() if q.ZeroPointLength() else np.zeros(q.ScaleLength(), dtype=np.int64)
        return np.asarray(q.ScaleAsNumpy(), dtype=np.float64), np.asarray(zero, dtype=np.int64)

    def constant(self, tensor: int, depth: int = 0) -> np.ndarray | None:
        """The real values of a constant tensor (float, or dequantized), else None."""
        if tensor < 0 or tensor >= self.graph.TensorsLength():  # -1: an optional input left out
            return None
        t = self.graph.Tensors(tensor)
        buffer = self.model.Buffers(t.Buffer()) if t.Buffer() < self.model.BuffersLength() else None
        raw = None
        if buffer is not None and buffer.DataLength():
            raw = buffer.DataAsNumpy().tobytes()
        elif buffer is not None and buffer.Offset() > 1:  # large models keep buffers after the flatbuffer
            raw = self.data[buffer.Offset() : buffer.Offset() + buffer.Size()]
        if raw is None:
            # A float16 constant in front of its DEQUANTIZE (float16-weight models).
            producer = self.producer(tensor)
            if producer is not None and producer[0] == "DEQUANTIZE" and depth == 0 and producer[1]:
                return self.constant(producer[1][0], depth + 1)
            return None
        name = self.dtype(tensor)
        if name in _FLOAT_DTYPES:
            return np.frombuffer(raw, dtype=_FLOAT_DTYPES[name]).astype(np.float64)
        if name in _INT_DTYPES and self.quantization(tensor) is not None:
            scale, zero = self.quantization(tensor)
            values = np.frombuffer(raw, dtype=_INT_DTYPES[name]).astype(np.float64)
            if len(scale) == 1:
                return (values - zero[0]) * scale[0]
            shape = [int(d) for d in t.ShapeAsNumpy()] if t.ShapeLength() else []
            axis = int(t.Quantization().QuantizedDimension())
            if int(np.prod(shape)) != values.size or axis >= len(shape) or shape[axis] != len(scale):
                return None
            broadcast = [1] * len(shape)
            broadcast[axis] = len(scale)  # per-channel scales along the quantized dimension
            real = (values.reshape(shape) - zero.reshape(broadcast)) * scale.reshape(broadcast)
            return real.reshape(-1)
        return None


def input_rescaling(model_bytes: bytes, input_tensor: int | None = None) -> InputRescaling | None:
    """What the graph does to its (first, or ``input_tensor``) input first, or None when nothing telling.

    Walks from the input through shape-only ops; constant MUL/DIV/ADD/SUB (scalar or one
    value per channel) accumulate ``value * scale + offset``; a QUANTIZE stops the walk with
    the real range its output quantization covers. Raises ModelError for an unreadable file.
    """
    graph = _Graph(model_bytes)
    inputs = graph.inputs()
    if not inputs:
        return None
    tensor = inputs[0] if input_tensor is None else int(input_tensor)
    scale, offset = np.ones(1), np.zeros(1)
    walked: list[str] = []
    for _ in range(_MAX_STEPS):
        consumers = graph.value_consumers(tensor)
        if len(consumers) != 1:
            break
        name, op_inputs, op_outputs = consumers[0]
        if not op_outputs:
            break
        if name == "QUANTIZE":
            q = graph.quantization(op_outputs[0])
            dtype = _INT_DTYPES.get(graph.dtype(op_outputs[0]))
            if q is None or dtype is None or len(q[0]) != 1:
                break
            lo, hi = quantized_real_range(float(q[0][0]), int(q[1][0]), dtype)
            if np.any(scale == 0):
                break
            ends = np.concatenate([(lo - offset) / scale, (hi - offset) / scale])  # back through affine ops before it
            return InputRescaling("quantize", real_range=(float(ends.min()), float(ends.max())), ops=tuple(walked + [name]))
        if name in _PASS_THROUGH:
            tensor = op_outputs[0]
            walked.append(name)
            continue
        if name not in _AFFINE or len(op_inputs) != 2:
            break
        other = op_inputs[1] if op_inputs[0] == tensor else op_inputs[0]
        value = graph.constant(other)
        if value is None or value.size == 0 or value.size > 4 or not np.all(np.isfinite(value)):
            break  # not a scalar or per-channel constant: a real layer starts here
        first = op_inputs[0] == tensor
        if name == "MUL":
            scale, offset = scale * value, offset * value
        elif name == "DIV":
            if not first or np.any(value == 0):
                break
            scale, offset = scale / value, offset / value
        elif name == "ADD":
            offset = offset + value
        elif first:  # SUB: input - constant
            offset = offset - value
        else:  # constant - input
            scale, offset = -scale, value - offset
        walked.append(name)
        tensor = op_outputs[0]
    if not any(op in _AFFINE for op in walked):
        return None
    return InputRescaling(
        "affine", scale=tuple(float(v) for v in np.ravel(scale)), offset=tuple(float(v) for v in np.ravel(offset)), ops=tuple(walked)
    )


def first_layer_gain(model_bytes: bytes, input_tensor: int | None = None) -> tuple[str, float] | None:
    """(op, gain) of the first CONV_2D/DEPTHWISE_CONV_2D/FULLY_CONNECTED the input reaches through
    shape-only ops, or None. ``gain`` is the median over output channels of the sum of absolute
    kernel weights: what one output moves when every input value moves by 1.

    A model trained on inputs in 0..1 (or -1..1) has gains of about 0.5 to 50; one that takes raw
    0..255 pixels, because a Rescaling(1/255) was folded into its first kernel by the converter or
    because it learned from raw pixels, has gains about 255 times smaller (0.001 to 0.02).
    """
    graph = _Graph(model_bytes)
    inputs = graph.inputs()
    if not inputs:
        return None
    tensor = inputs[0] if input_tensor is None else int(input_tensor)
    for _ in range(_MAX_STEPS):
        consumers = graph.value_consumers(tensor)
        if len(consumers) != 1 or not consumers[0][2]:
            return None
        name, op_inputs, op_outputs = consumers[0]
        if name in _PASS_THROUGH:
            tensor = op_outputs[0]
            continue
        if name not in _KERNEL_OPS or len(op_inputs) < 2 or op_inputs[0] != tensor:
            return None
        kernel = graph.constant(op_inputs[1])
        shape = [int(d) for d in graph.graph.Tensors(op_inputs[1]).ShapeAsNumpy()]
        if kernel is None or not shape or kernel.size != int(np.prod(shape)) or kernel.size == 0:
            return None
        # Output channels lead in CONV_2D (O,H,W,I) and FULLY_CONNECTED (O,I); depthwise puts them last.
        per_output = kernel.reshape(-1, shape[-1]).T if name == "DEPTHWISE_CONV_2D" else kernel.reshape(shape[0], -1)
        return name, float(np.median(np.abs(per_output).sum(axis=1)))
    return None


# ---- inputs and outputs, for inspect ---------------------------------------------------


def _tensor_record(detail: dict[str, Any], *, layout: bool, signature_name: str | None) -> dict[str, Any]:
    dtype = np.dtype(detail["dtype"])
    shape = [int(d) for d in detail["shape"]]
    signature = [int(d) for d in detail.get("shape_signature", detail["shape"])]
    scale, zero_point = detail.get("quantization", (0.0, 0))
    params = detail.get("quantization_parameters") or {}
    scales = np.asarray(params.get("scales", []))
    record: dict[str, Any] = {
        "name": detail["name"],
        "signature_name": signature_name,
        "index": int(detail["index"]),
        "dtype": dtype.name,
        "shape": shape,
        "shape_signature": signature,
        "batch": "resizable" if signature and signature[0] == -1 else (shape[0] if shape else None),
        "layout": None,
        "quantization": None,
    }
    if layout:
        try:
            record["layout"] = input_layout(shape[1:], detail["name"]).describe()
        except ModelError as exc:
            record["layout"] = f"not an image ({str(exc).split(': ', 1)[-1]})"
    if scales.size > 1:
        record["quantization"] = {"per_channel": True, "channels": int(scales.size)}
    elif scale and dtype.kind in "iu":
        lo, hi = quantized_real_range(float(scale), int(zero_point), dtype)
        record["quantization"] = {"scale": float(scale), "zero_point": int(zero_point), "real_range": [lo, hi]}
    return record


def io_details(interpreter) -> dict[str, list[dict[str, Any]]]:
    """``{"inputs": [...], "outputs": [...]}`` of an (allocated or not) LiteRT interpreter.

    Each tensor: name (and its signature name, when the model has a signature), index,
    dtype, shape, shape signature, batch ("resizable" or the fixed size), layout (inputs)
    and quantization (scale, zero point and the real range ``[lo, hi]`` it covers).
    """
    names: dict[int, str] = {}
    try:  # signature names ("logits", "embedding") are what the user called the outputs
        for key in interpreter.get_signature_list():
            runner = interpreter.get_signature_runner(key)
            for side in (runner.get_input_details(), runner.get_output_details()):
                for name, detail in side.items():
                    names.setdefault(int(detail["index"]), name)
    except Exception:  # models without signatures, or runtimes without the API: names stay None
        names = {}
    return {
        "inputs": [_tensor_record(d, layout=True, signature_name=names.get(int(d["index"]))) for d in interpreter.get_input_details()],
        "outputs": [_tensor_record(d, layout=False, signature_name=names.get(int(d["index"]))) for d in interpreter.get_output_details()],
    }


def describe_tensor(record: dict[str, Any]) -> str:
    """One line for a tensor of :func:`io_details`: name, dtype, shape, batch, layout, quantization."""
    name = record["name"] + (f" ({record['signature_name']})" if record.get("signature_name") else "")
    shape = "x".join("?" if d == -1 else str(d) for d in record["shape_signature"] or record["shape"])
    text = f"{name}: {record['dtype']} {shape}"
    text += ", batch resizable" if record["batch"] == "resizable" else f", batch fixed at {record['batch']}"
    if record.get("layout"):
        text += f", {record['layout']}"
    q = record.get("quantization")
    if q and q.get("per_channel"):
        text += f", quantized per channel ({q['channels']} scales)"
    elif q:
        lo, hi = q["real_range"]
        text += f", quantized scale {q['scale']:.6g} zero point {q['zero_point']} (real {lo:.4g}..{hi:.4g})"
    return text
