"""Bad input: one clear DataError naming the file and the problem; --skip-bad skips and reports."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from databuilders import (
    cifar_batch,
    image,
    truncate,
    write_cifar_archive,
    write_cifar_dir,
    write_folder,
    write_gtsrb_kaggle,
    write_gtsrb_official,
    write_mnist,
)
from dnncomp.cli import main
from dnncomp.data import load_dataset
from dnncomp.data.safe_pickle import safe_load
from dnncomp.errors import DataError, UnsafePickleError


class _Exploit:
    """Unpickling this with pickle.load would run ``os.system`` and create a file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _malicious_batch(marker) -> bytes:
    return pickle.dumps({b"data": _Exploit(marker), b"labels": [0]}, protocol=2)


def test_malicious_pickle_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned"
    payload = _malicious_batch(marker)
    with pytest.raises(UnsafePickleError, match=r"posix\.system|os\.system") as info:
        safe_load(payload, "evil.pkl")
    assert "evil.pkl" in str(info.value) and "nothing in it was run" in str(info.value)
    assert not marker.exists()
    # The same bytes with the stock unpickler would have run it: the test's exploit is real.
    pickle.loads(payload)
    assert marker.exists()


@pytest.mark.parametrize("where", ["dir", "archive"])
def test_malicious_cifar_batch(tmp_path, where):
    marker = tmp_path / "pwned"
    evil = {"data_batch_3": _malicious_batch(marker)}
    if where == "dir":
        write_cifar_dir(tmp_path, **evil)
    else:
        write_cifar_archive(tmp_path / "cifar-10-python.tar.gz", **evil)
    with pytest.raises(UnsafePickleError, match="data_batch_3.*unsafe pickle refused"):
        load_dataset("cifar10", data_dir=tmp_path, download=False)
    assert not marker.exists()


@pytest.mark.parametrize(
    "payload",
    [
        pickle.dumps(np.array([object()], dtype=object)),  # object arrays
        b"\x80\x02cbuiltins\neval\nX\x04\x00\x00\x001+1\x85R.",  # builtins.eval
        b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00aX\x06\x00\x00\x00rot_13\x86R.",  # codecs beyond latin1
    ],
)
def test_other_unsafe_pickles(payload):
    with pytest.raises(UnsafePickleError):
        safe_load(payload, "x.pkl")


def test_truncated_pickle(tmp_path):
    write_cifar_dir(tmp_path, test_batch=cifar_batch(4, 9)[:500])
    with pytest.raises(DataError, match="test_batch: not a readable pickle"):
        load_dataset("cifar10", data_dir=tmp_path, download=False)


def test_cifar_batch_with_wrong_shape(tmp_path):
    bad = pickle.dumps({b"data": np.zeros((4, 100), np.uint8), b"labels": [0, 1, 2, 3]})
    write_cifar_dir(tmp_path, data_batch_2=bad)
    with pytest.raises(DataError, match=r"data_batch_2: data is uint8 \(4, 100\); expected uint8 \(N, 3072\)"):
        load_dataset("cifar10", data_dir=tmp_path, download=False)


def test_cifar_missing_batch(tmp_path):
    directory = write_cifar_dir(tmp_path)
    (directory / "data_batch_5").unlink()
    with pytest.raises(DataError, match="data_batch_5 is missing"):
        load_dataset("cifar10", data_dir=tmp_path, download=False)


def test_corrupt_archive(tmp_path):
    truncate(write_cifar_archive(tmp_path / "cifar-10-python.tar.gz"), 0.3)
    with pytest.raises(DataError, match="cifar-10-python.tar.gz"):
        load_dataset("cifar10", data_dir=tmp_path, download=False)


@pytest.mark.parametrize(
    "replace, message",
    [
        ({"x_test": None}, "missing array.*x_test"),
        ({"x_train": np.zeros((30, 32, 32), np.uint8)}, r"x_train is uint8 \(30, 32, 32\); expected uint8 \(N, 28, 28\)"),
        ({"x_train": np.zeros((30, 28, 28), np.float32)}, "x_train is float32"),
        ({"y_test": np.zeros(3, np.uint8)}, r"y_test is uint8 \(3,\); expected integer labels of shape \(10,\)"),
        ({"y_train": np.full(30, 12, np.uint8)}, "labels 12..12; expected digits 0..9"),
    ],
)
def test_mnist_wrong_arrays(tmp_path, replace, message):
    path = write_mnist(tmp_path / "mnist.npz", **replace)
    with pytest.raises(DataError, match=message) as info:
        load_dataset("mnist", data_dir=tmp_path, download=False)
    assert str(path) in str(info.value)


def test_mnist_not_an_npz(tmp_path):
    (tmp_path / "mnist.npz").write_bytes(b"<html>404</html>")
    with pytest.raises(DataError, match="mnist.npz: not a readable .npz"):
        load_dataset("mnist", data_dir=tmp_path, download=False)


def test_mnist_object_array_refused(tmp_path):
    np.savez(
        tmp_path / "mnist.npz",
        x_train=np.array([{"a": 1}], dtype=object),
        y_train=np.zeros(1),
        x_test=np.zeros(1),
        y_test=np.zeros(1),
    )
    with pytest.raises(DataError, match="pickled Python objects"):
        load_dataset("mnist", data_dir=tmp_path, download=False)


def test_truncated_png_names_the_file(tmp_path):
    write_gtsrb_kaggle(tmp_path)
    bad = truncate(tmp_path / "Train" / "5" / "00005_00000_00001.png")
    with pytest.raises(DataError, match="cannot read image") as info:
        load_dataset("gtsrb", data_dir=tmp_path, download=False)
    assert str(bad) in str(info.value) and "--skip-bad" in str(info.value)


def test_csv_row_naming_missing_file(tmp_path):
    root = write_gtsrb_official(tmp_path)
    (root / "Final_Training" / "Images" / "00001" / "00000_00002.ppm").unlink()
    with pytest.raises(DataError, match=r"00000_00002\.ppm: listed in GT-00001\.csv row 4, does not exist"):
        load_dataset("gtsrb", data_dir=tmp_path, download=False)


def test_csv_bad_class_id_and_missing_column(tmp_path):
    root = write_gtsrb_kaggle(tmp_path)
    text = (root / "Test.csv").read_text().replace(",5,Test/00001.png", ",x,Test/00001.png")
    (root / "Test.csv").write_text(text)
    with pytest.raises(DataError, match=r"Test.csv: row 3 has ClassId 'x'"):
        load_dataset("gtsrb", data_dir=tmp_path, download=False)
    (root / "Test.csv").write_text("Width,Height\n1,2\n")
    with pytest.raises(DataError, match=r"Test.csv: no Path, ClassId column"):
        load_dataset("gtsrb", data_dir=tmp_path, download=False)


def test_gtsrb_missing_test_labels(tmp_path):
    root = write_gtsrb_official(tmp_path)
    (root / "Final_Test" / "GT-final_test.csv").unlink()
    with pytest.raises(DataError, match="GT-final_test.csv .from GTSRB_Final_Test_GT.zip."):
        load_dataset("gtsrb", data_dir=tmp_path, download=False)


def test_empty_class_folder(tmp_path):
    write_folder(tmp_path / "pics")
    (tmp_path / "pics" / "zebra").mkdir()
    with pytest.raises(DataError, match=r"zebra: empty class folder"):
        load_dataset(f"folder:{tmp_path / 'pics'}")


def test_folder_without_classes(tmp_path):
    (tmp_path / "flat").mkdir()
    image(0).save(tmp_path / "flat" / "a.png")
    with pytest.raises(DataError, match="no class folders"):
        load_dataset(f"folder:{tmp_path / 'flat'}")


def test_skip_bad_skips_and_reports(tmp_path):
    root = write_gtsrb_official(tmp_path)
    bad = truncate(root / "Final_Training" / "Images" / "00002" / "00000_00000.ppm", 0.2)
    not_image = root / "Final_Test" / "Images" / "00001.ppm"
    not_image.write_text("hello")
    (root / "Final_Training" / "Images" / "00000" / "00000_00001.ppm").unlink()
    ds = load_dataset("gtsrb", data_dir=tmp_path, skip_bad=True, download=False)
    assert len(ds.y_train) == 9 - 2 and len(ds.y_test) == 3
    assert len(ds.meta["skipped"]) == 3
    assert any(str(bad) in line for line in ds.meta["skipped"])
    assert any(str(not_image) in line and "cannot read image" in line for line in ds.meta["skipped"])
    assert ds.y_test.tolist() == [0, 2, 0]  # the labels of the kept images
    # Cached with the skipped list: a later load without skip_bad still fails, with the same message.
    with pytest.raises(DataError, match="does not exist"):
        load_dataset("gtsrb", data_dir=tmp_path, download=False)
    assert load_dataset("gtsrb", data_dir=tmp_path, skip_bad=True, download=False).meta["from_cache"]


def test_bad_image_size_argument(tmp_path):
    write_mnist(tmp_path / "mnist.npz")
    with pytest.raises(DataError, match="image_size"):
        load_dataset("mnist", data_dir=tmp_path, image_size=(0, 5), download=False)
    with pytest.raises(DataError, match="unknown dataset 'imagenet'"):
        load_dataset("imagenet")


def test_cli_bad_input_is_one_line(tmp_path, capsys):
    write_gtsrb_kaggle(tmp_path)
    truncate(tmp_path / "Test" / "00002.png")
    assert main(["datasets", "--data-dir", str(tmp_path), "--only", "gtsrb"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error")]
    assert len(err) == 1 and "00002.png" in err[0] and "cannot read image" in err[0]


def test_cli_skip_bad_lists_skipped_files_at_the_end(tmp_path, capsys):
    write_gtsrb_kaggle(tmp_path)
    truncate(tmp_path / "Test" / "00002.png")
    assert main(["datasets", "--data-dir", str(tmp_path), "--only", "gtsrb", "--skip-bad"]) == 0
    out = capsys.readouterr().out
    assert "skipped 1 unreadable image(s)" in out
    assert out.rstrip().splitlines()[-1].strip().startswith(str(tmp_path / "Test" / "00002.png"))
