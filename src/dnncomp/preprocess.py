"""Turn uint8 images into what a model takes. No TensorFlow: runs on the device.

The loaders return raw uint8 NHWC pixels. What a model takes is its *contract*,
read from the model and never assumed from dnncomp's own conventions:

- :class:`InputLayout`: where height, width and channels sit in the input tensor
  (``HW`` grey, ``HWC``, channel-first ``CHW``, or a flat vector such as an MLP's
  784), read from the input shape; images are converted between grey and colour
  (ITU-R 601-2 luma, as Pillow's ``convert("L")``) and brought to the input's size
  as :class:`Fit` says: resized with Pillow, or padded/cropped around the centre
  (28x28 digits on a LeNet's 32x32 input are padded with the background).
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
    fit: Fit | None = None  # how images of another size reach the input's; None: resized (Pillow)

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
            "fit": self.fit.to_dict() if self.fit is not None else None,
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
                fit=Fit.from_dict(data["fit"], source) if isinstance(data.get("fit"), dict) else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"preprocessing record {data!r} is malformed ({exc})") from None

    def with_source(self, source: str, assumed: bool = False) -> Preprocessing:
        return Preprocessing(self.input_range, self.mean, self.std, source, assumed, self.fit)

    def with_fit(self, fit: Fit | None) -> Preprocessing:
        """The same mapping with ``fit`` (what a sidecar stores so the device fits images alike)."""
        if fit == self.fit:
            return self
        return Preprocessing(self.input_range, self.mean, self.std, self.source, self.assumed, fit)


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


def preprocessing_from_options(
    input_range: str | None, mean: str | None, std: str | None, fit: str | None = None
) -> Preprocessing | None:
    """The CLI's ``--input-range/--mean/--std`` (and ``--fit``) as a Preprocessing, or None when none was given.

    ``--fit`` alone gives a Preprocessing with ``assumed=True`` and source ``"--fit only"``: it
    carries the fit, and the range still comes from the model (:func:`dnncomp.contract.resolve_preprocessing`).
    """
    chosen = Fit(fit, (), "--fit") if fit is not None else None
    if input_range is None and mean is None and std is None:
        return None if chosen is None else Preprocessing(source=FIT_ONLY, assumed=True, fit=chosen)
    return Preprocessing(
        input_range=parse_input_range(input_range) if input_range is not None else (0.0, 1.0),
        mean=parse_floats(mean, "--mean"),
        std=parse_floats(std, "--std"),
        source="command line",
        fit=chosen,
    )


FIT_ONLY = "--fit only"  # the source of a Preprocessing that carries --fit and no range: the model's range applies


def range_given(preprocessing: Preprocessing | None) -> bool:
    """True when ``preprocessing`` says a pixel range (not only ``--fit``)."""
    return preprocessing is not None and preprocessing.source != FIT_ONLY


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

    def arrange(self, x_uint8: np.ndarray, what: str = "model", fit: Fit | None = None) -> np.ndarray:
        """uint8 NHWC (or NHW) images -> uint8 in this layout: grey/colour converted, fitted to its size
        (``fit``; None: resized), transposed or flattened."""
        x = _as_nhwc(x_uint8, what)
        x = convert_channels(x, self.channels, what)
        x = (fit or Fit()).apply(x, (self.height, self.width))
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
        luma = (
            x[..., 0].astype(np.uint32) * 299 + x[..., 1].astype(np.uint32) * 587 + x[..., 2].astype(np.uint32) * 114 + 500
        ) // 1000
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


# ---- fitting images of another size: resize, pad or crop ------------------------------

FIT_MODES = ("resize", "pad", "crop")


@dataclass(frozen=True)
class Fit:
    """How images whose size differs from the model's input are brought to it.

    ``mode``: ``"resize"`` (Pillow's resize, the aspect ratio is not kept), ``"pad"`` (the image
    is centred on a canvas of the input's size filled with ``fill``, the background; a side
    longer than the input's is cropped around the centre) or ``"crop"`` (the centre of the image
    is cut out; a side shorter than the input's is padded with ``fill``). Pad and crop keep the
    scale of the image: what a LeNet trained on 28x28 digits padded to 32x32 needs.
    ``fill`` is one uint8 value per channel (one value: every channel). ``source`` says who
    chose (``--fit``, a sidecar, or dnncomp, and why).
    """

    mode: str = "resize"
    fill: tuple[int, ...] = ()
    source: str = "default"

    def __post_init__(self):
        if self.mode not in FIT_MODES:
            raise ModelError(f"--fit {self.mode!r}: expected one of {', '.join(FIT_MODES)}")
        if any(not 0 <= int(v) <= 255 for v in self.fill):
            raise ModelError(f"fit fill {self.fill}: expected pixel values 0..255")

    def describe(self) -> str:
        """``"pad (background 0)"``, ``"resize"``."""
        if self.mode == "resize":
            return "resize"
        return f"{self.mode} (background {', '.join(str(int(v)) for v in self.fill) or '0'})"

    def apply(self, x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """uint8 NHWC images -> (N, size[0], size[1], C) uint8, as ``mode`` says."""
        if tuple(x.shape[1:3]) == tuple(size):
            return x
        if self.mode == "resize":
            return resize_images(x, size)
        return _centre_on_canvas(x, size, self.fill)

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "fill": [int(v) for v in self.fill] or None, "source": self.source}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str | None = None) -> Fit:
        try:
            return cls(
                str(data.get("mode", "resize")),
                tuple(int(v) for v in (data.get("fill") or ())),
                source or str(data.get("source", "record")),
            )
        except (TypeError, ValueError) as exc:
            raise ModelError(f"fit record {data!r} is malformed ({exc})") from None


def _centre_on_canvas(x: np.ndarray, size: tuple[int, int], fill: Sequence[int]) -> np.ndarray:
    """Centre each image on a (height, width) canvas of ``fill``: shorter sides padded, longer ones cropped.

    An odd difference puts the extra row/column after the image (bottom/right), as
    ``np.pad(x, 2)`` for 28 -> 32 and Keras' ``ZeroPadding2D`` do for even ones.
    """
    height, width = size
    n, h, w, c = x.shape
    canvas = np.empty((n, height, width, c), dtype=np.uint8)
    canvas[...] = np.asarray(_per_channel_fill(fill, c), dtype=np.uint8)
    # Source window (cropped when longer) and target offset (padded when shorter), per axis.
    top, src_top = max(0, (height - h) // 2), max(0, (h - height) // 2)
    left, src_left = max(0, (width - w) // 2), max(0, (w - width) // 2)
    rows, cols = min(h, height), min(w, width)
    canvas[:, top : top + rows, left : left + cols] = x[:, src_top : src_top + rows, src_left : src_left + cols]
    return canvas


def _per_channel_fill(fill: Sequence[int], channels: int) -> list[int]:
    values = [int(v) for v in fill] or [0]
    if len(values) == 1:
        return values * channels
    if len(values) != channels:
        return [round(sum(values) / len(values))] * channels  # grey/colour converted after the fill was measured
    return values


def background_fill(x: np.ndarray, max_images: int = 1000) -> tuple[int, ...]:
    """The background of uint8 NHWC images: per channel, the median of their outermost pixel ring.

    MNIST's is 0 (black); a folder of dark digits on white paper gives 255. Up to ``max_images``
    evenly spaced images are looked at.
    """
    if x.ndim == 3:
        x = x[..., None]
    if not len(x):
        return (0,) * x.shape[-1]
    sample = x[:: max(1, len(x) // max_images)][:max_images]
    ring = np.concatenate(
        [
            sample[:, 0].reshape(-1, x.shape[-1]),
            sample[:, -1].reshape(-1, x.shape[-1]),
            sample[:, :, 0].reshape(-1, x.shape[-1]),
            sample[:, :, -1].reshape(-1, x.shape[-1]),
        ]
    )
    return tuple(int(v) for v in np.median(ring, axis=0).round())


def choose_fit(
    images: np.ndarray, size: tuple[int, int], requested: str | Fit | None = None, what: str = "the data"
) -> tuple[Fit | None, str | None]:
    """How ``images`` (uint8 NHWC, a sample of the data) reach a model input of ``size`` = (height, width).

    Returns ``(fit, note)``: ``(None, None)`` when the sizes agree. ``requested`` is ``--fit``'s
    mode or a :class:`Fit` read from a sidecar (kept as it is, its background too). Without
    one: images smaller than the input on both sides with one channel (digits, as MNIST's
    28x28 on a LeNet's 32x32) are padded with their background, the LeNet convention; anything
    else is resized. ``note`` says which was chosen and why, for the user.
    """
    have = tuple(int(d) for d in images.shape[1:3])
    size = (int(size[0]), int(size[1]))
    if have == size:
        return None, None
    sizes = f"{what}'s {have[0]}x{have[1]} images on the model's {size[0]}x{size[1]} input"
    if isinstance(requested, Fit):
        fit = requested
        if fit.mode != "resize" and not fit.fill:
            fit = Fit(fit.mode, background_fill(images), fit.source)
        return fit, f"{sizes}: {fit.describe()} ({fit.source})"
    if requested is not None:
        fit = Fit(requested, background_fill(images) if requested != "resize" else (), "--fit")
        return fit, f"{sizes}: {fit.describe()} (--fit)"
    channels = images.shape[-1] if images.ndim == 4 else 1
    if have[0] <= size[0] and have[1] <= size[1] and channels == 1:
        fit = Fit("pad", background_fill(images), "chosen: grey images smaller than the input are padded, the LeNet convention")
        return fit, (
            f"{sizes}: padded around the centre with the background "
            f"{', '.join(map(str, fit.fill))} (the LeNet convention for smaller grey digits); "
            "--fit resize stretches them instead"
        )
    fit = Fit("resize", (), "chosen: the default for images that are larger or in colour")
    return fit, f"{sizes}: resized (Pillow); --fit pad or --fit crop keeps their scale instead"


def native_image_size(dataset: str) -> tuple[int, int] | None:
    """The size a published dataset's images have (MNIST 28x28, CIFAR-10 32x32), None when they vary (GTSRB)
    or the dataset is a folder (read at its own size)."""
    from .data.registry import REGISTRY, folder_root, normalize_name

    if folder_root(dataset) is not None or str(dataset).startswith("npz:"):
        return None
    spec = REGISTRY.get(normalize_name(dataset))
    shape = getattr(getattr(spec, "expected", None), "image_shape", None)
    return (int(shape[0]), int(shape[1])) if shape else None


def load_fitted(dataset: str, size: tuple[int, int], requested: str | Fit | None = None, **load_options):
    """Load ``dataset`` (:func:`dnncomp.data.load_dataset`) with its images brought to ``size`` = (height, width).

    ``requested`` as for :func:`choose_fit`. A resize of a dataset whose images vary in size
    (GTSRB) is done by the loader from each original, as before; otherwise the images are read
    at their own size and fitted here. Returns ``(data, fit, note)``: ``fit`` None when nothing
    was fitted; ``data.meta["fit"]`` records it. Raises what the loader raises.
    """
    from .data import load_dataset

    mode = requested.mode if isinstance(requested, Fit) else requested
    native = native_image_size(dataset)
    loader_resizes = native is None and not _reads_own_size(dataset)  # GTSRB: from each original
    if mode is None and (loader_resizes or native == tuple(size)):
        return load_dataset(dataset, image_size=tuple(size), **load_options), None, None
    if mode == "resize":
        data = load_dataset(dataset, image_size=tuple(size), **load_options)
        fit = requested if isinstance(requested, Fit) else Fit("resize", (), "--fit")
        data.meta["fit"] = fit.to_dict()
        note = None
        if native is not None and tuple(native) != tuple(size):
            note = (
                f"{_short_name(dataset)}'s {native[0]}x{native[1]} images on the model's {size[0]}x{size[1]} input: "
                f"resized ({fit.source})"
            )
        return data, fit, note
    data = load_dataset(dataset, **load_options)
    sample = data.x_train if len(data.x_train) else data.x_test
    fit, note = choose_fit(sample, size, requested, what=_short_name(dataset))
    if fit is not None:
        data.meta["own_image_size"] = [int(d) for d in sample.shape[1:3]]
        data.x_train = fit.apply(data.x_train, size)
        data.x_test = fit.apply(data.x_test, size)
        data.meta["fit"] = fit.to_dict()
        data.meta["image_size"] = [int(size[0]), int(size[1])]
    return data, fit, note


def _reads_own_size(dataset: str) -> bool:
    from .data.registry import folder_root

    return folder_root(dataset) is not None or str(dataset).startswith("npz:")


def _short_name(dataset: str) -> str:
    text = str(dataset)
    return Path(text.split(":", 1)[1]).name if text.startswith(("folder:", "npz:")) else text


def fit_to_input_shape(x: np.ndarray, input_shape: tuple[int, ...], what: str = "model", fit: Fit | None = None) -> np.ndarray:
    """Resize (or pad/crop as ``fit`` says), convert channels and arrange uint8 NHWC images for a model
    input shape (without batch).

    Any layout :func:`input_layout` knows: ``(H, W)`` (the study's MNIST model), ``(H, W, C)``,
    ``(C, H, W)``, or a flat vector.
    """
    image_shape = tuple(x.shape[1:]) if x.ndim == 4 else None
    return input_layout(input_shape, what, image_shape).arrange(x, what, fit)


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
    """uint8 NHWC images -> float32 model input in ``layout``: channels converted, fitted to its size
    (``preprocessing.fit``; resized when None), mapped by ``preprocessing``."""
    x = _as_nhwc(x_uint8, what)
    fit = preprocessing.fit if preprocessing is not None and preprocessing.fit is not None else Fit()
    x = fit.apply(convert_channels(x, layout.channels, what), layout.image_size)
    return layout.from_nhwc(to_float_input(x, preprocessing))
