"""dnncomp: compress deep neural networks for embedded systems.

The public API (:mod:`dnncomp.api`), resolved on first use so that ``import dnncomp`` imports
neither TensorFlow nor anything else heavy::

    import dnncomp
    run_dir = dnncomp.run("mnist", model="tiny", techniques=["float", "ptq-int8"])   # TensorFlow
    document = dnncomp.evaluate(run_dir / "ptq-int8.tflite", "mnist")               # LiteRT only
    document = dnncomp.bench([run_dir / "float.tflite", run_dir / "ptq-int8.tflite"], "mnist")
    written = dnncomp.compress("my_model.keras", "ptq-int8", "mnist", out="my_model.tflite")
    dnncomp.write_report([run_dir], "docs/report")

``run``, ``evaluate``, ``bench`` and ``compress`` are also the modules of those names (called,
they run the function: see :mod:`dnncomp._callable`); their documentation is in
:mod:`dnncomp.api`.

The package is split along the device boundary: ``dnncomp.data``,
``dnncomp.preprocess``, ``dnncomp.evaluate``, ``dnncomp.bench`` and
``dnncomp.anatomy`` import only numpy, Pillow and ai-edge-litert, so they run
on a Jetson or a Raspberry Pi. Everything that needs TensorFlow imports it
lazily through :func:`dnncomp.keras_env.import_keras`.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# name -> "module" (a callable module) or "module:attribute"; imported by name on first use (PEP 562),
# as strings, so the device side's static import graph stays as it is.
_PUBLIC = {
    "run": "dnncomp.run",
    "evaluate": "dnncomp.evaluate",
    "bench": "dnncomp.bench",
    "compress": "dnncomp.compress",
    "write_report": "dnncomp.api:write_report",
    "RunConfig": "dnncomp.run:RunConfig",
}
__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str) -> Any:
    target = _PUBLIC.get(name)
    if target is None:
        raise AttributeError(f"module 'dnncomp' has no attribute {name!r}")
    module_name, _, attribute = target.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attribute) if attribute else module


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])
