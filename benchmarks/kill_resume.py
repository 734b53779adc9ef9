"""Kill `dnncomp run` at random moments and check that the same command resumes to a sound run dir.

    python benchmarks/kill_resume.py --trials 10                    # SIGKILL, as a crash or OOM kill would
    python benchmarks/kill_resume.py --trials 5 --signal TERM       # the polite stop, for comparison

A small real-data run: the first ``--train`` training and ``--test`` test images of the real MNIST
(written as an mnist.npz in a temporary data dir), the study's MNIST model, one epoch, recipes
``--techniques`` (default float,qat,cluster). First one uninterrupted reference run gives the run's
duration T; then each trial starts the same command in a fresh out dir, sends the signal at a moment
drawn uniformly from (0, T) (seeded: ``--seed``), and reruns the command once to completion. A trial
that finished before its moment lowers T to that moment (on a shared machine the reference run may
have been slowed down by other work).

Each trial checks what a user relies on after a crash:
- the rerun exits 0 and results.json lists every variant;
- every artifact's sha256 equals the manifest's record of it;
- no temporary file (``.*.part*``) and no lock-holder file is left in the run dir;
- no stage that had finished before the kill was redone (its manifest entry is unchanged);
- the stage the kill hit is named (from the run's progress lines).

Prints one line per trial and a summary; ``--json`` writes the trials. Exit status 1 if any check failed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]

from dnncomp.fileio import TEMP_GLOB, atomic_write_json  # noqa: E402
from run_checks import run_args, run_dir_problems  # noqa: E402  (the tests' checks of a run dir)


def small_mnist(data_dir: Path, dest: Path, n_train: int, n_test: int) -> Path:
    """The first images of the real MNIST, in its own file format, so dnncomp's loader reads them."""
    with np.load(data_dir / "mnist.npz") as z:
        parts = {
            "x_train": z["x_train"][:n_train],
            "y_train": z["y_train"][:n_train],
            "x_test": z["x_test"][:n_test],
            "y_test": z["y_test"][:n_test],
        }
    dest.mkdir(parents=True, exist_ok=True)
    np.savez(dest / "mnist.npz", **parts)
    return dest


def command(data_dir: Path, out: Path, techniques: str) -> list[str]:
    return [sys.executable, "-m", "dnncomp.cli", *run_args(data_dir, out, techniques, 100)]


def run_to_end(cmd: list[str], log: Path) -> tuple[int, float]:
    start = time.perf_counter()
    with open(log, "w") as fh:
        rc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=fh, env=_env()).returncode
    return rc, time.perf_counter() - start


def _env() -> dict[str, str]:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    return env


def stage_at(log: Path) -> str:
    """The stage the kill hit, from the last progress line before it (``compress:qat``, ``evaluate:float``...)."""
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.startswith("[")]
    if not lines:
        return "(before the first stage)"
    name, _, rest = lines[-1].split("] ", 1)[-1].partition(": ")
    for prefix, stage in (
        ("accuracy", f"evaluate:{name}"),
        ("compressing", f"compress:{name}"),
        ("training", "baseline"),
        ("up to date", f"after {name}"),
    ):
        if rest.startswith(prefix):
            return stage
    return name[:40]


def manifest(run_dir: Path) -> dict:
    path = run_dir / "manifest.json"
    return json.loads(path.read_text()) if path.is_file() else {"stages": {}}


def check(run_dir: Path, before_kill: dict, techniques: list[str]) -> list[str]:
    """What is wrong with the resumed run dir (empty: nothing)."""
    problems = run_dir_problems(run_dir)
    after = manifest(run_dir)
    for stage, entry in before_kill.get("stages", {}).items():
        if after["stages"].get(stage, {}).get("finished") != entry.get("finished"):
            problems.append(f"{stage}: finished before the kill but redone")
    results = run_dir / "results.json"
    names = [v["name"] for v in json.loads(results.read_text())["variants"]] if results.is_file() else []
    missing = [t for t in ["baseline-keras", *techniques] if t not in names]
    if missing:
        problems.append(f"results.json lacks {', '.join(missing)}")
    return problems


def trial(i: int, moment: float, sig: int, cmd_for, work: Path, techniques: list[str]) -> dict:
    out = work / f"trial-{i:02d}"
    run_dir = out / "mnist" / "study-mnist"
    log = work / f"trial-{i:02d}.log"
    with open(log, "w") as fh:
        process = subprocess.Popen(cmd_for(out), stdout=subprocess.DEVNULL, stderr=fh, env=_env())
        try:
            process.wait(timeout=moment)
            killed = False  # finished before the moment came
        except subprocess.TimeoutExpired:
            process.send_signal(sig)
            process.wait()
            killed = True
    before = manifest(run_dir)
    temp_after_kill = len(list(run_dir.glob(TEMP_GLOB))) if run_dir.is_dir() else 0
    rc, resume_s = run_to_end(cmd_for(out), work / f"trial-{i:02d}-resume.log")
    problems = [] if rc == 0 else [f"resume exited {rc} (see {work / f'trial-{i:02d}-resume.log'})"]
    problems += check(run_dir, before, techniques) if run_dir.is_dir() else ["no run dir"]
    return {
        "trial": i,
        "kill_at_s": round(moment, 2),
        "killed": killed,
        "stage": stage_at(log) if killed else "(finished first)",
        "exit_at_kill": process.returncode,
        "stages_done_at_kill": len(before.get("stages", {})),
        "temp_files_after_kill": temp_after_kill,
        "resume_exit": rc,
        "resume_s": round(resume_s, 1),
        "problems": problems,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--signal", choices=["KILL", "TERM", "INT"], default="KILL")
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".data", help="holds the real mnist.npz")
    parser.add_argument("--train", type=int, default=2000, help="training images used")
    parser.add_argument("--test", type=int, default=500, help="test images used")
    parser.add_argument("--techniques", default="float,qat,cluster")
    parser.add_argument("--seed", type=int, default=0, help="seeds the kill moments")
    parser.add_argument("--work", type=Path, default=None, help="keep run dirs and logs here (default: a temp dir, removed)")
    parser.add_argument("--json", type=Path, default=None, help="write the trials here")
    args = parser.parse_args()

    work = args.work or Path(tempfile.mkdtemp(prefix="dnncomp-kill-resume-"))
    work.mkdir(parents=True, exist_ok=True)
    data = small_mnist(args.data_dir, work / "data", args.train, args.test)
    techniques = args.techniques.split(",")
    cmd_for = lambda out: command(data, out, args.techniques)  # noqa: E731
    sig = getattr(signal, f"SIG{args.signal}")

    rc, duration = run_to_end(cmd_for(work / "reference"), work / "reference.log")
    if rc != 0:
        print(f"the uninterrupted reference run failed (exit {rc}); see {work / 'reference.log'}", file=sys.stderr)
        return 2
    reference_s = duration
    reference_problems = check(work / "reference" / "mnist" / "study-mnist", {"stages": {}}, techniques)
    print(f"reference run: {duration:.1f} s, {'sound' if not reference_problems else reference_problems}")

    rng = random.Random(args.seed)
    trials = []
    for i in range(args.trials):
        result = trial(i, rng.uniform(0.5, duration), sig, cmd_for, work, techniques)
        trials.append(result)
        if not result["killed"]:  # the machine got faster (less contention): aim within the shorter run
            duration = min(duration, result["kill_at_s"])
        verdict = "ok" if not result["problems"] else "FAIL: " + "; ".join(result["problems"])
        print(
            f"trial {i:2d}: SIG{args.signal} at {result['kill_at_s']:6.1f} s in {result['stage']!r:62} "
            f"(exit {result['exit_at_kill']}, {result['temp_files_after_kill']} temp file(s)); "
            f"resumed in {result['resume_s']:5.1f} s: {verdict}",
            flush=True,
        )
    failed = [t for t in trials if t["problems"]]
    killed = [t for t in trials if t["killed"]]
    print(
        f"\n{len(trials)} trials, {len(killed)} killed mid-run, {len(trials) - len(failed)} sound after the rerun, "
        f"{len(failed)} failed; temp files seen right after a kill: {sum(t['temp_files_after_kill'] for t in trials)} "
        f"(all removed by the rerun unless a trial failed)"
    )
    if args.json:
        atomic_write_json(
            args.json,
            {
                "signal": args.signal,
                "reference_s": round(reference_s, 1),
                "window_s": round(duration, 1),
                "train": args.train,
                "test": args.test,
                "techniques": techniques,
                "seed": args.seed,
                "trials": trials,
            },
        )
    if args.work is None and not failed:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
