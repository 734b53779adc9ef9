"""Users' own images in an ImageFolder tree: ``<root>/<class>/*.png|jpg|jpeg|ppm|bmp``.

If ``<root>/train`` and ``<root>/test`` exist they are the splits (each holding the
class folders); otherwise every class is split with a seeded, stratified shuffle
(``test_fraction`` of each class, at least one image when the class has two or more).
Class names are the folder names, sorted. Images are RGB, or one grey channel when
every image is greyscale; mixed sizes are resized to ``image_size`` or, if it is not
given, to the most common size (said in ``meta["notes"]``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError
from .base import Dataset
from .images import IMAGE_EXTENSIONS, list_images
from .imageset import ImageEntry, load_image_splits


def _class_dirs(directory: Path) -> list[Path]:
    return sorted(d for d in directory.iterdir() if d.is_dir() and not d.name.startswith("."))


def _class_images(directory: Path) -> dict[str, list[Path]]:
    classes = _class_dirs(directory)
    if not classes:
        raise DataError(f"{directory}: no class folders; expected <root>/<class>/*.png (or .jpg, .jpeg, .ppm, .bmp)")
    images = {}
    for class_dir in classes:
        files = list_images(class_dir)
        if not files:
            raise DataError(
                f"{class_dir}: empty class folder (no {', '.join(IMAGE_EXTENSIONS)} files); add images or remove it"
            )
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


def read_folder(root: str | Path, image_size=None, skip_bad: bool = False, progress=None,
                test_fraction: float = 0.2, seed: int = 0, executor: str = "process") -> Dataset:
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"{root}: not a directory; expected an image-folder tree <root>/<class>/*.png")
    if not 0 <= test_fraction < 1:
        raise DataError(f"test_fraction must be in [0, 1), not {test_fraction}")
    has_splits = (root / "train").is_dir() and (root / "test").is_dir()
    if has_splits:
        train, test = _class_images(root / "train"), _class_images(root / "test")
        unknown = sorted(set(test) - set(train))
        if unknown:
            raise DataError(f"{root / 'test'}: classes {', '.join(unknown)} have no folder in {root / 'train'}")
        split_note = "train/ and test/ folders"
    else:
        train, test = _stratified_split(_class_images(root), test_fraction, seed)
        split_note = f"stratified split, test_fraction={test_fraction}, seed={seed}"
    class_names = sorted(train)
    index = {name: i for i, name in enumerate(class_names)}

    def entries(split: dict[str, list[Path]]) -> list[ImageEntry]:
        return [ImageEntry(str(f), index[name]) for name in sorted(split) for f in split[name]]

    options = {"split": split_note}
    dataset = load_image_splits(
        kind="folder", root=root, splits={"train": entries(train), "test": entries(test)}, class_names=class_names,
        image_size=image_size, skip_bad=skip_bad, grey=True, progress=progress, options=options,
        meta={"format": "image folders", "split": split_note}, executor=executor,
    )
    dataset.name = f"folder:{root}"
    return dataset
