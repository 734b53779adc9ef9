"""The results table printed by ``dnncomp run``: the study's columns plus the ones it lacked."""

from __future__ import annotations

from typing import Any


def print_results(results: dict[str, Any], console=None, *, wide: bool = False) -> None:
    """Print a results document's variants as one table that fits ``console``'s width.

    At 80 columns the variant, both accuracies, p50 latency and gzip size are kept; the rest
    (runtime, p99, file size, sparsity, the study's numbers) is shown as width allows and named
    under the table otherwise. ``wide`` shows every column.
    """
    from .console import Column, print_table
    from .console import console as default_console
    from .data.registry import normalize_name
    from .results import flat_rows, format_number, format_value
    from .study import DATASET_LABELS, study_result

    console = console or default_console()
    dataset = results.get("dataset", "?")
    rows = flat_rows(results)
    # The header names N only when every row was scored on the same N (a row evaluated by an earlier
    # command with another --first-n keeps its own); otherwise each cell says its N.
    counts = {r["first_n_count"] for r in rows if r["first_n_count"]}
    first_n = str(next(iter(counts))) if len(counts) == 1 else "N"
    threads = next((r["threads"] for r in rows if r["runtime"] == "litert" and r["threads"]), None)
    # The study's columns only where the study measured this dataset: a user's folder has none to show.
    with_study = normalize_name(dataset) in DATASET_LABELS
    # priority 0 always shows; then what a user compares first (size, tail latency), then the rest
    columns = [
        Column("variant", 0, "left"),
        Column("runtime", 5, "left"),
        Column("acc % (full)", 0),
        Column(f"acc % (first {first_n})", 1),
        Column("p50 ms", 0),
        Column("p99 ms", 3),
        Column("file MB", 4),
        Column("gzip MB", 0),
        Column("sparsity", 4),
    ]
    if with_study:
        columns += [Column("study acc %", 2), Column("study ms", 6), Column("study MB", 6)]
    table_rows = []
    for row in rows:
        study = study_result(dataset, row["variant"])
        study_cells = tuple(
            format_number(None if study is None else study[key]) for key in ("accuracy_pct", "latency_ms", "size_mb")
        )
        table_rows.append(
            (
                row["variant"],
                row["runtime"],
                format_value(row["acc_full"], "pct"),
                format_value(row["acc_first_n"], "pct")
                + (f" (N={row['first_n_count']})" if first_n == "N" and row["first_n_count"] else ""),
                format_value(row["p50_ms"], "ms"),
                format_value(row["p99_ms"], "ms"),
                format_value(row["file_bytes"], "mb"),
                format_value(row["gzip_bytes"], "mb"),
                format_number(row["sparsity"]),
                *(study_cells if with_study else ()),
            )
        )
    print_table(
        columns,
        table_rows,
        wide=wide,
        out=console,
        title=f"{dataset} / {results.get('model', '?')}  (latency: batch 1, {threads} thread(s)"
        + ("; study: Jetson Nano 2GB)" if with_study else ")"),
        notes=[
            "baseline-keras is timed through Keras model.predict on one image, as the study did; it is not comparable "
            "with the LiteRT rows. gzip MB shows what pruning and clustering buy on disk."
        ],
    )
