"""The results table printed by ``dnncomp run``: the study's columns plus the ones it lacked."""

from __future__ import annotations

from typing import Any

from rich.table import Table


def print_results(results: dict[str, Any], console=None) -> None:
    from .measure import rich_console
    from .results import flat_rows, format_value
    from .study import DATASET_LABELS, normalize_dataset, study_result

    console = console or rich_console()
    dataset = results.get("dataset", "?")
    rows = flat_rows(results)
    # The header names N only when every row was scored on the same N (a row evaluated by an earlier
    # command with another --limit keeps its own); otherwise each cell says its N.
    counts = {r["first_n_count"] for r in rows if r["first_n_count"]}
    first_n = str(next(iter(counts))) if len(counts) == 1 else "N"
    threads = next((r["threads"] for r in rows if r["runtime"] == "litert" and r["threads"]), None)
    # The study's columns only where the study measured this dataset: a user's folder has none to show.
    with_study = normalize_dataset(dataset) in DATASET_LABELS
    table = Table(
        title=f"{dataset} / {results.get('model', '?')}  (latency: batch 1, {threads} thread(s)"
        + ("; study: Jetson Nano 2GB)" if with_study else ")"),
        title_justify="left",
    )
    study_headers = ("study acc %", "study ms", "study MB") if with_study else ()
    for header in (
        "variant",
        "runtime",
        "acc % (full)",
        f"acc % (first {first_n})",
        "p50 ms",
        "p99 ms",
        "file MB",
        "gzip MB",
        "sparsity",
        *study_headers,
    ):
        table.add_column(header, justify="left" if header in ("variant", "runtime") else "right")
    for row in rows:
        study = study_result(dataset, row["variant"])
        study_cells = ("-" if study is None else f"{study['accuracy_pct']:.2f}", "-" if study is None else f"{study['latency_ms']:.2f}",
                       "-" if study is None else f"{study['size_mb']:.2f}")
        table.add_row(
            row["variant"],
            row["runtime"],
            format_value(row["acc_full"], "pct"),
            format_value(row["acc_first_n"], "pct") + (f" (N={row['first_n_count']})" if first_n == "N" and row["first_n_count"] else ""),
            format_value(row["p50_ms"], "ms"),
            format_value(row["p99_ms"], "ms"),
            format_value(row["file_bytes"], "mb"),
            format_value(row["gzip_bytes"], "mb"),
            "-" if row["sparsity"] is None else f"{row['sparsity']:.2f}",
            *(study_cells if with_study else ()),
        )
    console.print(table)
    console.print(
        "baseline-keras is timed through Keras model.predict on one image, as the study did; it is not comparable "
        "with the LiteRT rows. gzip MB shows what pruning and clustering buy on disk.",
        style="dim",
    )
