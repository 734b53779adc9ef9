"""What a recipe did, read back from the flatbuffer it produced, and the lines ``dnncomp compress`` prints. No TensorFlow.

:func:`compression_check` compares what the recipe meant (from its JSON ``info``: the
layers it pruned to a target sparsity, clustered to k values, quantized to int8) with
what the file holds per layer (:func:`dnncomp.anatomy.layer_table`: zeros, distinct
values per kernel and per output channel, dtypes), and lists the ops an integer-only
recipe still runs in float. The per-layer lines of :func:`summary_lines` come from it,
so a summary can never claim more than the artifact holds.
"""

from __future__ import annotations

from typing import Any

from ..results import MISSING

STAGES = ("pruning", "clustering", "qat")
_SINGLE_STAGE_MARKERS = {"pruned_layers": "pruning", "clustered_layers": "clustering", "quantized_layers": "qat"}


def summary_lines(info: dict[str, Any]) -> list[str]:
    """What each stage changed and left alone, then how it was converted, then the file's per-layer check.

    Sparsity and unique values are the file's (``info["compression_check"]``, see
    :func:`compression_check`) wherever the recipe's layer is found in it; a number only
    the Keras model had is marked ``(keras)``.
    """
    check = info.get("compression_check")
    found = {layer["layer"]: layer for layer in (check or {}).get("layers", [])}
    params = ", ".join(f"{k}={v}" for k, v in (info.get("params") or {}).items()) or "none"
    lines = [f"recipe {info.get('recipe', '?')} ({info.get('wall_s', 0):.1f} s); params: {params}"]
    tuning = info.get("fine_tuning")
    if isinstance(tuning, dict):  # issue 13: which fine-tuning ran, and why that one
        distill = tuning.get("distill")
        lines.append(
            f"fine-tuning: {tuning.get('mode')} ({tuning.get('reason')}); {tuning.get('optimizer')}; "
            f"augmentation {'on' if tuning.get('augment') else 'off'}"
            + (f" ({tuning['augment_note']})" if tuning.get("augment_note") else "")
            + (
                f"; distilled from the float baseline (alpha {distill['alpha']}, T {distill['temperature']})"
                if distill
                else "; no distillation"
            )
            + f"; {tuning.get('wall_s', 0):.1f} s in all stages"
        )
    stages = [(name, info[name]) for name in STAGES if isinstance(info.get(name), dict)]
    if not stages:
        single = next((stage for key, stage in _SINGLE_STAGE_MARKERS.items() if key in info), None)
        stages = [(single, info)] if single else []
    for name, stage in stages:
        lines.append(f"{name}:")
        lines.extend("  " + line for line in _stage_lines(stage, found, tuning if isinstance(tuning, dict) else None))
    lines.append("conversion: " + _conversion_line(info))
    if not stages:
        lines.append("layers changed: none before conversion (the converter quantizes every layer it can)")
    if info.get("float_fallback"):
        lines.append("  the converter could not quantize every op: it fell back to float for those")
    if info.get("float_kernel_ops"):
        lines.append("  kernels left in float: " + _join(info["float_kernel_ops"]))
    if check:
        lines.extend(check_lines(check))
    return lines


def _in_file(found: dict[str, dict[str, Any]], name: str) -> dict[str, Any] | None:
    """The file's row for Keras layer ``name`` (its path in the file may carry a nested model's name)."""
    return next((row for layer, row in found.items() if _matches(layer, name)), None)


def loss_label(training: dict[str, Any], tuning: dict[str, Any] | None) -> str:
    """What the fine-tuning's "loss" was: the distillation mix (with its weights) or the cross-entropy.

    ``training``: a stage's ``fine_tune`` record; ``tuning``: the recipe's ``info["fine_tuning"]``.
    A new user read "final loss 0.75" of a distilled QAT as a plain cross-entropy (case 09).
    """
    distill = (tuning or {}).get("distill")
    if training.get("distill") and isinstance(distill, dict):
        alpha = float(distill["alpha"])
        return f"fine-tuning loss ({alpha:g} CE + {1 - alpha:g} T^2 KL, distillation)"
    return "fine-tuning loss (cross-entropy)"


# Keras' history keys -> what they are here (batches of the fine-tuning, not a held-out split)
_HISTORY_LABELS = {"accuracy": "training accuracy", "sparse_categorical_accuracy": "training accuracy"}


def _stage_lines(stage: dict[str, Any], found: dict[str, dict[str, Any]], tuning: dict[str, Any] | None = None) -> list[str]:
    lines = []
    training = stage.get("fine_tune")
    if training:
        history = training.get("history", {})
        labels = {"loss": loss_label(training, tuning), **_HISTORY_LABELS}
        last = ", ".join(f"{labels.get(key, key)} {values[-1]:.4f}" for key, values in history.items() if values)
        lines.append(
            f"fine-tuned {training['epochs']} epoch(s): {training['steps']} steps of batch {training['batch_size']} "
            f"on {training['examples']} images"
            + (f" in {training['wall_s']:.1f} s" if "wall_s" in training else "")
            + (f"; final {last}" if last else "")
        )
    calibrated = stage.get("activation_ranges_calibrated")
    if calibrated:  # recover QAT: TFMOT's +-6 start would barely move over a short fine-tune
        lines.append(f"activation ranges set from {calibrated['images']} training images before QAT (not TFMOT's +-6 start)")
    if "pruned_layers" in stage:
        sparsity = stage.get("kernel_sparsity", {})
        rows = {n: _in_file(found, n) for n in stage["pruned_layers"]}
        lines.append(
            f"pruned ({len(stage['pruned_layers'])} layers): "
            + _join(
                f"{n} {rows[n]['zeros']:.1%}"
                if rows[n] and rows[n]["zeros"] is not None
                else f"{n} {sparsity.get(n, 0):.1%} (keras)"
                for n in stage["pruned_layers"]
            )
        )
        in_file = [row for row in rows.values() if row and row["zeros"] is not None]
        if found and len(in_file) == len(rows) and sum(row["size"] for row in in_file):
            overall = sum(row["zeros"] * row["size"] for row in in_file) / sum(row["size"] for row in in_file)
            overall_text = f"overall kernel sparsity in the file {overall:.1%}"
        else:
            overall_text = f"overall kernel sparsity {stage.get('overall_kernel_sparsity', 0):.1%} (keras)"
        lines.append(
            f"{overall_text}; "
            + ("schedule completed" if stage.get("schedule_completed") else "SCHEDULE NOT COMPLETED: target sparsity not reached")
            + f" ({stage.get('pruning_steps')} steps)"
        )
    if "structured_layers" in stage:
        m, n = stage.get("m_by_n", [2, 4])
        violations = stage.get("m_by_n_violations", {})
        lines.append(
            f"{m}:{n} structured ({len(stage['structured_layers'])}): "
            + _join(f"{name} ({violations.get(name, '?')} groups break the pattern)" for name in stage["structured_layers"])
        )
        fallback = stage.get("unstructured_fallback_layers") or {}
        if fallback:
            lines.append("unstructured fallback: " + _join(f"{name} {s:.0%}" for name, s in fallback.items()))
    if "clustered_layers" in stage:
        unique = stage.get("unique_values_per_kernel", {})
        per_channel = stage.get("max_unique_values_per_channel")

        def clustered(name: str) -> str:
            row = _in_file(found, name)
            if row and row["unique"] is not None:
                return f"{name} {row['unique']} values, at most {row['max_unique_per_channel']} in one output channel"
            return (
                f"{name} {unique.get(name, '?')} values"
                + (f" (<= {per_channel[name]} per channel)" if per_channel and name in per_channel else "")
                + " (keras)"
            )

        lines.append(
            f"clustered ({len(stage['clustered_layers'])} layers): "
            + _join(clustered(name) for name in stage["clustered_layers"])
        )
        if "kernel_sparsity" in stage and "pruned_layers" not in stage:
            lines.append("sparsity kept: " + _join(f"{n} {s:.1%}" for n, s in stage["kernel_sparsity"].items()))
    if "quantized_layers" in stage:
        lines.append(
            f"quantization-aware ({stage.get('scheme', 'default 8-bit')}), {len(stage['quantized_layers'])} layers: "
            + _join(stage["quantized_layers"])
        )
    left_alone = stage.get("layers_left_alone") or {}
    lines.append("left alone: " + (_join(f"{name} ({why})" for name, why in left_alone.items()) if left_alone else "none"))
    return lines


def _conversion_line(info: dict[str, Any]) -> str:
    parts = [str(info.get("conversion", "?"))]
    io_dtype = info.get("io_dtype")
    if io_dtype:
        parts.append(f"input/output {io_dtype}")
    if "representative_samples" in info:
        parts.append(f"calibrated on {info['representative_samples']} training images")
    if info.get("sparse_format"):
        parts.append(f"sparse weight format: {info.get('sparse_tensors', '?')} tensor(s) stored sparsely")
    return "; ".join(parts)


def _join(items) -> str:
    items = list(items)
    return ", ".join(items) if items else "none"


# ---- intention against the file ------------------------------------------------------------

# Integer-only conversions add "float_kernel_ops" to the info (quantize.convert); the others are
# recognised by their conversion text.
_DYNAMIC_PREFIX = "optimizations=[DEFAULT], no representative data"
_FP16_PREFIX = "optimizations=[DEFAULT], supported_types=[float16]"
_INT16X8_MARK = "int16 activations"
_INTEGER_COMPUTE = {"int8": ("int8", "uint8"), "int16x8": ("int16",)}


def _stages(info: dict[str, Any]) -> list[dict[str, Any]]:
    stages = [info[name] for name in STAGES if isinstance(info.get(name), dict)]
    return stages or [info]


def _left_alone(info: dict[str, Any]) -> dict[str, str]:
    reasons = dict(info.get("layers_left_alone") or {})
    for stage in _stages(info):
        for name, why in (stage.get("layers_left_alone") or {}).items():
            reasons.setdefault(name, why)
    return reasons


def intentions(info: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """(per Keras layer what the recipe meant, what it meant for every kernel layer) from its ``info``.

    Per layer: ``prune`` (target zero fraction), ``cluster`` (values per kernel, or per
    output channel when ``per_channel``). For every kernel layer not left alone:
    ``quantize`` is ``"int8"`` or ``"int16x8"`` (integer-only conversions: weights int8,
    compute integer), ``"int8 weights"`` (dynamic range) or ``"float16 weights"``.
    """
    params = info.get("params") or {}
    per_layer: dict[str, dict[str, Any]] = {}
    for stage in _stages(info):
        if "pruned_layers" in stage:
            structured = set(stage.get("structured_layers") or [])
            fallback = stage.get("unstructured_fallback_layers") or {}
            m, n = stage.get("m_by_n") or (2, 4)
            for name in stage["pruned_layers"]:
                if name in structured:
                    target = (n - m) / n
                elif name in fallback:
                    target = float(fallback[name])
                else:  # per_layer=auto gives each layer its own (issue 13)
                    target = ((stage.get("layer_plan") or {}).get("per_layer") or {}).get(name, params.get("final_sparsity"))
                if target is not None:
                    per_layer.setdefault(name, {})["prune"] = float(target)
        if "clustered_layers" in stage and params.get("number_of_clusters"):
            per_channel = set(stage.get("per_channel_layers") or [])
            for name in stage["clustered_layers"]:
                own = ((stage.get("layer_plan") or {}).get("per_layer") or {}).get(name)
                per_layer.setdefault(name, {})["cluster"] = int(own or params["number_of_clusters"])
                if name in per_channel:
                    per_layer[name]["per_channel"] = True
    every: dict[str, Any] = {}
    conversion = str(info.get("conversion", ""))
    if "float_kernel_ops" in info:
        every["quantize"] = "int16x8" if _INT16X8_MARK in conversion else "int8"
    elif conversion.startswith(_DYNAMIC_PREFIX):
        every["quantize"] = "int8 weights"
    elif conversion.startswith(_FP16_PREFIX):
        every["quantize"] = "float16 weights"
    return per_layer, every


def _matches(file_layer: str, keras_name: str) -> bool:
    return file_layer == keras_name or file_layer.endswith("/" + keras_name)


def compression_check(info: dict[str, Any], anatomy: dict[str, Any]) -> dict[str, Any]:
    """Per layer of the file: what the recipe meant, what the file holds, and whether that holds.

    ``anatomy`` is :func:`dnncomp.anatomy.inspect_model` of the produced flatbuffer. Returns
    ``{"holds", "layers": [...], "missing": [...], "integer_only", "float_ops"}``; each layer
    has its ops, dtypes, ``zeros``, ``unique``, ``max_unique_per_channel``, ``meant``,
    ``left_alone`` (the recipe's reason, if any), ``holds`` and ``problems`` (e.g. ``"meant:
    prune 80 %, file: 12 % zeros"``). A pruned layer holds if its zeros reach the target
    (within 1 % and one weight); a clustered one if it has at most k distinct values per
    kernel (float, per-tensor clustering) or per output channel (per-channel clustering, or
    int8 weights whose per-channel scales map k centroids to k values per channel), a zero
    kept by pruning or exact zeros counting as one more; a quantized one if its weights and
    its compute have the meant dtypes. ``missing``: layers the recipe meant to compress
    that no kernel op of the file comes from.
    """
    from ..anatomy import float_ops, layer_table

    per_layer, every = intentions(info)
    left_alone = _left_alone(info)
    table = layer_table(anatomy)
    layers = []
    for file_layer, row in table.items():
        meant: dict[str, Any] = {}
        for name, intention in per_layer.items():
            if _matches(file_layer, name):
                meant.update(intention)
        # A nested model left alone as a whole covers the layers inside it ("backbone/conv2d").
        reason = next(
            (why for name, why in left_alone.items() if _matches(file_layer, name) or file_layer.startswith(name + "/")), None
        )
        if every and reason is None:
            meant.update(every)
        problems = [_problem(kind, meant, row) for kind in ("prune", "cluster", "quantize") if kind in meant]
        problems = [p for p in problems if p]
        layers.append(
            {
                "layer": file_layer,
                "ops": row["ops"],
                "op_indices": row["op_indices"],
                "weight_dtype": "/".join(row["weight_dtypes"]) or None,
                "compute_dtype": "/".join(row["compute_dtypes"]) or None,
                "size": row["size"],
                "zeros": row["zeros"],
                "unique": row["unique"],
                "max_unique_per_channel": row["max_unique_per_channel"],
                "sparse_format": row["sparse_format"],
                "meant": meant,
                **({"left_alone": reason} if reason else {}),
                "holds": not problems,
                "problems": problems,
            }
        )
    missing = sorted(
        name
        for name, intention in per_layer.items()
        if ("prune" in intention or "cluster" in intention) and not any(_matches(layer, name) for layer in table)
    )
    integer_only = every.get("quantize") in _INTEGER_COMPUTE
    return {
        "holds": all(layer["holds"] for layer in layers) and not missing,
        "layers": layers,
        "missing": missing,
        "integer_only": integer_only,
        "float_ops": float_ops(anatomy) if integer_only else [],
    }


def _problem(kind: str, meant: dict[str, Any], row: dict[str, Any]) -> str | None:
    """None if the file holds what ``meant[kind]`` says, else ``"meant: ..., file: ..."``."""
    if kind == "prune":
        target, zeros, size = meant["prune"], row["zeros"], row["size"]
        if zeros is None:
            return f"meant: prune {target:.0%}, file: zeros not readable"
        if zeros + 0.01 + 1 / max(size, 1) < target:
            return f"meant: prune {target:.0%}, file: {zeros:.1%} zeros"
        return None
    if kind == "cluster":
        k = meant["cluster"]
        by_channel = meant.get("per_channel") or any(d in ("int8", "uint8", "int16") for d in row["weight_dtypes"])
        found = row["max_unique_per_channel"] if by_channel else row["unique"]
        where = "per output channel" if by_channel else "per kernel"
        if found is None:
            return f"meant: cluster to {k} values, file: values not readable{' (sparse format)' if row['sparse_format'] else ''}"
        allowed = k + (1 if row["zeros"] else 0)  # a zero kept by pruning (or an exact zero) is one more value
        if found > allowed:
            return f"meant: cluster to {k} values {where}, file: {found} distinct values {where}"
        return None
    quantize = meant["quantize"]
    weights, compute = row["weight_dtypes"], row["compute_dtypes"]
    if quantize in _INTEGER_COMPUTE:
        if weights != ["int8"] or any(c not in _INTEGER_COMPUTE[quantize] for c in compute):
            return f"meant: {quantize}, file: {'/'.join(weights) or '?'} weights computing in {'/'.join(compute) or '?'}"
        return None
    wanted = quantize.split()[0]
    if weights != [wanted]:
        return f"meant: {quantize}, file: {'/'.join(weights) or '?'} weights"
    return None


def check_lines(check: dict[str, Any]) -> list[str]:
    """The per-layer table of a :func:`compression_check`, and its verdict, as printed lines."""
    lines = ["per layer, read from the flatbuffer (zeros, distinct values per kernel / per output channel):"]
    width = max((len(layer["layer"]) for layer in check["layers"]), default=5)
    for layer in check["layers"]:
        zeros = MISSING if layer["zeros"] is None else f"{layer['zeros']:6.1%}"
        unique = MISSING if layer["unique"] is None else str(layer["unique"])
        per_channel = MISSING if layer["max_unique_per_channel"] is None else str(layer["max_unique_per_channel"])
        meant = (
            _meant_text(layer["meant"])
            if layer["meant"]
            else ("left alone: " + layer["left_alone"] if layer.get("left_alone") else "unchanged")
        )
        verdict = (
            "" if not layer["meant"] else ("  ok" if layer["holds"] else "  NOT IN THE FILE: " + "; ".join(layer["problems"]))
        )
        lines.append(
            f"  {layer['layer']:<{width}}  {'+'.join(layer['ops']):<17} {layer['weight_dtype'] or '?':>7} weights, "
            f"{layer['compute_dtype'] or '?'} compute  zeros {zeros}  values {unique} / {per_channel}"
            + ("  (sparse format)" if layer["sparse_format"] else "")
            + f"  meant: {meant}{verdict}"
        )
    for name in check["missing"]:
        lines.append(f"  {name}: meant to be compressed, but no kernel op of the file comes from it")
    pruned = [layer for layer in check["layers"] if "prune" in layer["meant"]]
    if pruned:
        lines.append("where the zeros pay: " + _zeros_gain(pruned))
    if check["integer_only"]:
        lines.append("ops still computing in float: " + _join(check["float_ops"]))
    failing = [layer["layer"] for layer in check["layers"] if not layer["holds"]] + check["missing"]
    lines.append(
        "check: the file holds what the recipe meant"
        if check["holds"]
        else f"check: DOES NOT HOLD for {len(failing)} layer(s): " + _join(failing)
    )
    return lines


def _meant_text(meant: dict[str, Any]) -> str:
    parts = []
    if "prune" in meant:
        parts.append(f"prune {meant['prune']:.0%}")
    if "cluster" in meant:
        parts.append(f"cluster {meant['cluster']}" + (" per channel" if meant.get("per_channel") else ""))
    if "quantize" in meant:
        parts.append(meant["quantize"])
    return ", ".join(parts)


def _zeros_gain(pruned: list[dict[str, Any]]) -> str:
    """Where pruned zeros make the artifact smaller: the file (sparse format), int8 bytes, or only gzip."""
    sparse = sum(1 for layer in pruned if layer["sparse_format"])
    dense_float = [layer for layer in pruned if not layer["sparse_format"] and (layer["weight_dtype"] or "").startswith("float")]
    parts = []
    if sparse:
        parts.append(f"{sparse} pruned kernel(s) stored in the sparse format, so the file itself shrinks")
    if dense_float:
        parts.append(
            f"{len(dense_float)} pruned kernel(s) stored densely in float: the file is as large as unpruned, "
            "the gain shows after gzip (prune-sparse stores them sparsely, prune-ptq-int8 in int8)"
        )
    int8 = len(pruned) - sparse - len(dense_float)
    if int8:
        parts.append(f"{int8} pruned kernel(s) in int8 (a quarter of float32's bytes), zeros kept, so gzip gains more")
    return "; ".join(parts)
