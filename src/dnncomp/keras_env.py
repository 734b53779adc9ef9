"""The one place that imports TensorFlow and Keras 2.

TFMOT supports only Keras 2 (the ``tf_keras`` package); TensorFlow picks Keras 2
for ``tf.keras`` only if TF_USE_LEGACY_KERAS=1 is set *before* it is imported.
Everything in dnncomp that needs TensorFlow goes through :func:`import_keras`, so
device-side modules never import it by accident.
"""

from __future__ import annotations

import os

from .errors import MissingDependencyError


def import_keras():
    """Return ``(tf, keras)`` with keras being tf_keras (Keras 2)."""
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TF's C++ info and CUDA-probe chatter drowns progress
    try:
        import tensorflow as tf
        import tf_keras as keras
    except ImportError as exc:  # the device install has no TensorFlow
        raise MissingDependencyError(
            f"this step needs TensorFlow and tf-keras ({exc}); install the workstation extras: "
            "pip install -c constraints.txt -e '.[full]'"
        ) from exc
    return tf, keras


def import_tfmot():
    """Return the tensorflow_model_optimization module, after import_keras()."""
    import_keras()
    try:
        import tensorflow_model_optimization as tfmot
    except ImportError as exc:
        raise MissingDependencyError(
            f"this step needs tensorflow-model-optimization ({exc}); install the workstation extras: "
            "pip install -c constraints.txt -e '.[full]'"
        ) from exc
    return tfmot
