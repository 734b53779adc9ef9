"""Inside the pruned and clustered models: per-layer sparsity and distinct weight values, read from the flatbuffer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...results import FLOAT_VARIANT, Variant
from ..load import RunData
from ..rows import num
from .style import FONT_SIZE, new_figure, save_png, styled, variant_colors

LAYER_VARIANTS = ("prune", "cluster", FLOAT_VARIANT)


def _kernel_label(shape: Any) -> str:
    """A layer label from its kernel's shape, the same in every variant (tensor names are not: QAT
    renames conv2d to quant_conv2d, and converters name constants arbitrarily)."""
    if isinstance(shape, list) and len(shape) == 4:
        out, kh, kw, cin = shape
        if out == 1:  # depthwise: [1, kh, kw, channels]
            return f"dw {kh}×{kw}, {cin}"
        return f"conv {kh}×{kw}\n{cin}→{out}"
    if isinstance(shape, list) and len(shape) == 2:
        return f"dense\n{shape[1]}→{shape[0]}"
    return "×".join(map(str, shape)) if isinstance(shape, list) else "?"


def _tensor_entries(anatomy: Any) -> list[dict[str, Any]] | None:
    """Per-kernel rows (label, elements, sparsity, unique values) from a dnncomp.anatomy summary.

    Reads ``anatomy["weights"]`` (entries with name, shape, size, role, sparsity,
    unique); kernels only (``role == "kernel"``): biases are neither pruned nor
    clustered. Each label gets an ordinal
    suffix when two kernels share a shape, so variants line up layer by layer.
    """
    if not isinstance(anatomy, dict):
        return None
    entries = anatomy.get("weights") if isinstance(anatomy.get("weights"), list) else None
    if not entries:
        return None
    rows, seen = [], {}
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        shape = entry.get("shape")
        if entry.get("role") != "kernel":  # biases are neither pruned nor clustered
            continue
        sparsity, unique = num(entry.get("sparsity")), num(entry.get("unique"))
        if sparsity is None and unique is None:
            continue
        label = _kernel_label(shape)
        seen[label] = seen.get(label, 0) + 1
        if seen[label] > 1:
            label += f" ({seen[label]})"
        rows.append(
            {
                "label": label,
                "name": str(entry.get("name", "")),
                "elements": num(entry.get("size")),
                "sparsity": sparsity,
                "unique": unique,
                "shape": shape,
            }
        )
    return _network_order(rows) or None


def _network_order(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Kernels in the order data flows through them, as far as the shapes tell.

    A flatbuffer lists tensors in no particular order. In a chain of layers each
    kernel's input channels are the previous one's outputs: convolutions first
    ([out, kh, kw, in]), then dense layers ([out, in]), each group chained from
    the kernel whose input no other kernel produces. Where the chain is
    ambiguous (branches, in == out), the rest keep their stored order.
    """

    def chain(group: list[dict[str, Any]], io) -> list[dict[str, Any]]:
        left = list(group)
        ordered = []
        current = next((r for r in left if all(io(r)[0] != io(o)[1] for o in left if o is not r)), None)
        while current is not None:
            ordered.append(current)
            left.remove(current)
            current = next((r for r in left if io(r)[0] == io(ordered[-1])[1]), None)
        return ordered + left

    convs = [r for r in rows if isinstance(r["shape"], list) and len(r["shape"]) == 4]
    denses = [r for r in rows if isinstance(r["shape"], list) and len(r["shape"]) == 2]
    others = [r for r in rows if r not in convs and r not in denses]
    return (
        chain(convs, lambda r: (r["shape"][3], r["shape"][0])) + chain(denses, lambda r: (r["shape"][1], r["shape"][0])) + others
    )


def layer_details(run: RunData, variant: Variant) -> list[dict[str, Any]] | None:
    """Per-tensor detail: from results.json's anatomy, else by inspecting the variant's .tflite file."""
    rows = _tensor_entries(variant.anatomy.to_json() if variant.anatomy else None)
    if rows:
        return rows
    artifact = run.run_dir / str(variant.artifact or "")
    if not artifact.is_file() or artifact.suffix != ".tflite":
        return None
    try:
        from ...anatomy import inspect_model
    except ImportError:
        return None
    try:
        return _tensor_entries(inspect_model(artifact))
    except Exception as exc:  # a report must not die on one unreadable artifact; it says so instead
        run.notes.append(f"could not inspect {artifact.name}: {exc}")
        return None


@styled
def plot_layers(details: dict[str, list[dict[str, Any]]], path: Path, title: str) -> Path | None:
    """Per-layer sparsity (%) and unique weight values, one bar group per layer, one bar per variant."""
    details = {k: v for k, v in details.items() if v}
    if not details:
        return None
    layer_names: list[str] = []
    for rows in details.values():
        for row in rows:
            if row["label"] not in layer_names:
                layer_names.append(row["label"])
    fig, axes = new_figure(max(8.2, 0.9 * len(layer_names) * 2 + 2.2), 3.8, ncols=2)
    colors = variant_colors(details)
    width = 0.8 / len(details)
    for ax, key, ylabel in (
        (axes[0][0], "sparsity", "zero weights, %"),
        (axes[0][1], "unique", "distinct weight values (log scale)"),
    ):
        for k, (variant, rows) in enumerate(details.items()):
            by_layer = {r["label"]: r for r in rows}
            xs, values = [], []
            for i, layer in enumerate(layer_names):
                value = by_layer.get(layer, {}).get(key)
                if value is not None:
                    xs.append(i - 0.4 + width * (k + 0.5))
                    values.append(100 * value if key == "sparsity" else value)
            ax.bar(xs, values, width * 0.92, color=colors[variant], label=variant, edgecolor="#333", lw=0.5, zorder=3)
            for x, v in zip(xs, values):
                text = f"{v:.0f}" if key == "sparsity" else (f"{v:.0f}" if v < 1e4 else f"{v / 1e3:.0f}k")
                ax.annotate(
                    text, (x, v), xytext=(0, 2), textcoords="offset points", ha="center", va="bottom", fontsize=FONT_SIZE - 2.5
                )
        many = len(layer_names) > 5
        ax.set_xticks(
            range(len(layer_names)),
            layer_names,
            rotation=30 if many else 0,
            ha="right" if many else "center",
            fontsize=FONT_SIZE - 1.5,
        )
        ax.set_ylabel(ylabel)
        ax.set_xlabel("layer (kernel shape, in→out channels)")
        ax.grid(axis="x", visible=False)
        if key == "sparsity":
            ax.set_ylim(0, 108)
        else:
            ax.set_yscale("log")
            ax.margins(y=0.2)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", frameon=False, title="variant")
    fig.suptitle(title, x=0.02, ha="left", fontsize=FONT_SIZE + 1.5)
    return save_png(fig, path)
