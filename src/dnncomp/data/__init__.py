"""Dataset loaders: real published formats in, uint8 NHWC arrays out. No TensorFlow.

Contract (implemented by the modules of this package)::

    load_dataset(name, data_dir=None, image_size=None, skip_bad=False, download=True) -> Dataset

``name`` is "mnist", "cifar10", "gtsrb" or "folder:<path>"; ``image_size`` is
(height, width), applied with PIL (GTSRB's study model wants (30, 30)).
"""

from .base import Dataset

__all__ = ["Dataset"]
