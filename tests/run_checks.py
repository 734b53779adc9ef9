"""What tests and benchmarks/kill_resume.py check of a `dnncomp run` directory, in one place.

``run_args`` is the small run's command line; ``run_dir_problems`` says what a user relying on a run
dir after a crash or a stop would find wrong with it. Imports no TensorFlow.
"""

from __future__ import annotations

import json
from pathlib import Path

from dnncomp.fileio import TEMP_GLOB, sha256_file
from dnncomp.run import HOLDER_NAME


def run_args(data_dir: Path, out: Path, techniques: str, limit: int, *extra: str) -> list[str]:
    """``dnncomp run mnist`` on the mnist.npz in ``data_dir``, one epoch, ``techniques`` (comma-separated)."""
    return [
        "run",
        "mnist",
        "--data-dir",
        str(data_dir),
        "--out",
        str(out),
        "--epochs",
        "1",
        "--techniques",
        techniques,
        "--limit",
        str(limit),
        *extra,
    ]


def run_dir_problems(run_dir: Path) -> list[str]:
    """What is wrong with a run dir (empty: nothing): an output whose sha256 is not the manifest's, a
    temporary file (an interrupted atomic write), or the lock-holder file left behind."""
    manifest = run_dir / "manifest.json"
    stages = json.loads(manifest.read_text()).get("stages", {}) if manifest.is_file() else {}
    problems = [
        f"{name}: sha256 differs from the manifest"
        for entry in stages.values()
        for name, digest in entry.get("outputs", {}).items()
        if not (run_dir / name).is_file() or sha256_file(run_dir / name) != digest
    ]
    leftovers = [p.name for p in run_dir.rglob(TEMP_GLOB)] + ([HOLDER_NAME] if (run_dir / HOLDER_NAME).exists() else [])
    if leftovers:
        problems.append(f"left behind: {', '.join(sorted(leftovers))}")
    return problems
