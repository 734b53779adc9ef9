"""Which kernels actually ran: each latency record says whether XNNPACK was applied, from the interpreter."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference-models" / "mnist_quantized_model.tflite"


@pytest.fixture(scope="module")
def model() -> Path:
    if not REFERENCE.is_file():
        pytest.skip(f"{REFERENCE} not found")
    return REFERENCE


def test_delegation_is_read_from_the_interpreter(model):
    from dnncomp.evaluate import allocate, delegation, open_interpreter

    on, off = (open_interpreter(model, xnnpack=x) for x in (True, False))
    for interpreter in (on, off):
        allocate(interpreter)
    # 13 ops; XNNPACK takes the quantize and the conv/pool/dense chain, not the dynamic-shape ops
    # (SHAPE, STRIDED_SLICE, PACK, and the RESHAPE fed by them)
    assert delegation(on) == {"delegate_nodes": 2, "ops": 13, "ops_delegated": 9}
    assert delegation(off) == {"delegate_nodes": 0, "ops": 13, "ops_delegated": 0}


def _images(n=40):
    return np.random.default_rng(0).integers(0, 256, (n, 28, 28, 1), dtype=np.uint8), np.arange(n) % 10


def test_bench_records_what_ran_and_warns_when_xnnpack_was_not_obtained(model, monkeypatch):
    import dnncomp.bench as bench
    from dnncomp.bench import LatencyConfig
    from dnncomp.measure import bench_models, xnnpack_label

    x, y = _images()
    config = LatencyConfig(min_count=3, min_seconds=0, warmup_min_count=1, warmup_min_seconds=0, overhead_seconds=0)
    said: list[str] = []
    document = bench_models(
        [model],
        x,
        y,
        dataset=None,
        num_classes=10,
        xnnpack=(True, False),
        base_config=config,
        accuracy=False,
        memory=False,
        quiet=True,
        say=said.append,
    )
    on, off = document["variants"][0]["latency_runs"]
    assert (on["xnnpack_applied"], on["ops_delegated"], on["ops_total"]) == (True, 9, 13)
    assert (off["xnnpack_applied"], off["ops_delegated"]) == (False, 0)
    assert (xnnpack_label(on), xnnpack_label(off)) == ("on (9/13 ops)", "off")
    assert not [line for line in said if line.startswith("warning")]

    # as on a board whose /sys defeats XNNPACK's CPU detection: asked for, not applied
    monkeypatch.setattr(bench, "delegation", lambda interpreter: {"delegate_nodes": 0, "ops": 13, "ops_delegated": 0})
    said.clear()
    document = bench_models(
        [model], x, y, dataset=None, num_classes=10, base_config=config, accuracy=False, memory=False, quiet=True, say=said.append
    )
    latency = document["variants"][0]["latency"]
    assert latency["xnnpack"] is True and latency["xnnpack_applied"] is False
    assert xnnpack_label(latency) == "NOT applied"
    assert any("XNNPACK was asked for but LiteRT did not apply it" in line for line in said)
