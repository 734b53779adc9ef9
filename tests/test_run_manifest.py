"""The run directory's bookkeeping: a stage is skipped only if inputs match and outputs are intact."""

import json

import pytest

from dnncomp.errors import RunError
from dnncomp.run import Manifest


def test_stage_done_only_with_same_inputs_and_intact_outputs(tmp_path):
    (tmp_path / "a.tflite").write_bytes(b"model-bytes")
    manifest = Manifest(tmp_path)
    manifest.record("compress:a", {"recipe": "a", "params": {"x": 1}}, outputs=["a.tflite"], wall_s=0.5)

    reloaded = Manifest(tmp_path)
    assert reloaded.is_done("compress:a", {"recipe": "a", "params": {"x": 1}})
    assert not reloaded.is_done("compress:a", {"recipe": "a", "params": {"x": 2}})
    assert not reloaded.is_done("compress:b", {"recipe": "a", "params": {"x": 1}})

    (tmp_path / "a.tflite").write_bytes(b"tampered")
    assert not reloaded.is_done("compress:a", {"recipe": "a", "params": {"x": 1}})
    (tmp_path / "a.tflite").unlink()
    assert not reloaded.is_done("compress:a", {"recipe": "a", "params": {"x": 1}})


def test_manifest_records_hashes_and_times(tmp_path):
    (tmp_path / "out.bin").write_bytes(b"abc")
    manifest = Manifest(tmp_path)
    manifest.record("s", {"k": (1, 2)}, outputs=["out.bin"], wall_s=1.23456)
    data = json.loads((tmp_path / "manifest.json").read_text())
    stage = data["stages"]["s"]
    assert stage["outputs"]["out.bin"] == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert stage["wall_s"] == 1.235
    # tuples come back as lists: recorded and fresh inputs must still compare equal
    assert Manifest(tmp_path).is_done("s", {"k": (1, 2)})


def test_corrupt_manifest_is_a_clear_error(tmp_path):
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(RunError, match="manifest.json: unreadable manifest"):
        Manifest(tmp_path)


def test_a_manifest_that_calls_first_n_limit_is_read_under_the_one_name(tmp_path):
    # written before --first-n / first_n was the one name: its evaluations are still up to date, not measured again
    (tmp_path / "float.tflite").write_bytes(b"model-bytes")
    manifest = Manifest(tmp_path)
    manifest.data["config"] = {"epochs": 1, "limit": 500}
    inputs = {"artifact": "abc", "data": "f00d", "machine": "pi5", "runtime": "ai-edge-litert 2.3.0"}
    manifest.record("evaluate:float", {**inputs, "limit": 500}, outputs=["float.tflite"], wall_s=1, record={"name": "float"})
    reloaded = Manifest(tmp_path)
    assert reloaded.is_done("evaluate:float", {**inputs, "first_n": 500})
    assert not reloaded.is_done("evaluate:float", {**inputs, "first_n": 1000})
    assert reloaded.data["config"] == {"epochs": 1, "first_n": 500}
    assert reloaded.measurements["pi5"]["stages"]["evaluate:float"]["inputs"]["first_n"] == 500
