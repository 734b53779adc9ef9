"""The reference study's published numbers, as data, and how its variants map onto ours.

The study ("Deep Neural Network Compression for Embedded Systems") timed three
small CNNs on an NVIDIA Jetson Nano 2GB. Its numbers are kept here exactly as
published (SPEC.md) so that reports can put them beside ours; nothing here is
measured.

Its variants and ours are not one-to-one:

- the study's *baseline* is the Keras ``.h5`` file (optimizer state included)
  timed with ``model.predict`` on one image; our comparable record is
  ``baseline-keras``, measured the same way;
- our ``float`` is the plain float LiteRT model, which the study never timed;
- ``qat`` is its *quantized*, ``prune`` its *pruned*, ``cluster`` its *clustered*.

No TensorFlow, no numpy: this module is safe on the device.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .data.registry import normalize_name

STUDY_TITLE = "Deep Neural Network Compression for Embedded Systems"
STUDY_DEVICE = "NVIDIA Jetson Nano 2GB (4x Cortex-A57, 2 GB shared RAM)"
STUDY_TEST_IMAGES = 1000

# What each of the study's numbers means; reports quote these.
STUDY_METRIC_NOTES = {
    "accuracy_pct": f"top-1 accuracy on the first {STUDY_TEST_IMAGES} test images only (about ±1 point sampling error)",
    "latency_ms": (
        "mean wall-clock time of set-input + invoke, one image at a time, over the 1000 images, on the Jetson Nano; "
        "the baseline was timed through Keras model.predict on one image, which is mostly framework overhead"
    ),
    "size_mb": (
        "file size in MB (1e6 bytes), no gzip; the baseline .h5 carries the optimizer state, about three times the "
        "float weights; pruned and clustered files are as large as a float model"
    ),
}

# Canonical dataset keys (ours) and their printed names (the study's).
DATASET_LABELS = {"mnist": "MNIST", "cifar10": "CIFAR-10", "gtsrb": "GTSRB"}

# Our variant name -> the study's variant name. `float` has no counterpart.
STUDY_VARIANT_FOR = {
    "baseline-keras": "baseline",
    "qat": "quantized",
    "prune": "pruned",
    "cluster": "clustered",
}
OUR_VARIANT_FOR = {study: ours for ours, study in STUDY_VARIANT_FOR.items()}

# What the study's artifact was and how it was timed, per study variant.
STUDY_VARIANT_NOTES = {
    "baseline": "baseline_model.h5 (Keras, with optimizer state), timed with Keras model.predict",
    "quantized": "quantized_model.tflite: QAT 1 epoch, int8 weights and activations, float I/O; LiteRT",
    "pruned": "pruned_model.tflite: 50%->80% polynomial-decay sparsity, 1 epoch, stripped, float; LiteRT",
    "clustered": "clustered_model.tflite: 8 clusters, k-means++, 1 epoch, stripped, float; LiteRT",
}


@dataclass(frozen=True)
class StudyResult:
    """One row of the study's results table (Jetson Nano 2GB)."""

    dataset: str  # our key: mnist, cifar10, gtsrb
    variant: str  # the study's name: baseline, quantized, pruned, clustered
    accuracy_pct: float  # first 1000 test images
    latency_ms: float  # mean per image on the Jetson Nano; baseline: Keras predict
    size_mb: float  # file size, 1e6 bytes

    @property
    def our_variant(self) -> str:
        return OUR_VARIANT_FOR[self.variant]

    @property
    def runtime(self) -> str:
        return "keras" if self.variant == "baseline" else "litert"

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "our_variant": self.our_variant,
            "runtime": self.runtime,
            "device": STUDY_DEVICE,
            "test_images": STUDY_TEST_IMAGES,
        }


STUDY_RESULTS: tuple[StudyResult, ...] = (
    StudyResult("mnist", "baseline", 98.80, 159.77, 13.39),
    StudyResult("mnist", "quantized", 98.80, 1.43, 1.12),
    StudyResult("mnist", "pruned", 98.80, 2.51, 4.45),
    StudyResult("mnist", "clustered", 98.80, 2.52, 4.45),
    StudyResult("cifar10", "baseline", 79.40, 170.39, 15.07),
    StudyResult("cifar10", "quantized", 79.10, 4.12, 1.26),
    StudyResult("cifar10", "pruned", 79.10, 7.30, 5.01),
    StudyResult("cifar10", "clustered", 77.50, 7.26, 5.01),
    StudyResult("gtsrb", "baseline", 92.00, 174.72, 14.09),
    StudyResult("gtsrb", "quantized", 89.50, 2.65, 1.18),
    StudyResult("gtsrb", "pruned", 88.90, 5.34, 4.68),
    StudyResult("gtsrb", "clustered", 90.60, 4.85, 4.68),
)

STUDY_DATASETS = tuple(DATASET_LABELS)


def dataset_label(name: str) -> str:
    key = normalize_name(name)
    return DATASET_LABELS.get(key, str(name))


def study_variant_name(our_variant: str) -> str | None:
    """The study's name for one of our variants, or None (e.g. ``float``, which it never timed)."""
    return STUDY_VARIANT_FOR.get(our_variant)


def study_results(dataset: str | None = None) -> list[StudyResult]:
    """The study's rows, all of them or one dataset's, in the published order."""
    if dataset is None:
        return list(STUDY_RESULTS)
    key = normalize_name(dataset)
    return [row for row in STUDY_RESULTS if row.dataset == key]


def study_row(dataset: str, our_variant: str) -> StudyResult | None:
    study_variant = study_variant_name(our_variant)
    if study_variant is None:
        return None
    key = normalize_name(dataset)
    return next((row for row in STUDY_RESULTS if row.dataset == key and row.variant == study_variant), None)


def study_result(dataset: str, our_variant: str) -> dict[str, Any] | None:
    """The study's numbers for our variant as a dict (accuracy_pct, latency_ms, size_mb, ...), or None."""
    row = study_row(dataset, our_variant)
    return None if row is None else row.as_dict()
