"""The device side on tflite-runtime where ai-edge-litert cannot load (dnncomp.litert_backend).

The end-to-end test runs evaluate, bench and inspect with the Python of ``.venv-tflrt`` (tflite-runtime 2.14,
the ``tflite`` schema package, numpy 1.x, no ai-edge-litert: .ci/run makes it from PyPI before pytest;
``$DNNCOMP_TFLRT_PYTHON`` points elsewhere) and compares with ai-edge-litert here on the same real images.
Without that venv it skips and says how to make it; nothing here reaches the network.

The other tests need no second venv: the TableView that reads the tflite package's tables as the object
API (checked on ai-edge-litert's own table API, the same flatc output), the runtime choice, and cpuinfo's
stderr lines said once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dnncomp import litert_backend

ROOT = Path(__file__).resolve().parents[1]
REFERENCE_DIR = ROOT.parent / "shared" / "reference-models"
MNIST_MODEL = REFERENCE_DIR / "mnist_quantized_model.tflite"
FAST = ["--min-count", "5", "--min-seconds", "0"]


def _tflrt_python() -> Path:
    path = Path(os.environ.get("DNNCOMP_TFLRT_PYTHON") or ROOT / ".venv-tflrt" / "bin" / "python")
    if not path.exists():
        pytest.skip(
            f"{path} not found: the tflite-runtime venv is made by .ci/run (python3 -m venv .venv-tflrt && "
            ".venv-tflrt/bin/pip install -c constraints-device-legacy.txt numpy pillow click rich jsonschema "
            "filelock tflite-runtime tflite && .venv-tflrt/bin/pip install --no-deps -e .)"
        )
    return path


def _run(python: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", litert_backend.RUNTIME_ENV)}
    env["PYTHONPATH"] = str(ROOT / "src")  # this checkout's dnncomp, whatever the venv's editable install points at
    return subprocess.run([str(python), *args], capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)


def _reference(name: str = "mnist_quantized_model.tflite") -> Path:
    path = REFERENCE_DIR / name
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return path


@pytest.fixture
def mnist_500(real_data_dir, tmp_path):
    """``npz:PATH`` of the first 500 real MNIST test images, and (x, y)."""
    from dnncomp.data.npz import write_test_npz

    with np.load(real_data_dir / "mnist.npz") as z:
        x, y = z["x_test"][:500, ..., None], z["y_test"][:500]
    return f"npz:{write_test_npz(tmp_path / 'mnist500.npz', x, y, [str(i) for i in range(10)])}", x, y


def test_device_commands_on_tflite_runtime_equal_ai_edge_litert(mnist_500, tmp_path):
    python = _tflrt_python()
    probe = _run(
        python, "-c", "import json; from dnncomp.litert_backend import runtime_record; print(json.dumps(runtime_record()))"
    )
    assert probe.returncode == 0, probe.stderr
    runtime = json.loads(probe.stdout.strip().splitlines()[-1])
    assert runtime["name"] == "tflite-runtime" and runtime["version"]
    assert "ai-edge-litert" in runtime["fallback_reason"]  # that venv has no ai-edge-litert: it is the fallback
    assert runtime["schema"].startswith("tflite ")

    from dnncomp.anatomy import inspect_model
    from dnncomp.evaluate import evaluate_accuracy

    model = _reference()
    dataset, x, y = mnist_500
    here = evaluate_accuracy(model, x, y, first_n=100, num_classes=10)  # ai-edge-litert, in this process

    done = _run(
        python,
        "-m",
        "dnncomp.cli",
        "evaluate",
        str(model),
        "--dataset",
        dataset,
        "--limit",
        "100",
        *FAST,
        "--json",
        str(tmp_path / "e.json"),
    )
    assert done.returncode == 0, done.stderr
    there = json.loads((tmp_path / "e.json").read_text())
    assert there["environment"]["runtime"]["name"] == "tflite-runtime"
    assert done.stderr.count("note: LiteRT runtime tflite-runtime") == 1  # the fallback is said, once
    variant = there["variants"][0]
    assert variant["accuracy"]["full"] == here["full"] and variant["accuracy"]["first_n"] == here["first_n"]
    assert variant["accuracy"]["full_count"] == 500 and variant["latency"]["p50_ms"] > 0
    assert variant["latency"]["xnnpack_applied"] is not None  # read from that interpreter, whatever it did

    done = _run(
        python,
        "-m",
        "dnncomp.cli",
        "bench",
        str(model),
        "--dataset",
        dataset,
        "--limit",
        "100",
        *FAST,
        "--warmup-count",
        "1",
        "--warmup-seconds",
        "0",
        "--json",
        str(tmp_path / "b.json"),
    )
    assert done.returncode == 0, done.stderr
    bench = json.loads((tmp_path / "b.json").read_text())["variants"][0]
    assert bench["accuracy"]["full"] == here["full"] and bench["latency"]["count"] >= 5
    assert bench["memory"]["peak_added_bytes"] > 0  # the memory probe's fresh process loads tflite-runtime too

    done = _run(python, "-m", "dnncomp.cli", "inspect", str(model), "--json", str(tmp_path / "i.json"))
    assert done.returncode == 0, done.stderr
    done = _run(Path(sys.executable), "-m", "dnncomp.cli", "inspect", str(model), "--json", str(tmp_path / "here.json"))
    assert done.returncode == 0, done.stderr  # the same command with ai-edge-litert's schema (ModelT)
    anatomy = json.loads((tmp_path / "i.json").read_text())
    assert anatomy == json.loads((tmp_path / "here.json").read_text())
    assert anatomy[str(model)]["params"] == inspect_model(model)["params"] > 0


@pytest.mark.parametrize(
    "name", ["mnist_quantized_model.tflite", "cifar10_quantized_model.tflite", "gtsrb_quantized_model.tflite"]
)
def test_table_view_reads_what_the_object_api_reads(name, monkeypatch):
    """inspect through TableView (as with the tflite package) equals inspect through ai-edge-litert's ModelT."""
    from ai_edge_litert import schema_py_generated as schema

    from dnncomp import anatomy

    model = _reference(name)
    expected = anatomy.inspect_model(model)
    monkeypatch.setattr(anatomy, "read_model_object", lambda data: litert_backend.TableView(schema.Model.GetRootAs(data, 0)))
    assert anatomy.inspect_model(model) == expected


def test_table_view_fields():
    from ai_edge_litert import schema_py_generated as schema

    data = _reference().read_bytes()
    view = litert_backend.TableView(schema.Model.GetRootAs(data, 0))
    model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    assert len(view.subgraphs) == len(model.subgraphs) and len(view.buffers) == len(model.buffers)
    tensor, expected = view.subgraphs[0].tensors[0], model.subgraphs[0].tensors[0]
    assert list(tensor.shape) == list(expected.shape) and tensor.name == expected.name and tensor.type == expected.type
    assert view.subgraphs[0] is view.subgraphs[0]  # read once and kept, like the object API
    with pytest.raises(AttributeError):
        view.noSuchField  # noqa: B018


_BACKEND = litert_backend.backend  # the cached function, whatever a test puts in its place


@pytest.fixture
def fresh_backend(monkeypatch):
    """The runtime decided anew in the test (and again after it); cpuinfo's note not yet said."""
    _BACKEND.cache_clear()
    monkeypatch.setattr(litert_backend, "_cpuinfo_said", False)
    yield
    _BACKEND.cache_clear()


def test_runtime_env_forces_one_runtime(fresh_backend, monkeypatch):
    monkeypatch.setenv(litert_backend.RUNTIME_ENV, "ai-edge-litert")
    assert litert_backend.backend().name == "ai-edge-litert" and litert_backend.backend().fallback_reason is None
    litert_backend.backend.cache_clear()
    monkeypatch.setenv(litert_backend.RUNTIME_ENV, "tensorflow")
    with pytest.raises(litert_backend.MissingDependencyError, match="choose one of ai-edge-litert, tflite-runtime"):
        litert_backend.backend()
    assert litert_backend.runtime_label() == "none"


def test_no_runtime_is_one_line_naming_both(fresh_backend, monkeypatch):
    monkeypatch.setattr(
        litert_backend, "RUNTIMES", (("ai-edge-litert", "no_such_module_a"), ("tflite-runtime", "no_such_module_b"))
    )
    with pytest.raises(litert_backend.MissingDependencyError) as info:
        litert_backend.backend()
    message = str(info.value)
    assert (
        "\n" not in message
        and "ai-edge-litert: ModuleNotFoundError" in message
        and "tflite-runtime: ModuleNotFoundError" in message
    )
    assert "dnncomp[device-legacy]" in message
    assert litert_backend.runtime_record()["name"] is None


CPUINFO = (
    b"Error in cpuinfo: failed to parse the list of possible processors in /sys/devices/system/cpu/possible\n"
    b"Error in cpuinfo: failed to parse the list of present processors in /sys/devices/system/cpu/present\n"
    b"Error in cpuinfo: failed to parse both lists of possible and present processors\n"
)


class _ChattyInterpreter:
    """Writes cpuinfo's three lines on C stderr (fd 2) while it starts, as LiteRT does on a board with an unusual /sys."""

    def __init__(self, **kwargs):
        os.write(2, CPUINFO)
        os.write(2, b"something else the runtime said\n")


def test_cpuinfo_lines_become_one_note_said_once(fresh_backend, monkeypatch, capfd):
    fake = litert_backend.Backend("ai-edge-litert", "0", "fake", _ChattyInterpreter, None)
    monkeypatch.setattr(litert_backend, "backend", lambda: fake)
    litert_backend.create_interpreter("m.tflite", model_path="m.tflite")
    err = capfd.readouterr().err
    assert "Error in cpuinfo" not in err
    notes = [line for line in err.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "3 cpuinfo messages" in notes[0] and "/sys/devices/system/cpu/possible" in notes[0]
    assert "something else the runtime said" in err  # only cpuinfo's lines are folded
    litert_backend.create_interpreter("m.tflite", model_path="m.tflite")
    err = capfd.readouterr().err
    assert "cpuinfo" not in err and "note:" not in err  # said once per process


def test_cpuinfo_lines_at_allocation_are_folded_too(fresh_backend, monkeypatch, capfd):
    """evaluate.allocate passes what allocate_tensors printed through the same filter.

    cpuinfo initialises once per process, with the first XNNPACK delegate: at the first allocation,
    which allocate captures until it has seen LiteRT's delegate notice.
    """
    from dnncomp import evaluate

    monkeypatch.setattr(evaluate, "_notice_pending", True)

    class Allocating:
        def allocate_tensors(self):
            os.write(2, CPUINFO)

    evaluate.allocate(Allocating(), "m.tflite")
    err = capfd.readouterr().err
    assert "Error in cpuinfo" not in err and err.count("note:") == 1


def test_device_setup_picks_the_legacy_runtime_below_glibc_2_34():
    from dnncomp.remote import legacy_runtime_needed

    assert legacy_runtime_needed({"arch": "aarch64", "glibc": "glibc-2.27"})  # Jetson Nano, JetPack 4.6
    assert legacy_runtime_needed({"arch": "aarch64", "glibc": "glibc-2.31"})  # JetPack 5 / Ubuntu 20.04
    assert not legacy_runtime_needed({"arch": "aarch64", "glibc": "glibc-2.35"})  # JetPack 6
    assert not legacy_runtime_needed({"arch": "x86_64", "glibc": "glibc-2.27"})  # x86 wheels need less
    assert not legacy_runtime_needed({"arch": "aarch64", "glibc": ""})  # unknown (musl): do not guess


def test_device_setup_installs_the_legacy_extra_on_an_old_aarch64_board(tmp_path):
    """setup_device's pip command on a glibc-2.31 aarch64 board asks for dnncomp[device-legacy] (a fake device: no SSH)."""
    from dnncomp.remote import parse_target, setup_device

    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "dnncomp-0.1.0-py3-none-any.whl").write_bytes(b"")  # pushed as is: nothing is built here

    class OldBoard:
        target, remote_dir = parse_target("ssh://jetson@orin"), ".cache/dnncomp-remote"
        commands, lines = [], []

        def identity(self):
            return {"python": "3.10.12", "python_executable": "/usr/bin/python3.10", "arch": "aarch64", "glibc": "glibc-2.31"}

        def put(self, local, remote):
            pass

        def say(self, line):
            self.lines.append(line)

        def run_shell_streamed(self, command):
            self.commands.append(command)
            return 0

        def require_install(self):
            return {}

    board = OldBoard()
    setup_device(board, wheels)
    assert "dnncomp-0.1.0-py3-none-any.whl[device-legacy]" in board.commands[0]
    assert any("older than 2.34" in line and "device-legacy" in line for line in board.lines)


def test_a_model_the_runtime_refuses_is_one_line(tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\x18\x00\x00\x00TFL3" + bytes(64))
    from dnncomp.errors import ModelError
    from dnncomp.evaluate import open_interpreter

    with pytest.raises(ModelError) as info:
        open_interpreter(bad)
    assert "\n" not in str(info.value) and str(bad) in str(info.value)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
