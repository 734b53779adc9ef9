"""Trials per hour of `dnncomp tune` with 1 and 2 local workers, side by side in one run (issue 14).

    python benchmarks/tune_scaling.py BASELINE --dataset mnist --data-dir .data --trials 6 \
        --recipes prune-ptq-int8,cluster-ptq-int8 --out /tmp/tune-scaling [--workers 1,2] [-- extra tune options]

Each configuration runs the same search (same seed, trials, recipes, split) into its own tune
directory, one after the other, as a fresh `dnncomp tune` process. Prints and writes
(OUT/scaling.json, OUT/scaling.md) the wall time, trials finished, trials per hour and the
1-minute load average before and after (the machine's other load shows there).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("baseline")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--recipes", default="prune-ptq-int8,cluster-ptq-int8")
    parser.add_argument("--workers", default="1,2", help="worker counts to compare, e.g. 1,2")
    parser.add_argument("--out", type=Path, required=True)
    args, extra = parser.parse_known_args(argv)  # the rest (after --) goes to dnncomp tune as it is
    args.extra = [a for a in extra if a != "--"]
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for workers in [int(w) for w in args.workers.split(",")]:
        out = args.out / f"workers-{workers}"
        command = [
            sys.executable,
            "-m",
            "dnncomp.cli",
            "tune",
            args.baseline,
            "--dataset",
            args.dataset,
            "--trials",
            str(args.trials),
            "--recipes",
            args.recipes,
            "--workers",
            str(workers),
            "--out",
            str(out),
            *(["--data-dir", args.data_dir] if args.data_dir else []),
            *args.extra,
        ]
        load_before = os.getloadavg()[0]
        start = time.perf_counter()
        process = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        wall = time.perf_counter() - start
        summary = json.loads((out / "tune.json").read_text()) if (out / "tune.json").is_file() else {}
        finished = sum(1 for t in summary.get("trials", []) if t["state"] in ("COMPLETE", "PRUNED", "FAIL"))
        trial_seconds = [t["wall_s"] for t in summary.get("trials", []) if t.get("wall_s")]
        rows.append(
            {
                "workers": workers,
                "exit_code": process.returncode,
                "wall_s": round(wall, 1),
                "trials": finished,
                "trials_per_hour": round(3600 * finished / wall, 1) if wall else None,
                "mean_trial_s": round(sum(trial_seconds) / len(trial_seconds), 1) if trial_seconds else None,
                "load_1min_before": round(load_before, 2),
                "load_1min_after": round(os.getloadavg()[0], 2),
                "command": " ".join(command[2:]),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
        if process.returncode not in (0, 3):
            print(process.stderr[-3000:], file=sys.stderr)
    record = {"host": platform.node(), "cpus": os.cpu_count(), "python": platform.python_version(), "rows": rows}
    (args.out / "scaling.json").write_text(json.dumps(record, indent=2) + "\n")
    lines = ["| workers | trials | wall (s) | trials/hour | mean trial (s) | load before/after |", "|---|---|---|---|---|---|"]
    lines += [
        f"| {r['workers']} | {r['trials']} | {r['wall_s']} | {r['trials_per_hour']} | {r['mean_trial_s']} | "
        f"{r['load_1min_before']}/{r['load_1min_after']} |"
        for r in rows
    ]
    (args.out / "scaling.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
