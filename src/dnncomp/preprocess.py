"""Turn uint8 images into what a model takes. No TensorFlow: runs on the device.

The loaders return raw uint8 NHWC pixels. What a model takes is its *contract*,
read from the model and never assumed from dnncomp's own conventions:

- :class:`InputLayout`: where height, width and channels sit in the input tensor
  (``HW`` grey, ``HWC``, channel-first ``CHW``, or a flat vector such as an MLP's
  784), read from the input shape; images are resized with Pillow and converted
  between grey and colour (ITU-R 601-2 luma, as Pillow's ``convert("L")``).
- :class:`Preprocessing`: the real value a pixel becomes, ``((lo + p / 255 * (hi - lo)) - mean[c]) / std[c]``
  for an input range ``lo..hi`` (``0..1`` for dnncomp's and the study's models, ``-1..1``
  for MobileNet-style ones, ``0..255`` for raw pixels, e.g. a model with its own
  ``Rescaling`` layer) and optional per-channel mean/std. It travels with every
  ``.tflite`` dnncomp writes, in a sidecar file (:func:`write_sidecar`), so the
  device evaluates exactly as the workstation did.

A LiteRT model with an int8/uint8 input then gets that real value quantized with
the input tensor's own scale and zero point (:func:`quantize_input`).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .errors import ModelError

PIXEL_SCALE = 1.0 / 255.0

# Named input ranges: the real value of pixel 0 and of pixel 255.
INPUT_RANGES: dict[str, tuple[float, float]] = {"0..1": (0.0, 1.0), "-1..1": (-1.0, 1.0), "0..255": (0.0, 255.0)}
SIDECAR_SUFFIX = ".preprocessing.json"
SIDECAR_SCHEMA = "dnncomp.preprocessing/1"


# ---- pixels -> real values ------------------------------------------------------------


@dataclass(frozen=True)
class Preprocessing:
    """How a uint8 pixel ``p`` of channel ``c`` becomes the model's real-valued input.

    ``value = ((lo + p / 255 * (hi - lo)) - mean[c]) / std[c]`` with ``input_range = (lo, hi)``.
    ``mean``/``std`` are per channel (one value applies to every channel); empty means 0 and 1.
    ``source`` says where the mapping came from (a flag, a sidecar, the model's metadata, a layer
    inside the model, or an assumption), so output can say what was assumed.
    """

    input_range: tuple[float, float] = (0.0, 1.0)
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    source: str = "default"
    assumed: bool = False  # True when nothing (flag, sidecar, metadata, model) said so: print it

    def __post_init__(self):
        lo, hi = self.input_range
        if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
            raise ModelError(f"input range {lo}..{hi}: expected LO..HI with LO < HI")
        if any(s == 0 or not math.isfinite(s) for s in self.std):
            raise ModelError(f"std {self.std}: every value must be finite and non-zero")
        if any(not math.isfinite(m) for m in self.mean):
            raise ModelError(f"mean {self.mean}: every value must be finite")

    @property
    def is_identity_unit(self) -> bool:
        """True for dnncomp's own convention, ``pixel / 255`` with no mean/std."""
        return self.input_range == (0.0, 1.0) and not self.mean and not self.std

    def describe(self) -> str:
        """``"0..1"``, ``"-1..1"``, ``"0..255, mean (0.485, 0.456, 0.406), std (...)"``."""
        lo, hi = self.input_range
        text = next((name for name, r in INPUT_RANGES.items() if r == (lo, hi)), f"{lo:g}..{hi:g}")
        if self.mean:
            text += f", mean ({', '.join(f'{m:g}' for m in self.mean)})"
        if self.std:
            text += f", std ({', '.join(f'{s:g}' for s in self.std)})"
        return text

    def apply(self, x_uint8: np.ndarray) -> np.ndarray:
        """uint8 channel-last images (..., C) -> float32 real values, channel-last."""
        lo, hi = self.input_range
        x = x_uint8.astype(np.float32) * np.float32((hi - lo) / 255.0)
        if lo:
            x += np.float32(lo)
        channels = x.shape[-1] if x.ndim >= 1 else 1
        if self.mean:
            x -= _per_channel(self.mean, channels, "mean")
        if self.std:
            x /= _per_channel(self.std, channels, "std")
        return x

    def to_dict(self) -> dict[str, Any]:
        return {
            "input_range": list(self.input_range),
            "mean": list(self.mean) or None,
            "std": list(self.std) or None,
            "source": self.source,
            "assumed": self.assumed,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str | None = None) -> Preprocessing:
        try:
            lo, hi = (float(v) for v in data["input_range"])
            return cls(
                input_range=(lo, hi),
                mean=tuple(float(v) for v in (data.get("mean") or ())),
                std=tuple(float(v) for v in (data.get("std") or ())),
                source=source or str(data.get("source", "record")),
                assumed=bool(data.get("assumed", False)) if source is None else False,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"preprocessing record {data!r} is malformed ({exc})") from None

    def with_source(self, source: str, assumed: bool = False) -> Preprocessing:
        return Preprocessing(self.input_range, self.mean, self.std, source, assumed)


def _per_channel(values: Sequence[float], channels: int, what: str) -> np.ndarray:
    if len(values) == 1:
        return np.float32(values[0])
    if len(values) != channels:
        raise ModelError(f"{what} has {len(values)} values but the input has {channels} channel(s)")
    return np.asarray(values, dtype=np.float32)


def parse_input_range(text: str) -> tuple[float, float]:
    """``"0..1"``, ``"-1..1"``, ``"0..255"`` or any ``LO..HI`` -> (lo, hi); ModelError otherwise."""
    text = str(text).strip()
    if text in INPUT_RANGES:
        return INPUT_RANGES[text]
    lo, sep, hi = text.partition("..")
    try:
        if not sep:
            raise ValueError(text)
        return float(lo), float(hi)
    except ValueError:
        raise ModelError(f"--input-range {text!r}: expected LO..HI such as 0..1, -1..1 or 0..255") from None


def parse_floats(text: str | None, what: str) -> tuple[float, ...]:
    """``"0.485,0.456,0.406"`` (or one value) -> a tuple of floats; empty for None."""
    if text is None or not str(text).strip():
        return ()
    try:
        values = tuple(float(v) for v in str(text).split(",") if v.strip())
    except ValueError:
        raise ModelError(f"{what} {text!r}: expected comma-separated numbers, one per channel or one for all") from None
    if not values:
        raise ModelError(f"{what} {text!r}: expected at least one number")
    return values


def preprocessing_from_options(input_range: str | None, mean: str | None, std: str | None) -> Preprocessing | None:
    """The CLI's ``--input-range/--mean/--std`` as a Preprocessing, or None when none was given."""
    if input_range is None and mean is None and std is None:
        return None
    return Preprocessing(
        input_range=parse_input_range(input_range) if input_range is not None else (0.0, 1.0),
        mean=parse_floats(mean, "--mean"),
        std=parse_floats(std, "--std"),
        source="command line",
    )


# ---- the sidecar next to a .tflite ----------------------------------------------------


def sidecar_path(model_path: str | os.PathLike) -> Path:
    """``dir/qat.tflite`` -> ``dir/qat.preprocessing.json``."""
    path = Path(model_path)
    return path.with_name(path.stem + SIDECAR_SUFFIX)


def sidecar_document(preprocessing: Preprocessing, **extra: Any) -> dict[str, Any]:
    """The JSON a sidecar holds: the mapping, plus ``extra`` facts (layout, class names, model)."""
    return {"schema": SIDECAR_SCHEMA, "preprocessing": preprocessing.to_dict(), **extra}


def write_sidecar(model_path: str | os.PathLike, preprocessing: Preprocessing, **extra: Any) -> Path:
    """Write the preprocessing sidecar of ``model_path`` atomically; returns its path."""
    from .fileio import atomic_write_json

    path = sidecar_path(model_path)
    atomic_write_json(path, sidecar_document(preprocessing, **extra))
    return path


def read_sidecar(model_path: str | os.PathLike) -> Preprocessing | None:
    """The Preprocessing stored beside ``model_path``, or None when there is no sidecar.

    Raises ModelError naming the file when a sidecar exists but cannot be read.
    """
    path = sidecar_path(model_path)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or not isinstance(data.get("preprocessing"), dict):
            raise ValueError("no 'preprocessing' object")
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: unreadable preprocessing sidecar ({exc}); fix or delete it") from None
    return Preprocessing.from_dict(data["preprocessing"], source=f"sidecar {path.name}")


# ---- where H, W and C are -------------------------------------------------------------


@dataclass(frozen=True)
class InputLayout:
    """Where an image's height, width and channels sit in a model input (batch axis excluded).

    ``kind``: ``"HW"`` (grey, no channel axis, e.g. the study's MNIST ``(28, 28)``),
    ``"HWC"``, ``"CHW"`` (channel-first) or ``"flat"`` (a vector of H*W*C values, row-major HWC).
    """

    kind: str
    height: int
    width: int
    channels: int
    shape: tuple[int, ...] = field(default=())  # the input shape without batch

    @property
    def image_size(self) -> tuple[int, int]:
        return self.height, self.width

    def describe(self) -> str:
        return {"HW": "HxW (grey, no channel axis)", "HWC": "NHWC", "CHW": "NCHW (channel-first)", "flat": "flat vector (HxWxC)"}[
            self.kind
        ] + f", {self.height}x{self.width}x{self.channels}"

    def arrange(self, x_uint8: np.ndarray, what: str = "model") -> np.ndarray:
        """uint8 NHWC (or NHW) images -> uint8 in this layout: resized, grey/colour converted, transposed or flattened."""
        x = _as_nhwc(x_uint8, what)
        x = convert_channels(x, self.channels, what)
        x = resize_images(x, (self.height, self.width))
        return self.from_nhwc(x)

    def from_nhwc(self, x: np.ndarray) -> np.ndarray:
        """Any-dtype NHWC array already at this size and channel count -> this layout."""
        if self.kind == "HW":
            return x[..., 0]
        if self.kind == "CHW":
            return np.ascontiguousarray(np.transpose(x, (0, 3, 1, 2)))
        if self.kind == "flat":
            return x.reshape(len(x), -1)
        return x

    def channel_last(self, x: np.ndarray) -> np.ndarray:
        """The inverse of :meth:`from_nhwc` for arrays in this layout -> NHWC."""
        if self.kind == "HW":
            return x[..., None]
        if self.kind == "CHW":
            return np.transpose(x, (0, 2, 3, 1))
        if self.kind == "flat":
            return x.reshape(len(x), self.height, self.width, self.channels)
        return x


def input_layout(shape: Sequence[int], what: str = "model", image_shape: Sequence[int] | None = None) -> InputLayout:
    """The layout of an input ``shape`` (batch excluded).

    Rank 2 is ``HW``; rank 3 is ``HWC`` when the last axis is 1, 3 or 4, else ``CHW`` when the
    first is; rank 1 is a flat vector of H*W*C values, whose image shape comes from
    ``image_shape`` (the dataset's (H, W, C)) when the sizes agree, else a square grey or RGB
    image. Raises ModelError for anything else, naming the shape.
    """
    shape = tuple(int(d) for d in shape)
    if len(shape) == 2 and min(shape) > 0:
        return InputLayout("HW", shape[0], shape[1], 1, shape)
    if len(shape) == 3 and min(shape) > 0:
        if shape[2] in (1, 3, 4):
            return InputLayout("HWC", shape[0], shape[1], shape[2], shape)
        if shape[0] in (1, 3, 4):
            return InputLayout("CHW", shape[1], shape[2], shape[0], shape)
        raise ModelError(f"{what}: input shape {shape} has no channel axis of 1, 3 or 4 at either end")
    if len(shape) == 1 and shape[0] > 0:
        n = shape[0]
        if image_shape is not None and int(np.prod(image_shape)) == n:
            h, w, c = (tuple(image_shape) + (1,))[:3] if len(image_shape) == 2 else tuple(image_shape)
            return InputLayout("flat", int(h), int(w), int(c), shape)
        for channels in (1, 3):
            side = math.isqrt(n // channels)
            if side * side * channels == n:
                return InputLayout("flat", side, side, channels, shape)
        raise ModelError(f"{what}: flat input of {n} values is not a square grey or RGB image")
    raise ModelError(f"{what}: input shape {shape} is not an image (expected HxW, HxWxC, CxHxW or a flat vector)")


def _as_nhwc(x: np.ndarray, what: str) -> np.ndarray:
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.dtype != np.uint8:
        raise ModelError(f"{what}: expected uint8 NHWC images, got {x.dtype} {x.shape}")
    return x


def convert_channels(x: np.ndarray, channels: int, what: str = "model") -> np.ndarray:
    """uint8 NHWC images with 1, 3 or 4 channels -> ``channels`` channels.

    Colour to grey is ITU-R 601-2 luma (``L = R*299/1000 + G*587/1000 + B*114/1000``, Pillow's
    ``convert("L")``); grey to colour repeats the channel; an alpha channel is dropped.
    """
    have = x.shape[-1]
    if have == channels:
        return x
    if have == 4:
        x, have = x[..., :3], 3
        if channels == 3:
            return np.ascontiguousarray(x)
    if have == 3 and channels == 1:
        luma = (x[..., 0].astype(np.uint32) * 299 + x[..., 1].astype(np.uint32) * 587 + x[..., 2].astype(np.uint32) * 114 + 500) // 1000
        return luma.astype(np.uint8)[..., None]
    if have == 1 and channels in (3, 4):
        return np.repeat(x, channels, axis=-1)
    raise ModelError(f"{what}: cannot convert {have}-channel images to {channels} channels")


def channel_conversion_note(have: int, want: int) -> str | None:
    """A one-line note for the user when images are converted, else None."""
    if have == want or (have == 4 and want == 3):
        return None
    if want == 1:
        return f"the model takes 1 channel: {have}-channel images are converted to grey (ITU-R 601-2 luma)"
    return f"the model takes {want} channels: grey images are repeated into {want} channels"


# ---- resizing and the historic helpers ------------------------------------------------


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
    """Resize, convert channels and arrange uint8 NHWC images for a model input shape (without batch).

    Any layout :func:`input_layout` knows: ``(H, W)`` (the study's MNIST model), ``(H, W, C)``,
    ``(C, H, W)``, or a flat vector.
    """
    image_shape = tuple(x.shape[1:]) if x.ndim == 4 else None
    return input_layout(input_shape, what, image_shape).arrange(x, what)


def to_float_input(x: np.ndarray, preprocessing: Preprocessing | None = None) -> np.ndarray:
    """uint8 pixels -> float32 real values: ``pixel / 255`` (the study's), or ``preprocessing``.

    ``preprocessing`` with per-channel mean/std needs channel-last (or HW/flat single-channel)
    input; :class:`InputLayout` users apply it before :meth:`InputLayout.from_nhwc`.
    """
    if preprocessing is None or preprocessing.is_identity_unit:
        return x.astype(np.float32) * np.float32(PIXEL_SCALE)
    return preprocessing.apply(x)


def quantize_input(x_float: np.ndarray, scale: float, zero_point: int, dtype: np.dtype) -> np.ndarray:
    """Quantize float model input with a tensor's own (scale, zero_point)."""
    info = np.iinfo(dtype)
    q = np.round(x_float / scale) + zero_point
    return np.clip(q, info.min, info.max).astype(dtype)


def quantized_real_range(scale: float, zero_point: int, dtype: np.dtype) -> tuple[float, float]:
    """The real values an integer tensor with (scale, zero_point) can represent."""
    info = np.iinfo(dtype)
    return float(scale * (info.min - zero_point)), float(scale * (info.max - zero_point))


def model_input(
    x_uint8: np.ndarray, layout: InputLayout, preprocessing: Preprocessing | None = None, what: str = "model"
) -> np.ndarray:
    """uint8 NHWC images -> float32 model input in ``layout``: resized, channels converted, mapped by ``preprocessing``."""
    x = _as_nhwc(x_uint8, what)
    x = resize_images(convert_channels(x, layout.channels, what), layout.image_size)
    return layout.from_nhwc(to_float_input(x, preprocessing))
