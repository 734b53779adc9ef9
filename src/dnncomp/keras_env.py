"""The one place that imports TensorFlow and Keras 2.

TFMOT supports only Keras 2 (the ``tf_keras`` package); TensorFlow picks Keras 2
for ``tf.keras`` only if TF_USE_LEGACY_KERAS=1 is set *before* it is imported.
Everything in dnncomp that needs TensorFlow goes through :func:`import_keras`, so
device-side modules never import it by accident.

It also keeps TensorFlow's noise from the user (issue 12): the start-up lines its C++
libraries write straight to file descriptor 2 (absl's pre-init banner, "oneDNN custom
operations are on", "Could not find cuda drivers": twice, one pair per native library)
and which TF_CPP_MIN_LOG_LEVEL does not silence; the converter's ``fully_quantize: 0,
inference_type: 6`` line (:data:`CONVERTER_NOISE`, used by dnncomp.export); and the
"Gradients do not exist for variables" warnings of TFMOT's wrappers, whose quantizer
ranges and cluster indices get no gradient by design. A user who sets
TF_CPP_MIN_LOG_LEVEL (0-2) sees everything again.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import threading
from collections.abc import Iterator

from .errors import MissingDependencyError

STARTUP_NOISE = re.compile(
    r"All log messages before absl::InitializeLog\(\) is called|oneDNN custom operations are on|"
    r"Could not find cuda drivers|cuda_(?:dnn|fft|blas)\.cc.*Unable to register|TF-TRT Warning|"
    r"computation_placer\.cc.*already registered|This TensorFlow binary is optimized to use available CPU instructions|"
    r"To enable the following instructions|rebuild TensorFlow with the appropriate compiler flags"
)
CONVERTER_NOISE = re.compile(r"^fully_quantize: \d+, inference_type: \d+")
GRADIENT_NOISE = "Gradients do not exist for variables"
# TFMOT's cluster-preserving QAT logs this on the root logger for every layer without zeros (every layer
# of a cqat, where nothing was pruned); what the file holds is checked and reported by the recipe summary.
CQAT_NOISE = "Input layer does not contain zero weights, so apply CQAT instead"


def _user_wants_tf_logs() -> bool:
    return os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3") not in ("3", "")


@contextlib.contextmanager
def native_stderr_filtered(noise: re.Pattern) -> Iterator[list[str]]:
    """Lines written to file descriptor 2 (by C++ code too) that match ``noise`` are dropped; the rest pass.

    Yields the list the dropped lines are collected in. fd 2 is a pipe read by a thread for the body
    of the ``with``; it is restored, and every line forwarded, before the ``with`` ends. Does nothing
    when the user set TF_CPP_MIN_LOG_LEVEL to show TensorFlow's logs.
    """
    dropped: list[str] = []
    if _user_wants_tf_logs():
        yield dropped
        return
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    saved = os.dup(2)
    thread = None
    read_end = -1
    # Everything after the dup is inside the try: a SIGTERM/Ctrl-C raised at any point of the set-up
    # still restores fd 2, so the one line that says where the run stopped reaches the user.
    try:
        read_end, write_end = os.pipe()
        os.dup2(write_end, 2)
        os.close(write_end)

        def pump(fd: int) -> None:
            with os.fdopen(fd, "rb") as pipe:
                for raw in pipe:
                    if noise.search(raw.decode(errors="replace")):
                        dropped.append(raw.decode(errors="replace").rstrip())
                    else:
                        os.write(saved, raw)

        reader = threading.Thread(target=pump, args=(read_end,), name="dnncomp-stderr-filter", daemon=True)
        reader.start()
        thread = reader  # started: it owns read_end now
        yield dropped
    finally:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os.dup2(saved, 2)  # the pipe's last write end closes: the reader sees its end
        if thread is not None:
            thread.join(timeout=10)
        elif read_end >= 0:
            os.close(read_end)
        os.close(saved)


class DropMessages(logging.Filter):
    """A logging filter that drops every record whose message contains ``text``."""

    def __init__(self, text: str):
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


def _drop_once(logger: logging.Logger, text: str) -> None:
    """Add a DropMessages(text) filter to ``logger`` unless it has one already (import_* run many times)."""
    if not any(isinstance(f, DropMessages) and f.text == text for f in logger.filters):
        logger.addFilter(DropMessages(text))


def import_keras():
    """Return ``(tf, keras)`` with keras being tf_keras (Keras 2).

    Raises MissingDependencyError (the device install has no TensorFlow) with the install line.
    """
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    first = "tensorflow" not in sys.modules
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TF's C++ info and CUDA-probe chatter drowns progress
    try:
        with native_stderr_filtered(STARTUP_NOISE) if first else contextlib.nullcontext():
            import tensorflow as tf
        import tf_keras as keras
    except ImportError as exc:  # the device install has no TensorFlow
        raise MissingDependencyError(
            f"this step needs TensorFlow and tf-keras ({exc}); install the workstation extras: "
            "pip install -c constraints.txt -e '.[full]'"
        ) from exc
    if not _user_wants_tf_logs():
        _drop_once(logging.getLogger("tensorflow"), GRADIENT_NOISE)
    return tf, keras


def import_tfmot():
    """Return the tensorflow_model_optimization module, after import_keras()."""
    import_keras()
    if not _user_wants_tf_logs():
        _drop_once(logging.getLogger(), CQAT_NOISE)
    try:
        import tensorflow_model_optimization as tfmot
    except ImportError as exc:
        raise MissingDependencyError(
            f"this step needs tensorflow-model-optimization ({exc}); install the workstation extras: "
            "pip install -c constraints.txt -e '.[full]'"
        ) from exc
    return tfmot
