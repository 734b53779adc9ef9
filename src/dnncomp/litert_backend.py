"""Which LiteRT Python runtime the device side uses, decided once: ai-edge-litert, else tflite-runtime.

ai-edge-litert is the base install's runtime. Where it cannot load (its aarch64 2.x libraries need
glibc >= 2.34 and GCC 12's libstdc++ whatever their wheel tag says; an old board fails at import
with ``version `GLIBC_2.34' not found``), the device side uses ``tflite-runtime`` when it is
installed (``pip install 'dnncomp[device-legacy]'`` or the list in docs/DEVICE.md). Both expose the
same ``Interpreter`` (path or bytes, ``num_threads``, ``experimental_op_resolver_type``), so
evaluate, bench and the memory probe only ask :func:`backend` for it.

The flatbuffer schema (inspect, the input contract) comes from ai-edge-litert's
``schema_py_generated`` (a pure-Python module, importable even where its native libraries are not)
or else from the ``tflite`` package on PyPI (zhenhuaw-me/tflite: the same flatc-generated table API,
without the object API, which :class:`TableView` stands in for).

``$DNNCOMP_RUNTIME`` (``ai-edge-litert`` or ``tflite-runtime``) forces one runtime, e.g. on a machine
that has both, to compare them. No TensorFlow here.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from .errors import MissingDependencyError, ModelError, first_line

RUNTIME_ENV = "DNNCOMP_RUNTIME"
# (distribution name, module holding Interpreter and OpResolverType), in order of preference.
RUNTIMES = (("ai-edge-litert", "ai_edge_litert.interpreter"), ("tflite-runtime", "tflite_runtime.interpreter"))
SCHEMAS = (("ai-edge-litert", "ai_edge_litert.schema_py_generated"), ("tflite", "tflite"))


@dataclass(frozen=True)
class Backend:
    """The runtime in use: ``name`` (distribution), ``version``, its ``Interpreter`` and ``OpResolverType``.

    ``fallback_reason`` says why the preferred runtime was not used (None when it was).
    """

    name: str
    version: str | None
    module: str
    Interpreter: Any
    OpResolverType: Any
    fallback_reason: str | None = None

    @property
    def label(self) -> str:
        """``"ai-edge-litert 2.3.0"``: what results record as the runtime of a measurement."""
        return f"{self.name} {self.version}" if self.version else self.name


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _candidates() -> list[tuple[str, str]]:
    forced = os.environ.get(RUNTIME_ENV, "").strip()
    if not forced:
        return list(RUNTIMES)
    chosen = [r for r in RUNTIMES if r[0] == forced]
    if not chosen:
        raise MissingDependencyError(f"${RUNTIME_ENV}={forced!r}: choose one of {', '.join(r[0] for r in RUNTIMES)}")
    return chosen


@functools.cache
def backend() -> Backend:
    """The runtime the device side uses, imported once per process.

    Raises MissingDependencyError (one line, with what each runtime said) when none loads.
    """
    failures = []
    for name, module_name in _candidates():
        try:
            # A native library that fails to load may also print on C stderr: the exception says it in one line.
            with captured_stderr():
                module = __import__(module_name, fromlist=["Interpreter"])
                interpreter, resolver = module.Interpreter, module.OpResolverType
        except Exception as exc:  # ImportError, OSError from the loader, numpy ABI errors, AttributeError
            failures.append(f"{name}: {first_line(exc, with_type=True)}")
            continue
        chosen = Backend(
            name=name,
            version=_version(name),
            module=module_name,
            Interpreter=interpreter,
            OpResolverType=resolver,
            fallback_reason="; ".join(failures) or None,
        )
        if chosen.fallback_reason:  # a decision the user did not make: said once per process
            sys.stderr.write(
                f"note: LiteRT runtime {chosen.label} ({chosen.fallback_reason.replace(': ', ' does not load: ', 1)})\n"
            )
        return chosen
    raise MissingDependencyError(
        "no LiteRT runtime loads here (" + "; ".join(failures) + "): pip install ai-edge-litert (Python >= 3.10, "
        "glibc >= 2.34 on aarch64), or tflite-runtime where that cannot load: pip install 'dnncomp[device-legacy]' "
        "(docs/DEVICE.md)"
    )


def runtime_record() -> dict[str, Any]:
    """What results' environment and ``device check`` say about the runtime; never raises.

    ``{"name", "version", "fallback_reason", "schema"}``, or ``{"name": None, "error": ...}`` when
    no runtime loads.
    """
    try:
        chosen = backend()
    except MissingDependencyError as exc:
        return {"name": None, "version": None, "error": str(exc), "schema": schema_name()}
    return {"name": chosen.name, "version": chosen.version, "fallback_reason": chosen.fallback_reason, "schema": schema_name()}


def runtime_label() -> str:
    """``"ai-edge-litert 2.3.0"`` or ``"tflite-runtime 2.14.0"``; ``"none"`` when none loads."""
    try:
        return backend().label
    except MissingDependencyError:
        return "none"


# ---- the flatbuffer schema --------------------------------------------------------------


@functools.cache
def _schema() -> tuple[str, Any]:
    failures = []
    for name, module_name in SCHEMAS:
        try:
            return name, __import__(module_name, fromlist=["Model"])
        except Exception as exc:  # ImportError, or an ai_edge_litert package whose __init__ fails
            failures.append(f"{module_name}: {first_line(exc, with_type=True)}")
    raise ModelError(
        "cannot read flatbuffers: no LiteRT schema module ("
        + "; ".join(failures)
        + "); pip install ai-edge-litert, or tflite with tflite-runtime (docs/DEVICE.md)"
    )


def schema_module():
    """The flatc-generated schema module (table API: ``Model.GetRootAs``, ``BuiltinOperator``, ``TensorType``).

    Raises ModelError when neither ai-edge-litert's nor the ``tflite`` package's is importable.
    """
    return _schema()[1]


def schema_name() -> str | None:
    """Which package the schema comes from (``"ai-edge-litert 2.3.0"``, ``"tflite 2.18.0"``); None if none."""
    try:
        name = _schema()[0]
    except ModelError:
        return None
    version = _version(name)
    return f"{name} {version}" if version else name


def enum_names(enum_class) -> dict[int, str]:
    """``{value: NAME}`` of a schema enum class (``BuiltinOperator``, ``TensorType``)."""
    return {value: name for name, value in vars(enum_class).items() if not name.startswith("_") and isinstance(value, int)}


def read_model_object(data: bytes):
    """The flatbuffer as the schema's object API (``ModelT``: ``subgraphs[0].tensors[i].shape`` ...).

    With ai-edge-litert's schema this is its ``ModelT``; with the ``tflite`` package (table API only)
    a :class:`TableView` reading the same fields lazily. Raises ModelError for a file that is not a
    TFLite flatbuffer or a corrupt one.
    """
    schema = schema_module()
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ModelError("not a LiteRT/TFLite flatbuffer (file identifier TFL3 missing)")
    try:
        if hasattr(schema, "ModelT"):
            return schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
        return TableView(schema.Model.GetRootAs(data, 0))
    except Exception as exc:  # a corrupt flatbuffer raises anything from struct.error to IndexError
        raise ModelError(f"corrupt flatbuffer ({type(exc).__name__}: {exc})") from exc


class TableView:
    """A flatc table read like the object API: ``view.operatorCodes[0].builtinCode`` for ``Table.OperatorCodes(0).BuiltinCode()``.

    A field ``fooBar`` is the table's ``FooBar``: a vector is None when absent, a numpy array when the
    table offers ``FooBarAsNumpy`` (numbers), else a list of views; a sub-table is a view; scalars and
    strings (bytes) are as the table returns them. Each field is read once and kept, as the object API
    would. Unions (``builtinOptions``) stay raw tables: nothing on the device side reads them.
    """

    __slots__ = ("_table", "_cache")

    def __init__(self, table):
        self._table = table
        self._cache: dict[str, Any] = {}

    def __getattr__(self, field: str):
        if field.startswith("_"):
            raise AttributeError(field)
        cache = self._cache
        if field in cache:
            return cache[field]
        method = field[:1].upper() + field[1:]
        table = self._table
        if not hasattr(table, method):
            raise AttributeError(f"{type(table).__name__} has no field {field!r}")
        if hasattr(table, method + "Length"):
            if getattr(table, method + "IsNone")():
                value = None
            elif hasattr(table, method + "AsNumpy"):
                value = getattr(table, method + "AsNumpy")()
            else:
                item = getattr(table, method)
                value = [_wrap(item(j)) for j in range(getattr(table, method + "Length")())]
        else:
            value = _wrap(getattr(table, method)())
        cache[field] = value
        return value


def _wrap(value):
    return TableView(value) if value is not None and hasattr(value, "_tab") else value


# ---- C-level stderr around the runtime --------------------------------------------------


@contextlib.contextmanager
def captured_stderr() -> Iterator[Callable[[], str]]:
    """Redirect file descriptor 2 (C-level stderr) to a temporary file; yields a reader.

    The reader restores fd 2 and returns what was written; fd 2 is restored on exit either way.
    """
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
            if not restored:  # inside the block only: after it, saved is closed
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


# cpuinfo (pytorch/cpuinfo, inside XNNPACK) prints one "Error in cpuinfo: ..." line per thing it could not
# parse (e.g. /sys/devices/system/cpu/possible and present on a board or container with an unusual /sys),
# and a "Warning in cpuinfo" for lesser ones; XNNPACK may then not apply. Said once per process, in one line.
_CPUINFO_LINE = re.compile(r"^(Error|Warning) in cpuinfo: (.*)$")
_cpuinfo_said = False


def runtime_notes(text: str, say: Callable[[str], None] | None = None) -> str:
    """``text`` (what the runtime wrote on C stderr) without cpuinfo's lines, which become one note.

    The note goes to ``say`` (default: Python's stderr) the first time in a process; later ones
    are dropped. Returns the remaining lines.
    """
    global _cpuinfo_said
    kept, cpuinfo = [], []
    for line in text.splitlines():
        match = _CPUINFO_LINE.match(line.strip())
        (cpuinfo if match else kept).append(match.group(2) if match else line)
    if cpuinfo and not _cpuinfo_said:
        _cpuinfo_said = True
        note = (
            f"note: the runtime could not read this CPU's description ({len(cpuinfo)} cpuinfo message"
            f"{'s' if len(cpuinfo) > 1 else ''}, first: {cpuinfo[0]}); XNNPACK may not be applied: each latency "
            "record says whether it was (xnnpack_applied)"
        )
        (say or (lambda line: sys.stderr.write(line + "\n")))(note)
    return "\n".join(kept)


def create_interpreter(label: str, **kwargs):
    """The backend's ``Interpreter(**kwargs)``, its C-stderr chatter filtered by :func:`runtime_notes`.

    Raises ModelError (one line) when the runtime cannot load the model.
    """
    chosen = backend()
    error: BaseException | None = None
    interpreter = None
    with captured_stderr() as read:
        try:
            interpreter = chosen.Interpreter(**kwargs)
        except (ValueError, RuntimeError) as exc:
            error = exc
        captured = read()
    rest = runtime_notes(captured)
    lines = [line for line in rest.splitlines() if line.strip()]
    if error is not None:
        detail = lines[-1] if lines else first_line(error, with_type=True).split(": ", 1)[-1]
        who = "LiteRT" if chosen.name == "ai-edge-litert" else f"LiteRT ({chosen.label})"
        raise ModelError(f"{label}: {who} cannot load it as a model ({detail})") from error
    if lines:
        sys.stderr.write("\n".join(lines) + "\n")
    return interpreter
