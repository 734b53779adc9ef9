"""Tiny LiteRT flatbuffers built without TensorFlow, for device-side tests of input and output handling.

:func:`tiny_flatbuffer` writes the schema's object API (``ai_edge_litert.schema_py_generated``)
with the ``flatbuffers`` package: an input (float32, or an integer input followed by DEQUANTIZE),
optional constant MUL/ADD/SUB/DIV or QUANTIZE+DEQUANTIZE steps (what a Rescaling layer or a
float-io quantized model puts after the input), an optional RESHAPE with the batch baked in, and
one FULLY_CONNECTED per output. Seconds to build, runnable by LiteRT.
"""

from __future__ import annotations

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as s


def tiny_flatbuffer(
    *,
    input_shape=(1, 4),
    signature=None,
    dtype="FLOAT32",
    quant=None,
    pre=(),
    weights=None,
    biases=None,
    outputs=1,
    reshape_to=None,
):
    """A LiteRT flatbuffer: input -> [DEQUANTIZE] -> [pre ops] -> [RESHAPE] -> FULLY_CONNECTED (one per output).

    ``input_shape`` includes the batch; ``signature`` is the shape signature (``-1``: resizable batch;
    None: none written). ``dtype``/``quant``: the input's TensorType name and (scale, zero_point).
    ``pre``: ("MUL"|"ADD"|"SUB"|"DIV", constant) or ("QUANTIZE", (scale, zero_point)) steps on the input.
    ``weights``/``biases``: one (classes, features) matrix / (classes,) vector per output (else random
    weights with 3, 5, 7... classes and zero biases).
    ``reshape_to``: the RESHAPE's constant new shape (a rank-3+ input is always reshaped to (batch, features)).
    """
    tensors, buffers, ops, codes = [], [s.BufferT()], [], []

    def code(name):
        value = getattr(s.BuiltinOperator, name)
        for i, c in enumerate(codes):
            if c.builtinCode == value:
                return i
        c = s.OperatorCodeT()
        c.builtinCode = value
        c.deprecatedBuiltinCode = min(value, 127)
        c.version = 1
        codes.append(c)
        return len(codes) - 1

    def tensor(shape, ttype="FLOAT32", data=None, q=None, sig=None, name=None):
        t = s.TensorT()
        t.shape = list(shape)
        if sig is not None:
            t.shapeSignature = list(sig)
        t.type = getattr(s.TensorType, ttype)
        t.name = name or f"t{len(tensors)}"
        if data is not None:
            b = s.BufferT()
            b.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), dtype=np.uint8)
            buffers.append(b)
            t.buffer = len(buffers) - 1
        else:
            t.buffer = 0
        if q is not None:
            qp = s.QuantizationParametersT()
            qp.scale = [float(q[0])]
            qp.zeroPoint = [int(q[1])]
            t.quantization = qp
        tensors.append(t)
        return len(tensors) - 1

    def op(name, inputs, outs, options_type=0, options=None):
        o = s.OperatorT()
        o.opcodeIndex = code(name)
        o.inputs, o.outputs = list(inputs), list(outs)
        o.builtinOptionsType = options_type
        o.builtinOptions = options
        ops.append(o)

    x = tensor(input_shape, dtype, q=quant, sig=signature, name="image")
    current = x
    if dtype != "FLOAT32":  # an integer input is dequantized first, as a converter's uint8-io model does
        current = tensor(input_shape)
        op("DEQUANTIZE", [x], [current])
    for name, value in pre:
        if name == "QUANTIZE":
            q = tensor(input_shape, "INT8", q=value)
            op("QUANTIZE", [current], [q])
            current = tensor(input_shape)
            op("DEQUANTIZE", [q], [current])
            continue
        const = tensor(np.shape(value), data=np.asarray(value, dtype=np.float32))
        out = tensor(input_shape)
        options = {"MUL": s.MulOptionsT, "ADD": s.AddOptionsT, "SUB": s.SubOptionsT, "DIV": s.DivOptionsT}[name]()
        op(name, [current, const], [out], getattr(s.BuiltinOptions, f"{name.capitalize()}Options"), options)
        current = out
    batch = input_shape[0]
    features = int(np.prod(input_shape[1:]))
    if reshape_to is not None or len(input_shape) > 2:
        new_shape = list(reshape_to or (batch, features))
        shape_t = tensor((2,), "INT32", data=np.asarray(new_shape, dtype=np.int32))
        out = tensor((batch, features))
        options = s.ReshapeOptionsT()
        options.newShape = new_shape
        op("RESHAPE", [current, shape_t], [out], s.BuiltinOptions.ReshapeOptions, options)
        current = out
    results = []
    rng = np.random.default_rng(0)
    for k in range(outputs):
        w = weights[k] if weights is not None else rng.normal(size=(3 + 2 * k, features)).astype(np.float32)
        w = np.asarray(w, dtype=np.float32)
        wt = tensor(w.shape, data=w)
        bt = tensor((w.shape[0],), data=np.asarray(biases[k] if biases is not None else np.zeros(w.shape[0]), dtype=np.float32))
        out = tensor((batch, w.shape[0]), sig=None if signature is None else (signature[0], w.shape[0]), name=f"scores{k}")
        op("FULLY_CONNECTED", [current, wt, bt], [out], s.BuiltinOptions.FullyConnectedOptions, s.FullyConnectedOptionsT())
        results.append(out)
    sub = s.SubGraphT()
    sub.tensors, sub.inputs, sub.outputs, sub.operators, sub.name = tensors, [x], results, ops, "main"
    model = s.ModelT()
    model.version = 3
    model.operatorCodes, model.subgraphs, model.buffers = codes, [sub], buffers
    model.description = "test"
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())
