"""Refinement against TPE alone on tests/test_tune.py's known landscape (no model, no training).

The fake runner makes pcqat feasible iff sparsity <= 0.8 and >= 8 clusters, with gzip proportional to
(1 - sparsity) * log2(clusters): the best feasible variant is 600,000 "bytes" (8 clusters, 0.8). For each
seed, 20 trials with tune's own sampler, with and without refinement. This checks the search logic only;
it says nothing about a model (docs/BENCHMARKS.md, "Refinement").

    python benchmarks/tune_refine_landscape.py [--seeds 5] [--trials 20]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--trials", type=int, default=20)
    args = parser.parse_args()

    import optuna

    from dnncomp.compress import get_recipe
    from dnncomp.tune.engine import TuneConfig, _sampler, _search, trial_rows
    from test_tune import _FakeRunner

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    print("| seed | with refinement: best (sparsity, clusters) | TPE alone |")
    print("|---|---|---|")
    for seed in range(args.seeds):
        cells = []
        for refine in (True, False):
            out = Path(tempfile.mkdtemp(prefix="dnncomp-refine-"))
            config = TuneConfig(baseline="b.keras", dataset="mnist", out=str(out), trials=args.trials, seed=seed, refine=refine)
            study = optuna.create_study(directions=["maximize", "minimize"], sampler=_sampler(optuna, config, 0))
            _search(study, config, [get_recipe("pcqat")], _FakeRunner(), None, out, lambda line: None, None, lambda: 0.0)
            best = min((r for r in trial_rows(study) if not r["failing"]), key=lambda r: r["values"][1])
            params = best["params"]
            cells.append(f"{best['values'][1]:,.0f} ({params['final_sparsity']:.3f}, {params['number_of_clusters']})")
        print(f"| {seed} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
