"""Per-layer sensitivity: how much accuracy one layer costs when only it is compressed.

For each layer with a kernel, on a validation split held out of the training data (the
model's own split, never the test set):

- ``prune``: that kernel alone magnitude-pruned to ``sparsity`` (its smallest weights set
  to zero), no fine-tuning;
- ``cluster``: that kernel alone replaced by ``clusters`` k-means centroids (1-D Lloyd
  iterations from a linear initialisation, as TFMOT's ``linear`` init), no fine-tuning;
- ``int8``: full-integer post-training quantization of the whole model with that layer's
  ops left in float (TensorFlow Lite's QuantizationDebugger with ``denylisted_nodes``,
  the documented selective-quantization path); the number is the accuracy that comes
  back when the layer stays float, against the fully int8 model.

The drops are what :func:`allocate_per_layer` turns into per-layer targets
(``per_layer=auto``). TensorFlow is imported inside the functions; matplotlib only for
the plot.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import RecipeError
from . import RecipeContext, leaf_layers

TECHNIQUES = ("prune", "cluster", "int8")
KERNEL_ATTRS = ("kernel", "depthwise_kernel", "pointwise_kernel")
DEFAULT_MAX_IMAGES = 2000


def magnitude_prune(values: np.ndarray, sparsity: float) -> np.ndarray:
    """``values`` with its ``round(sparsity * size)`` smallest-magnitude entries set to zero."""
    flat = values.reshape(-1).copy()
    count = int(round(float(sparsity) * flat.size))
    if count > 0:
        flat[np.argsort(np.abs(flat), kind="stable")[:count]] = 0
    return flat.reshape(values.shape)


def kmeans_1d(values: np.ndarray, clusters: int, iterations: int = 30) -> np.ndarray:
    """``values`` with every entry replaced by the nearest of ``clusters`` 1-D k-means centroids."""
    flat = values.reshape(-1).astype(np.float64)
    if np.unique(flat).size <= clusters:
        return values.copy()
    centroids = np.linspace(flat.min(), flat.max(), int(clusters))
    for _ in range(iterations):
        assignment = np.abs(flat[:, None] - centroids[None, :]).argmin(axis=1)
        updated = np.array(
            [flat[assignment == c].mean() if np.any(assignment == c) else centroids[c] for c in range(len(centroids))]
        )
        if np.allclose(updated, centroids):
            break
        centroids = updated
    assignment = np.abs(flat[:, None] - centroids[None, :]).argmin(axis=1)
    return centroids[assignment].astype(values.dtype).reshape(values.shape)


def kernel_layers(model) -> list[tuple[Any, list[Any]]]:
    """(layer, its kernel variables) for every layer with a kernel, nested models opened, in order."""
    found = []
    for layer in leaf_layers(model):
        kernels = [getattr(layer, attr, None) for attr in KERNEL_ATTRS]
        kernels = [k for k in kernels if k is not None and hasattr(k, "assign")]
        if kernels:
            found.append((layer, kernels))
    return found


def validation_split(
    ctx: RecipeContext, validation: str | None = None, max_images: int = DEFAULT_MAX_IMAGES
) -> tuple[np.ndarray, str]:
    """Indices of the validation images held out of ``ctx``'s training data (at most ``max_images``, seeded) and the split."""
    from ..train import split_validation

    validation = validation or (ctx.spec.training or {}).get("validation") or "stratified:0.1"
    _, held_out = split_validation(len(ctx.labels), validation, seed=ctx.seed, labels=ctx.labels)
    if len(held_out) == 0:
        raise RecipeError(
            f"sensitivity: the validation split {validation!r} holds out no images; pass --validation stratified:0.1"
        )
    if len(held_out) > max_images:
        held_out = np.sort(np.random.default_rng(ctx.seed).choice(held_out, size=max_images, replace=False))
    return held_out, validation


def _keras_accuracy(model, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.argmax(model.predict(x, batch_size=256, verbose=0), axis=-1) == y))


def layer_sensitivity(
    ctx: RecipeContext,
    *,
    technique: str,
    sparsity: float = 0.8,
    clusters: int = 8,
    validation: str | None = None,
    max_images: int = DEFAULT_MAX_IMAGES,
    representative_samples: int = 500,
) -> dict[str, Any]:
    """One row per kernel layer: accuracy on the validation split with only that layer compressed.

    ``technique`` is one of :data:`TECHNIQUES`. Returns ``{technique, setting, method,
    validation, images, reference_accuracy, rows: [{layer, type, params, accuracy,
    drop_points}]}``; ``drop_points`` is reference minus layer accuracy in percentage points
    (prune/cluster: reference = the float model; int8: the fully int8 model, and the drop is
    negative where keeping the layer float helps). Raises RecipeError for an unknown technique.
    """
    if technique not in TECHNIQUES:
        raise RecipeError(f"sensitivity: unknown technique {technique!r}; choose from {', '.join(TECHNIQUES)}")
    held_out, split = validation_split(ctx, validation, max_images)
    x, y = ctx.inputs[held_out], ctx.labels[held_out]
    model = ctx.load_baseline()
    layers = kernel_layers(model)
    if not layers:
        raise RecipeError(f"sensitivity: {ctx.baseline_path} has no layer with a kernel to compress")
    record: dict[str, Any] = {
        "technique": technique,
        "validation": split,
        "images": int(len(y)),
        "baseline": str(ctx.baseline_path),
    }
    rows = []
    if technique in ("prune", "cluster"):
        transform = (lambda v: magnitude_prune(v, sparsity)) if technique == "prune" else (lambda v: kmeans_1d(v, clusters))
        record["setting"] = {"sparsity": sparsity} if technique == "prune" else {"clusters": clusters}
        record["method"] = (
            f"only this layer's kernel magnitude-pruned to {sparsity:.0%}, no fine-tuning"
            if technique == "prune"
            else f"only this layer's kernel replaced by {clusters} k-means centroids (per tensor), no fine-tuning"
        )
        reference = _keras_accuracy(model, x, y)
        for layer, kernels in layers:
            saved = [k.numpy() for k in kernels]
            for kernel, values in zip(kernels, saved):
                kernel.assign(transform(values))
            accuracy = _keras_accuracy(model, x, y)
            for kernel, values in zip(kernels, saved):
                kernel.assign(values)
            rows.append(_row(layer, saved, accuracy, reference))
    else:
        record["setting"] = {"representative_samples": representative_samples}
        record["method"] = (
            "full-integer PTQ of the whole model with only this layer's ops left in float "
            "(tf.lite QuantizationDebugger, denylisted_nodes); reference: the fully int8 model"
        )
        reference, accuracies, float_accuracy, int8_bytes, sizes = _int8_sensitivity(
            ctx, model, layers, x, y, representative_samples
        )
        record["float_accuracy"] = float_accuracy
        record["int8_file_bytes"] = int8_bytes
        for (layer, kernels), accuracy, size in zip(layers, accuracies, sizes):
            rows.append({**_row(layer, [k.numpy() for k in kernels], accuracy, reference), "file_bytes": size})
    record["reference_accuracy"] = reference
    record["rows"] = rows
    return record


def _row(layer, kernels: list[np.ndarray], accuracy: float | None, reference: float) -> dict[str, Any]:
    return {
        "layer": layer.name,
        "type": type(layer).__name__,
        "params": int(sum(k.size for k in kernels)),
        "accuracy": accuracy,
        "drop_points": None if accuracy is None else round((reference - accuracy) * 100, 3),
    }


def _int8_sensitivity(ctx, model, layers, x, y, representative_samples):
    """(fully int8 accuracy, accuracy with each layer left float, float accuracy), all on LiteRT."""
    from ..evaluate import open_interpreter
    from ..keras_env import import_keras
    from . import representative_inputs

    tf, _ = import_keras()
    calibration = representative_inputs(ctx, representative_samples)

    def dataset():
        for i in range(len(calibration)):
            yield [calibration[i : i + 1]]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = dataset
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=converter,
        debug_dataset=dataset,
        debug_options=tf.lite.experimental.QuantizationDebugOptions(fully_quantize=False),
    )

    def accuracy(tflite: bytes) -> float:
        interpreter = open_interpreter(tflite)
        detail, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
        interpreter.resize_tensor_input(detail["index"], [len(x), *x.shape[1:]])
        interpreter.allocate_tensors()
        interpreter.set_tensor(detail["index"], x.astype(np.float32))
        interpreter.invoke()
        return float(np.mean(np.argmax(interpreter.get_tensor(out["index"]), axis=-1) == y))

    ops = _op_tensor_names(debugger)
    quantized = debugger.get_nondebug_quantized_model()
    reference = accuracy(quantized)
    results, sizes = [], []
    for layer, _ in layers:
        # An op is the layer's when one of its tensors (its weights, its output) carries the layer's name;
        # the denylist names ops by their output tensor (a model output is renamed, its weights are not).
        nodes = [outputs[0] for outputs, tensors in ops if outputs and any(f"/{layer.name}/" in f"/{name}" for name in tensors)]
        if not nodes:
            results.append(None)  # no op of the file carries this layer's name: nothing to leave in float
            sizes.append(None)
            continue
        debugger._debug_options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=nodes, fully_quantize=False)
        mixed = debugger.get_nondebug_quantized_model()
        results.append(accuracy(mixed))
        sizes.append(len(mixed))
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    return reference, results, accuracy(converter.convert()), len(quantized), sizes


def _op_tensor_names(debugger) -> list[tuple[list[str], list[str]]]:
    """Per op of the calibrated model: (its output tensor names, what ``denylisted_nodes`` matches; all its tensor names)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=debugger.calibrated_model)  # the calibrated float model the debugger quantizes
    tensors = {detail["index"]: detail["name"] for detail in interpreter.get_tensor_details()}
    ops = []
    for op in interpreter._get_ops_details():
        outputs = [tensors[int(i)] for i in op.get("outputs", []) if int(i) in tensors]
        inputs = [tensors[int(i)] for i in op.get("inputs", []) if int(i) in tensors]
        ops.append((outputs, outputs + inputs))
    return ops


def allocate_per_layer(rows: list[dict[str, Any]], target: float, *, low: float = 0.0, high: float = 0.95) -> dict[str, float]:
    """Per-layer sparsities with the parameter-weighted mean ``target``, inversely to each layer's drop.

    A layer whose drop is ``d`` (points) gets a weight ``1 / (d + 0.1)``; the sparsities
    are ``scale * weight``, clipped to ``[low, high]``, with ``scale`` found by bisection so
    that ``sum(params * sparsity) / sum(params) == target`` (as close as the bounds allow).
    Raises RecipeError when the target is outside ``[low, high]``.
    """
    if not low <= target <= high:
        raise RecipeError(f"per_layer=auto: target {target} is outside {low}..{high}")
    names = [row["layer"] for row in rows]
    params = np.array([row["params"] for row in rows], dtype=np.float64)
    drops = np.array([max(0.0, float(row["drop_points"] or 0.0)) for row in rows])
    weights = 1.0 / (drops + 0.1)

    def mean(scale: float) -> float:
        return float(np.sum(params * np.clip(scale * weights, low, high)) / params.sum())

    lo, hi = 0.0, 1.0
    while mean(hi) < target and hi < 1e9:
        hi *= 2
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if mean(mid) < target else (lo, mid)
    sparsities = np.clip(hi * weights, low, high)
    return {name: float(s) for name, s in zip(names, sparsities)}


def _most_sensitive_first(record: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """(layer, type, params, accuracy %, drop in points) per layer, the largest drop first; "n/a" where not measured."""
    rows = []
    for row in sorted(record["rows"], key=lambda r: -(r["drop_points"] if r["drop_points"] is not None else -1e9)):
        accuracy = "n/a" if row["accuracy"] is None else f"{row['accuracy'] * 100:.2f}"
        drop = "n/a" if row["drop_points"] is None else f"{row['drop_points']:+.2f}"
        rows.append((row["layer"], row["type"], str(row["params"]), accuracy, drop))
    return rows


def table_lines(record: dict[str, Any]) -> list[str]:
    """The sensitivity as a plain-text table, most sensitive first, under a header saying how it was measured."""
    lines = [
        f"{record['technique']} sensitivity of {record['baseline']}: {record['method']}",
        f"validation split {record['validation']} of the training data ({record['images']} images, not the test set); "
        f"reference accuracy {record['reference_accuracy'] * 100:.2f} %",
        f"{'layer':<28} {'type':<18} {'params':>9} {'accuracy %':>10} {'drop (points)':>13}",
    ]
    for layer, kind, params, accuracy, drop in _most_sensitive_first(record):
        lines.append(f"{layer:<28} {kind:<18} {params:>9} {accuracy:>10} {drop:>13}")
    return lines


def sensitivity_table(record: dict[str, Any]):
    """(columns, rows) of the sensitivity for :func:`dnncomp.console.print_table`: the layer and its drop
    always, its accuracy, parameters and type as the terminal's width allows."""
    from ..console import Column

    columns = [
        Column("layer", justify="left"),
        Column("type", priority=3, justify="left"),
        Column("params", priority=2),
        Column("accuracy %", priority=1),
        Column("drop (points)"),
    ]
    return columns, _most_sensitive_first(record)


def plot(record: dict[str, Any], path: Path) -> Path:
    """A bar chart of each layer's drop (in model order) to ``path`` (PNG); matplotlib is imported only here."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = record["rows"]
    figure, axis = plt.subplots(figsize=(max(6.0, 0.5 * len(rows) + 2), 4))
    axis.bar(range(len(rows)), [row["drop_points"] or 0.0 for row in rows], color="tab:red")
    axis.set_xticks(range(len(rows)))
    axis.set_xticklabels([f"{row['layer']}\n{row['params']:,}" for row in rows], rotation=45, ha="right", fontsize=7)
    axis.set_ylabel("accuracy drop (points)")
    axis.set_title(f"{record['technique']} sensitivity {record['setting']} on {record['images']} validation images", fontsize=9)
    axis.axhline(0, color="black", linewidth=0.5)
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def context_for(
    baseline: Path,
    dataset: str,
    *,
    data_dir=None,
    model: str | None = None,
    preprocessing=None,
    seed: int = 0,
    unsafe: bool = False,
    skip_bad: bool = False,
    fit: str | None = None,
) -> tuple[RecipeContext, list[str]]:
    """The RecipeContext ``dnncomp compress`` builds for ``baseline`` on ``dataset``, and its notes.

    :func:`dnncomp.contract.prepare_compression` (the one place that builds it) with its
    arguments; raises ModelError/DataError as compress does.
    """
    from ..contract import prepare_compression

    setup = prepare_compression(
        baseline,
        dataset,
        model=model,
        preprocessing=preprocessing,
        fit=fit,
        data_dir=data_dir,
        skip_bad=skip_bad,
        seed=seed,
        unsafe=unsafe,
    )
    return setup.context, setup.notes
