"""Which requantization rounding each runtime's int8 kernels use, recomputed in numpy (issue 15).

For every CONV_2D, FULLY_CONNECTED and ADD of an int8 model, the int32 accumulator is recomputed
from the op's own int8 inputs as each runtime saw them, then requantized with each candidate
scheme, and the scheme's output compared with what the runtime wrote:

- ``away``: gemmlowp fixed point, rounding twice (SaturatingRoundingDoublingHighMul, then
  RoundingDivideByPOT, a half away from zero): TFLite's reference kernels;
- ``up``: the same high multiply, then a shift rounding a half up (towards +inf);
- ``single``: one rounding of x * multiplier / 2^(31 - shift), a half up (as ruy's ApplyMultiplier,
  TFLITE_SINGLE_ROUNDING);
- ``fp32``: float32 multiply by the real scale, round to nearest even (XNNPACK's fp32 requantization).

Runtimes: LiteRT's reference kernels (BUILTIN_REF), its optimized builtin kernels
(BUILTIN_WITHOUT_DEFAULT_DELEGATES), both with every tensor kept; TFLM (kPreserveAllTensors); and
XNNPACK on the first op only (the model cut after it: the delegate keeps no intermediate tensors).
A count of 0 means the scheme reproduces every value of that op on every image.

    .venv/bin/python benchmarks/micro_rounding.py MODEL.tflite --dataset cifar10 --images 20
    .venv/bin/python benchmarks/micro_rounding.py MODEL.tflite --images 1000 --ops FULLY_CONNECTED

Handles convolutions with SAME or VALID padding and no dilation, per-channel weights, fused
NONE/RELU/RELU6, and ADD without a fused activation. Needs ai-edge-litert and tflite-micro; no TensorFlow.
"""

from __future__ import annotations

import argparse
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType
from tflite_micro import runtime

from dnncomp.litert_backend import read_model_object
from dnncomp.measure import load_for_model
from dnncomp.micro import model_cut_after, model_ready_inputs


def quantize_multiplier(real: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """TFLite's QuantizeMultiplier: real = q * 2^(shift - 31), q in [2^30, 2^31)."""
    mantissa, shift = np.frexp(np.asarray(real, dtype=np.float64))
    q = np.round(mantissa * (1 << 31)).astype(np.int64)
    carry = q == (1 << 31)
    return np.where(carry, q // 2, q), np.where(carry, shift + 1, shift)


def high_mul(a: np.ndarray, q: np.ndarray) -> np.ndarray:
    """gemmlowp's SaturatingRoundingDoublingHighMul (C++ division truncates towards zero)."""
    ab = a * q
    nudged = ab + np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    return np.where(nudged >= 0, nudged >> 31, -((-nudged) >> 31))


def shift_away(x: np.ndarray, right: np.ndarray) -> np.ndarray:
    mask = (np.int64(1) << right) - 1
    return (x >> right) + ((x & mask) > ((mask >> 1) + (x < 0)))


def shift_up(x: np.ndarray, right: np.ndarray) -> np.ndarray:
    return (x + ((np.int64(1) << right) >> 1)) >> right


def requantize(acc: np.ndarray, real: np.ndarray, scheme: str) -> np.ndarray:
    acc = np.asarray(acc, dtype=np.int64)
    if scheme == "fp32":
        return np.rint(acc.astype(np.float32) * np.asarray(real, dtype=np.float32)).astype(np.int64)
    q, shift = quantize_multiplier(real)
    if scheme == "single":
        total = 31 - shift
        return (acc * q + (np.int64(1) << (total - 1))) >> total
    left, right = np.maximum(shift, 0), np.maximum(-shift, 0)
    high = high_mul(acc * (np.int64(1) << left), q)
    return shift_away(high, right) if scheme == "away" else shift_up(high, right)


SCHEMES = ("away", "up", "single", "fp32")


def quant(details: dict, index: int) -> tuple[np.ndarray, int]:
    params = details[index]["quantization_parameters"]
    return np.asarray(params["scales"], dtype=np.float64), int(params["zero_points"][0])


def accumulator(op: dict, get, details: dict, out_shape) -> np.ndarray:
    inp, weights, bias = (int(i) for i in op["inputs"][:3])
    _, zero = quant(details, inp)
    a = get(inp).astype(np.int64) - zero
    w = get(weights).astype(np.int64)
    b = get(bias).astype(np.int64)
    if op["op_name"] == "FULLY_CONNECTED":
        return a.reshape(a.shape[0], -1) @ w.T + b
    out_h, out_w = out_shape[1:3]
    n, kh, kw, c = w.shape
    stride = -(-a.shape[1] // out_h)
    # SAME padding as TFLite computes it (VALID convolutions need none: the total comes out <= 0).
    pad_h = max((out_h - 1) * stride + kh - a.shape[1], 0)
    pad_w = max((out_w - 1) * stride + kw - a.shape[2], 0)
    padded = np.pad(a, ((0, 0), (pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0)))
    patches = np.stack(
        [padded[:, dy : dy + out_h * stride : stride, dx : dx + out_w * stride : stride] for dy in range(kh) for dx in range(kw)],
        axis=3,
    )
    return np.einsum("bhwkc,okc->bhwo", patches, w.reshape(n, kh * kw, c)) + b


def activation_bounds(model, op: dict, details: dict) -> tuple[int, int]:
    """The int8 range an op's fused activation (read from the flatbuffer) leaves its output."""
    options = model.subgraphs[0].operators[int(op["index"])].builtinOptions
    fused = getattr(options, "fusedActivationFunction", 0)
    (scale,), zero = quant(details, int(op["outputs"][0]))
    if fused == 1:  # RELU
        return max(-128, zero), 127
    if fused == 3:  # RELU6
        return max(-128, zero), min(127, zero + int(round(6 / scale)))
    if fused == 0:  # NONE
        return -128, 127
    raise SystemExit(f"op {op['index']}: fused activation {fused} is not handled")


def expected(op: dict, get, details: dict, got: np.ndarray, scheme: str, bounds: tuple[int, int]) -> np.ndarray:
    out = int(op["outputs"][0])
    out_scale, out_zero = quant(details, out)
    if op["op_name"] == "ADD":
        a, b = (int(i) for i in op["inputs"][:2])
        (sa,), za = quant(details, a)
        (sb,), zb = quant(details, b)
        twice = 2 * max(sa, sb)
        xa = requantize((get(a).astype(np.int64) - za) << 20, sa / twice, scheme)
        xb = requantize((get(b).astype(np.int64) - zb) << 20, sb / twice, scheme)
        y = requantize(xa + xb, twice / ((1 << 20) * out_scale[0]), scheme)
    else:
        (in_scale,), _ = quant(details, int(op["inputs"][0]))
        w_scale, _ = quant(details, int(op["inputs"][1]))
        y = requantize(accumulator(op, get, details, got.shape), in_scale * w_scale / out_scale[0], scheme)
    return np.clip(y.reshape(got.shape) + out_zero, *bounds)


def litert(path: Path, resolver) -> Interpreter:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        interpreter = Interpreter(
            model_path=str(path), experimental_op_resolver_type=resolver, num_threads=1, experimental_preserve_all_tensors=True
        )
    interpreter.allocate_tensors()
    return interpreter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--dataset", default="cifar10")
    parser.add_argument("--data-dir", type=Path, default=Path(".data"))
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--ops", default="CONV_2D,FULLY_CONNECTED,ADD", help="the op kinds to check, comma-separated")
    args = parser.parse_args()

    x = model_ready_inputs(args.model, load_for_model(args.dataset, args.model, args.data_dir).x_test[: args.images])
    data = args.model.read_bytes()
    ref = litert(args.model, OpResolverType.BUILTIN_REF)
    opt = litert(args.model, OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    tflm = runtime.Interpreter.from_bytes(
        data, arena_size=1 << 24, intrepreter_config=runtime.InterpreterConfig.kPreserveAllTensors
    )
    details = {int(t["index"]): t for t in ref.get_tensor_details()}
    kinds = set(args.ops.split(",")) & {"CONV_2D", "FULLY_CONNECTED", "ADD"}
    ops = [op for op in ref._get_ops_details() if op["op_name"] in kinds]
    first = ref._get_ops_details()[0]
    model = read_model_object(data)
    bounds = {int(op["index"]): activation_bounds(model, op, details) for op in [*ops, first] if op["op_name"] != "ADD"}
    bounds.update({int(op["index"]): (-128, 127) for op in ops if op["op_name"] == "ADD"})
    xnn = Interpreter(model_content=model_cut_after(data, int(first["outputs"][0])), num_threads=1)
    xnn.allocate_tensors()

    mismatches: dict[tuple[int, str, str], int] = defaultdict(int)
    values: dict[int, int] = defaultdict(int)
    for image in x:
        batch = image[None]
        for interpreter in (ref, opt, xnn):
            interpreter.set_tensor(interpreter.get_input_details()[0]["index"], batch)
            interpreter.invoke()
        tflm.set_input(batch, 0)
        tflm.invoke()
        runtimes = {
            "TFLM": lambda i: np.asarray(tflm.GetTensor(i, 0)["tensor_data"]).reshape(details[i]["shape"]),
            "LiteRT reference": ref.get_tensor,
            "LiteRT builtin": opt.get_tensor,
        }
        for op in ops:
            out = int(op["outputs"][0])
            values[op["index"]] += int(np.prod(details[out]["shape"]))
            for name, get in runtimes.items():
                got = get(out).astype(np.int64)
                for scheme in SCHEMES:
                    mismatches[(op["index"], name, scheme)] += int(
                        np.count_nonzero(expected(op, get, details, got, scheme, bounds[op["index"]]) != got)
                    )
        # XNNPACK: the first op, on the model's own input (the cut's only op runs delegated).
        if first["op_name"] == "CONV_2D" and "CONV_2D" in kinds:
            got = xnn.get_tensor(xnn.get_output_details()[0]["index"]).astype(np.int64)

            def get_input(i, image=batch):
                return image if i == int(first["inputs"][0]) else ref.get_tensor(i)

            for scheme in SCHEMES:
                mismatches[(first["index"], "XNNPACK (cut)", scheme)] += int(
                    np.count_nonzero(expected(first, get_input, details, got, scheme, bounds[first["index"]]) != got)
                )

    print(f"{args.model}: values of each op's output that a scheme does not reproduce, over {len(x)} test images")
    print(f"{'op':>3} {'kind':16} {'values':>9}  {'runtime':18} " + " ".join(f"{s:>7}" for s in SCHEMES))
    names = ("TFLM", "LiteRT reference", "LiteRT builtin", "XNNPACK (cut)")
    for op in ops:
        for name in names:
            if (op["index"], name, SCHEMES[0]) in mismatches:
                row = " ".join(f"{mismatches[(op['index'], name, s)]:7d}" for s in SCHEMES)
                print(f"{op['index']:3d} {op['op_name']:16} {values[op['index']]:9,}  {name:18} {row}")


if __name__ == "__main__":
    main()
