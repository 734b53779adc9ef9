"""dnncomp.bench and `dnncomp bench`: latency statistics, interleaving, throughput, overhead, memory."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from device_models import float_models, patch_mnist_loader, write_models
from dnncomp.bench import (
    LatencyConfig,
    _Runner,
    compare_latency,
    config_dict,
    latency_stats,
    measure_latency,
    measure_memory,
    ratios_against_first,
)
from dnncomp.errors import ModelError
from dnncomp.evaluate import model_input_spec, prepare_inputs
from dnncomp.results import LATENCY_COLUMNS

pytestmark = pytest.mark.realdata

# Short runs: the tests check the harness, not the machine.
QUICK = dict(warmup_min_count=5, warmup_min_seconds=0.05, min_count=50, min_seconds=0.2, overhead_seconds=0.1)


@pytest.fixture(scope="module")
def mnist_int8(reference_models_dir):
    return reference_models_dir / "mnist_quantized_model.tflite"


def _ordered(latency):
    keys = ["min_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms"]
    values = [latency[k] for k in keys]
    return values == sorted(values) and latency["min_ms"] <= latency["mean_ms"] <= latency["max_ms"]


def test_latency_stats_against_numpy():
    rng = np.random.default_rng(0)
    ns = rng.integers(50_000, 2_000_000, size=1001)
    stats = latency_stats(ns)
    ms = ns / 1e6
    assert stats["count"] == 1001
    assert stats["mean_ms"] == pytest.approx(ms.mean()) and stats["std_ms"] == pytest.approx(ms.std())
    assert stats["p50_ms"] == pytest.approx(np.median(ms)) and stats["p99_ms"] == pytest.approx(np.percentile(ms, 99))
    assert _ordered(stats)
    with pytest.raises(ValueError):
        latency_stats([])


def test_measure_latency_reports_what_benchmark_model_reports(mnist_int8, mnist_test):
    x, _ = mnist_test
    latency = measure_latency(mnist_int8, x, LatencyConfig(**QUICK))
    for key in LATENCY_COLUMNS:  # every latency column of results' CSV/Markdown rows is measured
        assert latency[key] is not None, key
    assert 0 <= latency["ops_delegated"] <= latency["ops_total"]
    assert latency["threads"] == 1 and latency["xnnpack"] is True and latency["batch"] == 1
    assert latency["count"] >= 50 and latency["total_ms"] >= 200 and latency["warmup_count"] >= 5
    assert latency["init_ms"] > 0 and latency["first_inference_ms"] > 0
    assert _ordered(latency)
    assert 0.001 < latency["p50_ms"] < 50
    overhead = latency["overhead"]
    assert overhead["invoke_ms"] > 0 and overhead["harness_ms"] > 0
    assert overhead["overhead_pct"] == pytest.approx(100 * overhead["harness_ms"] / overhead["invoke_ms"])
    assert overhead["overhead_pct"] < 50  # small even for this tiny int8 model


def test_warm_up_and_overhead_check_are_never_longer_than_the_timing_unless_asked(mnist_int8, mnist_test):
    # benchmark_model's warmup_min_secs (0.5 s) against the default 2 s of timing; a quick timing shortens both sides
    assert (LatencyConfig().warmup_min_seconds, LatencyConfig().overhead_seconds) == (0.5, 0.5)
    quick = LatencyConfig(min_seconds=0.1)
    assert (quick.warmup_min_seconds, quick.overhead_seconds) == (0.1, 0.1)
    asked = LatencyConfig(min_seconds=0.1, warmup_min_seconds=0.3, overhead_seconds=0)
    assert (asked.warmup_min_seconds, asked.overhead_seconds) == (0.3, 0)  # what the caller set stands
    assert LatencyConfig(**config_dict(quick)) == quick  # the resolved numbers are what a record holds
    x, _ = mnist_test
    count_only = measure_latency(mnist_int8, x, LatencyConfig(min_count=20, min_seconds=0, warmup_min_count=3))
    assert count_only["warmup_count"] >= 3 and count_only["count"] >= 20
    assert count_only["overhead"]["rounds"] >= 5  # min_seconds 0 still gets the overhead check's floor of rounds


def test_inputs_are_real_images_cycled(mnist_int8, mnist_test):
    x, _ = mnist_test
    runner = _Runner(mnist_int8, x, LatencyConfig(samples=16))
    expected = prepare_inputs(x[:16], model_input_spec(mnist_int8))
    assert len(runner.inputs) == 16
    for got, want in zip(runner.inputs, expected):
        np.testing.assert_array_equal(got[0], want)
        assert got.flags["C_CONTIGUOUS"] and np.count_nonzero(got) > 50
    before = runner.cursor
    runner.burst(20, [])
    assert runner.cursor == (before + 20) % 16

    batched = _Runner(mnist_int8, x, LatencyConfig(samples=20, batch=8))
    assert [b.shape[0] for b in batched.inputs] == [8, 8, 8]
    np.testing.assert_array_equal(batched.inputs[2][4:], expected[:4])  # wraps around to the first images


def test_interleaved_comparison_of_a_model_with_itself_is_fair(mnist_int8, mnist_test):
    x, _ = mnist_test
    results = compare_latency([mnist_int8, mnist_int8.read_bytes()], x, LatencyConfig(**QUICK))
    assert [r["interleaved_with"] for r in results] == [1, 1]
    ratios = ratios_against_first(results)
    assert ratios[0] == 1.0
    assert 0.5 < ratios[1] < 2.0  # same model, same machine state: no systematic bias
    assert all(_ordered(r) for r in results)


def test_batched_throughput_threads_and_xnnpack_off(mnist_int8, mnist_test):
    x, _ = mnist_test
    batched = measure_latency(mnist_int8, x, LatencyConfig(**{**QUICK, "batch": 32, "min_count": 10}))
    assert batched["batch"] == 32 and batched["samples"] == 256
    assert batched["images_per_s"] == pytest.approx(32 * batched["count"] / (batched["total_ms"] / 1e3))
    plain = measure_latency(mnist_int8, x, LatencyConfig(**{**QUICK, "xnnpack": False, "threads": 2}))
    assert plain["xnnpack"] is False and plain["threads"] == 2 and _ordered(plain)


def test_bad_configs_and_inputs_are_model_errors(mnist_int8, mnist_test, reference_models_dir):
    x, _ = mnist_test
    with pytest.raises(ModelError):
        LatencyConfig(threads=0)
    # A colour model fed grey images is no longer an error: they are repeated into 3 channels (issue 11).
    with pytest.raises(ModelError, match="43 classes"):
        measure_latency(reference_models_dir / "gtsrb_quantized_model.tflite", x, LatencyConfig(**QUICK), num_classes=10)


def test_memory_is_measured_in_a_fresh_process(mnist_int8, mnist_test):
    x, _ = mnist_test
    memory = measure_memory(mnist_int8, x)
    # The 1.1 MB flatbuffer is mapped and read, and the interpreter allocates its arena.
    assert 1e6 < memory["peak_added_bytes"] < 200e6
    assert memory["peak_added_bytes"] >= memory["rss_added_bytes"] > 0
    assert memory["baseline_rss_bytes"] > 10e6  # Python + numpy + LiteRT already loaded
    assert memory["arena_bytes"] is None  # not exposed by LiteRT's Python API
    if "clear_refs" not in memory["method"]:
        pytest.skip(f"peak RSS could not be reset here ({memory['method']})")


@pytest.mark.tf
@pytest.mark.slow
def test_harness_overhead_under_ten_percent_for_the_study_mnist_float_model(real_data_dir, mnist_test, tmp_path_factory):
    models = write_models(float_models(real_data_dir), tmp_path_factory.mktemp("bench-models"))
    x, _ = mnist_test
    latency = measure_latency(models["study_mnist_float"], x, LatencyConfig(**{**QUICK, "overhead_seconds": 0.5}))
    assert latency["overhead"]["overhead_pct"] < 10, latency["overhead"]


@pytest.mark.tf
@pytest.mark.slow
def test_int8_is_faster_than_float_in_the_same_interleaved_run(real_data_dir, mnist_int8, mnist_test, tmp_path_factory):
    models = write_models(float_models(real_data_dir), tmp_path_factory.mktemp("bench-models"))
    x, _ = mnist_test
    float_latency, int8_latency = compare_latency([models["study_mnist_float"], mnist_int8], x, LatencyConfig(**QUICK))
    assert ratios_against_first([float_latency, int8_latency])[1] < 0.8


# ---- the CLI ---------------------------------------------------------------------------------


@pytest.fixture
def mnist_loader(monkeypatch, real_data_dir):
    return patch_mnist_loader(monkeypatch, real_data_dir)


QUICK_CLI = ["--min-count", "30", "--min-seconds", "0.1", "--warmup-count", "3", "--warmup-seconds", "0.02"]


def test_bench_cli_side_by_side_with_outputs(mnist_loader, mnist_int8, tmp_path, capsys):
    from dnncomp.cli import main
    from dnncomp.results import validate_results

    copy = tmp_path / "copy" / "mnist_quantized_model.tflite"
    copy.parent.mkdir()
    copy.write_bytes(mnist_int8.read_bytes())
    out = tmp_path / "bench"
    argv = [
        "bench",
        str(mnist_int8),
        str(copy),
        "--dataset",
        "mnist",
        "--batch",
        "1,8",
        "--limit",
        "500",
        *QUICK_CLI,
        "--json",
        f"{out}.json",
        "--csv",
        f"{out}.csv",
        "--md",
        f"{out}.md",
        "--quiet",
    ]
    assert main(argv) == 0
    assert mnist_loader == [("mnist", (28, 28))]
    printed = capsys.readouterr().out
    assert "p50 / first" in printed and "1.00x" in printed

    document = json.loads((tmp_path / "bench.json").read_text())
    assert validate_results(document) == []
    names = [v["name"] for v in document["variants"]]
    assert len(set(names)) == 2  # same stem in two directories: told apart
    for variant in document["variants"]:
        assert [r["batch"] for r in variant["latency_runs"]] == [1, 8]
        assert variant["latency"]["batch"] == 1
        assert variant["accuracy"]["first_n_count"] == 500 and variant["accuracy"]["first_n"] > 0.97
        assert variant["memory"]["peak_added_bytes"] > 0
        assert variant["anatomy"]["int8_kernel_ops"] == 4
    rows = list(csv.DictReader(io.StringIO((tmp_path / "bench.csv").read_text())))
    assert len(rows) == 4 and {r["batch"] for r in rows} == {"1", "8"}
    assert rows[0]["p50_ratio"] == "1.0"
    markdown = (tmp_path / "bench.md").read_text().splitlines()
    assert markdown[0].startswith("| variant") and len(markdown) == 2 + 4


def test_bench_cli_error_is_one_line(mnist_loader, reference_models_dir, capsys):
    from dnncomp.cli import main

    argv = ["bench", str(reference_models_dir / "gtsrb_quantized_model.tflite"), "--dataset", "mnist", "--quiet", *QUICK_CLI]
    assert main(argv) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("error: ") and "43 classes" in err[0]
    assert main(["bench", "no-such.tflite", "--dataset", "mnist"]) == 2


def test_inspect_cli(reference_models_dir, tmp_path, capsys):
    from dnncomp.cli import main

    model = reference_models_dir / "mnist_quantized_model.tflite"
    assert main(["inspect", str(model), "--json", str(tmp_path / "anatomy.json")]) == 0
    printed = capsys.readouterr().out
    assert "params 1,111,946" in printed and "FULLY_CONNECTED" in printed
    anatomy = json.loads((tmp_path / "anatomy.json").read_text())[str(model)]
    assert anatomy["kernel_ops_by_dtype"] == {"int8": 4}
