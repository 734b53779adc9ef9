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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..contract import run_dir_model_name
from ..errors import DnncompError, RecipeError, first_line
from ..models import ModelSpec

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class Search:
    """What ``dnncomp tune`` may try for a parameter: ``low..high`` (log-uniform with ``log``; an int
    parameter draws ints) or one of ``choices``; ``when=(key, value)``: only when that parameter
    of the same recipe has that value (alpha and temperature only with distill=true).

    ``stronger`` marks a compression knob: ``"higher"`` when a higher value compresses more
    (sparsity), ``"lower"`` when a lower one does (cluster count). Tune's refinement steps
    along these knobs from the best feasible trial (:mod:`dnncomp.tune.refine`)."""

    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] | None = None
    when: tuple[str, Any] | None = None
    stronger: str | None = None

    def __post_init__(self):
        if self.stronger not in (None, "higher", "lower"):
            raise ValueError(f"Search.stronger must be 'higher', 'lower' or None, got {self.stronger!r}")


@dataclass(frozen=True)
class Param:
    """A recipe parameter: default (whose type is the parameter's type), help, and bounds or choices.

    ``search`` declares the range ``dnncomp tune`` searches (None: tune keeps the default); declared
    here, next to the parameter, a new recipe is searchable as soon as its parameters carry one.
    """

    default: Any
    help: str = ""
    type: type | None = None  # needed only when the default is None
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    search: Search | None = None

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
    # How the running recipe fine-tunes (set by apply_recipe from its parameters; None: the study's way).
    fine_tuning: FineTuning | None = field(default=None, init=False, repr=False)
    # The running recipe's per_layer / skip_layers / edge_layers (see LAYER_PARAMS); empty: every layer alike.
    layer_options: dict = field(default_factory=dict, init=False, repr=False)
    # Keras callbacks every fine-tuning stage also runs (dnncomp tune: validation accuracy per epoch, early pruning).
    fine_tune_callbacks: list = field(default_factory=list, repr=False)
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
                    **({"search": describe_search(param.search)} if param.search is not None else {}),
                }
                for key, param in self.params.items()
            },
        }


def describe_search(search: Search) -> str:
    """What ``dnncomp tune`` tries for a parameter, as text: ``0.5..0.95``, ``1e-05..0.001 (log)``, ``4|8|16|32``."""
    text = (
        "|".join(map(str, search.choices))
        if search.choices is not None
        else f"{search.low:g}..{search.high:g}" + (" (log)" if search.log else "")
    )
    return text + (f" when {search.when[0]}={search.when[1]}" if search.when else "")


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
        own = set(specs) - set(CONTEXT_KEYS)  # fine-tuning and layer settings travel on the context, not as keywords
        if keywords != own and not (forwards and keywords <= own):
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
    keywords = {key: value for key, value in resolved.items() if key not in CONTEXT_KEYS}
    tuning = {key: resolved[key] for key in FINE_TUNE_KEYS if key in resolved}
    previous, ctx.fine_tuning = ctx.fine_tuning, (resolve_fine_tuning(ctx, tuning) if tuning else None)
    previous_layers, ctx.layer_options = ctx.layer_options, {key: resolved[key] for key in LAYER_KEYS if key in resolved}
    try:
        result = recipe.function(ctx, **keywords)
    except DnncompError:
        raise
    except Exception as exc:  # a TFMOT or converter failure: say which recipe, keep the cause
        raise RecipeError(f"recipe {name} failed ({type(exc).__name__}: {exc})") from exc
    finally:
        tuned, ctx.fine_tuning = ctx.fine_tuning, previous
        ctx.layer_options = previous_layers
    result.info = {"recipe": name, "params": resolved, **result.info, "wall_s": round(time.perf_counter() - start, 3)}
    if tuned is not None:
        # The settings every fine-tuning stage of this recipe used, and the time they took together.
        result.info["fine_tuning"] = {**tuned.describe(), "wall_s": round(_fine_tune_seconds(result.info), 3)}
    from ..anatomy import inspect_model
    from .summary import compression_check

    # What the recipe meant, checked against the flatbuffer it made (the summary prints this).
    result.info["compression_check"] = compression_check(result.info, inspect_model(result.tflite, sizes=False))
    return result


# ---- fine-tuning ----------------------------------------------------------------------

FINE_TUNING_MODES = ("auto", "study", "recover")
FINE_TUNE_PARAMS = {
    "finetune": Param(
        "auto",
        "study: the study's fine-tuning, bit for bit (constant Adam at the model's fine-tuning rate, no augmentation, "
        "step-based pruning schedule); recover: Adam with a 5% linear warm-up then cosine to zero, the model family's "
        "augmentation, distillation from the float baseline, pruning schedule as fractions of the steps; "
        "auto: study for the study's own models (a study-* baseline dnncomp trained), recover for every other, "
        "a user's file given --model study-* too",
        choices=FINE_TUNING_MODES,
        search=Search(choices=("study", "recover")),
    ),
    "learning_rate": Param(
        None,
        "Adam learning rate (recover: the peak; default 10x the model's fine-tuning rate, else Adam's 1e-3; "
        "study: constant, default the model's fine-tuning rate, else Adam's 1e-3)",
        type=float,
        minimum=0.0,
        search=Search(1e-5, 1e-3, log=True),
    ),
    "augment": Param(
        None, "augment the fine-tuning batches with the model family's own augmentation (default: on in recover mode)", type=bool
    ),
    "distill": Param(
        None,
        "distil from the float baseline: loss = alpha*CE(labels) + (1-alpha)*T^2*KL(teacher/T || student/T) "
        "(default: on in recover mode)",
        type=bool,
        search=Search(choices=(True, False)),
    ),
    "alpha": Param(
        0.5,
        "distillation: weight of the cross-entropy on the labels",
        minimum=0.0,
        maximum=1.0,
        search=Search(0.1, 0.9, when=("distill", True)),
    ),
    "temperature": Param(
        4.0,
        "distillation: softmax temperature T of teacher and student",
        minimum=0.01,
        search=Search(1.0, 8.0, when=("distill", True)),
    ),
}
FINE_TUNE_KEYS = tuple(FINE_TUNE_PARAMS)
LAYER_PARAMS = {
    "per_layer": Param(
        "uniform",
        "uniform: every layer at the target; auto: per-layer sparsity / cluster count from each layer's "
        "sensitivity (dnncomp sensitivity) on the validation split, keeping the parameter-weighted target",
        choices=("uniform", "auto"),
        search=Search(choices=("uniform", "auto")),
    ),
    "skip_layers": Param("", "comma-separated layer names to leave alone (not pruned / clustered)"),
    "edge_layers": Param(
        "auto",
        "the first convolution and the classifier: skip (left alone, as the field does: few weights, every "
        "feature depends on them), denser (pruned to half the target, twice the clusters), include, or auto (denser for "
        "recover fine-tuning, include for the study's)",
        choices=("auto", "skip", "denser", "include"),
        search=Search(choices=("denser", "include", "skip")),
    ),
}
LAYER_KEYS = tuple(LAYER_PARAMS)
CONTEXT_KEYS = FINE_TUNE_KEYS + LAYER_KEYS
RECOVER_WARMUP_FRACTION = 0.05
# The recover peak for a model with no fine-tuning rate of its own (a user's file): Adam's default, the rate
# Keras models are usually trained at. 1e-4 left a small folder's short fine-tune (32 steps) unable to repair
# clustering: case 06's cluster recipe 68.54 % against 77.19 % at 1e-3 (float 78.07 %).
RECOVER_DEFAULT_LEARNING_RATE = 1e-3
# Recover mode prunes over the first 60 % of the fine-tuning steps and recovers over the rest.
RECOVER_PRUNE_BEGIN, RECOVER_PRUNE_END = 0.0, 0.6


@dataclass(frozen=True)
class FineTuning:
    """How a recipe fine-tunes: :func:`resolve_fine_tuning` fills it from the recipe's parameters and the model.

    ``mode`` ``study`` keeps the study's constant Adam (``learning_rate`` None: the model's
    fine-tuning rate or Adam's default); ``recover`` uses ``learning_rate`` as the peak of a
    warm-up + cosine schedule. ``augment`` is the augmentation dict (empty: none),
    ``distill`` with ``alpha`` and ``temperature`` the distillation; ``reason`` says why this mode.
    """

    mode: str
    reason: str
    learning_rate: float | None
    augment: dict[str, Any]
    distill: bool
    alpha: float
    temperature: float
    augment_note: str = ""

    def describe(self) -> dict[str, Any]:
        """JSON-able, for the recipe's info and summary."""
        schedule = (
            f"Adam, {RECOVER_WARMUP_FRACTION:.0%} linear warm-up to {self.learning_rate:g} then cosine to zero"
            if self.mode == "recover"
            else f"Adam, constant {self.learning_rate:g}"
            if self.learning_rate is not None
            else "Adam, constant (Keras default 1e-3)"
        )
        return {
            "mode": self.mode,
            "reason": self.reason,
            "optimizer": schedule,
            "learning_rate": self.learning_rate,
            "augment": dict(self.augment) or None,
            **({"augment_note": self.augment_note} if self.augment_note else {}),
            "distill": {"alpha": self.alpha, "temperature": self.temperature, "teacher": "the float baseline"}
            if self.distill
            else None,
        }


def is_study_model(ctx: RecipeContext) -> bool:
    """Whether ``ctx``'s model is one of the study's own: a ``study`` spec dnncomp built and trained.

    That is a ``dnncomp run``/``reproduce`` baseline (no file contract: the spec made it), or a
    file in that spec's own run dir (``runs/<dataset>/<spec>/baseline.keras``, as
    :func:`dnncomp.contract.training_spec_for` recognises it). A user's file given
    ``--model study-*`` only borrows the spec's training defaults and is not.
    """
    if ctx.spec.family != "study":
        return False
    return ctx.contract is None or run_dir_model_name(ctx.baseline_path) == ctx.spec.name


def resolve_fine_tuning(ctx: RecipeContext, params: dict[str, Any]) -> FineTuning:
    """The fine-tuning for ``ctx``'s model from the recipe parameters of :data:`FINE_TUNE_PARAMS`.

    ``finetune=auto`` is ``study`` for the study's own models (:func:`is_study_model`: what
    ``dnncomp reproduce`` runs, kept bit for bit) and ``recover`` for every other model: the
    improved/tiny families, and a user's own file even when ``--model study-*`` lends it the
    study's training defaults (the study's constant Adam was tuned for its own models on full
    datasets; on a user's model and small folder it cost case 09 3.6 points against recover).
    ``reason`` says which and why. Explicit parameters win over the mode's defaults.
    Augmentation is the family's own (``spec.training["schedule"]["augment"]``); a model
    without one (a user's file, the study's) is fine-tuned without, and it is applied only
    to image inputs in [0, 1] (said in ``augment_note`` otherwise).
    """
    mode = params.get("finetune", "auto")
    if mode == "auto":
        mode = "study" if is_study_model(ctx) else "recover"
        if mode == "study":
            reason = f"auto: {ctx.spec.name} is one of the study's models"
        elif ctx.spec.family == "study":
            reason = (
                f"auto: {Path(ctx.baseline_path).name} is your model, not {ctx.spec.name} as dnncomp trained it "
                f"({ctx.spec.name} lends only its training defaults); --param finetune=study gives the study's fine-tuning"
            )
        else:
            reason = f"auto: {ctx.spec.name} is not one of the study's models"
    else:
        reason = f"finetune={mode}"
    recover = mode == "recover"
    own_rate = (ctx.spec.training or {}).get("fine_tune_learning_rate")
    learning_rate = params.get("learning_rate")
    if learning_rate is None:
        learning_rate = (10.0 * own_rate if own_rate else RECOVER_DEFAULT_LEARNING_RATE) if recover else own_rate
    augment: dict[str, Any] = {}
    note = ""
    wanted = params.get("augment")
    if wanted if wanted is not None else recover:
        family = ((ctx.spec.training or {}).get("schedule") or {}).get("augment") or {}
        if not family:
            note = f"{ctx.spec.name} has no augmentation of its own; fine-tuned without"
        else:
            augment = dict(family)
    distill = params.get("distill")
    return FineTuning(
        mode=mode,
        reason=reason,
        learning_rate=None if learning_rate is None else float(learning_rate),
        augment=augment,
        distill=bool(recover if distill is None else distill),
        alpha=float(params.get("alpha", 0.5)),
        temperature=float(params.get("temperature", 4.0)),
        augment_note=note,
    )


def _fine_tune_seconds(info: Any) -> float:
    """The wall time of every fine-tuning stage recorded in a recipe's info (nested stages included)."""
    if not isinstance(info, dict):
        return 0.0
    total = 0.0
    for key, value in info.items():
        if key == "fine_tune" and isinstance(value, dict):
            total += float(value.get("wall_s", 0.0))
        elif isinstance(value, dict):
            total += _fine_tune_seconds(value)
    return total


def fine_tuning_steps(examples: int, batch_size: int, epochs: int) -> int:
    """Optimizer steps of a fine-tuning: ``ceil(examples / batch_size) * epochs``."""
    return int(math.ceil(int(examples) / int(batch_size))) * int(epochs)


def distillation_loss(labels, student, teacher, *, alpha: float, temperature: float, from_logits: bool):
    """Hinton et al. (2015): ``alpha * CE(labels, student) + (1 - alpha) * T^2 * KL(softmax(t/T) || softmax(s/T))``.

    ``labels`` are integer classes ``[batch]``; ``student`` and ``teacher`` are the models'
    outputs ``[batch, classes]``: logits, or probabilities when ``from_logits`` is False, whose
    logs (clipped at 1e-7) then serve as logits. Returns the batch mean (a scalar tensor).
    """
    from ..keras_env import import_keras

    tf, _ = import_keras()
    student = tf.cast(student, tf.float32)
    teacher = tf.cast(teacher, tf.float32)
    if not from_logits:
        student = tf.math.log(tf.clip_by_value(student, 1e-7, 1.0))
        teacher = tf.math.log(tf.clip_by_value(teacher, 1e-7, 1.0))
    labels = tf.cast(tf.reshape(labels, [-1]), tf.int32)
    hard = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=student)
    t = float(temperature)
    teacher_log = tf.nn.log_softmax(teacher / t)
    student_log = tf.nn.log_softmax(student / t)
    soft = tf.reduce_sum(tf.exp(teacher_log) * (teacher_log - student_log), axis=-1)
    return tf.reduce_mean(float(alpha) * hard + (1.0 - float(alpha)) * t * t * soft)


def _trainer_class(keras, tf):
    """A tf_keras Model around the student whose train_step is the (distillation) loss; built lazily (needs TensorFlow)."""

    class FineTuner(keras.Model):
        def __init__(self, student, teacher, *, alpha: float, temperature: float, from_logits: bool):
            super().__init__()
            self.student = student
            self.teacher = teacher
            self.alpha, self.temperature, self.from_logits = alpha, temperature, from_logits
            self.loss_tracker = keras.metrics.Mean(name="loss")
            self.accuracy_tracker = keras.metrics.SparseCategoricalAccuracy(name="accuracy")

        @property
        def metrics(self):
            return [self.loss_tracker, self.accuracy_tracker]

        def call(self, inputs, training=None):
            return self.student(inputs, training=training)

        def train_step(self, data):
            inputs, labels = data
            with tf.GradientTape() as tape:
                outputs = self.student(inputs, training=True)
                if self.teacher is not None:
                    loss = distillation_loss(
                        labels,
                        outputs,
                        self.teacher(inputs, training=False),
                        alpha=self.alpha,
                        temperature=self.temperature,
                        from_logits=self.from_logits,
                    )
                else:
                    loss = tf.reduce_mean(
                        keras.losses.sparse_categorical_crossentropy(labels, outputs, from_logits=self.from_logits)
                    )
                total = loss + (tf.add_n(self.student.losses) if self.student.losses else 0.0)
            variables = self.student.trainable_variables
            self.optimizer.apply_gradients(zip(tape.gradient(total, variables), variables))
            self.loss_tracker.update_state(loss)
            self.accuracy_tracker.update_state(labels, outputs)
            return {m.name: m.result() for m in self.metrics}

    return FineTuner


def _fine_tuning_dataset(
    tf, inputs: np.ndarray, labels: np.ndarray, *, batch_size: int, epochs: int, augment: dict[str, Any], seed: int
):
    """Shuffled (and augmented) ``(inputs, labels)`` batches for ``epochs`` epochs, reproducible from ``seed``."""
    from ..augment import _augment, check_augment

    augment = check_augment(augment)
    images = tf.convert_to_tensor(inputs)
    targets = tf.convert_to_tensor(labels.astype(np.int32))
    shape = tuple(inputs.shape[1:])
    nhwc = (*shape, 1) if len(shape) == 2 else shape  # grey (H, W) models: augment as one channel
    base_seed = tf.constant([int(seed), 0xD157], tf.int64)

    def load(step, index):
        batch = tf.gather(images, index)
        if augment:
            batch = tf.reshape(batch, [-1, *nhwc])
            batch = tf.reshape(_augment(tf, batch, augment, base_seed + tf.stack([tf.constant(0, tf.int64), step])), [-1, *shape])
        return batch, tf.gather(targets, index)

    n = int(len(inputs))
    return (
        tf.data.Dataset.range(n)
        .shuffle(n, seed=int(seed), reshuffle_each_iteration=True)
        .batch(batch_size)
        .repeat(epochs)
        .enumerate()
        .map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .prefetch(tf.data.AUTOTUNE)
    )


def fine_tune(
    model, ctx: RecipeContext, *, epochs: int, batch_size: int, learning_rate: float | None = None, callbacks=()
) -> dict[str, Any]:
    """Fine-tune ``model`` (a TFMOT-wrapped student) on the training set as ``ctx.fine_tuning`` says.

    Without settings, or in ``study`` mode without distillation or augmentation, this is the
    study's fine-tuning exactly: compile with constant Adam and the model's loss, ``fit``.
    Otherwise a small tf_keras Model around the student trains it with a custom step:
    cross-entropy, or the distillation loss against the float baseline (loaded fresh, frozen,
    fed the same augmented batch), an Adam learning rate that warms up then follows a cosine
    to zero over all ``ceil(examples / batch_size) * epochs`` steps (``recover``), and the
    family's augmentation. ``callbacks`` (UpdatePruningStep) see the wrapper, whose student
    they reach. Returns what was done, with its wall time in seconds.
    """
    tuning = ctx.fine_tuning
    callbacks = [*callbacks, *ctx.fine_tune_callbacks]
    if learning_rate is None and tuning is not None:
        learning_rate = tuning.learning_rate
    start = time.perf_counter()
    steps = fine_tuning_steps(len(ctx.labels), batch_size, epochs)
    record: dict[str, Any] = {"epochs": epochs, "batch_size": batch_size, "steps": steps, "examples": int(len(ctx.labels))}
    if tuning is None or (tuning.mode == "study" and not tuning.distill and not tuning.augment):
        from ..train import compile_for_training

        compile_for_training(model, ctx.spec, learning_rate, from_logits=ctx.from_logits)
        history = model.fit(
            ctx.inputs,
            ctx.labels,
            batch_size=batch_size,
            epochs=epochs,
            shuffle=True,
            callbacks=list(callbacks),
            verbose=ctx.verbose,
        )
    else:
        from ..keras_env import import_keras

        tf, keras = import_keras()
        if tuning.mode == "recover":
            peak = float(learning_rate if learning_rate is not None else RECOVER_DEFAULT_LEARNING_RATE)
            warmup = min(steps - 1, int(round(RECOVER_WARMUP_FRACTION * steps)))
            rate = keras.optimizers.schedules.CosineDecay(
                initial_learning_rate=peak / 10.0 if warmup else peak,
                decay_steps=max(1, steps - warmup),
                alpha=0.0,
                warmup_target=peak if warmup else None,
                warmup_steps=warmup,
            )
        else:
            rate = 1e-3 if learning_rate is None else float(learning_rate)
        teacher = None
        if tuning.distill:
            teacher = ctx.load_baseline()
            teacher.trainable = False
        trainer = _trainer_class(keras, tf)(
            model, teacher, alpha=tuning.alpha, temperature=tuning.temperature, from_logits=ctx.from_logits
        )
        trainer.compile(optimizer=keras.optimizers.Adam(learning_rate=rate))
        data = _fine_tuning_dataset(
            tf, ctx.inputs, ctx.labels, batch_size=batch_size, epochs=epochs, augment=_usable_augment(tuning, ctx), seed=ctx.seed
        )
        history = trainer.fit(
            data, epochs=epochs, steps_per_epoch=steps // epochs, callbacks=list(callbacks), verbose=ctx.verbose
        )
        record["mode"] = tuning.mode
        record["distill"] = tuning.distill
        record["augmented"] = bool(_usable_augment(tuning, ctx))
    return {
        **record,
        "history": {key: [float(v) for v in values] for key, values in history.history.items()},
        "wall_s": round(time.perf_counter() - start, 3),
    }


def _usable_augment(tuning: FineTuning, ctx: RecipeContext) -> dict[str, Any]:
    """The augmentation, if the inputs are images in [0, 1] (the family convention it was designed for)."""
    if not tuning.augment:
        return {}
    inputs = ctx.inputs
    if inputs.ndim not in (3, 4) or float(inputs.min()) < 0.0 or float(inputs.max()) > 1.0:
        return {}
    return tuning.augment


# ---- which layers a technique touches, and how hard ------------------------------------


@dataclass
class LayerPlan:
    """Per layer: left alone (``skipped``: name -> reason) or a per-layer setting (``settings``), and why."""

    skipped: dict[str, str] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    sensitivity: dict[str, Any] | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "skipped": dict(self.skipped),
            **({"per_layer": dict(self.settings)} if self.settings else {}),
            **({"notes": list(self.notes)} if self.notes else {}),
            **({"sensitivity": self.sensitivity} if self.sensitivity else {}),
        }


def edge_layer_names(model) -> dict[str, str]:
    """The first convolution and the classifier (the last layer with a kernel) of ``model``: name -> role."""
    from .sensitivity import kernel_layers

    layers = [layer for layer, _ in kernel_layers(model)]
    found: dict[str, str] = {}
    convolutions = [layer for layer in layers if "Conv" in type(layer).__name__]
    if convolutions:
        found[convolutions[0].name] = "first convolution"
    if layers and type(layers[-1]).__name__ == "Dense":
        found[layers[-1].name] = "classifier"
    return found


def layer_plan(model, ctx: RecipeContext, *, technique: str, target: float) -> LayerPlan:
    """What ``ctx.layer_options`` (skip_layers, edge_layers, per_layer) mean for ``model`` and ``technique``.

    ``technique`` is ``prune`` (``target``: the sparsity) or ``cluster`` (``target``: the
    cluster count). ``per_layer=auto`` measures each remaining layer's sensitivity on the
    validation split (:mod:`.sensitivity`) and sets pruned layers' sparsities inversely to it
    with the parameter-weighted mean at ``target``, or gives a clustered layer 2x the clusters
    where it costs over 1 point and 4x over 5 points. Raises RecipeError for an unknown name.
    """
    from .sensitivity import allocate_per_layer, kernel_layers, layer_sensitivity

    options = ctx.layer_options or {}
    plan = LayerPlan()
    names = [layer.name for layer, _ in kernel_layers(model)]
    wanted = [name.strip() for name in str(options.get("skip_layers") or "").split(",") if name.strip()]
    unknown = [name for name in wanted if name not in names]
    if unknown:
        raise RecipeError(f"skip_layers: no layer with a kernel named {', '.join(unknown)}; the model's: {', '.join(names)}")
    for name in wanted:
        plan.skipped[name] = "skip_layers"
    edges = options.get("edge_layers", "include") if options else "include"
    denser: dict[str, float] = {}
    if edges == "auto":
        edges = "denser" if ctx.fine_tuning is not None and ctx.fine_tuning.mode == "recover" else "include"
    if edges == "denser":
        # Kept denser rather than skipped: TFMOT 0.8.1's sparsity-preserving QAT keeps one quantizer per
        # layer type, shared by all layers, and a layer left unpruned or unclustered changes its state:
        # pcqat on tiny-mnist then lost most zeros in the file (measured; with every layer in, they held).
        for name, role in edge_layer_names(model).items():
            if name not in plan.skipped:
                denser[name] = round(float(target) / 2, 4) if technique == "prune" else int(target) * 2
                what = (
                    f"pruned to {denser[name]}, half the target"
                    if technique == "prune"
                    else f"{denser[name]} clusters, twice the target"
                )
                plan.notes.append(f"{name} ({role}): {what}, as the field keeps it denser; edge_layers=include for the target")
    elif edges == "skip":
        for name, role in edge_layer_names(model).items():
            plan.skipped.setdefault(
                name,
                f"{role}: left alone as the field does (few weights, every later feature depends on it); edge_layers=include to {technique} it",
            )
    if options.get("per_layer") == "auto":
        record = layer_sensitivity(ctx, technique=technique, sparsity=float(target), clusters=int(target))
        rows = [row for row in record["rows"] if row["layer"] not in plan.skipped]
        plan.sensitivity = {
            "validation": record["validation"],
            "images": record["images"],
            "method": record["method"],
            "drop_points": {row["layer"]: row["drop_points"] for row in rows},
        }
        rows = [row for row in rows if row["layer"] not in denser]
        if technique == "prune" and rows:
            plan.settings = {name: round(value, 4) for name, value in allocate_per_layer(rows, float(target)).items()}
            plan.notes.append(f"per_layer=auto: sparsity inversely to each layer's sensitivity, parameter-weighted mean {target}")
        elif rows:
            plan.settings = {
                row["layer"]: int(target) * (4 if (row["drop_points"] or 0) > 5 else 2 if (row["drop_points"] or 0) > 1 else 1)
                for row in rows
            }
            plan.notes.append(
                f"per_layer=auto: {int(target)} clusters, 2x where one layer alone costs over 1 point, 4x over 5 points"
            )
    plan.settings.update(denser)
    return plan


# ---- shared helpers for recipe modules ----------------------------------------------


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
            left_alone[layer.name] = f"{type(layer).__name__}: {first_line(exc, limit=200)}"
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
        inputs = [
            keras.Input(batch_shape=tuple(t.shape), dtype=t.dtype, name=t.name.split(":")[0].split("/")[0]) for t in model.inputs
        ]
        outputs = _replay(model, inputs, tf, keras, taken={layer.name for layer in model.layers}, top=True)
        flat = keras.Model(inputs, tf.nest.pack_sequence_as(model._nested_outputs, outputs), name=model.name)
    except _CannotFlatten as exc:
        return model, str(exc)
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        return model, f"flattening failed ({type(exc).__name__}: {first_line(exc, limit=200)})"
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
            x = (
                _replay(layer, tf.nest.flatten(x), tf, keras, taken=taken)
                if isinstance(layer, keras.Model)
                else _call(layer, (x,), {}, model.name, taken, top)
            )
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
                outputs = tf.nest.pack_sequence_as(
                    layer._nested_outputs, _replay(layer, tf.nest.flatten(first), tf, keras, taken=taken)
                )
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


# Registration happens on import; the modules import TensorFlow only inside recipes.
# Not sorted: this order is the order list_recipes() and the CLI show the recipes in.
# isort: off
from . import quantize as _quantize  # noqa: E402,F401
from . import prune as _prune  # noqa: E402,F401
from . import cluster as _cluster  # noqa: E402,F401
from . import ptq as _ptq  # noqa: E402,F401
from . import combine as _combine  # noqa: E402,F401
# isort: on

__all__ = [
    "FINE_TUNE_PARAMS",
    "LAYER_PARAMS",
    "LayerPlan",
    "FineTuning",
    "Param",
    "Search",
    "Recipe",
    "RecipeContext",
    "RecipeResult",
    "WrappedModel",
    "apply_recipe",
    "distillation_loss",
    "fine_tune",
    "fine_tuning_steps",
    "get_recipe",
    "is_study_model",
    "resolve_fine_tuning",
    "flatten_nested_models",
    "kernel_stats",
    "layer_plan",
    "leaf_layers",
    "list_recipes",
    "register_recipe",
    "representative_inputs",
    "wrap_layers",
]


from .._callable import make_callable  # noqa: E402

make_callable(__name__, "dnncomp.api:compress")  # dnncomp.compress(...) is the public function (dnncomp.api)
