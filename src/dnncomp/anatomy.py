"""What is inside a ``.tflite`` flatbuffer, read without TensorFlow (and without running it).

The flatbuffer is parsed with the schema module that ai-edge-litert ships
(``ai_edge_litert.schema_py_generated``, built on the ``flatbuffers`` package,
both part of the device install), or with the ``tflite`` package's where only
tflite-runtime is installed (:mod:`dnncomp.litert_backend`). From it:

- weight tensors (constant tensors holding parameters: float or quantized
  integer values, and int32 biases that carry a quantization scale; shape
  constants are not weights) with dtype, shape, fraction of zeros (of the real
  value, i.e. the stored value equals the zero point) and number of unique
  stored values;
- ``params``: the number of weight values; ``sparsity``: the fraction of zeros in
  the kernels of CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED and TRANSPOSE_CONV
  (biases excluded — pruning leaves them alone);
- the op list, each op with the dtype it computes in (from its inputs): int8,
  float32, or "hybrid" (float activations with int8 weights, dynamic-range
  quantization);
- multiply-accumulates per inference (batch 1) for convolutions, depthwise
  convolutions, fully connected layers, transposed convolutions and batch matmul;
- ``peak_activation_bytes``: the largest sum of live non-constant tensors at any
  op, a lower bound on the tensor arena (LiteRT's Python API does not expose the
  arena size);
- sparse-format tensors (``tensor.sparsity``), which are noted as such;
- ``kernel_ops``: one record per convolution / dense op with the Keras layer it came
  from (read from the tensor names the converter keeps, ``model/backbone/conv2d/Conv2D``;
  else ``op #i``), its kernel's dtype, zero fraction, unique values and the most
  distinct values in one output channel (the channel axis depends on the op, see
  :data:`OUTPUT_CHANNEL_AXIS`); :func:`layer_table` groups them per layer;
- file, gzip and zip sizes.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from .errors import ModelError
from .evaluate import ModelSource, file_sizes, model_label, read_model_bytes
from .litert_backend import enum_names, read_model_object, schema_module
from .results import format_number

# Builtin ops whose input 1 is the kernel (weights) and, where present, input 2 the bias.
KERNEL_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "CONV_3D"}
CONVERSION_OPS = {"QUANTIZE", "DEQUANTIZE", "CAST"}
# Output-channel axis of each kernel op's weight tensor in the TFLite layout: CONV_2D and
# TRANSPOSE_CONV [out, kh, kw, in], FULLY_CONNECTED [out, in], DEPTHWISE_CONV_2D [1, kh, kw, out],
# CONV_3D [kd, kh, kw, in, out]. Per-channel quantization and clustering count along it.
OUTPUT_CHANNEL_AXIS = {"CONV_2D": 0, "FULLY_CONNECTED": 0, "TRANSPOSE_CONV": 0, "DEPTHWISE_CONV_2D": 3, "CONV_3D": 4}
# Wrapper prefixes TFMOT gives layer names (QAT keeps them in the graph); the Keras layer is what follows.
_WRAPPER_PREFIXES = ("quant_", "prune_low_magnitude_", "cluster_")

_NUMPY_DTYPES = {
    "FLOAT32": np.float32,
    "FLOAT16": np.float16,
    "FLOAT64": np.float64,
    "INT8": np.int8,
    "UINT8": np.uint8,
    "INT16": np.int16,
    "UINT16": np.uint16,
    "INT32": np.int32,
    "UINT32": np.uint32,
    "INT64": np.int64,
    "UINT64": np.uint64,
    "BOOL": np.bool_,
}
_FLOAT_TYPES = {"FLOAT32", "FLOAT16", "FLOAT64", "BFLOAT16"}
_QUANT_TYPES = {"INT8", "UINT8", "INT16", "INT4", "INT2", "UINT4"}


def read_flatbuffer(data: bytes):
    """The flatbuffer as the schema's object API (``ModelT``, or a view of the ``tflite`` package's tables)."""
    return read_model_object(data)


class _Graph:
    """Subgraph 0 of a model with its tensors' names, dtypes and constant values resolved."""

    def __init__(self, data: bytes):
        schema = schema_module()
        self.model = read_flatbuffer(data)
        self.type_names = enum_names(schema.TensorType)
        self.op_names = enum_names(schema.BuiltinOperator)
        if not self.model.subgraphs:
            raise ModelError("the flatbuffer has no subgraph")
        self.subgraph = self.model.subgraphs[0]
        self.tensors = self.subgraph.tensors or []
        self.data = data
        self.operators = self.subgraph.operators or []
        self._values: dict[int, np.ndarray | None] = {}

    def op_name(self, op) -> str:
        code = self.model.operatorCodes[op.opcodeIndex]
        builtin = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
        name = self.op_names.get(builtin, f"BUILTIN_{builtin}")
        if name == "CUSTOM":
            custom = code.customCode
            name = f"CUSTOM:{custom.decode() if isinstance(custom, bytes) else custom}"
        return name

    def dtype_name(self, index: int) -> str:
        return self.type_names.get(int(self.tensors[index].type), str(self.tensors[index].type))

    def shape(self, index: int) -> list[int]:
        shape = self.tensors[index].shape
        return [] if shape is None else [int(d) for d in shape]

    def raw(self, index: int) -> bytes | None:
        """The constant bytes of a tensor, or None if it is not constant."""
        tensor = self.tensors[index]
        if tensor.buffer <= 0 or tensor.buffer >= len(self.model.buffers or []):
            return None
        buffer = self.model.buffers[tensor.buffer]
        if buffer.data is not None and len(buffer.data):
            return np.asarray(buffer.data, dtype=np.uint8).tobytes()
        if buffer.offset and buffer.offset > 1 and buffer.size:  # stored after the flatbuffer (>2 GB models)
            return self.data[buffer.offset : buffer.offset + buffer.size]
        return None

    def is_constant(self, index: int) -> bool:
        return index >= 0 and self.raw(index) is not None

    def values(self, index: int) -> np.ndarray | None:
        """Stored values of a constant tensor (dense tensors of numpy-readable dtypes only)."""
        if index not in self._values:
            raw = self.raw(index)
            dtype = _NUMPY_DTYPES.get(self.dtype_name(index))
            if raw is None or dtype is None or len(raw) % np.dtype(dtype).itemsize:
                self._values[index] = None
            else:
                self._values[index] = np.frombuffer(raw, dtype=dtype)
        return self._values[index]

    def quantization(self, index: int) -> dict[str, Any] | None:
        q = self.tensors[index].quantization
        if q is None or q.scale is None or len(q.scale) == 0:
            return None
        return {
            "scales": len(q.scale),
            "per_channel": len(q.scale) > 1,
            "quantized_dimension": int(q.quantizedDimension),
            "zero_points": None if q.zeroPoint is None else [int(z) for z in np.asarray(q.zeroPoint)[:1]],
        }

    def zero_points(self, index: int) -> np.ndarray | None:
        q = self.tensors[index].quantization
        if q is None or q.zeroPoint is None or len(q.zeroPoint) == 0:
            return None
        return np.asarray(q.zeroPoint, dtype=np.int64)

    def nbytes(self, index: int) -> int:
        dtype = _NUMPY_DTYPES.get(self.dtype_name(index))
        itemsize = np.dtype(dtype).itemsize if dtype is not None else 1
        return int(np.prod(self.shape(index) or [1])) * itemsize


def _zero_fraction(graph: _Graph, index: int, values: np.ndarray) -> float:
    """Fraction of stored values that mean a real zero (value == zero point, per channel if so)."""
    zero_points = graph.zero_points(index)
    if zero_points is None or not np.any(zero_points):
        return float(np.count_nonzero(values == 0)) / values.size
    shape = graph.shape(index)
    q = graph.tensors[index].quantization
    if len(zero_points) == 1 or not shape:
        return float(np.count_nonzero(values == zero_points[0])) / values.size
    axis = int(q.quantizedDimension)
    broadcast = [1] * len(shape)
    broadcast[axis] = len(zero_points)
    return float(np.count_nonzero(values.reshape(shape) == zero_points.reshape(broadcast))) / values.size


def _is_weight(graph: _Graph, index: int) -> bool:
    dtype = graph.dtype_name(index)
    if dtype in _FLOAT_TYPES or dtype in _QUANT_TYPES:
        return True
    # Quantized biases are int32/int64 with a scale; shape and axis constants have none.
    return dtype in ("INT32", "INT64") and graph.quantization(index) is not None


def _op_compute_dtype(graph: _Graph, op, name: str) -> str:
    """The dtype an op computes in, judged by its inputs."""
    inputs = [i for i in (op.inputs if op.inputs is not None else []) if i >= 0]
    if name == "TRANSPOSE_CONV" and len(inputs) > 2:
        # (output shape, weights, activations, bias): the output shape is an int32 tensor, not the data.
        inputs = [inputs[2], inputs[1], *inputs[3:]]
    activations = [i for i in inputs if not graph.is_constant(i)]
    if name in CONVERSION_OPS:
        src = graph.dtype_name(activations[0]).lower() if activations else "?"
        dst = graph.dtype_name(op.outputs[0]).lower() if op.outputs is not None and len(op.outputs) else "?"
        return f"{src}->{dst}"
    if not activations:
        return graph.dtype_name(inputs[0]).lower() if inputs else "none"
    act = graph.dtype_name(activations[0])
    if name in KERNEL_OPS and act in _FLOAT_TYPES and len(inputs) > 1 and graph.dtype_name(inputs[1]) in _QUANT_TYPES:
        return "hybrid"
    return act.lower()


def _stored_weight(graph: _Graph, index: int, producers: dict[int, Any]) -> int:
    """The constant a weight input comes from: itself, or the constant behind a DENSIFY (sparse
    storage) or DEQUANTIZE (float16 / int8 storage of float weights)."""
    op = producers.get(index)
    if op is not None and graph.op_name(op) in ("DENSIFY", "DEQUANTIZE") and op.inputs is not None and len(op.inputs):
        source = int(op.inputs[0])
        if graph.is_constant(source):
            return source
    return index


def _macs(graph: _Graph, op, name: str, batch: int) -> int:
    """Multiply-accumulates of one op for one image (None if not counted for this op)."""
    inputs = [int(i) for i in (op.inputs if op.inputs is not None else [])]
    outputs = [int(i) for i in (op.outputs if op.outputs is not None else [])]
    if not outputs:
        return 0
    out_elems = int(np.prod(graph.shape(outputs[0]) or [0]))
    if name in ("CONV_2D", "CONV_3D") and len(inputs) > 1:
        kernel = graph.shape(inputs[1])  # [out, kh, kw, in] (conv3d: [kd, kh, kw, in, out])
        per_output = int(np.prod(kernel[1:])) if name == "CONV_2D" else int(np.prod(kernel[:-1]))
        return out_elems * per_output // batch
    if name == "DEPTHWISE_CONV_2D" and len(inputs) > 1:
        kernel = graph.shape(inputs[1])  # [1, kh, kw, out]
        return out_elems * int(np.prod(kernel[1:3])) // batch
    if name == "FULLY_CONNECTED" and len(inputs) > 1:
        kernel = graph.shape(inputs[1])  # [units, in]
        return out_elems * int(kernel[-1]) // batch
    if name == "TRANSPOSE_CONV" and len(inputs) > 2:
        kernel = graph.shape(inputs[1])  # [out, kh, kw, in]
        in_elems = int(np.prod(graph.shape(inputs[2]) or [0]))
        return in_elems * int(np.prod(kernel[:3])) // batch
    if name == "BATCH_MATMUL" and len(inputs) > 1:
        lhs = graph.shape(inputs[0])
        return out_elems * int(lhs[-1]) // batch if lhs else 0
    return 0


def _peak_activation_bytes(graph: _Graph) -> int:
    """Largest total size of the non-constant tensors alive at any op (inputs live from the start)."""
    ops = graph.operators
    if not ops:
        return 0
    first: dict[int, int] = {int(i): 0 for i in (graph.subgraph.inputs if graph.subgraph.inputs is not None else [])}
    last: dict[int, int] = {}
    end = len(ops) - 1
    for position, op in enumerate(ops):
        for i in op.outputs if op.outputs is not None else []:
            first.setdefault(int(i), position)
        for i in op.inputs if op.inputs is not None else []:
            if i >= 0:
                last[int(i)] = position
    for i in graph.subgraph.outputs if graph.subgraph.outputs is not None else []:
        last[int(i)] = end
    live = [0] * len(ops)
    for index, start in first.items():
        if graph.is_constant(index):
            continue
        size = graph.nbytes(index)
        for position in range(start, last.get(index, start) + 1):
            live[position] += size
    return max(live)


def inspect_model(model: ModelSource, *, tensors: bool = True, sizes: bool = True) -> dict[str, Any]:
    """Anatomy of a LiteRT model (path or bytes); see the module docstring for the fields.

    ``sizes=False`` leaves ``size`` None: for callers that read the graph only (a recipe's
    checks), since gzip at level 9 is the slowest part of an anatomy.
    """
    label = model_label(model)
    data = read_model_bytes(model)
    try:
        graph = _Graph(data)
    except ModelError as exc:
        raise ModelError(f"{label}: {exc}") from exc

    inputs = [int(i) for i in (graph.subgraph.inputs if graph.subgraph.inputs is not None else [])]
    batch = max(1, graph.shape(inputs[0])[0]) if inputs and graph.shape(inputs[0]) else 1

    kernel_inputs: set[int] = set()
    bias_inputs: set[int] = set()
    kernel_op_refs: list[tuple[int, str, str, int | None, int | None, int | None]] = []
    producers = {int(i): op for op in graph.operators for i in (op.outputs if op.outputs is not None else [])}
    ops = []
    op_dtypes: Counter[str] = Counter()
    kernel_op_dtypes: Counter[str] = Counter()
    total_macs = 0
    for position, op in enumerate(graph.operators):
        name = graph.op_name(op)
        compute = _op_compute_dtype(graph, op, name)
        macs = _macs(graph, op, name, batch)
        total_macs += macs
        op_dtypes[compute] += 1
        output = int(op.outputs[0]) if op.outputs is not None and len(op.outputs) else None
        if name in KERNEL_OPS:
            kernel_op_dtypes[compute] += 1
            kernel = bias = None
            # TRANSPOSE_CONV's inputs are (output shape, weights, activations, bias).
            kernel_position, bias_position = 1, (3 if name == "TRANSPOSE_CONV" else 2)
            if op.inputs is not None and len(op.inputs) > kernel_position and op.inputs[kernel_position] >= 0:
                kernel = _stored_weight(graph, int(op.inputs[kernel_position]), producers)
                kernel_inputs.add(kernel)
            if op.inputs is not None and len(op.inputs) > bias_position and op.inputs[bias_position] >= 0:
                bias = _stored_weight(graph, int(op.inputs[bias_position]), producers)
                bias_inputs.add(bias)
            kernel_op_refs.append((position, name, compute, kernel, bias, output))
        ops.append(
            {
                "op": name,
                "dtype": compute,
                "macs": macs or None,
                "output_shape": graph.shape(output) if output is not None else None,
                "output_dtype": graph.dtype_name(output).lower() if output is not None else None,
            }
        )

    weights = []
    params = 0
    kernel_zeros = kernel_total = 0
    sparse_tensors = []
    for index in range(len(graph.tensors)):
        if not graph.is_constant(index) or not _is_weight(graph, index):
            continue
        shape = graph.shape(index)
        size = int(np.prod(shape or [1]))
        tensor = graph.tensors[index]
        name = tensor.name.decode() if isinstance(tensor.name, bytes) else (tensor.name or f"tensor{index}")
        entry: dict[str, Any] = {
            "index": index,
            "name": name,
            "dtype": graph.dtype_name(index).lower(),
            "shape": shape,
            "size": size,
            "bytes": len(graph.raw(index) or b""),
            "role": "kernel" if index in kernel_inputs else ("bias" if index in bias_inputs else "other"),
            "quantization": graph.quantization(index),
            "sparsity": None,  # fraction of values that are (real) zeros
            "unique": None,
            "sparse_format": tensor.sparsity is not None,
        }
        values = graph.values(index)
        if tensor.sparsity is not None:
            sparse_tensors.append(name)
            stored = values.size if values is not None else None
            entry["stored_values"] = stored
            if stored is not None and size:
                entry["sparsity"] = 1.0 - min(stored, size) / size  # values outside the stored blocks are zero
        elif values is not None and values.size:
            entry["sparsity"] = _zero_fraction(graph, index, values)
            entry["unique"] = int(np.unique(values).size)
        params += size
        if entry["role"] == "kernel" and entry["sparsity"] is not None:
            kernel_zeros += entry["sparsity"] * size
            kernel_total += size
        weights.append(entry)

    by_index = {w["index"]: w for w in weights}
    kernel_ops = [
        _kernel_op_record(graph, by_index, position, name, compute, kernel, bias, output)
        for position, name, compute, kernel, bias, output in kernel_op_refs
    ]
    weight_dtypes = Counter(w["dtype"] for w in weights if w["role"] == "kernel")
    summary: dict[str, Any] = {
        "params": params,
        "weight_bytes": sum(w["bytes"] for w in weights),
        "sparsity": None if not kernel_total else kernel_zeros / kernel_total,
        "macs": total_macs,
        "ops": len(graph.operators),
        "op_counts": dict(Counter(o["op"] for o in ops)),
        "ops_by_dtype": dict(op_dtypes),
        "kernel_ops_by_dtype": dict(kernel_op_dtypes),
        "kernel_weight_dtypes": dict(weight_dtypes),
        "int8_kernel_ops": sum(n for dtype, n in kernel_op_dtypes.items() if dtype in ("int8", "uint8", "int16")),
        "float_kernel_ops": sum(n for dtype, n in kernel_op_dtypes.items() if dtype in ("float32", "float16")),
        "hybrid_kernel_ops": kernel_op_dtypes.get("hybrid", 0),
        "max_unique_per_kernel": max(
            (w["unique"] for w in weights if w["role"] == "kernel" and w["unique"] is not None), default=None
        ),
        "sparse_tensors": sparse_tensors,
        "kernel_ops": kernel_ops,
        "peak_activation_bytes": _peak_activation_bytes(graph),
        "input": {"shape": graph.shape(inputs[0]), "dtype": graph.dtype_name(inputs[0]).lower()} if inputs else None,
        "subgraphs": len(graph.model.subgraphs),
        "size": file_sizes(data) if sizes else None,
    }
    if tensors:
        summary["op_list"] = ops
        summary["weights"] = weights
    return summary


def _tensor_name(graph: _Graph, index: int | None) -> str:
    if index is None or index < 0:
        return ""
    name = graph.tensors[index].name
    return name.decode() if isinstance(name, bytes) else (name or "")


def keras_layer_path(tensor_name: str) -> str | None:
    """The Keras layer a converter tensor name points at, or None.

    ``"nested/backbone/conv2d/Conv2D"`` -> ``"backbone/conv2d"`` (the outer model's name
    dropped, nested models kept); ``"m/quant_head/MatMul;m/quant_head/BiasAdd"`` -> ``"head"``
    (TFMOT's wrapper prefixes dropped); ``"m/sep/separable_conv2d/depthwise"`` -> ``"sep"``. Names the
    converter made up (``tfl.pseudo_qconst``, ``arith.constant``) give None.
    """
    votes: Counter[str] = Counter()
    for part in tensor_name.split(";"):
        scopes = [scope for scope in part.strip().split("/") if scope][1:]  # [0] is the outermost model
        op_at = next((i for i, scope in enumerate(scopes) if scope[:1].isupper() or scope[:1].isdigit()), None)
        if op_at is not None:  # a TF op: Conv2D, MatMul, BiasAdd/ReadVariableOp, Relu
            path = scopes[:op_at]
        else:
            # All lower case: the last scope is an op named in lower case (depthwise,
            # conv2d_transpose, a separable convolution's pointwise "separable_conv2d"), and a
            # separable convolution's depthwise op sits in one more scope of that name.
            path = scopes[:-1]
            if scopes and scopes[-1] == "depthwise" and len(path) > 1 and path[-1] == "separable_conv2d":
                path = path[:-1]
        if path:
            votes["/".join(_unwrapped(scope) for scope in path)] += 1
    return votes.most_common(1)[0][0] if votes else None


def _unwrapped(scope: str) -> str:
    for prefix in _WRAPPER_PREFIXES:
        if scope.startswith(prefix) and len(scope) > len(prefix):
            return scope[len(prefix) :]
    return scope


def _max_unique_per_channel(values: np.ndarray, shape: list[int], axis: int) -> int | None:
    """The most distinct stored values in any one output channel (``axis`` of ``shape``)."""
    if values is None or not shape or axis >= len(shape) or int(np.prod(shape)) != values.size:
        return None
    rows = np.moveaxis(values.reshape(shape), axis, 0).reshape(shape[axis], -1)
    if rows.shape[1] == 0:
        return None
    ordered = np.sort(rows, axis=1)
    return int((np.count_nonzero(np.diff(ordered, axis=1), axis=1) + 1).max())


def _kernel_op_record(
    graph: _Graph,
    weights: dict[int, dict[str, Any]],
    position: int,
    name: str,
    compute: str,
    kernel: int | None,
    bias: int | None,
    output: int | None,
) -> dict[str, Any]:
    """One convolution / dense op: the layer it came from and what its kernel holds."""
    layer = None
    for index in (kernel, output, bias):  # the kernel's own name first; the converter may rename constants
        layer = keras_layer_path(_tensor_name(graph, index))
        if layer:
            break
    entry = weights.get(kernel) if kernel is not None else None
    record: dict[str, Any] = {
        "op_index": position,
        "op": name,
        "layer": layer,
        "compute_dtype": compute,
        "kernel_tensor": _tensor_name(graph, kernel) or None,
        "weight_dtype": entry["dtype"] if entry else None,
        "shape": entry["shape"] if entry else None,
        "size": entry["size"] if entry else 0,
        "zeros": entry["sparsity"] if entry else None,
        "unique": entry["unique"] if entry else None,
        "channel_axis": OUTPUT_CHANNEL_AXIS.get(name),
        "max_unique_per_channel": None,
        "sparse_format": bool(entry and entry["sparse_format"]),
        "per_channel_quantization": bool(entry and entry["quantization"] and entry["quantization"]["per_channel"]),
    }
    if entry and not entry["sparse_format"] and record["channel_axis"] is not None:
        record["max_unique_per_channel"] = _max_unique_per_channel(graph.values(kernel), entry["shape"], record["channel_axis"])
    return record


def layer_table(anatomy: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The file's kernel ops grouped by Keras layer (``op #i`` where the name is lost), in op order.

    Per layer: its ops, compute and weight dtypes, size, zero fraction (size-weighted over
    its kernels: a separable convolution has a depthwise and a pointwise one), the most
    unique values in one kernel and in one output channel, and whether any kernel is
    stored in the sparse format.
    """
    table: dict[str, dict[str, Any]] = {}
    for record in anatomy.get("kernel_ops", []):
        key = record["layer"] or f"op #{record['op_index']}"
        row = table.setdefault(
            key,
            {
                "ops": [],
                "op_indices": [],
                "compute_dtypes": [],
                "weight_dtypes": [],
                "size": 0,
                "zeros": None,
                "unique": None,
                "max_unique_per_channel": None,
                "sparse_format": False,
            },
        )
        row["ops"].append(record["op"])
        row["op_indices"].append(record["op_index"])
        for field_name, value in (("compute_dtypes", record["compute_dtype"]), ("weight_dtypes", record["weight_dtype"])):
            if value and value not in row[field_name]:
                row[field_name].append(value)
        if record["zeros"] is not None and record["size"]:
            zeros = (row["zeros"] or 0.0) * row["size"] + record["zeros"] * record["size"]
            row["size"] += record["size"]
            row["zeros"] = zeros / row["size"]
        for field_name in ("unique", "max_unique_per_channel"):
            if record[field_name] is not None:
                row[field_name] = max(row[field_name] or 0, record[field_name])
        row["sparse_format"] = row["sparse_format"] or record["sparse_format"]
    return table


def float_ops(anatomy: dict[str, Any]) -> list[str]:
    """Ops that still compute in float (``"MEAN #12"``), from the op list.

    Shape bookkeeping (ops whose output is not float, e.g. SHAPE) and the conversions at the
    model's float input and output (QUANTIZE float32->int8, DEQUANTIZE int8->float32) are
    not counted: they are what float input/output costs, not a layer left in float.
    """
    listed = []
    for position, op in enumerate(anatomy.get("op_list", [])):
        if op["op"] in CONVERSION_OPS or op["dtype"] not in ("float32", "float16", "hybrid"):
            continue
        if op.get("output_dtype") not in (None, "float32", "float16"):
            continue
        listed.append(f"{op['op']} #{position}")
    return listed


def is_int8_model(anatomy: dict[str, Any]) -> bool:
    """True if every convolution and dense layer computes in int8 (what full-integer QAT gives)."""
    return anatomy["int8_kernel_ops"] > 0 and anatomy["int8_kernel_ops"] == sum(anatomy["kernel_ops_by_dtype"].values())


def anatomy_lines(anatomy: dict[str, Any]) -> list[str]:
    """A few human lines summarising an anatomy (for the CLI)."""
    size = anatomy["size"]
    lines = [
        f"params {anatomy['params']:,}  MACs per image {anatomy['macs']:,}  ops {anatomy['ops']}  "
        f"peak activations {anatomy['peak_activation_bytes'] / 1024:.1f} KiB",
        "kernel ops by dtype: " + ", ".join(f"{k} {v}" for k, v in sorted(anatomy["kernel_ops_by_dtype"].items())),
        "all ops by dtype: " + ", ".join(f"{k} {v}" for k, v in sorted(anatomy["ops_by_dtype"].items())),
        f"sparsity (kernels) {format_number(anatomy['sparsity'], 3)}  max unique values per kernel "
        + (
            str(anatomy["max_unique_per_kernel"])
            if anatomy["max_unique_per_kernel"] is not None
            else "not read (kernels in sparse format)"
            if anatomy["sparse_tensors"]
            else "not read"
        ),
        f"size: file {size['file_bytes']:,} B  gzip {size['gzip_bytes']:,} B  zip {size['zip_bytes']:,} B",
    ]
    if anatomy["sparse_tensors"]:
        lines.append("sparse-format tensors: " + ", ".join(anatomy["sparse_tensors"]))
    return lines
