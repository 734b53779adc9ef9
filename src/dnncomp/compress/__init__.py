"""Compression recipes: named, parameterised functions from a saved baseline to a LiteRT flatbuffer.

A recipe is one function registered by name, timm-style::

    @register_recipe("prune", description="...", params={"final_sparsity": Param(0.8, "target", minimum=0, maximum=1)})
    def prune_low_magnitude_recipe(ctx: RecipeContext, *, final_sparsity: float, ...) -> RecipeResult:
        model = ctx.load_baseline()        # a FRESH copy: never a model another recipe touched
        ...
        return RecipeResult(tflite=to_tflite(stripped), info={...}, keras_model=stripped)

Parameters have typed defaults, so ``dnncomp recipes`` can list them and
``--param key=value`` strings are converted to the default's type, with a
RecipeError for unknown keys or bad values. This module and the recipe modules
import TensorFlow only inside the recipe functions: listing recipes needs none.
"""

from __future__ import annotations

import inspect
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import DnncompError, RecipeError
from ..models import ModelSpec

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class Param:
    """A recipe parameter: default (whose type is the parameter's type), help, and bounds or choices."""

    default: Any
    help: str = ""
    type: type | None = None  # needed only when the default is None
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None

    @property
    def kind(self) -> type:
        return self.type or type(self.default)

    def convert(self, key: str, value: Any) -> Any:
        """Convert a CLI string or a JSON value to this parameter's type and check it."""
        kind = self.kind
        if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null")):
            if self.default is None:
                return None
            raise RecipeError(f"parameter {key}: needs a {kind.__name__} value, got {value!r}")
        try:
            converted = _convert(kind, value)
        except (TypeError, ValueError):
            raise RecipeError(f"parameter {key}: {value!r} is not a valid {kind.__name__}") from None
        if self.choices is not None and converted not in self.choices:
            raise RecipeError(f"parameter {key}: {converted!r} is not one of {', '.join(map(str, self.choices))}")
        if self.minimum is not None and converted < self.minimum:
            raise RecipeError(f"parameter {key}: {converted!r} is below its minimum {self.minimum}")
        if self.maximum is not None and converted > self.maximum:
            raise RecipeError(f"parameter {key}: {converted!r} is above its maximum {self.maximum}")
        return converted


def _convert(kind: type, value: Any) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValueError(value)
    if isinstance(value, bool):  # True is an int in Python; never let it pass as a number
        raise TypeError(value)
    if kind is int:
        if isinstance(value, (int, np.integer)):
            return int(value)
        number = float(str(value).strip())  # accepts "1000" and "1e3"
        if not number.is_integer():
            raise ValueError(value)
        return int(number)
    if kind is float:
        number = float(str(value).strip()) if isinstance(value, str) else float(value)
        if not math.isfinite(number):
            raise ValueError(value)
        return number
    if kind is str:
        return str(value).strip()
    raise TypeError(f"unsupported parameter type {kind.__name__}")


@dataclass
class RecipeContext:
    """What a recipe starts from.

    ``x_train`` may be raw uint8 NHWC images (as the loaders give them; arranged in
    the model's layout, resized and mapped by ``preprocessing`` here, once) or float32
    inputs already shaped for the model. ``baseline_path`` is a saved ``.keras`` (or
    ``.h5``) baseline that recipes only ever read.

    ``spec`` gives the input shape, the output kind (the fine-tuning loss's
    ``from_logits``) and the training defaults. For a user's file it is built from the
    file's :class:`~dnncomp.contract.ModelContract` (``contract``), never taken from a
    registry default. ``preprocessing`` is the pixel mapping (None: ``pixel / 255``).
    """

    baseline_path: Path
    spec: ModelSpec
    x_train: np.ndarray
    y_train: np.ndarray
    seed: int = 0
    verbose: int = 0
    preprocessing: Any = None  # dnncomp.preprocess.Preprocessing | None
    contract: Any = None  # dnncomp.contract.ModelContract | None
    unsafe: bool = False  # load Lambda layers (their Python code runs): the CLI's --unsafe
    _inputs: np.ndarray | None = field(default=None, init=False, repr=False)

    def __post_init__(self):
        self.baseline_path = Path(self.baseline_path)
        if len(self.x_train) != len(self.y_train):
            raise RecipeError(f"{len(self.x_train)} training images but {len(self.y_train)} labels")

    @property
    def inputs(self) -> np.ndarray:
        """The training images as float32 model inputs (computed once, shared by the recipes)."""
        if self._inputs is None:
            from ..train import model_inputs

            self._inputs = model_inputs(self.spec, self.x_train, self.preprocessing)
        return self._inputs

    @property
    def from_logits(self) -> bool:
        """Whether the model outputs logits: the file's contract decides when there is one."""
        return self.contract.from_logits if self.contract is not None else self.spec.from_logits

    @property
    def labels(self) -> np.ndarray:
        return np.asarray(self.y_train).astype(np.int64)

    def load_baseline(self):
        """A fresh Keras model from the baseline file: TFMOT wrappers share layers, so never reuse one."""
        from ..train import load_baseline

        return load_baseline(self.baseline_path, unsafe=self.unsafe)


@dataclass
class RecipeResult:
    tflite: bytes
    info: dict[str, Any] = field(default_factory=dict)  # JSON-able: what the recipe did and measured
    keras_model: Any = None  # the final (stripped) Keras model, for statistics; not serialised


@dataclass(frozen=True)
class Recipe:
    name: str
    function: Callable[..., RecipeResult]
    description: str
    params: dict[str, Param]

    def resolve_params(self, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """Defaults with ``overrides`` (strings from the CLI or typed values) converted and checked."""
        overrides = dict(overrides or {})
        unknown = sorted(set(overrides) - set(self.params))
        if unknown:
            known = ", ".join(f"{k}={p.default!r}" for k, p in self.params.items()) or "none"
            raise RecipeError(f"recipe {self.name}: unknown parameter(s) {', '.join(unknown)}; its parameters: {known}")
        resolved = {key: param.default for key, param in self.params.items()}
        for key, value in overrides.items():
            resolved[key] = self.params[key].convert(f"{self.name}.{key}", value)
        return resolved

    def describe(self) -> dict[str, Any]:
        """For ``dnncomp recipes``: name, description, and each parameter's type, default and help."""
        return {
            "name": self.name,
            "description": self.description,
            "params": {
                key: {
                    "type": param.kind.__name__,
                    "default": param.default,
                    "help": param.help,
                    **({"choices": list(param.choices)} if param.choices else {}),
                    **({"minimum": param.minimum} if param.minimum is not None else {}),
                    **({"maximum": param.maximum} if param.maximum is not None else {}),
                }
                for key, param in self.params.items()
            },
        }


_RECIPES: dict[str, Recipe] = {}


def register_recipe(name: str, *, description: str, params: dict[str, Param | Any] | None = None):
    """Decorator: register ``function(ctx, **params) -> RecipeResult`` under ``name``.

    ``params`` maps each keyword of the function to a :class:`Param` or a bare default.
    """

    def decorator(function: Callable[..., RecipeResult]):
        if name in _RECIPES:
            raise ValueError(f"recipe {name!r} is already registered")
        specs = {key: value if isinstance(value, Param) else Param(value) for key, value in (params or {}).items()}
        signature = inspect.signature(function).parameters.values()
        keywords = {p.name for p in signature if p.kind is inspect.Parameter.KEYWORD_ONLY}
        forwards = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature)
        # A recipe's declared parameters are exactly its keyword arguments; one that forwards
        # **shared parameters to a stage (combine.py) must still name each of its own.
        if keywords != set(specs) and not (forwards and keywords <= set(specs)):
            raise ValueError(f"recipe {name!r}: params {sorted(specs)} do not match the function's keywords {sorted(keywords)}")
        _RECIPES[name] = Recipe(name=name, function=function, description=description, params=specs)
        return function

    return decorator


def list_recipes() -> list[Recipe]:
    return [_RECIPES[name] for name in _RECIPES]


def get_recipe(name: str) -> Recipe:
    try:
        return _RECIPES[name]
    except KeyError:
        raise RecipeError(f"unknown recipe {name!r}; known recipes: {', '.join(_RECIPES)}") from None


def apply_recipe(name: str, ctx: RecipeContext, params: dict[str, Any] | None = None) -> RecipeResult:
    """Run a recipe from the saved baseline, seeded with ``ctx.seed``; returns its LiteRT bytes and info."""
    recipe = get_recipe(name)
    resolved = recipe.resolve_params(params)
    if not ctx.baseline_path.exists():  # a file, or a SavedModel directory
        raise RecipeError(f"recipe {name}: baseline {ctx.baseline_path} not found; train the baseline first")
    from ..train import seed_everything

    seed_everything(ctx.seed)  # each recipe is reproducible on its own, whatever ran before it
    start = time.perf_counter()
    try:
        result = recipe.function(ctx, **resolved)
    except DnncompError:
        raise
    except Exception as exc:  # a TFMOT or converter failure: say which recipe, keep the cause
        raise RecipeError(f"recipe {name} failed ({type(exc).__name__}: {exc})") from exc
    result.info = {"recipe": name, "params": resolved, **result.info, "wall_s": round(time.perf_counter() - start, 3)}
    from ..anatomy import inspect_model
    from .summary import compression_check

    # What the recipe meant, checked against the flatbuffer it made (the summary prints this).
    result.info["compression_check"] = compression_check(result.info, inspect_model(result.tflite))
    return result


# ---- shared helpers for recipe modules ----------------------------------------------


def fine_tune(model, ctx: RecipeContext, *, epochs: int, batch_size: int, learning_rate: float | None = None, callbacks=()) -> dict[str, Any]:
    """The study's fine-tuning: compile with Adam and the model's loss, fit on the training set."""
    from ..train import compile_for_training

    compile_for_training(model, ctx.spec, learning_rate, from_logits=ctx.from_logits)
    start = time.perf_counter()
    history = model.fit(
        ctx.inputs, ctx.labels, batch_size=batch_size, epochs=epochs, shuffle=True, callbacks=list(callbacks), verbose=ctx.verbose
    )
    steps = int(np.ceil(len(ctx.labels) / batch_size)) * epochs
    return {
        "epochs": epochs,
        "batch_size": batch_size,
        "steps": steps,
        "examples": int(len(ctx.labels)),
        "history": {key: [float(v) for v in values] for key, values in history.history.items()},
        "wall_s": round(time.perf_counter() - start, 3),
    }


def kernel_stats(model) -> dict[str, dict[str, Any]]:
    """Per layer with a kernel: shape, zero fraction, unique values, and the most unique values in one output channel.

    Layers inside nested models are included (under their own names). The kernels are
    ``kernel`` (Conv2D ``[kh, kw, in, out]``, Dense ``[in, out]``, Conv2DTranspose
    ``[kh, kw, out, in]``: output channels on axis -2), ``depthwise_kernel`` (``[kh, kw,
    in, multiplier]``: one output channel per ``in * multiplier``) and ``pointwise_kernel``
    (SeparableConv2D has both; its numbers are over both). Zero fraction and unique values
    are per layer; per-channel counts are where per-channel clustering and quantization count.
    """
    stats = {}
    for layer in leaf_layers(model):
        kernels = [(attr, getattr(layer, attr, None)) for attr in ("kernel", "depthwise_kernel", "pointwise_kernel")]
        kernels = [(attr, np.asarray(k.numpy())) for attr, k in kernels if k is not None and hasattr(k, "numpy")]
        if not kernels:
            continue
        channels = [_output_channels(type(layer).__name__, attr, values) for attr, values in kernels]
        flat = np.concatenate([values.reshape(-1) for _, values in kernels])
        stats[layer.name] = {
            "shape": list(kernels[0][1].shape),
            "size": int(flat.size),
            "sparsity": float(np.mean(flat == 0)),
            "unique_values": int(np.unique(flat).size),
            "max_unique_per_channel": int(max(np.unique(rows[:, c]).size for rows in channels for c in range(rows.shape[1]))),
        }
    return stats


def _output_channels(kind: str, attr: str, values: np.ndarray) -> np.ndarray:
    """A kernel as ``[values per channel, output channels]``."""
    if values.ndim <= 1:
        return values.reshape(-1, 1)
    if attr == "depthwise_kernel":  # [kh, kw, in, multiplier]: each (in, multiplier) pair is an output channel
        return values.reshape(-1, values.shape[-2] * values.shape[-1])
    if kind.endswith("Transpose"):  # [kh, kw, out, in]
        values = np.moveaxis(values, -2, -1)
    return values.reshape(-1, values.shape[-1])


def leaf_layers(model) -> list:
    """The layers of ``model`` with nested models (a backbone inside a classifier) opened, in order."""
    layers = []
    for layer in getattr(model, "layers", []):
        if hasattr(layer, "layers") and getattr(layer, "layers", None) is not None and _is_model(layer):
            layers.extend(leaf_layers(layer))
        else:
            layers.append(layer)
    return layers


def _is_model(layer) -> bool:
    from ..keras_env import import_keras

    _, keras = import_keras()
    return isinstance(layer, keras.Model)


def representative_inputs(ctx: RecipeContext, samples: int) -> np.ndarray:
    """A seeded random sample of the training inputs (``ctx.seed``) for post-training calibration."""
    inputs = ctx.inputs
    count = max(1, min(int(samples), len(inputs)))
    index = np.sort(np.random.default_rng(ctx.seed).choice(len(inputs), size=count, replace=False))
    return inputs[index]


@dataclass
class WrappedModel:
    """A clone of a model with some layers wrapped by a TFMOT technique, and what was left alone and why."""

    model: Any
    wrapped: list[str]
    left_alone: dict[str, str]
    folded: list[str] = field(default_factory=list)  # "dense+batch_norm" pairs folded into one layer first
    kept_as_float_ops: dict[str, str] = field(default_factory=dict)  # quantized output, float compute (unfoldable BN, Rescaling)


def wrap_layers(model, wrap: Callable[[Any], Any], *, applies_to: Callable[[Any], bool]) -> WrappedModel:
    """Clone ``model`` with ``wrap(layer)`` applied to each layer for which ``applies_to(layer)`` holds.

    This is TFMOT's documented way to apply a technique to some layers only
    (``clone_model(..., clone_function=...)``): a layer the technique cannot handle
    (``wrap`` raises ValueError, RuntimeError or NotImplementedError, as TFMOT does for
    unsupported layers) stays as it is and is reported, instead of failing the whole model.
    A model nested inside ``model`` (a backbone) is first flattened into the outer graph
    (:func:`flatten_nested_models`), so its layers are wrapped and listed one by one; a
    nested model that cannot be flattened is left alone as a whole and reported, never
    wrapped silently. The clone shares the layers' weights with ``model``: pass a freshly
    loaded model.
    """
    from ..keras_env import import_keras

    _, keras = import_keras()
    wrapped: list[str] = []
    left_alone: dict[str, str] = {}
    model, why_not_flat = flatten_nested_models(model)

    def clone_function(layer):
        if isinstance(layer, keras.layers.InputLayer) or not applies_to(layer):
            return layer
        if isinstance(layer, keras.Model):
            # TFMOT would take a whole model here (prune/cluster) or refuse it (QAT); either way
            # its layers would go unlisted, so it stays as it is and says why.
            left_alone[layer.name] = f"nested {type(layer).__name__}: {why_not_flat or 'cannot be flattened'}; left as it is"
            return layer
        try:
            result = wrap(layer)
        except (ValueError, RuntimeError, NotImplementedError) as exc:
            left_alone[layer.name] = f"{type(layer).__name__}: {_first_line(exc)}"
            return layer
        wrapped.append(layer.name)
        return result

    clone = keras.models.clone_model(model, clone_function=clone_function)
    return WrappedModel(model=clone, wrapped=wrapped, left_alone=left_alone)


def flatten_nested_models(model) -> tuple[Any, str | None]:
    """``model`` with every model nested in it (a Sequential or functional backbone) opened into one graph.

    Returns ``(model, None)`` when nothing is nested, ``(flat, None)`` for a new functional
    model that calls the very same layer objects (weights shared, not copied; a nested
    layer whose name clashes is renamed ``<backbone>_<name>``), or ``(model, reason)``
    when it cannot be flattened (a subclassed model, or outputs that differ on a random
    probe). TFMOT wraps layers, not models: this is how a backbone's layers get pruned,
    clustered and quantized (its QAT refuses nested models) and are listed.
    """
    from ..keras_env import import_keras

    tf, keras = import_keras()
    if not any(isinstance(layer, keras.Model) for layer in model.layers):
        return model, None
    try:
        inputs = [keras.Input(batch_shape=tuple(t.shape), dtype=t.dtype, name=t.name.split(":")[0].split("/")[0]) for t in model.inputs]
        outputs = _replay(model, inputs, tf, keras, taken={layer.name for layer in model.layers}, top=True)
        flat = keras.Model(inputs, tf.nest.pack_sequence_as(model._nested_outputs, outputs), name=model.name)
    except _CannotFlatten as exc:
        return model, str(exc)
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        return model, f"flattening failed ({type(exc).__name__}: {_first_line(exc)})"
    shapes = [tuple(t.shape[1:]) for t in model.inputs]
    if all(None not in shape for shape in shapes):
        probe = [np.random.default_rng(0).uniform(0, 1, (2, *shape)).astype(np.float32) for shape in shapes]
        probe = probe[0] if len(probe) == 1 else probe
        expected = [np.asarray(o) for o in tf.nest.flatten(model(probe, training=False))]
        got = [np.asarray(o) for o in tf.nest.flatten(flat(probe, training=False))]
        if any(not np.allclose(e, g, rtol=1e-4, atol=1e-5 * max(1.0, float(np.abs(e).max()))) for e, g in zip(expected, got)):
            return model, "its flattened graph computes something else"
    return flat, None


class _CannotFlatten(Exception):
    pass


def _replay(model, inputs: list, tf, keras, *, taken: set[str], top: bool = False) -> list:
    """Call ``model``'s layers on ``inputs`` as its own call would, opening nested models; its flat outputs."""
    if not getattr(model, "_is_graph_network", False):
        if not isinstance(model, keras.Sequential):
            raise _CannotFlatten(f"{model.name} is a subclassed model")
        x = inputs[0]
        for layer in model.layers:
            x = _replay(layer, tf.nest.flatten(x), tf, keras, taken=taken) if isinstance(layer, keras.Model) else _call(layer, (x,), {}, model.name, taken, top)
        return tf.nest.flatten(x)
    usage = model._tensor_usage_count
    tensors: dict[str, list] = {}
    for reference, value in zip(model.inputs, inputs):
        tensors[str(id(reference))] = [value] * usage[str(id(reference))]
    for depth in sorted(model._nodes_by_depth, reverse=True):
        for node in model._nodes_by_depth[depth]:
            if node.is_input or any(t not in tensors for t in node.flat_input_ids):
                continue
            args, kwargs = node.map_arguments(tensors)
            layer = node.layer
            if isinstance(layer, keras.Model):
                first = args[0] if args else kwargs.get("inputs")
                outputs = tf.nest.pack_sequence_as(layer._nested_outputs, _replay(layer, tf.nest.flatten(first), tf, keras, taken=taken))
            else:
                outputs = _call(layer, args, kwargs, model.name, taken, top)
            for reference, value in zip(node.flat_output_ids, tf.nest.flatten(outputs)):
                tensors[reference] = [value] * usage[reference]
    return [tensors[str(id(reference))].pop() for reference in model.outputs]


def _call(layer, args: tuple, kwargs: dict, owner: str, taken: set[str], top: bool):
    """``layer(*args, **kwargs)``; a nested model's layer whose name the outer model already uses is renamed first."""
    if not top:
        if layer.name in taken:  # a backbone's "dense" beside the head's "dense": one graph needs unique names
            layer._name = f"{owner}_{layer.name}"
        taken.add(layer.name)
    return layer(*args, **kwargs)


def has_weights(layer) -> bool:
    return bool(layer.trainable_weights)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


# Registration happens on import; the modules import TensorFlow only inside recipes.
from . import quantize as _quantize  # noqa: E402,F401
from . import prune as _prune  # noqa: E402,F401
from . import cluster as _cluster  # noqa: E402,F401
from . import ptq as _ptq  # noqa: E402,F401
from . import combine as _combine  # noqa: E402,F401

__all__ = [
    "Param",
    "Recipe",
    "RecipeContext",
    "RecipeResult",
    "WrappedModel",
    "apply_recipe",
    "fine_tune",
    "get_recipe",
    "flatten_nested_models",
    "kernel_stats",
    "leaf_layers",
    "list_recipes",
    "register_recipe",
    "representative_inputs",
    "wrap_layers",
]
