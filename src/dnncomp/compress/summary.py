"""Human lines describing what a recipe did, from its JSON ``info`` (for ``dnncomp compress``). No TensorFlow."""

from __future__ import annotations

from typing import Any

STAGES = ("pruning", "clustering", "qat")
_SINGLE_STAGE_MARKERS = {"pruned_layers": "pruning", "clustered_layers": "clustering", "quantized_layers": "qat"}


def summary_lines(info: dict[str, Any]) -> list[str]:
    """What each stage changed and left alone (sparsity, unique values, layers), then how it was converted."""
    params = ", ".join(f"{k}={v}" for k, v in (info.get("params") or {}).items()) or "none"
    lines = [f"recipe {info.get('recipe', '?')} ({info.get('wall_s', 0):.1f} s); params: {params}"]
    stages = [(name, info[name]) for name in STAGES if isinstance(info.get(name), dict)]
    if not stages:
        single = next((stage for key, stage in _SINGLE_STAGE_MARKERS.items() if key in info), None)
        stages = [(single, info)] if single else []
    for name, stage in stages:
        lines.append(f"{name}:")
        lines.extend("  " + line for line in _stage_lines(stage))
    lines.append("conversion: " + _conversion_line(info))
    if not stages:
        lines.append("layers changed: none before conversion (the converter quantizes every layer it can)")
    if info.get("float_fallback"):
        lines.append("  the converter could not quantize every op: it fell back to float for those")
    if info.get("float_kernel_ops"):
        lines.append("  kernels left in float: " + _join(info["float_kernel_ops"]))
    return lines


def _stage_lines(stage: dict[str, Any]) -> list[str]:
    lines = []
    training = stage.get("fine_tune")
    if training:
        history = training.get("history", {})
        last = ", ".join(f"{key} {values[-1]:.4f}" for key, values in history.items() if values)
        lines.append(
            f"fine-tuned {training['epochs']} epoch(s): {training['steps']} steps of batch {training['batch_size']} "
            f"on {training['examples']} images" + (f" in {training['wall_s']:.1f} s" if "wall_s" in training else "")
            + (f"; final {last}" if last else "")
        )
    if "pruned_layers" in stage:
        sparsity = stage.get("kernel_sparsity", {})
        lines.append(f"pruned ({len(stage['pruned_layers'])}): " + _join(f"{n} {sparsity.get(n, 0):.1%}" for n in stage["pruned_layers"]))
        lines.append(
            f"overall kernel sparsity {stage.get('overall_kernel_sparsity', 0):.1%}; "
            + ("schedule completed" if stage.get("schedule_completed") else "SCHEDULE NOT COMPLETED: target sparsity not reached")
            + f" ({stage.get('pruning_steps')} steps)"
        )
    if "structured_layers" in stage:
        m, n = stage.get("m_by_n", [2, 4])
        violations = stage.get("m_by_n_violations", {})
        lines.append(f"{m}:{n} structured ({len(stage['structured_layers'])}): " + _join(
            f"{name} ({violations.get(name, '?')} groups break the pattern)" for name in stage["structured_layers"]
        ))
        fallback = stage.get("unstructured_fallback_layers") or {}
        if fallback:
            lines.append("unstructured fallback: " + _join(f"{name} {s:.0%}" for name, s in fallback.items()))
    if "clustered_layers" in stage:
        unique = stage.get("unique_values_per_kernel", {})
        per_channel = stage.get("max_unique_values_per_channel")
        lines.append(f"clustered ({len(stage['clustered_layers'])}): " + _join(
            f"{name} {unique.get(name, '?')} values" + (f" (<= {per_channel[name]} per channel)" if per_channel and name in per_channel else "")
            for name in stage["clustered_layers"]
        ))
        if "kernel_sparsity" in stage and "pruned_layers" not in stage:
            lines.append("sparsity kept: " + _join(f"{n} {s:.1%}" for n, s in stage["kernel_sparsity"].items()))
    if "quantized_layers" in stage:
        lines.append(f"quantization-aware ({stage.get('scheme', 'default 8-bit')}), {len(stage['quantized_layers'])} layers: " + _join(stage["quantized_layers"]))
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
