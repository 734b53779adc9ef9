"""Modules that are also the public function of their name.

``dnncomp.run``, ``dnncomp.evaluate``, ``dnncomp.bench`` and ``dnncomp.compress`` are modules
(``from dnncomp.run import RunConfig`` keeps working), and Python sets a package's attribute to
its submodule once that is imported, so a function of the same name on the package would be
replaced by the module at the first internal import. The module is made callable instead:
``dnncomp.evaluate("m.tflite", "mnist")`` calls :func:`dnncomp.api.evaluate`. The target is
named by a string and imported on call, so a device-side module gains no import (import-linter
sees none) and nothing is imported before the call.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any


class _CallableModule(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        module_name, _, function = self.__dict__["_dnncomp_call"].partition(":")
        return getattr(importlib.import_module(module_name), function)(*args, **kwargs)


def make_callable(module_name: str, target: str) -> None:
    """Make the module ``module_name`` call ``target`` ("package.module:function") when called."""
    module = sys.modules[module_name]
    module.__class__ = _CallableModule
    module._dnncomp_call = target
