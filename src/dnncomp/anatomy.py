"""What is inside a ``.tflite`` flatbuffer, read without TensorFlow (and without running it).

The flatbuffer is parsed with the schema module that ai-edge-litert ships
(``ai_edge_litert.schema_py_generated``, built on the ``flatbuffers`` package,
both part of the device install). From it:

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
- file, gzip and zip sizes.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from .errors import ModelError
from .evaluate import ModelSource, file_sizes, model_label, read_model_bytes

# Builtin ops whose input 1 is the kernel (weights) and, where present, input 2 the bias.
KERNEL_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "CONV_3D"}
CONVERSION_OPS = {"QUANTIZE", "DEQUANTIZE", "CAST"}

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


def _schema():
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError as exc:  # very old or very new wheels
        raise ModelError(f"cannot read flatbuffers: ai_edge_litert.schema_py_generated is missing ({exc})") from exc
    return schema


def _enum_names(enum_class) -> dict[int, str]:
    return {value: name for name, value in vars(enum_class).items() if not name.startswith("_") and isinstance(value, int)}


def read_flatbuffer(data: bytes):
    """The flatbuffer as the schema's object API (``ModelT``)."""
    schema = _schema()
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ModelError("not a LiteRT/TFLite flatbuffer (file identifier TFL3 missing)")
    try:
        return schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    except Exception as exc:  # a corrupt flatbuffer raises anything from struct.error to IndexError
        raise ModelError(f"corrupt flatbuffer ({type(exc).__name__}: {exc})") from exc


class _Graph:
    """Subgraph 0 of a model with its tensors' names, dtypes and constant values resolved."""

    def __init__(self, data: bytes):
        schema = _schema()
        self.model = read_flatbuffer(data)
        self.type_names = _enum_names(schema.TensorType)
        self.op_names = _enum_names(schema.BuiltinOperator)
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


def inspect_model(model: ModelSource, *, tensors: bool = True) -> dict[str, Any]:
    """Anatomy of a LiteRT model (path or bytes); see the module docstring for the fields."""
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
    producers = {int(i): op for op in graph.operators for i in (op.outputs if op.outputs is not None else [])}
    ops = []
    op_dtypes: Counter[str] = Counter()
    kernel_op_dtypes: Counter[str] = Counter()
    total_macs = 0
    for op in graph.operators:
        name = graph.op_name(op)
        compute = _op_compute_dtype(graph, op, name)
        macs = _macs(graph, op, name, batch)
        total_macs += macs
        op_dtypes[compute] += 1
        if name in KERNEL_OPS:
            kernel_op_dtypes[compute] += 1
            if op.inputs is not None and len(op.inputs) > 1:
                kernel_inputs.add(_stored_weight(graph, int(op.inputs[1]), producers))
            bias_position = 3 if name == "TRANSPOSE_CONV" else 2
            if op.inputs is not None and len(op.inputs) > bias_position and op.inputs[bias_position] >= 0:
                bias_inputs.add(_stored_weight(graph, int(op.inputs[bias_position]), producers))
        ops.append({"op": name, "dtype": compute, "macs": macs or None, "output_shape": graph.shape(op.outputs[0]) if op.outputs is not None and len(op.outputs) else None})

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
        "max_unique_per_kernel": max((w["unique"] for w in weights if w["role"] == "kernel" and w["unique"] is not None), default=None),
        "sparse_tensors": sparse_tensors,
        "peak_activation_bytes": _peak_activation_bytes(graph),
        "input": {"shape": graph.shape(inputs[0]), "dtype": graph.dtype_name(inputs[0]).lower()} if inputs else None,
        "subgraphs": len(graph.model.subgraphs),
        "size": file_sizes(data),
    }
    if tensors:
        summary["op_list"] = ops
        summary["weights"] = weights
    return summary


def is_int8_model(anatomy: dict[str, Any]) -> bool:
    """True if every convolution and dense layer computes in int8 (what full-integer QAT gives)."""
    return anatomy["int8_kernel_ops"] > 0 and anatomy["int8_kernel_ops"] == sum(anatomy["kernel_ops_by_dtype"].values())


def anatomy_lines(anatomy: dict[str, Any]) -> list[str]:
    """A few human lines summarising an anatomy (for the CLI)."""
    size = anatomy["size"]
    lines = [
        f"params {anatomy['params']:,}  MACs {anatomy['macs']:,}  ops {anatomy['ops']}  "
        f"peak activations {anatomy['peak_activation_bytes'] / 1024:.1f} KiB",
        "kernel ops by dtype: " + ", ".join(f"{k} {v}" for k, v in sorted(anatomy["kernel_ops_by_dtype"].items())),
        "all ops by dtype: " + ", ".join(f"{k} {v}" for k, v in sorted(anatomy["ops_by_dtype"].items())),
        f"sparsity (kernels) {_fmt(anatomy['sparsity'])}  max unique values per kernel {anatomy['max_unique_per_kernel']}",
        f"size: file {size['file_bytes']:,} B  gzip {size['gzip_bytes']:,} B  zip {size['zip_bytes']:,} B",
    ]
    if anatomy["sparse_tensors"]:
        lines.append("sparse-format tensors: " + ", ".join(anatomy["sparse_tensors"]))
    return lines


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"

