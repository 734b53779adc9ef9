"""Fault injection: disk full, read-only media, wrong-shape manifests, two runs at once, refused
settings, signals, and results that belong to the machine that measured them (issue 16).

Every fault must end in one line on stderr and a non-zero exit, change nothing it should not,
and leave no temporary file. A full or read-only disk is a real tmpfs where the test may mount one
(root, as in CI), else those tests are skipped; a patched write covers disk full everywhere.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from dnncomp.cli import main
from dnncomp.errors import StorageError
from dnncomp.fileio import TEMP_GLOB, atomic_write_bytes, sha256_file
from dnncomp.results import machine_id
from dnncomp.run import HOLDER_NAME, run_dir_lock
from run_checks import run_dir_problems
from tinymodels import random_mnist_like

RUN = ("mnist", "study-mnist")


@pytest.fixture(scope="module")
def tiny_mnist(tmp_path_factory) -> Path:
    """A real-format mnist.npz with 96 learnable images: the loader, not the test, reads it."""
    x, y = random_mnist_like(96, seed=3)
    root = tmp_path_factory.mktemp("tiny-mnist")
    np.savez(
        root / "mnist.npz",
        x_train=x[:64, ..., 0],
        y_train=y[:64].astype(np.uint8),
        x_test=x[64:, ..., 0],
        y_test=y[64:].astype(np.uint8),
    )
    return root


def _run_args(data_dir: Path, out: Path, *extra: str) -> list[str]:
    return ["run", "mnist", "--data-dir", str(data_dir), "--out", str(out), "--techniques", "float", "--limit", "16", *extra]


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error:") or line.startswith("Error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _temp_files(directory: Path) -> list[Path]:
    return sorted(p for p in Path(directory).rglob(TEMP_GLOB))


def _manifest(run_dir: Path, **data) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "manifest.json"
    path.write_text(json.dumps({"schema": "dnncomp.manifest/1", "stages": {}, "command": "dnncomp run mnist", **data}))
    return path


@contextlib.contextmanager
def _tmpfs(path: Path, size: str):
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.decode().strip()}); the patched-write tests cover this")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


# ---- machine identity ----------------------------------------------------------------------


def test_machine_id_is_stable_and_can_be_named(monkeypatch):
    monkeypatch.delenv("DNNCOMP_MACHINE_ID", raising=False)
    first = machine_id()
    assert first == machine_id() and len(first) == 16
    monkeypatch.setenv("DNNCOMP_MACHINE_ID", "pi5-lab")
    assert machine_id() == "pi5-lab"


def test_manifest_keeps_each_machines_evaluation_and_an_older_unlabelled_one(tmp_path):
    from dnncomp.run import Manifest

    legacy = {"artifact": "abc", "first_n": 16}
    manifest = Manifest(tmp_path)
    manifest.record("evaluate:float", legacy, outputs=[], wall_s=1, record={"name": "float", "by": "old dnncomp"})
    on_a, on_b = {**legacy, "machine": "a"}, {**legacy, "machine": "b"}
    assert not manifest.is_done("evaluate:float", on_a)  # a record that does not say where it was measured
    manifest.record("evaluate:float", on_a, outputs=[], wall_s=1, record={"name": "float", "by": "a"})
    assert not manifest.is_done("evaluate:float", on_b)
    manifest.record("evaluate:float", on_b, outputs=[], wall_s=1, record={"name": "float", "by": "b"})
    reloaded = Manifest(tmp_path)
    assert reloaded.is_done("evaluate:float", on_a) and reloaded.stages["evaluate:float"]["record"]["by"] == "a"
    held = {m: e["stages"]["evaluate:float"]["record"]["by"] for m, e in reloaded.measurements.items()}
    assert held == {"unrecorded": "old dnncomp", "a": "a", "b": "b"}


# ---- disk full -----------------------------------------------------------------------------


def test_disk_full_names_the_file_and_the_space_needed_and_keeps_the_old_file(tmp_path, monkeypatch):
    final = tmp_path / "qat.tflite"
    final.write_bytes(b"the earlier artifact")
    real_write = Path.write_bytes

    def full_disk(self, data):
        real_write(self, data[: len(data) // 2])  # part of it lands, as on a real full disk
        raise OSError(errno.ENOSPC, "No space left on device", str(self))

    monkeypatch.setattr(Path, "write_bytes", full_disk)
    with pytest.raises(StorageError, match=r"qat\.tflite: disk full \(needs 500\.0 kB"):
        atomic_write_bytes(final, b"x" * 500_000)
    monkeypatch.undo()
    assert final.read_bytes() == b"the earlier artifact"
    assert _temp_files(tmp_path) == []


def test_disk_full_on_a_real_small_filesystem(tmp_path, tiny_mnist, capsys):
    with _tmpfs(tmp_path / "small", "256k") as small:
        with pytest.raises(StorageError, match=r"big\.tflite: disk full \(needs 400\.0 kB, \d+\.\d kB free\)"):
            atomic_write_bytes(small / "big.tflite", b"\0" * 400_000)
        assert _temp_files(small) == []
        (small / "filler").write_bytes(b"\0" * (256 * 1024 - 4096))
        capsys.readouterr()
        assert main(_run_args(tiny_mnist, small / "runs", "--eval-only", "--quiet")) == 2
        assert "disk full" in _one_error_line(capsys.readouterr().err)
        assert _temp_files(small) == []


# ---- wrong-shape manifests ----------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "[]",
        "null",
        '"a string"',
        '{"schema": "dnncomp.manifest/1", "stages": []}',
        '{"schema": "dnncomp.manifest/1", "stages": {"baseline": 3}}',
        '{"schema": "dnncomp.manifest/1", "stages": {"evaluate:float": {"inputs": [1, 2]}}}',
        '{"stages": {}}',
    ],
)
def test_wrong_shape_manifest_is_refused_and_left_as_it_was(tmp_path, tiny_mnist, capsys, text):
    run_dir = tmp_path.joinpath("runs", *RUN)
    run_dir.mkdir(parents=True)
    (run_dir / "manifest.json").write_text(text)
    assert main(_run_args(tiny_mnist, tmp_path / "runs", "--eval-only", "--quiet")) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "unreadable manifest" in line and "move it away" in line and "manifest.json" in line
    assert (run_dir / "manifest.json").read_text() == text
    assert sorted(p.name for p in run_dir.iterdir()) == ["manifest.json"]


# ---- refused input changes nothing --------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        ["--threads", "0"],
        ["--threads", "-1"],
        ["--epochs", "0"],
        ["--batch-size", "0"],
        ["--limit", "-5"],
        ["--patience", "-1"],
        ["--seed", "-3"],
    ],
)
def test_refused_settings_change_nothing(tmp_path, tiny_mnist, capsys, bad):
    run_dir = tmp_path.joinpath("runs", *RUN)
    manifest = _manifest(run_dir)
    before = manifest.read_bytes()
    assert main(_run_args(tiny_mnist, tmp_path / "runs", *bad)) == 2
    assert bad[0] in _one_error_line(capsys.readouterr().err)
    assert manifest.read_bytes() == before
    assert sorted(p.name for p in run_dir.iterdir()) == ["manifest.json"]


@pytest.mark.parametrize(
    "command",
    [
        ["evaluate", "m.tflite", "--dataset", "mnist", "--limit", "-5"],
        ["evaluate", "m.tflite", "--dataset", "mnist", "--threads", "0"],
        ["bench", "m.tflite", "--dataset", "mnist", "--min-count", "0"],
        ["bench", "m.tflite", "--dataset", "mnist", "--max-seconds", "0"],
        ["bench", "m.tflite", "--dataset", "mnist", "--samples", "-1"],
        ["reproduce", "--threads", "0"],
    ],
)
def test_every_command_checks_numeric_ranges(capsys, command):
    assert main(command) == 2
    _one_error_line(capsys.readouterr().err)


def test_misspelled_recipe_in_param_is_refused_with_the_closest_name(tmp_path, tiny_mnist, capsys):
    assert main(_run_args(tiny_mnist, tmp_path / "runs", "--techniques", "prune", "--param", "pruen.final_sparsity=0.5")) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "pruen" in line and "did you mean prune" in line
    assert main(_run_args(tiny_mnist, tmp_path / "runs", "--techniques", "prune", "--param", "qat.epochs=1")) == 2
    assert "not in --techniques" in _one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "runs").exists()


def test_file_outputs_pointing_at_a_directory_are_one_line(tmp_path, capsys):
    baseline = tmp_path / "baseline.keras"
    baseline.write_bytes(b"")
    assert main(["compress", str(baseline), "--dataset", "mnist", "--recipe", "float", "--out", str(tmp_path)]) == 2
    assert "is a directory" in _one_error_line(capsys.readouterr().err)
    with pytest.raises(StorageError, match="is a directory"):
        atomic_write_bytes(tmp_path, b"")


# ---- two runs at once ---------------------------------------------------------------------


def test_second_run_is_refused_naming_the_holder(tmp_path, tiny_mnist, capsys):
    run_dir = tmp_path.joinpath("runs", *RUN)
    manifest = _manifest(run_dir)
    before = manifest.read_bytes()
    with run_dir_lock(run_dir):
        assert main(_run_args(tiny_mnist, tmp_path / "runs", "--eval-only", "--quiet")) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert f"in use by pid {os.getpid()} on " in line and "--wait" in line
    assert manifest.read_bytes() == before
    assert not (run_dir / HOLDER_NAME).exists()


def test_wait_waits_for_the_holder(tmp_path, tiny_mnist, capsys):
    run_dir = tmp_path.joinpath("runs", *RUN)
    _manifest(run_dir)
    held, release = threading.Event(), threading.Event()

    def holder():
        with run_dir_lock(run_dir):
            held.set()
            release.wait(10)

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait(10)
    threading.Timer(1.5, release.set).start()
    start = time.monotonic()
    # No artifacts in the run dir: once it has the lock, eval-only stops with its own one-line error.
    assert main(_run_args(tiny_mnist, tmp_path / "runs", "--eval-only", "--wait")) == 2
    waited = time.monotonic() - start
    thread.join()
    err = capsys.readouterr().err
    assert "waiting for pid" in err and "no .tflite artifacts" in _one_error_line(err)
    assert waited >= 1.0


def test_stale_lock_of_a_dead_process_is_taken_over_and_its_temp_files_removed(tmp_path, tiny_mnist, capsys):
    run_dir = tmp_path.joinpath("runs", *RUN)
    _manifest(run_dir)
    (run_dir / HOLDER_NAME).write_text(json.dumps({"pid": 999999, "host": "gone", "since": "2026-01-01T00:00:00+00:00"}))
    (run_dir / ".qat.abc123.part.tflite").write_bytes(b"half")
    assert main(_run_args(tiny_mnist, tmp_path / "runs", "--eval-only")) == 2  # no artifacts: its own error
    err = capsys.readouterr().err
    assert "stale lock of pid 999999 on gone" in err and "removed 1 temporary file" in err
    assert not (run_dir / HOLDER_NAME).exists() and _temp_files(run_dir) == []


# ---- with a real (tiny) run: machine identity, read-only media, signals --------------------


@pytest.fixture(scope="module")
def trained_runs(tiny_mnist, tmp_path_factory) -> Path:
    """One complete tiny run (float only, one epoch) on this machine; tests copy it."""
    out = tmp_path_factory.mktemp("trained") / "runs"
    assert main(_run_args(tiny_mnist, out, "--epochs", "1", "--quiet")) == 0
    return out


def _copy_run(trained_runs: Path, dest: Path) -> Path:
    shutil.copytree(trained_runs, dest)
    return dest.joinpath(*RUN)


@pytest.mark.tf
@pytest.mark.slow
def test_eval_only_on_another_machine_remeasures_and_keeps_both(trained_runs, tiny_mnist, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("DNNCOMP_MACHINE_ID", raising=False)
    here = machine_id()
    run_dir = _copy_run(trained_runs, tmp_path / "runs")
    workstation = json.loads((run_dir / "results.json").read_text())
    assert workstation["machine_id"] == here
    assert {v["measured_on"]["machine_id"] for v in workstation["variants"]} == {here}

    monkeypatch.setenv("DNNCOMP_MACHINE_ID", "board-under-test")
    capsys.readouterr()
    assert main(_run_args(tiny_mnist, tmp_path / "runs", "--eval-only")) == 0
    captured = capsys.readouterr()
    assert "float: evaluation up to date" not in captured.err  # re-measured, not reused
    assert "also measured on 1 other machine(s)" in captured.out
    board = json.loads((run_dir / "results.json").read_text())
    assert board["machine_id"] == "board-under-test" and board["environment"]["machine_id"] == "board-under-test"
    assert [(v["name"], v["measured_on"]["machine_id"]) for v in board["variants"]] == [("float", "board-under-test")]
    # the workstation's records are kept beside the board's, unchanged (the Keras row too)
    assert board["measurements"][here]["variants"] == workstation["variants"]
    assert board["measurements"]["board-under-test"]["variants"] == board["variants"]
    from dnncomp.results import validate_results

    assert validate_results(board) == []

    # back on the workstation: its own records are up to date again, the board's stay
    monkeypatch.delenv("DNNCOMP_MACHINE_ID")
    assert main(_run_args(tiny_mnist, tmp_path / "runs", "--eval-only")) == 0
    assert "float: evaluation up to date" in capsys.readouterr().err
    again = json.loads((run_dir / "results.json").read_text())
    assert again["machine_id"] == here and set(again["measurements"]) == {here, "board-under-test"}


@pytest.mark.tf
@pytest.mark.slow
def test_first_n_header_says_n_only_when_every_row_has_it(trained_runs):
    from rich.console import Console

    from dnncomp.tables import print_results

    results = json.loads(trained_runs.joinpath(*RUN, "results.json").read_text())
    console = Console(width=400, record=True)
    print_results(results, console=console)
    assert "acc % (first 16)" in console.export_text()
    results["variants"][-1]["accuracy"]["first_n_count"] = 15  # as after `--eval-only --limit 15`
    console = Console(width=400, record=True)
    print_results(results, console=console)
    text = console.export_text()
    assert "acc % (first N)" in text and "(N=15)" in text and "first 16)" not in text


@pytest.mark.tf
@pytest.mark.slow
def test_read_only_run_dir(trained_runs, tiny_mnist, tmp_path, capsys):
    with _tmpfs(tmp_path / "stick", "64m") as stick:
        run_dir = _copy_run(trained_runs, stick / "runs")
        before = {p.name: sha256_file(p) for p in run_dir.iterdir() if p.is_file()}
        subprocess.run(["mount", "-o", "remount,ro", str(stick)], check=True)
        capsys.readouterr()

        assert main(_run_args(tiny_mnist, stick / "runs", "--eval-only", "--quiet")) == 2
        line = _one_error_line(capsys.readouterr().err)
        assert "read-only file system" in line and "--results-out" in line

        results_out = tmp_path / "results"
        assert main(_run_args(tiny_mnist, stick / "runs", "--eval-only", "--quiet", "--results-out", str(results_out))) == 0
        written = json.loads((results_out / "results.json").read_text())
        assert [v["name"] for v in written["variants"]] == ["baseline-keras", "float"]
        assert (results_out / "manifest.json").is_file()

        assert main(_run_args(tiny_mnist, stick / "fresh")) == 2  # a fresh run onto read-only media
        assert "read-only file system" in _one_error_line(capsys.readouterr().err)
        assert main(_run_args(tiny_mnist, stick / "runs", "--epochs", "1")) == 2  # a rerun
        assert "read-only file system" in _one_error_line(capsys.readouterr().err)
        assert main(["report", str(run_dir)]) == 2
        assert "read-only file system" in _one_error_line(capsys.readouterr().err)
        assert {p.name: sha256_file(p) for p in run_dir.iterdir() if p.is_file()} == before


# ---- signals ------------------------------------------------------------------------------


def _interrupt_when(args: list[str], marker: str, sig: int, timeout: float = 300) -> tuple[int, str]:
    """Start `dnncomp ARGS`, send ``sig`` as soon as stderr shows ``marker``; (exit code, stderr)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "dnncomp.cli", *args], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, cwd=Path.cwd()
    )
    lines = []
    deadline = time.monotonic() + timeout
    for line in process.stderr:
        lines.append(line)
        if marker in line:
            process.send_signal(sig)
            break
        assert time.monotonic() < deadline, "".join(lines)
    lines.extend(process.stderr)
    return process.wait(timeout=120), "".join(lines)


def _check_artifacts(run_dir: Path) -> None:
    assert (run_dir / "manifest.json").is_file()
    assert run_dir_problems(run_dir) == []


@pytest.mark.tf
@pytest.mark.slow
def test_sigterm_and_sigint_stop_with_one_line_and_resume(tiny_mnist, tmp_path):
    out = tmp_path / "runs"
    run_dir = out.joinpath(*RUN)
    args = _run_args(tiny_mnist, out, "--epochs", "1")
    for marker, sig, code, stage in [
        ("baseline: training", signal.SIGTERM, 143, "baseline"),
        ("float: compressing", signal.SIGINT, 130, "compress:float"),
        ("float: accuracy on", signal.SIGTERM, 143, "evaluate:float"),
    ]:
        rc, err = _interrupt_when(args, marker, sig)
        assert rc == code, err
        assert f"interrupted at {stage}; " in err and "rerun the same command to resume" in err, err
        assert "Traceback" not in err, err
        _check_artifacts(run_dir)
        assert not (run_dir / HOLDER_NAME).exists()
    rc, err = _interrupt_when(args, "never printed", signal.SIGTERM)
    assert rc == 0, err
    assert "baseline: up to date" in err and "float: up to date" in err  # nothing finished was redone
    _check_artifacts(run_dir)
    assert [v["name"] for v in json.loads((run_dir / "results.json").read_text())["variants"]] == ["baseline-keras", "float"]
