"""Data augmentation and the tf.data input pipeline of the training schedule.

An augmentation is described by a plain JSON dict (it is part of a model's training
settings and so of a run's manifest); every key is optional and zero means off:

- ``crop_padding``: pad by this many pixels (mode ``padding_mode``, ``reflect`` by
  default) and crop back to the original size at a random offset: CIFAR-10's
  standard 4-pixel random crop.
- ``horizontal_flip``: mirror half of the images. Right for natural images, wrong
  for digits and traffic signs, where the mirror image means something else.
- ``rotation`` (degrees), ``shift`` (fraction of the image size), ``zoom`` (relative
  scale change): one random affine transform per image, bilinear, with ``fill_mode``
  (``constant`` black, ``nearest``, ``reflect``) outside the image.
- ``brightness`` (added, in units of full scale) and ``contrast`` (relative change
  around the image's mean): colour jitter.

Augmentation works on whole batches (one gather or one projective-transform op per
batch), with stateless random numbers drawn from ``(seed, batch number)``, so a run
is reproducible whatever the parallelism of the pipeline. TensorFlow is imported
inside the functions.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .errors import ModelError

AUGMENT_KEYS = {
    "crop_padding": int,
    "padding_mode": str,
    "horizontal_flip": bool,
    "rotation": float,
    "shift": float,
    "zoom": float,
    "fill_mode": str,
    "brightness": float,
    "contrast": float,
}
PADDING_MODES = ("reflect", "symmetric", "constant")
FILL_MODES = ("constant", "nearest", "reflect")
EVAL_BATCH_SIZE = 500


def check_augment(augment: dict[str, Any] | None) -> dict[str, Any]:
    """Validate an augmentation dict and return it with plain JSON values."""
    augment = dict(augment or {})
    unknown = sorted(set(augment) - set(AUGMENT_KEYS))
    if unknown:
        raise ModelError(f"augmentation: unknown key(s) {', '.join(unknown)}; known: {', '.join(AUGMENT_KEYS)}")
    checked: dict[str, Any] = {}
    for key, value in augment.items():
        kind = AUGMENT_KEYS[key]
        if kind is bool:
            if not isinstance(value, bool):
                raise ModelError(f"augmentation {key}: expected true or false, got {value!r}")
        elif kind is str:
            value = str(value)
        else:
            try:
                value = kind(value)
            except (TypeError, ValueError):
                raise ModelError(f"augmentation {key}: expected a number, got {value!r}") from None
            if not math.isfinite(value) or value < 0:
                raise ModelError(f"augmentation {key}: must be a finite number >= 0, got {value!r}")
        checked[key] = value
    if checked.get("padding_mode", "reflect") not in PADDING_MODES:
        raise ModelError(f"augmentation padding_mode {checked['padding_mode']!r}: choose from {', '.join(PADDING_MODES)}")
    if checked.get("fill_mode", "nearest") not in FILL_MODES:
        raise ModelError(f"augmentation fill_mode {checked['fill_mode']!r}: choose from {', '.join(FILL_MODES)}")
    if checked.get("zoom", 0.0) >= 1.0:
        raise ModelError(f"augmentation zoom {checked['zoom']}: must be below 1 (a relative scale change)")
    return checked


def augment_batch(images, augment: dict[str, Any], seed):
    """Augment a float32 NHWC batch in [0, 1]; ``seed`` is a shape-[2] integer tensor (stateless RNG).

    The output has the input's shape and stays in [0, 1]. With every strength zero it
    is the input, unchanged.
    """
    from .keras_env import import_keras

    tf, _ = import_keras()
    return _augment(tf, images, check_augment(augment), seed)


def _augment(tf, images, augment: dict[str, Any], seed):
    """:func:`augment_batch` with TensorFlow passed in: traced inside tf.data, it must not import anything."""
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=8)
    images = tf.convert_to_tensor(images, tf.float32)
    batch = tf.shape(images)[0]
    height, width = int(images.shape[1]), int(images.shape[2])

    padding = int(augment.get("crop_padding", 0))
    flip = bool(augment.get("horizontal_flip", False))
    if padding or flip:
        images = _crop_and_flip(tf, images, padding, augment.get("padding_mode", "reflect"), flip, seeds[0], seeds[1])

    rotation = math.radians(float(augment.get("rotation", 0.0)))
    shift = float(augment.get("shift", 0.0))
    zoom = float(augment.get("zoom", 0.0))
    if rotation or shift or zoom:
        angle = tf.random.stateless_uniform([batch], seeds[2], -rotation, rotation)
        scale = tf.random.stateless_uniform([batch], seeds[3], 1.0 - zoom, 1.0 + zoom)
        offsets = tf.random.stateless_uniform([batch, 2], seeds[4], -shift, shift) * tf.constant([width, height], tf.float32)
        # The transform maps each output pixel (x, y) to the input pixel it samples:
        # input = A @ output + b with A = R(-angle) / scale, about the image centre, then shifted.
        cos, sin = tf.cos(angle) / scale, tf.sin(angle) / scale
        cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
        ox, oy = cx + offsets[:, 0], cy + offsets[:, 1]
        zeros = tf.zeros_like(cos)
        transforms = tf.stack([cos, sin, cx - cos * ox - sin * oy, -sin, cos, cy + sin * ox - cos * oy, zeros, zeros], axis=1)
        images = tf.raw_ops.ImageProjectiveTransformV3(
            images=images,
            transforms=transforms,
            output_shape=tf.constant([height, width], tf.int32),
            fill_value=tf.constant(0.0, tf.float32),
            interpolation="BILINEAR",
            fill_mode=augment.get("fill_mode", "nearest").upper(),
        )

    brightness = float(augment.get("brightness", 0.0))
    contrast = float(augment.get("contrast", 0.0))
    if contrast:
        factor = tf.random.stateless_uniform([batch, 1, 1, 1], seeds[5], 1.0 - contrast, 1.0 + contrast)
        mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
        images = (images - mean) * factor + mean
    if brightness:
        images = images + tf.random.stateless_uniform([batch, 1, 1, 1], seeds[6], -brightness, brightness)
    if brightness or contrast:
        images = tf.clip_by_value(images, 0.0, 1.0)
    return images


def _crop_and_flip(tf, images, padding: int, mode: str, flip: bool, crop_seed, flip_seed):
    """Random crop after padding and random horizontal flip, as two batched gathers (exact pixels)."""
    batch = tf.shape(images)[0]
    height, width = int(images.shape[1]), int(images.shape[2])
    if padding:
        images = tf.pad(images, [[0, 0], [padding, padding], [padding, padding], [0, 0]], mode=mode.upper())
    offsets = tf.random.stateless_uniform([batch, 2], crop_seed, 0, 2 * padding + 1, dtype=tf.int32)
    rows = offsets[:, :1] + tf.range(height)[None, :]
    columns = tf.range(width)[None, :]
    if flip:
        mirrored = tf.random.stateless_uniform([batch, 1], flip_seed, 0, 2, dtype=tf.int32) > 0
        columns = tf.where(mirrored, width - 1 - columns, columns)
    columns = offsets[:, 1:] + columns
    images = tf.gather(images, rows, axis=1, batch_dims=1)
    return tf.gather(images, columns, axis=2, batch_dims=1)


# ---- tf.data pipelines ------------------------------------------------------------------


def _scaled(tf, images_uint8):
    """uint8 pixels -> float32 /255, the input convention of every dnncomp model."""
    return tf.cast(images_uint8, tf.float32) * (1.0 / 255.0)


def training_dataset(
    x_uint8: np.ndarray,
    y: np.ndarray,
    *,
    input_shape: tuple[int, ...],
    num_classes: int,
    batch_size: int,
    augment: dict[str, Any] | None,
    seed: int,
):
    """An endless, reshuffled-every-epoch tf.data pipeline of augmented ``(inputs, one-hot labels)`` batches.

    ``x_uint8`` is NHWC at the model's image size. Batches are gathered from the uint8
    array by shuffled index (no per-image element overhead), augmented and scaled /255
    in parallel, and prefetched while the model trains. Each epoch is ``len(x) //
    batch_size`` full batches; the few images left over differ from epoch to epoch.
    """
    from .keras_env import import_keras

    tf, _ = import_keras()
    augment = check_augment(augment)
    images = tf.convert_to_tensor(x_uint8)
    labels = tf.convert_to_tensor(np.asarray(y, dtype=np.int32))
    n = int(len(x_uint8))
    base_seed = tf.constant([int(seed), 0x5EED], tf.int64)

    def load(step, index):
        batch_images = _scaled(tf, tf.gather(images, index))
        if augment:
            batch_images = _augment(tf, batch_images, augment, base_seed + tf.stack([tf.constant(0, tf.int64), step]))
        return tf.reshape(batch_images, [-1, *input_shape]), tf.one_hot(tf.gather(labels, index), num_classes)

    return (
        tf.data.Dataset.range(n)
        .shuffle(n, seed=int(seed), reshuffle_each_iteration=True)
        .repeat()
        .batch(batch_size, drop_remainder=True)
        .enumerate()
        .map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .prefetch(tf.data.AUTOTUNE)
    )


def evaluation_dataset(
    x_uint8: np.ndarray, y: np.ndarray, *, input_shape: tuple[int, ...], num_classes: int, batch_size: int = EVAL_BATCH_SIZE
):
    """Unaugmented ``(inputs, one-hot labels)`` batches, in order."""
    from .keras_env import import_keras

    tf, _ = import_keras()

    def load(batch_images, batch_labels):
        return tf.reshape(_scaled(tf, batch_images), [-1, *input_shape]), tf.one_hot(batch_labels, num_classes)

    return (
        tf.data.Dataset.from_tensor_slices((x_uint8, np.asarray(y, dtype=np.int32)))
        .batch(batch_size)
        .map(load, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )
