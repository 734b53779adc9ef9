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
import warnings
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
                preserve = req["cmd"] == "tensors"  # every intermediate tensor kept, for first_difference
                config = (
                    runtime.InterpreterConfig.kPreserveAllTensors if preserve else runtime.InterpreterConfig.kAllocationRecording
                )
                interpreter = runtime.Interpreter.from_bytes(data, arena_size=int(req["arena"]), intrepreter_config=config)
                details = interpreter.get_input_details(0)
                if preserve:
                    interpreter.set_input(np.load(req["inputs"]).astype(details["dtype"], copy=False), 0)
                    interpreter.invoke()
                    tensors = {str(i): np.asarray(interpreter.GetTensor(int(i), 0)["tensor_data"]) for i in req["tensors"]}
                    np.savez(req["outputs"], **tensors)
                elif req["cmd"] == "run":
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


def first_difference(
    model_path: Path, x_one: np.ndarray, kernels: str = "reference", *, worker: _Worker | None = None
) -> dict[str, Any]:
    """The first op whose int8/float output differs between TFLM and LiteRT's ``kernels`` on one image.

    ``x_one`` is one model-ready input (its shape without batch). Both runtimes keep every intermediate
    tensor (TFLM's ``kPreserveAllTensors``, LiteRT's ``experimental_preserve_all_tensors``) and the op
    outputs are compared in execution order. Returns ``{"op_index", "op", "fused_activation",
    "values_differ", "values", "max_abs_diff"}`` (``op_index`` None if every op output is equal), or
    ``{"op_index": None, "unavailable": reason}``. The XNNPACK delegate does not keep its intermediate
    tensors: for ``deployed``, the model is cut after each op in turn (that op's output made the model's
    output, rewritten with the flatbuffer schema's object API) and each cut run as deployed.
    """
    from .evaluate import allocate
    from .litert_backend import backend, create_interpreter, enum_names, read_model_object, schema_module

    with warnings.catch_warnings():  # LiteRT warns that keeping every tensor is for debugging: it is what we do
        warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors", category=UserWarning)
        interpreter = create_interpreter(
            str(model_path),
            model_path=str(model_path),
            num_threads=1,
            experimental_op_resolver_type=getattr(backend().OpResolverType, LITERT_KERNELS[kernels][0]),
            experimental_preserve_all_tensors=True,
        )
    allocate(interpreter, str(model_path))
    inp = interpreter.get_input_details()[0]
    batch = np.repeat(np.asarray(x_one)[None], max(1, int(inp["shape"][0])), axis=0).astype(inp["dtype"])
    interpreter.set_tensor(inp["index"], batch)
    interpreter.invoke()
    ops = [op for op in interpreter._get_ops_details() if op.get("op_name") != "DELEGATE"]
    wanted = [int(op["outputs"][0]) for op in ops if len(op.get("outputs", []))]
    own = worker is None
    worker = worker or _Worker(model_path)
    try:
        with tempfile.TemporaryDirectory(prefix="dnncomp-tflm-") as tmp:
            inputs, outputs = Path(tmp) / "x.npy", Path(tmp) / "t.npz"
            np.save(inputs, batch)
            # Keeping every tensor needs far more than the planned arena; the largest one the search allows.
            reply = worker.request(cmd="tensors", arena=MAX_ARENA_BYTES, inputs=str(inputs), outputs=str(outputs), tensors=wanted)
            if not reply["ok"]:
                return {"op_index": None, "unavailable": f"TFLM could not keep its tensors ({_first_error_line(reply)})"}
            with np.load(outputs) as z:
                tflm = {int(k): z[k] for k in z.files}
    finally:
        if own:
            worker.close()
    data = read_model_bytes(model_path)
    model = read_model_object(data)
    activations = enum_names(schema_module().ActivationFunctionType)
    if kernels == "deployed" and not hasattr(model, "Pack"):
        return {"op_index": None, "unavailable": "this LiteRT runtime's schema cannot rewrite the model to read XNNPACK's layers"}
    for op in ops:
        if not len(op.get("outputs", [])):
            continue
        index = int(op["outputs"][0])
        if kernels == "deployed":
            ours = _deployed_tensor(data, index, batch).reshape(-1).astype(np.float64)
        else:
            ours = np.asarray(interpreter.get_tensor(index)).reshape(-1).astype(np.float64)
        theirs = tflm[index].reshape(-1).astype(np.float64)
        if ours.shape != theirs.shape or np.array_equal(ours, theirs):
            continue
        diff = np.abs(ours - theirs)
        options = getattr(model.subgraphs[0].operators[int(op["index"])], "builtinOptions", None)
        fused = getattr(options, "fusedActivationFunction", None)
        return {
            "op_index": int(op["index"]),
            "op": op["op_name"],
            "fused_activation": activations.get(fused) if isinstance(fused, int) else None,
            "values_differ": int(np.count_nonzero(diff)),
            "values": int(diff.size),
            "max_abs_diff": float(diff.max()),
        }
    return {"op_index": None, "op": None}


def model_cut_after(data: bytes, tensor: int) -> bytes:
    """The flatbuffer ``data`` with tensor ``tensor`` as its only output (subgraph 0), so a runtime that keeps
    no intermediate tensors (the XNNPACK delegate) can be read there. Rewritten with the schema's object API
    (:func:`dnncomp.litert_backend.read_model_object`); the ops after ``tensor`` stay in the file but never run."""
    import flatbuffers

    from .litert_backend import read_model_object

    model = read_model_object(data)
    model.subgraphs[0].outputs = np.array([tensor], dtype=np.int32)
    builder = flatbuffers.Builder(len(data) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _deployed_tensor(data: bytes, tensor: int, batch: np.ndarray) -> np.ndarray:
    """Tensor ``tensor`` of the model in ``data`` as LiteRT-as-deployed computes it: the model cut there, run on ``batch``."""
    from .evaluate import allocate
    from .litert_backend import backend, create_interpreter

    interpreter = create_interpreter(
        f"cut at tensor {tensor}",
        model_content=model_cut_after(data, tensor),
        num_threads=1,
        experimental_op_resolver_type=backend().OpResolverType.AUTO,
    )
    allocate(interpreter, f"cut at tensor {tensor}")
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], batch)
    interpreter.invoke()
    return np.asarray(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]))


def model_batches(x_model: np.ndarray, batch: int):
    """``x_model`` in chunks of the model's fixed input batch (the last padded with its last image)."""
    batch = max(1, int(batch))
    for start in range(0, len(x_model), batch):
        part = x_model[start : start + batch]
        if len(part) < batch:
            part = np.concatenate([part, np.repeat(part[-1:], batch - len(part), axis=0)])
        yield part


# LiteRT's kernels TFLM is compared with: name -> (OpResolverType member, what they are).
# They do not all requantize alike (measured on ResNet-8, docs/BENCHMARKS.md "Microcontrollers"): TFLM's
# CONV_2D and FULLY_CONNECTED round twice in fixed point (gemmlowp's doubling high multiply, then a shift
# rounding a half away from zero), as LiteRT's reference kernels do, except LiteRT's reference
# per-channel FULLY_CONNECTED, which rounds once; LiteRT's optimized builtin kernels (the high multiply, then a rounding shift, as NEON's vqrdmulh and vrshl do) round a
# negative exact half up in the shift; the XNNPACK delegate requantizes in float32 (round to nearest
# even). Outputs that cannot go negative (a fused ReLU) hide the second difference. A one-step
# difference grows through later layers and can flip a near-tie top-1.
LITERT_KERNELS: dict[str, tuple[str, str]] = {
    "reference": ("BUILTIN_REF", "LiteRT reference kernels"),
    "builtin": ("BUILTIN_WITHOUT_DEFAULT_DELEGATES", "LiteRT optimized builtin kernels"),
    "deployed": ("AUTO", "LiteRT as deployed"),
}
ROUNDING_NOTE = (
    "kernel rounding, not the model: the int8 kernels requantize differently (TFLM: fixed point, a half rounded "
    "away from zero, like LiteRT's reference kernels except their per-channel FULLY_CONNECTED, which rounds once; "
    "LiteRT's optimized kernels round a negative half up; XNNPACK requantizes in float32), so a layer's output "
    "can differ by one int8 step and the difference grows through later layers"
)

FLOAT_NOTE = "float kernels (or a model's float parts) may add in different orders, so outputs differ in the last float bits"


def litert_outputs(model_path: Path, x_model: np.ndarray, kernels: str = "reference") -> tuple[np.ndarray, dict[str, Any]]:
    """Raw output 0 of LiteRT for each model-ready input (the model's own batch), N x outputs, and which kernels ran.

    ``kernels`` is a key of :data:`LITERT_KERNELS`: ``reference`` (LiteRT's reference kernels, the
    arithmetic TFLM's kernels are ported from), ``builtin`` (optimized builtin kernels, no delegate) or
    ``deployed`` (as ``dnncomp evaluate`` and an app run it: the default XNNPACK delegate where it applies).
    The second value says so: ``{"kernels", "resolver", "delegate", "ops", "ops_delegated"}``, the delegate
    read from the interpreter's nodes (``None`` when none was applied). Raises :class:`ModelError`.
    """
    from .evaluate import allocate, delegation
    from .litert_backend import backend, create_interpreter

    if kernels not in LITERT_KERNELS:
        raise ValueError(f"kernels must be one of {', '.join(LITERT_KERNELS)}, got {kernels!r}")
    resolver = LITERT_KERNELS[kernels][0]
    interpreter = create_interpreter(
        str(model_path),
        model_path=str(model_path),
        num_threads=1,
        experimental_op_resolver_type=getattr(backend().OpResolverType, resolver),
    )
    allocate(interpreter, str(model_path))
    used = delegation(interpreter)
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    batch = max(1, int(inp["shape"][0]))
    rows = []
    for x in model_batches(x_model, batch):
        interpreter.set_tensor(inp["index"], np.ascontiguousarray(x, dtype=inp["dtype"]))
        interpreter.invoke()
        rows.append(np.asarray(interpreter.get_tensor(out["index"])).reshape(batch, -1))
    outputs = np.concatenate(rows)[: len(x_model)] if rows else np.zeros((0, 0))
    info = {
        "kernels": kernels,
        "resolver": resolver,
        # AUTO's one default delegate is XNNPACK; the node count says whether it was applied.
        "delegate": "XNNPACK" if used["delegate_nodes"] else None,
        "ops": used["ops"],
        "ops_delegated": used["ops_delegated"],
    }
    return outputs, info


def compare_outputs(tflm: np.ndarray, litert: np.ndarray) -> dict[str, Any]:
    """Top-1 agreement and the largest absolute difference of the raw outputs (int8 steps for int8 outputs).

    ``top1_ties``: images whose highest score is shared by two classes in either output, where the
    class picked is an accident of the kernels (argmax takes the first); ``disagreements_at_ties``:
    the disagreements among them.
    """
    n = len(tflm)
    if n == 0:
        return {"images": 0, "top1_agreement": None, "disagreements": 0, "max_abs_diff": None}
    same = np.argmax(tflm, axis=1) == np.argmax(litert, axis=1)
    agree = int(np.count_nonzero(same))
    diff = np.abs(tflm.astype(np.float64) - litert.astype(np.float64))

    def tied(scores: np.ndarray) -> np.ndarray:
        return np.count_nonzero(scores == scores.max(axis=1, keepdims=True), axis=1) > 1

    ties = tied(tflm) | tied(litert)
    return {
        "images": n,
        "top1_agreement": agree / n,
        "disagreements": n - agree,
        "max_abs_diff": float(diff.max()),
        "outputs_identical": int(np.count_nonzero(np.all(diff == 0, axis=1))),
        "top1_ties": int(np.count_nonzero(ties)),
        "disagreements_at_ties": int(np.count_nonzero(ties & ~same)),
    }


def equivalence(model_path: Path, x_model: np.ndarray, arena_bytes: int, *, worker: _Worker | None = None) -> dict[str, Any]:
    """TFLM's raw outputs against each of LiteRT's kernels (:data:`LITERT_KERNELS`) on model-ready inputs.

    The top-level figures (``top1_agreement``, ``disagreements``, ``max_abs_diff``, ``outputs_identical``,
    ``top1_ties``) compare with LiteRT's reference kernels, the arithmetic TFLM's kernels are ported from
    (``compared_with``); ``litert`` holds all three comparisons, each with the kernels and delegate that ran.
    Where TFLM and a LiteRT kernel set differ, ``first_difference`` says at which op (on the first
    image that differs), as :func:`first_difference` finds it.
    """
    tflm = tflm_outputs(model_path, x_model, arena_bytes, worker=worker)
    against: dict[str, dict[str, Any]] = {}
    for kernels in LITERT_KERNELS:
        outputs, info = litert_outputs(model_path, x_model, kernels)
        compared = compare_outputs(tflm, outputs)
        if compared["images"] and compared["outputs_identical"] < compared["images"]:
            differs = int(np.argmax(np.any(tflm != outputs, axis=1)))
            compared["first_difference"] = first_difference(model_path, x_model[differs], kernels, worker=worker)
            compared["first_difference"]["image"] = differs
        against[kernels] = {**info, **compared}
    headline = {
        key: value
        for key, value in against["reference"].items()
        if key not in ("kernels", "resolver", "delegate", "ops", "ops_delegated", "first_difference")
    }
    from .anatomy import inspect_model, is_int8_model

    int8_kernels = is_int8_model(inspect_model(model_path, tensors=False))
    return {**headline, "compared_with": "reference", "int8_kernels": int8_kernels, "litert": against}


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
                report["equivalence"] = {"dataset": dataset, **equivalence(path, x_model, search.arena_bytes, worker=worker)}
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
        deployed = (eq.get("litert") or {}).get("deployed")
        line += (
            f"; TFLM = LiteRT top-1 on {eq['top1_agreement'] * 100:.2f} % of {eq['images']:,} test images "
            f"({'reference kernels, ' if deployed else ''}largest raw difference {eq['max_abs_diff']:g})"
        )
        if deployed:
            line += f", {deployed['top1_agreement'] * 100:.2f} % as deployed ({_kernels_label(deployed)})"
    return line


def _kernels_label(compared: dict[str, Any]) -> str:
    """What ran in one of :func:`equivalence`'s comparisons: ``XNNPACK, 14 of 16 ops`` or ``BUILTIN_REF``."""
    if compared.get("delegate"):
        return f"{compared['delegate']}, {compared.get('ops_delegated')} of {compared.get('ops')} ops"
    if compared.get("kernels") == "deployed":
        return "no delegate applied: builtin kernels"
    return str(compared.get("resolver"))


def _first_difference_text(first: dict[str, Any] | None) -> str:
    if not first:
        return ""
    if first.get("unavailable"):
        return f"; where it starts is unknown ({first['unavailable']})"
    if first.get("op_index") is None:
        return ""
    fused = first.get("fused_activation")
    fused_text = "" if fused is None else (", no fused activation" if fused == "NONE" else f", fused {fused}")
    return (
        f"; first differs at op {first['op_index']} {first['op']}{fused_text} "
        f"({first['values_differ']:,} of {first['values']:,} values, by up to {first['max_abs_diff']:g}; test image {first.get('image')})"
    )


def equivalence_lines(eq: dict[str, Any], output_dtype: str | None = None) -> list[str]:
    """Human lines for :func:`equivalence`'s record (``report["equivalence"]``): one per LiteRT kernel set."""
    if eq.get("skipped"):
        return [f"TFLM vs LiteRT not compared: {eq['skipped']}"]
    if not eq.get("images"):
        return []
    unit = " int8 steps" if output_dtype == "int8" else ""
    against = eq.get("litert")
    if not against:  # a record written before the kernels were told apart: LiteRT's builtin kernels
        return [
            f"TFLM vs LiteRT on {eq['images']:,} {eq.get('dataset') or ''} test images: top-1 agreement "
            f"{eq['top1_agreement'] * 100:.2f} % ({eq['disagreements']} differ), largest raw output difference "
            f"{eq['max_abs_diff']:g}"
        ]
    names = {"reference": "reference kernels", "builtin": "optimized builtin kernels", "deployed": "as deployed"}
    lines = [f"TFLM vs LiteRT on {eq['images']:,} {eq.get('dataset') or ''} test images:"]
    for kernels, compared in against.items():
        ties = compared.get("top1_ties") or 0
        lines.append(
            f"  {names.get(kernels, kernels)} ({_kernels_label(compared)}): top-1 agreement "
            f"{compared['top1_agreement'] * 100:.2f} % ({compared['disagreements']} differ"
            + (f", {compared.get('disagreements_at_ties', 0)} of them at a tied top score" if compared["disagreements"] else "")
            + (f"; {ties} images with a tied top score" if ties else "")
            + f"), {compared['outputs_identical']:,} of {compared['images']:,} outputs identical, "
            f"largest raw difference {compared['max_abs_diff']:g}{unit if compared['max_abs_diff'] != 1 else unit.rstrip('s')}"
            + _first_difference_text(compared.get("first_difference"))
        )
    if any(c["outputs_identical"] < c["images"] for c in against.values()):
        why = ROUNDING_NOTE if eq.get("int8_kernels") else FLOAT_NOTE
        lines.append(f"  why they differ: {why}")
    return lines


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
        output_dtype = report["outputs"][0]["dtype"] if report.get("outputs") else None
        lines.extend(equivalence_lines(eq, output_dtype))
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m dnncomp.micro MODEL.tflite  (internal: the TFLM child of dnncomp.micro)", file=sys.stderr)
        return 2
    return _child_main(args[0])


if __name__ == "__main__":
    sys.exit(main())
