"""The device side (evaluate, bench, inspect, memory) runs where importing TensorFlow fails.

A Jetson Nano has numpy, Pillow and ai-edge-litert but no TensorFlow. The test runs
the device code in a fresh interpreter whose ``sitecustomize`` makes every import of
tensorflow, tf_keras, keras and tensorflow_model_optimization raise ImportError
(in the memory probe's own subprocess too, since it inherits PYTHONPATH).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.realdata

BLOCKER = textwrap.dedent(
    """
    import importlib.abc
    import sys

    BLOCKED = {"tensorflow", "tf_keras", "keras", "tensorflow_model_optimization"}

    class NoTensorFlow(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{name} is not installed on this device (blocked by the test)")
            return None

    sys.meta_path.insert(0, NoTensorFlow())
    """
)

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np

    try:
        import tensorflow  # noqa: F401
        raise SystemExit("the blocker did not work: tensorflow imported")
    except ImportError:
        pass

    from dnncomp.anatomy import inspect_model
    from dnncomp.bench import LatencyConfig, compare_latency, measure_latency, measure_memory
    from dnncomp.cli import main
    from dnncomp.evaluate import evaluate_accuracy, file_sizes
    from dnncomp.results import environment, validate_results

    model, data_dir, out_dir = sys.argv[1], sys.argv[2], sys.argv[3]
    with np.load(f"{data_dir}/mnist.npz") as z:
        x, y = z["x_test"][..., None], z["y_test"].astype(np.int64)

    quick = LatencyConfig(warmup_min_count=3, warmup_min_seconds=0.02, min_count=30, min_seconds=0.1, overhead_seconds=0.05)
    result = {
        "accuracy": evaluate_accuracy(model, x[:1000], y[:1000], first_n=1000),
        "latency": measure_latency(model, x, quick),
        "compare": len(compare_latency([model, model], x, quick)),
        "memory": measure_memory(model, x),
        "anatomy_int8_ops": inspect_model(model)["int8_kernel_ops"],
        "size": file_sizes(model),
        "environment": environment(),
    }

    import dnncomp.data
    if hasattr(dnncomp.data, "load_dataset"):
        result["loader"] = "real"
    else:  # the loader package is still being written: feed the CLI the same arrays
        from dnncomp.data.base import Dataset
        dnncomp.data.load_dataset = lambda name, **kw: Dataset("mnist", x[:1], y[:1], x, y, [str(i) for i in range(10)])
        result["loader"] = "npz"
    cli = ["--dataset", "mnist", "--data-dir", data_dir]
    quick_cli = ["--min-count", "30", "--min-seconds", "0.1"]
    result["cli_evaluate"] = main(["evaluate", model, *cli, *quick_cli, "--json", f"{out_dir}/evaluate.json"])
    result["cli_bench"] = main(["bench", model, model, *cli, *quick_cli, "--warmup-seconds", "0.02", "--no-memory",
                                "--quiet", "--json", f"{out_dir}/bench.json"])
    result["cli_inspect"] = main(["inspect", model])
    result["valid"] = [validate_results(json.load(open(f"{out_dir}/{name}.json"))) for name in ("evaluate", "bench")]
    result["tf_modules"] = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "tf_keras", "keras"))
    print("RESULT " + json.dumps(result))
    """
)


def test_evaluate_and_bench_run_without_tensorflow(tmp_path, reference_models_dir, real_data_dir):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCKER)
    src = Path(__file__).resolve().parents[1] / "src"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(src)])}
    model = reference_models_dir / "mnist_quantized_model.tflite"
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(model), str(real_data_dir), str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(line for line in proc.stdout.splitlines() if line.startswith("RESULT "))
    result = json.loads(line[len("RESULT ") :])
    assert result["tf_modules"] == []
    assert 0.98 <= result["accuracy"]["first_n"] <= 0.995
    assert result["latency"]["count"] >= 30 and result["latency"]["p50_ms"] > 0
    assert result["compare"] == 2
    assert result["memory"]["peak_added_bytes"] > 0
    assert result["anatomy_int8_ops"] == 4
    assert result["environment"]["packages"]["ai-edge-litert"]
    assert (result["cli_evaluate"], result["cli_bench"], result["cli_inspect"]) == (0, 0, 0), proc.stderr[-2000:]
    assert result["valid"] == [[], []]
