"""The value every loader returns. No TensorFlow here: this runs on the device."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Dataset:
    """A labelled image dataset as raw pixels.

    Images are uint8 NHWC (grey images have C=1); labels are int64. Normalisation
    is the model's business (see dnncomp.preprocess), not the loader's.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]
    meta: dict[str, Any] = field(default_factory=dict)  # source path, counts, image size, resize method...

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])  # type: ignore[return-value]
