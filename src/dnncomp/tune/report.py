"""What a tune found, for the console (a rich table that fits 80 columns) and for ``dnncomp report TUNE_DIR``
(report.md with every trial's parameters, and a Pareto plot; matplotlib is imported only for the plot)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..results import markdown_grid
from .engine import OBJECTIVE_METRIC, TuneError, format_objective


def is_tune_dir(path: Path) -> bool:
    """Whether ``path`` is a tune directory (``dnncomp report`` dispatches on this)."""
    return (Path(path) / "tune-config.json").is_file()


def _trial(summary: dict[str, Any], number: int) -> dict[str, Any]:
    return next(row for row in summary["trials"] if row["number"] == number)


def _objective(row: dict[str, Any], objective: str) -> str:
    metrics = row.get("metrics") or {}
    text = format_objective(metrics.get(OBJECTIVE_METRIC[objective]), objective)
    ratio = metrics.get(f"{objective}_ratio_vs_float") if objective in ("gzip", "file") else None
    return f"{text} {ratio:.1f}x" if ratio else text


def pareto_rows(summary: dict[str, Any]) -> list[list[str]]:
    """One row per Pareto trial: trial, recipe, validation %, drop [95 % interval], objective, test %, test change."""
    objective = summary["config"]["objective"]
    test = summary.get("test") or {}
    rows = []
    for number in summary["pareto"]:
        row = _trial(summary, number)
        metrics = row["metrics"]
        drop = metrics["drop"]
        scored = (test.get("pareto") or {}).get(str(number)) or {}
        chosen = (summary.get("chosen") or {}).get("trial") == number
        rows.append(
            [
                f"{number}{'*' if chosen else ''}",
                row["recipe"],
                f"{100 * metrics['val_accuracy']:.2f}",
                f"{drop['drop_points']:+.2f} ≤{drop['high_points']:+.2f}",
                _objective(row, objective),
                f"{100 * scored['accuracy']:.2f}" if scored else "",
                f"{scored['change_points']:+.2f}" if scored else "",
            ]
        )
    return rows


PARETO_HEADERS = ("trial", "recipe", "val %", "drop pt ≤95%", "objective", "test %", "Δ test")


def print_outcome(summary: dict[str, Any], console=None) -> None:
    """The Pareto set as a rich table (80 columns); nothing when no trial is feasible."""
    if not summary.get("pareto"):
        return
    from rich.table import Table

    from ..measure import rich_console

    console = console or rich_console()
    config = summary["config"]
    table = Table(title=f"Pareto set: validation accuracy vs {config['objective']} (* chosen)", title_justify="left")
    for header in PARETO_HEADERS:
        table.add_column(
            header,
            justify="left" if header in ("trial", "recipe") else "right",
            no_wrap=header != "recipe",
            overflow="fold" if header == "recipe" else "ellipsis",
        )
    for row in pareto_rows(summary):
        table.add_row(*row)
    console.print(table, width=min(80, console.width or 80))


def outcome_lines(summary: dict[str, Any]) -> list[str]:
    """The lines under the table: what was chosen and why, which budget binds, the test-set note, or the infeasible verdict."""
    counts = summary["counts"]
    lines = [
        f"trials: {counts['COMPLETE']} complete ({counts['feasible']} feasible), {counts['PRUNED']} pruned, {counts['FAIL']} failed"
        + (f", {counts['INTERRUPTED']} interrupted and re-run" if counts.get("INTERRUPTED") else "")
        + f"; every trial's parameters in {summary['config']['out']}/tune.json",
        f"accuracy drop: {summary['drop_method']}; a trial meets --max-drop {summary['config']['max_drop']:g} when the interval's upper end does",
    ]
    if summary.get("chosen"):
        chosen = summary["chosen"]
        params = ", ".join(f"{k}={v}" for k, v in chosen["params"].items()) or "defaults"
        lines.append(f"chosen: trial {chosen['trial']} {chosen['recipe']} ({params}) -> {summary['config']['out']}/best.tflite")
        lines.append(f"binding budget: {summary['binding']['text']}")
        test = summary["test"]
        lines.append(f"test set: {test['note']}; float baseline {100 * test['baseline_accuracy']:.2f} % of {test['images']}")
    else:
        infeasible = summary["infeasible"]
        lines.append(f"no trial meets the budgets: {infeasible['text']}")
        if infeasible.get("artifact"):
            lines.append(f"best so far: {summary['config']['out']}/{infeasible['artifact']} (not copied to best.tflite)")
    return lines


def budget_bar(done: int, trials: int, elapsed_s: float, budget_s: float | None, width: int = 30) -> str:
    """A text bar of the budget used: trials, or time when it runs out first."""
    used = done / trials if trials else 0.0
    if budget_s:
        used = max(used, min(1.0, elapsed_s / budget_s))
    filled = int(round(width * min(1.0, used)))
    time_text = f"{elapsed_s / 60:.1f}" + (f" of {budget_s / 60:.3g} min" if budget_s else " min")
    return f"budget [{'#' * filled}{'.' * (width - filled)}] {done}/{trials} trials, {time_text}"


def status_lines(status: dict[str, Any]) -> list[str]:
    """``dnncomp tune --status DIR``: trials by state, best so far, budget used, who runs it now."""
    config = status["config"]
    counts = status["counts"]
    lines = [
        f"{status['out']}: {config['baseline']} on {config['dataset']}, objective {config['objective']}, max drop {config['max_drop']:g} pt",
        f"trials: {status['done']} of {config['trials']} done ({counts['COMPLETE']} complete, {counts['feasible']} feasible, "
        f"{counts['PRUNED']} pruned, {counts['FAIL']} failed), {counts['RUNNING']} running, {counts['WAITING']} queued"
        + (f", {counts['INTERRUPTED']} interrupted" if counts.get("INTERRUPTED") else ""),
    ]
    budget = config.get("time_budget_s")
    used = status["elapsed_s"]
    lines.append(
        f"time used: {used / 60:.1f} min"
        + (f" of {budget / 60:.3g} min ({100 * used / budget:.0f} %)" if budget else " (no time budget)")
    )
    best = status.get("best")
    if best:
        metrics = best["metrics"]
        lines.append(
            f"best so far: trial {best['number']} {best['recipe']}, val {100 * metrics['val_accuracy']:.2f} % "
            f"(drop {metrics['drop']['drop_points']:+.2f} pt), {config['objective']} {_objective(best, config['objective'])}"
        )
    elif status.get("infeasible"):
        lines.append(f"no feasible trial yet: {status['infeasible']['text']}")
    lines.append(f"running now: {status['locked_by']}" if status.get("locked_by") else "no tune process holds it now")
    return lines


# ---- dnncomp report TUNE_DIR -------------------------------------------------------------


def load_summary(tune_dir: Path) -> dict[str, Any]:
    path = Path(tune_dir) / "tune.json"
    if not path.is_file():
        raise TuneError(
            f"{path}: not found; the tune has not finished a session yet (`dnncomp tune --status {tune_dir}` shows progress)"
        )
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise TuneError(f"{path}: not valid JSON ({exc})") from exc


def markdown(summary: dict[str, Any], plot_name: str | None = "pareto.png") -> str:
    """report.md: the setting, the Pareto table, the choice, the binding budget, and every trial with its parameters."""
    config = summary["config"]
    split = summary["split"]
    lines = [
        f"# dnncomp tune: {Path(config['baseline']).name} on {config['dataset']}",
        "",
        f"Objective: minimise **{config['objective']}** with validation accuracy at most **{config['max_drop']:g} points** below the "
        f"float baseline ({100 * summary['baseline_val_accuracy']:.2f} % on the validation split)"
        + "".join(
            f", {name} <= {config[name]}"
            for name in ("max_gzip", "max_file", "max_p95_ms", "max_peak_memory")
            if config.get(name)
        )
        + ".",
        "",
        f"Selection: the validation split `{split['validation']}` of the training data ({split['validation_images']} images; recipes "
        f"fine-tune on {split['fine_tuning_images']}). Drop: {summary['drop_method']}.",
        "",
    ]
    if summary.get("test"):
        lines += [f"Test set: {summary['test']['note']}.", ""]
    lines += [
        f"Trials: {json.dumps({k: v for k, v in summary['counts'].items() if v})}; tune time {(summary.get('elapsed_s') or 0) / 60:.1f} min.",
        "",
    ]
    if summary.get("pareto"):
        lines += ["## Pareto set (* chosen)", "", markdown_grid(PARETO_HEADERS, pareto_rows(summary), "l" * len(PARETO_HEADERS))]
        chosen = summary["chosen"]
        lines += [
            "",
            f"Chosen: trial {chosen['trial']} ({chosen['recipe']}), {chosen['rule']}; copied to `best.tflite`.",
            f"Binding budget: {summary['binding']['text']}.",
            "",
        ]
    else:
        lines += ["## No feasible variant", "", summary["infeasible"]["text"] + ".", ""]
    if plot_name:
        lines += [f"![Pareto: validation accuracy vs {config['objective']}]({plot_name})", ""]
    lines += [
        "## Every trial",
        "",
    ]
    trials = []
    for row in summary["trials"]:
        metrics = row.get("metrics") or {}
        val = f"{100 * metrics['val_accuracy']:.2f}" if metrics else ""
        why = ", ".join(row.get("failing") or []) or (row.get("error") or "")
        params = ", ".join(f"{k}={v}" for k, v in (row.get("params") or {}).items())
        objective = _objective(row, config["objective"]) if metrics else ""
        trials.append([row["number"], _origin(row), row["state"], row["recipe"] or "", val, objective, why, params])
    headers = ("#", "from", "state", "recipe", "val %", "objective", "fails / error", "parameters")
    lines.append(markdown_grid(headers, trials, "l" * len(headers)))
    return "\n".join(lines) + "\n"


def plot(summary: dict[str, Any], path: Path) -> Path:
    """Validation accuracy against the objective for every complete trial, feasible ones marked, the Pareto front joined.

    Refinement trials are diamonds with an arrow from the trial they refine, so a chain of steps
    (e.g. 16 -> 8 -> 4 clusters) reads as a path; the x axis is logarithmic when the objective spans
    more than 10x (a 270 KB pcqat and a 2.3 MB fp16 variant on one plot).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6.4, 4.2))
    draw(summary, axis)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return Path(path)


def draw(summary: dict[str, Any], axis) -> None:
    """:func:`plot`'s drawing on a matplotlib ``axis`` (separate so a test can count what was drawn)."""
    config = summary["config"]
    metric = OBJECTIVE_METRIC[config["objective"]]
    complete = [r for r in summary["trials"] if r["state"] == "COMPLETE" and r.get("metrics")]
    by_number = {r["number"]: r for r in complete}

    def point(row):
        return row["metrics"][metric], 100 * row["metrics"]["val_accuracy"]

    for feasible, colour, label in ((True, "tab:blue", "feasible"), (False, "tab:grey", "fails a budget")):
        for refined, marker, how in ((False, "o", ""), (True, "D", ", refinement")):
            rows = [r for r in complete if (not r.get("failing")) == feasible and (r.get("refines") is not None) == refined]
            if rows:
                axis.scatter(*zip(*(point(r) for r in rows)), c=colour, marker=marker, label=label + how, s=22)
    for row in complete:
        parent = by_number.get(row.get("refines"))
        if parent is not None:
            axis.annotate("", xy=point(row), xytext=point(parent), arrowprops={"arrowstyle": "->", "color": "0.55", "lw": 0.7})
    front = [_trial(summary, n) for n in summary.get("pareto", [])]
    if front:
        axis.plot(
            [r["metrics"][metric] for r in front],
            [100 * r["metrics"]["val_accuracy"] for r in front],
            "-o",
            c="tab:red",
            label="Pareto",
            ms=4,
        )
    axis.axhline(
        100 * summary["baseline_val_accuracy"] - config["max_drop"], ls="--", c="black", lw=0.8, label="baseline - max drop"
    )
    values = [point(r)[0] for r in complete if point(r)[0] > 0]
    if values and max(values) > 10 * min(values):
        axis.set_xscale("log")
    axis.set_xlabel(f"{config['objective']} ({'bytes' if metric.endswith('bytes') else 'ms'})")
    axis.set_ylabel("validation accuracy (%)")
    axis.legend(fontsize=8)


def write_tune_report(tune_dir: Path, out: Path | None = None) -> dict[str, Any]:
    """report.md and pareto.png for the tune in ``tune_dir`` (into ``out``, default the tune dir). TuneError before a finished session."""
    from ..fileio import atomic_write_text

    summary = load_summary(tune_dir)
    out = Path(out or tune_dir)
    out.mkdir(parents=True, exist_ok=True)
    figure = plot(summary, out / "pareto.png")
    report = atomic_write_text(out / "report.md", markdown(summary, figure.name))
    return {"markdown": report, "figures": [figure]}


def _origin(row: dict) -> str:
    """Where a trial's parameters came from: the sampler, a refinement of a trial, or a re-run of an interrupted one."""
    if row.get("refines") is not None:
        return f"refines {row['refines']} ({row.get('knob')})"
    if row.get("resumes") is not None:
        return f"re-runs {row['resumes']}"
    return "sampler"
