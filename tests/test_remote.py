"""--on TARGET and `dnncomp device`: against a real OpenSSH server on 127.0.0.1 acting as the device.

The fixture starts Debian's sshd on a free port with a throwaway host key and user key (ssh-keygen);
the "device" Python is this interpreter behind a wrapper that gives it its own machine id, so its
records are stored beside this machine's. HOME points at a temporary directory holding the client
key and known_hosts, so nothing of the user's ~/.ssh is read or written.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from dnncomp.cli import main

asyncssh = pytest.importorskip("asyncssh", reason="the [remote] extra (asyncssh) is not installed")

SSHD = Path("/usr/sbin/sshd")
REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference-models" / "mnist_quantized_model.tflite"
FAST = ["--min-count", "5", "--min-seconds", "0"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """A real sshd on 127.0.0.1: {"port", "user", "dir", "user_key", "host_key"}."""
    if not SSHD.exists():
        pytest.skip(f"{SSHD} not found: apt-get install openssh-server (CI installs it)")
    if shutil.which("ssh-keygen") is None:
        pytest.skip("ssh-keygen not found: apt-get install openssh-client")
    root = tmp_path_factory.mktemp("sshd")
    _keygen(root / "host_key")
    _keygen(root / "user_key")
    shutil.copy(root / "user_key.pub", root / "authorized_keys")
    port = _free_port()
    user = os.environ.get("USER") or subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
    (root / "sshd_config").write_text(
        "\n".join(
            [
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {root / 'host_key'}",
                f"PidFile {root / 'sshd.pid'}",
                f"AuthorizedKeysFile {root / 'authorized_keys'}",
                "PermitRootLogin prohibit-password",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "UsePAM no",
                "StrictModes no",
                "Subsystem sftp internal-sftp",
                "",
            ]
        )
    )
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation directory
    log = open(root / "sshd.log", "w")
    process = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(root / "sshd_config")], stdout=log, stderr=log)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if process.poll() is not None:
                break
            time.sleep(0.1)
    else:
        process.kill()
    if process.poll() is not None:
        pytest.skip(f"sshd did not start: {(root / 'sshd.log').read_text()[-300:]}")
    yield {"port": port, "user": user, "dir": root}
    process.terminate()
    process.wait(timeout=10)
    log.close()


@pytest.fixture
def device(sshd, tmp_path, monkeypatch):
    """A client HOME with the user key and the device's host key known; a device work dir; a device Python."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    shutil.copy(sshd["dir"] / "user_key", home / ".ssh" / "id_ed25519")
    host_key = (sshd["dir"] / "host_key.pub").read_text().split()
    (home / ".ssh" / "known_hosts").write_text(f"[127.0.0.1]:{sshd['port']} {host_key[0]} {host_key[1]}\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    monkeypatch.setenv("DNNCOMP_REMOTE_DIR", str(tmp_path / "device-work"))
    python = tmp_path / "device-python"
    python.write_text(f'#!/bin/sh\nDNNCOMP_MACHINE_ID=test-board exec {sys.executable} "$@"\n')
    python.chmod(0o755)
    return {
        "target": f"ssh://{sshd['user']}@127.0.0.1:{sshd['port']}",
        "python": str(python),
        "home": home,
        "work": tmp_path / "device-work",
        "port": sshd["port"],
    }


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    return err[-1] if err else ""


def _reference() -> Path:
    if not REFERENCE.is_file():
        pytest.skip(f"{REFERENCE} not found")
    return REFERENCE


# ---- measurements through the device ------------------------------------------------------


@pytest.fixture
def mnist_300(real_data_dir, tmp_path):
    """``npz:PATH`` of 300 real MNIST test images (seconds, not a full test set)."""
    from dnncomp.data.npz import write_test_npz

    with np.load(real_data_dir / "mnist.npz") as z:
        x, y = z["x_test"][:300, ..., None], z["y_test"][:300]
    return f"npz:{write_test_npz(tmp_path / 'mnist300.npz', x, y, [str(i) for i in range(10)])}"


def test_evaluate_on_device_equals_local(device, mnist_300, tmp_path, capsys):
    model = _reference()
    local, remote = tmp_path / "local.json", tmp_path / "remote.json"
    assert main(["evaluate", str(model), "--dataset", mnist_300, "--no-latency", "--json", str(local)]) == 0
    assert (
        main(
            [
                "evaluate",
                str(model),
                "--dataset",
                mnist_300,
                *FAST,
                "--json",
                str(remote),
                "--on",
                device["target"],
                "--remote-python",
                device["python"],
            ]
        )
        == 0
    )
    here, there = json.loads(local.read_text()), json.loads(remote.read_text())
    assert there["variants"][0]["accuracy"]["full"] == here["variants"][0]["accuracy"]["full"]
    assert there["variants"][0]["accuracy"]["first_n"] == here["variants"][0]["accuracy"]["first_n"]
    assert there["variants"][0]["latency"]["p50_ms"] > 0
    assert there["environment"]["machine_id"] == "test-board"  # measured there, labelled as there
    assert there["environment"]["remote"]["target"] == device["target"]
    assert there["dataset"] == mnist_300 and there["variants"][0]["artifact"] == str(model)
    from dnncomp.results import validate_results

    assert validate_results(there) == []  # the device's record is a results record like any other
    # the test split is cached on the device by content hash: a second run copies no images
    capsys.readouterr()
    assert (
        main(
            [
                "evaluate",
                str(model),
                "--dataset",
                mnist_300,
                "--no-latency",
                "--on",
                device["target"],
                "--remote-python",
                device["python"],
            ]
        )
        == 0
    )
    assert "already on the device" in capsys.readouterr().out


def test_bench_on_device(device, mnist_300, tmp_path):
    from dnncomp.data import load_dataset
    from dnncomp.evaluate import evaluate_accuracy

    model = _reference()
    md = tmp_path / "bench.md"
    assert (
        main(
            [
                "bench",
                str(model),
                "--dataset",
                mnist_300,
                "--limit",
                "100",
                "--no-memory",
                *FAST,
                "--warmup-count",
                "1",
                "--warmup-seconds",
                "0",
                "--json",
                str(tmp_path / "b.json"),
                "--md",
                str(md),
                "--on",
                device["target"],
                "--remote-python",
                device["python"],
            ]
        )
        == 0
    )
    document = json.loads((tmp_path / "b.json").read_text())
    assert document["environment"]["machine_id"] == "test-board"
    data = load_dataset(mnist_300)
    assert document["variants"][0]["accuracy"]["full"] == evaluate_accuracy(model, data.x_test, data.y_test)["full"]
    assert document["variants"][0]["latency"]["count"] >= 5
    assert "mnist_quantized_model" in md.read_text()


@pytest.mark.slow  # the run evaluates the whole MNIST test split, here and on the device (latency kept short)
def test_run_eval_only_on_device_keeps_both_machines(device, real_data_dir, tmp_path, monkeypatch, capsys):
    model = _reference()
    run_dir = tmp_path / "runs" / "mnist" / "study-mnist"
    run_dir.mkdir(parents=True)
    shutil.copy(model, run_dir / "float.tflite")
    monkeypatch.setenv("DNNCOMP_MACHINE_ID", "test-host")
    args = [
        "run",
        "mnist",
        "--eval-only",
        "--techniques",
        "float",
        "--out",
        str(tmp_path / "runs"),
        "--data-dir",
        str(real_data_dir),
        "--quiet",
        *("--min-count", "30", "--min-seconds", "0.1"),  # latency timing, on both machines
    ]
    assert main(args + ["--on", device["target"], "--remote-python", device["python"]]) == 0
    out = capsys.readouterr().out
    assert "every machine side by side" in out
    results = json.loads((run_dir / "results.json").read_text())
    measurements = results["measurements"]
    assert set(measurements) == {"test-host", "test-board"}
    host, board = (measurements[m]["variants"][0] for m in ("test-host", "test-board"))
    assert board["accuracy"] == host["accuracy"]  # the same artifact on the same images
    assert board["measured_on"]["machine_id"] == "test-board" and board["measured_on"]["target"] == device["target"]
    assert measurements["test-board"]["environment"]["remote"]["glibc"]
    # labelled with the device's identity: board, CPU, cores, OS, glibc, Python, runtime and version, governor
    env = measurements["test-board"]["environment"]
    assert env["machine_id"] == "test-board" and env["cpu_model"] and env["python"] and "board" in env
    remote = env["remote"]
    assert remote["os"] and remote["cores"] >= 1 and remote["glibc"].startswith("glibc") and "governor" in remote
    assert env["runtime"]["name"] == "ai-edge-litert" and remote["runtime"] == f"ai-edge-litert {env['runtime']['version']}"
    assert board["measured_on"]["runtime"] == remote["runtime"] and board["latency"]["xnnpack_applied"] is not None
    manifest = json.loads((run_dir / "manifest.json").read_text())
    timing = manifest["measurements"]["test-board"]["stages"]["evaluate:float"]["inputs"]["latency"]
    assert (timing["min_count"], timing["min_seconds"]) == (30, 0.1)  # what the device was told is what it records
    assert board["latency"]["count"] >= 30 and host["latency"]["count"] >= 30
    # a later host-only run keeps the device's records beside its own
    assert main(args) == 0
    assert set(json.loads((run_dir / "results.json").read_text())["measurements"]) == {"test-host", "test-board"}


def test_device_with_tflite_runtime_only(device, mnist_300, tmp_path, capsys):
    """A device where only tflite-runtime loads (CI's .venv-tflrt): device check names it, evaluate uses it."""
    legacy = Path(__file__).resolve().parents[1] / ".venv-tflrt" / "bin" / "python"
    if not legacy.exists():
        pytest.skip(f"{legacy} not found: .ci/run makes it (tests/test_device_fallback.py says how)")
    python = tmp_path / "legacy-python"
    python.write_text(f'#!/bin/sh\nDNNCOMP_MACHINE_ID=legacy-board exec {legacy} "$@"\n')
    python.chmod(0o755)
    assert main(["device", "check", device["target"], "--remote-python", str(python)]) == 0
    assert "tflite-runtime" in capsys.readouterr().out
    model = _reference()
    local, remote = tmp_path / "local.json", tmp_path / "remote.json"
    assert main(["evaluate", str(model), "--dataset", mnist_300, "--no-latency", "--json", str(local)]) == 0
    assert (
        main(
            [
                "evaluate",
                str(model),
                "--dataset",
                mnist_300,
                "--no-latency",
                "--json",
                str(remote),
                "--on",
                device["target"],
                "--remote-python",
                str(python),
            ]
        )
        == 0
    )
    here, there = json.loads(local.read_text()), json.loads(remote.read_text())
    assert there["environment"]["runtime"]["name"] == "tflite-runtime"
    assert there["environment"]["remote"]["runtime"].startswith("tflite-runtime ")
    assert there["variants"][0]["accuracy"]["full"] == here["variants"][0]["accuracy"]["full"]


def test_inspect_on_device(device, tmp_path):
    model = _reference()
    assert (
        main(
            [
                "inspect",
                str(model),
                "--json",
                str(tmp_path / "a.json"),
                "--on",
                device["target"],
                "--remote-python",
                device["python"],
            ]
        )
        == 0
    )
    anatomies = json.loads((tmp_path / "a.json").read_text())
    assert anatomies[str(model)]["size"]["file_bytes"] == model.stat().st_size


def test_device_check_reports_ready_and_missing(device, capsys):
    assert main(["device", "check", device["target"], "--remote-python", device["python"]]) == 0
    assert "ready for --on" in capsys.readouterr().out
    # a Python without site-packages has neither dnncomp nor ai-edge-litert
    bare = device["home"] / "bare-python"
    bare.write_text(f'#!/bin/sh\nexec {sys.executable} -S "$@"\n')
    bare.chmod(0o755)
    assert main(["device", "check", device["target"], "--remote-python", str(bare)]) == 2
    captured = capsys.readouterr()
    assert "dnncomp device install" in captured.err and f"to fix: dnncomp device setup {device['target']}" in captured.out


# ---- failures: one line each -------------------------------------------------------------


def test_missing_device_install_is_one_line(device, tmp_path, capsys):
    bare = tmp_path / "bare-python"
    bare.write_text(f'#!/bin/sh\nexec {sys.executable} -S "$@"\n')
    bare.chmod(0o755)
    model = tmp_path / "m.tflite"
    shutil.copy(_reference(), model)
    assert main(["inspect", str(model), "--on", device["target"], "--remote-python", str(bare)]) == 2
    line = _error_line(capsys)
    assert line.startswith("error: ") and "device install is missing" in line and "dnncomp device setup" in line


def test_missing_python_is_one_line(device, tmp_path, capsys):
    assert main(["inspect", str(_reference()), "--on", device["target"], "--remote-python", "/nonexistent/python3"]) == 2
    assert "not found on the device" in _error_line(capsys)


def test_unknown_host_key_refused_unless_accepted(device, capsys):
    known = device["home"] / ".ssh" / "known_hosts"
    known.unlink()
    assert main(["device", "check", device["target"], "--remote-python", device["python"]]) == 2
    line = _error_line(capsys)
    assert "unknown host key SHA256:" in line and "--accept-new-host-key" in line
    assert not known.exists()  # refused: nothing recorded
    assert main(["device", "check", device["target"], "--remote-python", device["python"], "--accept-new-host-key"]) == 0
    assert f"[127.0.0.1]:{device['port']} ssh-ed25519 " in known.read_text()
    assert main(["device", "check", device["target"], "--remote-python", device["python"]]) == 0  # now known


def test_changed_host_key_refused_even_with_accept(device, tmp_path, capsys):
    _keygen(tmp_path / "other")
    other = (tmp_path / "other.pub").read_text().split()
    (device["home"] / ".ssh" / "known_hosts").write_text(f"[127.0.0.1]:{device['port']} {other[0]} {other[1]}\n")
    assert main(["device", "check", device["target"], "--accept-new-host-key"]) == 2
    assert "does not match ~/.ssh/known_hosts" in _error_line(capsys)


def test_wrong_key_is_authentication_failure(device, tmp_path, capsys):
    key = device["home"] / ".ssh" / "id_ed25519"
    key.unlink()
    _keygen(key)
    assert main(["device", "check", device["target"]]) == 2
    line = _error_line(capsys)
    assert "authentication failed" in line and "authorized_keys" in line


def test_unreachable_port_is_one_line(device, capsys):
    target = f"ssh://127.0.0.1:{_free_port()}"
    assert main(["device", "check", target]) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    assert "refused the connection" in captured.err.strip().splitlines()[-1]


def test_device_out_of_disk_is_one_line(device, tmp_path, monkeypatch, capsys):
    import dnncomp.remote as remote

    monkeypatch.setattr(remote, "FREE_DISK_MARGIN", 2**62)  # more than any disk has free
    assert main(["inspect", str(_reference()), "--on", device["target"], "--remote-python", device["python"]]) == 2
    line = _error_line(capsys)
    assert "device out of disk" in line and "MB free" in line


# ---- nothing half-copied is used; Ctrl-C stops the remote process --------------------------


def test_a_copy_cut_short_never_carries_the_final_name(device, tmp_path):
    from dnncomp.remote import Device, RemoteError

    model = tmp_path / "m.tflite"
    shutil.copy(_reference(), model)
    with Device(device["target"], remote_python=device["python"]) as d:
        remote = d.stage_models([model])[0]
        directory = Path(remote).parent
        Path(remote).unlink()
        (directory / f".{model.name}.part-dead").write_bytes(b"half")  # what a killed copy leaves behind

        async def cut_short(local, tmp):  # the connection drops after half the bytes
            async with sftp.open(tmp, "wb") as handle:
                await handle.write(Path(local).read_bytes()[:1000])
            raise asyncssh.SFTPConnectionLost("connection lost")

        sftp = d._call(d._sftp_client())
        real_put, sftp.put = sftp.put, cut_short
        with pytest.raises(RemoteError):
            d.stage_models([model])
        assert not Path(remote).exists()
        assert sorted(p.name for p in directory.iterdir() if ".part-" in p.name) == [f".{model.name}.part-dead"]
        sftp.put = real_put
        assert d.stage_models([model]) == [remote]  # copied anew, never the leftover
        assert Path(remote).read_bytes() == model.read_bytes()


def test_ctrl_c_stops_the_remote_process(device):
    import signal

    from dnncomp.remote import Device

    marker = "31.4159"

    def remote_sleeps() -> list[Path]:  # the device is this machine: its processes are in our /proc
        return [p for p in Path("/proc").iterdir() if p.name.isdigit() and marker in _cmdline(p)]

    def ctrl_c_once_it_runs():  # as a terminal's Ctrl-C, once the remote command has started
        deadline = time.monotonic() + 10
        while not remote_sleeps() and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)

    start = time.monotonic()
    with Device(device["target"], say=lambda line: None) as d:
        sender = threading.Thread(target=ctrl_c_once_it_runs, daemon=True)
        sender.start()
        with pytest.raises(KeyboardInterrupt):
            d.run_shell_streamed(f"sleep {marker}")
        sender.join()
    assert time.monotonic() - start < 20  # stopped, not waited out
    deadline = time.monotonic() + 5  # the remote sleep ends soon after the channel closes; give it up to 5 s
    while remote_sleeps() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert remote_sleeps() == []


def _cmdline(proc: Path) -> str:
    try:
        return (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


# ---- pieces ------------------------------------------------------------------------------


def test_parse_target():
    from dnncomp.remote import RemoteError, parse_target

    def parts(text):
        t = parse_target(text)
        return t.host, t.user, t.port

    assert parts("ssh://pi@raspberrypi.local:2222") == ("raspberrypi.local", "pi", 2222)
    assert parts("jetson") == ("jetson", None, None)
    assert parts("ubuntu@[fe80::1]:22") == ("fe80::1", "ubuntu", 22)
    for bad in ("http://host", "ssh://host:99999", "ssh://user@"):
        with pytest.raises(RemoteError):
            parse_target(bad)


def test_npz_dataset_round_trip_and_refuses_objects(tmp_path):
    from dnncomp.data import load_dataset
    from dnncomp.data.npz import write_test_npz
    from dnncomp.errors import DataError

    x = np.random.default_rng(0).integers(0, 256, (12, 8, 8, 3), dtype=np.uint8)
    y = np.arange(12) % 3
    path = write_test_npz(tmp_path / "t.npz", x, y, ["a", "b", "c"])
    data = load_dataset(f"npz:{path}")
    assert np.array_equal(data.x_test, x) and list(data.y_test) == list(y) and data.class_names == ["a", "b", "c"]
    assert load_dataset(f"npz:{path}", image_size=(4, 4)).x_test.shape == (12, 4, 4, 3)
    np.savez(tmp_path / "obj.npz", x_test=np.array([object()], dtype=object), y_test=y, class_names=np.array(["a"]))
    with pytest.raises(DataError):
        load_dataset(f"npz:{tmp_path / 'obj.npz'}")


DEVICE_WHEELS = Path(__file__).resolve().parents[1] / ".device-wheels"


@pytest.mark.slow  # a venv on the "device" with numpy, Pillow and ai-edge-litert from local wheels: ~20 s
def test_device_setup_installs_the_device_side(device, capsys):
    if not any(DEVICE_WHEELS.glob("ai_edge_litert-*.whl")):
        pytest.skip(f"no device wheels in {DEVICE_WHEELS}: .ci/run makes them (pip wheel -c constraints.txt -w .device-wheels .)")
    target = device["target"]
    # the device's python3; dnncomp's wheel built here, pushed with the others; pip --no-index: no network
    assert main(["device", "setup", target, "--wheels", str(DEVICE_WHEELS)]) == 0
    assert "from the pushed wheels only" in capsys.readouterr().out
    venv_python = device["work"] / "venv" / "bin" / "python"
    assert venv_python.is_file()
    capsys.readouterr()
    assert main(["device", "check", target]) == 0  # no --remote-python: the venv setup made is the default
    out = capsys.readouterr().out
    assert "ready for --on" in out and str(venv_python) in out
    # and it has no TensorFlow: the device install stays small
    done = subprocess.run(
        [str(venv_python), "-c", "import importlib.util as u; print(u.find_spec('tensorflow'))"], capture_output=True, text=True
    )
    assert done.stdout.strip() == "None"
