"""`dnncomp reproduce`: the study's protocol run on its datasets, then one combined report."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .data.registry import normalize_name
from .errors import DnncompError
from .study import STUDY_DATASETS, STUDY_TEST_IMAGES, dataset_label


def reproduce_study(
    datasets: Sequence[str] | None = None,
    *,
    out: str | Path = Path("docs/reproduction"),
    runs_root: str | Path = Path("runs"),
    data_dir: str | Path | None = None,
    epochs: int | None = None,
    threads: int = 1,
    seed: int = 0,
    title: str | None = None,
) -> dict[str, Any]:
    """Run the study's protocol (its models, float + qat + prune + cluster, first 1000 images) and report.

    Each dataset runs through ``dnncomp.run.run_pipeline`` (resumable: a rerun
    reuses what is done); then one combined report goes to ``out``. Returns
    write_report's paths plus {"runs": [run_dir, ...]}. Raises DnncompError for a
    dataset the study did not use, MissingDependencyError without matplotlib (before
    any training starts).
    """
    from .report import matplotlib_parts, write_report

    keys = [normalize_name(d) for d in (datasets or STUDY_DATASETS)]
    unknown = [d for d in keys if d not in STUDY_DATASETS]
    if unknown:
        raise DnncompError(
            f"the study used {', '.join(STUDY_DATASETS)}; not {', '.join(unknown)}. "
            "For other datasets use `dnncomp run` and `dnncomp report`."
        )
    matplotlib_parts()  # fail now, not after hours of training
    from .run import run_pipeline

    run_dirs = []
    for dataset in keys:
        run_dirs.append(
            Path(
                run_pipeline(
                    dataset,
                    model=f"study-{dataset}",
                    techniques=None,
                    out=Path(runs_root),
                    data_dir=Path(data_dir) if data_dir else None,
                    epochs=epochs,
                    seed=seed,
                    first_n=STUDY_TEST_IMAGES,
                    threads=threads,
                    eval_only=False,
                )
            )
        )
    paths = write_report(run_dirs, out, title=title or "The study reproduced: " + ", ".join(dataset_label(d) for d in keys))
    return {**paths, "runs": run_dirs}
