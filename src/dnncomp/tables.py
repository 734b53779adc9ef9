"""The results table printed by ``dnncomp run``: the study's columns plus the ones it lacked."""

from __future__ import annotations

from typing import Any

from rich.table import Table


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _mb(value: int | None) -> str:
    return "-" if value is None else f"{value / 1e6:.3f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def print_results(results: dict[str, Any], console=None) -> None:
    from .measure import rich_console
    from .results import flat_rows
    from .study import study_result

    console = console or rich_console()
    dataset = results.get("dataset", "?")
    rows = flat_rows(results)
    first_n = next((r["first_n_count"] for r in rows if r["first_n_count"]), 1000)
    threads = next((r["threads"] for r in rows if r["runtime"] == "litert" and r["threads"]), None)
    table = Table(
        title=f"{dataset} / {results.get('model', '?')}  (latency: batch 1, {threads} thread(s); study: Jetson Nano 2GB)",
        title_justify="left",
    )
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
        "study acc %",
        "study ms",
        "study MB",
    ):
        table.add_column(header, justify="left" if header in ("variant", "runtime") else "right")
    for row in rows:
        study = study_result(dataset, row["variant"])
        table.add_row(
            row["variant"],
            row["runtime"],
            _pct(row["acc_full"]),
            _pct(row["acc_first_n"]),
            _ms(row["p50_ms"]),
            _ms(row["p99_ms"]),
            _mb(row["file_bytes"]),
            _mb(row["gzip_bytes"]),
            "-" if row["sparsity"] is None else f"{row['sparsity']:.2f}",
            "-" if study is None else f"{study['accuracy_pct']:.2f}",
            "-" if study is None else f"{study['latency_ms']:.2f}",
            "-" if study is None else f"{study['size_mb']:.2f}",
        )
    console.print(table)
    console.print(
        "baseline-keras is timed through Keras model.predict on one image, as the study did; it is not comparable "
        "with the LiteRT rows. gzip MB shows what pruning and clustering buy on disk.",
        style="dim",
    )
