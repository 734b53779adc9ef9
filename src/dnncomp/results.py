"""The results record (schema ``dnncomp.results/1``): environment, JSON Schema, CSV and Markdown.

``runs/<dataset>/<model>/results.json`` (from ``dnncomp run``) and the JSON of
``dnncomp bench``/``dnncomp evaluate`` share this shape; docs/results-schema.md
explains it and docs/results.schema.json is :data:`RESULTS_JSON_SCHEMA` written
out. No TensorFlow here: package versions are read from installed metadata.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import os
import platform
from collections.abc import Iterable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

RESULTS_SCHEMA = "dnncomp.results/1"

PACKAGES = ("numpy", "pillow", "ai-edge-litert", "flatbuffers", "tensorflow", "tf-keras", "tensorflow-model-optimization")
JETSON_RELEASE = Path("/etc/nv_tegra_release")


def environment() -> dict[str, Any]:
    """Where a measurement ran: Python, OS, CPU, package versions, and whether this is a Jetson."""
    from . import __version__

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

    parts = [_read_first(Path("/etc/machine-id")) or _read_first(Path("/var/lib/dbus/machine-id")) or "",
             _board_model() or "", _cpu_model() or "", platform.machine(), platform.node()]
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
    variants: list[dict[str, Any]],
    *,
    dataset: str | None,
    model: str | None = None,
    seed: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A complete results record around variant records."""
    return {
        "schema": RESULTS_SCHEMA,
        "dataset": dataset,
        "model": model,
        "created": now_iso(),
        "environment": environment(),
        "seed": seed,
        "variants": variants,
        **extra,
    }


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
                "xnnpack_applied": {"type": ["boolean", "null"], "description": "the interpreter holds a delegate node: XNNPACK ran"},
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
                    "properties": {k: _NUM for k in ("call_path_ms", "invoke_ms", "harness_ms", "overhead_pct", "difference_pct")},
                },
            },
        },
        "memory": {
            "type": ["object", "null"],
            "properties": {
                **{k: _INT for k in ("baseline_rss_bytes", "load_added_bytes", "allocate_added_bytes", "invoke_added_bytes", "rss_added_bytes", "peak_added_bytes", "arena_bytes")},
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

    A small validator for the JSON Schema subset the schema uses (type, const,
    enum, required, properties, additionalProperties, items, minItems, maxItems,
    minimum, maximum, pattern, local $ref), so the device needs no jsonschema.
    """
    root = schema or RESULTS_JSON_SCHEMA
    problems: list[str] = []
    _validate(document, root, root, "$", problems)
    return problems


_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def _validate(value: Any, schema: dict[str, Any], root: dict[str, Any], where: str, problems: list[str]) -> None:
    import re

    if "$ref" in schema:
        target: Any = root
        for part in schema["$ref"].lstrip("#/").split("/"):
            target = target[part]
        _validate(value, target, root, where, problems)
        return
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_TYPES[t](value) for t in types):
            problems.append(f"{where}: expected {'/'.join(types)}, got {type(value).__name__}")
            return
    if "const" in schema and value != schema["const"]:
        problems.append(f"{where}: expected {schema['const']!r}, got {value!r}")
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{where}: {value!r} not one of {schema['enum']}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            problems.append(f"{where}: {value} < minimum {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            problems.append(f"{where}: {value} > maximum {schema['maximum']}")
    if isinstance(value, str) and "pattern" in schema and not re.search(schema["pattern"], value):
        problems.append(f"{where}: {value!r} does not match {schema['pattern']}")
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                problems.append(f"{where}: missing key {key!r}")
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            if key in properties:
                _validate(item, properties[key], root, f"{where}.{key}", problems)
            elif extra is False:
                problems.append(f"{where}: unexpected key {key!r}")
            elif isinstance(extra, dict):
                _validate(item, extra, root, f"{where}.{key}", problems)
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            problems.append(f"{where}: fewer than {schema['minItems']} items")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            problems.append(f"{where}: more than {schema['maxItems']} items")
        if "items" in schema:
            for i, item in enumerate(value):
                _validate(item, schema["items"], root, f"{where}[{i}]", problems)


# ---- flat rows: CSV and Markdown --------------------------------------------------------

LATENCY_COLUMNS = (
    "threads", "xnnpack", "xnnpack_applied", "ops_delegated", "ops_total", "batch", "init_ms", "first_inference_ms",
    "warmup_count", "count", "min_ms", "max_ms", "mean_ms", "std_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "images_per_s",
)
ROW_COLUMNS = (
    "dataset", "variant", "runtime", "artifact",
    "acc_full", "acc_first_n", "first_n_count", "first_n_ci95_low", "first_n_ci95_high",
    *LATENCY_COLUMNS, "p50_ratio", "overhead_pct",
    "file_bytes", "gzip_bytes", "zip_bytes", "sparsity", "params", "macs", "int8_kernel_ops", "float_kernel_ops",
    "peak_added_bytes",
)


def flat_rows(document: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per variant and latency configuration (``latency_runs``, else ``latency``).

    ``p50_ratio`` is the row's p50 over the first variant's p50 in the same
    configuration (threads, xnnpack, batch): below 1 is faster than the first.
    """
    rows: list[dict[str, Any]] = []
    first_p50: dict[tuple, float] = {}
    for variant in document.get("variants", []):
        accuracy = variant.get("accuracy") or {}
        size = variant.get("size") or {}
        anatomy = variant.get("anatomy") or {}
        memory = variant.get("memory") or {}
        ci = accuracy.get("first_n_ci95") or [None, None]
        runs = variant.get("latency_runs") or [variant.get("latency") or {}]
        for latency in runs:
            key = (latency.get("threads"), latency.get("xnnpack"), latency.get("batch"))
            p50 = latency.get("p50_ms")
            if p50 is not None and variant.get("runtime", "litert") == "litert":
                first_p50.setdefault(key, p50)
            base = first_p50.get(key)
            rows.append(
                {
                    "dataset": document.get("dataset"),
                    "variant": variant.get("name"),
                    "runtime": variant.get("runtime", "litert"),
                    "artifact": variant.get("artifact"),
                    "acc_full": accuracy.get("full"),
                    "acc_first_n": accuracy.get("first_n"),
                    "first_n_count": accuracy.get("first_n_count"),
                    "first_n_ci95_low": ci[0],
                    "first_n_ci95_high": ci[1],
                    **{k: latency.get(k) for k in LATENCY_COLUMNS},
                    "p50_ratio": None if p50 is None or not base or variant.get("runtime") == "keras" else p50 / base,
                    "overhead_pct": (latency.get("overhead") or {}).get("overhead_pct"),
                    "file_bytes": size.get("file_bytes"),
                    "gzip_bytes": size.get("gzip_bytes"),
                    "zip_bytes": size.get("zip_bytes"),
                    "sparsity": variant.get("sparsity"),
                    "params": anatomy.get("params"),
                    "macs": anatomy.get("macs"),
                    "int8_kernel_ops": anatomy.get("int8_kernel_ops"),
                    "float_kernel_ops": anatomy.get("float_kernel_ops"),
                    "peak_added_bytes": memory.get("peak_added_bytes"),
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


_FORMATS = {
    "pct": lambda v: f"{100 * v:.2f}",  # a fraction shown as a percentage
    "pct1": lambda v: f"{v:.1f}",  # already a percentage
    "ms": lambda v: f"{v:.3f}",
    "ratio": lambda v: f"{v:.2f}x",
    "int": lambda v: f"{v:,.0f}",
    "mb": lambda v: f"{v / 1e6:.3f}",
}


def format_value(value: Any, kind: str | None) -> str:
    if value is None or value == "":
        return "–"
    if kind in _FORMATS:
        return _FORMATS[kind](value)
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def markdown_table(rows: Iterable[dict[str, Any]], columns=MARKDOWN_COLUMNS) -> str:
    """A GitHub-flavoured Markdown table of flat rows."""
    header = "| " + " | ".join(title for _, title, _ in columns) + " |"
    align = "|" + "|".join(":--" if kind is None else "--:" for _, _, kind in columns) + "|"
    lines = [header, align]
    for row in rows:
        lines.append("| " + " | ".join(format_value(row.get(key), kind) for key, _, kind in columns) + " |")
    return "\n".join(lines) + "\n"
