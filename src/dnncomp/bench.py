"""Latency and memory of LiteRT models, modelled on LiteRT's benchmark_model. No TensorFlow.

One measurement, in this order, per model and configuration (threads, XNNPACK on
or off, batch size):

1. init: load the flatbuffer and allocate tensors (the file is already in the page
   cache: the input contract was read from it just before);
2. first inference, timed on its own;
3. warm-up until at least ``warmup_min_count`` calls AND ``warmup_min_seconds`` (by default
   0.5 s as in benchmark_model, or ``min_seconds`` when that is shorter);
4. timed calls until at least ``min_count`` calls AND ``min_seconds`` (capped by
   ``max_seconds``): count, min, max, mean, std and percentiles, in ms per call.

Each call is the Python path a user runs: ``set_tensor`` (a real test image,
cycled over ``samples`` distinct images, never zeros) + ``invoke`` +
``get_tensor``. The harness overhead — that call path against the native invoke
alone — is measured separately in bulk-timed loops and reported, so a reader sees
that the harness neither flatters nor penalises small models.

Several models are compared in one run by interleaving short timed bursts
(A B C A B C ...), so drift of a shared machine hits all of them alike; each
burst starts with one untimed call so that switching models does not charge
cache refills to the next model.

Peak resident memory added by the interpreter is measured in a separate pass, in
a fresh subprocess per model (see :func:`measure_memory`). LiteRT's Python API
(ai-edge-litert 2.3) does not expose the tensor arena size, so ``arena_bytes`` is
null; :mod:`dnncomp.anatomy` gives the planned peak of live activations instead.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ModelError
from .evaluate import (
    ModelSource,
    allocate,
    delegation,
    input_spec,
    model_input_spec,
    model_label,
    open_interpreter,
    prepare_inputs,
    runnable_batch,
)
from .preprocess import Preprocessing

PERCENTILES = (50, 90, 95, 99)
# Warm-up and harness-overhead budget by default, in seconds (see LatencyConfig).
DEFAULT_SIDE_SECONDS = 0.5


@dataclass
class LatencyConfig:
    """How one latency measurement runs. Every field is recorded with the result."""

    threads: int = 1
    xnnpack: bool = True
    batch: int = 1
    warmup_min_count: int = 20
    # None: DEFAULT_SIDE_SECONDS, or min_seconds when that is shorter (resolved below, so the record holds a number).
    warmup_min_seconds: float | None = None
    min_count: int = 200
    min_seconds: float = 2.0
    max_seconds: float = 60.0
    samples: int = 256  # distinct real test images, cycled
    round_seconds: float = 0.05  # length of one burst when models are interleaved
    overhead_seconds: float | None = None  # budget of the harness-overhead measurement (0: skip it; None: as warm-up)

    def __post_init__(self):
        # The warm-up and the overhead check are side work: with the defaults each gets 0.5 s against 2 s of timing
        # (LiteRT benchmark_model's warmup_min_secs is 0.5 s too). A quick timing (--min-seconds 0.1) does not pay
        # ten times its own length for them: unless set, neither runs longer than the timing itself.
        # Resolved once, here: dataclasses.replace(config, min_seconds=...) keeps the resolved numbers, so a copy
        # that changes min_seconds must pass warmup_min_seconds/overhead_seconds=None to have them derived again.
        side = min(DEFAULT_SIDE_SECONDS, self.min_seconds)
        if self.warmup_min_seconds is None:
            self.warmup_min_seconds = side
        if self.overhead_seconds is None:  # its floor of 5 rounds still runs when min_seconds is 0; only 0 skips it
            self.overhead_seconds = max(side, 1e-3)
        if self.threads < 1 or self.batch < 1:
            raise ModelError(f"threads and batch must be >= 1 (got threads={self.threads}, batch={self.batch})")
        if self.min_count < 1:
            raise ModelError(f"min_count must be >= 1, got {self.min_count}")


def latency_stats(durations_ns: Sequence[int] | np.ndarray) -> dict[str, float | int]:
    """count, min, max, mean, std (population) and percentiles, in milliseconds."""
    ms = np.asarray(durations_ns, dtype=np.float64) / 1e6
    if ms.size == 0:
        raise ValueError("no timings")
    stats: dict[str, float | int] = {
        "count": int(ms.size),
        "min_ms": float(ms.min()),
        "max_ms": float(ms.max()),
        "mean_ms": float(ms.mean()),
        "std_ms": float(ms.std()),
    }
    for q, value in zip(PERCENTILES, np.percentile(ms, PERCENTILES)):
        stats[f"p{q}_ms"] = float(value)
    return stats


class _Runner:
    """One interpreter, its cycled real inputs and everything timed on it."""

    def __init__(
        self,
        model: ModelSource,
        x_uint8: np.ndarray,
        config: LatencyConfig,
        num_classes: int | None = None,
        output: str | int | None = None,
        preprocessing: Preprocessing | None = None,
    ):
        self.label = model_label(model)
        if len(x_uint8) == 0:
            raise ModelError("latency needs at least one real test image")
        # A probe interpreter first: the input contract, the page cache, allocation
        # errors and LiteRT's one-time delegate notice all before anything is timed.
        probe = open_interpreter(model, threads=config.threads, xnnpack=config.xnnpack)
        allocate(probe, self.label)
        spec = input_spec(
            probe, self.label, allocated=True, num_classes=num_classes, output=output, model=model, preprocessing=preprocessing
        )
        del probe
        if num_classes is not None and spec.num_outputs != num_classes:
            raise ModelError(
                f"{self.label}: predicts {spec.num_outputs} classes but the dataset has {num_classes}; "
                "choose the dataset the model was trained on"
            )
        # A model saved with a fixed batch (a RESHAPE that bakes it in) runs at its own batch.
        batch = runnable_batch(model, spec, config.batch, threads=config.threads, xnnpack=config.xnnpack)
        if batch != config.batch:
            config = LatencyConfig(**{**asdict(config), "batch": batch})
        self.config = config
        self.spec = spec
        self.inputs = _input_batches(prepare_inputs(x_uint8[: max(1, config.samples)], spec, self.label), config.batch)
        self.cursor = 0

        start = time.perf_counter_ns()
        interpreter = open_interpreter(model, threads=config.threads, xnnpack=config.xnnpack)
        if config.batch != spec.batch:
            interpreter.resize_tensor_input(spec.index, [config.batch, *spec.shape])
        allocate(interpreter, self.label)
        self.init_ns = time.perf_counter_ns() - start
        self.delegation = delegation(interpreter)  # what ran, not what was asked for

        self.interpreter = interpreter
        self.input_index = spec.index
        self.output_index = spec.output_index
        # Bound once: no attribute lookups inside the timed loop.
        self._set_tensor = interpreter.set_tensor
        self._invoke = interpreter.invoke
        self._get_tensor = interpreter.get_tensor

        self.first_ns = 0
        self.warmup_count = 0
        self.warmup_ns = 0
        self.timed: list[int] = []
        self.timed_total_ns = 0

    # -- calls ------------------------------------------------------------------------

    def _next_input(self) -> np.ndarray:
        x = self.inputs[self.cursor]
        self.cursor = (self.cursor + 1) % len(self.inputs)
        return x

    def call_once(self) -> int:
        x = self._next_input()
        start = time.perf_counter_ns()
        self._set_tensor(self.input_index, x)
        self._invoke()
        self._get_tensor(self.output_index)
        return time.perf_counter_ns() - start

    def burst(self, count: int, out: list[int], invoke=None) -> int:
        """``count`` timed calls appended to ``out``; returns their summed time in ns.

        ``invoke`` replaces the interpreter's invoke (the overhead measurement runs
        this very loop with the invoke wrapper's safety check alone).
        """
        inputs, n, k = self.inputs, len(self.inputs), self.cursor
        set_tensor, get_tensor = self._set_tensor, self._get_tensor
        invoke = invoke or self._invoke
        input_index, output_index = self.input_index, self.output_index
        clock = time.perf_counter_ns
        append = out.append
        total = 0
        for _ in range(count):
            x = inputs[k]
            k += 1
            if k == n:
                k = 0
            start = clock()
            set_tensor(input_index, x)
            invoke()
            get_tensor(output_index)
            elapsed = clock() - start
            append(elapsed)
            total += elapsed
        self.cursor = k
        return total

    # -- phases -----------------------------------------------------------------------

    def first_inference(self) -> None:
        self.first_ns = self.call_once()

    def warm_up(self) -> None:
        cfg = self.config
        scratch: list[int] = []
        deadline = time.perf_counter_ns() + int(cfg.warmup_min_seconds * 1e9)
        while self.warmup_count < cfg.warmup_min_count or time.perf_counter_ns() < deadline:
            self.warmup_ns += self.burst(1, scratch)
            self.warmup_count += 1

    def mean_call_s(self) -> float:
        samples = self.timed[-50:] if self.timed else [self.warmup_ns / max(1, self.warmup_count)]
        return max(1e-7, float(np.mean(samples)) / 1e9)

    def timed_round(self, seconds: float, rewarm: bool) -> None:
        if rewarm:
            self.call_once()
        count = max(1, int(seconds / self.mean_call_s()))
        self.timed_total_ns += self.burst(count, self.timed)

    def satisfied(self) -> bool:
        cfg = self.config
        return len(self.timed) >= cfg.min_count and self.timed_total_ns >= cfg.min_seconds * 1e9

    def out_of_time(self) -> bool:
        return self.timed_total_ns >= self.config.max_seconds * 1e9

    def overhead(self) -> dict[str, Any] | None:
        """What the Python call path adds to the native invoke, per call.

        Three loops alternate in rounds, each timed in bulk (one clock read per
        loop): the call path (set_tensor + invoke + get_tensor), the native invoke
        alone, and the harness alone — exactly the timed loop of :meth:`burst`
        (cycling inputs, clock reads, set_tensor, the invoke wrapper's safety
        check, get_tensor) without the native invoke. The minimum over rounds is
        kept (noise on a shared machine only ever adds time). ``overhead_pct`` is
        harness / invoke; ``difference_pct`` is (call path - invoke) / invoke, a
        cross-check that is much noisier because it subtracts two large numbers.
        """
        budget = self.config.overhead_seconds
        if budget <= 0:
            return None
        per_loop = max(1, int(0.005 / self.mean_call_s()))  # ~5 ms per loop
        x = self._next_input()
        set_tensor, invoke, get_tensor = self._set_tensor, self._invoke, self._get_tensor
        ensure_safe = getattr(self.interpreter, "_ensure_safe", None) or (lambda: None)
        input_index, output_index = self.input_index, self.output_index
        inputs, n = self.inputs, len(self.inputs)
        call_path, invoke_only, harness = [], [], []
        clock = time.perf_counter_ns
        deadline = clock() + int(budget * 1e9)
        while len(call_path) < 5 or (clock() < deadline and len(call_path) < 500):
            k = self.cursor
            start = clock()
            for _ in range(per_loop):
                set_tensor(input_index, inputs[k])
                invoke()
                get_tensor(output_index)
                k = k + 1 if k + 1 < n else 0
            call_path.append((clock() - start) / per_loop)

            set_tensor(input_index, x)
            # The native Invoke, without the Python wrapper's safety check. Holding it
            # keeps a reference to the wrapped interpreter, which the public invoke()
            # refuses to run with, so it is bound only for this loop.
            native_invoke = _native_invoke(self.interpreter)
            start = clock()
            for _ in range(per_loop):
                native_invoke()
            invoke_only.append((clock() - start) / per_loop)
            del native_invoke

            start = clock()
            self.burst(per_loop, [], invoke=ensure_safe)
            harness.append((clock() - start) / per_loop)
        call_ms = min(call_path) / 1e6
        invoke_ms = min(invoke_only) / 1e6
        harness_ms = min(harness) / 1e6
        return {
            "call_path_ms": call_ms,
            "invoke_ms": invoke_ms,
            "harness_ms": harness_ms,
            "overhead_pct": 100.0 * harness_ms / invoke_ms if invoke_ms > 0 else None,
            "difference_pct": 100.0 * (call_ms - invoke_ms) / invoke_ms if invoke_ms > 0 else None,
            "rounds": len(call_path),
            "calls_per_round": per_loop,
        }

    def result(self) -> dict[str, Any]:
        cfg = self.config
        stats = latency_stats(self.timed)
        record: dict[str, Any] = {
            "threads": cfg.threads,
            "xnnpack": cfg.xnnpack,
            # XNNPACK asked for and actually applied (a DELEGATE node in the interpreter), to how many of the ops
            "xnnpack_applied": bool(self.delegation["delegate_nodes"]) if self.delegation["delegate_nodes"] is not None else None,
            "ops_delegated": self.delegation["ops_delegated"],
            "ops_total": self.delegation["ops"],
            "batch": cfg.batch,
            "init_ms": self.init_ns / 1e6,
            "first_inference_ms": self.first_ns / 1e6,
            "warmup_count": self.warmup_count,
            "warmup_ms": self.warmup_ns / 1e6,
            **stats,
            "total_ms": self.timed_total_ns / 1e6,
            "images_per_s": cfg.batch * stats["count"] / (self.timed_total_ns / 1e9) if self.timed_total_ns else None,
            "samples": len(self.inputs) * cfg.batch,
            "timed": "set_tensor + invoke + get_tensor per call, real test images cycled",
        }
        return record


def _native_invoke(interpreter):
    native = getattr(interpreter, "_interpreter", None)
    return getattr(native, "Invoke", None) or interpreter.invoke


def _input_batches(x_model: np.ndarray, batch: int) -> list[np.ndarray]:
    """Contiguous input arrays of ``batch`` real images each, wrapping around the samples."""
    n = len(x_model)
    count = max(1, math.ceil(n / batch))
    batches = []
    for b in range(count):
        idx = np.arange(b * batch, (b + 1) * batch) % n
        batches.append(np.ascontiguousarray(x_model[idx]))
    return batches


def compare_latency(
    models: Sequence[ModelSource],
    x_uint8: np.ndarray,
    config: LatencyConfig | None = None,
    *,
    num_classes: int | None = None,
    output: str | int | None = None,
    preprocessing: Preprocessing | None = None,
) -> list[dict[str, Any]]:
    """Latency of several models under one configuration, their timed rounds interleaved.

    Returns one ``latency`` object per model, in order. With one model this is
    exactly :func:`measure_latency`. Each model's images are prepared as
    :func:`dnncomp.evaluate.prepare_inputs` does for accuracy (``output`` and
    ``preprocessing`` as there); a model with a fixed batch runs at it (its record says so).
    """
    config = config or LatencyConfig()
    runners = [_Runner(model, x_uint8, config, num_classes, output, preprocessing) for model in models]
    for runner in runners:
        runner.first_inference()
    for runner in runners:
        runner.warm_up()
    interleaved = len(runners) > 1
    while True:
        active = [r for r in runners if not r.satisfied() and not r.out_of_time()]
        if not active:
            break
        # Every model runs in every round, so all of them see the same machine state.
        for runner in runners:
            runner.timed_round(config.round_seconds if interleaved else config.min_seconds / 4, rewarm=interleaved)
    results = []
    for runner in runners:
        record = runner.result()
        record["overhead"] = runner.overhead()
        record["interleaved_with"] = len(runners) - 1
        results.append(record)
    return results


def measure_latency(model: ModelSource, x_uint8: np.ndarray, config: LatencyConfig | None = None, **kwargs) -> dict[str, Any]:
    """The results ``latency`` object of one model (batch ``config.batch``, ms per call)."""
    return compare_latency([model], x_uint8, config, **kwargs)[0]


# A timing whose tail is this many times its median, or whose standard deviation is this fraction of
# its mean, was disturbed (other processes, frequency scaling): its ratios say little. The 5x tail
# is issue 12's rule of thumb; a 0.5 coefficient of variation is far above a quiet machine's
# (0.02-0.2 for these models measured alone).
NOISY_TAIL_RATIO = 5.0
NOISY_CV = 0.5


def latency_noise(latency: dict[str, Any]) -> str | None:
    """Why a latency record (p50_ms, p99_ms, mean_ms, std_ms) looks noisy, or None if it does not."""
    p50, p99, mean, std = (latency.get(k) for k in ("p50_ms", "p99_ms", "mean_ms", "std_ms"))
    reasons = []
    if p50 and p99 is not None and p99 > NOISY_TAIL_RATIO * p50:
        reasons.append(f"p99 {p99:.3g} ms is {p99 / p50:.0f}x p50 {p50:.3g} ms")
    if mean and std is not None and std / mean > NOISY_CV:
        reasons.append(f"std/mean {std / mean:.2f}")
    return "; ".join(reasons) or None


def ratios_against_first(latencies: Sequence[dict[str, Any]], key: str = "p50_ms") -> list[float | None]:
    """``latency[key] / first[key]`` per model (1.0 for the first; < 1 is faster)."""
    if not latencies:
        return []
    base = latencies[0].get(key)
    return [None if not base or lat.get(key) is None else lat[key] / base for lat in latencies]


# ---- memory ---------------------------------------------------------------------------

_STATUS_KEYS = ("VmRSS", "VmHWM")


def _proc_status() -> dict[str, int] | None:
    """VmRSS and VmHWM of this process in bytes, or None without /proc."""
    try:
        with open("/proc/self/status") as fh:
            values = {}
            for line in fh:
                key, _, rest = line.partition(":")
                if key in _STATUS_KEYS:
                    values[key] = int(rest.split()[0]) * 1024
            return values if len(values) == len(_STATUS_KEYS) else None
    except OSError:
        return None


def _reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0), so the peak is the interpreter's alone."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _maxrss_bytes() -> int:
    import resource

    scale = 1 if sys.platform == "darwin" else 1024  # macOS reports bytes, Linux kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def _memory_probe(
    model_path: str, input_npy: str, input_index: int, output_index: int, threads: int, xnnpack: bool, batch: int, invokes: int
) -> dict[str, Any]:
    """Runs in a fresh process: RSS before and after load, allocate and invoke.

    No interpreter exists before the baseline reading (one that was freed could
    leave heap behind that the measured one reuses), only the imported modules.
    """
    from .litert_backend import backend

    backend()  # the runtime imported before the baseline on purpose

    x = np.load(input_npy)
    proc = _proc_status() is not None
    reset = _reset_peak() if proc else False

    def rss() -> int:
        return _proc_status()["VmRSS"] if proc else _maxrss_bytes()

    baseline = rss()
    interpreter = open_interpreter(model_path, threads=threads, xnnpack=xnnpack)
    after_load = rss()
    saved_batch = next(int(d["shape"][0]) for d in interpreter.get_input_details() if int(d["index"]) == input_index)
    if batch != saved_batch:
        interpreter.resize_tensor_input(input_index, [batch, *x.shape[1:]])
    interpreter.allocate_tensors()
    after_allocate = rss()
    chunks = max(1, len(x) // batch)
    for i in range(invokes):
        k = i % chunks
        interpreter.set_tensor(input_index, x[k * batch : (k + 1) * batch])
        interpreter.invoke()
        interpreter.get_tensor(output_index)
    after_invoke = rss()
    peak = _proc_status()["VmHWM"] if proc else _maxrss_bytes()
    return {
        "baseline_rss_bytes": baseline,
        "load_added_bytes": after_load - baseline,
        "allocate_added_bytes": after_allocate - after_load,
        "invoke_added_bytes": after_invoke - after_allocate,
        "rss_added_bytes": after_invoke - baseline,
        "peak_added_bytes": peak - baseline,
        "method": (
            "/proc/self/status VmRSS/VmHWM, peak reset via clear_refs after imports"
            if reset
            else ("/proc/self/status VmRSS/VmHWM (peak not resettable: includes imports)" if proc else "getrusage ru_maxrss")
        ),
    }


def measure_memory(
    model: str | os.PathLike,
    x_uint8: np.ndarray,
    *,
    threads: int = 1,
    xnnpack: bool = True,
    batch: int = 1,
    invokes: int = 10,
    timeout: float = 300.0,
    num_classes: int | None = None,
    output: str | int | None = None,
    preprocessing: Preprocessing | None = None,
) -> dict[str, Any]:
    """Resident memory the interpreter adds (load, allocate, invoke), in a fresh subprocess.

    The subprocess imports numpy and LiteRT first, resets the kernel's peak-RSS
    mark, then loads, allocates and invokes on real images, prepared as for accuracy
    (``num_classes``, ``output``, ``preprocessing`` as in :func:`compare_latency`); the peak
    is what the interpreter added on top of a Python process that already had LiteRT
    loaded. A model with a fixed batch runs at it.
    """
    if not Path(model).is_file():
        raise ModelError(f"{model}: model file not found")
    label = model_label(model)
    spec = model_input_spec(
        model, threads=threads, xnnpack=xnnpack, num_classes=num_classes, output=output, preprocessing=preprocessing
    )
    batch = runnable_batch(model, spec, batch, threads=threads, xnnpack=xnnpack)
    x = prepare_inputs(x_uint8[: max(batch, min(invokes, len(x_uint8)))], spec, label)
    if batch > 1:
        x = _input_batches(x, batch)[0]
    with tempfile.TemporaryDirectory(prefix="dnncomp-mem-") as tmp:
        npy = Path(tmp) / "input.npy"
        np.save(npy, x)
        args = [os.fspath(model), str(npy), spec.index, spec.output_index, threads, int(xnnpack), batch, invokes]
        cmd = [sys.executable, "-m", "dnncomp.bench", "memory-probe", *map(str, args)]
        env = dict(os.environ)
        src = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        except subprocess.TimeoutExpired as exc:
            raise ModelError(f"{label}: memory probe did not finish in {timeout:.0f} s") from exc
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise ModelError(f"{label}: memory probe failed ({tail})")
    record = json.loads(proc.stdout.strip().splitlines()[-1])
    record.update(threads=threads, xnnpack=xnnpack, batch=batch, invokes=invokes, arena_bytes=None)
    return record


def config_dict(config: LatencyConfig) -> dict[str, Any]:
    return asdict(config)


def _main(argv: list[str]) -> int:
    if len(argv) == 9 and argv[0] == "memory-probe":
        model_path, npy, *numbers = argv[1:]
        input_index, output_index, threads, xnnpack, batch, invokes = map(int, numbers)
        record = _memory_probe(model_path, npy, input_index, output_index, threads, bool(xnnpack), batch, invokes)
        print(json.dumps(record))
        return 0
    print(
        "usage: python -m dnncomp.bench memory-probe MODEL INPUT.npy IN_INDEX OUT_INDEX THREADS XNNPACK(0|1) BATCH INVOKES",
        file=sys.stderr,
    )
    return 2


from ._callable import make_callable  # noqa: E402

make_callable(__name__, "dnncomp.api:bench")  # dnncomp.bench(...) is the public function (dnncomp.api)


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
