"""The device-side commands on a remote board over SSH: ``--on TARGET`` and ``dnncomp device``.

dnncomp on the host copies what a measurement needs to a work dir on the device (the .tflite
files with their preprocessing sidecars, and the test split as one compact npz cached by content
hash), runs the device's own dnncomp there (``python -m dnncomp.cli evaluate ... --json``),
and brings the JSON record back. Nothing is measured here: this module only orchestrates.

SSH is asyncssh's (``pip install 'dnncomp[remote]'``): keys from ``~/.ssh`` and the agent,
``~/.ssh/config`` host names, ``~/.ssh/known_hosts`` checked (an unknown host is refused unless
``accept_new_host_key``), a connect timeout. Every file is copied to a temporary name and
renamed, so a copy cut short never carries a final name and is never used. Ctrl-C (or SIGTERM)
stops the remote process group before the host gives up.

Targets: ``ssh://[user@]host[:port]``, or ``[user@]host`` / a Host name from ``~/.ssh/config``.
``$DNNCOMP_REMOTE_DIR`` overrides the device's work dir (default ``~/.cache/dnncomp-remote``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import secrets
import shlex
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DnncompError, MissingDependencyError

REMOTE_DIR_ENV = "DNNCOMP_REMOTE_DIR"
# Relative paths are the device's home: SFTP and a command's shell both start there.
DEFAULT_REMOTE_DIR = ".cache/dnncomp-remote"
# Where `dnncomp device setup` makes the device's venv, inside the work dir; --on uses its python when present.
DEVICE_VENV = "venv"
PID_MARK = "dnncomp-remote-pid "
MIN_PYTHON = (3, 10)
MIN_GLIBC = (2, 34)  # ai-edge-litert's aarch64 2.x wheels, although tagged manylinux_2_27
FREE_DISK_MARGIN = 20 * 2**20  # bytes kept free beyond what is copied: results, the npz cache's next entry


class RemoteError(DnncompError):
    """The device could not be reached, refused us, lacks the device install, or its command failed."""


@dataclass(frozen=True)
class Target:
    """Where to run: ``host`` (a name, address or ~/.ssh/config Host), optional ``user`` and ``port``."""

    text: str
    host: str
    user: str | None = None
    port: int | None = None

    def address(self) -> str:
        return f"{self.host}:{self.port}" if self.port else self.host


def parse_target(text: str) -> Target:
    """``ssh://[user@]host[:port]``, ``[user@]host`` or a ~/.ssh/config Host name -> Target.

    Raises RemoteError for an empty host, a bad port or another URL scheme.
    """
    raw = text.strip()
    rest = raw
    if "://" in raw:
        scheme, _, rest = raw.partition("://")
        if scheme != "ssh":
            raise RemoteError(f"--on {text!r}: only ssh:// targets are supported, e.g. ssh://pi@raspberrypi.local")
        rest = rest.rstrip("/")
    user, _, hostport = rest.rpartition("@")
    host, port = hostport, None
    match = re.fullmatch(r"\[(?P<h6>[^\]]+)\](?::(?P<p6>\d*))?|(?P<h>[^:]+)(?::(?P<p>[^:]*))?", hostport)
    if match is not None:
        host = match.group("h6") or match.group("h") or ""
        port_text = match.group("p6") if match.group("h6") else match.group("p")
        if port_text is not None:
            if not port_text.isdigit() or not 0 < int(port_text) < 65536:
                raise RemoteError(f"--on {text!r}: port must be a number 1..65535")
            port = int(port_text)
    if not host:
        raise RemoteError(f"--on {text!r}: no host; give ssh://[user@]host[:port] or a Host from ~/.ssh/config")
    return Target(text=raw, host=host, user=user or None, port=port)


def _asyncssh():
    try:
        import asyncssh
    except ImportError as exc:
        raise MissingDependencyError("--on and `dnncomp device` need asyncssh: pip install 'dnncomp[remote]'") from exc
    return asyncssh


def known_hosts_path() -> Path:
    return Path(os.path.expanduser("~/.ssh/known_hosts"))


def _known_host_name(host: str, port: int | None) -> str:
    return f"[{host}]:{port}" if port and port != 22 else host


# What the device has, as JSON: needs only the standard library, so it also runs where dnncomp is absent.
IDENTITY_SCRIPT = r"""
import json, os, platform, shutil, sys
def first(path):
    try:
        with open(path, errors="replace") as f:
            return f.read().strip().strip("\x00") or None
    except OSError:
        return None
def meminfo():
    out = {}
    for line in (first("/proc/meminfo") or "").splitlines():
        key, _, value = line.partition(":")
        if key in ("MemTotal", "MemAvailable") and value.split():
            out[key] = int(value.split()[0]) * 1024
    return out
osrel = {}
for line in (first("/etc/os-release") or "").splitlines():
    key, _, value = line.partition("=")
    osrel[key] = value.strip('"')
board = first("/proc/device-tree/model") or " ".join(
    p for p in (first("/sys/class/dmi/id/sys_vendor"), first("/sys/class/dmi/id/product_name")) if p) or None
workdir = os.path.expanduser(sys.argv[1])
probe = workdir
while not os.path.isdir(probe) and os.path.dirname(probe) != probe:
    probe = os.path.dirname(probe)
info = {
    "python": platform.python_version(), "python_executable": sys.executable,
    "glibc": "-".join(platform.libc_ver()), "os": osrel.get("PRETTY_NAME") or platform.platform(),
    "arch": platform.machine(), "cores": os.cpu_count(), "board": board, "hostname": platform.node(),
    "governor": first("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
    "memory": meminfo(), "workdir": workdir, "free_disk_bytes": shutil.disk_usage(probe).free,
    "jetson_release": (first("/etc/nv_tegra_release") or "").splitlines()[0:1] or None,
}
# The runtime: ai-edge-litert, else tflite-runtime (dnncomp.litert_backend's order); litert_error when neither loads.
info["runtime"], failures = None, []
for module, name in (("ai_edge_litert.interpreter", "ai-edge-litert"), ("tflite_runtime.interpreter", "tflite-runtime")):
    try:
        __import__(module)
        info["runtime"] = name
        break
    except Exception as exc:
        failures.append("%s: %s: %s" % (name, type(exc).__name__, str(exc).strip().splitlines()[0] if str(exc).strip() else ""))
info["runtime_fallback_reason"] = "; ".join(failures) or None if info["runtime"] else None
info["litert_error"] = None if info["runtime"] else "; ".join(failures)
try:
    __import__("dnncomp.cli")
    info["dnncomp_error"] = None
except Exception as exc:
    info["dnncomp_error"] = "%s: %s" % (type(exc).__name__, exc)
try:
    from importlib import metadata
    info["versions"] = {}
    for name in ("ai-edge-litert", "tflite-runtime", "tflite", "dnncomp", "numpy", "pillow"):
        try:
            info["versions"][name] = metadata.version(name)
        except Exception:
            info["versions"][name] = None
except ImportError:
    info["versions"] = {}
if info["dnncomp_error"] is None:
    from dnncomp.results import environment
    info["environment"] = environment()
print("DNNCOMP-IDENTITY " + json.dumps(info))
"""


class Device:
    """An SSH connection to a device, with the few things dnncomp does there. Use as a context manager.

    ``target``: a Target or its text. ``remote_python``: the device's interpreter (default: the venv
    `dnncomp device setup` made, else ``python3``). ``say``: a callable taking one line.
    Raises RemoteError (one line) when the device cannot be reached or refuses us.
    """

    def __init__(
        self,
        target: Target | str,
        *,
        remote_python: str | None = None,
        accept_new_host_key: bool = False,
        connect_timeout: float = 15.0,
        remote_dir: str | None = None,
        say: Callable[[str], None] = print,
        say_err: Callable[[str], None] | None = None,
    ):
        self.target = parse_target(target) if isinstance(target, str) else target
        self.accept_new_host_key = accept_new_host_key
        self.connect_timeout = connect_timeout
        self.remote_dir = (remote_dir or os.environ.get(REMOTE_DIR_ENV) or DEFAULT_REMOTE_DIR).rstrip("/")
        self.say = say
        self.say_err = say_err or say
        self._python = remote_python
        self._loop: asyncio.AbstractEventLoop | None = None
        self._conn = None
        self._sftp = None
        self._remote_pid: int | None = None
        self._identity: dict[str, Any] | None = None

    # -- connection -------------------------------------------------------------------

    def __enter__(self) -> Device:
        self.connect()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def connect(self) -> None:
        _asyncssh()
        self._loop = asyncio.new_event_loop()
        self._conn = self._call(self._connect())

    def close(self) -> None:
        if self._loop is None:
            return
        try:
            if self._sftp is not None:
                self._sftp.exit()
            if self._conn is not None:
                self._conn.close()
                self._loop.run_until_complete(asyncio.wait_for(self._conn.wait_closed(), 5))
        except (Exception, asyncio.CancelledError):
            pass  # closing a connection that already failed
        finally:
            self._loop.close()
            self._loop, self._conn, self._sftp = None, None, None

    def _call(self, coro):
        """Run ``coro`` on this device's loop; on Ctrl-C or SIGTERM stop the remote process first.

        In the main thread SIGINT and SIGTERM wake the loop (asyncio's signal handlers), the
        remote process group is killed, and then the handler that was there before runs (the
        CLI's: "interrupted", exit 130/143).
        """
        import signal
        import threading

        task = self._loop.create_task(coro)
        caught: list[int] = []
        installed: list[tuple[int, Any]] = []
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous = signal.getsignal(sig)
                try:
                    self._loop.add_signal_handler(sig, lambda s=sig: (caught.append(s), task.cancel()))
                    installed.append((sig, previous))
                except (ValueError, RuntimeError, NotImplementedError):
                    pass
        try:
            try:
                return self._loop.run_until_complete(task)
            except asyncio.CancelledError:
                if not caught:
                    raise
            except BaseException:  # a signal that reached Python another way: same cleanup
                caught.append(signal.SIGINT)
                task.cancel()
                self._stop_remote(task)
                raise
            self._stop_remote(task)
            previous = dict(installed).get(caught[0])
            if callable(previous):
                previous(caught[0], None)  # raises as that signal would have (KeyboardInterrupt, the CLI's SIGTERM)
            raise KeyboardInterrupt
        finally:
            for sig, previous in installed:
                self._loop.remove_signal_handler(sig)
                signal.signal(sig, previous)

    def _stop_remote(self, task) -> None:
        pid, self._remote_pid = self._remote_pid, None
        if pid is not None and self._conn is not None:
            try:
                self._loop.run_until_complete(asyncio.wait_for(self._kill_remote(pid), 10))
                self.say_err(f"stopped the remote process on {self.target.text}")
            except (Exception, asyncio.CancelledError):
                self.say_err(
                    f"could not stop the remote process {pid} on {self.target.text}: `ssh {self.target.address()} kill {pid}`"
                )
        if not task.done():
            try:
                self._loop.run_until_complete(task)
            except BaseException:
                pass

    async def _connect(self):
        asyncssh = _asyncssh()
        t = self.target
        options = dict(port=t.port or (), username=t.user or (), connect_timeout=self.connect_timeout)
        where = f"{t.text}"
        try:
            try:
                return await asyncssh.connect(t.host, **options)
            except asyncssh.HostKeyNotVerifiable as exc:
                key = await asyncssh.get_server_host_key(t.host, t.port or ())
                fingerprint = key.get_fingerprint() if key is not None else "unknown"
                name = _known_host_name(t.host, t.port)
                if _has_known_host(name):
                    raise RemoteError(
                        f"{where}: the host key of {name} ({fingerprint}) does not match ~/.ssh/known_hosts: refused. If the "
                        f"device was reinstalled, remove the old key with `ssh-keygen -R '{name}'` and connect again"
                    ) from exc
                if not self.accept_new_host_key:
                    raise RemoteError(
                        f"{where}: unknown host key {fingerprint} for {name} (not in ~/.ssh/known_hosts): refused. "
                        "Check the fingerprint on the device and rerun with --accept-new-host-key, or `ssh` to it once"
                    ) from exc
                _add_known_host(name, key)
                self.say(f"note: added {name}'s host key {fingerprint} to {known_hosts_path()}")
                return await asyncssh.connect(t.host, **options)
        except RemoteError:
            raise
        except asyncssh.PermissionDenied as exc:
            user = t.user or "your user (or ~/.ssh/config's User)"
            raise RemoteError(
                f"{where}: authentication failed as {user} (keys from ssh-agent and ~/.ssh tried): put your public key "
                f"in the device's ~/.ssh/authorized_keys, e.g. `ssh-copy-id {f'-p {t.port} {t.host}' if t.port else t.address()}`"
            ) from exc
        except (asyncio.TimeoutError, TimeoutError) as exc:
            raise RemoteError(
                f"{where}: no answer from {t.address()} within {self.connect_timeout:g} s; is the device on and on this network?"
            ) from exc
        except ConnectionRefusedError as exc:
            raise RemoteError(f"{where}: {t.address()} refused the connection; is sshd running there, on that port?") from exc
        except OSError as exc:
            raise RemoteError(f"{where}: cannot reach {t.address()} ({exc.strerror or exc})") from exc
        except asyncssh.Error as exc:
            raise RemoteError(f"{where}: SSH failed ({exc.reason})") from exc

    # -- commands ---------------------------------------------------------------------

    def shell(self, command: str, timeout: float | None = 120) -> tuple[int, str, str]:
        """Run a short shell command; (exit status, stdout, stderr)."""

        async def go():
            result = await asyncio.wait_for(self._conn.run(command, check=False), timeout)
            return result.exit_status if result.exit_status is not None else -1, result.stdout or "", result.stderr or ""

        return self._call(go())

    def identity(self) -> dict[str, Any]:
        """What the device is and has (see IDENTITY_SCRIPT). Raises RemoteError if its Python is missing."""
        if self._identity is None:
            python = self.python()
            status, out, err = self.shell(
                f"{_quoted_command(python)} -c {shlex.quote(IDENTITY_SCRIPT)} {shlex.quote(self.remote_dir)}"
            )
            line = next((text for text in out.splitlines() if text.startswith("DNNCOMP-IDENTITY ")), None)
            if status != 0 or line is None:
                last = (err.strip().splitlines() or ["no output"])[-1]
                if status == 127:
                    raise RemoteError(
                        f"{self.target.text}: {python} not found on the device; install Python >= 3.10 "
                        f"(`dnncomp device check {self.target.text}` says how) or pass --remote-python PATH"
                    )
                raise RemoteError(f"{self.target.text}: {python} failed on the device (exit {status}: {last})")
            self._identity = json.loads(line.split(" ", 1)[1])
        return self._identity

    def python(self) -> str:
        """The device's interpreter: --remote-python, else the venv `device setup` made, else python3."""
        if self._python is None:
            venv_python = f"{self.remote_dir}/{DEVICE_VENV}/bin/python"
            status, _, _ = self.shell(f"test -x {shlex.quote(venv_python)}")
            self._python = venv_python if status == 0 else "python3"
        return self._python

    def require_install(self) -> dict[str, Any]:
        """The identity, after checking that dnncomp's device side imports there. Raises RemoteError if not."""
        info = self.identity()
        problem = info.get("dnncomp_error") or info.get("litert_error")
        if problem:
            raise RemoteError(
                f"{self.target.text}: dnncomp's device install is missing for {self.python()} ({problem}); run "
                f"`dnncomp device setup {self.target.text}` (or pass --remote-python for a Python that has it)"
            )
        return info

    def run_dnncomp(self, args: Sequence[str]) -> int:
        """Run ``python -m dnncomp.cli ARGS`` on the device, its output shown here as it comes; its exit status.

        The remote shell prints its pid first and execs Python, so Ctrl-C here can stop that
        process group (sshd makes each session its own group) on the device.
        """
        command = " ".join([_quoted_command(self.python()), *(shlex.quote(a) for a in ("-m", "dnncomp.cli", *args))])
        return self._call(self._stream(f"echo {PID_MARK}$$; exec {command}"))

    def run_shell_streamed(self, command: str) -> int:
        """A shell command on the device, its output shown here as it comes; its exit status (Ctrl-C stops it)."""
        return self._call(self._stream(f"echo {PID_MARK}$$; {command}"))

    async def _stream(self, command: str) -> int:
        process = await self._conn.create_process(command, env={"PYTHONUNBUFFERED": "1"})

        async def pump(reader, say, marks: bool):
            async for line in reader:
                line = line.rstrip("\n")
                if marks and line.startswith(PID_MARK) and self._remote_pid is None:
                    self._remote_pid = int(line[len(PID_MARK) :])
                    continue
                if line.startswith(f"wrote {self.remote_dir}/out/"):  # the record it writes for us, not the user's file
                    continue
                say(line)

        await asyncio.gather(pump(process.stdout, self.say, True), pump(process.stderr, self.say_err, False))
        completed = await process.wait()
        self._remote_pid = None
        return completed.exit_status if completed.exit_status is not None else 128 + 1

    async def _kill_remote(self, pid: int) -> None:
        await self._conn.run(
            f"kill -INT -- -{pid} {pid} 2>/dev/null; sleep 1; kill -KILL -- -{pid} {pid} 2>/dev/null; true", check=False
        )

    # -- files ------------------------------------------------------------------------

    async def _sftp_client(self):
        if self._sftp is None:
            self._sftp = await self._conn.start_sftp_client()
        return self._sftp

    def exists(self, remote: str) -> bool:
        async def go():
            return await (await self._sftp_client()).exists(remote)

        return self._call(go())

    def free_bytes(self, remote_dir: str) -> int | None:
        async def go():
            sftp = await self._sftp_client()
            try:
                vfs = await sftp.statvfs(remote_dir)
            except Exception:  # a server without the statvfs extension: the copy itself will say
                return None
            return vfs.bavail * vfs.frsize

        return self._call(go())

    def put(self, local: Path, remote: str) -> None:
        """Copy ``local`` to ``remote`` through a temporary name, renamed only once complete.

        Raises RemoteError "device out of disk" when the device lacks the space (checked before and
        after), or another one-line RemoteError; a temporary file is removed on failure.
        """
        self._call(self._put(Path(local), remote))

    async def _put(self, local: Path, remote: str) -> None:
        asyncssh = _asyncssh()
        sftp = await self._sftp_client()
        directory, _, name = remote.rpartition("/")
        directory = directory or "."
        tmp = f"{directory}/.{name}.part-{secrets.token_hex(4)}"
        size = local.stat().st_size
        try:
            await sftp.makedirs(directory, exist_ok=True)
            free = None
            try:
                vfs = await sftp.statvfs(directory)
                free = vfs.bavail * vfs.frsize
            except asyncssh.SFTPError:
                pass
            if free is not None and free < size + FREE_DISK_MARGIN:
                raise RemoteError(self._out_of_disk(remote, size, free))
            await sftp.put(str(local), tmp)
            await sftp.posix_rename(tmp, remote)
        except asyncssh.SFTPError as exc:
            try:
                vfs = await sftp.statvfs(directory)
                free = vfs.bavail * vfs.frsize
            except asyncssh.SFTPError:
                free = None
            if free is not None and free < size + FREE_DISK_MARGIN:
                raise RemoteError(self._out_of_disk(remote, size, free)) from exc
            raise RemoteError(f"{self.target.text}: cannot write {remote} on the device ({exc.reason})") from exc
        finally:
            try:
                if await sftp.exists(tmp):
                    await sftp.remove(tmp)
            except (asyncssh.Error, OSError):
                pass

    def _out_of_disk(self, remote: str, size: int, free: int) -> str:
        return (
            f"{self.target.text}: device out of disk: {remote} needs {(size + FREE_DISK_MARGIN) / 2**20:.1f} MB with "
            f"margin, {free / 2**20:.1f} MB free; free space there or set ${REMOTE_DIR_ENV} to a larger disk"
        )

    def get_json(self, remote: str) -> Any:
        """Fetch a JSON file the device wrote and remove it there."""

        async def go():
            sftp = await self._sftp_client()
            async with sftp.open(remote, "rb") as handle:
                data = await handle.read()
            await sftp.remove(remote)
            return json.loads(data)

        return self._call(go())

    # -- staging ----------------------------------------------------------------------

    def stage_models(self, paths: Sequence[Path]) -> list[str]:
        """Copy each .tflite with its preprocessing sidecar (if any) to the device; their remote paths.

        Each goes to ``models/<hash of model and sidecar>/<its file name>``: the name keeps the
        variant's name, the hash dir makes a copied model reusable; the sidecar is copied first
        and the model last, so a model's final name there means both are complete.
        """
        from .preprocess import sidecar_path

        remote_paths = []
        for path in paths:
            sidecar = sidecar_path(path)
            digest = hashlib.sha256(Path(path).read_bytes())
            if sidecar.is_file():
                digest.update(sidecar.read_bytes())
            directory = f"{self.remote_dir}/models/{digest.hexdigest()[:16]}"
            remote = f"{directory}/{Path(path).name}"
            if not self.exists(remote):
                if sidecar.is_file():
                    self.put(sidecar, f"{directory}/{sidecar.name}")
                self.put(Path(path), remote)
            remote_paths.append(remote)
        return remote_paths

    def stage_test_split(self, x_test: np.ndarray, y_test: np.ndarray, class_names: Sequence[str]) -> str:
        """The test split as an npz on the device, cached by content hash; its remote path."""
        from .data.npz import write_test_npz

        digest = hashlib.sha256()
        for array in (np.ascontiguousarray(x_test, dtype=np.uint8), np.asarray(y_test, dtype=np.int64)):
            digest.update(str(array.shape).encode())
            digest.update(array.tobytes())
        digest.update("\n".join(map(str, class_names)).encode())
        remote = f"{self.remote_dir}/data/{digest.hexdigest()[:16]}.npz"
        if self.exists(remote):
            self.say(f"test split: {len(y_test)} images already on the device ({remote})")
            return remote
        with tempfile.TemporaryDirectory(prefix="dnncomp-remote-") as tmp:
            local = write_test_npz(Path(tmp) / "test.npz", x_test, y_test, class_names)
            self.say(f"test split: copying {len(y_test)} images ({local.stat().st_size / 2**20:.1f} MB) to {remote}")
            self.put(local, remote)
        return remote

    def result_path(self) -> str:
        return f"{self.remote_dir}/out/{secrets.token_hex(6)}.json"

    def ensure_dir(self, remote_dir: str) -> None:
        async def go():
            await (await self._sftp_client()).makedirs(remote_dir, exist_ok=True)

        self._call(go())


def _quoted_command(python: str) -> str:
    """--remote-python as the device's shell runs it: a path, or a command with arguments
    (``docker exec -i dnncomp python``), each word quoted."""
    return " ".join(shlex.quote(word) for word in shlex.split(python))


def _has_known_host(name: str) -> bool:
    path = known_hosts_path()
    if not path.is_file():
        return False
    for line in path.read_text(errors="replace").splitlines():
        fields = line.split()
        if len(fields) >= 2 and not line.startswith("#") and name in fields[0].split(","):
            return True
        if fields and fields[0].startswith("|1|"):  # hashed entries: let asyncssh match them
            asyncssh = _asyncssh()
            try:
                host, _, port = name.strip("[").partition("]:")
                trusted = asyncssh.import_known_hosts(line + "\n").match(host, "", int(port) if port else 22)
                if any(trusted[:3]):
                    return True
            except (ValueError, asyncssh.Error):
                continue
    return False


def _add_known_host(name: str, key) -> None:
    from .fileio import atomic_write_text

    path = known_hosts_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    existing = path.read_text() if path.is_file() else ""
    if existing and not existing.endswith("\n"):
        existing += "\n"
    atomic_write_text(path, existing + f"{name} {key.export_public_key('openssh').decode().strip()}\n")


# ---- device identity --------------------------------------------------------------------


def device_environment(identity: dict[str, Any], target: Target) -> dict[str, Any]:
    """The device's results environment (from its own dnncomp) plus what only the identity probe reads."""
    env = dict(identity.get("environment") or {})
    env["remote"] = {
        "target": target.text,
        "os": identity.get("os"),
        "glibc": identity.get("glibc"),
        "cores": identity.get("cores"),
        "governor": identity.get("governor"),
        "memory_bytes": (identity.get("memory") or {}).get("MemTotal"),
        "litert": (identity.get("versions") or {}).get("ai-edge-litert"),
        "python_executable": identity.get("python_executable"),
        "runtime": runtime_label(identity),
    }
    return env


def runtime_label(identity: dict[str, Any]) -> str:
    """The device's LiteRT runtime and version as results record it: ``"ai-edge-litert 2.3.0"``, ``"tflite-runtime 2.14.0"``.

    From the device's own dnncomp (its environment's ``runtime``) when it has one, else from the identity probe.
    """
    record = (identity.get("environment") or {}).get("runtime") or {}
    name = record.get("name") or identity.get("runtime")
    if not name:
        return "no LiteRT runtime"
    version = record.get("version") or (identity.get("versions") or {}).get(name)
    return f"{name} {version}" if version else name


def describe_device(identity: dict[str, Any]) -> str:
    """One line: board or host, CPU, cores, OS, glibc, Python, LiteRT, governor."""
    env = identity.get("environment") or {}
    parts = [
        identity.get("board") or identity.get("hostname") or "?",
        env.get("cpu_model") or identity.get("arch"),
        f"{identity.get('cores')} cores",
        identity.get("os"),
        identity.get("glibc"),
        f"Python {identity.get('python')}",
        runtime_label(identity),
    ]
    if identity.get("governor"):
        parts.append(f"governor {identity['governor']}")
    return ", ".join(str(p) for p in parts if p)


# ---- measurements on the device --------------------------------------------------------


def measure_on_device(
    device: Device, command: str, models: Sequence[Path], data, args: Sequence[str], dataset: str | None
) -> dict[str, Any]:
    """Run ``dnncomp COMMAND`` (evaluate or bench) on the device for ``models`` on ``data``'s test split.

    ``args``: the command's other options, passed through. Returns the device's results record
    with the host's dataset name and model paths, and the device's identity in ``environment``.
    Raises RemoteError when the device lacks the install or its command fails.
    """
    identity = device.require_install()
    device.say(f"device: {describe_device(identity)}")
    remote_models = device.stage_models(models)
    npz = device.stage_test_split(data.x_test, data.y_test, list(getattr(data, "class_names", []) or range(data.num_classes)))
    out = device.result_path()
    device.ensure_dir(out.rpartition("/")[0])
    status = device.run_dnncomp([command, *remote_models, "--dataset", f"npz:{npz}", *args, "--json", out])
    if status != 0:
        raise RemoteError(f"{device.target.text}: `dnncomp {command}` failed on the device (exit {status}; its error is above)")
    document = device.get_json(out)
    return localize_document(document, models, remote_models, dataset, identity, device.target)


def localize_document(
    document: dict[str, Any],
    models: Sequence[Path],
    remote_models: Sequence[str],
    dataset: str | None,
    identity: dict[str, Any],
    target: Target,
) -> dict[str, Any]:
    """The device's record with the host's names: dataset, artifact paths; its environment labelled."""
    by_remote = {r: str(m) for r, m in zip(remote_models, models)}
    document["dataset"] = dataset
    for variant in document.get("variants", []):
        variant["artifact"] = by_remote.get(variant.get("artifact"), variant.get("artifact"))
    document["environment"] = device_environment(identity, target) if identity.get("environment") else document.get("environment")
    document.setdefault("environment", {})["remote"] = device_environment(identity, target)["remote"]
    return document


def inspect_on_device(device: Device, models: Sequence[Path], args: Sequence[str]) -> dict[str, Any]:
    """``dnncomp inspect`` on the device (its output shown here); the anatomies keyed by the host's paths."""
    identity = device.require_install()
    device.say(f"device: {describe_device(identity)}")
    remote_models = device.stage_models(models)
    out = device.result_path()
    device.ensure_dir(out.rpartition("/")[0])
    status = device.run_dnncomp(["inspect", *remote_models, *args, "--json", out])
    if status != 0:
        raise RemoteError(f"{device.target.text}: `dnncomp inspect` failed on the device (exit {status}; its error is above)")
    anatomies = device.get_json(out)
    return {str(m): anatomies.get(r) for m, r in zip(models, remote_models)}


def evaluate_run_on_device(
    device: Device,
    run_dir: Path,
    dataset: str,
    *,
    first_n: int,
    threads: int,
    data_dir=None,
    skip_bad: bool = False,
    state_dir: Path | None = None,
    wait: bool = False,
    min_count: int = 200,
    min_seconds: float = 2.0,
) -> dict[str, Any]:
    """``run DATASET --eval-only --on``: evaluate the run's LiteRT variants on the device, stored as its own records.

    Each variant's record goes into the manifest's ``measurements[<device machine id>]`` with
    the inputs an evaluation records (artifact hash, data fingerprint, first_n, latency settings,
    machine, runtime); results.json is rewritten by the next host ``run`` (the caller reruns it).
    ``min_count``/``min_seconds``: the device's latency timing (``run --min-count/--min-seconds``).
    Returns the device's environment. Raises RemoteError / RunError.
    """
    from .bench import LatencyConfig
    from .errors import RunError
    from .fileio import sha256_file
    from .measure import load_for_model
    from .results import measured_on_record, now_iso
    from .run import Manifest, _jsonable, load_results, run_dir_lock

    results = load_results(state_dir or run_dir)
    variants = [v for v in results.get("variants", []) if v.get("runtime") == "litert" and (run_dir / v["artifact"]).is_file()]
    if not variants:
        raise RunError(f"{run_dir}: no LiteRT variants to evaluate on the device")
    paths = [run_dir / v["artifact"] for v in variants]
    identity = device.require_install()
    device.say(f"device: {describe_device(identity)}")
    env = device_environment(identity, device.target)
    machine = env.get("machine_id") or f"ssh:{device.target.text}"
    manifest = Manifest(run_dir, state_dir)
    fingerprint = (manifest.data.get("data") or {}).get("fingerprint")
    data = load_for_model(dataset, paths[0], data_dir, skip_bad=skip_bad)
    remote_models = device.stage_models(paths)
    npz = device.stage_test_split(data.x_test, data.y_test, list(data.class_names))
    config = LatencyConfig(threads=threads, min_count=min_count, min_seconds=min_seconds)
    records = {}
    for variant, path, remote in zip(variants, paths, remote_models):
        out = device.result_path()
        device.ensure_dir(out.rpartition("/")[0])
        device.say(f"{variant['name']}: on {device.target.text}")
        status = device.run_dnncomp(
            [
                "evaluate",
                remote,
                "--dataset",
                f"npz:{npz}",
                "--first-n",
                str(first_n),
                "--threads",
                str(threads),
                "--min-count",
                str(config.min_count),
                "--min-seconds",
                str(config.min_seconds),
                "--json",
                out,
            ]
        )
        if status != 0:
            raise RemoteError(
                f"{device.target.text}: `dnncomp evaluate` of {path.name} failed on the device (exit {status}; its error is above)"
            )
        record = device.get_json(out)["variants"][0]
        runtime = env["remote"]["runtime"]
        record.update(name=variant["name"], artifact=path.name)
        for key in ("recipe", "compression_check"):  # what the artifact holds: the same file on both machines
            if key in variant:
                record[key] = variant[key]
        record["measured_on"] = measured_on_record(env, machine, runtime, target=device.target.text)
        inputs = {
            "artifact": sha256_file(path),
            "data": fingerprint,
            "first_n": first_n,
            "latency": _jsonable(vars(config)),
            "machine": machine,
            "runtime": runtime,
        }
        records[f"evaluate:{variant['name']}"] = {
            "inputs": _jsonable(inputs),
            "outputs": {},
            "finished": now_iso(),
            "record": _jsonable(record),
        }
    with run_dir_lock(state_dir or run_dir, wait=wait, say=device.say):
        manifest = Manifest(run_dir, state_dir)  # again, under the lock
        manifest.note_machine(machine, env)
        manifest.measurements[machine].setdefault("stages", {}).update(records)
        manifest.save()
    return env


def side_by_side_rows(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Headers and rows: each variant's accuracy and p50 latency on every machine that measured it.

    The machines and their labels are :meth:`dnncomp.results.ResultsDocument.machines` (this machine
    first), the same the report's results table uses.
    """
    from .results import ResultsDocument, format_value

    machines = ResultsDocument.from_json(results).machines()
    names = list(dict.fromkeys(name for machine in machines for name in machine.variants))
    headers = ["variant"] + [f"{machine.label} {what}" for machine in machines for what in ("acc %", "p50 ms")]
    rows = []
    for name in names:
        row = [name]
        for machine in machines:
            record = machine.variants.get(name)
            row.append(format_value(record.accuracy.full if record and record.accuracy else None, "pct"))
            row.append(format_value(record.latency.p50_ms if record and record.latency else None, "ms"))
        rows.append(row)
    return headers, rows


def print_side_by_side(results: dict[str, Any], console=None) -> None:
    """The host and each device in one table (from results.json ``measurements``)."""
    from rich.table import Table

    from .measure import rich_console

    headers, rows = side_by_side_rows(results)
    table = Table(title="every machine side by side (batch 1)", title_justify="left")
    for i, header in enumerate(headers):
        table.add_column(header, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    (console or rich_console()).print(table)


# ---- device check / setup --------------------------------------------------------------

MIN_FREE_DISK = 300 * 2**20  # a venv with numpy, Pillow and ai-edge-litert, plus the work dir
MIN_MEMORY = 512 * 2**20


@dataclass
class Check:
    """One thing the device has or lacks; ``fix`` is the exact command(s) that fix it."""

    name: str
    ok: bool
    found: str
    fix: str = ""


def _version_tuple(text: str | None) -> tuple[int, ...]:
    numbers = re.findall(r"\d+", text or "")
    return tuple(int(n) for n in numbers[:3])


def device_checks(device: Device) -> list[Check]:
    """What the device has and lacks for dnncomp's device side, each with the commands that fix it.

    Never raises for a missing piece (it is a failed Check); RemoteError only when the device
    cannot be reached.
    """
    target = device.target.text
    try:
        info = device.identity()
    except RemoteError as exc:
        return [
            Check(
                "python",
                False,
                str(exc).split(": ", 1)[-1],
                "sudo apt-get install -y python3 python3-venv   (Debian, Ubuntu, Raspberry Pi OS, JetPack)",
            )
        ]
    checks = []
    python = _version_tuple(info.get("python"))
    checks.append(
        Check(
            "python >= 3.10",
            python >= MIN_PYTHON,
            f"{info.get('python')} ({info.get('python_executable')})",
            ""
            if python >= MIN_PYTHON
            else "install Python 3.10+ (e.g. Raspberry Pi OS bookworm, JetPack 6), or use the container route in docs/DEVICE.md",
        )
    )
    glibc = _version_tuple((info.get("glibc") or "").rpartition("-")[2])
    needs_glibc = info.get("arch") in ("aarch64", "arm64")
    # tflite-runtime (the fallback) needs only glibc 2.27: a device where it loads passes, and says so.
    fallback = info.get("runtime") == "tflite-runtime"
    glibc_ok = not needs_glibc or (bool(glibc) and glibc >= MIN_GLIBC) or fallback
    checks.append(
        Check(
            "glibc >= 2.34 (ai-edge-litert on aarch64)",
            glibc_ok,
            f"{info.get('glibc') or 'unknown'} on {info.get('arch')}" + (" (tflite-runtime in use instead)" if fallback else ""),
            ""
            if glibc_ok
            else "upgrade the OS (Ubuntu 22.04+/JetPack 6, Debian 12), use tflite-runtime "
            "(pip install 'dnncomp[device-legacy]') or the container route in docs/DEVICE.md",
        )
    )
    litert_ok = info.get("litert_error") is None
    dnncomp_ok = info.get("dnncomp_error") is None
    setup = f"dnncomp device setup {target}"
    found = runtime_label(info) if litert_ok else info.get("litert_error") or "?"
    if litert_ok and info.get("runtime_fallback_reason"):
        found += f" (ai-edge-litert does not load: {info['runtime_fallback_reason'].partition(': ')[2]})"
    checks.append(
        Check("LiteRT runtime loads (ai-edge-litert, else tflite-runtime)", litert_ok, found, "" if litert_ok else setup)
    )
    checks.append(
        Check(
            "dnncomp device install",
            dnncomp_ok,
            (info.get("versions") or {}).get("dnncomp") or info.get("dnncomp_error") or "?",
            "" if dnncomp_ok else setup + "   (or with --wheels DIR for a device without internet)",
        )
    )
    free = info.get("free_disk_bytes") or 0
    checks.append(
        Check(
            "free disk >= 300 MB",
            free >= MIN_FREE_DISK,
            f"{free / 2**20:,.0f} MB at {info.get('workdir')}",
            "" if free >= MIN_FREE_DISK else f"free space there, or set ${REMOTE_DIR_ENV} to a larger disk",
        )
    )
    memory = (info.get("memory") or {}).get("MemTotal") or 0
    checks.append(
        Check(
            "memory >= 512 MB",
            memory >= MIN_MEMORY,
            f"{memory / 2**20:,.0f} MB total, {((info.get('memory') or {}).get('MemAvailable') or 0) / 2**20:,.0f} MB available",
            ""
            if memory >= MIN_MEMORY
            else "close other programs or add swap: sudo fallocate -l 1G /swapfile && "
            "sudo mkswap /swapfile && sudo swapon /swapfile",
        )
    )
    return checks


def _project_root() -> Path | None:
    """The source checkout this dnncomp runs from (an editable install), if any."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").is_file() else None


def build_own_wheel(out_dir: Path, say: Callable[[str], None]) -> Path:
    """dnncomp's own wheel, built from this checkout with pip (no network: the build backend is installed).

    Raises RemoteError when this dnncomp is not a source checkout or the build fails.
    """
    import subprocess
    import sys

    root = _project_root()
    if root is None:
        raise RemoteError(
            "dnncomp is not installed from a source checkout here: put its wheel in a directory and pass --wheels DIR"
        )
    say(f"building dnncomp's wheel from {root}")
    command = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out_dir), str(root)]
    # The installed build backend first (no network); an isolated build (setuptools from the registry) if it is too old.
    done = subprocess.run(command[:5] + ["--no-build-isolation"] + command[5:], capture_output=True, text=True)
    if done.returncode != 0 or not list(out_dir.glob("dnncomp-*.whl")):
        done = subprocess.run(command, capture_output=True, text=True)
    wheels = sorted(out_dir.glob("dnncomp-*.whl"))
    if done.returncode != 0 or not wheels:
        last = (done.stderr.strip().splitlines() or ["no wheel written"])[-1]
        raise RemoteError(f"building dnncomp's wheel failed ({last})")
    return wheels[-1]


def legacy_runtime_needed(info: dict[str, Any]) -> bool:
    """True for an aarch64 device whose glibc is older than ai-edge-litert's 2.34: it needs tflite-runtime."""
    glibc = _version_tuple((info.get("glibc") or "").rpartition("-")[2])
    return info.get("arch") in ("aarch64", "arm64") and bool(glibc) and glibc < MIN_GLIBC


def setup_device(device: Device, wheels: Path | None = None) -> str:
    """Install dnncomp's device side into a venv on the device; returns that venv's python.

    dnncomp's own wheel is built here and pushed; its dependencies come from the registries the
    device reaches, or, with ``wheels`` (a directory of .whl files, pushed too), from those alone
    (``pip --no-index``). An aarch64 device with glibc < 2.34 gets ``dnncomp[device-legacy]``
    (tflite-runtime beside ai-edge-litert, which installs there but cannot load). Raises RemoteError
    when the device's Python is too old, pip fails (its last line), or the install does not import afterwards.
    """
    info = device.identity()
    venv = f"{device.remote_dir}/{DEVICE_VENV}"
    if _version_tuple(info.get("python")) < MIN_PYTHON:
        raise RemoteError(
            f"{device.target.text}: Python {info.get('python')} is older than 3.10; see `dnncomp device check {device.target.text}`"
        )
    with tempfile.TemporaryDirectory(prefix="dnncomp-wheel-") as tmp:
        local = sorted(Path(wheels).glob("*.whl")) if wheels else []
        if not any(w.name.startswith("dnncomp-") for w in local):
            local.append(build_own_wheel(Path(tmp), device.say))
        remote_dir = f"{device.remote_dir}/wheels"
        remote_wheels = []
        for wheel in local:
            remote = f"{remote_dir}/{wheel.name}"
            device.put(wheel, remote)
            remote_wheels.append(remote)
    own = next(r for r in remote_wheels if r.rpartition("/")[2].startswith("dnncomp-"))
    if legacy_runtime_needed(info):  # ai-edge-litert's aarch64 libraries would install but not load there
        device.say(
            f"{device.target.text}: glibc {info.get('glibc')} on {info.get('arch')} is older than 2.34: installing "
            "dnncomp[device-legacy] (tflite-runtime, used where ai-edge-litert cannot load)"
        )
        own += "[device-legacy]"
    python = shlex.quote(info.get("python_executable") or device.python())
    pip = shlex.quote(f"{venv}/bin/python") + " -m pip"
    offline = f" --no-index --find-links {shlex.quote(remote_dir)}" if wheels else ""
    device.say(
        f"creating {venv} on {device.target.text} and installing {own.rpartition('/')[2]}"
        + (" from the pushed wheels only" if wheels else " (dependencies from the registries the device reaches)")
    )
    # --no-compile: pip would byte-compile every file of every package (numpy's tests included), which on an SD card
    # costs more than the install; Python compiles what is imported on first use, into this user-owned venv.
    command = (
        f"{python} -m venv {shlex.quote(venv)} && "
        f"{pip} install --disable-pip-version-check --quiet --no-compile{offline} {shlex.quote(own)}"
    )
    status = device.run_shell_streamed(command)
    if status != 0:
        raise RemoteError(
            f"{device.target.text}: installing the device side failed (exit {status}; pip's error is above)"
            + ("" if wheels else "; a device without internet needs --wheels DIR (pip download --platform ...)")
        )
    device._python, device._identity = f"{venv}/bin/python", None
    device.require_install()
    return f"{venv}/bin/python"
