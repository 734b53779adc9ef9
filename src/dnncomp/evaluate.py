"""LiteRT evaluation: accuracy and size of a ``.tflite`` classifier. No TensorFlow: runs on the device.

Everything about the input is read from the model itself: its shape (images are
resized with Pillow when the model wants another size; a rank-3 input such as the
study's MNIST ``(1, 28, 28)`` gets the channel axis squeezed), its dtype, and for
int8/uint8 inputs its own scale and zero point. So foreign models, such as the
study's three reference models, are evaluated as they are.

Accuracy is computed in batches (the interpreter input is resized to ``batch``
images) when the model allows it; every batched interpreter is first checked
against batch-1 inference on real images and falls back to batch 1 when the
model does not give the same answers. Latency lives in :mod:`dnncomp.bench`:
accuracy and timing are separate passes.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import math
import os
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np

from .errors import ModelError
from .preprocess import fit_to_input_shape, quantize_input, to_float_input

ModelSource = Union[str, os.PathLike, bytes]

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

    ``xnnpack=False`` uses the builtin kernels without LiteRT's default delegate.
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    if threads < 1:
        raise ModelError(f"threads must be >= 1, got {threads}")
    resolver = OpResolverType.AUTO if xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    kwargs: dict[str, Any] = {"num_threads": int(threads), "experimental_op_resolver_type": resolver}
    if isinstance(model, (bytes, bytearray)):
        kwargs["model_content"] = bytes(model)
    else:
        if not Path(model).is_file():
            raise ModelError(f"{model}: model file not found")
        kwargs["model_path"] = os.fspath(model)
    try:
        return Interpreter(**kwargs)
    except (ValueError, RuntimeError) as exc:
        raise ModelError(f"{model_label(model)}: LiteRT cannot load it as a model ({_first_line(exc)})") from exc


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
            raise ModelError(f"{label}: LiteRT cannot allocate its tensors ({_first_line(exc)})") from exc
        return
    captured = ""
    error: BaseException | None = None
    with _captured_fd2() as read_captured:
        try:
            interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            error = exc
        captured = read_captured()
    if _DELEGATE_NOTICE in captured:
        _notice_pending = False
    rest = "\n".join(line for line in captured.splitlines() if line.strip() and line.strip() != _DELEGATE_NOTICE)
    if error is not None:
        detail = rest.splitlines()[-1] if rest else _first_line(error)
        raise ModelError(f"{label}: LiteRT cannot allocate its tensors ({detail})") from error
    if rest:
        sys.stderr.write(rest + "\n")


@contextlib.contextmanager
def _captured_fd2():
    """Redirect file descriptor 2 (C-level stderr) to a temporary file; yields a reader."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no fd 2 (embedded interpreters): nothing to capture
        yield lambda: ""
        return
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        restored = False

        def read() -> str:
            nonlocal restored
            if not restored:
                os.dup2(saved, 2)
                restored = True
            sink.seek(0)
            return sink.read().decode("utf-8", "replace")

        try:
            yield read
        finally:
            if not restored:
                os.dup2(saved, 2)
            os.close(saved)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@dataclass(frozen=True)
class InputSpec:
    """What a classifier's single input tensor wants, read from the model."""

    index: int
    shape: tuple[int, ...]  # without the batch axis: (H, W) or (H, W, C)
    dtype: np.dtype
    scale: float
    zero_point: int
    output_index: int
    num_outputs: int  # classes the model predicts

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.shape[0]), int(self.shape[1])


def input_spec(interpreter, label: str = "model", *, allocated: bool = False) -> InputSpec:
    """Read the input/output contract of an image classifier from an interpreter.

    With ``allocated=True`` an output whose shape is only known after inference
    (a dynamic Reshape) is resolved by one invoke on a blank input.
    """
    inputs = interpreter.get_input_details()
    outputs = interpreter.get_output_details()
    if len(inputs) != 1:
        raise ModelError(f"{label}: has {len(inputs)} inputs; dnncomp evaluates image classifiers with exactly one input")
    if len(outputs) != 1:
        raise ModelError(f"{label}: has {len(outputs)} outputs; dnncomp evaluates classifiers with exactly one output")
    inp, out = inputs[0], outputs[0]
    shape = tuple(int(d) for d in inp["shape"][1:])
    if len(shape) not in (2, 3):
        raise ModelError(f"{label}: input shape {_shape(inp['shape'])} is not a batch of images (expected NxHxW or NxHxWxC)")
    dtype = np.dtype(inp["dtype"])
    scale, zero_point = inp["quantization"]
    if dtype in (np.int8, np.uint8):
        if not scale:
            raise ModelError(f"{label}: {dtype} input has no quantization scale; cannot map pixels to it")
    elif dtype not in (np.float32,):
        raise ModelError(f"{label}: input dtype {dtype} is not supported (float32, int8 or uint8)")
    out_shape = _shape(out["shape"])
    if allocated and int(np.prod(out_shape[1:] or (0,))) < 2:
        interpreter.set_tensor(int(inp["index"]), np.zeros(inp["shape"], dtype=dtype))
        interpreter.invoke()
        out_shape = _shape(interpreter.get_tensor(int(out["index"])).shape)
    num_outputs = int(np.prod(out_shape[1:])) if len(out_shape) > 1 else 0
    if num_outputs < 2:
        raise ModelError(f"{label}: output shape {out_shape} does not look like class scores")
    return InputSpec(
        index=int(inp["index"]),
        shape=shape,
        dtype=dtype,
        scale=float(scale),
        zero_point=int(zero_point),
        output_index=int(out["index"]),
        num_outputs=num_outputs,
    )


def _shape(shape) -> tuple[int, ...]:
    return tuple(int(d) for d in shape)


def model_input_spec(model: ModelSource, *, threads: int = 1, xnnpack: bool = True) -> InputSpec:
    """The input/output contract of a model, read after allocation (output shapes can be dynamic)."""
    interpreter = open_interpreter(model, threads=threads, xnnpack=xnnpack)
    allocate(interpreter, model_label(model))
    return input_spec(interpreter, model_label(model), allocated=True)


def prepare_inputs(x_uint8: np.ndarray, spec: InputSpec, label: str = "model") -> np.ndarray:
    """uint8 NHWC images -> the model's input: resized, /255, quantized if the input is integer."""
    if x_uint8.ndim == 3:  # (N, H, W) grey images
        x_uint8 = x_uint8[..., None]
    if x_uint8.ndim != 4 or x_uint8.dtype != np.uint8:
        raise ModelError(f"{label}: expected uint8 NHWC images, got {x_uint8.dtype} {x_uint8.shape}")
    x = to_float_input(fit_to_input_shape(x_uint8, spec.shape, what=label))
    if spec.dtype in (np.int8, np.uint8):
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
        if batch != 1:
            self.interpreter.resize_tensor_input(spec.index, [batch, *spec.shape])
        allocate(self.interpreter)

    def scores(self, x_model: np.ndarray) -> np.ndarray:
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


def _batched_predictor(model: ModelSource, spec: InputSpec, x_check: np.ndarray, batch: int, threads: int, xnnpack: bool):
    """A predictor at ``batch`` if it gives batch-1 answers on ``x_check``, else None."""
    try:
        batched = _Predictor(model, spec, batch, threads, xnnpack)
        single = _Predictor(model, spec, 1, threads, xnnpack)
        expected = np.concatenate([single.scores(x_check[i : i + 1]) for i in range(len(x_check))])
        got = batched.scores(x_check)
    except (ValueError, RuntimeError, ModelError):
        return None
    if got.shape != expected.shape or not np.array_equal(np.argmax(got, axis=1), np.argmax(expected, axis=1)):
        return None
    return batched


def predict_classes(
    model: ModelSource,
    x_uint8: np.ndarray,
    *,
    threads: int = 1,
    batch: int = DEFAULT_EVAL_BATCH,
    xnnpack: bool = True,
    num_classes: int | None = None,
    return_batch: bool = False,
):
    """Top-1 class of every image. Images are prepared chunk by chunk, so memory stays small.

    ``batch`` is tried first and verified against batch-1 inference; a model that
    cannot run batched (fixed batch in a Reshape, for instance) runs at batch 1.
    """
    label = model_label(model)
    if isinstance(model, (bytes, bytearray)):
        model = bytes(model)
    spec = model_input_spec(model, threads=threads, xnnpack=xnnpack)
    check_fits_dataset(spec, num_classes, None, label)
    n = len(x_uint8)
    predictions = np.empty(n, dtype=np.int64)
    if n == 0:
        return (predictions, 1) if return_batch else predictions
    batch = max(1, min(int(batch), n))
    predictor = None
    if batch > 1:
        check = prepare_inputs(x_uint8[: min(BATCH_CHECK_IMAGES, batch, n)], spec, label)
        predictor = _batched_predictor(model, spec, check, batch, threads, xnnpack)
    if predictor is None:
        batch = 1
        predictor = _Predictor(model, spec, 1, threads, xnnpack)
    chunk = max(batch, 256)  # prepare (resize, scale) this many images at a time
    for start in range(0, n, chunk):
        x_model = prepare_inputs(x_uint8[start : start + chunk], spec, label)
        for offset in range(0, len(x_model), batch):
            part = x_model[offset : offset + batch]
            scores = predictor.scores(part)
            predictions[start + offset : start + offset + len(part)] = np.argmax(scores, axis=1)
    return (predictions, batch) if return_batch else predictions


# ---- accuracy -------------------------------------------------------------------------


def wilson_interval(successes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float] | None:
    """Wilson score interval for a binomial proportion (95% by default); None for n = 0."""
    if n <= 0:
        return None
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


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
) -> dict[str, Any]:
    """Accuracy of a LiteRT classifier on the whole test set and on its first ``first_n`` images.

    ``x_uint8`` are raw uint8 NHWC test images (as the loaders return them),
    ``y`` their labels. Returns the results ``accuracy`` object plus ``batch``,
    the batch size the interpreter actually ran at.
    """
    label = model_label(model)
    y = np.asarray(y)
    if len(x_uint8) != len(y):
        raise ModelError(f"{len(x_uint8)} images but {len(y)} labels")
    spec = model_input_spec(model)
    check_fits_dataset(spec, num_classes, y, label)
    predictions, used_batch = predict_classes(
        model, x_uint8, threads=threads, batch=batch, num_classes=num_classes, return_batch=True
    )
    record = accuracy_record(predictions, y, first_n=first_n)
    record["batch"] = used_batch
    return record


# ---- size -----------------------------------------------------------------------------


def file_sizes(model: ModelSource) -> dict[str, int]:
    """File size and what standard compression makes of it.

    ``gzip_bytes``: gzip at level 9 (mtime 0, so it is reproducible);
    ``zip_bytes``: a zip archive holding the file, deflate at zlib's default level,
    as TFMOT's guides measure "compressed size".
    """
    data = read_model_bytes(model)
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
