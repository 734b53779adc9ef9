"""Shared fixtures.

Real data: tests marked ``realdata`` use the datasets laid out by
``../shared/datasets/prepare``. The directory is $DNNCOMP_TEST_DATA if set, else
``.data/`` in the project root, which is prepared on first use when the shared
``prepare`` script is beside the project (as in CI).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED = PROJECT_ROOT.parent / "shared"
REFERENCE_MODELS = SHARED / "reference-models"
KAGGLE_SAMPLE = SHARED / "datasets" / "gtsrb-kaggle-sample"


def _prepared(path: Path) -> bool:
    return (
        (path / "mnist.npz").is_file()
        and (path / "cifar-10-batches-py" / "test_batch").is_file()
        and (path / "GTSRB" / "Final_Test" / "GT-final_test.csv").is_file()
    )


def pytest_configure(config):
    """Session-wide: no test (session fixtures included) reads or writes the user's real cache."""
    import tempfile

    os.environ["DNNCOMP_CACHE_DIR"] = tempfile.mkdtemp(prefix="dnncomp-test-cache-")
    os.environ.pop("DNNCOMP_DATA_DIR", None)


# The fast lane (-m "not tf and not plots") is the device side: what it must never have imported.
_LANE_FORBIDDEN = {"tf": ("tensorflow", "tf_keras", "keras", "tensorflow_model_optimization"), "plots": ("matplotlib",)}
_first_leak: dict[str, str] = {}
_lane_errors: list[str] = []


def _lane_leaks(config) -> list[str]:
    """Forbidden modules in sys.modules, given the markers -m deselects (none when -m deselects neither)."""
    markexpr = config.getoption("markexpr", "") or ""
    return [
        name
        for marker, names in _LANE_FORBIDDEN.items()
        if re.search(rf"\bnot\s+{marker}\b", markexpr)
        for name in names
        if name in sys.modules
    ]


def pytest_collection_finish(session):
    for name in _lane_leaks(session.config):
        _first_leak.setdefault(name, "collecting the test modules")


def pytest_runtest_logfinish(nodeid, location):
    # Checked after every test (a set lookup) so the failure names the unmarked test that imported it.
    for name in (*_LANE_FORBIDDEN["tf"], *_LANE_FORBIDDEN["plots"]):
        if name in sys.modules:
            _first_leak.setdefault(name, nodeid)


def pytest_sessionfinish(session, exitstatus):
    """A run with -m "not tf" (or "not plots") fails if anything it ran imported TensorFlow (or matplotlib).

    That lane is what a device install (no TensorFlow, no matplotlib) can run; an unmarked test that
    reaches TensorFlow would otherwise pass here and fail there.
    """
    leaks = _lane_leaks(session.config)
    if leaks:
        _lane_errors.extend(
            f"-m {session.config.getoption('markexpr')!r} deselects what needs {name}, yet it was imported (first seen "
            f"after {_first_leak.get(name, 'the session')}): mark that test or module pytest.mark.tf (TensorFlow, "
            "Keras, TFMOT) or pytest.mark.plots (matplotlib)"
            for name in leaks
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter):
    if _lane_errors:
        terminalreporter.section("device-side lane", red=True)
        for message in _lane_errors:
            terminalreporter.write_line(f"error: {message}", red=True)


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """The prepared real datasets (MNIST, CIFAR-10, GTSRB), preparing them if needed."""
    target = Path(os.environ.get("DNNCOMP_TEST_DATA", PROJECT_ROOT / ".data"))
    if not _prepared(target):
        prepare = SHARED / "datasets" / "prepare"
        if not prepare.exists():
            pytest.skip(f"real datasets not found in {target} and no {prepare} to lay them out")
        subprocess.run(["bash", str(prepare), str(target)], check=True, env={**os.environ, "PYTHON": sys.executable})
    return target


@pytest.fixture(scope="session")
def real_gtsrb(real_data_dir, tmp_path_factory):
    """(cold, warm, cold_s, warm_s): real GTSRB at the study's 30x30, decoded once (cold), then loaded from the cache.

    The decode (20 s) is the slowest step of the device-side lane, so it happens once per session: the
    entry it wrote is copied into the per-test cache (``_isolated_cache``'s directory), where every later
    30x30 load of real GTSRB finds it. Session fixtures run before that per-test isolation, so this one
    decodes into a fresh directory of its own (the cold load is cold whatever ran before).
    """
    import shutil
    import time

    from dnncomp.data import load_dataset

    own = tmp_path_factory.mktemp("gtsrb-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DNNCOMP_CACHE_DIR", str(own))
        start = time.perf_counter()
        cold = load_dataset("gtsrb", data_dir=real_data_dir, image_size=(30, 30), download=False)
        cold_s = time.perf_counter() - start
        start = time.perf_counter()
        warm = load_dataset("gtsrb", data_dir=real_data_dir, image_size=(30, 30), download=False)
        warm_s = time.perf_counter() - start
    shared = _test_cache_dir(tmp_path_factory) / "decoded"
    shared.mkdir(parents=True, exist_ok=True)
    for entry in (own / "decoded").glob("*.npz"):
        shutil.copy2(entry, shared / entry.name)
    return cold, warm, cold_s, warm_s


@pytest.fixture(scope="module")
def mnist_test(real_data_dir):
    """(x_test, y_test) of real MNIST: uint8 NHWC images and int64 labels."""
    from device_models import mnist

    _, _, x, y = mnist(real_data_dir)
    return x, y


@pytest.fixture(scope="session")
def reference_models_dir() -> Path:
    if not REFERENCE_MODELS.is_dir():
        pytest.skip(f"{REFERENCE_MODELS} not found")
    return REFERENCE_MODELS


@pytest.fixture(scope="session")
def kaggle_sample_dir() -> Path:
    if not KAGGLE_SAMPLE.is_dir():
        pytest.skip(f"{KAGGLE_SAMPLE} not found")
    return KAGGLE_SAMPLE


def _test_cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.getbasetemp() / "dnncomp-cache"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Never let a test read or write the user's real cache or data directory."""
    monkeypatch.setenv("DNNCOMP_CACHE_DIR", str(_test_cache_dir(tmp_path_factory)))
    monkeypatch.delenv("DNNCOMP_DATA_DIR", raising=False)


CASES = SHARED / "cases"


@pytest.fixture(scope="session")
def case_inputs(real_data_dir, tmp_path_factory):
    """``case_inputs("10-uint8-input-pixel-range")`` -> the directory holding that shared case's inputs.

    Each case in ../shared/cases is a failure users reported in public, rebuilt by its ``make.py``
    from small subsets of the real datasets. Inputs are built once per test session (make.py is
    seeded); a case folder that is not there skips the test.
    """
    built: dict[str, Path] = {}
    root = tmp_path_factory.mktemp("cases")

    def build(name: str) -> Path:
        if name in built:
            return built[name]
        make = CASES / name / "make.py"
        if not make.is_file():
            pytest.skip(f"{make} not found")
        out = root / name
        out.mkdir()
        env = {**os.environ, "DNNCOMP_CASES_DATA": str(real_data_dir), "TF_CPP_MIN_LOG_LEVEL": "3"}
        subprocess.run([sys.executable, str(make), str(out)], check=True, env=env, cwd=out, capture_output=True)
        built[name] = out
        return out

    return build
