"""Where data comes from: --data-dir, $DNNCOMP_DATA_DIR, the cache, then a verified download.

No test touches the network: downloads come from file:// URLs or a fake opener.
"""

from __future__ import annotations

import dataclasses
import hashlib
import urllib.error
import zipfile
from pathlib import Path

import pytest

import dnncomp.data.sources as sources
from databuilders import write_cifar_archive, write_gtsrb_official, write_mnist
from dnncomp.cli import main
from dnncomp.data import DatasetNotFound, cache_dir, load_dataset, registry
from dnncomp.data.sources import Resource
from dnncomp.errors import DataError


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "cache"
    monkeypatch.setenv("DNNCOMP_CACHE_DIR", str(path))
    return path


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _serve(monkeypatch, name: str, *resources: Resource) -> None:
    """Make dataset ``name`` download ``resources`` instead of its public files."""
    spec = dataclasses.replace(registry.REGISTRY[name], resources=tuple(resources))
    monkeypatch.setitem(registry.REGISTRY, name, spec)


def _offline(monkeypatch):
    def refuse(url, timeout=None):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(sources, "urlopen", refuse)


def test_cache_dir_resolution(monkeypatch, tmp_path):
    monkeypatch.delenv("DNNCOMP_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "dnncomp"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "dnncomp"
    monkeypatch.setenv("DNNCOMP_CACHE_DIR", str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"


def test_search_order(tmp_path, cache, monkeypatch):
    write_mnist(tmp_path / "arg" / "mnist.npz", n_train=11)
    write_mnist(tmp_path / "env" / "mnist.npz", n_train=12)
    write_mnist(cache / "mnist.npz", n_train=13)
    monkeypatch.setenv("DNNCOMP_DATA_DIR", str(tmp_path / "env"))
    assert len(load_dataset("mnist", data_dir=tmp_path / "arg", download=False).y_train) == 11
    ds = load_dataset("mnist", download=False)
    assert len(ds.y_train) == 12 and ds.meta["found_in"] == "$DNNCOMP_DATA_DIR"
    # A data dir without the file falls through to the next location.
    assert len(load_dataset("mnist", data_dir=tmp_path / "empty", download=False).y_train) == 12
    monkeypatch.delenv("DNNCOMP_DATA_DIR")
    ds = load_dataset("mnist", download=False)
    assert len(ds.y_train) == 13 and ds.meta["found_in"] == "cache"


def test_download_verifies_and_lands_in_cache(tmp_path, cache, monkeypatch):
    published = write_mnist(tmp_path / "server" / "mnist.npz")
    _serve(monkeypatch, "mnist", Resource("mnist.npz", published.as_uri(), "sha256", _sha256(published)))
    ds = load_dataset("mnist", progress=True)
    assert ds.meta["found_in"] == "downloaded" and ds.meta["source"] == str(cache / "mnist.npz")
    assert (cache / "mnist.npz").read_bytes() == published.read_bytes()
    assert not list(cache.glob("*.part"))
    assert load_dataset("mnist").meta["found_in"] == "cache"  # no second download


def test_download_checksum_mismatch_leaves_nothing(tmp_path, cache, monkeypatch):
    published = write_mnist(tmp_path / "server" / "mnist.npz")
    _serve(monkeypatch, "mnist", Resource("mnist.npz", published.as_uri(), "sha256", "0" * 64))
    with pytest.raises(DatasetNotFound, match="sha256 is [0-9a-f]{64}, expected 0000"):
        load_dataset("mnist")
    assert not (cache / "mnist.npz").exists() and not list(cache.glob("*.part"))


def test_offline_is_one_clear_line(cache, monkeypatch, tmp_path):
    _offline(monkeypatch)
    with pytest.raises(DatasetNotFound) as info:
        load_dataset("cifar10", data_dir=tmp_path / "nowhere")
    message = str(info.value)
    assert "\n" not in message
    assert "cifar-10-python.tar.gz" in message  # the file expected
    assert str(tmp_path / "nowhere") in message and str(cache) in message  # where it looked
    assert "Temporary failure in name resolution" in message
    assert "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" in message  # how to provide it
    assert "--data-dir" in message


def test_offline_cli_exit_code(cache, monkeypatch, capsys):
    _offline(monkeypatch)
    assert main(["datasets", "--only", "mnist", "--download", "--verify"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error")]
    assert err == ["error: verify failed: mnist (not found)"]


def test_no_download_when_switched_off(cache, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("must not open a URL")

    monkeypatch.setattr(sources, "urlopen", fail)
    with pytest.raises(DatasetNotFound, match="downloading is off"):
        load_dataset("mnist", download=False)


def test_cifar_download_is_read_from_the_archive(tmp_path, cache, monkeypatch):
    archive = write_cifar_archive(tmp_path / "server" / "cifar-10-python.tar.gz")
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    _serve(monkeypatch, "cifar10", Resource("cifar-10-python.tar.gz", archive.as_uri(), "md5", md5))
    ds = load_dataset("cifar10")
    assert ds.x_train.shape == (20, 32, 32, 3) and ds.meta["source"] == str(cache / "cifar-10-python.tar.gz")


def _official_zips(tmp_path: Path) -> list[Path]:
    """The three official GTSRB zips, laid out as published."""
    tree = write_gtsrb_official(tmp_path / "tree")
    out = tmp_path / "server"
    out.mkdir()
    zips = [out / "GTSRB_Final_Training_Images.zip", out / "GTSRB_Final_Test_Images.zip", out / "GTSRB_Final_Test_GT.zip"]
    with zipfile.ZipFile(zips[0], "w") as zf:
        for path in sorted((tree / "Final_Training").rglob("*")):
            zf.write(path, path.relative_to(tree.parent))
    with zipfile.ZipFile(zips[1], "w") as zf:
        for path in sorted((tree / "Final_Test" / "Images").rglob("*")):
            zf.write(path, path.relative_to(tree.parent))
    with zipfile.ZipFile(zips[2], "w") as zf:
        zf.write(tree / "Final_Test" / "GT-final_test.csv", "GT-final_test.csv")
    return zips


def test_gtsrb_download_unzips_into_cache(tmp_path, cache, monkeypatch):
    zips = _official_zips(tmp_path)
    _serve(monkeypatch, "gtsrb", *(Resource(z.name, z.as_uri(), "md5", hashlib.md5(z.read_bytes()).hexdigest()) for z in zips))
    ds = load_dataset("gtsrb")
    assert ds.x_train.shape == (9, 32, 32, 3) and len(ds.y_test) == 4
    assert ds.meta["source"] == str(cache / "GTSRB")
    assert not list(cache.glob("*.zip")) and not list(cache.glob(".gtsrb-unzip-*"))


def test_gtsrb_zips_placed_by_hand_need_no_network(tmp_path, cache, monkeypatch):
    zips = _official_zips(tmp_path)
    _serve(
        monkeypatch,
        "gtsrb",
        *(Resource(z.name, "https://example.invalid/" + z.name, "md5", hashlib.md5(z.read_bytes()).hexdigest()) for z in zips),
    )
    _offline(monkeypatch)
    cache.mkdir()
    for z in zips:
        z.rename(cache / z.name)
    assert len(load_dataset("gtsrb", download=False).y_train) == 9


def test_zip_slip_refused(tmp_path, cache, monkeypatch):
    evil = tmp_path / "GTSRB_Final_Training_Images.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../../escaped.txt", "x")
    others = [tmp_path / "GTSRB_Final_Test_Images.zip", tmp_path / "GTSRB_Final_Test_GT.zip"]
    for z in others:
        with zipfile.ZipFile(z, "w") as zf:
            zf.writestr("GT-final_test.csv", "Filename;ClassId\n")
    _serve(
        monkeypatch,
        "gtsrb",
        *(Resource(z.name, z.as_uri(), "md5", hashlib.md5(z.read_bytes()).hexdigest()) for z in [evil, *others]),
    )
    with pytest.raises(DataError, match="would be written outside"):
        load_dataset("gtsrb")
    assert not (tmp_path / "escaped.txt").exists() and not (cache.parent / "escaped.txt").exists()
