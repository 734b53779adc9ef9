"""Architectures by name, timm-style: a registry of builder functions with their specs.

A :class:`ModelSpec` says everything the rest of dnncomp needs to know about an
architecture (dataset, input shape, the image size the loader should produce,
classes, logits or softmax, default training settings) and is importable without
TensorFlow, so the device side can read it. Only :func:`build_model` imports
TensorFlow, lazily, through :func:`dnncomp.keras_env.import_keras`.

Adding an architecture is adding one function::

    @register_model("study-mnist", dataset="mnist", input_shape=(28, 28), num_classes=10, output="logits", ...)
    def study_mnist(keras):
        return keras.Sequential([...])

Names are ``<family>-<dataset>``; ``--model study`` with dataset ``cifar10``
resolves to ``study-cifar10``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from .errors import ModelError

# The study's baseline settings (SPEC.md). Validation: "last:F" holds out the last
# fraction F of the training set, like Keras' validation_split; "random:F" a seeded
# random fraction F (the study's GTSRB split).
STUDY_TRAINING = {"epochs": 50, "batch_size": 32, "patience": 5, "validation": "last:0.2"}


@dataclass(frozen=True)
class ModelSpec:
    """What an architecture is, without TensorFlow."""

    name: str
    family: str
    dataset: str
    input_shape: tuple[int, ...]  # without batch; (H, W) for single-channel models with a Reshape first
    num_classes: int
    output: str  # "logits" or "softmax"
    description: str = ""
    params_approx: int | None = None  # float parameter count, as documented (SPEC.md for the study's models)
    training: dict[str, Any] = field(default_factory=lambda: dict(STUDY_TRAINING))

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) the data loader should produce for this model."""
        return (int(self.input_shape[0]), int(self.input_shape[1]))

    @property
    def channels(self) -> int:
        return 1 if len(self.input_shape) == 2 else int(self.input_shape[2])

    @property
    def from_logits(self) -> bool:
        return self.output == "logits"

    def build(self):
        """A fresh, uncompiled Keras 2 model (imports TensorFlow)."""
        return build_model(self.name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "family": self.family,
            "dataset": self.dataset,
            "input_shape": list(self.input_shape),
            "image_size": list(self.image_size),
            "num_classes": self.num_classes,
            "output": self.output,
            "description": self.description,
            "params_approx": self.params_approx,
            "training": dict(self.training),
        }


_SPECS: dict[str, ModelSpec] = {}
_BUILDERS: dict[str, Callable[[Any], Any]] = {}


def register_model(
    name: str,
    *,
    dataset: str,
    input_shape: tuple[int, ...],
    num_classes: int,
    output: str,
    description: str = "",
    params_approx: int | None = None,
    training: dict[str, Any] | None = None,
):
    """Decorator: register ``builder(keras) -> keras.Model`` under ``name`` (``<family>-<dataset>``)."""
    if output not in ("logits", "softmax"):
        raise ValueError(f"model {name}: output must be 'logits' or 'softmax', not {output!r}")
    family, sep, suffix = name.rpartition("-")
    if not sep or suffix != dataset:
        raise ValueError(f"model name {name!r} must be <family>-{dataset}")

    def decorator(builder: Callable[[Any], Any]):
        if name in _SPECS:
            raise ValueError(f"model {name!r} is already registered")
        _SPECS[name] = ModelSpec(
            name=name,
            family=family,
            dataset=dataset,
            input_shape=tuple(int(d) for d in input_shape),
            num_classes=int(num_classes),
            output=output,
            description=description,
            params_approx=params_approx,
            training={**STUDY_TRAINING, **(training or {})},
        )
        _BUILDERS[name] = builder
        return builder

    return decorator


def list_models(dataset: str | None = None) -> list[ModelSpec]:
    """Registered specs, optionally only those for one dataset, sorted by name."""
    return [spec for name, spec in sorted(_SPECS.items()) if dataset is None or spec.dataset == dataset]


def get_model_spec(name: str) -> ModelSpec:
    try:
        return _SPECS[name]
    except KeyError:
        raise ModelError(f"unknown model {name!r}; known models: {', '.join(sorted(_SPECS))}") from None


def default_model_for(dataset: str) -> str:
    """The study's architecture for a dataset: ``study-<dataset>``."""
    name = f"study-{dataset}"
    if name not in _SPECS:
        raise ModelError(
            f"no default model for dataset {dataset!r}; pass --model with one of: {', '.join(sorted(_SPECS))}"
        )
    return name


def resolve_model_name(model: str | None, dataset: str) -> str:
    """``None`` -> ``study-<dataset>``; a registered name as is; a family -> ``<family>-<dataset>``."""
    if model is None or model == "":
        return default_model_for(dataset)
    if model in _SPECS:
        return model
    candidate = f"{model}-{dataset}"
    if candidate in _SPECS:
        return candidate
    families = sorted({spec.family for spec in _SPECS.values()})
    raise ModelError(
        f"unknown model {model!r} for dataset {dataset!r}; known models: {', '.join(sorted(_SPECS))} "
        f"(or a family: {', '.join(families)})"
    )


def build_model(name: str):
    """A fresh, uncompiled Keras 2 model for a registered name."""
    spec = get_model_spec(name)
    from .keras_env import import_keras

    _, keras = import_keras()
    return _BUILDERS[spec.name](keras)


# ---- the study's three models (SPEC.md) ----------------------------------------------


@register_model(
    "study-mnist",
    dataset="mnist",
    input_shape=(28, 28),
    num_classes=10,
    output="logits",
    description="The study's MNIST CNN: 2x (Conv 5x5 + MaxPool), Dense 1024, logits",
    params_approx=1_111_946,
)
def study_mnist(keras):
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input(shape=(28, 28)),
            layers.Reshape((28, 28, 1)),
            layers.Conv2D(32, 5, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(64, 5, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dense(1024, activation="relu"),
            layers.Dense(10),
        ]
    )


@register_model(
    "study-cifar10",
    dataset="cifar10",
    input_shape=(32, 32, 3),
    num_classes=10,
    output="softmax",
    description="The study's CIFAR-10 CNN: 2x (Conv same, Conv, MaxPool, Dropout .25), Dense 512, Dropout .5, softmax",
    params_approx=1_250_858,
)
def study_cifar10(keras):
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input(shape=(32, 32, 3)),
            layers.Conv2D(32, 3, padding="same", activation="relu"),
            layers.Conv2D(32, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Dropout(0.25),
            layers.Conv2D(64, 3, padding="same", activation="relu"),
            layers.Conv2D(64, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Dropout(0.25),
            layers.Flatten(),
            layers.Dense(512, activation="relu"),
            layers.Dropout(0.5),
            layers.Dense(10, activation="softmax"),
        ]
    )


@register_model(
    "study-gtsrb",
    dataset="gtsrb",
    input_shape=(30, 30, 3),
    num_classes=43,
    output="softmax",
    description="The study's GTSRB CNN on 30x30 PIL-resized images: Conv 16, 32, MaxPool, Conv 64, 128, MaxPool, Dense 512, softmax",
    params_approx=1_168_587,
    training={"validation": "random:0.25"},
)
def study_gtsrb(keras):
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input(shape=(30, 30, 3)),
            layers.Conv2D(16, 3, activation="relu"),
            layers.Conv2D(32, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(64, 3, activation="relu"),
            layers.Conv2D(128, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dense(512, activation="relu"),
            layers.Dropout(0.5),
            layers.Dense(43, activation="softmax"),
        ]
    )
