"""Baseline training with the study's settings or a training schedule, saving and safe loading, and the study's Keras timing.

Study settings (SPEC.md): Adam with Keras' default learning rate, sparse categorical
cross-entropy, batch 32, up to 50 epochs, early stopping on validation accuracy with
patience 5 restoring the best weights; validation is the last 20% of the training
set (GTSRB: a seeded random 25%). Every setting can be overridden.

Models whose spec carries a ``schedule`` in its training defaults (the improved and
tiny families) train with :func:`train_scheduled` instead: SGD with Nesterov
momentum, warm-up and cosine decay over a fixed epoch budget, decoupled weight decay,
label smoothing, and per-dataset augmentation in a tf.data pipeline.

TensorFlow is imported inside the functions, through dnncomp.keras_env.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .bench import latency_stats
from .errors import ModelError
from .fileio import atomic_path
from .models import ModelSpec, get_model_spec
from .preprocess import Preprocessing, fit_to_input_shape, input_layout, model_input, to_float_input

BASELINE_FILES = ("baseline.keras", "baseline.h5")


def _as_spec(spec: ModelSpec | str) -> ModelSpec:
    return get_model_spec(spec) if isinstance(spec, str) else spec


def training_settings(
    spec: ModelSpec | str,
    *,
    epochs: int | None = None,
    batch_size: int | None = None,
    patience: int | None = None,
    seed: int = 0,
    validation: str | None = None,
) -> dict[str, Any]:
    """The keyword arguments :func:`train_baseline` will use: the spec's defaults with overrides applied.

    Plain JSON values, so a run manifest can record them and compare them on resume.
    """
    spec = _as_spec(spec)
    defaults = spec.training
    patience = defaults["patience"] if patience is None else patience
    settings = {
        "epochs": int(defaults["epochs"] if epochs is None else epochs),
        "batch_size": int(defaults["batch_size"] if batch_size is None else batch_size),
        "patience": None if patience is None else int(patience),  # None: no early stopping (training schedules)
        "validation": str(defaults["validation"] if validation is None else validation),
        "seed": int(seed),
    }
    if settings["epochs"] < 1 or settings["batch_size"] < 1 or (settings["patience"] or 0) < 0:
        raise ModelError(f"training settings {settings}: epochs and batch size must be >= 1 and patience >= 0")
    parse_validation(settings["validation"])
    if defaults.get("schedule"):  # the study's models have none: their settings stay exactly the study's five keys
        settings["schedule"] = check_schedule(defaults["schedule"])
    return settings


def parse_validation(validation: str) -> tuple[str, float]:
    """``"stratified:0.1"`` / ``"last:0.2"`` / ``"random:0.25"`` / ``"none"`` -> (mode, fraction).

    A bare fraction (``"0.1"``, what ``--val-split`` takes) means ``stratified``. Raises
    ModelError for anything else.
    """
    validation = str(validation).strip()
    if validation in ("none", "", "0"):
        return "none", 0.0
    mode, sep, fraction = validation.partition(":")
    if not sep:  # a bare number
        mode, fraction = "stratified", validation
    try:
        value = float(fraction)
    except ValueError:
        value = -1.0
    if mode not in VALIDATION_MODES or not 0.0 < value < 1.0:
        raise ModelError(
            f"validation {validation!r}: expected 'stratified:F' (a seeded fraction F of every class), 'last:F' "
            "(the last fraction F, like Keras validation_split), 'random:F' (a seeded random fraction) or 'none', "
            "with 0 < F < 1"
        )
    return mode, value


VALIDATION_MODES = ("stratified", "last", "random")


def split_validation(n: int, validation: str, seed: int = 0, labels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, validation), each sorted, of a training set of ``n`` examples.

    ``stratified:F`` needs ``labels`` (``n`` ints): it holds out a seeded fraction F of
    every class (rounded, at least one image of a class that has two or more, never the
    last one), so an image folder read class by class still trains and validates on every
    class. ``last:F`` and ``random:F`` are the study's splits. Raises ModelError for a bad
    ``validation`` or missing labels.
    """
    mode, fraction = parse_validation(validation)
    if mode == "none":
        return np.arange(n), np.arange(0)
    if mode == "last":
        split_at = int(math.ceil(n * (1.0 - fraction)))  # exactly Keras' validation_split arithmetic
        return np.arange(split_at), np.arange(split_at, n)
    rng = np.random.default_rng(seed)
    if mode == "stratified":
        if labels is None or len(labels) != n:
            raise ModelError(f"validation {validation!r}: a stratified split needs the {n} training labels")
        labels = np.asarray(labels)
        held_out = []
        for label in np.unique(labels):  # sorted classes: the same split for the same seed
            members = np.flatnonzero(labels == label)
            n_val = int(round(len(members) * fraction))
            if len(members) >= 2:
                n_val = min(max(n_val, 1), len(members) - 1)
            else:
                n_val = 0
            held_out.append(rng.permutation(members)[:n_val])
        val = np.sort(np.concatenate(held_out)) if held_out else np.arange(0)
        keep = np.ones(n, dtype=bool)
        keep[val] = False
        return np.flatnonzero(keep), val
    n_val = int(math.ceil(n * fraction))  # sklearn's train_test_split rounding, which the study used
    order = rng.permutation(n)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def _take(array: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``array[index]``, as a view when the index is one contiguous range (no copy of a large training set)."""
    if len(index) and index[-1] - index[0] + 1 == len(index) and np.all(np.diff(index) == 1):
        return array[index[0] : index[-1] + 1]
    return array[index]


def model_inputs(spec: ModelSpec, x: np.ndarray, preprocessing: Preprocessing | None = None) -> np.ndarray:
    """uint8 NHWC images -> the float32 input the model takes; float input is checked and passed through.

    Images are arranged in the layout of ``spec.input_shape`` (HW, HWC, CHW or flat: the
    model file's own shape when the spec comes from :func:`dnncomp.contract.spec_from_contract`),
    fitted to its size (``preprocessing.fit``: resized, padded or cropped; resized when None) and
    grey/colour converted, then mapped by ``preprocessing`` (input range and per-channel mean/std);
    None is dnncomp's ``pixel / 255``.
    """
    if x.dtype == np.uint8:
        if preprocessing is None or preprocessing.is_identity_unit:  # the study's path, bit for bit
            return to_float_input(
                fit_to_input_shape(x, spec.input_shape, what=spec.name, fit=preprocessing and preprocessing.fit)
            )
        image_shape = tuple(x.shape[1:]) if x.ndim == 4 else None
        layout = input_layout(spec.input_shape, spec.name, image_shape)
        return model_input(x, layout, preprocessing, what=spec.name)
    if tuple(x.shape[1:]) != tuple(spec.input_shape):
        raise ModelError(
            f"{spec.name}: float input of shape {tuple(x.shape[1:])} does not match the model input {spec.input_shape}; "
            "pass uint8 NHWC images to have them resized and scaled"
        )
    return x.astype(np.float32, copy=False)


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and TensorFlow.

    ``deterministic=True`` also turns on TensorFlow op determinism: bit-reproducible
    training at some cost in speed (a few percent on CPU for these models; more on GPU),
    and it cannot be turned off again in the same process.
    """
    tf, keras = _keras()
    keras.utils.set_random_seed(int(seed))
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def compile_for_training(model, spec: ModelSpec, learning_rate: float | None = None, *, from_logits: bool | None = None) -> None:
    """The study's compile: Adam, sparse CE, accuracy; what compression recipes fine-tune with.

    The loss takes logits or probabilities as ``from_logits`` says (the model file's own
    output, :attr:`dnncomp.contract.ModelContract.from_logits`), else as ``spec`` says.

    The learning rate is ``learning_rate`` if given, else the spec's
    ``fine_tune_learning_rate`` if it has one (the scheduled models: their training
    ends at a learning rate near zero, and Adam's default would undo it), else Keras'
    default, as the study had it.
    """
    _, keras = _keras()
    if learning_rate is None:
        learning_rate = spec.training.get("fine_tune_learning_rate")
    optimizer = keras.optimizers.Adam() if learning_rate is None else keras.optimizers.Adam(learning_rate=learning_rate)
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(
            from_logits=spec.from_logits if from_logits is None else bool(from_logits)
        ),
        metrics=["accuracy"],
    )


def train_baseline(
    spec: ModelSpec | str,
    x_train: np.ndarray,
    y_train: np.ndarray,
    *,
    epochs: int = 50,
    batch_size: int = 32,
    patience: int = 5,
    seed: int = 0,
    validation: str | None = None,
    learning_rate: float | None = None,
    deterministic: bool = False,
    verbose: int = 1,
    schedule: dict[str, Any] | None = None,
) -> tuple[Any, dict[str, list[float]]]:
    """Train a fresh model of ``spec`` on raw uint8 images; return ``(model, history)``.

    Without ``schedule``, the study's training: Adam, batch 32 by default, early stopping
    on ``val_accuracy`` with ``patience``, restoring the best epoch's weights.
    ``validation`` defaults to the spec's (``last:0.2``; GTSRB ``random:0.25`` seeded
    with ``seed``). With a ``schedule`` (what :func:`training_settings` gives for the
    improved and tiny models), :func:`train_scheduled`. ``history`` is Keras' per-epoch
    history as plain floats, with ``learning_rate`` and ``elapsed_s`` (wall time since
    training started) per epoch.
    """
    spec = _as_spec(spec)
    if schedule:
        return train_scheduled(
            spec,
            x_train,
            y_train,
            epochs=epochs,
            batch_size=batch_size,
            patience=patience,
            seed=seed,
            validation=validation,
            learning_rate=learning_rate,
            deterministic=deterministic,
            verbose=verbose,
            schedule=schedule,
        )
    _, keras = _keras()
    validation = spec.training["validation"] if validation is None else validation
    if len(x_train) != len(y_train):
        raise ModelError(f"{len(x_train)} training images but {len(y_train)} labels")
    x = model_inputs(spec, x_train)
    y = np.asarray(y_train).astype(np.int64)
    if y.size and (y.min() < 0 or y.max() >= spec.num_classes):
        raise ModelError(f"labels must be in 0..{spec.num_classes - 1} for {spec.name}; got {y.min()}..{y.max()}")
    train_idx, val_idx = split_validation(len(x), validation, seed, labels=y)

    seed_everything(seed, deterministic)
    model = spec.build()
    compile_for_training(model, spec, learning_rate)
    callbacks = [_EpochLog(keras, model.optimizer)]  # elapsed_s per epoch: accuracy-against-time curves
    validation_data = None
    if len(val_idx):
        validation_data = (_take(x, val_idx), _take(y, val_idx))
        callbacks.append(_early_stopping(keras, patience, verbose))
    history = model.fit(
        _take(x, train_idx),
        _take(y, train_idx),
        batch_size=batch_size,
        epochs=epochs,
        validation_data=validation_data,
        callbacks=callbacks,
        shuffle=True,
        verbose=verbose,
    )
    return model, _plain_history(history)


def _early_stopping(keras, patience: int, verbose: int):
    """The study's early stopping: on validation accuracy, restoring the best epoch's weights."""
    return keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=patience, restore_best_weights=True, verbose=verbose)


def _plain_history(history) -> dict[str, list[float]]:
    return {key: [float(v) for v in values] for key, values in history.history.items()}


# ---- the training schedule of the improved and tiny models --------------------------

SCHEDULE_KEYS = {"name", "learning_rate", "momentum", "weight_decay", "warmup_fraction", "label_smoothing", "augment"}
# "adam-exponential" (MLPerf Tiny's ResNet-8 schedule) also has decay_per_epoch; momentum, weight
# decay and warm-up are 0 there (its L2 regularisation lives in the model's layers).
SCHEDULE_NAMES = ("sgd-nesterov-cosine", "adam-exponential")


def check_schedule(schedule: dict[str, Any]) -> dict[str, Any]:
    """A training schedule (see :func:`dnncomp.models.scheduled_training`), checked, as plain JSON."""
    from .augment import check_augment

    schedule = dict(schedule)
    keys = SCHEDULE_KEYS | ({"decay_per_epoch"} if schedule.get("name") == "adam-exponential" else set())
    unknown = sorted(set(schedule) - keys)
    missing = sorted(keys - set(schedule))
    if unknown or missing:
        raise ModelError(f"training schedule: unknown key(s) {unknown}, missing key(s) {missing}; expected {sorted(keys)}")
    if schedule["name"] not in SCHEDULE_NAMES:
        raise ModelError(f"training schedule {schedule['name']!r}: known schedules are {', '.join(SCHEDULE_NAMES)}")
    checked: dict[str, Any] = {"name": schedule["name"]}
    if "decay_per_epoch" in keys:
        decay = float(schedule["decay_per_epoch"])
        if not math.isfinite(decay) or not 0 < decay <= 1:
            raise ModelError(f"training schedule decay_per_epoch = {schedule['decay_per_epoch']!r}: expected a number in (0, 1]")
        checked["decay_per_epoch"] = decay
    for key in ("learning_rate", "momentum", "weight_decay", "warmup_fraction", "label_smoothing"):
        value = float(schedule[key])
        if not math.isfinite(value) or value < 0 or (key != "learning_rate" and value >= 1):
            raise ModelError(
                f"training schedule {key} = {schedule[key]!r}: expected a number >= 0 (and < 1 except learning_rate)"
            )
        checked[key] = value
    checked["augment"] = check_augment(schedule["augment"])
    return checked


def scheduled_optimizer(
    schedule: dict[str, Any], total_steps: int, learning_rate: float | None = None, steps_per_epoch: int | None = None
):
    """SGD with Nesterov momentum, linear warm-up then cosine decay to zero, decoupled weight decay on kernels.

    Schedule ``adam-exponential``: Adam whose learning rate is multiplied by ``decay_per_epoch``
    after every epoch of ``steps_per_epoch`` steps (MLPerf Tiny's ResNet-8 training).
    """
    _, keras = _keras()
    peak = float(schedule["learning_rate"] if learning_rate is None else learning_rate)
    total_steps = max(1, int(total_steps))
    if schedule["name"] == "adam-exponential":
        rates = keras.optimizers.schedules.ExponentialDecay(
            peak, decay_steps=max(1, int(steps_per_epoch or total_steps)), decay_rate=schedule["decay_per_epoch"], staircase=True
        )
        return keras.optimizers.Adam(learning_rate=rates)
    warmup_steps = min(total_steps - 1, int(round(schedule["warmup_fraction"] * total_steps)))
    rates = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=peak / 10.0 if warmup_steps else peak,
        decay_steps=total_steps - warmup_steps,
        alpha=0.0,
        warmup_target=peak if warmup_steps else None,
        warmup_steps=warmup_steps,
    )
    optimizer = keras.optimizers.SGD(
        learning_rate=rates,
        momentum=schedule["momentum"],
        nesterov=True,
        weight_decay=schedule["weight_decay"] or None,
    )
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    return optimizer


def train_scheduled(
    spec: ModelSpec | str,
    x_train: np.ndarray,
    y_train: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    schedule: dict[str, Any],
    patience: int | None = None,
    seed: int = 0,
    validation: str | None = None,
    learning_rate: float | None = None,
    deterministic: bool = False,
    verbose: int = 1,
) -> tuple[Any, dict[str, list[float]]]:
    """Train a fresh model of ``spec`` with a training schedule; return ``(model, history)``.

    A fixed budget of ``epochs`` (the schedule spans exactly them), batches of augmented
    images from a tf.data pipeline (:mod:`dnncomp.augment`), label-smoothed cross-entropy
    on one-hot labels. The validation split is evaluated after every epoch and only
    watched, unless ``patience`` asks for early stopping. ``history`` has the study's
    keys (loss, accuracy, val_loss, val_accuracy) and, per epoch, ``learning_rate`` at its
    end and ``elapsed_s``, the wall time since training started (for accuracy-against-time
    curves).
    """
    from .augment import evaluation_dataset, training_dataset
    from .preprocess import resize_images

    spec = _as_spec(spec)
    tf, keras = _keras()
    schedule = check_schedule(schedule)
    validation = spec.training["validation"] if validation is None else validation
    if len(x_train) != len(y_train):
        raise ModelError(f"{len(x_train)} training images but {len(y_train)} labels")
    x = np.asarray(x_train)
    if x.ndim == 3:  # single-channel images without their channel axis
        x = x[..., None]
    if x.dtype != np.uint8 or x.ndim != 4:
        raise ModelError(f"{spec.name}: scheduled training takes uint8 NHWC images, got {x.dtype} of shape {x.shape}")
    fit_to_input_shape(x[:1], spec.input_shape, what=spec.name)  # checks the channel count
    x = resize_images(x, spec.image_size)
    y = np.asarray(y_train).astype(np.int64)
    if y.size and (y.min() < 0 or y.max() >= spec.num_classes):
        raise ModelError(f"labels must be in 0..{spec.num_classes - 1} for {spec.name}; got {y.min()}..{y.max()}")
    train_idx, val_idx = split_validation(len(x), validation, seed, labels=y)
    if len(train_idx) == 0:
        raise ModelError(f"no training images left after the validation split {validation!r}")
    batch_size = min(int(batch_size), len(train_idx))
    steps_per_epoch = len(train_idx) // batch_size

    seed_everything(seed, deterministic)
    train_data = training_dataset(
        _take(x, train_idx),
        _take(y, train_idx),
        input_shape=spec.input_shape,
        num_classes=spec.num_classes,
        batch_size=batch_size,
        augment=schedule["augment"],
        seed=seed,
    )
    validation_data = None
    if len(val_idx):
        validation_data = evaluation_dataset(
            _take(x, val_idx), _take(y, val_idx), input_shape=spec.input_shape, num_classes=spec.num_classes
        )

    model = spec.build()
    optimizer = scheduled_optimizer(schedule, epochs * steps_per_epoch, learning_rate, steps_per_epoch=steps_per_epoch)
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.CategoricalCrossentropy(from_logits=spec.from_logits, label_smoothing=schedule["label_smoothing"]),
        metrics=["accuracy"],
    )
    callbacks = [_EpochLog(keras, optimizer)]
    if patience and validation_data is not None:
        callbacks.append(_early_stopping(keras, patience, verbose))
    history = model.fit(
        train_data,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        validation_data=validation_data,
        callbacks=callbacks,
        verbose=verbose,
    )
    # A seeded sample of every class (a folder's training set is ordered by class).
    sample = np.sort(np.random.default_rng(seed).permutation(train_idx)[:BN_RECALIBRATION_IMAGES])
    recalibrate_batch_norm(
        model, evaluation_dataset(x[sample], y[sample], input_shape=spec.input_shape, num_classes=spec.num_classes)
    )
    return model, _plain_history(history)


# Images (un-augmented training images) whose batch statistics replace BatchNormalization's moving averages.
BN_RECALIBRATION_IMAGES = 4096


def recalibrate_batch_norm(model, batches) -> int:
    """Set every BatchNormalization's moving mean and variance to the average over ``batches`` (precise BN).

    Keras keeps exponential moving averages (momentum 0.99): after a short training (a few
    hundred steps, e.g. ``--epochs 1`` on a small folder) they still lean on their initial
    0 and 1, and the model predicts one class for every image at inference although it
    trains well. Recomputing them from the final weights on un-augmented training images is
    the field's fix ("precise BN", Wu & Johnson, *Rethinking "Batch" in BatchNorm*, 2021), and
    after a long training it only removes the lag. ``batches`` yields ``(inputs, labels)``;
    each batch weighs the same (momentum ``i / (i + 1)`` at batch ``i``, a cumulative average).
    Returns the number of layers recalibrated (0: the model has none, nothing is run).
    """
    _, keras = _keras()
    layers = [layer for layer in _all_layers(model) if isinstance(layer, keras.layers.BatchNormalization)]
    if not layers:
        return 0
    momenta = [layer.momentum for layer in layers]
    try:
        for i, (inputs, _labels) in enumerate(batches):
            for layer in layers:
                layer.momentum = i / (i + 1)
            model(inputs, training=True)  # eager: each call reads the momentum just set
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
    return len(layers)


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):  # a nested model
            yield from _all_layers(layer)


def _EpochLog(keras, optimizer):
    """A callback adding each epoch's final learning rate and the elapsed wall time to the logs (and so the history)."""

    class EpochLog(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            if logs is not None:
                logs["learning_rate"] = float(optimizer.learning_rate.numpy())
                logs["elapsed_s"] = round(time.perf_counter() - self.started, 3)

    return EpochLog()


# ---- saving and loading -------------------------------------------------------------


def save_baseline(model, run_dir: str | os.PathLike, formats: tuple[str, ...] = ("keras", "h5")) -> list[Path]:
    """Write ``baseline.keras`` and ``baseline.h5`` (with optimizer state, like the study's file) atomically."""
    _keras()
    run_dir = Path(run_dir)
    written = []
    for fmt in formats:
        if fmt not in ("keras", "h5"):
            raise ModelError(f"baseline format {fmt!r}: expected 'keras' or 'h5'")
        final = run_dir / f"baseline.{fmt}"
        with atomic_path(final) as tmp, warnings.catch_warnings():  # the temporary name keeps the suffix: Keras picks the format
            warnings.filterwarnings(
                "ignore", message=".*HDF5 file.*legacy", category=UserWarning
            )  # .h5 is asked for: the study's format
            model.save(tmp)
        written.append(final)
    return written


def saved_model_config(path: str | os.PathLike) -> dict[str, Any]:
    """The architecture config stored in a model file, read without deserializing anything (see dnncomp.model_io)."""
    from .model_io import saved_model_config as read_config

    return read_config(path)


def load_baseline(path: str | os.PathLike, *, unsafe: bool = False):
    """Load a model file as a fresh Keras 2 (tf_keras) model without its optimizer; see :func:`dnncomp.model_io.load_model`.

    ``path`` is a .keras/.h5 file from Keras 2 or Keras 3 (translated) or a SavedModel
    directory. Lambda layers are refused before any deserialization (an .h5 Lambda holds
    marshalled Python bytecode) unless ``unsafe``. Raises ModelError naming the file.
    """
    from .model_io import load_model

    return load_model(path, unsafe=True if unsafe else None).model  # False: the enclosing model_io.unsafe_loading() decides


# ---- the study's baseline timing ----------------------------------------------------


def keras_predict_latency(model, x: np.ndarray, repeats: int | None = None, warmup: int = 1) -> dict[str, Any]:
    """Time ``model.predict`` on one image at a time, as the study timed its Keras baseline.

    ``x`` is one preprocessed image or a batch of them; each call predicts a single
    image. By default every image is timed once (the study: its first 1000 test
    images); ``repeats`` times that many calls instead, cycling through the images.
    Most of this time is Keras' per-call overhead, not the network: it is not comparable
    with LiteRT latency, and the record says so.
    """
    tf, _ = _keras()
    images = np.asarray(x, dtype=np.float32)
    if images.ndim == len(model.input_shape) - 1:
        images = images[None]
    if len(images) == 0:
        raise ModelError("keras_predict_latency needs at least one image")
    count = len(images) if repeats is None else int(repeats)
    if count < 1:
        raise ModelError(f"keras_predict_latency: repeats must be >= 1, got {repeats}")
    for i in range(max(0, warmup)):
        model.predict(images[i % len(images)][None], verbose=0)
    durations_ns = np.empty(count, dtype=np.int64)
    for i in range(count):
        one = images[i % len(images)][None]
        start = time.perf_counter_ns()
        model.predict(one, verbose=0)
        durations_ns[i] = time.perf_counter_ns() - start
    return {
        "runtime": "keras",
        "method": "tf_keras Model.predict on one image per call (the study's baseline timing; mostly framework overhead)",
        "warmup": int(warmup),
        **latency_stats(durations_ns),  # the same keys as the LiteRT measurements
        "threads": None,  # TensorFlow's own thread pools, not a fixed count
        "tf_intra_op_threads": int(tf.config.threading.get_intra_op_parallelism_threads()),
        "cpu_count": os.cpu_count(),
    }


def _keras():
    from .keras_env import import_keras

    return import_keras()
