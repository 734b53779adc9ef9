"""Model files in, a Keras 2 (tf_keras) model out: .keras and .h5 from Keras 2 or Keras 3, SavedModel directories.

TFMOT works only on Keras 2 models, but TensorFlow >= 2.16 users save with Keras 3 by
default. Every model file dnncomp is given goes through :func:`load_model`:

- a Keras 2 ``.keras``/``.h5`` file (or a SavedModel directory written by tf_keras,
  with its ``keras_metadata.pb``) loads with tf_keras directly;
- a Keras 3 ``.keras``/``.h5`` file of standard layers is *translated*: its
  architecture config is rewritten into tf_keras' dialect (class names, dtype
  policies, initializer options, ``batch_shape``, functional node records) and rebuilt
  with tf_keras, the weights are copied layer by layer from the same file loaded by
  the installed Keras 3 package, and the outputs of both models are checked equal on
  probe inputs. What cannot be translated is one :class:`ModelError` naming the layer;
- a SavedModel without Keras metadata (``tf.saved_model.save``, Keras 3's
  ``model.export``) is not a Keras model: one error says what to save instead.

Nothing is deserialised before the file's config has been read as plain JSON
(:func:`inspect_model_file`): Lambda layers hold Python code, and are loaded only
when the caller passes ``unsafe=True`` (the CLI's ``--unsafe``; :func:`unsafe_loading`
sets the default for a whole run). TensorFlow and both Keras packages are imported
inside the functions that need them. Keras 3 is imported into the same process as
tf_keras: with TF_USE_LEGACY_KERAS=1 set first, ``tf.keras`` stays tf_keras, and TFMOT
recipes run on the translated model afterwards (QAT included).
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import json
import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ModelError, first_line

UNSAFE_HINT = "pass --unsafe (library: unsafe=True) to load it anyway, only if you trust the file"

# Keys every tf_keras layer takes besides its own constructor arguments (base_layer.Layer).
_BASE_LAYER_KEYS = {
    "name",
    "trainable",
    "dtype",
    "dynamic",
    "input_dim",
    "input_shape",
    "batch_input_shape",
    "batch_size",
    "weights",
    "activity_regularizer",
    "autocast",
    "implementation",
}
_MODEL_CLASSES = {"Sequential", "Functional", "Model"}
_EMPTY = (None, False, "", (), [], {})
# Keras 3 options tf_keras' layer lacks that, at these values, mean what tf_keras always does.
_NEUTRAL = {"data_format": "channels_last", "synchronized": False, "fill_mode": "constant", "fill_value": 0.0}


@dataclass
class ModelFile:
    """What a model file is, read without deserialising anything.

    ``kind`` is ``"keras"`` (a .keras zip), ``"h5"`` or ``"savedmodel"``; ``keras_major``
    the Keras major version that wrote it (2 or 3; None when the file does not say);
    ``config`` the architecture config as plain JSON (None for a SavedModel without
    Keras metadata); ``lambdas`` the names of its Lambda layers.
    """

    path: Path
    kind: str
    keras_major: int | None
    config: dict[str, Any] | None
    lambdas: list[str] = field(default_factory=list)

    @property
    def is_keras3(self) -> bool:
        return self.keras_major == 3


# ---- reading a file's config without deserialising it ---------------------------------


def _major(version: Any) -> int | None:
    text = version.decode() if isinstance(version, bytes) else str(version or "")
    head = text.split(".", 1)[0]
    return int(head) if head.isdigit() else None


def _looks_keras3(config: Any) -> bool:
    """Keras 3 markers in a config whose file does not name its Keras version."""
    text = json.dumps(config)
    return '"DTypePolicy"' in text or '"batch_shape"' in text or '"__keras_tensor__"' in text


def inspect_model_file(path: str | os.PathLike) -> ModelFile:
    """Read a model file's format, Keras version and architecture config without deserialising anything.

    ``path`` is a ``.keras``/``.h5``/``.hdf5`` file or a SavedModel directory. Raises
    ModelError (one line naming the file) for a missing path, a file that is not a Keras
    model (a weights-only .h5, a zip without config.json, ...), a directory that is not a
    SavedModel, or an unsupported suffix. Reading a SavedModel's Keras metadata imports
    TensorFlow (its protobuf); the .keras and .h5 paths do not.
    """
    path = Path(path)
    if path.is_dir():
        return _inspect_saved_model(path)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    suffix = path.suffix.lower()
    try:
        if suffix == ".keras":
            with zipfile.ZipFile(path) as archive:
                names = set(archive.namelist())
                if "config.json" not in names:
                    raise ModelError(
                        f"{path}: a zip without config.json, not a Keras model file; save the whole model with model.save('model.keras')"
                    )
                config = json.loads(archive.read("config.json"))
                metadata = json.loads(archive.read("metadata.json")) if "metadata.json" in names else {}
            major = _major(metadata.get("keras_version"))
            kind = "keras"
        elif suffix in (".h5", ".hdf5"):
            import h5py

            with h5py.File(path, "r") as h5:
                raw = h5.attrs.get("model_config")
                if raw is None:
                    raise ModelError(
                        f"{path}: an HDF5 file without a model config (weights only?); save the whole model with model.save()"
                    )
                config = json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
                major = _major(h5.attrs.get("keras_version"))
            kind = "h5"
        else:
            raise ModelError(f"{path}: unsupported model file; expected a .keras or .h5 Keras model or a SavedModel directory")
    except ModelError:
        raise
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise ModelError(f"{path}: not a readable Keras model file ({type(exc).__name__}: {exc})") from exc
    if not isinstance(config, dict) or "class_name" not in config:
        raise ModelError(f"{path}: its config is not a Keras model config; save the whole model with model.save()")
    if major is None:
        major = 3 if _looks_keras3(config) else 2
    return ModelFile(path=path, kind=kind, keras_major=major, config=config, lambdas=_lambda_layers(config))


def _inspect_saved_model(path: Path) -> ModelFile:
    if not (path / "saved_model.pb").is_file() and not (path / "saved_model.pbtxt").is_file():
        raise ModelError(
            f"{path}: a directory without saved_model.pb, not a TensorFlow SavedModel; pass a .keras/.h5 file or a SavedModel directory"
        )
    metadata = path / "keras_metadata.pb"
    if not metadata.is_file():
        return ModelFile(path=path, kind="savedmodel", keras_major=None, config=None)
    from .keras_env import import_keras

    import_keras()
    from tf_keras.protobuf import saved_metadata_pb2

    proto = saved_metadata_pb2.SavedMetadata()
    try:
        proto.ParseFromString(metadata.read_bytes())
        nodes = [json.loads(node.metadata) for node in proto.nodes if node.metadata]
    except Exception as exc:  # a protobuf DecodeError or a broken JSON string
        raise ModelError(f"{path}: unreadable keras_metadata.pb ({type(exc).__name__}: {exc})") from exc
    root = next((n for n in nodes if n.get("config") is not None and n.get("class_name") in _MODEL_CLASSES), None)
    config = {"class_name": root["class_name"], "config": root["config"]} if root else None
    lambdas = sorted(
        {str(n.get("name") or (n.get("config") or {}).get("name", "?")) for n in nodes if n.get("class_name") == "Lambda"}
    )
    return ModelFile(path=path, kind="savedmodel", keras_major=2, config=config, lambdas=lambdas)


def saved_model_config(path: str | os.PathLike) -> dict[str, Any]:
    """The architecture config stored in a .keras or .h5 file (or a Keras SavedModel), read without deserialising anything.

    Raises ModelError for what :func:`inspect_model_file` refuses, and for a SavedModel
    that carries no Keras config.
    """
    info = inspect_model_file(path)
    if info.config is None:
        raise ModelError(f"{info.path}: a SavedModel without Keras metadata has no Keras config")
    return info.config


def _lambda_layers(config: Any) -> list[str]:
    """Names of every Lambda layer anywhere in a config (nested models included)."""
    found = []
    if isinstance(config, dict):
        if config.get("class_name") == "Lambda":
            found.append(str((config.get("config") or {}).get("name", "?")))
        for value in config.values():
            found.extend(_lambda_layers(value))
    elif isinstance(config, list):
        for value in config:
            found.extend(_lambda_layers(value))
    return found


# ---- loading ----------------------------------------------------------------------------


@dataclass
class LoadedModel:
    """A tf_keras model and how it was obtained: ``note`` is one line for the user when it matters (translated, unsafe)."""

    model: Any
    info: ModelFile
    note: str | None = None


# The default of ``unsafe`` for loads that do not pass it (set by `dnncomp run --unsafe` around a whole run,
# whose recipes reload the adopted baseline many times).
_UNSAFE_DEFAULT: contextvars.ContextVar[bool] = contextvars.ContextVar("dnncomp_unsafe_loading", default=False)


@contextlib.contextmanager
def unsafe_loading(enabled: bool = True):
    """Within this block, :func:`load_model` calls that do not pass ``unsafe`` load Lambda layers (their code runs)."""
    token = _UNSAFE_DEFAULT.set(bool(enabled))
    try:
        yield
    finally:
        _UNSAFE_DEFAULT.reset(token)


# Translations done in this process: (path, size, mtime, unsafe) -> (tf_keras config, weights by layer path, note).
# Recipes load a fresh model for every recipe; the Keras 3 side is read once.
_TRANSLATED: dict[tuple, tuple[dict[str, Any], dict[str, list[np.ndarray]], str]] = {}


def load_model(path: str | os.PathLike, *, unsafe: bool | None = None, probe: np.ndarray | None = None) -> LoadedModel:
    """Load any supported model file as a fresh tf_keras model, without its optimizer.

    ``path``: a Keras 2 or Keras 3 ``.keras``/``.h5`` file or a SavedModel directory.
    Lambda layers are refused before anything is deserialised unless ``unsafe`` (their
    Python code runs when loaded). A Keras 3 file is translated (see the module
    docstring); ``probe`` (model inputs, e.g. real images already preprocessed) is what
    its two versions are compared on, by default 16 seeded random inputs, 8 in 0..1 and 8 in
    0..255. ``unsafe=None`` takes the default of the enclosing :func:`unsafe_loading` block
    (False outside one). Raises ModelError with one line naming the file (and the layer or
    class that is the problem).
    """
    unsafe = _UNSAFE_DEFAULT.get() if unsafe is None else bool(unsafe)
    info = inspect_model_file(path)
    if info.lambdas and not unsafe:
        raise ModelError(
            f"{info.path}: refusing to load a model with Lambda layers ({', '.join(info.lambdas)}): loading one can run "
            f"arbitrary code; rebuild the model from standard Keras layers, or {UNSAFE_HINT}"
        )
    lambda_note = (
        f"loaded its Lambda layers ({', '.join(info.lambdas)}) and their Python code (--unsafe)" if info.lambdas else None
    )
    note = f"{info.path}: {lambda_note}" if lambda_note else None
    if info.kind == "savedmodel":
        return LoadedModel(_load_saved_model(info), info, note)
    if info.is_keras3:
        model, translation_note = _load_keras3(info, unsafe=unsafe, probe=probe)
        return LoadedModel(model, info, translation_note if lambda_note is None else f"{translation_note}; {lambda_note}")
    return LoadedModel(_load_keras2_file(info, unsafe), info, note)


def _keras():
    from .keras_env import import_keras

    return import_keras()


def _load_keras2_file(info: ModelFile, unsafe: bool):
    tf, keras = _keras()
    _check_classes_known(info, keras)
    try:
        if info.kind == "keras":
            return keras.models.load_model(info.path, compile=False, safe_mode=not unsafe)
        return keras.models.load_model(info.path, compile=False)
    except Exception as exc:  # Keras raises many types for malformed or foreign files
        unknown = re.search(r"Unknown (?:layer|object|class)[^']*'([^']+)'|Could not locate class '([^']+)'", str(exc))
        if unknown:
            raise ModelError(
                f"{info.path}: class {unknown.group(1) or unknown.group(2)} is not a standard Keras layer (a custom class); "
                "dnncomp loads standard layers only: rebuild the model from them"
            ) from exc
        raise ModelError(f"{info.path}: could not load the Keras model ({type(exc).__name__}: {first_line(exc)})") from exc


def _check_classes_known(info: ModelFile, keras) -> None:
    """One line naming the first layer whose class tf_keras does not know, instead of a deserialisation dump."""
    from tf_keras.src.layers.serialization import get_builtin_layer

    for layer_path, class_name, registered in _layer_classes(info.config):
        if get_builtin_layer(class_name) is None and keras.saving.get_registered_object(registered or class_name) is None:
            raise ModelError(
                f"{info.path}: layer {layer_path} is of class {class_name}, not a standard Keras layer (a custom class); "
                "dnncomp loads standard layers only: rebuild the model from them"
            )


def _layer_classes(config: Any, prefix: str = "") -> list[tuple[str, str, str | None]]:
    """(layer path, class name, registered name) of every layer in a model config, nested models included."""
    out = []
    layers = (config.get("config") or {}).get("layers") if isinstance(config, dict) else None
    for layer in layers or []:
        if not isinstance(layer, dict):
            continue
        name = str(layer.get("name") or (layer.get("config") or {}).get("name", "?"))
        out.append((prefix + name, str(layer.get("class_name")), layer.get("registered_name")))
        if layer.get("class_name") in _MODEL_CLASSES:
            out.extend(_layer_classes(layer, prefix + name + "/"))
    return out


def _load_saved_model(info: ModelFile):
    tf, keras = _keras()
    what_works = (
        "dnncomp needs the Keras model itself: save it with model.save('model.keras') (Keras 2 or 3) "
        "or, with tf_keras, model.save('dir', save_format='tf')"
    )
    try:
        model = keras.models.load_model(str(info.path), compile=False)
    except Exception as exc:
        if info.config is None:
            model = None  # said below, with what would work
        else:
            raise ModelError(
                f"{info.path}: could not load the SavedModel as a Keras model ({type(exc).__name__}: {first_line(exc)}); {what_works}"
            ) from exc
    if isinstance(model, keras.Model):
        return model
    if info.config is None:  # tf_keras revives a plain SavedModel as a bare object, not a model
        raise ModelError(
            f"{info.path}: a TensorFlow SavedModel without Keras metadata (tf.saved_model.save or Keras 3's model.export "
            f"write these), so not a Keras model; {what_works}"
        )
    raise ModelError(f"{info.path}: the SavedModel does not hold a Keras model; {what_works}")


# ---- Keras 3 -> Keras 2 -----------------------------------------------------------------


def _load_keras3(info: ModelFile, *, unsafe: bool, probe: np.ndarray | None):
    stat = info.path.stat()
    key = (str(info.path.resolve()), stat.st_size, stat.st_mtime_ns, bool(unsafe))
    if key not in _TRANSLATED or probe is not None:
        _TRANSLATED[key] = _translate_keras3(info, unsafe=unsafe, probe=probe)
    config, weights, note = _TRANSLATED[key]
    return _build_keras2(info, config, weights), note


def _translate_keras3(info: ModelFile, *, unsafe: bool, probe: np.ndarray | None):
    """Rebuild a Keras 3 file in tf_keras; returns (tf_keras config, weights by layer path, note)."""
    config = translate_keras3_config(info.config, where=str(info.path), allow_lambda=unsafe)
    model3 = _load_with_keras3(info, unsafe)
    weights = {path: layer.get_weights() for path, layer in _weighted_layers(model3)}
    model2 = _build_keras2(info, config, weights)
    inputs = _probe_inputs(model2, probe)
    out3 = [np.asarray(o) for o in _as_list(model3.predict(inputs, verbose=0))]
    out2 = [np.asarray(o) for o in _as_list(model2.predict(inputs, verbose=0))]
    worst = 0.0
    for a, b in zip(out3, out2):
        if a.shape != b.shape:
            raise ModelError(f"{info.path}: the Keras 2 translation outputs shape {b.shape}, the Keras 3 model {a.shape}")
        finite = np.isfinite(a)
        if not np.array_equal(finite, np.isfinite(b)):  # an overflow on raw-pixel probes must overflow in both
            worst = float("inf")
        elif finite.any():
            scale = max(1.0, float(np.max(np.abs(a[finite]))))
            worst = max(worst, float(np.max(np.abs(a[finite] - b[finite]))) / scale)
    if len(out3) != len(out2) or not worst <= 1e-4:
        raise ModelError(
            f"{info.path}: the Keras 2 translation of this Keras 3 model does not compute the same outputs "
            f"(relative difference {worst:.2g}); save it from Keras 2 (tf_keras) instead"
        )
    n = sum(1 for _ in _weighted_layers(model2))
    what = "images of the data" if probe is not None else "probe inputs"
    note = f"{info.path}: a Keras {info.keras_major} file, translated to Keras 2 ({n} weighted layers; outputs equal on {len(_first(inputs))} {what}, max relative difference {worst:.1g})"
    return config, weights, note


def _first(inputs):
    return inputs[0] if isinstance(inputs, list) else inputs


def _as_list(value) -> list:
    if isinstance(value, dict):
        return [value[k] for k in sorted(value)]
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _load_with_keras3(info: ModelFile, unsafe: bool):
    """The file loaded by the installed Keras 3 package (in this process: it leaves tf_keras and tf.keras alone)."""
    try:
        import keras as keras3
    except ImportError as exc:
        raise ModelError(
            f"{info.path}: a Keras 3 file, and the keras 3 package is not installed to read it (pip install 'keras>=3')"
        ) from exc
    if _major(keras3.__version__) != 3:
        raise ModelError(
            f"{info.path}: a Keras 3 file, but the installed keras package is {keras3.__version__}; install keras 3 to read it"
        )
    try:
        return keras3.saving.load_model(info.path, compile=False, safe_mode=not unsafe)
    except Exception as exc:
        raise ModelError(
            f"{info.path}: Keras {keras3.__version__} could not load it ({type(exc).__name__}: {first_line(exc)})"
        ) from exc


def _weighted_layers(model, prefix: str = ""):
    """(path, layer) of every layer that holds weights, descending into nested models."""
    for layer in model.layers:
        path = prefix + layer.name
        if hasattr(layer, "layers") and layer.__class__.__name__ in _MODEL_CLASSES:
            yield from _weighted_layers(layer, path + "/")
        elif layer.weights:
            yield path, layer


def _build_keras2(info: ModelFile, config: dict[str, Any], weights: dict[str, list[np.ndarray]]):
    tf, keras = _keras()
    try:
        model = keras.saving.deserialize_keras_object(config, safe_mode=False if _lambda_layers(config) else True)
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(
            f"{info.path}: tf_keras could not rebuild the translated Keras 3 model ({type(exc).__name__}: {first_line(exc)})"
        ) from exc
    layers2 = dict(_weighted_layers(model))
    missing = sorted(set(weights) ^ set(layers2))
    if missing:
        raise ModelError(
            f"{info.path}: layer {missing[0]} holds weights in one Keras version and not in the other; it cannot be translated"
        )
    for path, values in weights.items():
        layer = layers2[path]
        shapes2 = [tuple(w.shape) for w in layer.weights]
        shapes3 = [tuple(np.shape(v)) for v in values]
        if shapes2 != shapes3:
            raise ModelError(
                f"{info.path}: layer {path} ({layer.__class__.__name__}) has weights {shapes3} in Keras 3 and {shapes2} in Keras 2; it cannot be translated"
            )
        layer.set_weights(values)
    return model


def _probe_inputs(model, probe):
    if probe is not None:
        return probe
    rng = np.random.default_rng(0)
    inputs = []
    for tensor in model.inputs:
        shape = [16 if d is None else int(d) for d in tensor.shape]
        if tensor.dtype.is_floating:
            half = shape[0] // 2
            x = rng.uniform(0.0, 1.0, size=shape).astype(tensor.dtype.as_numpy_dtype)
            x[half:] *= 255.0  # raw pixels too: a model with its own Rescaling takes those
        else:
            x = np.zeros(shape, dtype=tensor.dtype.as_numpy_dtype)
        inputs.append(x)
    return inputs[0] if len(inputs) == 1 else inputs


def translate_keras3_config(config: dict[str, Any], where: str = "model", allow_lambda: bool = False) -> dict[str, Any]:
    """A Keras 3 model config (plain JSON) rewritten in tf_keras' dialect.

    Layers keep their names (weights are matched by name). Dtype policies become their
    names, InputLayer ``batch_shape`` becomes ``batch_input_shape``, Keras 3 options tf_keras
    does not have are dropped when they hold their neutral value, functional node records
    become tf_keras' ``[layer, node, tensor, kwargs]`` lists. Raises ModelError naming
    the first layer (and option) that has no Keras 2 equivalent; ``where`` names the file.
    A Lambda layer's Python lambda is carried over only with ``allow_lambda`` (it runs when
    the model is rebuilt).
    """
    tf, keras = _keras()
    return _Translator(keras, where, allow_lambda).model(config, path="")


class _Translator:
    def __init__(self, keras, where: str, allow_lambda: bool = False):
        self.keras = keras
        self.where = where
        self.allow_lambda = allow_lambda

    def fail(self, path: str, problem: str) -> ModelError:
        return ModelError(f"{self.where}: layer {path or '(model)'} cannot be translated from Keras 3 to Keras 2: {problem}")

    def model(self, config: dict[str, Any], path: str) -> dict[str, Any]:
        class_name = config.get("class_name")
        inner = dict(config.get("config") or {})
        out_config: dict[str, Any] = {"name": inner.get("name", "model")}
        if "trainable" in inner:
            out_config["trainable"] = inner["trainable"]
        prefix = path + "/" if path else ""
        layers = []
        for layer in inner.get("layers", []):
            name = str(layer.get("name") or (layer.get("config") or {}).get("name", "?"))
            layers.append(self.layer(layer, prefix + name, functional=class_name != "Sequential"))
        out_config["layers"] = layers
        if class_name == "Sequential":
            if inner.get("build_input_shape") is not None:
                out_config["build_input_shape"] = inner["build_input_shape"]
            result: dict[str, Any] = {
                "module": "keras",
                "class_name": "Sequential",
                "config": out_config,
                "registered_name": None,
            }
        elif class_name in ("Functional", "Model"):
            if "layers" not in inner:
                raise self.fail(path, f"a subclassed {class_name} without a layer graph")
            out_config["input_layers"] = _node_refs(inner.get("input_layers"))
            out_config["output_layers"] = _node_refs(inner.get("output_layers"))
            _renumber_nested_model_nodes(layers, out_config["output_layers"], path, self)
            result = {
                "module": "keras.src.engine.functional",
                "class_name": "Functional",
                "config": out_config,
                "registered_name": "Functional",
            }
        else:
            raise self.fail(path, f"model class {class_name} (a custom or subclassed model) has no Keras 2 equivalent")
        if config.get("build_config"):
            result["build_config"] = config["build_config"]
        return result

    def layer(self, layer: dict[str, Any], path: str, functional: bool) -> dict[str, Any]:
        class_name = str(layer.get("class_name"))
        if class_name in _MODEL_CLASSES:
            out = self.model(layer, path)
        else:
            if class_name == "Lambda":
                layer = {**layer, "config": self.lambda_config(dict(layer.get("config") or {}), path)}
            cls = getattr(self.keras.layers, class_name, None)
            if cls is None or not isinstance(cls, type):
                raise self.fail(path, f"class {class_name} is not a standard Keras 2 layer (a custom class?)")
            config = self.options(cls, dict(layer.get("config") or {}), path, class_name)
            out = {"module": "keras.layers", "class_name": class_name, "config": config, "registered_name": None}
            if layer.get("build_config"):
                out["build_config"] = layer["build_config"]
        if functional:
            out["name"] = str(layer.get("name") or out["config"].get("name"))
            out["inbound_nodes"] = [self.node(node, path) for node in layer.get("inbound_nodes") or []]
        return out

    def lambda_config(self, config: dict[str, Any], path: str) -> dict[str, Any]:
        """A Keras 3 Lambda's ``{"class_name": "__lambda__", "config": {code, defaults, closure}}`` in tf_keras' form.

        The marshalled bytecode is the same Python's; names it uses from Keras 3 (``keras.ops``)
        may not exist for tf_keras, which the rebuild or the output check then reports.
        """
        if not self.allow_lambda:
            raise self.fail(path, f"a Lambda layer holds Python code; {UNSAFE_HINT}")
        function = config.get("function")
        if not (isinstance(function, dict) and function.get("class_name") == "__lambda__"):
            raise self.fail(path, "a Lambda layer calling a named function (only a Python lambda's code travels in the file)")
        code = function.get("config") or {}
        config["function"] = [code.get("code"), code.get("defaults"), code.get("closure")]
        config["function_type"] = "lambda"
        config["module"] = "tf_keras"
        output_shape = config.get("output_shape")
        if isinstance(output_shape, dict):
            raise self.fail(path, "a Lambda layer whose output_shape is a function")
        config["output_shape"] = output_shape
        config["output_shape_type"] = "raw"
        config.pop("mask", None)
        return config

    def options(self, cls: type, config: dict[str, Any], path: str, class_name: str) -> dict[str, Any]:
        if class_name == "InputLayer":
            if "batch_shape" in config:
                config["batch_input_shape"] = config.pop("batch_shape")
            config.pop("optional", None)
        accepted = _init_keywords(cls) | _BASE_LAYER_KEYS
        if class_name == "Lambda":  # what Lambda.from_config reads besides the constructor's arguments
            accepted |= {"function_type", "module", "output_shape_type"}
        out = {}
        for key, value in config.items():
            value = self.value(value, path, key)
            if key not in accepted:
                if value in _EMPTY or (key in _NEUTRAL and value == _NEUTRAL[key]):
                    continue  # a Keras 3 option at its neutral value: nothing is lost
                raise self.fail(path, f"{class_name} option {key}={json.dumps(value)[:80]} has no Keras 2 equivalent")
            out[key] = value
        return out

    def value(self, value: Any, path: str, key: str) -> Any:
        """Nested serialised objects: dtype policies, initializers, regularizers, constraints."""
        if isinstance(value, list):
            return [self.value(v, path, key) for v in value]
        if not isinstance(value, dict) or "class_name" not in value:
            return value
        class_name = value["class_name"]
        inner = value.get("config") or {}
        if class_name in ("DTypePolicy", "FloatDTypePolicy", "Policy"):
            return inner.get("name", "float32")
        if class_name.startswith("__"):  # __tuple__, __numpy__, ...: shared serialisation markers
            return value
        module = str(value.get("module") or "")
        family = module.rsplit(".", 1)[-1] if module else ""
        namespace = {
            "initializers": self.keras.initializers,
            "regularizers": self.keras.regularizers,
            "constraints": self.keras.constraints,
        }.get(family)
        if namespace is None:
            raise self.fail(
                path, f"option {key} holds a {class_name} object ({module or 'unknown module'}) that has no Keras 2 equivalent"
            )
        cls = getattr(namespace, class_name, None)
        if cls is None:
            raise self.fail(path, f"option {key}: {family} class {class_name} has no Keras 2 equivalent")
        accepted = _init_keywords(cls)
        kept = {}
        for k, v in inner.items():
            if k in accepted:
                kept[k] = v
            elif v not in _EMPTY:
                raise self.fail(path, f"option {key}: {class_name}({k}={json.dumps(v)[:60]}) has no Keras 2 equivalent")
        return {"module": f"keras.{family}", "class_name": class_name, "config": kept, "registered_name": None}

    def node(self, node: Any, path: str) -> list:
        """A Keras 3 node record ``{"args": [...], "kwargs": {...}}`` -> tf_keras' ``[[layer, node, tensor, kwargs], ...]``."""
        if isinstance(node, list):  # already the old format (a Keras 3 file saved in legacy .h5 keeps it)
            return node
        args = node.get("args") or []
        kwargs = {k: v for k, v in (node.get("kwargs") or {}).items() if v is not None}
        if _has_tensor(kwargs):
            raise self.fail(path, "it is called with tensors as keyword arguments")
        if len(args) != 1:
            raise self.fail(path, f"it is called with {len(args)} positional arguments; Keras 2 layers take one input")
        entries = []
        for item in _flatten(args[0]):
            if not (isinstance(item, dict) and item.get("class_name") == "__keras_tensor__"):
                raise self.fail(path, f"it is called with a constant ({json.dumps(item)[:60]}) among its inputs")
            name, node_index, tensor_index = item["config"]["keras_history"]
            entries.append([name, node_index, tensor_index, kwargs])
        return entries


def _renumber_nested_model_nodes(layers: list[dict[str, Any]], outputs: list, path: str, translator: _Translator) -> None:
    """Node indices as tf_keras counts them, checked.

    A nested model built on an Input already has one node (its own construction) that
    tf_keras counts and Keras 3 does not: references to its calls shift by one. Every
    reference must name a layer of this model and a node it has; tf_keras would loop
    forever on a dangling one.
    """
    by_name = {layer["name"]: layer for layer in layers}
    prefix = path + "/" if path else ""
    for layer in layers:
        for node in layer["inbound_nodes"]:
            for entry in node:
                target = by_name.get(entry[0])
                if target is None:
                    raise translator.fail(
                        prefix + layer["name"], f"its input comes from {entry[0]!r}, which is not a layer of the model"
                    )
                if not 0 <= int(entry[1]) < max(1, len(target["inbound_nodes"])):
                    raise translator.fail(
                        prefix + layer["name"], f"its input is call {entry[1]} of {entry[0]!r}, which is not in the config"
                    )
    shifted = {name for name, layer in by_name.items() if _has_own_input_node(layer)}
    references = [entry for layer in layers for node in layer["inbound_nodes"] for entry in node]
    references += [entry for entry in outputs or [] if isinstance(entry, list) and entry and isinstance(entry[0], str)]
    for entry in references:
        if entry[0] in shifted:
            entry[1] = int(entry[1]) + 1


def _has_own_input_node(layer: dict[str, Any]) -> bool:
    """A nested Functional model, or a nested Sequential that starts with an InputLayer (tf_keras' _should_skip_first_node)."""
    if layer.get("class_name") == "Functional":
        return True
    if layer.get("class_name") == "Sequential":
        inner_layers = (layer.get("config") or {}).get("layers") or []
        return bool(inner_layers) and inner_layers[0].get("class_name") == "InputLayer"
    return False


def _flatten(value) -> list:
    if isinstance(value, (list, tuple)):
        return [x for v in value for x in _flatten(v)]
    if isinstance(value, dict) and value.get("class_name") != "__keras_tensor__":
        return [x for k in sorted(value) for x in _flatten(value[k])]
    return [value]


def _has_tensor(value) -> bool:
    if isinstance(value, dict):
        return value.get("class_name") == "__keras_tensor__" or any(_has_tensor(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_tensor(v) for v in value)
    return False


def _node_refs(refs):
    """Model input/output layer references: Keras 3 writes a single one flat, ``["img", 0, 0]``."""
    if isinstance(refs, list) and len(refs) == 3 and isinstance(refs[0], str):
        return [refs]
    return refs


def _init_keywords(cls: type) -> set[str]:
    """Keyword arguments a class's constructor (and its bases', through **kwargs) accepts."""
    keys: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters.values()
        keys |= {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self"}
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return keys
