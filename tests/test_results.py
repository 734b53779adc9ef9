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
        "name": name,
        "artifact": f"{name}.tflite",
        "runtime": runtime,
        "sha256": "0" * 64,
        "accuracy": {"full": 0.99, "full_count": 10000, "first_n": 0.988, "first_n_count": 1000, "first_n_ci95": [0.979, 0.993]},
        "latency": {
            "threads": 1,
            "xnnpack": True,
            "batch": 1,
            "count": 100,
            "min_ms": p50 / 2,
            "max_ms": p50 * 3,
            "mean_ms": p50,
            "std_ms": 0.1,
            "p50_ms": p50,
            "p90_ms": p50,
            "p95_ms": p50,
            "p99_ms": p50 * 2,
            "overhead": {"overhead_pct": 2.0},
        },
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


# ---- typed records ------------------------------------------------------------------------


def test_typed_records_round_trip_a_document_unchanged(tmp_path):
    from dnncomp.results import Latency, ResultsDocument, Variant, load_results

    qat = _variant("qat", 0.1)
    qat["anatomy"] = {
        "params": 1234,
        "macs": 5678,
        "weights": [{"name": "k", "shape": [4, 3], "role": "kernel"}],
        "op_counts": {"CONV_2D": 2},
    }
    qat["memory"] = None  # a null the producer wrote stays a null
    qat["latency"]["warmup_ms"] = 12.5  # a key the record does not know rides along in extra
    document = results_document(
        [_variant("float", 0.4), qat],
        dataset="mnist",
        model="tiny-mnist",
        seed=3,
        machine_id="host",
        best_variant={"name": "qat"},
    )
    path = tmp_path / "results.json"
    path.write_text(json.dumps(document))
    typed = load_results(path)
    assert isinstance(typed, ResultsDocument) and typed.model == "tiny-mnist" and typed.seed == 3
    variant = typed.variant("qat")
    assert isinstance(variant, Variant) and isinstance(variant.latency, Latency)
    assert variant.latency.p50_ms == 0.1 and variant.latency.extra == {"warmup_ms": 12.5}
    assert variant.anatomy.macs == 5678 and variant.anatomy.extra["op_counts"] == {"CONV_2D": 2}
    assert variant.accuracy.first_n_ci95 == [0.979, 0.993]
    assert typed.to_json() == document
    assert validate_results(typed.to_json()) == []


def test_a_previous_versions_results_file_still_loads(tmp_path):
    """Written before machine ids and per-machine measurements: no machine_id, measurements or measured_on."""
    from dnncomp.results import load_results

    old = {
        "schema": RESULTS_SCHEMA,
        "dataset": "mnist",
        "model": "study-mnist",
        "created": "2026-11-20T10:00:00+00:00",
        "environment": {
            "python": "3.11.7",
            "platform": "Linux",
            "machine": "x86_64",
            "cpu_count": 2,
            "packages": {"numpy": "2.0"},
            "device": "workstation",
        },
        "seed": 0,
        "variants": [_variant("float", 0.4)],
    }
    path = tmp_path / "results.json"
    path.write_text(json.dumps(old))
    typed = load_results(path)
    assert typed.machines() == [] and typed.variant("float").size.gzip_bytes == 1_000_000
    assert typed.environment.describe() == "workstation, x86_64"


def test_a_results_file_of_another_shape_is_one_line_saying_to_rerun(tmp_path):
    from dnncomp.errors import ResultsError, RunError
    from dnncomp.results import load_results

    document = results_document([_variant("float", 0.4)], dataset="mnist")
    document["variants"][0]["accuracy"]["full"] = 99.0  # a percentage where a fraction belongs
    path = tmp_path / "results.json"
    path.write_text(json.dumps(document))
    with pytest.raises(ResultsError, match=r"results.json: not of the results schema: \$.variants\[0\].accuracy.full") as info:
        load_results(path)
    assert "re-run" in str(info.value) and "\n" not in str(info.value)
    assert issubclass(ResultsError, RunError)
    path.write_text(json.dumps({**document, "schema": "dnncomp.results/0"}))
    with pytest.raises(ResultsError, match="re-run"):
        load_results(path)


def test_one_wilson_interval_with_z_1_96():
    from dnncomp import evaluate, results

    assert evaluate.wilson_interval is results.wilson_interval
    lo, hi = results.wilson_interval(988, 1000)
    # Wilson's interval is where the score test just holds: (p - p0)^2 = z^2 p0 (1 - p0) / n at both ends
    for end in (lo, hi):
        assert (0.988 - end) ** 2 == pytest.approx(1.96**2 * end * (1 - end) / 1000, rel=1e-9)
    assert lo < 0.988 < hi and 0.005 < (hi - lo) / 2 < 0.008
    assert results.wilson_interval(0, 0) is None


def test_missing_values_are_one_mark():
    from dnncomp.results import MISSING, format_number, format_value

    assert format_value(None, "pct") == format_number(None) == format_value("", None) == MISSING == "–"
    assert format_value(0.25, "ratio") == "0.25x" and format_value(4.0, "times") == "4.00×"
    assert format_value(48.04, "ms_short") == "48.0" and format_value(0.6123, "ms_short") == "0.612"


def test_runs_table_marks_every_missing_value_the_same_way():
    """`dnncomp run`'s table once showed "-" for a missing sparsity or study number beside "–" elsewhere."""
    import re

    from rich.console import Console

    from dnncomp.results import MISSING
    from dnncomp.tables import print_results

    float_variant = _variant("float", 0.4)  # the study never timed a float model: its study cells are missing
    float_variant["size"]["gzip_bytes"] = None
    console = Console(width=200, record=True)
    print_results(results_document([float_variant], dataset="mnist", model="study-mnist"), console=console, wide=True)
    row = next(line for line in console.export_text().splitlines() if "float" in line and "litert" in line)
    cells = [c.strip() for c in re.split(r"[│┃|]", row) if c.strip()]
    assert cells.count(MISSING) == 5  # gzip, sparsity, three study cells
    assert "-" not in cells
