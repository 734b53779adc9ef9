"""Every published format on small datasets built here: shapes, dtypes, labels, order, resizing, caching."""

from __future__ import annotations

import os
import pickle
import sys

import numpy as np
import pytest
from PIL import Image

from databuilders import (
    image,
    write_cifar_archive,
    write_cifar_dir,
    write_folder,
    write_gtsrb_kaggle,
    write_gtsrb_official,
    write_mnist,
)
from dnncomp.data import DATASETS, Dataset, load_dataset
from dnncomp.data.images import decode_images


def test_registry_names():
    assert DATASETS == ("mnist", "cifar10", "gtsrb")


def test_mnist_npz(tmp_path):
    write_mnist(tmp_path / "mnist.npz", n_train=30, n_test=10)
    ds = load_dataset("mnist", data_dir=tmp_path, download=False)
    assert isinstance(ds, Dataset)
    assert ds.x_train.shape == (30, 28, 28, 1) and ds.x_train.dtype == np.uint8
    assert ds.x_test.shape == (10, 28, 28, 1)
    assert ds.y_train.dtype == np.int64 and ds.y_train[:3].tolist() == [0, 1, 2]
    assert ds.class_names == [str(d) for d in range(10)]
    with np.load(tmp_path / "mnist.npz") as raw:
        assert np.array_equal(ds.x_train[..., 0], raw["x_train"])
    assert ds.meta["source"] == str(tmp_path / "mnist.npz") and ds.meta["found_in"] == "--data-dir"
    assert ds.meta["counts"] == {"train": 30, "test": 10}


def test_mnist_data_dir_may_name_the_file(tmp_path):
    path = write_mnist(tmp_path / "elsewhere" / "digits.npz")
    assert load_dataset("mnist", data_dir=path, download=False).x_train.shape[0] == 30


def test_mnist_resized_on_request(tmp_path):
    write_mnist(tmp_path / "mnist.npz")
    ds = load_dataset("mnist", data_dir=tmp_path, image_size=(32, 30), download=False)
    assert ds.x_train.shape == (30, 32, 30, 1)
    expected = np.asarray(Image.fromarray(np.load(tmp_path / "mnist.npz")["x_train"][0]).resize((30, 32)))
    assert np.array_equal(ds.x_train[0, ..., 0], expected)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar10_directory(tmp_path, protocol):
    """Protocol 4 is the prepared files; 2 is how numpy pickles for Python 2 readers; 5 is Python 3.14's default."""
    write_cifar_dir(tmp_path, n=4, protocol=protocol)
    ds = load_dataset("cifar10", data_dir=tmp_path, download=False)
    assert ds.x_train.shape == (20, 32, 32, 3) and ds.x_test.shape == (4, 32, 32, 3)
    assert ds.class_names[0] == "airplane" and len(ds.class_names) == 10
    raw = pickle.loads((tmp_path / "cifar-10-batches-py" / "data_batch_1").read_bytes())
    first = raw[b"data"][0]
    assert np.array_equal(ds.x_train[0, :, :, 0].ravel(), first[:1024])  # R plane
    assert np.array_equal(ds.x_train[0, :, :, 2].ravel(), first[2048:])  # B plane
    assert ds.y_train[:4].tolist() == raw[b"labels"]


@pytest.mark.parametrize("mode", ["w:gz", "w:bz2", "w:xz", "w"])
def test_cifar10_archive_any_compression(tmp_path, mode):
    write_cifar_archive(tmp_path / "cifar-10-python.tar.gz", mode=mode)
    ds = load_dataset("cifar10", data_dir=tmp_path, download=False)
    assert ds.x_train.shape == (20, 32, 32, 3)
    assert ds.meta["source"].endswith("cifar-10-python.tar.gz")
    assert not (tmp_path / "cifar-10-batches-py").exists()  # read in place, not extracted


def test_cifar10_aliases(tmp_path):
    write_cifar_dir(tmp_path)
    assert load_dataset("CIFAR-10", data_dir=tmp_path, download=False).name == "cifar10"


def test_gtsrb_official_layout(tmp_path):
    write_gtsrb_official(tmp_path, classes=(0, 1, 2), per_class=3, n_test=4)
    ds = load_dataset("gtsrb", data_dir=tmp_path, download=False)
    assert ds.x_train.shape == (9, 32, 32, 3) and ds.x_test.shape == (4, 32, 32, 3)
    assert ds.y_train.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert ds.y_test.tolist() == [0, 1, 2, 0]
    assert len(ds.class_names) == 43 and ds.class_names[14].endswith("Stop")
    assert np.array_equal(ds.x_train[4], np.asarray(image(101)))
    assert ds.meta["format"] == "GTSRB official layout" and ds.meta["from_cache"] is False


def test_gtsrb_study_resize_matches_pil(tmp_path):
    root = write_gtsrb_official(tmp_path)
    ds = load_dataset("gtsrb", data_dir=tmp_path, image_size=(30, 30), download=False)
    first = root / "Final_Training" / "Images" / "00000" / "00000_00000.ppm"
    assert ds.x_train.shape[1:] == (30, 30, 3)
    assert np.array_equal(ds.x_train[0], np.asarray(Image.open(first).resize((30, 30))))
    assert ds.meta["resize_method"].startswith("PIL.Image.resize default")


def test_gtsrb_kaggle_layout_mixed_sizes(tmp_path):
    write_gtsrb_kaggle(tmp_path, classes=(0, 5), per_class=3, n_test=3, sizes=((30, 31), (45, 40)))
    ds = load_dataset("gtsrb", data_dir=tmp_path, download=False)
    assert ds.y_train.tolist() == [0, 0, 0, 5, 5, 5]
    # Sizes differ: resized to the most common (30 wide, 31 high), and said so.
    assert ds.x_train.shape == (6, 31, 30, 3)
    assert any("most common" in note for note in ds.meta["notes"])
    sized = load_dataset("gtsrb", data_dir=tmp_path, image_size=(30, 30), download=False)
    assert sized.x_train.shape == (6, 30, 30, 3) and not sized.meta["notes"]


def test_decoded_cache_hit_and_invalidation(tmp_path):
    root = write_gtsrb_official(tmp_path / "data")
    first = load_dataset("gtsrb", data_dir=tmp_path / "data", download=False)
    second = load_dataset("gtsrb", data_dir=tmp_path / "data", download=False)
    assert not first.meta["from_cache"] and second.meta["from_cache"]
    assert np.array_equal(first.x_train, second.x_train) and np.array_equal(first.y_test, second.y_test)
    with np.load(second.meta["cache_file"], allow_pickle=False) as npz:  # plain arrays, no pickle
        assert {"x_train", "y_train", "x_test", "y_test"} <= set(npz.files)

    # Another size is another entry; the native one stays.
    resized = load_dataset("gtsrb", data_dir=tmp_path / "data", image_size=(30, 30), download=False)
    assert not resized.meta["from_cache"] and resized.meta["cache_file"] != second.meta["cache_file"]

    # Changing a source image invalidates the entry, and the new pixels come through.
    changed = root / "Final_Training" / "Images" / "00001" / "00000_00000.ppm"
    image(4242).save(changed)
    os.utime(changed, ns=(1, 1))
    third = load_dataset("gtsrb", data_dir=tmp_path / "data", download=False)
    assert not third.meta["from_cache"]
    assert np.array_equal(third.x_train[3], np.asarray(image(4242)))
    assert not os.path.exists(first.meta["cache_file"])  # the stale entry was replaced


def test_damaged_cache_entry_is_a_miss(tmp_path):
    write_gtsrb_official(tmp_path)
    first = load_dataset("gtsrb", data_dir=tmp_path, download=False)
    with open(first.meta["cache_file"], "wb") as fh:
        fh.write(b"garbage")
    again = load_dataset("gtsrb", data_dir=tmp_path, download=False)
    assert not again.meta["from_cache"] and np.array_equal(again.x_train, first.x_train)


def test_folder_stratified_split(tmp_path):
    write_folder(tmp_path / "pics", classes=("cat", "dog", "emu"), per_class=10)
    ds = load_dataset(f"folder:{tmp_path / 'pics'}")
    assert ds.class_names == ["cat", "dog", "emu"]
    assert np.bincount(ds.y_test).tolist() == [2, 2, 2] and np.bincount(ds.y_train).tolist() == [8, 8, 8]
    assert ds.x_train.shape == (24, 16, 20, 3)
    again = load_dataset(str(tmp_path / "pics"), seed=0)  # a plain path works too
    assert np.array_equal(again.x_test, ds.x_test)
    other = load_dataset(f"folder:{tmp_path / 'pics'}", seed=1)
    assert not np.array_equal(other.x_test, ds.x_test)
    assert ds.name == f"folder:{tmp_path / 'pics'}"


def test_folder_with_own_split_and_extensions(tmp_path):
    write_folder(tmp_path / "tree" / "train", classes=("a", "b"), per_class=3, ext=".jpg")
    write_folder(tmp_path / "tree" / "test", classes=("a", "b"), per_class=1, ext=".BMP")
    ds = load_dataset(f"folder:{tmp_path / 'tree'}")
    assert len(ds.y_train) == 6 and ds.y_test.tolist() == [0, 1]
    assert ds.meta["split"] == "train/ and test/ folders"


def test_folder_greyscale_stays_one_channel(tmp_path):
    write_folder(tmp_path / "grey", per_class=3, mode="L")
    assert load_dataset(f"folder:{tmp_path / 'grey'}").x_train.shape[-1] == 1
    image(7, (20, 16), "RGB").save(tmp_path / "grey" / "cat" / "colour.png")
    mixed = load_dataset(f"folder:{tmp_path / 'grey'}")
    assert mixed.x_train.shape[-1] == 3


def test_folder_mixed_sizes_resized_to_most_common(tmp_path):
    write_folder(tmp_path / "f", per_class=4, size=(20, 16))
    image(9, (50, 50)).save(tmp_path / "f" / "dog" / "big.png")
    ds = load_dataset(f"folder:{tmp_path / 'f'}")
    assert ds.x_train.shape[1:3] == (16, 20)
    assert "16x20" in ds.meta["notes"][0]


@pytest.mark.parametrize("mixed", [False, True])
@pytest.mark.parametrize("executor", ["serial", "thread", "process"])
def test_parallel_decoding_keeps_order(tmp_path, executor, mixed, monkeypatch):
    import dnncomp.data.images as images

    monkeypatch.setattr(images, "PARALLEL_MIN_IMAGES", 1)
    sizes = [(9, 7) if mixed and i == 5 else (8, 8) for i in range(150)]
    paths = []
    for i, size in enumerate(sizes):
        paths.append(tmp_path / f"{i}.png")
        image(i, size).save(paths[-1])
    paths[70].write_bytes(b"not a png")
    decoded = decode_images(paths, executor=executor, workers=2)
    assert decoded.failures == [(str(paths[70]), decoded.failures[0][1])] and decoded.arrays[70] is None
    for i, arr in enumerate(decoded.arrays):
        if i != 70:
            assert np.array_equal(arr, np.asarray(image(i, sizes[i])))


def test_data_package_never_imports_tensorflow():
    code = (
        "import sys, dnncomp.data, dnncomp.data.inventory, dnncomp.cli;"
        "bad=[m for m in sys.modules if m.split('.')[0] in ('tensorflow','keras','tf_keras')];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    import subprocess

    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
