"""Latency, throughput and memory of the study's reference models and of our variants, per dataset.

    python benchmarks/latency.py                      # all three datasets
    python benchmarks/latency.py --datasets mnist --min-seconds 5

For each dataset it runs ``dnncomp bench`` (the same code, :func:`dnncomp.measure.bench_models`)
on the variants of ``runs/<dataset>/study-<dataset>/`` that exist (float, qat, prune, cluster;
none before a run) followed by the study's own ``<dataset>_quantized_model.tflite``: batch 1 and
batch 32 at 1 thread with XNNPACK (LiteRT's default), timed rounds interleaved across the models,
then peak RSS per model in a fresh process. Inputs are the first ``--samples`` real test images,
cycled: there is no randomness, hence no seed.

Writes ``benchmarks/results/latency-<dataset>.{json,csv,md}`` and prints the numbers
docs/BENCHMARKS.md records: p50 and p99 at batch 1, harness overhead, images/s at batch 32,
peak memory, and the int8/float p50 ratio when a run has both.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from dnncomp.bench import LatencyConfig  # noqa: E402
from dnncomp.fileio import atomic_write_json, atomic_write_text  # noqa: E402
from dnncomp.measure import bench_models, load_for_model  # noqa: E402
from dnncomp.results import csv_text, flat_rows, markdown_table  # noqa: E402

VARIANTS = ("float", "qat", "prune", "cluster")


def models_for(dataset: str, runs: Path, reference_dir: Path) -> list[Path]:
    run_dir = runs / dataset / f"study-{dataset}"
    found = [run_dir / f"{v}.tflite" for v in VARIANTS if (run_dir / f"{v}.tflite").is_file()]
    reference = reference_dir / f"{dataset}_quantized_model.tflite"
    return found + ([reference] if reference.is_file() else [])


def summary_lines(document: dict) -> list[str]:
    lines = []
    batch1 = {}
    for variant in document["variants"]:
        runs = {r["batch"]: r for r in variant["latency_runs"]}
        one, many = runs.get(1), runs.get(32)
        batch1[variant["name"]] = one
        memory = variant.get("memory") or {}
        acc = variant.get("accuracy") or {}
        lines.append(
            f"{document['dataset']:8s} {variant['name']:28s} acc(first {acc.get('first_n_count')}) "
            f"{100 * acc.get('first_n', float('nan')):6.2f}%  p50 {one['p50_ms']:.4f} ms  p99 {one['p99_ms']:.4f} ms  "
            f"overhead {one['overhead']['overhead_pct']:.1f}%  batch-32 {many['images_per_s'] if many else float('nan'):,.0f} img/s  "
            f"peak +{memory.get('peak_added_bytes', 0) / 1e6:.1f} MB"
        )
    if batch1.get("float") and batch1.get("qat"):
        lines.append(
            f"{document['dataset']:8s} int8/float speed ratio (p50, batch 1): {batch1['float']['p50_ms'] / batch1['qat']['p50_ms']:.2f}x"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="mnist,cifar10,gtsrb")
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".data")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs")
    parser.add_argument("--reference-dir", type=Path, default=ROOT.parent / "shared" / "reference-models")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--min-seconds", type=float, default=3.0)
    parser.add_argument("--min-count", type=int, default=300)
    parser.add_argument("--samples", type=int, default=256)
    args = parser.parse_args(argv)

    config = LatencyConfig(threads=args.threads, min_seconds=args.min_seconds, min_count=args.min_count, samples=args.samples)
    for dataset in [d.strip() for d in args.datasets.split(",") if d.strip()]:
        models = models_for(dataset, args.runs, args.reference_dir)
        if not models:
            print(f"{dataset}: no models found", file=sys.stderr)
            continue
        data = load_for_model(dataset, models[0], args.data_dir)
        document = bench_models(
            models,
            data.x_test,
            data.y_test,
            dataset=dataset,
            num_classes=data.num_classes,
            threads=(args.threads,),
            batches=(1, 32),
            base_config=config,
        )
        document["bench"]["command"] = " ".join(["python", "benchmarks/latency.py", *(argv or sys.argv[1:])])
        rows = flat_rows(document)
        args.out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(args.out / f"latency-{dataset}.json", document)
        atomic_write_text(args.out / f"latency-{dataset}.csv", csv_text(rows))
        atomic_write_text(args.out / f"latency-{dataset}.md", markdown_table(rows))
        print("\n".join(summary_lines(document)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
