"""dnncomp.results: the record's JSON Schema, the environment, and the CSV/Markdown writers."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from dnncomp.results import (
    RESULTS_JSON_SCHEMA,
    RESULTS_SCHEMA,
    csv_text,
    environment,
    flat_rows,
    markdown_table,
    results_document,
    validate_results,
)

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _variant(name, p50, runtime="litert"):
    return {
        "name": name, "artifact": f"{name}.tflite", "runtime": runtime, "sha256": "0" * 64,
        "accuracy": {"full": 0.99, "full_count": 10000, "first_n": 0.988, "first_n_count": 1000, "first_n_ci95": [0.979, 0.993]},
        "latency": {"threads": 1, "xnnpack": True, "batch": 1, "count": 100, "min_ms": p50 / 2, "max_ms": p50 * 3,
                    "mean_ms": p50, "std_ms": 0.1, "p50_ms": p50, "p90_ms": p50, "p95_ms": p50, "p99_ms": p50 * 2,
                    "overhead": {"overhead_pct": 2.0}},
        "size": {"file_bytes": 4_000_000, "gzip_bytes": 1_000_000, "zip_bytes": 1_000_100},
        "sparsity": None,
    }


def test_docs_schema_file_is_the_schema_in_code():
    assert json.loads((DOCS / "results.schema.json").read_text()) == RESULTS_JSON_SCHEMA
    assert RESULTS_JSON_SCHEMA["properties"]["schema"]["const"] == RESULTS_SCHEMA == "dnncomp.results/1"


def test_documents_validate_and_mistakes_are_named():
    document = results_document([_variant("float", 0.4), _variant("qat", 0.1)], dataset="mnist", model="study-mnist", seed=0)
    assert validate_results(json.loads(json.dumps(document))) == []
    broken = json.loads(json.dumps(document))
    broken["variants"][1]["accuracy"]["first_n"] = 98.8  # a percentage where a fraction belongs
    del broken["variants"][0]["size"]
    broken["variants"][0]["runtime"] = "tflite"
    problems = validate_results(broken)
    assert any("first_n" in p and "maximum" in p for p in problems)
    assert any("missing key 'size'" in p for p in problems)
    assert any("runtime" in p for p in problems)
    assert validate_results({"schema": "other/2"})[0].startswith("$")


def test_environment_names_versions_without_importing_tensorflow():
    import sys

    had_tf = "tensorflow" in sys.modules
    env = environment()
    assert env["packages"]["numpy"] and env["packages"]["ai-edge-litert"]
    assert env["device"] in ("workstation", "jetson") and env["cpu_count"] >= 1
    assert ("tensorflow" in sys.modules) == had_tf


def test_flat_rows_csv_and_markdown_ratios_against_the_first():
    keras = _variant("baseline-keras", 150.0, runtime="keras")
    keras["latency"].update(threads=None, xnnpack=None)
    document = results_document([keras, _variant("float", 0.4), _variant("qat", 0.1)], dataset="mnist")
    rows = flat_rows(document)
    assert [r["variant"] for r in rows] == ["baseline-keras", "float", "qat"]
    assert rows[0]["p50_ratio"] is None  # Keras timing is not comparable: no ratio
    assert rows[1]["p50_ratio"] == 1.0 and rows[2]["p50_ratio"] == pytest.approx(0.25)
    parsed = list(csv.DictReader(io.StringIO(csv_text(rows))))
    assert parsed[2]["p50_ms"] == "0.1" and parsed[0]["threads"] == ""
    table = markdown_table(rows).splitlines()
    assert len(table) == 5 and "| qat |" in table[4] and "0.25x" in table[4] and "98.80" in table[4]
