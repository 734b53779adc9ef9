"""What ``dnncomp run`` trains and on which data, resolved before any work starts.

A run's dataset is a published one (``mnist``, ``cifar10``, ``gtsrb``) or a user's
image folder (``folder:PATH``); its model is a registered member (``tiny-mnist``), a
family (``tiny``, ``improved``, ``study``) that builds itself for the data, or the
user's own Keras file, which becomes the run's baseline as it is (dnncomp does not
train it). :func:`resolve_target` turns the two command-line words into a
:class:`RunTarget` — a :class:`~dnncomp.models.ModelSpec` and what was assumed — and
refuses a mistyped name (with the close match), a missing folder or a model that does
not fit the data before anything is trained or written.

Run directories are named from the dataset and model with :func:`safe_name`, so
``folder:/data/my photos`` runs in ``runs/folder-my_photos/tiny-28x28x1-5cls``.

TensorFlow is imported only to read a user's model file; everything else here runs on
the device side too.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .errors import DataError, ModelError
from .models import ModelSpec

# A family built for a folder of large photos would train for hours on two cores; images
# are brought down to at most this many pixels on their longer side (and it is said).
FOLDER_MAX_SIDE = 128
# Images whose header is read to find a folder's most common size.
SIZE_SAMPLE = 256
MODEL_FILE_SUFFIXES = (".keras", ".h5", ".hdf5")


@dataclass(frozen=True)
class RunTarget:
    """A run's model, resolved for its data.

    ``spec``: what to build (or, with ``model_file``, what the user's file is: its input
    shape, classes and logits/softmax read from it). ``notes``: what was chosen or assumed
    for the user, each to be said once.
    """

    dataset: str
    spec: ModelSpec
    model_file: Path | None = None
    notes: tuple[str, ...] = ()
    # A user's model: its contract (dnncomp.contract.ModelContract) and the pixel mapping it takes
    # (its own Rescaling/Normalization, --input-range/--mean/--std, or the assumed 0..1).
    contract: Any = None
    preprocessing: Any = None
    # The data's own (height, width) when its images are padded or cropped to the model's input
    # (preprocessing.fit): then they are loaded at that size and fitted where they become model input.
    data_image_size: tuple[int, int] | None = None

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) the data is loaded at: the data's own when it is padded/cropped to the model
        (``preprocessing.fit``), else the contract's (any layout), else the spec's."""
        if self.data_image_size is not None:
            return tuple(self.data_image_size)
        return tuple(self.contract.image_size) if self.contract is not None else tuple(self.spec.image_size)


def safe_name(text: str) -> str:
    """A name usable as one directory name on any filesystem: no colons, slashes or spaces.

    ``folder:/a/b c`` -> ``folder-b_c`` (the folder's own name); ``tiny-28x28x1-5cls`` stays.
    Characters other than letters, digits, ``.``, ``_`` and ``-`` become ``_``.
    """
    from .data import folder_root

    root = folder_root(text) if text.startswith("folder:") else None
    if root is not None:
        resolved = root.resolve()
        text = "folder-" + (resolved.name or "root")
    text = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "unnamed"
    return text[:100]


def run_dir_name(dataset: str) -> str:
    """The run-directory name of a dataset: the registry's name (``CIFAR-10`` -> ``cifar10``) or :func:`safe_name`."""
    from .data import REGISTRY, normalize_name

    key = normalize_name(dataset)
    return key if key in REGISTRY else safe_name(dataset)


def is_model_file(model: str | None) -> bool:
    """Does ``--model`` name a file (or SavedModel directory) rather than a registered name or family?"""
    from .models import families, list_models

    if not model or model in families() or model in {spec.name for spec in list_models()}:
        return False  # a name wins over a directory of the same name in the working directory
    path = Path(model).expanduser()
    return path.suffix.lower() in MODEL_FILE_SUFFIXES or path.is_dir() or ("/" in model and path.exists())


def resolve_target(
    dataset: str, model: str | None, *, val_split: str | None = None, data_dir=None, skip_bad: bool = False, preprocessing=None
) -> RunTarget:
    """The spec ``dnncomp run DATASET --model MODEL`` trains (or the user's file it adopts).

    ``model``: None (the study's model for a published dataset; ``tiny`` for a folder), a
    family, a registered member (one made for another class count gets this data's count,
    timm's ``num_classes=``, and says so), or a path to a Keras file. ``val_split``: a
    fraction (stratified) or a full validation mode, replacing the spec's; without it,
    a study model keeps the study's split only on its own dataset. Loads a folder's images
    once when the model must fit them (they are then in the decoded-image cache); ``skip_bad``
    skips unreadable images there, as the run's own load does. ``preprocessing`` (a
    :class:`~dnncomp.preprocess.Preprocessing` from ``--input-range/--mean/--std``) is the
    pixel mapping a user's model takes where it has no Rescaling/Normalization of its own;
    dnncomp trains its own models on ``pixel / 255`` and refuses it for them.

    Raises DataError (unknown dataset, with the close match; missing folder) or ModelError
    (unknown model, with the close match; a model file whose class count differs from
    the data's) before any training.
    """
    from .data import folder_root, get_spec
    from .train import parse_validation

    if val_split is not None:
        try:
            parse_validation(val_split)
        except ModelError as exc:
            raise ModelError(f"--val-split {val_split}: expected a fraction F with 0 < F < 1 ({exc})") from None
    root = folder_root(dataset)
    if root is None:
        get_spec(dataset)  # an unknown name fails here, with the close match
    elif not root.is_dir():
        raise DataError(f"{dataset}: {root} is not a directory; expected an image-folder tree <root>/<class>/*.png")
    notes: list[str] = []
    model_file: Path | None = None
    if preprocessing is not None and not is_model_file(model):
        from .preprocess import range_given

        if range_given(preprocessing):
            raise ModelError(
                "--input-range/--mean/--std describe your own model's input (--model my.keras); "
                "the models dnncomp trains take pixel/255"
            )
        raise ModelError(
            "--fit says how your own model (--model my.keras) takes images of another size; "
            "the models dnncomp trains are built for the data's size"
        )

    if is_model_file(model):
        model_file = Path(str(model)).expanduser()
        spec, contract, mapping, data_size = _user_model(model_file, dataset, root, notes, data_dir, skip_bad, preprocessing)
        notes.insert(0, f"baseline: your model {model_file} as it is (not trained by dnncomp)")
        return RunTarget(
            dataset=dataset,
            spec=spec,
            model_file=model_file,
            notes=tuple(notes),
            contract=contract,
            preprocessing=mapping,
            data_image_size=data_size,
        )
    elif root is None:
        spec = _spec_for_published(dataset, model, notes)
    else:
        spec = _spec_for_folder(dataset, root, model, notes, data_dir, skip_bad)

    spec = _with_validation(spec, dataset, val_split)
    return RunTarget(dataset=dataset, spec=spec, model_file=model_file, notes=tuple(notes))


def _spec_for_published(dataset: str, model: str | None, notes: list[str]) -> ModelSpec:
    from .data import REGISTRY, normalize_name
    from .models import get_model_spec, resolve_model_name, spec_for_data

    key = normalize_name(dataset)
    name = resolve_model_name(model, key)
    spec = get_model_spec(name)
    classes = REGISTRY[key].expected.num_classes
    if spec.num_classes != classes:
        notes.append(
            f"{spec.name} has {spec.num_classes} outputs; built with {classes} for {key} "
            f"(or --model {spec.family} for the {spec.family} model made for {key})"
        )
        spec = spec_for_data(spec, key, classes)
    return spec


def _spec_for_folder(
    dataset: str, root: Path, model: str | None, notes: list[str], data_dir, skip_bad: bool = False
) -> ModelSpec:
    from .data import load_dataset
    from .models import did_you_mean, families, family_spec, get_model_spec, list_models, spec_for_data

    if not model:
        model = "tiny"
        notes.append(f"model: tiny (the fast one) for {dataset}; --model improved trains a stronger one")
    if model in families():
        size, size_note = folder_image_size(root)
        if size_note:
            notes.append(size_note)
        data = load_dataset(dataset, data_dir=data_dir, image_size=size, skip_bad=skip_bad)
        return family_spec(model, dataset, tuple(data.x_train.shape[1:]), data.num_classes)
    registered = [s.name for s in list_models()]
    if model not in registered:
        raise ModelError(
            f"unknown model {model!r}{did_you_mean(model, registered + families())}; for {dataset} pass a family "
            f"({', '.join(families())}), a registered model (`dnncomp run --help`) or your own .keras/.h5 file"
        )
    spec = get_model_spec(model)
    data = load_dataset(dataset, data_dir=data_dir, image_size=spec.image_size, skip_bad=skip_bad)
    if data.num_classes != spec.num_classes:
        notes.append(
            f"{spec.name} has {spec.num_classes} outputs and {dataset} {data.num_classes} classes: "
            f"built with {data.num_classes} outputs, as {spec.name}-{data.num_classes}cls "
            f"(--model {spec.family} builds the {spec.family} model at the folder's own image size)"
        )
    return spec_for_data(spec, dataset, data.num_classes)


def folder_image_size(root: Path) -> tuple[tuple[int, int], str | None]:
    """(height, width) a family model takes for the folder at ``root``, and a note if it is not the images' own.

    The most common size among the headers of up to SIZE_SAMPLE images (spread over the
    classes), brought down to FOLDER_MAX_SIDE on the longer side, keeping the aspect ratio.
    Reads headers only, so a folder of camera photos is not decoded at full size.
    """
    from .data.folder import class_folders
    from .data.images import list_images, upright_size

    base = root / "train" if (root / "train").is_dir() and (root / "test").is_dir() else root
    class_dirs = class_folders(base)
    per_class = [list_images(d) for d in class_dirs]
    sample: list[Path] = []
    for i in range(max((len(files) for files in per_class), default=0)):  # round robin over the classes
        sample.extend(files[i] for files in per_class if i < len(files))
        if len(sample) >= SIZE_SAMPLE:
            break
    sizes: Counter = Counter()
    for path in sample[:SIZE_SAMPLE]:
        try:
            sizes[upright_size(path)] += 1  # as the loader reads it: EXIF-rotated photos swap height and width
        except (OSError, ValueError):
            continue  # the loader reports unreadable files with their names
    if not sizes:
        raise DataError(f"{root}: no readable images in its class folders; expected <root>/<class>/*.png")
    (height, width), _ = sizes.most_common(1)[0]
    longer = max(height, width)
    if longer <= FOLDER_MAX_SIDE:
        return (height, width), None
    scale = FOLDER_MAX_SIDE / longer
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    return size, (
        f"images of {height}x{width} are resized to {size[0]}x{size[1]} for the model (at most {FOLDER_MAX_SIDE} pixels a side)"
    )


def load_user_model(path: Path, notes: list[str] | None = None):
    """The user's model file as a Keras 2 model (:func:`dnncomp.model_io.load_model`: .keras/.h5 of
    Keras 2 or 3 and SavedModel directories); what loading did (a Keras 3 translation, say) is
    appended to ``notes``."""
    from .model_io import load_model

    loaded = load_model(path)
    if notes is not None and loaded.note:
        notes.append(loaded.note)
    return loaded.model


def _user_model(path: Path, dataset: str, root: Path | None, notes: list[str], data_dir, skip_bad: bool, given):
    """(spec, contract, preprocessing, data size) of the user's model file, checked against the data before any work.

    Input shape and layout, classes and logits/softmax come from the file
    (:func:`dnncomp.contract.read_contract`); a class count other than the data's is refused
    at once, other channels of a published dataset too (the data is loaded to check);
    a folder's grey/colour conversion and resizing are noted. Images of another size are fitted
    as ``given.fit`` (``--fit``) says, else as :func:`dnncomp.preprocess.choose_fit` chooses (said);
    the data size returned is the images' own when they are padded or cropped (else None).
    """
    if not path.exists():
        raise ModelError(f"{path}: model file not found; pass a .keras or .h5 file, or a model name (`dnncomp run --help`)")
    from .contract import (
        ASSUMED_RANGE_NOTE,
        check_data_fits,
        read_contract,
        resolve_preprocessing,
        spec_from_contract,
        with_image_shape,
    )
    from .preprocess import load_fitted

    model = load_user_model(path, notes)
    name = safe_name(f"user-{path.stem}")

    contract = read_contract(model, path=path)
    _check_classes_fit(contract, dataset, root, path)  # cheap: before the images are read
    data, fit, fit_note = load_fitted(
        dataset, tuple(contract.image_size), given.fit if given is not None else None, data_dir=data_dir, skip_bad=skip_bad
    )
    contract = with_image_shape(contract, tuple(data.x_train.shape[1:]))
    notes.extend(check_data_fits(contract, data, dataset))
    if fit_note:
        notes.append(fit_note)
    preprocessing = resolve_preprocessing(contract, given).with_fit(fit)
    notes.append(
        ASSUMED_RANGE_NOTE if preprocessing.assumed else f"input range {preprocessing.describe()} ({preprocessing.source})"
    )
    spec = replace(spec_from_contract(contract, dataset), name=name, base="")
    data_size = tuple(data.meta["own_image_size"]) if fit is not None and fit.mode != "resize" else None
    return spec, contract, preprocessing, data_size


def _check_classes_fit(spec, dataset: str, root: Path | None, model_file: Path) -> None:
    """A user's model (spec or contract) whose output count differs from the data's classes is refused before any work."""
    classes = _class_count(dataset, root)
    if classes is not None and classes != spec.num_classes:
        raise ModelError(
            f"{model_file.name} has {spec.num_classes} outputs but {dataset} has {classes} classes; "
            "pass a model trained for these classes, or --model tiny to train one on them"
        )


def _class_count(dataset: str, root: Path | None) -> int | None:
    """Classes of a published dataset (its registry entry) or of a folder (its class folders), without decoding."""
    from .data import REGISTRY, normalize_name

    if root is None:
        return REGISTRY[normalize_name(dataset)].expected.num_classes
    base = root / "train" if (root / "train").is_dir() and (root / "test").is_dir() else root
    from .data.folder import class_folders

    return len(class_folders(base)) or None


def _with_validation(spec: ModelSpec, dataset: str, val_split: str | None) -> ModelSpec:
    """The spec with ``--val-split``, or with a stratified split where the study's own does not apply.

    The study's "last 20 %" and "random 25 %" are its protocol on its own datasets; on
    another dataset (a folder read class by class) they would hold out whole classes.
    """
    from .data import normalize_name
    from .train import parse_validation

    validation = spec.training.get("validation", "none")
    if val_split is not None:
        mode, fraction = parse_validation(val_split)
        validation = "none" if mode == "none" else f"{mode}:{fraction:g}"
    elif not (spec.family == "study" and not spec.base and spec.dataset == normalize_name(dataset)):
        mode, fraction = parse_validation(validation)
        if mode in ("last", "random"):
            validation = f"stratified:{fraction:g}"
    if validation == spec.training.get("validation"):
        return spec
    return replace(spec, training={**spec.training, "validation": validation})


def adopt_baseline(model_file: Path, run_dir: Path) -> list[Path]:
    """Make the user's model the run's baseline: loaded (safely) and saved as baseline.keras and baseline.h5.

    Saving through dnncomp's Keras 2 puts the user's file in the format every recipe and
    the Keras timing read; the weights are the user's, untouched. Returns the files written.
    """
    from .train import save_baseline

    return save_baseline(load_user_model(model_file), run_dir)
