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
from .results import MISSING

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
        "affine",
        scale=tuple(float(v) for v in np.ravel(scale)),
        offset=tuple(float(v) for v in np.ravel(offset)),
        ops=tuple(walked),
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


def signature_names(interpreter) -> dict[int, str]:
    """Tensor index -> the name the model's signature gives it ("logits", "embedding": what the user called it).

    Empty for a model without signatures, or a runtime without the signature API (tensor names only).
    """
    names: dict[int, str] = {}
    try:
        for key in interpreter.get_signature_list():
            runner = interpreter.get_signature_runner(key)
            for side in (runner.get_input_details(), runner.get_output_details()):
                for name, detail in side.items():
                    names.setdefault(int(detail["index"]), name)
    except Exception:  # any failure of that API means: no signature names to offer
        return {}
    return names


def io_details(interpreter) -> dict[str, list[dict[str, Any]]]:
    """``{"inputs": [...], "outputs": [...]}`` of an (allocated or not) LiteRT interpreter.

    Each tensor: name (and its signature name, when the model has a signature), index,
    dtype, shape, shape signature, batch ("resizable" or the fixed size), layout (inputs)
    and quantization (scale, zero point and the real range ``[lo, hi]`` it covers).
    """
    names = signature_names(interpreter)
    return {
        "inputs": [
            _tensor_record(d, layout=True, signature_name=names.get(int(d["index"]))) for d in interpreter.get_input_details()
        ],
        "outputs": [
            _tensor_record(d, layout=False, signature_name=names.get(int(d["index"]))) for d in interpreter.get_output_details()
        ],
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


# ---- TFLite Support metadata (the "TFLITE_METADATA" buffer) ----------------------------
#
# A model published with TFLite Support metadata says, for its image input, the mean/std its
# pixels are normalised with (NormalizationOptions), the value range after it (Stats), the
# colour space and size (ImageProperties), and carries a labels file (an associated file of
# type TENSOR_AXIS_LABELS, zipped onto the end of the .tflite). tflite-support 0.4.4, the only
# package that reads it, was last released in 2023, pins protobuf<4 (TensorFlow 2.21 and
# ai-edge-litert need newer) and weighs 60 MB; so the few fields used here are read with the
# flatbuffers runtime (already a dependency of ai-edge-litert), field slots taken from the
# published metadata_schema.fbs (tensorflow/tflite-support, file identifier "M001").

_METADATA_NAME = "TFLITE_METADATA"
_METADATA_IDENTIFIER = b"M001"
_NORMALIZATION_OPTIONS = 1  # ProcessUnitOptions union: NormalizationOptions
_IMAGE_PROPERTIES = 2  # ContentProperties union: ImageProperties (FeatureProperties is 1)
_TENSOR_AXIS_LABELS = 2  # AssociatedFileType
_COLOR_SPACES = {0: "unknown", 1: "RGB", 2: "grayscale"}


@dataclass(frozen=True)
class TFLiteMetadata:
    """What a model's TFLite Support metadata says about its first input and its classes.

    ``mean``/``std``: NormalizationOptions of the input, in pixel units (the model takes
    ``(pixel - mean) / std``); empty when absent. ``stats``: the (min, max) value range the
    metadata gives for the input (Stats), or None. ``color_space`` and ``image_size``
    (width, height) from ImageProperties. ``labels``: the class names of the output's labels
    file, in order, when the file is inside the model. ``name``: the model's metadata name.
    """

    name: str = ""
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    stats: tuple[float, float] | None = None
    color_space: str | None = None
    image_size: tuple[int, int] | None = None
    labels: tuple[str, ...] = ()
    labels_file: str | None = None

    def describe(self) -> str:
        """``"TFLite metadata: NormalizationOptions mean 127.5, std 127.5"`` (what decided the range)."""
        parts = []
        if self.mean or self.std:
            parts.append(f"NormalizationOptions mean {_floats(self.mean)}, std {_floats(self.std)}")
        elif self.stats is not None:
            parts.append(f"Stats {self.stats[0]:g}..{self.stats[1]:g}")
        if self.labels:
            parts.append(f"{len(self.labels)} labels in {self.labels_file}")
        return "TFLite metadata" + (f" ({self.name})" if self.name else "") + (": " + "; ".join(parts) if parts else "")

    def preprocessing(self):
        """The pixel mapping the metadata states, as a :class:`dnncomp.preprocess.Preprocessing`, or None.

        NormalizationOptions ``(pixel - mean) / std`` with one value for every channel is the
        input range ``-mean/std .. (255 - mean)/std`` (mean 127.5, std 127.5 is -1..1; mean 0,
        std 255 is 0..1; mean 0, std 1 is raw 0..255); per-channel values stay mean/std on
        0..255. Without NormalizationOptions, Stats min/max give the range.
        """
        from .preprocess import INPUT_RANGES, Preprocessing

        source = self.describe()
        if self.mean or self.std:
            mean = self.mean or (0.0,)
            std = self.std or (1.0,)
            if len(set(mean)) == 1 and len(set(std)) == 1:
                m, s = mean[0], std[0]
                lo, hi = sorted(((0.0 - m) / s, (255.0 - m) / s))
                lo, hi = next((r for r in INPUT_RANGES.values() if abs(r[0] - lo) < 1e-4 and abs(r[1] - hi) < 1e-4), (lo, hi))
                return Preprocessing((lo, hi), source=source)
            return Preprocessing((0.0, 255.0), mean=tuple(mean), std=tuple(std), source=source)
        if self.stats is not None and self.stats[1] > self.stats[0]:
            return Preprocessing(tuple(self.stats), source=source)
        return None


def _floats(values: tuple[float, ...]) -> str:
    return ", ".join(f"{v:g}" for v in values) if values else MISSING


def read_metadata(model_bytes: bytes) -> TFLiteMetadata | None:
    """The TFLite Support metadata of a .tflite (its bytes), or None when it has none.

    Raises ModelError naming the problem when the metadata buffer exists but is not a
    ``M001`` metadata flatbuffer.
    """
    schema = _schema()
    data = bytes(model_bytes)
    if len(data) < 8 or data[4:8] != b"TFL3":
        return None
    model = schema.Model.GetRootAs(data, 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if (entry.Name() or b"").decode("utf-8", "replace") != _METADATA_NAME:
            continue
        buffer = model.Buffers(entry.Buffer())
        if buffer.DataLength():
            raw = buffer.DataAsNumpy().tobytes()
        elif buffer.Offset() > 1:
            raw = data[buffer.Offset() : buffer.Offset() + buffer.Size()]
        else:
            return None
        return _parse_metadata(raw, data)
    return None


def _parse_metadata(raw: bytes, model_data: bytes) -> TFLiteMetadata:
    from flatbuffers import encode, number_types, table

    if len(raw) < 8 or raw[4:8] != _METADATA_IDENTIFIER:
        raise ModelError("TFLITE_METADATA is not a TFLite Support metadata flatbuffer (identifier M001 missing)")

    def root(buf: bytes) -> table.Table:
        return table.Table(buf, encode.Get(number_types.UOffsetTFlags.packer_type, buf, 0))

    def offset(t: table.Table, slot: int) -> int:
        return t.Offset(4 + 2 * slot)

    def sub(t: table.Table, slot: int) -> table.Table | None:
        o = offset(t, slot)
        return table.Table(t.Bytes, t.Indirect(o + t.Pos)) if o else None

    def string(t: table.Table, slot: int) -> str:
        o = offset(t, slot)
        return t.String(o + t.Pos).decode("utf-8", "replace") if o else ""

    def scalar(t: table.Table, slot: int, flags, default=0):
        o = offset(t, slot)
        return t.Get(flags, o + t.Pos) if o else default

    def tables(t: table.Table, slot: int) -> list[table.Table]:
        o = offset(t, slot)
        if not o:
            return []
        start, n = t.Vector(o), t.VectorLen(o)
        return [table.Table(t.Bytes, t.Indirect(start + 4 * k)) for k in range(n)]

    def floats(t: table.Table, slot: int) -> tuple[float, ...]:
        o = offset(t, slot)
        if not o:
            return ()
        start, n = t.Vector(o), t.VectorLen(o)
        # float32 in the file: read back as its shortest decimal (127.5, 58.4), as the writer was given it
        return tuple(float(str(np.float32(t.Get(number_types.Float32Flags, start + 4 * k)))) for k in range(n))

    def union(t: table.Table, type_slot: int) -> tuple[int, table.Table | None]:
        kind = scalar(t, type_slot, number_types.Uint8Flags)
        o = offset(t, type_slot + 1)
        if not kind or not o:
            return kind, None
        return kind, table.Table(t.Bytes, t.Indirect(o + t.Pos))

    meta = root(raw)
    name = string(meta, 0)  # ModelMetadata: name, description, version, subgraph_metadata, author, ...
    subgraphs = tables(meta, 3)
    mean, std, stats, color, size, labels_file = (), (), None, None, None, None
    if subgraphs:
        graph = subgraphs[0]  # SubGraphMetadata: name, description, inputs 2, outputs 3, files 4, in units 5
        inputs = tables(graph, 2)
        units = list(tables(inputs[0], 4)) if inputs else []  # TensorMetadata.process_units
        units += tables(graph, 5)  # input_process_units (shared by all inputs)
        for unit in units:  # ProcessUnit: options_type 0, options 1
            kind, options = union(unit, 0)
            if kind == _NORMALIZATION_OPTIONS and options is not None:
                mean, std = floats(options, 0), floats(options, 1)
                break
        if inputs:
            tensor = inputs[0]  # TensorMetadata: name, description, dimension_names, content 3, units 4, stats 5
            stat = sub(tensor, 5)
            if stat is not None:
                highs, lows = floats(stat, 0), floats(stat, 1)
                if highs and lows:
                    stats = (min(lows), max(highs))
            content = sub(tensor, 3)  # Content: properties_type 0, properties 1, range 2
            if content is not None:
                kind, properties = union(content, 0)
                if kind == _IMAGE_PROPERTIES and properties is not None:
                    color = _COLOR_SPACES.get(scalar(properties, 0, number_types.Int8Flags), "unknown")
                    default_size = sub(properties, 1)
                    if default_size is not None:
                        size = (
                            scalar(default_size, 0, number_types.Uint32Flags),
                            scalar(default_size, 1, number_types.Uint32Flags),
                        )
        for output in tables(graph, 3)[:1]:
            for file in tables(output, 6):  # AssociatedFile: name 0, description 1, type 2
                if scalar(file, 2, number_types.Int8Flags) == _TENSOR_AXIS_LABELS:
                    labels_file = string(file, 0)
                    break
    labels = _zipped_lines(model_data, labels_file) if labels_file else ()
    return TFLiteMetadata(
        name=name, mean=mean, std=std, stats=stats, color_space=color, image_size=size, labels=labels, labels_file=labels_file
    )


def _zipped_lines(model_data: bytes, name: str) -> tuple[str, ...]:
    """The lines of ``name`` in the zip the metadata writer appends to a .tflite, else ()."""
    import io
    import zipfile

    try:
        with zipfile.ZipFile(io.BytesIO(model_data)) as archive:
            text = archive.read(name).decode("utf-8", "replace")
    except (zipfile.BadZipFile, KeyError, OSError):
        return ()
    return tuple(line.strip() for line in text.splitlines() if line.strip())
