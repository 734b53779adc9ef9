"""Small datasets in the real published layouts, built inside the tests."""

from __future__ import annotations

import csv
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image


def write_mnist(path: Path, n_train: int = 30, n_test: int = 10, **replace) -> Path:
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "y_train": (np.arange(n_train) % 10).astype(np.uint8),
        "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "y_test": (np.arange(n_test)[::-1] % 10).astype(np.uint8),
    }
    arrays.update(replace)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path


def cifar_batch(n: int, seed: int, protocol: int = 4, batch_label: str = "batch") -> bytes:
    """A CIFAR python batch as the prepared files hold it (protocol 4) or as numpy pickles it for Python 2 (2)."""
    rng = np.random.default_rng(seed)
    batch = {
        b"batch_label": batch_label.encode(),
        b"labels": [int(v) for v in rng.integers(0, 10, n)],
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
    }
    return pickle.dumps(batch, protocol=protocol)


CIFAR_NAMES = ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"]


def cifar_files(n: int = 4, protocol: int = 4) -> dict[str, bytes]:
    files = {name: cifar_batch(n, seed, protocol, name) for seed, name in enumerate(CIFAR_NAMES)}
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    files["batches.meta"] = pickle.dumps({b"label_names": names, b"num_vis": 3072}, protocol=protocol)
    return files


def write_cifar_dir(root: Path, n: int = 4, protocol: int = 4, **replace: bytes) -> Path:
    directory = root / "cifar-10-batches-py"
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in {**cifar_files(n, protocol), **replace}.items():
        (directory / name).write_bytes(data)
    return directory


def write_cifar_archive(path: Path, mode: str = "w:gz", n: int = 4, **replace: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, mode) as tar:
        for name, data in {**cifar_files(n), **replace}.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def image(seed: int, size=(32, 32), mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    return Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode)


def write_gtsrb_official(root: Path, classes=(0, 1, 2), per_class: int = 3, n_test: int = 4, size=(32, 32)) -> Path:
    """``root/GTSRB`` in the official layout (ppm images, ``;``-separated CSVs)."""
    gtsrb = root / "GTSRB"
    header = ["Filename", "Width", "Height", "Roi.X1", "Roi.Y1", "Roi.X2", "Roi.Y2", "ClassId"]
    for c in classes:
        class_dir = gtsrb / "Final_Training" / "Images" / f"{c:05d}"
        class_dir.mkdir(parents=True)
        rows = []
        for i in range(per_class):
            name = f"00000_{i:05d}.ppm"
            image(c * 100 + i, size).save(class_dir / name)
            rows.append([name, 40, 41, 5, 5, 35, 36, c])
        _write_csv(class_dir / f"GT-{c:05d}.csv", ";", header, rows)
    test_dir = gtsrb / "Final_Test" / "Images"
    test_dir.mkdir(parents=True)
    rows = []
    for i in range(n_test):
        name = f"{i:05d}.ppm"
        image(1000 + i, size).save(test_dir / name)
        rows.append([name, 40, 41, 5, 5, 35, 36, classes[i % len(classes)]])
    _write_csv(gtsrb / "Final_Test" / "GT-final_test.csv", ";", header, rows)
    return gtsrb


def write_gtsrb_kaggle(root: Path, classes=(0, 5), per_class: int = 2, n_test: int = 3, sizes=((30, 31), (45, 40))) -> Path:
    header = ["Width", "Height", "Roi.X1", "Roi.Y1", "Roi.X2", "Roi.Y2", "ClassId", "Path"]
    rows = []
    for c in classes:
        (root / "Train" / str(c)).mkdir(parents=True)
        for i in range(per_class):
            rel = f"Train/{c}/{c:05d}_00000_{i:05d}.png"
            image(c * 10 + i, sizes[i % len(sizes)]).save(root / rel)
            rows.append([*sizes[i % len(sizes)], 1, 1, 20, 20, c, rel])
    _write_csv(root / "Train.csv", ",", header, rows)
    (root / "Test").mkdir()
    rows = []
    for i in range(n_test):
        rel = f"Test/{i:05d}.png"
        image(500 + i, sizes[0]).save(root / rel)
        rows.append([*sizes[0], 1, 1, 20, 20, classes[i % len(classes)], rel])
    _write_csv(root / "Test.csv", ",", header, rows)
    return root


def write_folder(
    root: Path, classes=("cat", "dog"), per_class: int = 5, size=(20, 16), mode: str = "RGB", ext: str = ".png"
) -> Path:
    for k, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            image(k * 100 + i, size, mode).save(root / name / f"img{i:03d}{ext}")
    return root


def truncate(path: Path, keep: float = 0.5) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def _write_csv(path: Path, delimiter: str, header, rows) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh, delimiter=delimiter, lineterminator="\r\n")
        writer.writerow(header)
        writer.writerows(rows)
