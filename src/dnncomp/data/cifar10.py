"""CIFAR-10 from the python-pickle layout: ``cifar-10-batches-py/`` or the
``cifar-10-python.tar.gz`` archive (any tar compression, read without extracting).

Each batch is a pickled dict with ``data``, uint8 (N, 3072) holding the R, G, B
planes of 32x32 images, and ``labels``. Pickles are read with the restricted
unpickler, never ``pickle.load``.
"""

from __future__ import annotations

import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..errors import DataError
from .base import Dataset
from .safe_pickle import safe_load
from .sources import Resource
from .spec import DatasetSpec, Expected

DIRNAME = "cifar-10-batches-py"
ARCHIVE = "cifar-10-python.tar.gz"
ARCHIVE_NAMES = (ARCHIVE, "cifar-10-python.tgz", "cifar-10-python.tar", "cifar-10-python.tar.xz", "cifar-10-python.tar.bz2")
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCHES = ("test_batch",)
META = "batches.meta"
CLASS_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

RESOURCE = Resource(
    ARCHIVE,
    "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    "md5",
    "c58f30108f718f92721af3b95e74349a",  # as listed by torchvision
)


def find(location: Path) -> Path | None:
    if location.is_file():
        return location if ".tar" in location.name or location.suffix == ".tgz" else None
    for candidate in (location, location / DIRNAME):
        if (candidate / "data_batch_1").is_file() or (candidate / "test_batch").is_file():
            return candidate
    for name in ARCHIVE_NAMES:
        if (location / name).is_file():
            return location / name
    return None


def _from_dir(directory: Path, wanted: tuple[str, ...]) -> Iterator[tuple[str, str, bytes]]:
    for name in wanted:
        path = directory / name
        if not path.is_file():
            if name == META:
                continue
            raise DataError(f"{directory}: {name} is missing; expected {', '.join(n for n in wanted if n != META)}")
        yield name, str(path), path.read_bytes()


def _from_archive(archive: Path, wanted: tuple[str, ...]) -> Iterator[tuple[str, str, bytes]]:
    found = set()
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                name = member.name.rsplit("/", 1)[-1]
                if name in wanted and member.isfile() and name not in found:
                    found.add(name)
                    yield name, f"{archive}:{member.name}", tar.extractfile(member).read()
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise DataError(f"{archive}: not a readable tar archive ({exc})") from None
    missing = [n for n in wanted if n not in found and n != META]
    if missing:
        raise DataError(f"{archive}: archive has no {DIRNAME}/{missing[0]}; expected the CIFAR-10 python version")


def _batch(what: str, raw: bytes) -> tuple[np.ndarray, np.ndarray]:
    obj = safe_load(raw, what)
    if not isinstance(obj, dict):
        raise DataError(f"{what}: holds a {type(obj).__name__}, expected a dict with data and labels")
    batch = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}
    data, labels = batch.get("data"), batch.get("labels")
    if data is None or labels is None:
        raise DataError(f"{what}: has keys {sorted(batch)}; expected data and labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        shape = getattr(data, "shape", None)
        raise DataError(f"{what}: data is {getattr(data, 'dtype', type(data).__name__)} {shape}; expected uint8 (N, 3072)")
    try:
        y = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError):
        raise DataError(f"{what}: labels are not integers") from None
    if y.shape != (data.shape[0],):
        raise DataError(f"{what}: {y.size} labels for {data.shape[0]} images")
    if y.size and (y.min() < 0 or y.max() > 9):
        raise DataError(f"{what}: labels range {y.min()}..{y.max()}; expected 0..9")
    return data, y


def _class_names(what: str, raw: bytes | None) -> list[str]:
    if raw is None:
        return list(CLASS_NAMES)
    meta = safe_load(raw, what)
    names = meta.get(b"label_names", meta.get("label_names")) if isinstance(meta, dict) else None
    if not isinstance(names, list) or len(names) != 10:
        raise DataError(f"{what}: no list of 10 label_names")
    return [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names]


def read(source: Path, image_size=None, skip_bad: bool = False, progress=None) -> Dataset:
    wanted = TRAIN_BATCHES + TEST_BATCHES + (META,)
    files = _from_dir(source, wanted) if source.is_dir() else _from_archive(source, wanted)
    batches, meta_raw, meta_what = {}, None, META
    for name, what, raw in files:
        if name == META:
            meta_raw, meta_what = raw, what
        else:
            batches[name] = _batch(what, raw)
    names = _class_names(meta_what, meta_raw)

    def stack(split: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
        data = np.concatenate([batches[b][0] for b in split])
        x = np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        return x, np.concatenate([batches[b][1] for b in split])

    x_train, y_train = stack(TRAIN_BATCHES)
    x_test, y_test = stack(TEST_BATCHES)
    return Dataset(
        name="cifar10",
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        class_names=names,
        meta={"source": str(source), "format": "CIFAR-10 python batches" + (" (archive)" if source.is_file() else "")},
    )


SPEC = DatasetSpec(
    name="cifar10",
    title="CIFAR-10",
    provides=f"{DIRNAME}/ or {ARCHIVE}",
    find=find,
    read=read,
    resources=(RESOURCE,),
    expected=Expected(
        train=50000,
        test=10000,
        num_classes=10,
        channels=3,
        image_shape=(32, 32, 3),
        train_per_class=(5000,) * 10,
        test_per_class=(1000,) * 10,
    ),
)
