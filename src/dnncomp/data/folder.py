"""Users' own images in an ImageFolder tree: ``<root>/<class>/*.png|jpg|webp|tif|...`` (any format Pillow opens).

If ``<root>/train`` and ``<root>/test`` exist they are the splits (each holding the
class folders); otherwise every class is split with a seeded, stratified shuffle
(``test_fraction`` of each class, at least one image when the class has two or more).
Class names are the folder names, sorted. Images are RGB, or one grey channel when
every image is greyscale; mixed sizes are resized to ``image_size`` or, if it is not
given, to the most common size (said in ``meta["notes"]``). Images are read upright (EXIF
orientation applied) with every mode and bit depth converted as :mod:`dnncomp.data.images` says.

Files that are not images (macOS ``._*`` and ``.DS_Store``, ``Thumbs.db``, ``desktop.ini``,
hidden files, ``README.txt``...) and hidden or ``__MACOSX`` folders are skipped without
being opened and counted by kind in ``meta["ignored"]``; an image file that cannot be read
is an error unless ``skip_bad``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError
from .base import Dataset
from .images import count_ignored, describe_ignored, list_images, not_an_image, skipped_dir_kind
from .imageset import ImageEntry, load_image_splits


def class_folders(directory: Path) -> list[Path]:
    """The class folders in ``directory``, sorted: every sub-folder but hidden, ``__MACOSX`` and ``@eaDir`` ones."""
    return [d for d in sorted(directory.iterdir()) if d.is_dir() and skipped_dir_kind(d) is None]


def _class_dirs(directory: Path, ignored: dict) -> list[Path]:
    """Class folders in ``directory``; what else is there (files, hidden folders) is counted in ``ignored``."""
    classes = []
    for entry in sorted(directory.iterdir()):
        if entry.is_dir():
            kind = skipped_dir_kind(entry)
            if kind is None:
                classes.append(entry)
            else:
                count_ignored(ignored, kind, entry)
        elif entry.is_file():
            count_ignored(ignored, not_an_image(entry) or "images outside class folders (not read)", entry)
    return classes


def _class_images(directory: Path, ignored: dict) -> dict[str, list[Path]]:
    classes = _class_dirs(directory, ignored)
    if not classes:
        raise DataError(f"{directory}: no class folders; expected <root>/<class>/*.png (or any image format Pillow opens)")
    images = {}
    for class_dir in classes:
        own: dict = {}
        files = list_images(class_dir, own)
        if not files:
            what = f"; it holds only {', '.join(describe_ignored(own))}" if own else ""
            raise DataError(f"{class_dir}: empty class folder (no image files{what}); add images or remove it")
        for kind, entry in own.items():
            total = ignored.setdefault(kind, {"count": 0, "example": entry["example"]})
            total["count"] += entry["count"]
        images[class_dir.name] = files
    return images


def _stratified_split(per_class: dict[str, list[Path]], test_fraction: float, seed: int):
    rng = np.random.default_rng(seed)
    train, test = {}, {}
    for name, files in per_class.items():  # sorted class order makes the split reproducible
        n_test = int(round(len(files) * test_fraction))
        if len(files) >= 2 and test_fraction > 0:
            n_test = min(max(n_test, 1), len(files) - 1)
        chosen = set(rng.permutation(len(files))[:n_test].tolist())
        test[name] = [f for i, f in enumerate(files) if i in chosen]
        train[name] = [f for i, f in enumerate(files) if i not in chosen]
    return train, test


def read_folder(
    root: str | Path,
    image_size=None,
    skip_bad: bool = False,
    progress=None,
    test_fraction: float = 0.2,
    seed: int = 0,
    executor: str = "process",
) -> Dataset:
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"{root}: not a directory; expected an image-folder tree <root>/<class>/*.png")
    if not 0 <= test_fraction < 1:
        raise DataError(f"test_fraction must be in [0, 1), not {test_fraction}")
    has_splits = (root / "train").is_dir() and (root / "test").is_dir()
    ignored: dict[str, dict] = {}  # non-image files and folders, by kind: {"count": n, "example": path}
    if has_splits:
        for entry in sorted(root.iterdir()):  # beside train/ and test/: a README, a .DS_Store, a val/ folder
            if entry.name not in ("train", "test"):
                kind = (
                    (skipped_dir_kind(entry) or "folders beside train/ and test/ (not read)")
                    if entry.is_dir()
                    else (not_an_image(entry) or "images outside class folders (not read)")
                )
                count_ignored(ignored, kind, entry)
        train, test = _class_images(root / "train", ignored), _class_images(root / "test", ignored)
        unknown = sorted(set(test) - set(train))
        if unknown:
            raise DataError(f"{root / 'test'}: classes {', '.join(unknown)} have no folder in {root / 'train'}")
        split_note = "train/ and test/ folders"
    else:
        train, test = _stratified_split(_class_images(root, ignored), test_fraction, seed)
        split_note = f"stratified split, test_fraction={test_fraction}, seed={seed}"
    class_names = sorted(train)
    index = {name: i for i, name in enumerate(class_names)}

    def entries(split: dict[str, list[Path]]) -> list[ImageEntry]:
        return [ImageEntry(str(f), index[name]) for name in sorted(split) for f in split[name]]

    options = {"split": split_note}
    dataset = load_image_splits(
        kind="folder",
        root=root,
        splits={"train": entries(train), "test": entries(test)},
        class_names=class_names,
        image_size=image_size,
        skip_bad=skip_bad,
        grey=True,
        progress=progress,
        options=options,
        meta={"format": "image folders", "split": split_note, "ignored": ignored},
        executor=executor,
    )
    dataset.name = f"folder:{root}"
    return dataset
