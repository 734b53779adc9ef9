"""GTSRB, the German Traffic Sign Recognition Benchmark: 43 classes.

Two published layouts are read:

- official (``GTSRB_Final_*.zip``): ``GTSRB/Final_Training/Images/000NN/*.ppm`` with
  ``GT-000NN.csv`` per class, and ``GTSRB/Final_Test/Images/*.ppm`` with the labels in
  ``GT-final_test.csv`` (from ``GTSRB_Final_Test_GT.zip``); ``;``-separated;
- Kaggle: ``Train/<ClassId>/*.png`` listed in ``Train.csv`` and ``Test/*.png`` in
  ``Test.csv``; comma-separated, with ``Path`` and ``ClassId`` columns.

Images keep their stored size unless ``image_size`` is given (the study used
``Image.resize((30, 30))``); originals of mixed sizes go to the most common size.
"""

from __future__ import annotations

import csv
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

from ..errors import DataError
from .base import Dataset
from .imageset import ImageEntry, load_image_splits
from .sources import Resource
from .spec import DatasetSpec, Expected

NUM_CLASSES = 43
SIGN_NAMES = [
    "Speed limit (20km/h)",
    "Speed limit (30km/h)",
    "Speed limit (50km/h)",
    "Speed limit (60km/h)",
    "Speed limit (70km/h)",
    "Speed limit (80km/h)",
    "End of speed limit (80km/h)",
    "Speed limit (100km/h)",
    "Speed limit (120km/h)",
    "No passing",
    "No passing for vehicles over 3.5 metric tons",
    "Right-of-way at the next intersection",
    "Priority road",
    "Yield",
    "Stop",
    "No vehicles",
    "Vehicles over 3.5 metric tons prohibited",
    "No entry",
    "General caution",
    "Dangerous curve to the left",
    "Dangerous curve to the right",
    "Double curve",
    "Bumpy road",
    "Slippery road",
    "Road narrows on the right",
    "Road work",
    "Traffic signals",
    "Pedestrians",
    "Children crossing",
    "Bicycles crossing",
    "Beware of ice/snow",
    "Wild animals crossing",
    "End of all speed and passing limits",
    "Turn right ahead",
    "Turn left ahead",
    "Ahead only",
    "Go straight or right",
    "Go straight or left",
    "Keep right",
    "Keep left",
    "Roundabout mandatory",
    "End of no passing",
    "End of no passing by vehicles over 3.5 metric tons",
]
CLASS_NAMES = [f"{i:02d} {name}" for i, name in enumerate(SIGN_NAMES)]
TRAIN_PER_CLASS = (
    210,
    2220,
    2250,
    1410,
    1980,
    1860,
    420,
    1440,
    1410,
    1470,
    2010,
    1320,
    2100,
    2160,
    780,
    630,
    420,
    1110,
    1200,
    210,
    360,
    330,
    390,
    510,
    270,
    1500,
    600,
    240,
    540,
    270,
    450,
    780,
    240,
    689,
    420,
    1200,
    390,
    210,
    2070,
    300,
    360,
    240,
    240,
)
TEST_PER_CLASS = (
    60,
    720,
    750,
    450,
    660,
    630,
    150,
    450,
    450,
    480,
    660,
    420,
    690,
    720,
    270,
    210,
    150,
    360,
    390,
    60,
    90,
    90,
    120,
    150,
    90,
    480,
    180,
    60,
    150,
    90,
    150,
    270,
    60,
    210,
    120,
    390,
    120,
    60,
    690,
    90,
    90,
    60,
    90,
)
TEST_GT = "GT-final_test.csv"

_BASE_URL = "https://sid.erda.dk/public/archives/daaeac0d7ce1152aea9b61d9f1e19370/"
RESOURCES = (  # md5s as listed by the published loaders (tensorflow-datasets, torchvision)
    Resource(
        "GTSRB_Final_Training_Images.zip",
        _BASE_URL + "GTSRB_Final_Training_Images.zip",
        "md5",
        "f33fd80ac59bff73c82d25ab499e03a3",
    ),
    Resource("GTSRB_Final_Test_Images.zip", _BASE_URL + "GTSRB_Final_Test_Images.zip", "md5", "c7e4e6327067d32654124b0fe9e82185"),
    Resource("GTSRB_Final_Test_GT.zip", _BASE_URL + "GTSRB_Final_Test_GT.zip", "md5", "fe31e9c9270bbcd7b84b7f21a9d9d9e5"),
)


def find(location: Path) -> Path | None:
    """The official ``GTSRB`` directory or a Kaggle-layout root inside ``location``."""
    for root in (location / "GTSRB", location):
        if (root / "Final_Training" / "Images").is_dir() or ((root / "Train.csv").is_file() and (root / "Test.csv").is_file()):
            return root
    return None


def _entries(csv_path: Path, delimiter: str, path_column: str, base: Path) -> list[ImageEntry]:
    """The (image path, ClassId) rows of an annotation CSV; paths are relative to ``base``."""
    prefix, csv_name = str(base) + os.sep, csv_path.name
    entries = []
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh, delimiter=delimiter, skipinitialspace=True)
            header = [h.strip() for h in next(reader, [])]
            absent = [c for c in (path_column, "ClassId") if c not in header]
            if absent:
                raise DataError(
                    f"{csv_path}: no {', '.join(absent)} column (header: {delimiter.join(header) or 'empty'}); "
                    f"expected a {'semicolon' if delimiter == ';' else 'comma'}-separated GTSRB annotation file"
                )
            path_at, label_at = header.index(path_column), header.index("ClassId")
            for number, row in enumerate(reader, start=2):
                if not row:
                    continue
                name = row[path_at].strip() if len(row) > path_at else ""
                label = row[label_at].strip() if len(row) > label_at else ""
                if not name:
                    raise DataError(f"{csv_path}: row {number} has an empty {path_column}")
                if not label.isdigit() or int(label) >= NUM_CLASSES:
                    raise DataError(f"{csv_path}: row {number} has ClassId {label!r}; expected an integer 0..{NUM_CLASSES - 1}")
                entries.append(ImageEntry(prefix + name, int(label), (csv_name, number)))
    except OSError as exc:
        raise DataError(f"{csv_path}: cannot read ({exc.strerror or exc})") from None
    except (csv.Error, UnicodeDecodeError) as exc:
        raise DataError(f"{csv_path}: not a readable CSV file ({exc})") from None
    return entries


def _official(root: Path) -> tuple[dict[str, list[ImageEntry]], list[Path]]:
    images = root / "Final_Training" / "Images"
    class_dirs = sorted(d for d in images.iterdir() if d.is_dir())
    if not class_dirs:
        raise DataError(f"{images}: no class directories (expected 00000 .. 00042)")
    train, csvs = [], []
    for class_dir in class_dirs:
        gt = class_dir / f"GT-{class_dir.name}.csv"
        if not gt.is_file():
            raise DataError(f"{class_dir}: {gt.name} is missing; it lists the images of this class and their ClassId")
        csvs.append(gt)
        train += _entries(gt, ";", "Filename", class_dir)
    candidates = [root / "Final_Test" / TEST_GT, root / TEST_GT, root.parent / TEST_GT]
    test_gt = next((p for p in candidates if p.is_file()), None)
    if test_gt is None:
        raise DataError(
            f"{root}: test labels not found: {TEST_GT} (from GTSRB_Final_Test_GT.zip) is in none of "
            f"{', '.join(str(p) for p in candidates)}; put it in {candidates[0].parent}"
        )
    csvs.append(test_gt)
    test = _entries(test_gt, ";", "Filename", root / "Final_Test" / "Images")
    return {"train": train, "test": test}, csvs


def _kaggle(root: Path) -> tuple[dict[str, list[ImageEntry]], list[Path]]:
    csvs = [root / "Train.csv", root / "Test.csv"]
    return {"train": _entries(csvs[0], ",", "Path", root), "test": _entries(csvs[1], ",", "Path", root)}, csvs


def read(source: Path, image_size=None, skip_bad: bool = False, progress=None, executor: str = "process") -> Dataset:
    layout = "official" if (source / "Final_Training" / "Images").is_dir() else "kaggle"
    splits, csvs = _official(source) if layout == "official" else _kaggle(source)
    return load_image_splits(
        kind="gtsrb",
        root=source,
        splits=splits,
        class_names=CLASS_NAMES,
        annotation_files=csvs,
        image_size=image_size,
        skip_bad=skip_bad,
        progress=progress,
        executor=executor,
        options={"layout": layout},
        meta={"format": f"GTSRB {layout} layout"},
    )


def _extract(archive: Path, target: Path, only: str | None = None) -> None:
    """Unzip ``archive`` into ``target``, refusing members that would land outside it."""
    target_resolved = target.resolve()
    try:
        with zipfile.ZipFile(archive) as zf:
            for member in zf.infolist():
                if only and Path(member.filename).name != only:
                    continue
                dest = (target / member.filename).resolve()
                if not dest.is_relative_to(target_resolved):
                    raise DataError(f"{archive}: member {member.filename!r} would be written outside {target}; refused")
                zf.extract(member, target)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"{archive}: cannot unzip ({exc})") from None


def install(archives: list[Path], cache: Path) -> None:
    """Unzip the three official archives into ``cache/GTSRB``; the zips are removed afterwards."""
    train_zip, test_zip, gt_zip = archives
    work = Path(tempfile.mkdtemp(prefix=".gtsrb-unzip-", dir=cache))
    try:
        _extract(train_zip, work)
        _extract(test_zip, work)
        _extract(gt_zip, work / "GTSRB" / "Final_Test", only=TEST_GT)
        if find(work) is None:
            raise DataError(f"{train_zip}: unzipped, but no GTSRB/Final_Training/Images inside")
        final = cache / "GTSRB"
        if final.exists():
            shutil.rmtree(final)
        (work / "GTSRB").rename(final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for archive in archives:
        archive.unlink(missing_ok=True)


SPEC = DatasetSpec(
    name="gtsrb",
    title="GTSRB",
    provides="GTSRB/Final_Training, GTSRB/Final_Test (official layout) or Train.csv, Test.csv (Kaggle layout)",
    find=find,
    read=read,
    resources=RESOURCES,
    install=install,
    expected=Expected(
        train=39209,
        test=12630,
        num_classes=NUM_CLASSES,
        channels=3,
        train_per_class=TRAIN_PER_CLASS,
        test_per_class=TEST_PER_CLASS,
    ),
)
