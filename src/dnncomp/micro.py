"""Microcontroller facts about a ``.tflite`` model, measured with TFLite Micro (TFLM). No TensorFlow.

What a firmware engineer needs before flashing a model:

- **arena bytes**: the smallest tensor arena with which TFLM's interpreter both
  allocates the model and runs one inference, found by search (doubling or
  halving from the activation estimate, then bisection down to TFLM's 16-byte
  alignment), next to what the interpreter's recording allocator reports it used
  (``Arena allocation total``, printed by ``print_allocations``; the Python
  wrapper exposes no ``arena_used_bytes()``);
- **flash**: the model's bytes as a C array (16-byte aligned) plus its length
  constant; the TFLM runtime's and kernels' code is not included (it depends on
  the toolchain and on the ops registered);
- the **op list** for a ``tflite::MicroMutableOpResolver`` (from the flatbuffer,
  via :mod:`dnncomp.anatomy`), int8 input/output or not, and the ops TFLM lacks;
- **equivalence**: TFLM against LiteRT on real images, top-1 agreement and the
  largest difference of the raw outputs (in int8 steps for int8 outputs).

TFLM runs in a child process (``python -m dnncomp.micro``): an arena far too small
makes the TFLM Python wrapper crash the whole process (a segmentation fault, not a
Python exception), and TFLM prints its diagnostics on the C stderr. The child is
restarted after a crash, which the search counts as "does not fit".

The TFLM interpreter ships in PyPI's ``tflite-micro`` (``pip install 'dnncomp[mcu]'``).
The arena measured is that of TFLM's reference kernels on this 64-bit host; optimized
kernels (CMSIS-NN, ESP-NN) request their own scratch buffers and 32-bit targets have
smaller pointers, hence the stated margin in :mod:`dnncomp.c_array`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import MissingDependencyError, ModelError
from .evaluate import ModelSource, model_label, read_model_bytes

# TFLM aligns the arena and every buffer in it to this many bytes (MicroArenaBufferAlignment()).
TFLM_ALIGNMENT = 16
# An arena larger than this is not a microcontroller's: the search stops there.
MAX_ARENA_BYTES = 64 * 1024 * 1024
MIN_SEARCH_START = 1024
# One probe (allocate and one inference) of a microcontroller-sized model takes milliseconds; a child
# silent this long is stuck, and is killed (the probe counts as "does not run").
PROBE_TIMEOUT_S = 120.0

INSTALL_HINT = "install TFLite Micro's Python interpreter: pip install 'dnncomp[mcu]' (PyPI tflite-micro)"

# MicroMutableOpResolver's method for each builtin op (tensorflow/lite/micro/micro_mutable_op_resolver.h).
# Ops missing here but run by TFLM get the mechanical CamelCase name, flagged as unchecked.
RESOLVER_METHODS: dict[str, str] = {
    "ABS": "AddAbs",
    "ADD": "AddAdd",
    "ADD_N": "AddAddN",
    "ARG_MAX": "AddArgMax",
    "ARG_MIN": "AddArgMin",
    "ASSIGN_VARIABLE": "AddAssignVariable",
    "AVERAGE_POOL_2D": "AddAveragePool2D",
    "BATCH_MATMUL": "AddBatchMatMul",
    "BATCH_TO_SPACE_ND": "AddBatchToSpaceNd",
    "BROADCAST_ARGS": "AddBroadcastArgs",
    "BROADCAST_TO": "AddBroadcastTo",
    "CALL_ONCE": "AddCallOnce",
    "CAST": "AddCast",
    "CEIL": "AddCeil",
    "CONCATENATION": "AddConcatenation",
    "CONV_2D": "AddConv2D",
    "COS": "AddCos",
    "CUMSUM": "AddCumSum",
    "DEPTH_TO_SPACE": "AddDepthToSpace",
    "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D",
    "DEQUANTIZE": "AddDequantize",
    "DIV": "AddDiv",
    "ELU": "AddElu",
    "EMBEDDING_LOOKUP": "AddEmbeddingLookup",
    "EQUAL": "AddEqual",
    "EXP": "AddExp",
    "EXPAND_DIMS": "AddExpandDims",
    "FILL": "AddFill",
    "FLOOR": "AddFloor",
    "FLOOR_DIV": "AddFloorDiv",
    "FLOOR_MOD": "AddFloorMod",
    "FULLY_CONNECTED": "AddFullyConnected",
    "GATHER": "AddGather",
    "GATHER_ND": "AddGatherNd",
    "GREATER": "AddGreater",
    "GREATER_EQUAL": "AddGreaterEqual",
    "HARD_SWISH": "AddHardSwish",
    "IF": "AddIf",
    "L2_NORMALIZATION": "AddL2Normalization",
    "L2_POOL_2D": "AddL2Pool2D",
    "LEAKY_RELU": "AddLeakyRelu",
    "LESS": "AddLess",
    "LESS_EQUAL": "AddLessEqual",
    "LOG": "AddLog",
    "LOG_SOFTMAX": "AddLogSoftmax",
    "LOGICAL_AND": "AddLogicalAnd",
    "LOGICAL_NOT": "AddLogicalNot",
    "LOGICAL_OR": "AddLogicalOr",
    "LOGISTIC": "AddLogistic",
    "MAXIMUM": "AddMaximum",
    "MAX_POOL_2D": "AddMaxPool2D",
    "MEAN": "AddMean",
    "MINIMUM": "AddMinimum",
    "MIRROR_PAD": "AddMirrorPad",
    "MUL": "AddMul",
    "NEG": "AddNeg",
    "NOT_EQUAL": "AddNotEqual",
    "PACK": "AddPack",
    "PAD": "AddPad",
    "PADV2": "AddPadV2",
    "PRELU": "AddPrelu",
    "QUANTIZE": "AddQuantize",
    "READ_VARIABLE": "AddReadVariable",
    "REDUCE_MAX": "AddReduceMax",
    "REDUCE_MIN": "AddReduceMin",
    "RELU": "AddRelu",
    "RELU6": "AddRelu6",
    "RESHAPE": "AddReshape",
    "RESIZE_BILINEAR": "AddResizeBilinear",
    "RESIZE_NEAREST_NEIGHBOR": "AddResizeNearestNeighbor",
    "ROUND": "AddRound",
    "RSQRT": "AddRsqrt",
    "SELECT_V2": "AddSelectV2",
    "SHAPE": "AddShape",
    "SIN": "AddSin",
    "SLICE": "AddSlice",
    "SOFTMAX": "AddSoftmax",
    "SPACE_TO_BATCH_ND": "AddSpaceToBatchNd",
    "SPACE_TO_DEPTH": "AddSpaceToDepth",
    "SPLIT": "AddSplit",
    "SPLIT_V": "AddSplitV",
    "SQRT": "AddSqrt",
    "SQUARE": "AddSquare",
    "SQUARED_DIFFERENCE": "AddSquaredDifference",
    "SQUEEZE": "AddSqueeze",
    "STRIDED_SLICE": "AddStridedSlice",
    "SUB": "AddSub",
    "SUM": "AddSum",
    "SVDF": "AddSvdf",
    "TANH": "AddTanh",
    "TRANSPOSE": "AddTranspose",
    "TRANSPOSE_CONV": "AddTransposeConv",
    "UNPACK": "AddUnpack",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "AddUnidirectionalSequenceLSTM",
    "VAR_HANDLE": "AddVarHandle",
    "WHILE": "AddWhile",
    "ZEROS_LIKE": "AddZerosLike",
}

_MISSING_OP = re.compile(r"Didn't find op for (?:builtin opcode|custom opcode) '([^']+)'")
_ARENA_TOTAL = re.compile(r"Arena allocation total (\d+) bytes")


def tflm_available() -> bool:
    """True if TFLite Micro's Python interpreter (PyPI ``tflite-micro``) can be imported."""
    try:
        import tflite_micro  # noqa: F401
    except ImportError:
        return False
    return True


def tflm_version() -> str | None:
    """The installed ``tflite-micro`` version (a dated pre-release), or None if it is not installed."""
    try:
        import tflite_micro
    except ImportError:
        return None
    return str(getattr(tflite_micro, "__version__", "unknown"))


def require_tflm(what: str = "this") -> None:
    """Raise :class:`MissingDependencyError` (one line, with the install command) if TFLM is absent."""
    if not tflm_available():
        raise MissingDependencyError(f"{what} needs TFLite Micro; {INSTALL_HINT}")


def align(n: int, alignment: int = TFLM_ALIGNMENT) -> int:
    """``n`` rounded up to a multiple of ``alignment``."""
    return -(-int(n) // alignment) * alignment


# ---- the model's ops and I/O, from the flatbuffer -----------------------------------------


def resolver_method(op: str) -> str:
    """``MicroMutableOpResolver`` method registering builtin ``op`` (``CONV_2D`` -> ``AddConv2D``)."""
    if op in RESOLVER_METHODS:
        return RESOLVER_METHODS[op]
    return "Add" + "".join(part.capitalize() for part in op.split("_"))


def model_ops(model: ModelSource) -> list[str]:
    """The distinct op names of a model in first-use order, from the flatbuffer (``CUSTOM:<name>`` for custom ops)."""
    from .anatomy import inspect_model

    seen: dict[str, None] = {}
    for op in inspect_model(model, tensors=True)["op_list"]:
        seen.setdefault(op["op"], None)
    return list(seen)


@dataclass(frozen=True)
class TensorQuantization:
    """One input or output tensor as the firmware sees it."""

    name: str
    shape: tuple[int, ...]
    dtype: str  # numpy name: int8, uint8, float32 ...
    scale: float | None  # None for float tensors
    zero_point: int | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "scale": self.scale,
            "zero_point": self.zero_point,
        }


def io_tensors(model: ModelSource) -> tuple[list[TensorQuantization], list[TensorQuantization]]:
    """(inputs, outputs) of subgraph 0 with dtype, shape and per-tensor quantization, from the flatbuffer."""
    from .anatomy import _Graph

    data = read_model_bytes(model)
    try:
        graph = _Graph(data)
    except ModelError as exc:
        raise ModelError(f"{model_label(model)}: {exc}") from exc

    def describe(index: int) -> TensorQuantization:
        tensor = graph.tensors[index]
        name = tensor.name.decode() if isinstance(tensor.name, bytes) else str(tensor.name or f"tensor{index}")
        dtype = graph.dtype_name(index).lower()
        q = tensor.quantization
        scale = zero_point = None
        if q is not None and q.scale is not None and len(q.scale):
            scale = float(q.scale[0])
            zero_point = int(q.zeroPoint[0]) if q.zeroPoint is not None and len(q.zeroPoint) else 0
        return TensorQuantization(name, tuple(graph.shape(index)), dtype, scale, zero_point)

    sub = graph.subgraph
    inputs = [describe(int(i)) for i in (sub.inputs if sub.inputs is not None else [])]
    outputs = [describe(int(i)) for i in (sub.outputs if sub.outputs is not None else [])]
    return inputs, outputs


def flash_bytes(model_bytes: int) -> dict[str, int]:
    """Flash the model takes as a C array: its bytes padded to 16 bytes, plus the 4-byte length constant."""
    aligned = align(model_bytes)
    return {
        "model_bytes": int(model_bytes),
        "aligned_bytes": aligned,
        "c_array_adds_bytes": aligned - int(model_bytes) + 4,
        "total_bytes": aligned + 4,
    }


# ---- the TFLM child process ---------------------------------------------------------------


class _Worker:
    """A ``python -m dnncomp.micro`` child answering one JSON request per line; restarted after a crash."""

    def __init__(self, model_path: Path):
        self.model_path = model_path
        self.proc: subprocess.Popen | None = None
        self.crashes = 0

    def _start(self) -> subprocess.Popen:
        env = dict(os.environ)
        # The child must find this very package even when run from a source tree.
        src = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        return subprocess.Popen(
            [sys.executable, "-m", "dnncomp.micro", str(self.model_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            text=True,
            bufsize=1,
        )

    def request(self, timeout: float | None = PROBE_TIMEOUT_S, **req: Any) -> dict[str, Any]:
        """Send one request; a child that dies or outlives ``timeout`` seconds is an ``ok: False`` reply."""
        if self.proc is None or self.proc.poll() is not None:
            self.proc = self._start()
        proc = self.proc
        timer = threading.Timer(timeout, proc.kill) if timeout else None
        if timer is not None:
            timer.daemon = True
            timer.start()
        try:
            proc.stdin.write(json.dumps(req) + "\n")
            proc.stdin.flush()
            line = proc.stdout.readline()
        except (BrokenPipeError, OSError):
            line = ""
        finally:
            if timer is not None:
                timer.cancel()
        if not line:
            code = proc.wait()
            self.proc = None
            self.crashes += 1
            why = f"no answer within {timeout:g} s" if code == -9 and timeout else f"exit code {code}"
            return {"ok": False, "crashed": True, "error": f"TFLM crashed ({why})", "log": ""}
        return json.loads(line)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> _Worker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _child_main(model_path: str) -> int:
    """The child: reads JSON requests from stdin, answers one JSON line each (see :class:`_Worker`)."""
    from tflite_micro import runtime

    data = Path(model_path).read_bytes()
    out = sys.stdout
    for line in sys.stdin:
        req = json.loads(line)
        reply: dict[str, Any] = {"ok": False, "error": "", "log": ""}
        sys.stderr.flush()
        saved = os.dup(2)
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            try:
                interpreter = runtime.Interpreter.from_bytes(data, arena_size=int(req["arena"]))
                details = interpreter.get_input_details(0)
                if req["cmd"] == "run":
                    outputs = []
                    for x in model_batches(np.load(req["inputs"]), int(details["shape"][0])):
                        interpreter.set_input(x.astype(details["dtype"], copy=False), 0)
                        interpreter.invoke()
                        outputs.append(np.asarray(interpreter.get_output(0)).reshape(len(x), -1))
                    np.save(req["outputs"], np.concatenate(outputs) if outputs else np.zeros((0, 0)))
                else:
                    interpreter.set_input(np.zeros(details["shape"], dtype=details["dtype"]), 0)
                    interpreter.invoke()
                    if req["cmd"] == "report":
                        interpreter.print_allocations()
                reply["ok"] = True
            except Exception as exc:  # TFLM raises RuntimeError/ValueError; any failure means "does not run"
                reply["error"] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
                os.close(saved)
                sink.seek(0)
                reply["log"] = sink.read().decode("utf-8", "replace")[-4000:]
        out.write(json.dumps(reply) + "\n")
        out.flush()
    return 0


# ---- arena search ---------------------------------------------------------------------------


@dataclass
class ArenaSearch:
    """The arena search's outcome (bytes) and how it got there."""

    arena_bytes: int | None  # smallest arena (multiple of 16) that allocates and runs; None if none does
    reported_bytes: int | None  # what TFLM's recording allocator reports using, at that arena
    probes: list[tuple[int, bool]] = field(default_factory=list)
    missing_ops: list[str] = field(default_factory=list)
    error: str | None = None  # why the model does not run under TFLM at all
    crashes: int = 0


def _first_error_line(reply: dict[str, Any]) -> str:
    log = [line.strip() for line in reply.get("log", "").splitlines() if line.strip()]
    return log[0] if log else reply.get("error") or "unknown error"


def search_arena(model_path: Path, *, start: int | None = None, worker: _Worker | None = None) -> ArenaSearch:
    """The smallest tensor arena (multiple of :data:`TFLM_ALIGNMENT`) with which TFLM allocates and runs the model.

    Exponential search from ``start`` (default: the flatbuffer's peak activation bytes), then
    bisection. A model that does not run even with :data:`MAX_ARENA_BYTES` (missing ops, say)
    gets ``arena_bytes=None`` and the reason in ``error``/``missing_ops``. Needs ``tflite-micro``.
    """
    require_tflm("measuring the TFLM arena")
    own = worker is None
    worker = worker or _Worker(model_path)
    result = ArenaSearch(None, None)
    last: dict[str, Any] = {}
    try:

        def fits(arena: int) -> bool:
            reply = worker.request(cmd="probe", arena=arena)
            last.clear()
            last.update(reply)
            result.probes.append((arena, bool(reply["ok"])))
            if not reply["ok"]:
                missing = _MISSING_OP.findall(reply.get("log", ""))
                if missing:
                    result.missing_ops = sorted(set(missing))
            return bool(reply["ok"])

        # First ask whether the model runs at all (missing ops fail at any size).
        if not fits(MAX_ARENA_BYTES):
            result.error = (
                "TFLM lacks op(s) " + ", ".join(result.missing_ops)
                if result.missing_ops
                else f"TFLM cannot run it with a {MAX_ARENA_BYTES // (1024 * 1024)} MiB arena ({_first_error_line(last)})"
            )
            return result
        if start is None:
            from .anatomy import inspect_model

            start = inspect_model(model_path, tensors=False)["peak_activation_bytes"]
        guess = align(max(MIN_SEARCH_START, int(start)))
        if fits(guess):
            high = guess
            low = guess // 2
            while low >= TFLM_ALIGNMENT and fits(align(low)):
                high = align(low)
                low //= 2
            low = align(low) if low >= TFLM_ALIGNMENT else 0
        else:
            low = guess
            high = guess * 2
            while high < MAX_ARENA_BYTES and not fits(high):
                low, high = high, high * 2
            high = min(high, MAX_ARENA_BYTES)
        # Invariant: `high` fits, `low` does not (or is 0); both multiples of the alignment.
        while high - low > TFLM_ALIGNMENT:
            mid = align((low + high) // 2)
            if mid >= high:
                break
            if fits(mid):
                high = mid
            else:
                low = mid
        result.arena_bytes = high
        report = worker.request(cmd="report", arena=high)
        totals = _ARENA_TOTAL.findall(report.get("log", ""))
        result.reported_bytes = int(totals[-1]) if totals else None
        result.crashes = worker.crashes
        return result
    finally:
        if own:
            worker.close()


# ---- equivalence with LiteRT ----------------------------------------------------------------


def tflm_outputs(model_path: Path, x_model: np.ndarray, arena_bytes: int, worker: _Worker | None = None) -> np.ndarray:
    """Raw output of TFLM for each model-ready input (``x_model``: N x input shape without batch), N x outputs."""
    require_tflm("running TFLM")
    own = worker is None
    worker = worker or _Worker(model_path)
    try:
        with tempfile.TemporaryDirectory(prefix="dnncomp-tflm-") as tmp:
            inputs, outputs = Path(tmp) / "x.npy", Path(tmp) / "y.npy"
            np.save(inputs, np.ascontiguousarray(x_model))
            reply = worker.request(cmd="run", arena=int(arena_bytes), inputs=str(inputs), outputs=str(outputs), timeout=None)
            if not reply["ok"]:
                raise ModelError(f"{model_path}: TFLM failed on real images ({_first_error_line(reply)})")
            return np.load(outputs)[: len(x_model)]
    finally:
        if own:
            worker.close()


def model_batches(x_model: np.ndarray, batch: int):
    """``x_model`` in chunks of the model's fixed input batch (the last padded with its last image)."""
    batch = max(1, int(batch))
    for start in range(0, len(x_model), batch):
        part = x_model[start : start + batch]
        if len(part) < batch:
            part = np.concatenate([part, np.repeat(part[-1:], batch - len(part), axis=0)])
        yield part


def litert_outputs(model_path: Path, x_model: np.ndarray) -> np.ndarray:
    """Raw output 0 of LiteRT (builtin kernels, the model's own batch) for each model-ready input, N x outputs."""
    from .evaluate import allocate, open_interpreter

    interpreter = open_interpreter(model_path, xnnpack=False)
    allocate(interpreter, str(model_path))
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    batch = max(1, int(inp["shape"][0]))
    rows = []
    for x in model_batches(x_model, batch):
        interpreter.set_tensor(inp["index"], np.ascontiguousarray(x, dtype=inp["dtype"]))
        interpreter.invoke()
        rows.append(np.asarray(interpreter.get_tensor(out["index"])).reshape(batch, -1))
    return np.concatenate(rows)[: len(x_model)] if rows else np.zeros((0, 0))


def compare_outputs(tflm: np.ndarray, litert: np.ndarray) -> dict[str, Any]:
    """Top-1 agreement and the largest absolute difference of the raw outputs (int8 steps for int8 outputs)."""
    n = len(tflm)
    if n == 0:
        return {"images": 0, "top1_agreement": None, "disagreements": 0, "max_abs_diff": None}
    agree = int(np.count_nonzero(np.argmax(tflm, axis=1) == np.argmax(litert, axis=1)))
    diff = np.abs(tflm.astype(np.float64) - litert.astype(np.float64))
    return {
        "images": n,
        "top1_agreement": agree / n,
        "disagreements": n - agree,
        "max_abs_diff": float(diff.max()),
        "outputs_identical": int(np.count_nonzero(np.all(diff == 0, axis=1))),
    }


def model_ready_inputs(model_path: Path, x_uint8: np.ndarray) -> np.ndarray:
    """uint8 NHWC images -> what the model's input tensor takes (as ``dnncomp evaluate`` prepares them)."""
    from .evaluate import model_input_spec, prepare_inputs

    spec = model_input_spec(model_path, xnnpack=False)
    return prepare_inputs(x_uint8, spec, str(model_path))


# ---- the whole report -----------------------------------------------------------------------


def micro_report(
    model_path: str | os.PathLike, *, x_uint8: np.ndarray | None = None, dataset: str | None = None
) -> dict[str, Any]:
    """Everything :mod:`dnncomp.micro` measures for one ``.tflite`` file, as a JSON-ready dict.

    ``x_uint8`` (N x H x W x C uint8 test images) adds the TFLM-vs-LiteRT equivalence on them.
    Raises :class:`ModelError` for a file that is not a model and
    :class:`MissingDependencyError` without ``tflite-micro``; a model TFLM cannot run is
    reported (``runs: False`` and the reason), not raised.
    """
    path = Path(model_path)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    require_tflm(f"--target mcu ({path})")
    data = path.read_bytes()
    ops = model_ops(data)
    inputs, outputs = io_tensors(data)
    int8_io = bool(inputs) and bool(outputs) and all(t.dtype == "int8" for t in inputs + outputs)
    report: dict[str, Any] = {
        "model": str(path),
        "tflm_version": tflm_version(),
        "ops": ops,
        "custom_ops": [op.split(":", 1)[1] for op in ops if op.startswith("CUSTOM:")],
        "int8_io": int8_io,
        "inputs": [t.as_dict() for t in inputs],
        "outputs": [t.as_dict() for t in outputs],
        "flash": flash_bytes(len(data)),
        "alignment": TFLM_ALIGNMENT,
    }
    with _Worker(path) as worker:
        search = search_arena(path, worker=worker)
        report.update(
            runs=search.arena_bytes is not None,
            missing_ops=search.missing_ops,
            error=search.error,
            arena_bytes=search.arena_bytes,
            arena_reported_bytes=search.reported_bytes,
            arena_probes=len(search.probes),
        )
        builtin = [op for op in ops if not op.startswith("CUSTOM:") and op not in search.missing_ops]
        report["resolver"] = [resolver_method(op) for op in builtin]
        # Names made mechanically, not from TFLM's header: the firmware engineer should check them.
        report["resolver_unchecked"] = [resolver_method(op) for op in builtin if op not in RESOLVER_METHODS]
        report["equivalence"] = None
        if x_uint8 is not None and search.arena_bytes is not None:
            if len(inputs) != 1 or len(outputs) != 1:
                report["equivalence"] = {
                    "dataset": dataset,
                    "images": 0,
                    "skipped": (
                        f"{len(inputs)} inputs and {len(outputs)} outputs; compared for single-input, single-output classifiers"
                    ),
                }
            else:
                x_model = model_ready_inputs(path, x_uint8)
                tflm = tflm_outputs(path, x_model, search.arena_bytes, worker=worker)
                report["equivalence"] = {"dataset": dataset, **compare_outputs(tflm, litert_outputs(path, x_model))}
    return report


def mcu_stage_record(
    model_path: str | os.PathLike, x_test: np.ndarray, *, images: int = 1000, dataset: str | None = None
) -> dict[str, Any]:
    """What ``dnncomp run --mcu`` records for one variant (``results.json`` ``variants[i]["mcu"]``).

    An int8 variant (every convolution and dense layer computes in int8) gets the whole
    :func:`micro_report`, with the TFLM-vs-LiteRT equivalence on the first ``images`` of
    ``x_test`` (N x H x W x C uint8; ``images=0``: all of them); ``model`` is the file's name,
    not a path. Any other variant gets ``{"skipped": reason}``: a float model is not what a
    microcontroller runs. Raises :class:`MissingDependencyError` without ``tflite-micro``.
    """
    from .anatomy import inspect_model, is_int8_model

    path = Path(model_path)
    if not is_int8_model(inspect_model(path, tensors=False)):
        return {"skipped": "not an int8 model: its convolutions or dense layers compute in float"}
    subset = x_test[:images] if images > 0 else x_test
    report = micro_report(path, x_uint8=subset, dataset=dataset)
    report["model"] = path.name
    return report


def mcu_summary_line(name: str, record: dict[str, Any]) -> str:
    """One line for a variant's ``mcu`` record (``dnncomp run --mcu`` prints one per variant)."""
    if record.get("skipped"):
        return f"{name}: not measured on TFLM ({record['skipped']})"
    if not record.get("runs"):
        return f"{name}: TFLM cannot run it: {record.get('error')}"
    line = (
        f"{name}: arena {record['arena_bytes']:,} B, flash {record['flash']['total_bytes']:,} B, "
        f"{len(record['resolver'])} ops ({', '.join(record['ops'])}), {'int8' if record['int8_io'] else 'float'} I/O"
    )
    eq = record.get("equivalence") or {}
    if eq.get("images"):
        line += (
            f"; TFLM = LiteRT top-1 on {eq['top1_agreement'] * 100:.2f} % of {eq['images']:,} test images "
            f"(largest raw difference {eq['max_abs_diff']:g})"
        )
    return line


def micro_lines(report: dict[str, Any]) -> list[str]:
    """Human lines for one :func:`micro_report` (for the CLI)."""
    flash = report["flash"]
    lines = []
    if report["runs"]:
        reported = report["arena_reported_bytes"]
        lines.append(
            f"TFLM arena {report['arena_bytes']:,} B (smallest that allocates and runs, {report['alignment']}-byte steps; "
            f"TFLM reports {reported:,} B used)"
            if reported is not None
            else f"TFLM arena {report['arena_bytes']:,} B"
        )
    else:
        lines.append(f"TFLM cannot run this model: {report['error']}")
    lines.append(
        f"flash {flash['total_bytes']:,} B as a C array (model {flash['model_bytes']:,} B + {flash['c_array_adds_bytes']} B "
        "alignment and length; TFLM's own code not included)"
    )
    io = (
        "int8 input and output"
        if report["int8_io"]
        else (
            "input "
            + "/".join(t["dtype"] for t in report["inputs"])
            + ", output "
            + "/".join(t["dtype"] for t in report["outputs"])
        )
    )
    lines.append(f"I/O: {io}")
    lines.append(f"op resolver ({len(report['resolver'])}): " + ", ".join(report["resolver"]))
    if report["resolver_unchecked"]:
        lines.append(
            "resolver names not in dnncomp's table (check them in micro_mutable_op_resolver.h): "
            + ", ".join(report["resolver_unchecked"])
        )
    if report["custom_ops"]:
        lines.append("custom ops (register with AddCustom): " + ", ".join(report["custom_ops"]))
    if report["missing_ops"]:
        lines.append("ops TFLM lacks: " + ", ".join(report["missing_ops"]))
    eq = report.get("equivalence")
    if eq:
        if eq.get("skipped"):
            lines.append(f"TFLM vs LiteRT not compared: {eq['skipped']}")
        elif eq["images"]:
            lines.append(
                f"TFLM vs LiteRT on {eq['images']:,} {eq['dataset'] or ''} test images: top-1 agreement "
                f"{eq['top1_agreement'] * 100:.2f} % ({eq['disagreements']} differ), largest raw output difference "
                f"{eq['max_abs_diff']:g}"
            )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m dnncomp.micro MODEL.tflite  (internal: the TFLM child of dnncomp.micro)", file=sys.stderr)
        return 2
    return _child_main(args[0])


if __name__ == "__main__":
    sys.exit(main())
