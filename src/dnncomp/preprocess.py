"""Turn uint8 NHWC images into what a model takes. No TensorFlow: runs on the device.

The loaders return raw uint8 pixels; normalisation belongs to the model. All of
dnncomp's models (and the study's) take float32 ``pixel / 255``. A LiteRT model
with an int8/uint8 input gets that same float value quantized with the input
tensor's own scale and zero point, so foreign int8-input models work as they are.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from .errors import ModelError

PIXEL_SCALE = 1.0 / 255.0


def resize_images(x: np.ndarray, size: tuple[int, int], resample: int | None = None) -> np.ndarray:
    """Resize uint8 NHWC images to ``size`` = (height, width) with Pillow, one image at a time.

    ``resample=None`` uses Pillow's default filter for ``Image.resize`` (what the
    study used for GTSRB).
    """
    height, width = size
    if x.shape[1:3] == (height, width):
        return x
    out = np.empty((x.shape[0], height, width, x.shape[3]), dtype=np.uint8)
    for i, img in enumerate(x):
        pil = Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img)
        resized = pil.resize((width, height)) if resample is None else pil.resize((width, height), resample)
        arr = np.asarray(resized)
        out[i] = arr[..., None] if arr.ndim == 2 else arr
    return out


def fit_to_input_shape(x: np.ndarray, input_shape: tuple[int, ...], what: str = "model") -> np.ndarray:
    """Resize and reshape uint8 NHWC images to a model input shape (without batch).

    ``input_shape`` is (H, W, C) or (H, W) for single-channel models such as the
    study's MNIST model, whose input is (28, 28) followed by a Reshape layer.
    """
    if len(input_shape) == 2:
        height, width, channels = input_shape[0], input_shape[1], 1
    elif len(input_shape) == 3:
        height, width, channels = input_shape
    else:
        raise ModelError(f"{what}: input shape {tuple(input_shape)} is not an image (expected HxW or HxWxC)")
    if x.shape[3] != channels:
        raise ModelError(
            f"{what}: takes {channels}-channel images but the dataset has {x.shape[3]} channels; "
            "choose the dataset the model was trained on"
        )
    x = resize_images(x, (int(height), int(width)))
    if len(input_shape) == 2:
        x = x[..., 0]
    return x


def to_float_input(x: np.ndarray) -> np.ndarray:
    """uint8 pixels -> float32 in [0, 1], the study's ``/255``."""
    return x.astype(np.float32) * np.float32(PIXEL_SCALE)


def quantize_input(x_float: np.ndarray, scale: float, zero_point: int, dtype: np.dtype) -> np.ndarray:
    """Quantize float model input with a tensor's own (scale, zero_point)."""
    info = np.iinfo(dtype)
    q = np.round(x_float / scale) + zero_point
    return np.clip(q, info.min, info.max).astype(dtype)
