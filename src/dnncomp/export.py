"""Keras -> LiteRT (TensorFlow Lite) flatbuffer conversion.

One function, :func:`to_tflite`, over ``tf.lite.TFLiteConverter.from_keras_model``:
plain float32 conversion by default; every converter knob a compression recipe
needs (optimizations, representative data, op sets, input/output types, weight
types, sparse storage) as a keyword. Options may be given as TensorFlow values or
as their names (``"DEFAULT"``, ``"TFLITE_BUILTINS_INT8"``, ``"int8"``), so callers
need not import TensorFlow.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from .errors import ModelError

DEFAULT_REPRESENTATIVE_SAMPLES = 500


def to_tflite(
    model,
    *,
    optimizations: Sequence[Any] | None = None,
    representative_data: np.ndarray | Callable[[], Iterable[Any]] | None = None,
    representative_samples: int = DEFAULT_REPRESENTATIVE_SAMPLES,
    supported_ops: Sequence[Any] | None = None,
    inference_input_type: Any = None,
    inference_output_type: Any = None,
    target_spec_dtypes: Sequence[Any] | None = None,
    sparsity: bool = False,
) -> bytes:
    """Convert a Keras 2 model to a LiteRT flatbuffer and return its bytes.

    - ``optimizations``: e.g. ``["DEFAULT"]`` (dynamic-range or, with QAT models or
      representative data, full integer quantization).
    - ``representative_data``: float model inputs (N, ...) of which the first
      ``representative_samples`` are fed one at a time for calibration, or a callable
      returning an iterable of input lists, as TFLiteConverter expects.
    - ``supported_ops``: ``tf.lite.OpsSet`` members or names (``"TFLITE_BUILTINS_INT8"``).
    - ``inference_input_type`` / ``inference_output_type``: e.g. ``"int8"``; default float32.
    - ``target_spec_dtypes``: ``target_spec.supported_types``, e.g. ``["float16"]``.
    - ``sparsity``: also apply ``Optimize.EXPERIMENTAL_SPARSITY`` (store sparse weights sparsely).
    """
    from .keras_env import import_keras

    tf, _ = import_keras()
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    opts = [_enum(tf.lite.Optimize, o, "optimization") for o in (optimizations or [])]
    if sparsity and tf.lite.Optimize.EXPERIMENTAL_SPARSITY not in opts:
        opts.append(tf.lite.Optimize.EXPERIMENTAL_SPARSITY)
    if opts:
        converter.optimizations = opts
    if representative_data is not None:
        converter.representative_dataset = _representative_dataset(representative_data, representative_samples)
    if supported_ops:
        converter.target_spec.supported_ops = {_enum(tf.lite.OpsSet, o, "ops set") for o in supported_ops}
    if target_spec_dtypes:
        converter.target_spec.supported_types = [_dtype(tf, d) for d in target_spec_dtypes]
    if inference_input_type is not None:
        converter.inference_input_type = _dtype(tf, inference_input_type)
    if inference_output_type is not None:
        converter.inference_output_type = _dtype(tf, inference_output_type)
    with quiet_tensorflow():
        try:
            return bytes(converter.convert())
        except Exception as exc:  # ConverterError and friends carry the converter's own explanation
            raise ModelError(f"LiteRT conversion failed ({type(exc).__name__}): {str(exc).strip()[:2000]}") from exc


def _representative_dataset(data, samples: int) -> Callable[[], Iterator[list[np.ndarray]]]:
    if callable(data):
        return data
    array = np.asarray(data, dtype=np.float32)
    if array.ndim < 2 or len(array) == 0:
        raise ModelError("representative data must be a non-empty batch of model inputs (N, ...)")
    array = array[: max(1, int(samples))]

    def generate():
        for i in range(len(array)):
            yield [array[i : i + 1]]

    return generate


def _enum(enum_type, value, what: str):
    if isinstance(value, enum_type):
        return value
    name = str(value).upper()
    if not hasattr(enum_type, name):
        choices = ", ".join(member.name for member in enum_type)
        raise ModelError(f"unknown converter {what} {value!r}; choose from {choices}")
    return getattr(enum_type, name)


def _dtype(tf, value):
    if isinstance(value, tf.dtypes.DType):
        return value
    try:
        return tf.dtypes.as_dtype(np.dtype(value) if not isinstance(value, str) else value)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"unknown dtype {value!r} for the LiteRT converter ({exc})") from exc


@contextlib.contextmanager
def quiet_tensorflow():
    """Silence TensorFlow's Python-side chatter (SavedModel asset INFO lines, converter UserWarnings) and
    the converter's own ``fully_quantize: 0, inference_type: 6`` line on stderr (dnncomp.keras_env)."""
    from .keras_env import CONVERTER_NOISE, native_stderr_filtered

    loggers = [logging.getLogger(name) for name in ("tensorflow", "absl", "h5py")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings(), native_stderr_filtered(CONVERTER_NOISE):
            warnings.filterwarnings("ignore", category=UserWarning)
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
