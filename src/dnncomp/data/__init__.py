"""Dataset loaders: real published formats in, uint8 NHWC arrays out. No TensorFlow.

::

    from dnncomp.data import load_dataset, DATASETS
    ds = load_dataset("gtsrb", data_dir=None, image_size=(30, 30), skip_bad=False, download=True)

``name`` is "mnist", "cifar10", "gtsrb" or "folder:<path>"; ``image_size`` is
(height, width), applied with PIL (GTSRB's study model wants (30, 30)). Files are
looked for in ``data_dir``, then ``$DNNCOMP_DATA_DIR``, then the per-user cache,
and downloaded into the cache (with checksum verification) when none has them.
"""

from .base import Dataset
from .registry import DATASETS, REGISTRY, folder_root, get_spec, load_dataset, locate, normalize_name
from .sources import DatasetNotFound, cache_dir
from .verify import Check, verify_dataset

__all__ = [
    "DATASETS",
    "REGISTRY",
    "Check",
    "Dataset",
    "DatasetNotFound",
    "cache_dir",
    "folder_root",
    "get_spec",
    "load_dataset",
    "locate",
    "normalize_name",
    "verify_dataset",
]
