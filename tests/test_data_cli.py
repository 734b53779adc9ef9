"""`dnncomp datasets`: a table per dataset, --verify, and errors as one line."""

from __future__ import annotations

import pytest

from databuilders import write_cifar_dir, write_folder, write_mnist
from dnncomp.cli import main


@pytest.fixture(autouse=True)
def _wide_console(monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # long temporary paths stay on one line


def test_lists_found_and_missing(tmp_path, capsys):
    write_mnist(tmp_path / "mnist.npz")
    assert main(["datasets", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert str(tmp_path / "mnist.npz") in out and "30 images" in out and "28x28x1" in out
    assert out.count("how to get it") == 2  # cifar10 and gtsrb are not found
    assert "cifar-10-python.tar.gz" in out and "GTSRB_Final_Training_Images.zip" in out


def test_verify_fails_on_wrong_counts(tmp_path, capsys):
    write_cifar_dir(tmp_path, n=4)
    assert main(["datasets", "--data-dir", str(tmp_path), "--only", "cifar10", "--verify"]) == 2
    captured = capsys.readouterr()
    assert "FAIL" in captured.out and "20 (expected 50000)" in captured.out
    errors = [line for line in captured.err.splitlines() if line.startswith("error")]
    assert errors == ["error: verify failed: cifar10 (train images, test images, train per class, test per class)"]


def test_folder_dataset(tmp_path, capsys):
    write_folder(tmp_path / "pics", per_class=5)
    assert main(["datasets", "--only", f"folder:{tmp_path / 'pics'}", "--verify"]) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert "8 images" in out and "2 images" in out and "images read" in out and "test images per class" in out
    assert "verify: all 6 checks pass" in captured.err


def test_folder_verify_fails_when_a_class_has_no_test_image(tmp_path, capsys):
    write_folder(tmp_path / "tree" / "train", classes=("a", "b"), per_class=2)
    write_folder(tmp_path / "tree" / "test", classes=("a",), per_class=2)
    assert main(["datasets", "--only", f"folder:{tmp_path / 'tree'}", "--verify"]) == 2
    assert "no test images for b" in capsys.readouterr().out


def test_help():
    assert main(["datasets", "--help"]) == 0
