"""Training: the baseline's history, and accuracy against training wall time across runs."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ...data.registry import normalize_name
from ...results import FLOAT_VARIANT, KERAS_BASELINE
from ...study import STUDY_DATASETS, STUDY_TEST_IMAGES, study_row
from ..load import RunData
from ..rows import num, variant_rows
from .style import FONT_SIZE, STUDY_COLOR, new_figure, save_png, styled


@styled
def plot_history(history: dict[str, list[float]], path: Path, title: str) -> Path | None:
    """Training and validation loss and accuracy per epoch, best validation epoch marked."""
    pairs = [(k, f"val_{k}") for k in ("loss", "accuracy") if k in history or f"val_{k}" in history]
    if not pairs:
        return None
    fig, axes = new_figure(7.6, 3.4, ncols=len(pairs))
    best_epoch = None
    if history.get("val_accuracy"):
        values = history["val_accuracy"]
        best_epoch = max(range(len(values)), key=lambda i: values[i] if math.isfinite(values[i]) else -1) + 1
    for ax, (train_key, val_key) in zip(axes[0], pairs):
        scale = 100 if train_key == "accuracy" else 1
        for key, label, style in ((train_key, "training", "-o"), (val_key, "validation", "-s")):
            if history.get(key):
                epochs = list(range(1, len(history[key]) + 1))
                ax.plot(epochs, [v * scale for v in history[key]], style, ms=3.5, lw=1.4, label=label)
        if best_epoch:
            ax.axvline(best_epoch, color="#888", ls=":", lw=1.1, label=f"best val. accuracy (epoch {best_epoch})")
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy, %" if train_key == "accuracy" else "loss (cross-entropy)")
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=len(handles), frameon=False)
    fig.suptitle(title, x=0.02, ha="left", fontsize=FONT_SIZE + 1.5)
    return save_png(fig, path)


def training_time_points(run: RunData) -> dict[str, Any] | None:
    """What one run says about accuracy against training time, or None when it says nothing.

    ``curve``: (minutes, validation accuracy %) per epoch, from history.json's ``elapsed_s``
    (recorded since dnncomp 0.1; older histories have none). ``end``: (minutes, full-test-set
    accuracy % of the int8 and float LiteRT models) at the baseline stage's wall time in the
    manifest, which also counts loading and saving, so it lies a little right of the curve's end.
    """
    history = run.history or {}
    curve = None
    if history.get("elapsed_s") and history.get("val_accuracy"):
        curve = [
            (t / 60.0, 100.0 * a)
            for t, a in zip(history["elapsed_s"], history["val_accuracy"])
            if num(t) is not None and num(a) is not None
        ]
    wall_s = num(run.stage("baseline").get("wall_s"))
    rows = {r.name: r for r in variant_rows(run)}
    end = {}
    if wall_s is not None:
        for name in ("qat", "ptq-int8", FLOAT_VARIANT):
            row = rows.get(name)
            if row is not None and row.acc_full_pct is not None:
                end[name] = (wall_s / 60.0, row.acc_full_pct)
    if not curve and not end:
        return None
    return {"curve": curve, "end": end}


@styled
def plot_accuracy_vs_training_time(runs: list[RunData], path: Path, title: str) -> Path | None:
    """Validation accuracy against wall-clock training time, one line per run, with the test-set
    accuracy of its float and int8 LiteRT models marked where training ended. None (nothing
    drawn) unless at least one run has a curve: end points alone say too little."""
    points = [(run, training_time_points(run)) for run in runs]
    points = [(run, p) for run, p in points if p]
    if not any(p["curve"] for _, p in points):
        return None
    fig, axes = new_figure(7.2, 3.9)
    ax = axes[0][0]
    markers = {
        FLOAT_VARIANT: ("o", "float, test set"),
        "qat": ("D", "int8 (qat), test set"),
        "ptq-int8": ("s", "int8 (ptq-int8), test set"),
    }
    palette = iter(["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#d62728", "#8c564b", "#17becf", "#7f7f7f"] * 4)
    datasets = {normalize_name(run.dataset) for run, _ in points}
    low = 100.0
    for run, p in points:
        color = next(palette)
        label = run.model if len(datasets) == 1 else run.label
        if p["curve"]:
            xs, ys = zip(*p["curve"])
            ax.plot(xs, ys, "-", color=color, lw=1.5, label=f"{label}: validation")
            low = min(low, min(ys[len(ys) // 3 :]))  # the early epochs would squash the interesting part
        for i, (name, (x, y)) in enumerate(p["end"].items()):
            marker, _ = markers[name]
            named = not p["curve"] and i == 0  # a run without a curve still needs its colour in the legend
            ax.plot(
                [x], [y], marker, color=color, ms=6, mec="#222", mew=0.6, label=f"{label}: end of training" if named else None
            )
            low = min(low, y)
    if len(datasets) == 1 and next(iter(datasets)) in STUDY_DATASETS:
        study = study_row(next(iter(datasets)), KERAS_BASELINE)
        if study is not None:  # the bar the improved models are meant to clear
            ax.axhline(
                study.accuracy_pct,
                color=STUDY_COLOR,
                ls="--",
                lw=1.2,
                label=f"study, published ({study.accuracy_pct:.1f} %, first {STUDY_TEST_IMAGES} test images)",
            )
            low = min(low, study.accuracy_pct)
    for name, (marker, text) in markers.items():  # one legend entry per marker shape
        if any(name in p["end"] for _, p in points):
            ax.plot([], [], marker, color="#bbb", mec="#222", mew=0.6, label=text)
    ax.set_ylim(max(0.0, math.floor(low - 1.0)), 100.0)
    ax.set_xlim(left=0)
    ax.set_xlabel("training wall time, minutes")
    ax.set_ylabel("accuracy, %")
    ax.legend(loc="lower right", frameon=False, fontsize=FONT_SIZE - 1.5)
    ax.set_title(title, loc="left")
    return save_png(fig, path)
