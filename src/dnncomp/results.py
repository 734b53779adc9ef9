"""The results record (schema ``dnncomp.results/1``): environment, JSON Schema, CSV and Markdown.

``runs/<dataset>/<model>/results.json`` (from ``dnncomp run``) and the JSON of
``dnncomp bench``/``dnncomp evaluate`` share this shape; docs/results-schema.md
explains it and docs/results.schema.json is :data:`RESULTS_JSON_SCHEMA` written
out. No TensorFlow here: package versions are read from installed metadata.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as _dt
import io
import json
import math
import os
import platform
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from .errors import ResultsError

RESULTS_SCHEMA = "dnncomp.results/1"

# The variant names every reader of results relies on.
FLOAT_VARIANT = "float"  # the float LiteRT model: the reference every compressed variant is compared with
KERAS_BASELINE = "baseline-keras"  # the study's way of timing the baseline: Keras model.predict, one image

PACKAGES = (
    "numpy",
    "pillow",
    "ai-edge-litert",
    "tflite-runtime",
    "flatbuffers",
    "tensorflow",
    "tf-keras",
    "tensorflow-model-optimization",
)
JETSON_RELEASE = Path("/etc/nv_tegra_release")


def environment() -> dict[str, Any]:
    """Where a measurement ran: Python, OS, CPU, package versions, LiteRT runtime, and whether this is a Jetson."""
    from . import __version__
    from .litert_backend import runtime_record

    packages = {}
    for name in PACKAGES:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = None
    try:
        cpus_available = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus_available = os.cpu_count()
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpus_available": cpus_available,
        "cpu_model": _cpu_model(),
        "packages": packages,
        "dnncomp": __version__,
        "device": "jetson" if JETSON_RELEASE.exists() else "workstation",
        "machine_id": machine_id(),
        "hostname": platform.node() or None,
        "board": _board_model(),
        # which LiteRT runtime measured (ai-edge-litert, else tflite-runtime: dnncomp.litert_backend)
        "runtime": runtime_record(),
    }
    if JETSON_RELEASE.exists():
        try:
            env["jetson_release"] = JETSON_RELEASE.read_text().splitlines()[0].strip("# ").strip()
        except (OSError, IndexError):
            env["jetson_release"] = None
    return env


MACHINE_ID_ENV = "DNNCOMP_MACHINE_ID"


def machine_id() -> str:
    """A stable id of the machine that measures: ``$DNNCOMP_MACHINE_ID`` if set, else a 16-hex digest.

    The hostname alone is not enough (two boards flashed from one image share it, and a laptop's
    changes with the network), and /etc/machine-id alone is shared by cloned images and missing in
    some containers; the digest covers both plus the board model, CPU model and architecture, so
    results copied to another machine never pass for its own. Stable across reboots and runs.
    """
    override = os.environ.get(MACHINE_ID_ENV, "").strip()
    if override:
        return override
    import hashlib

    parts = [
        _read_first(Path("/etc/machine-id")) or _read_first(Path("/var/lib/dbus/machine-id")) or "",
        _board_model() or "",
        _cpu_model() or "",
        platform.machine(),
        platform.node(),
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _read_first(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace").strip().strip("\x00") or None
    except OSError:
        return None


def _board_model() -> str | None:
    """The board's model from the device tree (Raspberry Pi, Jetson) or DMI (PCs, VMs), if readable."""
    model = _read_first(Path("/proc/device-tree/model"))
    if model:
        return model
    vendor, product = _read_first(Path("/sys/class/dmi/id/sys_vendor")), _read_first(Path("/sys/class/dmi/id/product_name"))
    return " ".join(p for p in (vendor, product) if p) or None


def _cpu_model() -> str | None:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or None
    for key in ("model name", "Hardware", "Model", "CPU part"):
        for line in text.splitlines():
            if line.split(":")[0].strip() == key:
                return line.split(":", 1)[1].strip()
    return None


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def results_document(
    variants: Sequence[dict[str, Any] | Variant],
    *,
    dataset: str | None,
    model: str | None = None,
    seed: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A complete results record around variant records, as the JSON written to results.json.

    ``variants`` are :class:`Variant` records or their JSON objects; ``extra`` holds the
    document's other keys (``bench``, ``machine_id``, ``measurements``, ``baseline_check``,
    ``best_variant``). Everything passes through :class:`ResultsDocument`, so a producer
    cannot write a shape the readers do not know. Raises ResultsError for a variant that is
    not a JSON object.
    """
    document = ResultsDocument.from_json(
        {
            "schema": RESULTS_SCHEMA,
            "dataset": dataset,
            "model": model,
            "created": now_iso(),
            "environment": environment(),
            "seed": seed,
            "variants": [v.to_json() if isinstance(v, Variant) else v for v in variants],
            **extra,
        }
    )
    return document.to_json()


# ---- JSON Schema ----------------------------------------------------------------------

_NUM = {"type": ["number", "null"]}
_INT = {"type": ["integer", "null"]}
_FRACTION = {"type": ["number", "null"], "minimum": 0, "maximum": 1}

RESULTS_JSON_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://dnncomp.invalid/schemas/results-1.json",
    "title": "dnncomp results record (dnncomp.results/1)",
    "description": "What dnncomp measured for the variants of one model on one dataset. Units are in the key "
    "names; missing measurements are null, never invented. Extra keys may be added in later minor revisions.",
    "type": "object",
    "required": ["schema", "dataset", "created", "environment", "variants"],
    "properties": {
        "schema": {"const": RESULTS_SCHEMA},
        "dataset": {"type": ["string", "null"]},
        "model": {"type": ["string", "null"], "description": "architecture name, or null for foreign models"},
        "created": {"type": "string", "description": "ISO 8601 UTC time the record was written"},
        "environment": {"$ref": "#/$defs/environment"},
        "seed": _INT,
        "variants": {"type": "array", "items": {"$ref": "#/$defs/variant"}},
        "bench": {"type": ["object", "null"], "description": "dnncomp bench: the configuration grid it ran"},
        "machine_id": {"type": ["string", "null"], "description": "the machine that measured `variants` (dnncomp run)"},
        "baseline_check": {
            "type": ["object", "null"],
            "description": "dnncomp run: whether the float baseline beats always answering the test set's most frequent class",
            "properties": {
                "float_accuracy": _FRACTION,
                "constant_predictor_accuracy": _FRACTION,
                "holds": {"type": "boolean"},
                "message": {"type": ["string", "null"]},
            },
        },
        "best_variant": {
            "type": ["object", "null"],
            "description": "dnncomp run: the compressed variant with the smallest gzip size within a point of float's "
            "test accuracy (name, gzip_bytes, gzip_ratio_vs_float, accuracy, accuracy_change_points, rule)",
        },
        "measurements": {
            "type": ["object", "null"],
            "description": "dnncomp run: every machine's records of this run dir, keyed by machine id (this one's too)",
            "additionalProperties": {
                "type": "object",
                "properties": {
                    "environment": {"type": ["object", "null"], "description": "that machine's environment"},
                    "variants": {"type": "array", "items": {"$ref": "#/$defs/variant"}},
                },
            },
        },
    },
    "$defs": {
        "environment": {
            "type": "object",
            "required": ["python", "platform", "machine", "cpu_count", "packages", "device"],
            "properties": {
                "python": {"type": "string"},
                "platform": {"type": "string"},
                "machine": {"type": "string"},
                "cpu_count": _INT,
                "cpus_available": _INT,
                "cpu_model": {"type": ["string", "null"]},
                "packages": {"type": "object", "additionalProperties": {"type": ["string", "null"]}},
                "dnncomp": {"type": "string"},
                "device": {"enum": ["workstation", "jetson"]},
                "machine_id": {"type": "string", "description": "stable id of the machine ($DNNCOMP_MACHINE_ID if set)"},
                "hostname": {"type": ["string", "null"]},
                "board": {"type": ["string", "null"], "description": "device-tree or DMI model"},
            },
        },
        "variant": {
            "type": "object",
            "required": ["name", "artifact", "runtime", "accuracy", "latency", "size"],
            "properties": {
                "name": {"type": "string"},
                "artifact": {"type": ["string", "null"]},
                "runtime": {"enum": ["litert", "keras"]},
                "sha256": {"type": ["string", "null"], "pattern": "^[0-9a-f]{64}$"},
                "accuracy": {"$ref": "#/$defs/accuracy"},
                "latency": {"$ref": "#/$defs/latency"},
                "latency_runs": {"type": "array", "items": {"$ref": "#/$defs/latency"}},
                "memory": {"$ref": "#/$defs/memory"},
                "size": {"$ref": "#/$defs/size"},
                "sparsity": _FRACTION,
                "anatomy": {"type": ["object", "null"]},
                "recipe": {"type": ["object", "null"]},
                "compression_check": {"$ref": "#/$defs/compression_check"},
                "preprocessing": {"$ref": "#/$defs/preprocessing"},
                "mcu": {
                    "type": ["object", "null"],
                    "description": "dnncomp run --mcu: TFLite Micro's arena_bytes, flash, ops and equivalence with LiteRT, "
                    "or {skipped: reason}",
                },
                "measured_on": {
                    "type": ["object", "null"],
                    "description": "dnncomp run: the machine and runtime that measured this record",
                    "properties": {"machine_id": {"type": "string"}, "runtime": {"type": ["string", "null"]}},
                },
            },
        },
        "preprocessing": {
            "type": ["object", "null"],
            "description": "how test images became the model's input: real value of pixels 0..255, per-channel "
            "mean/std, where that came from (source) and whether it was assumed; the input's layout, dtype and "
            "shape, the batch it ran at, and the output read as class scores",
            "required": ["input_range", "source", "assumed"],
            "properties": {
                "input_range": {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2},
                "mean": {"type": ["array", "null"], "items": {"type": "number"}},
                "std": {"type": ["array", "null"], "items": {"type": "number"}},
                "source": {"type": "string"},
                "assumed": {"type": "boolean"},
                "layout": {"enum": ["HW", "HWC", "CHW", "flat", None]},
                "input_dtype": {"type": ["string", "null"]},
                "input_shape": {"type": ["array", "null"], "items": {"type": "integer"}},
                "batch": _INT,
                "output": {"type": ["string", "null"]},
            },
        },
        "compression_check": {
            "type": ["object", "null"],
            "required": ["holds", "layers"],
            "properties": {
                "holds": {"type": "boolean"},
                "layers": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["layer", "meant", "holds"],
                        "properties": {
                            "layer": {"type": "string"},
                            "zeros": _FRACTION,
                            "unique": _INT,
                            "max_unique_per_channel": _INT,
                            "meant": {"type": "object"},
                            "holds": {"type": "boolean"},
                            "problems": {"type": "array", "items": {"type": "string"}},
                        },
                    },
                },
                "missing": {"type": "array", "items": {"type": "string"}},
                "integer_only": {"type": "boolean"},
                "float_ops": {"type": "array", "items": {"type": "string"}},
            },
        },
        "accuracy": {
            "type": ["object", "null"],
            "properties": {
                "full": _FRACTION,
                "full_count": _INT,
                "first_n": _FRACTION,
                "first_n_count": _INT,
                "first_n_ci95": {"type": ["array", "null"], "items": {"type": "number"}, "minItems": 2, "maxItems": 2},
                "batch": _INT,
            },
        },
        "latency": {
            "type": ["object", "null"],
            "required": ["count", "mean_ms", "p50_ms"],
            "properties": {
                "threads": _INT,
                "xnnpack": {"type": ["boolean", "null"], "description": "XNNPACK asked for"},
                "xnnpack_applied": {
                    "type": ["boolean", "null"],
                    "description": "the interpreter holds a delegate node: XNNPACK ran",
                },
                "ops_delegated": {**_INT, "description": "model ops inside the delegate's partitions"},
                "ops_total": {**_INT, "description": "model ops (delegate nodes not counted)"},
                "batch": _INT,
                "init_ms": _NUM,
                "first_inference_ms": _NUM,
                "warmup_count": _INT,
                "count": {"type": "integer", "minimum": 1},
                **{f"{k}_ms": {"type": "number", "minimum": 0} for k in ("min", "max", "mean", "p50")},
                **{f"{k}_ms": _NUM for k in ("std", "p90", "p95", "p99")},
                "images_per_s": _NUM,
                "overhead": {
                    "type": ["object", "null"],
                    "properties": {
                        k: _NUM for k in ("call_path_ms", "invoke_ms", "harness_ms", "overhead_pct", "difference_pct")
                    },
                },
            },
        },
        "memory": {
            "type": ["object", "null"],
            "properties": {
                **{
                    k: _INT
                    for k in (
                        "baseline_rss_bytes",
                        "load_added_bytes",
                        "allocate_added_bytes",
                        "invoke_added_bytes",
                        "rss_added_bytes",
                        "peak_added_bytes",
                        "arena_bytes",
                    )
                },
                "method": {"type": "string"},
            },
        },
        "size": {
            "type": ["object", "null"],
            "required": ["file_bytes"],
            "properties": {k: {"type": ["integer", "null"], "minimum": 0} for k in ("file_bytes", "gzip_bytes", "zip_bytes")},
        },
    },
}


def validate_results(document: Any, schema: dict[str, Any] | None = None) -> list[str]:
    """Problems of a results record against :data:`RESULTS_JSON_SCHEMA` (empty list: valid).

    Checked by ``jsonschema`` (Draft 2020-12); each problem is one line that names where
    (``$.variants[0].accuracy.first_n``) and what (``missing key 'size'``, ``98.8 > maximum 1``).
    """
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema or RESULTS_JSON_SCHEMA)
    errors = sorted(validator.iter_errors(document), key=lambda e: [str(p) for p in e.absolute_path])
    return [_problem(error) for error in errors]


def _problem(error) -> str:
    where = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    value, expected = error.instance, error.validator_value
    if error.validator == "required":
        missing = next((k for k in expected if isinstance(value, dict) and k not in value), expected)
        return f"{where}: missing key {missing!r}"
    if error.validator == "type":
        types = expected if isinstance(expected, list) else [expected]
        return f"{where}: expected {'/'.join(types)}, got {type(value).__name__}"
    if error.validator == "maximum":
        return f"{where}: {value} > maximum {expected}"
    if error.validator == "minimum":
        return f"{where}: {value} < minimum {expected}"
    if error.validator == "enum":
        return f"{where}: {value!r} not one of {expected}"
    if error.validator == "const":
        return f"{where}: expected {expected!r}, got {value!r}"
    return f"{where}: {error.message}"


# ---- typed records ----------------------------------------------------------------------
#
# Every producer builds its document through these and every reader loads one: the field
# names are the JSON keys, units are in the names, a missing measurement is None. Keys a
# record does not know (a newer minor revision, a tool's own notes) ride along in ``extra``
# so a document read and written again is unchanged.


class _Record:
    """to_json/from_json for the dataclasses below, driven by their fields.

    ``_nested`` maps a field to the record class its JSON object holds, ``_lists`` one to
    the class of its list's items, ``_maps`` one to the class of its mapping's values;
    ``_required`` fields are written even when None (the schema requires the key), and so
    is a None the record was read with (``_keys_read``: a reader sees the file's own nulls).
    """

    _nested: dict[str, type] = {}
    _lists: dict[str, type] = {}
    _maps: dict[str, type] = {}
    _required: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name in ("extra", "_keys_read"):
                continue
            value = getattr(self, f.name)
            read = self._keys_read  # type: ignore[attr-defined]
            # A None is written where the source had the key, or (records built in code) where the schema
            # requires it; a key the source lacked is never filled in with an invented value.
            if value is None and f.name not in read and (read or f.name not in self._required):
                continue
            if f.name in self._nested and value is not None:
                value = value.to_json()
            elif f.name in self._lists and value is not None:
                value = [item.to_json() for item in value]
            elif f.name in self._maps and value is not None:
                value = {key: item.to_json() for key, item in value.items()}
            out[f.name] = value
        out.update(self.extra)  # type: ignore[attr-defined]
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any] | None):
        """The record of a JSON object (None stays None); unknown keys go to ``extra``."""
        if data is None:
            return None
        if not isinstance(data, dict):
            raise ResultsError(f"a {cls.__name__} record must be a JSON object, not {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)} - {"extra", "_keys_read"}
        kwargs: dict[str, Any] = {}
        for key in names & data.keys():
            value = data[key]
            if key in cls._nested:
                value = cls._nested[key].from_json(value)
            elif key in cls._lists and value is not None:
                value = [cls._lists[key].from_json(item) for item in value]
            elif key in cls._maps and value is not None:
                value = {k: cls._maps[key].from_json(item) for k, item in value.items()}
            kwargs[key] = value
        return cls(**kwargs, extra={k: v for k, v in data.items() if k not in names}, _keys_read=frozenset(kwargs))


@dataclass
class Accuracy(_Record):
    """Top-1 accuracy as fractions (0..1): the whole test set and its first N images, with a 95% Wilson interval."""

    full: float | None = None
    full_count: int | None = None
    first_n: float | None = None
    first_n_count: int | None = None
    first_n_ci95: list[float] | None = None
    batch: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    _keys_read: frozenset[str] = field(default=frozenset(), repr=False, compare=False)


@dataclass
class Latency(_Record):
    """One latency configuration's statistics over ``count`` timed runs, in milliseconds per call."""

    count: int | None = None
    mean_ms: float | None = None
    p50_ms: float | None = None
    threads: int | None = None
    xnnpack: bool | None = None
    xnnpack_applied: bool | None = None
    ops_delegated: int | None = None
    ops_total: int | None = None
    batch: int | None = None
    init_ms: float | None = None
    first_inference_ms: float | None = None
    warmup_count: int | None = None
    min_ms: float | None = None
    max_ms: float | None = None
    std_ms: float | None = None
    p90_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    images_per_s: float | None = None
    overhead: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    _keys_read: frozenset[str] = field(default=frozenset(), repr=False, compare=False)
    _required = ("count", "mean_ms", "p50_ms")


@dataclass
class Size(_Record):
    """Bytes of the artifact on disk, gzipped at level 9 and zipped."""

    file_bytes: int | None = None
    gzip_bytes: int | None = None
    zip_bytes: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    _keys_read: frozenset[str] = field(default=frozenset(), repr=False, compare=False)
    _required = ("file_bytes",)


@dataclass
class Memory(_Record):
    """Resident memory a fresh process added to load, allocate and run the model, in bytes."""

    baseline_rss_bytes: int | None = None
    load_added_bytes: int | None = None
    allocate_added_bytes: int | None = None
    invoke_added_bytes: int | None = None
    rss_added_bytes: int | None = None
    peak_added_bytes: int | None = None
    arena_bytes: int | None = None
    method: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    _keys_read: frozenset[str] = field(default=frozenset(), repr=False, compare=False)


@dataclass
class Anatomy(_Record):
    """What the flatbuffer holds (dnncomp.anatomy.inspect_model): parameters, MACs per image, kernel dtypes and
    per-tensor ``weights`` (name, shape, size, role, sparsity, unique); the rest of the summary is in ``extra``."""

    params: int | None = None
    macs: int | None = None
    sparsity: float | None = None
    int8_kernel_ops: int | None = None
    float_kernel_ops: int | None = None
    weights: list[dict[str, Any]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    _keys_read: frozenset[str] = field(default=frozenset(), repr=False, compare=False)


@dataclass
class MeasuredOn(_Record):
    """The machine and runtime that measured a variant: results belong to the machine that measured them."""

    machine_id: str | None = None
    hostname: str | None = None
    board: str | None = None
    cpu_model: str | None = None
    arch: str | None = None
    python: str | None = None
    runtime: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    _keys_read: frozenset[str] = field(default=frozenset(), repr=False, compare=False)


def measured_on_record(environment: dict[str, Any], machine_id: str, runtime: str, **extra: Any) -> dict[str, Any]:
    """A variant's ``measured_on`` (:class:`MeasuredOn` as JSON) from the measuring machine's ``environment``
    record (``results.environment()``: hostname, board, cpu_model, machine, python); ``runtime``: e.g.
    "ai-edge-litert 2.3.0"; ``extra``: keys added after these (``target`` of a device measured over SSH)."""
    return {
        "machine_id": machine_id,
        "hostname": environment.get("hostname"),
        "board": environment.get("board"),
        "cpu_model": environment.get("cpu_model"),
        "arch": environment.get("machine"),
        "python": environment.get("python"),
        "runtime": runtime,
        **extra,
    }


@dataclass
class Mcu(_Record):
    """``dnncomp run --mcu``: the variant on TFLite Micro (dnncomp.micro.mcu_stage_record): the smallest tensor
    arena that runs it, the flash it takes, its ops, and top-1 agreement with LiteRT; or ``skipped`` and why."""

    skipped: str | None = None
    runs: bool | None = None
    error: str | None = None
    tflm_version: str | None = None
    arena_bytes: int | None = None
    flash: dict[str, Any] | None = None
    ops: list[str] | None = None
    int8_io: bool | None = None
    equivalence: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    _keys_read: frozenset[str] = field(default=frozenset(), repr=False, compare=False)

    @property
    def flash_bytes(self) -> int | None:
        """Model, alignment and the C array's few bytes: what the firmware image grows by."""
        return (self.flash or {}).get("total_bytes")

    @property
    def top1_agreement(self) -> float | None:
        """Fraction (0..1) of test images on which TFLM and LiteRT give the same class."""
        return (self.equivalence or {}).get("top1_agreement")


@dataclass
class Variant(_Record):
    """One model variant (a .tflite, or the Keras baseline) and what was measured of it."""

    name: str = ""
    artifact: str | None = None
    runtime: str = "litert"
    sha256: str | None = None
    accuracy: Accuracy | None = None
    latency: Latency | None = None
    latency_runs: list[Latency] | None = None
    memory: Memory | None = None
    size: Size | None = None
    sparsity: float | None = None
    anatomy: Anatomy | None = None
    recipe: dict[str, Any] | None = None
    compression_check: dict[str, Any] | None = None
    preprocessing: dict[str, Any] | None = None
    measured_on: MeasuredOn | None = None
    mcu: Mcu | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    _keys_read: frozenset[str] = field(default=frozenset(), repr=False, compare=False)
    _nested = {
        "accuracy": Accuracy,
        "latency": Latency,
        "memory": Memory,
        "size": Size,
        "anatomy": Anatomy,
        "measured_on": MeasuredOn,
        "mcu": Mcu,
    }
    _lists = {"latency_runs": Latency}
    _required = ("name", "artifact", "runtime", "accuracy", "latency", "size")

    @property
    def comparable(self) -> bool:
        """LiteRT variants share a runtime; the Keras baseline (model.predict on the .h5) does not."""
        return self.runtime != "keras"


@dataclass
class Environment(_Record):
    """Where a measurement ran (see :func:`environment`)."""

    python: str | None = None
    platform: str | None = None
    machine: str | None = None
    cpu_count: int | None = None
    cpus_available: int | None = None
    cpu_model: str | None = None
    packages: dict[str, str | None] = field(default_factory=dict)
    dnncomp: str | None = None
    device: str | None = None
    machine_id: str | None = None
    hostname: str | None = None
    board: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    _keys_read: frozenset[str] = field(default=frozenset(), repr=False, compare=False)
    _required = ("python", "platform", "machine", "cpu_count", "packages", "device")

    def describe(self) -> str:
        """ "workstation, x86_64, AMD EPYC 7B13" / "jetson, aarch64, ..., L4T R32.7.1" ("" when nothing is known)."""
        parts = [self.device, self.machine, self.cpu_model, self.extra.get("jetson_release")]
        return ", ".join(str(p) for p in parts if p)


@dataclass
class Measurements(_Record):
    """One machine's records of a run dir: its environment and the variants it measured."""

    environment: Environment | None = None
    variants: list[Variant] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    _keys_read: frozenset[str] = field(default=frozenset(), repr=False, compare=False)
    _nested = {"environment": Environment}
    _lists = {"variants": Variant}
    _required = ("environment", "variants")


@dataclass
class MachineColumn:
    """A machine in a side-by-side table: its id, a label naming it, and its variants by name."""

    machine_id: str
    label: str
    is_host: bool
    environment: Environment | None
    variants: dict[str, Variant]


@dataclass
class ResultsDocument(_Record):
    """A results record (schema ``dnncomp.results/1``): what was measured of one model's variants on one dataset.

    ``variants`` are the measurements of the machine that wrote the file (``machine_id``);
    ``measurements`` (``dnncomp run``) holds every machine's, keyed by machine id.
    """

    schema: str = RESULTS_SCHEMA
    dataset: str | None = None
    model: str | None = None
    created: str = ""
    environment: Environment | None = None
    seed: int | None = None
    variants: list[Variant] = field(default_factory=list)
    bench: dict[str, Any] | None = None
    machine_id: str | None = None
    baseline_check: dict[str, Any] | None = None
    best_variant: dict[str, Any] | None = None
    measurements: dict[str, Measurements] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    _keys_read: frozenset[str] = field(default=frozenset(), repr=False, compare=False)
    _nested = {"environment": Environment}
    _lists = {"variants": Variant}
    _maps = {"measurements": Measurements}
    _required = ("schema", "dataset", "created", "environment", "variants")

    def variant(self, name: str) -> Variant | None:
        return next((v for v in self.variants if v.name == name), None)

    def machines(self) -> list[MachineColumn]:
        """Every machine that measured this run, the writing machine first; [] without ``measurements``.

        Each is labelled by its board or host name (the machine id when neither is known) and where it
        is: "this machine", the SSH target a device was reached at, else its machine id.
        """
        held = self.measurements or {}
        order = sorted(held, key=lambda m: m != self.machine_id)
        columns = []
        for machine in order:
            env = held[machine].environment
            name = (env.board or env.hostname) if env else None
            target = (env.extra.get("remote") or {}).get("target") if env else None
            where = "this machine" if machine == self.machine_id else (target or machine)
            columns.append(
                MachineColumn(
                    machine,
                    f"{name or machine} ({where})",
                    machine == self.machine_id,
                    env,
                    {v.name: v for v in held[machine].variants},
                )
            )
        return columns


def load_results(path: str | Path) -> ResultsDocument:
    """Read and validate a results.json into a :class:`ResultsDocument`.

    Raises ResultsError (one line: the file, the problem, and to re-run) when the file is
    missing, not JSON, not a dnncomp results record, or not of the schema's shape.
    """
    path = Path(path)
    rerun = "re-run `dnncomp run` (or `dnncomp run --eval-only`) to rewrite it"
    if not path.is_file():
        raise ResultsError(f"{path}: not found; run `dnncomp run` (or `dnncomp run --eval-only`) first")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultsError(f"{path}: not readable JSON ({exc}); {rerun}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("variants", []), list):
        raise ResultsError(f"{path}: not a dnncomp results file (see docs/results-schema.md)")
    if data.get("schema") != RESULTS_SCHEMA:
        raise ResultsError(f"{path}: schema {data.get('schema')!r} is not {RESULTS_SCHEMA!r}; {rerun}")
    problems = validate_results(data)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ResultsError(f"{path}: not of the results schema: {problems[0]}{more}; {rerun}")
    return ResultsDocument.from_json(data)


# ---- numbers, one home: statistics and cell formatting ------------------------------------

MISSING = "–"  # the one mark for "not measured" in every table dnncomp prints or writes


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float] | None:
    """The Wilson score interval (95% for z = 1.96) of a proportion ``successes``/``n``; None for n = 0.

    Source: E. B. Wilson, "Probable inference, the law of succession, and statistical
    inference", JASA 22 (1927) 209-212; the form of Brown, Cai and DasGupta, "Interval
    estimation for a binomial proportion", Statistical Science 16 (2001), eq. (4). On 1000
    images an accuracy near 99% is known to about +-0.6 points, near 80% to +-2.5.
    """
    if n <= 0:
        return None
    p = successes / n
    denominator = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def format_number(value: float | None, digits: int = 2, suffix: str = "") -> str:
    """A number for a table cell with ``digits`` decimals, or :data:`MISSING` when it was not measured."""
    return MISSING if value is None else f"{value:.{digits}f}{suffix}"


_FORMATS = {
    "pct": lambda v: format_number(100 * v),  # a fraction shown as a percentage
    "pct1": lambda v: format_number(v, 1),  # already a percentage
    "ms": lambda v: format_number(v, 3),
    "ms_short": lambda v: format_number(v, 3 if v < 10 else 1),  # 0.612, 48.0: three figures where they matter
    "ratio": lambda v: format_number(v, 2, "x"),
    "times": lambda v: format_number(v, 2, "×"),
    "int": lambda v: f"{v:,.0f}",
    "mb": lambda v: format_number(v / 1e6, 3),
}


def format_value(value: Any, kind: str | None = None) -> str:
    """A cell by kind: ``pct`` (fraction as %), ``pct1``, ``ms``, ``ms_short``, ``ratio`` (0.25x), ``times`` (4.00×),
    ``int`` (1,234), ``mb`` (bytes as MB); booleans as on/off; None or "" as :data:`MISSING`."""
    if value is None or value == "":
        return MISSING
    if kind in _FORMATS:
        return _FORMATS[kind](value)
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def markdown_grid(headers: Sequence[str], rows: Iterable[Sequence[Any]], align: str = "") -> str:
    """The one GitHub-flavoured Markdown table writer: ``align`` holds l/r per column (default: first left,
    the rest right); cells are str()-ed, with ``|`` escaped and newlines flattened. No trailing newline."""
    align = align or "l" + "r" * (len(headers) - 1)

    def cell(text: Any) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    lines = [
        "| " + " | ".join(cell(h) for h in headers) + " |",
        "|" + "|".join("--:" if a == "r" else "---" for a in align) + "|",
    ]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# ---- flat rows: CSV and Markdown --------------------------------------------------------

LATENCY_COLUMNS = (
    "threads",
    "xnnpack",
    "xnnpack_applied",
    "ops_delegated",
    "ops_total",
    "batch",
    "init_ms",
    "first_inference_ms",
    "warmup_count",
    "count",
    "min_ms",
    "max_ms",
    "mean_ms",
    "std_ms",
    "p50_ms",
    "p90_ms",
    "p95_ms",
    "p99_ms",
    "images_per_s",
)
ROW_COLUMNS = (
    "dataset",
    "variant",
    "runtime",
    "artifact",
    "acc_full",
    "acc_first_n",
    "first_n_count",
    "first_n_ci95_low",
    "first_n_ci95_high",
    *LATENCY_COLUMNS,
    "p50_ratio",
    "overhead_pct",
    "file_bytes",
    "gzip_bytes",
    "zip_bytes",
    "sparsity",
    "params",
    "macs",
    "int8_kernel_ops",
    "float_kernel_ops",
    "peak_added_bytes",
)


def flat_rows(document: ResultsDocument | dict[str, Any]) -> list[dict[str, Any]]:
    """One row per variant and latency configuration (``latency_runs``, else ``latency``).

    ``p50_ratio`` is the row's p50 over the first variant's p50 in the same
    configuration (threads, xnnpack, batch): below 1 is faster than the first.
    """
    if not isinstance(document, ResultsDocument):
        document = ResultsDocument.from_json(document)
    rows: list[dict[str, Any]] = []
    first_p50: dict[tuple, float] = {}
    for variant in document.variants:
        accuracy = variant.accuracy or Accuracy()
        size = variant.size or Size()
        anatomy = variant.anatomy or Anatomy()
        memory = variant.memory or Memory()
        ci = accuracy.first_n_ci95 or [None, None]
        runs = variant.latency_runs or [variant.latency]
        for latency in runs:
            timing = latency.to_json() if latency is not None else {}
            key = (timing.get("threads"), timing.get("xnnpack"), timing.get("batch"))
            p50 = timing.get("p50_ms")
            if p50 is not None and variant.comparable:
                first_p50.setdefault(key, p50)
            base = first_p50.get(key)
            rows.append(
                {
                    "dataset": document.dataset,
                    "variant": variant.name,
                    "runtime": variant.runtime,
                    "artifact": variant.artifact,
                    "acc_full": accuracy.full,
                    "acc_first_n": accuracy.first_n,
                    "first_n_count": accuracy.first_n_count,
                    "first_n_ci95_low": ci[0],
                    "first_n_ci95_high": ci[1],
                    **{k: timing.get(k) for k in LATENCY_COLUMNS},
                    "p50_ratio": None if p50 is None or not base or not variant.comparable else p50 / base,
                    "overhead_pct": (timing.get("overhead") or {}).get("overhead_pct"),
                    "file_bytes": size.file_bytes,
                    "gzip_bytes": size.gzip_bytes,
                    "zip_bytes": size.zip_bytes,
                    "sparsity": variant.sparsity,
                    "params": anatomy.params,
                    "macs": anatomy.macs,
                    "int8_kernel_ops": anatomy.int8_kernel_ops,
                    "float_kernel_ops": anatomy.float_kernel_ops,
                    "peak_added_bytes": memory.peak_added_bytes,
                }
            )
    return rows


def csv_text(rows: Sequence[dict[str, Any]], columns: Sequence[str] = ROW_COLUMNS) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in columns})
    return out.getvalue()


MARKDOWN_COLUMNS = (
    ("variant", "variant", None),
    ("threads", "threads", None),
    ("xnnpack", "XNNPACK", None),
    ("batch", "batch", None),
    ("acc_first_n", "acc % (first N)", "pct"),
    ("acc_full", "acc % (full)", "pct"),
    ("p50_ms", "p50 ms", "ms"),
    ("p99_ms", "p99 ms", "ms"),
    ("p50_ratio", "p50 / first", "ratio"),
    ("images_per_s", "images/s", "int"),
    ("overhead_pct", "harness %", "pct1"),
    ("file_bytes", "file MB", "mb"),
    ("gzip_bytes", "gzip MB", "mb"),
    ("peak_added_bytes", "peak RSS MB", "mb"),
)


def markdown_table(rows: Iterable[dict[str, Any]], columns=MARKDOWN_COLUMNS) -> str:
    """Flat rows (:func:`flat_rows`) as a Markdown table: ``columns`` are (key, title, format kind)."""
    cells = [[format_value(row.get(key), kind) for key, _, kind in columns] for row in rows]
    align = "".join("l" if kind is None else "r" for _, _, kind in columns)
    return markdown_grid([title for _, title, _ in columns], cells, align) + "\n"
