"""What a Keras classifier file says about itself: its input, its classes, logits or softmax, its own normalisation.

``dnncomp compress MODEL`` reads this *contract* from the model instead of taking it
from a registered :class:`~dnncomp.models.ModelSpec`: the input shape and layout
(``(28, 28)``, ``(28, 28, 1)``, a LeNet ``(32, 32, 1)``, a flat ``(784,)`` MLP, channel
first), the class count (the size of the last output), whether the output is logits
or probabilities (a final Softmax, or ``activation="softmax"`` on the last layer, also
inside a nested model), and whether the model normalises its own input with a
``Rescaling`` or ``Normalization`` layer (then the pixels it takes are known from
that layer, not from a flag). Fine-tuning loss, calibration data and the
preprocessing sidecar all follow it.

TensorFlow is not imported here: the functions read a Keras model they are given.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .errors import ModelError
from .preprocess import InputLayout, Preprocessing, input_layout, range_given

# Layers that pass the image through unchanged in value (only its shape or nothing), looked
# through when searching for the model's own normalisation at its input.
_SHAPE_ONLY_LAYERS = {"InputLayer", "Reshape", "Permute", "Resizing", "ZeroPadding2D", "Cropping2D", "Dropout"}
# Layers after which the output kind is still that of the layer before them.
_PASS_THROUGH_OUTPUT = {"Dropout", "Reshape", "Flatten"}
_NORMALISATION_LAYERS = {"Rescaling", "Normalization"}


@dataclass(frozen=True)
class ModelContract:
    """What a single-input, single-output Keras classifier takes and gives.

    ``input_shape`` excludes the batch axis; ``layout`` says where height, width and
    channels sit in it. ``output`` is ``"logits"`` or ``"softmax"`` and ``output_reason``
    names the layer that decided it. ``preprocessing`` is the pixel mapping the model's
    own ``Rescaling``/``Normalization`` layer implies, or None when the model has none
    (then the user's ``--input-range/--mean/--std`` or the 0..1 default apply).
    """

    path: str
    name: str
    input_shape: tuple[int, ...]
    layout: InputLayout
    num_classes: int
    output: str
    output_reason: str
    normalisation: str | None = None  # e.g. "rescaling (Rescaling scale 0.00392157, offset 0)"
    preprocessing: Preprocessing | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def channels(self) -> int:
        return self.layout.channels

    @property
    def image_size(self) -> tuple[int, int]:
        return self.layout.image_size

    @property
    def from_logits(self) -> bool:
        return self.output == "logits"

    def describe(self) -> str:
        """One line: ``hwc.keras: input (28, 28, 1) NHWC, 28x28x1; 10 classes, logits (dense has no activation)``."""
        text = (
            f"{Path(self.path).name}: input {self.input_shape} {self.layout.describe()}; "
            f"{self.num_classes} classes, {self.output} ({self.output_reason})"
        )
        if self.normalisation:
            text += f"; normalises its own input: {self.normalisation}"
        return text

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON: for the --json record and the sidecar."""
        return {
            "path": self.path,
            "name": self.name,
            "input_shape": list(self.input_shape),
            "layout": self.layout.kind,
            "image_shape": [self.layout.height, self.layout.width, self.layout.channels],
            "num_classes": self.num_classes,
            "output": self.output,
            "output_reason": self.output_reason,
            "normalisation": self.normalisation,
            "preprocessing": self.preprocessing.to_dict() if self.preprocessing else None,
        }


def read_contract(keras_model, *, path: str | Path, image_shape: tuple[int, ...] | None = None) -> ModelContract:
    """Read the contract of a loaded Keras 2 classifier.

    ``path`` names the file in messages. ``image_shape`` (H, W, C) of the data, when
    known, decides the image a flat input stands for (784 -> 28x28x1). Raises
    ModelError, in one line naming the file, for a model with several inputs or
    outputs, an input that is not an image, or an output that is not a class vector.
    """
    path = str(path)
    label = Path(path).name or path
    inputs, outputs = list(keras_model.inputs or []), list(keras_model.outputs or [])
    if len(inputs) != 1 or len(outputs) != 1:
        raise ModelError(
            f"{label}: has {len(inputs)} input(s) and {len(outputs)} output(s); dnncomp compresses single-input, "
            "single-output image classifiers"
        )
    input_shape = _shape(inputs[0].shape)
    if any(d is None for d in input_shape):
        raise ModelError(f"{label}: input shape {input_shape} has an unknown size; save the model with a fixed input size")
    layout = input_layout(input_shape, label, image_shape)
    output_shape = _shape(outputs[0].shape)
    if len(output_shape) != 1 or output_shape[0] is None or output_shape[0] < 2:
        raise ModelError(
            f"{label}: output shape {output_shape} is not a vector of class scores (expected (N,) with N >= 2 classes)"
        )
    output, reason = _output_kind(_output_layer(keras_model))
    normalisation, preprocessing = _own_normalisation(keras_model)
    return ModelContract(
        path=path,
        name=str(keras_model.name),
        input_shape=tuple(int(d) for d in input_shape),
        layout=layout,
        num_classes=int(output_shape[0]),
        output=output,
        output_reason=reason,
        normalisation=normalisation,
        preprocessing=preprocessing,
    )


def with_image_shape(contract: ModelContract, image_shape: tuple[int, ...]) -> ModelContract:
    """The contract with a flat input's image read as the data's (H, W, C) when the sizes agree."""
    if contract.layout.kind != "flat":
        return contract
    return replace(contract, layout=input_layout(contract.input_shape, Path(contract.path).name, image_shape))


def _shape(shape) -> tuple[int | None, ...]:
    dims = list(shape.as_list() if hasattr(shape, "as_list") else shape)
    return tuple(None if d is None else int(d) for d in dims[1:])


def _output_layer(model):
    """The layer that produces the model's (single) output."""
    try:
        history = model.outputs[0]._keras_history
        return history.layer if hasattr(history, "layer") else history[0]
    except (AttributeError, IndexError, TypeError):
        return model.layers[-1]


def _is_model(layer) -> bool:
    return hasattr(layer, "layers") and hasattr(layer, "outputs") and bool(getattr(layer, "outputs", None))


def _activation_name(layer) -> str | None:
    config = _config(layer)
    activation = config.get("activation")
    if isinstance(activation, dict):  # a serialised activation object
        activation = activation.get("config", {}).get("name") or activation.get("class_name")
    if activation is None:
        function = getattr(layer, "activation", None)
        activation = getattr(function, "__name__", None)
    return str(activation).lower() if activation is not None else None


def _config(layer) -> dict[str, Any]:
    try:
        return dict(layer.get_config())
    except Exception:  # a layer without a serialisable config says nothing about its activation
        return {}


def _output_kind(layer, depth: int = 0) -> tuple[str, str]:
    """("logits" | "softmax", the reason), looking into a nested model and through trailing pass-through layers."""
    kind = type(layer).__name__
    if _is_model(layer) and depth < 8:
        inner, why = _output_kind(_output_layer(layer), depth + 1)
        return inner, f"{why}, inside {layer.name}"
    if kind == "Softmax":
        return "softmax", f"{layer.name} is a Softmax layer"
    activation = _activation_name(layer)
    if activation == "softmax":
        return "softmax", f"{layer.name} has activation softmax"
    if kind in _PASS_THROUGH_OUTPUT and depth < 8:
        previous = _inbound_layers(layer)
        if len(previous) == 1:
            return _output_kind(previous[0], depth + 1)
    if activation in (None, "linear"):
        return "logits", f"{layer.name} ({kind}) has no activation"
    return "logits", f"{layer.name} ({kind}) ends in {activation}, not softmax: treated as scores"


def _inbound_layers(layer) -> list:
    nodes = getattr(layer, "_inbound_nodes", None) or []
    if not nodes:
        return []
    inbound = getattr(nodes[0], "inbound_layers", [])
    return list(inbound) if isinstance(inbound, (list, tuple)) else [inbound]


def _first_value_layer(model, depth: int = 0):
    """The first layer after the input that changes values (shape-only layers are skipped), or None."""
    for layer in model.layers:
        kind = type(layer).__name__
        if kind in _SHAPE_ONLY_LAYERS:
            continue
        if _is_model(layer) and depth < 8:
            return _first_value_layer(layer, depth + 1)
        return layer
    return None


def _own_normalisation(model) -> tuple[str | None, Preprocessing | None]:
    """The model's own input normalisation (Rescaling or Normalization right after the input) and the pixels it takes.

    A Rescaling whose scale maps a 0..255 range to about unit width (1/255, 1/127.5) takes
    raw pixels; one that only rescales an already unit range (scale 2, offset -1) takes 0..1.
    A Normalization whose standard deviation is of pixel size (> 2) takes raw pixels, else 0..1.
    """
    import numpy as np

    layer = _first_value_layer(model)
    kind = type(layer).__name__ if layer is not None else ""
    if kind not in _NORMALISATION_LAYERS:
        return None, None
    config = _config(layer)
    if kind == "Rescaling":
        scale = _scalar(config.get("scale", 1.0))
        offset = _scalar(config.get("offset", 0.0))
        raw = abs(scale) * 255.0 <= 2.5
        what = f"{layer.name} (Rescaling scale {scale:g}, offset {offset:g})"
    else:
        variance = np.asarray(getattr(layer, "variance", np.ones(1)), dtype=np.float64)
        mean = np.asarray(getattr(layer, "mean", np.zeros(1)), dtype=np.float64)
        std = float(np.sqrt(np.max(variance))) if variance.size else 1.0
        raw = std > 2.0 or (mean.size > 0 and float(np.max(np.abs(mean))) > 2.0)
        what = f"{layer.name} (Normalization mean {_short(mean)}, variance {_short(variance)})"
    if raw:
        return what, Preprocessing(input_range=(0.0, 255.0), source=f"model: {what} inside takes raw 0..255 pixels")
    return what, Preprocessing(input_range=(0.0, 1.0), source=f"model: {what} inside takes 0..1 (pixel/255)")


def _scalar(value) -> float:
    if isinstance(value, (list, tuple)):
        value = value[0] if value else 1.0
    number = float(value)
    return number if math.isfinite(number) else 1.0


def _short(values) -> str:
    flat = [f"{v:.3g}" for v in list(values.reshape(-1))[:3]]
    return "(" + ", ".join(flat) + (", ..." if values.size > 3 else "") + ")"


def check_agrees(contract: ModelContract, spec, *, what: str) -> None:
    """Refuse a registered ``spec`` (``--model``) whose image or class count differs from the file's.

    The layout may differ ((28, 28) and (28, 28, 1) are the same grey 28x28 image); the
    image size, channel count and class count may not.
    """
    spec_layout = input_layout(spec.input_shape, spec.name, (contract.layout.height, contract.layout.width, contract.channels))
    mine = (contract.layout.height, contract.layout.width, contract.channels, contract.num_classes)
    theirs = (spec_layout.height, spec_layout.width, spec_layout.channels, spec.num_classes)
    if mine != theirs:
        raise ModelError(
            f"{Path(contract.path).name} takes {mine[0]}x{mine[1]}x{mine[2]} images and has {mine[3]} classes, but {what} "
            f"{spec.name} takes {theirs[0]}x{theirs[1]}x{theirs[2]} with {theirs[3]}; drop --model (the file decides) "
            "or pass the model the file really is"
        )


def spec_from_contract(contract: ModelContract, dataset: str, training_spec=None):
    """A ModelSpec for a user's file: shape, classes and output kind from the file; training defaults from
    ``training_spec`` (the registered model it was trained as) when given, else the study's defaults.

    Its ``input_shape`` is the file's, so a study model's file gives exactly the registered spec's
    shape and the recipes see the same arrays as before.
    """
    from .models import STUDY_TRAINING, ModelSpec

    if training_spec is not None:
        return replace(training_spec, input_shape=contract.input_shape, num_classes=contract.num_classes, output=contract.output)
    return ModelSpec(
        name=Path(contract.path).name,
        family="user",
        dataset=dataset,
        input_shape=contract.input_shape,
        num_classes=contract.num_classes,
        output=contract.output,
        description=f"user model {contract.path}",
        training=dict(STUDY_TRAINING),
    )


def resolve_preprocessing(contract: ModelContract, given: Preprocessing | None) -> Preprocessing:
    """The pixel mapping for ``contract``: the model's own, the user's (``given``), or the assumed 0..1.

    A model that normalises its own input decides; a ``given`` mapping that differs from it
    is refused (ModelError). With neither, 0..1 (pixel/255) with ``assumed=True``. ``given.fit``
    (``--fit``) is kept in every case; a ``given`` carrying only ``--fit`` gives no range.
    """
    fit = given.fit if given is not None else None
    if not range_given(given):  # --fit alone: the range is the model's own or assumed
        given = None
    own = contract.preprocessing
    if own is not None:
        if given is not None and (given.input_range != own.input_range or given.mean or given.std):
            raise ModelError(
                f"{Path(contract.path).name} normalises its own input ({contract.normalisation}: it takes "
                f"{own.describe()}); --input-range {given.describe()} contradicts it: leave --input-range/--mean/--std out"
            )
        return own.with_fit(fit)
    if given is not None:
        return given
    return Preprocessing(input_range=(0.0, 1.0), source="assumed", assumed=True, fit=fit)


ASSUMED_RANGE_NOTE = "assumed input range 0..1 (pixel/255); pass --input-range if the model was trained otherwise"


def run_dir_model_name(model_path: str | Path) -> str:
    """The ``<model>`` of ``runs/<dataset>/<model>/baseline.keras`` (``dnncomp run``'s layout): the name of the
    directory ``model_path`` sits in, symlinks resolved. A registered spec of that name trained the file when
    it matches one; any other directory name matches none."""
    return Path(model_path).resolve().parent.name


def training_spec_for(model_path: str | Path, dataset: str, model: str | None, contract: ModelContract):
    """The registered spec whose *training defaults* apply to a user's file, or None.

    ``model`` (``--model``: a name or family) names it, and it must agree with the file's image
    and classes (:func:`check_agrees`, ModelError otherwise); else the ``<model>`` of
    ``runs/<dataset>/<model>/baseline.keras`` when the file is that model's; else None: the file
    decides everything and fine-tuning uses the study's defaults.
    """
    from .models import get_model_spec, list_models, resolve_model_name

    if model:
        spec = get_model_spec(resolve_model_name(model, dataset))
        check_agrees(contract, spec, what="--model")
        return spec
    from_path = run_dir_model_name(model_path)
    for spec in list_models():
        if spec.name == from_path and spec.dataset == dataset:
            try:
                check_agrees(contract, spec, what="the run dir's model")
            except ModelError:  # a user's file dropped into a run dir: the file still decides
                return None
            return spec
    return None


def check_data_fits(contract: ModelContract, data, dataset: str) -> list[str]:
    """Refuse, before any work, data the model cannot take; return notes on what will be adapted.

    Raises ModelError when the class counts differ, or when a published dataset (mnist,
    cifar10, gtsrb) has another channel count than the model (e.g. an MNIST model on
    cifar10). An image folder's grey/colour images are converted (a note says so), and
    images resized to the model's input size are noted.
    """
    from .data.registry import folder_root
    from .preprocess import channel_conversion_note

    name = Path(contract.path).name
    if data.num_classes != contract.num_classes:
        raise ModelError(
            f"{name} has {contract.num_classes} outputs but {dataset} has {data.num_classes} classes; "
            "use the dataset the model was trained on"
        )
    have = int(data.x_train.shape[-1])
    notes = []
    if have != contract.channels:
        if folder_root(dataset) is None:
            raise ModelError(
                f"{name} takes {contract.layout.height}x{contract.layout.width}x{contract.channels} images but {dataset} "
                f"has {have}-channel images; use the dataset the model was trained on"
            )
        notes.append(channel_conversion_note(have, contract.channels))
    if data.meta.get("resize_method") and folder_root(dataset) is None:  # a folder's loader resizes every time
        notes.append(f"{dataset} images resized to {contract.layout.height}x{contract.layout.width}, the model's input size")
    return [n for n in notes if n]


@dataclass
class CompressionSetup:
    """What compressing a user's model file needs, built once by :func:`prepare_compression`.

    ``context``: the RecipeContext recipes run from. ``data``: the dataset as loaded (fitted to the
    model's image size). ``contract``: read from the file, with the data's image shape.
    ``preprocessing``: the pixel mapping (flags, the file's own normalisation, else the assumed 0..1),
    with the fit chosen. ``training_spec``: the registered model whose training defaults are used,
    or None. ``notes``: what was chosen or assumed, each to be said once.
    """

    context: Any
    data: Any
    contract: ModelContract
    preprocessing: Preprocessing
    training_spec: Any
    notes: list[str]


def prepare_compression(
    baseline: str | Path,
    dataset: str,
    *,
    model: str | None = None,
    preprocessing: Preprocessing | None = None,
    fit: str | None = None,
    data_dir=None,
    skip_bad: bool = False,
    seed: int = 0,
    unsafe: bool = False,
    verbose: int = 0,
) -> CompressionSetup:
    """The one way ``compress``, ``sensitivity`` and ``tune`` turn a model file and a dataset into a RecipeContext.

    The model file decides shape, layout, channels, classes, logits/softmax and its own pixel
    mapping; ``model`` names a registered architecture whose training defaults apply;
    ``preprocessing`` is --input-range/--mean/--std (or None), ``fit`` --fit (resize, pad, crop;
    None chooses and says so). A Keras 3 file is translated once and the translation checked
    on 64 of the user's images. ``verbose``: Keras progress during fine-tuning (0, 1 or 2).
    Raises ModelError (missing or unreadable file, classes or channels that do not match the
    data, a range refused for a model with its own normalisation) or DataError, before any training.
    """
    from .compress import RecipeContext
    from .model_io import load_model
    from .preprocess import load_fitted

    baseline = Path(baseline)
    if not baseline.exists():
        raise ModelError(
            f"{baseline}: model not found; train one with `dnncomp run {dataset}` or pass a .keras/.h5 file "
            "or a SavedModel directory"
        )
    loaded = load_model(baseline, unsafe=unsafe)  # a Keras 3 file is translated here, once
    contract = read_contract(loaded.model, path=baseline)
    resolved = resolve_preprocessing(contract, preprocessing)
    training_spec = training_spec_for(baseline, dataset, model, contract)
    data, chosen_fit, fit_note = load_fitted(dataset, tuple(contract.image_size), fit, data_dir=data_dir, skip_bad=skip_bad)
    resolved = resolved.with_fit(chosen_fit)  # the sidecar makes the device fit images alike
    contract = with_image_shape(contract, tuple(data.x_train.shape[1:]))
    notes = [loaded.note] if loaded.note and not loaded.info.is_keras3 else []  # a translation: said once checked, below
    notes += check_data_fits(contract, data, dataset) + ([fit_note] if fit_note else [])
    spec = spec_from_contract(contract, dataset, training_spec)
    if training_spec is not None and training_spec.output != contract.output:
        notes.append(
            f"{training_spec.name} is registered with {training_spec.output}; the file outputs {contract.output}, "
            "which the loss follows"
        )
    notes.append(ASSUMED_RANGE_NOTE if resolved.assumed else f"input range {resolved.describe()} ({resolved.source})")
    context = RecipeContext(
        baseline_path=baseline,
        spec=spec,
        x_train=data.x_train,
        y_train=data.y_train,
        seed=seed,
        verbose=verbose,
        preprocessing=resolved,
        contract=contract,
        unsafe=unsafe,
    )
    if loaded.info.is_keras3:  # Keras 3 and its Keras 2 translation must agree on the user's own images too
        notes.insert(0, load_model(baseline, unsafe=unsafe, probe=context.inputs[:64]).note)
    return CompressionSetup(context, data, contract, resolved, training_spec, notes)
