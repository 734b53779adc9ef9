"""Printed tables fit the terminal (no cell cut to "…"), --wide shows all, noisy timings are flagged."""

from __future__ import annotations

import pytest
from rich.console import Console

from dnncomp.bench import latency_noise
from dnncomp.console import Column, fit_columns, format_duration, print_table
from dnncomp.results import results_document


def _latency(p50=1.234, p99=2.5, mean=1.3, std=0.2):
    return {
        "p50_ms": p50,
        "p90_ms": p50 * 1.5,
        "p95_ms": p50 * 1.8,
        "p99_ms": p99,
        "mean_ms": mean,
        "std_ms": std,
        "min_ms": p50 * 0.9,
        "max_ms": p99 * 1.1,
        "count": 200,
        "threads": 1,
        "batch": 1,
        "xnnpack": True,
        "init_ms": 3.0,
        "first_inference_ms": 2.0,
    }


def _variant(name, runtime="litert", **latency):
    return {
        "name": name,
        "runtime": runtime,
        "artifact": f"{name}.tflite",
        "accuracy": {"full": 0.9912, "full_count": 10000, "first_n": 0.993, "first_n_count": 1000},
        "size": {"file_bytes": 1234567, "gzip_bytes": 345678, "zip_bytes": 345700},
        "latency": _latency(**latency),
        "sparsity": 0.5,
        "anatomy": {"params": 123456, "macs": 9876543, "int8_kernel_ops": 5, "float_kernel_ops": 0, "hybrid_kernel_ops": 0},
    }


def _run_document():
    names = ["baseline-keras", "float", "qat", "prune", "cluster", "prune-cluster-qat"]
    return results_document(
        [_variant(n, "keras" if n == "baseline-keras" else "litert") for n in names], dataset="mnist", model="study-mnist"
    )


def _printed(print_fn, document, width, **kwargs) -> str:
    console = Console(width=width, record=True)
    print_fn(document, console=console, **kwargs)
    return console.export_text()


def _fits(text, width):
    return "…" not in text and all(len(line.rstrip()) <= width for line in text.splitlines())


@pytest.mark.parametrize("width", [80, 120])
def test_run_table_fits_and_names_what_it_leaves_out(width):
    from dnncomp.tables import print_results

    text = _printed(print_results, _run_document(), width)
    assert _fits(text, width), text
    header = next(line for line in text.splitlines() if "variant" in line)
    for column in ("acc % (full)", "p50 ms", "gzip MB", "acc % (first 1000)"):
        assert column in header
    assert "99.12" in text and "0.346" in text and "prune-cluster-qat" in text  # whole numbers, whole names
    assert "not shown at" in text and "--wide" in text
    if width == 120:
        assert "p99 ms" in header and "study acc %" in header  # more room, more columns, by priority


def test_run_table_wide_shows_every_column():
    from dnncomp.tables import print_results

    text = _printed(print_results, _run_document(), 80, wide=True)
    header = next(line for line in text.splitlines() if "variant" in line)
    for column in ("runtime", "p99 ms", "file MB", "sparsity", "study acc %", "study ms", "study MB"):
        assert column in header
    assert "…" not in text and "not shown" not in text


def test_bench_tables_fit_80_columns_and_warn_when_noisy():
    from dnncomp.measure import print_bench

    quiet = results_document([_variant("a"), _variant("b")], dataset="mnist")
    text = _printed(print_bench, quiet, 80)
    assert _fits(text, 80), text
    assert "p50 / first" in text and "gzip MB" in text and "warning" not in text

    noisy = results_document([_variant("a"), _variant("b", p50=1.0, p99=9.0, mean=2.0, std=1.5)], dataset="mnist")
    text = _printed(print_bench, noisy, 80)
    assert "warning: b: noisy timing (p99 9 ms is 9x p50 1 ms; std/mean 0.75)" in text
    assert "warning: a:" not in text and "rerun on an idle machine" in text


def test_latency_noise_rule():
    assert latency_noise(_latency()) is None
    assert "p99" in latency_noise(_latency(p50=1.0, p99=5.1))
    assert latency_noise(_latency(p50=1.0, p99=5.0)) is None  # exactly 5x is not beyond it
    assert latency_noise(_latency(mean=1.0, std=0.6)) == "std/mean 0.60"
    assert latency_noise({"p50_ms": None, "p99_ms": None}) is None


def test_fit_columns_keeps_priorities_then_order():
    columns = [Column("name", 0, "left"), Column("low", 9), Column("high", 1), Column("mid", 5)]
    rows = [["x" * 20, "1" * 10, "2" * 10, "3" * 10]]
    assert fit_columns(columns, rows, 200) == [0, 1, 2, 3]
    assert fit_columns(columns, rows, 40) == [0, 2]  # name + high: 20 + 10 + 7 borders = 37
    assert fit_columns(columns, rows, 10) == [0]  # priority 0 always stays


def test_print_table_returns_what_it_showed():
    console = Console(width=30, record=True)
    shown = print_table([Column("a", 0), Column("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", 1)], [["1", "2"]], out=console, notes=["n"])
    assert shown == ["a"] and "not shown at 30 columns:" in console.export_text()


def test_durations():
    assert [format_duration(s) for s in (12.3, 95, 4000)] == ["12s", "1m 35s", "1h 06m"]


def test_columns_is_honoured_when_piped(monkeypatch, capsys):
    """A pipe has no width: $COLUMNS gives it one (a new user's `COLUMNS=80 dnncomp ... | less` was 200 wide)."""
    from dnncomp.console import PIPE_WIDTH, console

    monkeypatch.setenv("COLUMNS", "80")
    assert console().width == 80 and console(stderr=True).width == 80
    monkeypatch.delenv("COLUMNS")
    assert console().width == PIPE_WIDTH  # whole rows for a log
    assert console(width=33).width == 33


def test_recipes_table_fits_80_columns_with_every_column(monkeypatch, capsys):
    from dnncomp.cli import main

    monkeypatch.setenv("COLUMNS", "80")
    assert main(["recipes"]) == 0
    out = capsys.readouterr().out
    assert _fits(out, 80) and "not shown" not in out
    assert "parameters (default)" in out and "final_sparsity=0.8" in out and "number_of_clusters=" in out
    assert main(["recipes", "--wide"]) == 0
    wide = capsys.readouterr().out
    assert max(len(line) for line in wide.splitlines()) > 80  # descriptions on fewer, longer lines


def test_prose_columns_give_way_and_markup_is_not_counted():
    columns = [Column("name", 0, "left"), Column("about", 0, "left", wrap=10), Column("extra", 1)]
    rows = [["n", "a long description " * 5, "[green]ok[/green]"]]
    assert fit_columns(columns, rows, 40) == [0, 1, 2]  # about counts as 10, extra as 2 ("ok")
    assert fit_columns([Column("about", 0, "left")] + columns[2:], rows, 40) == [0]  # without wrap it hides extra


def test_sensitivity_table_keeps_layer_and_drop_at_any_width():
    from dnncomp.compress.sensitivity import sensitivity_table

    record = {
        "rows": [
            {"layer": "conv2d_with_a_long_name", "type": "Conv2D", "params": 4640, "accuracy": 0.91, "drop_points": 7.5},
            {"layer": "dense", "type": "Dense", "params": 125450, "accuracy": None, "drop_points": None},
            {"layer": "conv2d_1", "type": "Conv2D", "params": 18496, "accuracy": 0.97, "drop_points": 1.25},
        ]
    }
    columns, rows = sensitivity_table(record)
    assert [row[0] for row in rows] == ["conv2d_with_a_long_name", "conv2d_1", "dense"]  # most sensitive first
    narrow = Console(width=45, record=True)
    shown = print_table(columns, rows, out=narrow)
    assert shown[0] == "layer" and shown[-1] == "drop (points)" and "type" not in shown
    text = narrow.export_text()
    assert _fits(text, 45) and "+7.50" in text and "not shown at 45 columns: type" in text
    assert print_table(columns, rows, out=Console(width=45, record=True), wide=True) == [c.header for c in columns]


def test_datasets_verify_fits_80_columns(monkeypatch, tmp_path, capsys):
    from databuilders import write_folder
    from dnncomp.cli import main

    monkeypatch.setenv("COLUMNS", "80")
    write_folder(tmp_path / "pictures-of-cats-and-dogs-in-a-deep-folder" / "pics", per_class=5)
    assert (
        main(["datasets", "--only", f"folder:{tmp_path / 'pictures-of-cats-and-dogs-in-a-deep-folder' / 'pics'}", "--verify"])
        == 0
    )
    out = capsys.readouterr().out
    assert all(len(line) <= 80 for line in out.splitlines()) and "…" not in out
    assert "test images per class" in out and "ok" in out


@pytest.mark.parametrize("command", ["run", "evaluate", "bench", "inspect", "recipes", "sensitivity", "datasets"])
def test_wide_flag_on_the_table_commands(command, capsys):
    from dnncomp.cli import main

    assert main([command, "--help"]) == 0
    assert "--wide" in capsys.readouterr().out


def test_tensorflow_noise_on_fd2_is_dropped_and_the_rest_passes(capfd, monkeypatch):
    import os

    from dnncomp.keras_env import CONVERTER_NOISE, STARTUP_NOISE, native_stderr_filtered

    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    capfd.readouterr()
    with native_stderr_filtered(CONVERTER_NOISE) as dropped:
        os.write(2, b"fully_quantize: 0, inference_type: 6, input_inference_type: FLOAT32, output_inference_type: FLOAT32\n")
        os.write(2, b"error: a real problem\n")
    assert capfd.readouterr().err == "error: a real problem\n"
    assert dropped == ["fully_quantize: 0, inference_type: 6, input_inference_type: FLOAT32, output_inference_type: FLOAT32"]
    startup = (
        b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
        b"I0000 00:00:1796056524.001089    4311 port.cc:153] oneDNN custom operations are on. You may see ...\n"
        b"I0000 00:00:1796056524.001530    4311 cudart_stub.cc:31] Could not find cuda drivers on your machine\n"
    )
    with native_stderr_filtered(STARTUP_NOISE) as dropped:
        os.write(2, startup)
    assert capfd.readouterr().err == "" and len(dropped) == 3
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")  # the user asked to see TensorFlow's logs
    with native_stderr_filtered(STARTUP_NOISE):
        os.write(2, startup)
    assert capfd.readouterr().err == startup.decode()


def test_tfmot_gradient_warnings_are_filtered():
    import logging

    from dnncomp.keras_env import CQAT_NOISE, GRADIENT_NOISE, DropMessages, _drop_once

    keep = DropMessages(GRADIENT_NOISE)
    record = logging.LogRecord("tensorflow", logging.WARNING, "", 0, "Gradients do not exist for variables %s", (["x"],), None)
    assert not keep.filter(record)
    assert keep.filter(logging.LogRecord("tensorflow", logging.WARNING, "", 0, "Something else", (), None))
    cqat = logging.LogRecord("root", logging.WARNING, "", 0, CQAT_NOISE + " for conv2d", (), None)
    assert keep.filter(cqat) and not DropMessages(CQAT_NOISE).filter(cqat)
    logger = logging.getLogger("dnncomp-test-drop-once")
    for _ in range(3):  # import_keras/import_tfmot run many times in a process: one filter per text
        _drop_once(logger, GRADIENT_NOISE)
        _drop_once(logger, CQAT_NOISE)
    assert sorted(f.text for f in logger.filters) == sorted([CQAT_NOISE, GRADIENT_NOISE])


def test_a_signal_while_the_filter_is_set_up_still_restores_stderr(capfd, monkeypatch):
    """SIGTERM lands anywhere, the filter's set-up too: fd 2 must be the terminal again for the 'interrupted' line."""
    import os
    import threading

    from dnncomp.keras_env import STARTUP_NOISE, native_stderr_filtered

    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)

    def terminated(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(threading.Thread, "start", terminated)
    capfd.readouterr()
    with pytest.raises(KeyboardInterrupt), native_stderr_filtered(STARTUP_NOISE):
        pass
    os.write(2, b"interrupted at baseline\n")
    assert capfd.readouterr().err == "interrupted at baseline\n"
