"""Reports: tables, plots, the study beside ours, and `reproduce` wiring.

The run directories here are fabricated fixtures (plausible numbers, no real
models): they exercise the report's reading and drawing, not the pipeline.
"""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import re
from pathlib import Path

import pytest

# Skipped without matplotlib, as before, but found without importing it: collecting this module must not
# load matplotlib into the device-side lane (-m "not plots"); only the tests marked plots draw.
if importlib.util.find_spec("matplotlib") is None:
    pytest.skip("matplotlib is not installed (the report extra)", allow_module_level=True)
from PIL import Image

from dnncomp import report as report_mod
from dnncomp.cli import main
from dnncomp.errors import MissingDependencyError, RunError
from dnncomp.report import load_run, pareto_front, variant_rows, write_report
from dnncomp.results import wilson_interval
from dnncomp.study import study_result, study_results, study_variant_name

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# name: (runtime, acc full, acc first 1000, p50 ms, file bytes, gzip bytes, sparsity)
FAKE_VARIANTS = {
    "baseline-keras": ("keras", 0.9921, 0.988, 48.0, 13_390_000, 12_200_000, None),
    "float": ("litert", 0.9921, 0.988, 0.61, 4_450_000, 4_110_000, 0.0),
    "qat": ("litert", 0.9918, 0.987, 0.25, 1_130_000, 820_000, 0.0),
    "prune": ("litert", 0.9905, 0.986, 0.60, 4_450_000, 1_310_000, 0.80),
    "cluster": ("litert", 0.9890, 0.984, 0.61, 4_450_000, 930_000, 0.02),
}
FAKE_LAYERS = [
    ("sequential/conv2d/Conv2D", [32, 5, 5, 1]),
    ("sequential/conv2d_1/Conv2D", [64, 5, 5, 32]),
    ("sequential/dense/MatMul", [1024, 3136]),
    ("sequential/dense_1/MatMul", [10, 1024]),
]


def _latency(p50: float, threads: int, keras: bool) -> dict:
    record = {
        "threads": threads,
        "xnnpack": None if keras else True,
        "batch": 1,
        "init_ms": 3.0,
        "first_inference_ms": 2 * p50,
        "warmup_count": 20,
        "count": 200,
        "min_ms": 0.8 * p50,
        "max_ms": 3.1 * p50,
        "mean_ms": 1.07 * p50,
        "std_ms": 0.1 * p50,
        "p50_ms": p50,
        "p90_ms": 1.2 * p50,
        "p95_ms": 1.35 * p50,
        "p99_ms": 1.8 * p50,
    }
    return record


def _anatomy(name: str, sparsity: float | None) -> dict:
    """Shaped like dnncomp.anatomy.inspect_model's summary (weights: kernels and biases)."""
    weights = []
    for layer, shape in FAKE_LAYERS:
        size = 1
        for d in shape:
            size *= d
        zeros = {"prune": 0.8, "cluster": 0.01}.get(name, 0.0)
        unique = {"cluster": 8, "qat": 255}.get(name, min(size, int(size * (1 - zeros))))
        weights.append(
            {"name": f"{layer}/bias", "shape": [shape[0]], "size": shape[0], "role": "other", "sparsity": 0.0, "unique": shape[0]}
        )
        weights.append({"name": layer, "shape": shape, "size": size, "role": "kernel", "sparsity": zeros, "unique": unique})
    return {"params": 1_111_946, "sparsity": sparsity, "weights": weights}


def _mcu(name: str, file_bytes: int) -> dict:
    """Shaped like dnncomp.micro.mcu_stage_record (see /work/notes/s4/NOTICE-G.md): int8 variants only."""
    if name != "qat":
        return {"skipped": "not an int8 model (its convolutions or dense layers compute in float)"}
    return {
        "tflm_version": "0.dev20251001",
        "runs": True,
        "error": None,
        "missing_ops": [],
        "arena_bytes": file_bytes // 20,
        "arena_reported_bytes": file_bytes // 20,
        "flash": {
            "model_bytes": file_bytes,
            "aligned_bytes": file_bytes + 16,
            "c_array_adds_bytes": 20,
            "total_bytes": file_bytes + 36,
        },
        "ops": ["CONV_2D", "FULLY_CONNECTED"],
        "resolver": ["AddConv2D", "AddFullyConnected"],
        "int8_io": True,
        "equivalence": {
            "dataset": "cifar10",
            "images": 10000,
            "top1_agreement": 0.9987,
            "disagreements": 13,
            "max_abs_diff": 1.0,
            "outputs_identical": 9950,
        },
    }


def make_run(
    root: Path,
    dataset: str = "mnist",
    model: str | None = None,
    variants=None,
    *,
    history: bool = True,
    manifest: bool = True,
    anatomy: bool = True,
    threads: int = 1,
    mcu: bool = False,
    scale: float = 1.0,
) -> Path:
    """A fabricated run directory shaped like `dnncomp run`'s output (FOR TESTS ONLY)."""
    model = model or f"study-{dataset}"
    run_dir = root / dataset / model
    run_dir.mkdir(parents=True)
    records = []
    for name in variants or FAKE_VARIANTS:
        runtime, full, first, p50, file_bytes, gzip_bytes, sparsity = FAKE_VARIANTS[name]
        file_bytes, gzip_bytes = int(file_bytes * scale), int(gzip_bytes * scale)  # another model's size
        keras = runtime == "keras"
        lo, hi = wilson_interval(round(first * 1000), 1000)
        record = {
            "name": name,
            "artifact": "baseline.h5" if keras else f"{name}.tflite",
            "runtime": runtime,
            "sha256": "ab" * 32,
            "accuracy": {"full": full, "full_count": 10000, "first_n": first, "first_n_count": 1000, "first_n_ci95": [lo, hi]},
            "latency": _latency(p50, threads, keras),
            "size": {"file_bytes": file_bytes, "gzip_bytes": gzip_bytes, "zip_bytes": gzip_bytes + 120},
            "sparsity": sparsity,
        }
        if anatomy and not keras:
            record["anatomy"] = _anatomy(name, sparsity)
        if mcu and not keras:
            record["mcu"] = _mcu(name, file_bytes)
        records.append(record)
    environment = {
        "python": "3.11.7",
        "platform": "Linux-6.1-x86_64",
        "machine": "x86_64",
        "cpu_count": 2,
        "packages": {"numpy": "2.4.6", "ai-edge-litert": "2.3.0"},
        "device": "workstation",
    }
    (run_dir / "results.json").write_text(
        json.dumps(
            {
                "schema": "dnncomp.results/1",
                "dataset": dataset,
                "model": model,
                "created": "2026-11-29T05:00:00+00:00",
                "environment": environment,
                "seed": 0,
                "variants": records,
            }
        )
    )
    if manifest:
        (run_dir / "manifest.json").write_text(
            json.dumps(
                {
                    "schema": "dnncomp.manifest/1",
                    "dataset": dataset,
                    "model": model,
                    "dnncomp_version": "0.1.0",
                    "command": f"dnncomp run {dataset}",
                    "seed": 0,
                    "config": {
                        "epochs": 50,
                        "limit": 1000,
                        "threads": threads,
                        "techniques": ["float", "qat", "prune", "cluster"],
                    },
                    "environment": environment,
                    "data": {"fingerprint": "0123456789abcdef", "train": 60000, "test": 10000, "classes": 10},
                    "stages": {
                        "baseline": {
                            "wall_s": 321.5,
                            "inputs": {},
                            "outputs": {"baseline.keras": "cd" * 32},
                            "finished": "2026-11-29T04:00:00+00:00",
                        },
                        "compress:qat": {"wall_s": 41.2, "inputs": {}, "outputs": {"qat.tflite": "ef" * 32}},
                    },
                }
            )
        )
    if history:
        epochs = 9
        (run_dir / "history.json").write_text(
            json.dumps(
                {
                    "loss": [0.25 / (e + 1) ** 0.7 for e in range(epochs)],
                    "accuracy": [0.93 + 0.06 * (1 - 0.6**e) for e in range(epochs)],
                    "val_loss": [0.08 - 0.004 * e + 0.0015 * max(0, e - 4) ** 2 for e in range(epochs)],
                    "val_accuracy": [0.975 + 0.012 * (1 - 0.5**e) - 0.0008 * max(0, e - 4) for e in range(epochs)],
                }
            )
        )
    return run_dir


def _png_ok(data: bytes) -> tuple[int, int]:
    assert data.startswith(PNG_SIGNATURE)
    image = Image.open(io.BytesIO(data))
    image.verify()
    width, height = Image.open(io.BytesIO(data)).size
    assert 300 <= width <= 2000 and 200 <= height <= 2000, (width, height)
    return width, height


# ---- numbers ---------------------------------------------------------------------------


def test_pareto_front_drops_dominated_points():
    # (size, accuracy): the last point is bigger and less accurate than the second: dominated.
    points = [(1.0, 0.95), (2.0, 0.99), (4.0, 0.995), (3.0, 0.98)]
    assert pareto_front(points) == [0, 1, 2]
    assert 3 not in pareto_front(points)


def test_pareto_front_edge_cases():
    assert pareto_front([]) == []
    assert pareto_front([(1.0, None), (None, 0.9), (2.0, 0.9)]) == [2]
    # equal points dominate neither each other; a tie in cost with lower value is dominated
    assert pareto_front([(1.0, 0.9), (1.0, 0.9)]) == [0, 1]
    assert pareto_front([(1.0, 0.9), (1.0, 0.8)]) == [0]


def test_wilson_interval_on_1000_images_is_about_one_point():
    lo, hi = wilson_interval(988, 1000)
    assert lo < 0.988 < hi
    assert 0.004 < (hi - lo) / 2 < 0.01
    lo, hi = wilson_interval(790, 1000)
    assert 0.02 < (hi - lo) / 2 < 0.03


def test_study_mapping_keeps_float_apart_from_baseline():
    assert study_variant_name("float") is None
    assert study_result("mnist", "float") is None
    assert study_result("mnist", "baseline-keras")["latency_ms"] == pytest.approx(159.77)
    assert study_result("CIFAR-10", "qat")["accuracy_pct"] == pytest.approx(79.10)
    assert study_result("gtsrb", "cluster")["size_mb"] == pytest.approx(4.68)
    assert len(study_results()) == 12


def test_variant_rows_compute_ratios_against_float(tmp_path):
    rows = {r.name: r for r in variant_rows(load_run(make_run(tmp_path)))}
    assert rows["float"].gzip_ratio == pytest.approx(1.0)
    assert rows["prune"].file_ratio == pytest.approx(1.0)
    assert rows["prune"].gzip_ratio == pytest.approx(4_110_000 / 1_310_000)
    assert not rows["baseline-keras"].comparable


# ---- the report --------------------------------------------------------------------------


@pytest.mark.plots
def test_single_run_report_has_tables_plots_and_provenance(tmp_path):
    run_dir = make_run(tmp_path / "runs")
    paths = write_report([run_dir], run_dir)
    markdown = paths["markdown"].read_text()
    assert paths["markdown"] == run_dir / "report.md"

    for name in FAKE_VARIANTS:
        assert re.search(rf"^\| `{re.escape(name)}` \|", markdown, re.M), name
    header = next(line for line in markdown.splitlines() if line.startswith("| variant |"))
    for column in (
        "p50 ms",
        "p99 ms",
        "file MB",
        "gzip MB",
        "zeros %",
        "×float gzip",
        "study acc. % (1000)",
        "study ms (Jetson, mean)",
        "study file MB",
        "[95% CI]",
    ):
        assert column in header, column
    qat_row = next(line for line in markdown.splitlines() if line.startswith("| `qat` |"))
    assert "98.80" in qat_row and "1.43" in qat_row and "1.12" in qat_row  # the study's quantized MNIST row
    float_row = next(line for line in markdown.splitlines() if line.startswith("| `float` |"))
    assert float_row.rstrip(" |").endswith("– | – | –")  # the study never timed a float model
    assert "The study and ours, side by side" in markdown
    assert "Why the numbers differ" in markdown
    assert "`dnncomp run mnist`" in markdown  # provenance: the command
    assert "| config: first_n | 1000 |" in markdown  # the manifest says limit, as before the name first_n
    assert "ai-edge-litert 2.3.0" in markdown

    figures = paths["figures"]
    names = {p.name for p in figures}
    for expected in ("accuracy-vs-size", "accuracy-vs-latency", "sizes", "latency", "layers", "history"):
        assert f"mnist-study-mnist-{expected}.png" in names, expected
    assert "study-vs-ours.png" in names
    for path in figures:
        assert path.is_file()
        _png_ok(path.read_bytes())
        assert path.stat().st_size < 150_000, path
        assert f"]({path.name})" in markdown

    html = paths["html"].read_text()
    embedded = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(embedded) == len(figures)
    for data in embedded:
        _png_ok(base64.b64decode(data))
    assert "http://" not in html and "https://" not in html  # self-contained
    assert html.count("<tr>") >= len(FAKE_VARIANTS) + 1


def test_combined_report_over_three_datasets(tmp_path):
    runs = [make_run(tmp_path / "runs", d, anatomy=False, history=False) for d in ("mnist", "cifar10", "gtsrb")]
    out = tmp_path / "combined"
    paths = write_report(runs, out, title="Three datasets", figures=False)  # text only: the figures are tested below
    markdown = paths["markdown"].read_text()
    assert markdown.startswith("# Three datasets")
    assert markdown.index("The study and ours, side by side") < markdown.index("## MNIST / study-mnist")
    study_table = markdown.split("The study and ours, side by side")[1].split("Why the numbers differ")[0]
    for dataset_label, study_acc in (("MNIST", "98.80"), ("CIFAR-10", "77.50"), ("GTSRB", "90.60")):
        assert f"| {dataset_label} |" in study_table and study_acc in study_table
    assert study_table.count("| `float` |") == 3
    assert "1000 images vs the full test set" in markdown and "Keras `predict` vs LiteRT" in markdown
    assert "File size vs gzip size" in markdown and "Jetson Nano vs this machine" in markdown
    assert "CIFAR-10: the models side by side" not in markdown  # one model per dataset here


@pytest.mark.plots
def test_figures_of_several_runs_have_distinct_names_in_the_out_dir(tmp_path):
    runs = [
        make_run(tmp_path / root, "mnist", variants=["float", "qat"], anatomy=False, history=False) for root in ("a", "b")
    ]  # the same dataset and model twice
    out = tmp_path / "combined"
    paths = write_report(runs, out, title="Twice")
    names = [p.name for p in paths["figures"]]
    assert len(set(names)) == len(names) and "study-vs-ours.png" in names
    assert {"mnist-study-mnist-sizes.png", "mnist-study-mnist-2-sizes.png"} <= set(names)
    assert all(p.parent == out and p.is_file() for p in paths["figures"])


@pytest.mark.plots
def test_missing_pieces_do_not_crash(tmp_path):
    run_dir = make_run(tmp_path / "runs", variants=["qat", "prune"], history=False, manifest=False, anatomy=False)
    paths = write_report([run_dir], tmp_path / "out")
    markdown = paths["markdown"].read_text()
    assert "No history.json" in markdown
    assert "No per-layer detail" in markdown
    assert "No `float` variant" in markdown
    assert "| `qat` |" in markdown and "| `prune` |" in markdown
    for path in paths["figures"]:
        _png_ok(path.read_bytes())


@pytest.mark.plots
def test_a_run_with_no_variants_and_nulls(tmp_path):
    run_dir = make_run(tmp_path / "runs", variants=["float"], history=False, anatomy=False)
    results = json.loads((run_dir / "results.json").read_text())
    results["variants"][0]["latency"] = None
    results["variants"][0]["accuracy"] = {"full": None, "first_n": None}
    (run_dir / "results.json").write_text(json.dumps(results))
    paths = write_report([run_dir], tmp_path / "a")
    assert "| `float` |" in paths["markdown"].read_text()
    results["variants"] = []
    (run_dir / "results.json").write_text(json.dumps(results))
    paths = write_report([run_dir], tmp_path / "b")
    assert "nothing was measured yet" in paths["markdown"].read_text()


def test_missing_results_is_a_typed_error(tmp_path):
    with pytest.raises(RunError, match="results.json"):
        load_run(tmp_path)


def test_missing_matplotlib_says_how_to_install(monkeypatch, tmp_path):
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(MissingDependencyError, match="pip install"):
        write_report([make_run(tmp_path)], tmp_path / "out")


# ---- CLI ----------------------------------------------------------------------------------


def test_report_command_defaults_to_the_run_dir(tmp_path, capsys):
    run_dir = make_run(tmp_path / "runs", anatomy=False)
    assert main(["report", str(run_dir), "--no-figures"]) == 0
    assert (run_dir / "report.md").is_file() and (run_dir / "report.html").is_file()
    assert "report.md" in capsys.readouterr().out and not list(run_dir.glob("*.png"))


@pytest.mark.plots
def test_reproduce_runs_each_dataset_then_writes_one_report(tmp_path, monkeypatch, capsys):
    import inspect

    from dnncomp import run as run_module

    real_signature = inspect.signature(run_module.run_pipeline)
    calls = []

    def fake_run_pipeline(dataset, **kwargs):
        real_signature.bind(dataset, **kwargs)  # the real orchestrator would accept these arguments
        calls.append((dataset, kwargs))
        return make_run(Path(kwargs["out"]), dataset, anatomy=False, history=False)

    monkeypatch.setattr("dnncomp.run.run_pipeline", fake_run_pipeline)
    out = tmp_path / "docs"
    code = main(
        [
            "reproduce",
            "--datasets",
            "mnist,CIFAR-10",
            "--out",
            str(out),
            "--runs",
            str(tmp_path / "runs"),
            "--epochs",
            "3",
            "--threads",
            "2",
            "--data-dir",
            str(tmp_path / "data"),
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert [c[0] for c in calls] == ["mnist", "cifar10"]
    kwargs = calls[0][1]
    assert kwargs["epochs"] == 3 and kwargs["threads"] == 2 and kwargs["first_n"] == 1000
    assert kwargs["model"] == "study-mnist" and kwargs["data_dir"] == tmp_path / "data"
    markdown = (out / "report.md").read_text()
    assert "## MNIST / study-mnist" in markdown and "## CIFAR-10 / study-cifar10" in markdown
    assert (out / "report.html").is_file()


def test_reproduce_refuses_a_dataset_the_study_did_not_use(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("dnncomp.run.run_pipeline", lambda *a, **k: pytest.fail("must not run"))
    assert main(["reproduce", "--datasets", "imagenet", "--out", str(tmp_path)]) == 2
    assert "imagenet" in capsys.readouterr().err


def test_report_module_imports_no_matplotlib_at_import_time():
    import subprocess
    import sys

    code = "import sys, dnncomp.report; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
    assert report_mod.MATPLOTLIB_HINT.startswith("pip install")


def test_layers_follow_the_network_not_the_flatbuffer_order():
    from dnncomp.report import _tensor_entries

    weights = [
        {"name": "b", "shape": [64], "role": "other", "sparsity": 0.0, "unique": 64},
        {"name": "x", "shape": [64, 5, 5, 32], "role": "kernel", "sparsity": 0.8, "unique": 100},
        {"name": "y", "shape": [10, 1024], "role": "kernel", "sparsity": 0.8, "unique": 100},
        {"name": "z", "shape": [32, 5, 5, 1], "role": "kernel", "sparsity": 0.8, "unique": 100},
        {"name": "w", "shape": [1024, 1024], "role": "kernel", "sparsity": 0.8, "unique": 100},
    ]
    rows = _tensor_entries({"weights": weights})
    assert [r["name"] for r in rows] == ["z", "x", "w", "y"]
    assert rows[0]["label"] == "conv 5×5\n1→32" and rows[-1]["label"] == "dense\n1024→10"


def test_a_dataset_the_study_never_used_gets_no_study_columns_filled(tmp_path):
    run_dir = make_run(tmp_path / "runs", "flowers", model="tiny-flowers", history=False)
    markdown = write_report([run_dir], tmp_path / "out", figures=False)["markdown"].read_text()
    assert "The study and ours, side by side" not in markdown
    qat_row = next(line for line in markdown.splitlines() if line.startswith("| `qat` |"))
    header = next(line for line in markdown.splitlines() if line.startswith("| variant |"))
    assert "study acc." not in header and not qat_row.rstrip(" |").endswith("–")  # no empty study columns at all
    assert qat_row.count("|") == header.count("|")


@pytest.mark.plots
def test_accuracy_against_training_time(tmp_path):
    """Runs whose history has elapsed_s get one shared curve plot; a run with only a manifest wall time
    contributes its end-of-training points; a report with no elapsed_s anywhere has no such section."""
    timed = make_run(tmp_path / "runs", "cifar10", "improved-cifar10", variants=["float", "qat"], anatomy=False)
    history = json.loads((timed / "history.json").read_text())
    history["elapsed_s"] = [55.0 * (e + 1) for e in range(len(history["val_accuracy"]))]
    (timed / "history.json").write_text(json.dumps(history))
    untimed = make_run(tmp_path / "runs", "cifar10", variants=["float", "qat"], anatomy=False)

    points = report_mod.training_time_points(load_run(timed))
    assert points["curve"][0] == pytest.approx((55.0 / 60, 100 * history["val_accuracy"][0]))
    assert points["end"]["qat"] == pytest.approx((321.5 / 60, 99.18))  # manifest baseline wall_s, full test accuracy
    untimed_points = report_mod.training_time_points(load_run(untimed))
    assert untimed_points["curve"] is None and set(untimed_points["end"]) == {"qat", "float"}

    paths = write_report([timed, untimed], tmp_path / "out")
    assert "## Accuracy against training time" in paths["markdown"].read_text()
    figure = tmp_path / "out" / "accuracy-vs-training-time.png"
    assert figure in paths["figures"]
    _png_ok(figure.read_bytes())
    models = tmp_path / "out" / "cifar10-models-accuracy-vs-size.png"  # two models of one dataset: one plot of both
    assert models in paths["figures"] and "## CIFAR-10: the models side by side" in paths["markdown"].read_text()
    _png_ok(models.read_bytes())

    alone = write_report([untimed], tmp_path / "alone")
    assert "Accuracy against training time" not in alone["markdown"].read_text()


# ---- sections without figures, and every machine side by side ------------------------------------


def test_sections_without_figures_need_no_matplotlib(tmp_path, monkeypatch):
    """figures=False writes every section and table, draws nothing and never imports matplotlib."""
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    run_dir = make_run(tmp_path / "runs")
    paths = write_report([run_dir], tmp_path / "out", figures=False)
    markdown = paths["markdown"].read_text()
    assert paths["figures"] == [] and not list((tmp_path / "out").glob("*.png"))
    for heading in (
        "### Results",
        "### Accuracy against size and latency",
        "### Latency distribution",
        "### Inside the pruned and clustered models",
        "### Training history",
        "### Provenance",
        "## The study and ours, side by side",
        "### Why the numbers differ",
    ):
        assert heading in markdown, heading
    assert "![" not in markdown and "data:image/png" not in paths["html"].read_text()
    assert re.search(r"^\| `qat` \| litert \| 99\.18 \| 98\.70 \[", markdown, re.M)


class _Workers:
    """The pipeline's workers without TensorFlow or LiteRT: files of a few bytes, and one latency per machine."""

    def __init__(self, p50_ms: float):
        self.p50_ms = p50_ms

    def data(self, dataset, *, data_dir, image_size, skip_bad):
        from types import SimpleNamespace

        import numpy as np

        rng = np.random.default_rng(0)
        return SimpleNamespace(
            x_train=rng.integers(0, 255, (40, 28, 28, 1), dtype=np.uint8),
            y_train=np.arange(40) % 10,
            x_test=rng.integers(0, 255, (20, 28, 28, 1), dtype=np.uint8),
            y_test=np.arange(20) % 10,
            num_classes=10,
            meta={},
        )

    def train(self, spec, data, settings, run_dir, verbose):
        for name in ("baseline.keras", "baseline.h5"):
            (run_dir / name).write_bytes(name.encode())
        return [run_dir / "baseline.keras", run_dir / "baseline.h5"], {"loss": [1.0], "val_accuracy": [0.5]}

    def compress(self, technique, params, context):
        return f"tflite of {technique}".encode(), {"recipe": technique}

    def evaluate(self, artifact, data, *, first_n, threads, latency_config):
        p50 = self.p50_ms * (0.5 if artifact.stem == "ptq-int8" else 1.0)
        return {
            "accuracy": {"full": 0.9, "full_count": 20, "first_n": 0.9, "first_n_count": 10},
            "latency": {"count": 50, "mean_ms": p50 * 1.1, "p50_ms": p50, "p99_ms": p50 * 2, "threads": threads},
            "size": {"file_bytes": artifact.stat().st_size, "gzip_bytes": artifact.stat().st_size},
        }

    def evaluate_keras(self, baseline, spec, data, *, first_n, preprocessing):
        return {"accuracy": {"full": 0.9, "full_count": 20}, "latency": {"count": 10, "mean_ms": 70.0, "p50_ms": 70.0}}

    def run(self, out: Path, eval_only: bool) -> Path:
        from dnncomp.run import Pipeline, RunConfig, Workers

        config = RunConfig(
            "mnist", model="study-mnist", techniques=["float", "ptq-int8"], out=out, eval_only=eval_only, first_n=10, verbose=0
        )
        workers = Workers(
            load_data=self.data,
            train=self.train,
            compress=self.compress,
            evaluate=self.evaluate,
            evaluate_keras=self.evaluate_keras,
        )
        return Path(Pipeline(config, workers=workers).run())


def test_host_and_device_side_by_side_in_the_results_table(tmp_path, monkeypatch):
    """A run dir measured on the workstation, then `--eval-only` on a Raspberry Pi, then the workstation again:
    results.json (written by the pipeline itself) holds both machines and the report shows both, labelled."""
    import platform

    from dnncomp import results as results_module

    monkeypatch.setenv("DNNCOMP_MACHINE_ID", "workstation-1")
    run_dir = _Workers(p50_ms=0.5).run(tmp_path, eval_only=False)
    with monkeypatch.context() as pi:  # what environment() reads on a Pi 5
        pi.setenv("DNNCOMP_MACHINE_ID", "pi5-lab")
        pi.setattr(results_module, "_board_model", lambda: "Raspberry Pi 5 Model B Rev 1.0")
        pi.setattr(results_module, "_cpu_model", lambda: "Cortex-A76")
        pi.setattr(platform, "machine", lambda: "aarch64")
        assert _Workers(p50_ms=4.0).run(tmp_path, eval_only=True) == run_dir
    _Workers(p50_ms=0.5).run(tmp_path, eval_only=True)  # up to date here: rewrites results.json as the host's
    document = json.loads((run_dir / "results.json").read_text())
    assert document["machine_id"] == "workstation-1" and set(document["measurements"]) == {"workstation-1", "pi5-lab"}

    markdown = write_report([run_dir], tmp_path / "out", figures=False)["markdown"].read_text()
    header = next(line for line in markdown.splitlines() if line.startswith("| variant |"))
    assert "acc. % on Raspberry Pi 5 Model B Rev 1.0 (pi5-lab)" in header
    assert "p50 ms on Raspberry Pi 5 Model B Rev 1.0 (pi5-lab)" in header
    float_row = next(line for line in markdown.splitlines() if line.startswith("| `float` |")).split(" | ")
    headers = header.split(" | ")
    assert float_row[headers.index("p50 ms")] == "0.500"  # the workstation's
    assert float_row[headers.index("p50 ms on Raspberry Pi 5 Model B Rev 1.0 (pi5-lab)")] == "4.000"  # the Pi's
    int8_row = next(line for line in markdown.splitlines() if line.startswith("| `ptq-int8` |")).split(" | ")
    assert int8_row[headers.index("p50 ms on Raspberry Pi 5 Model B Rev 1.0 (pi5-lab)")] == "2.000"
    assert "workstation, aarch64, Cortex-A76" in markdown and "machine id `pi5-lab`" in markdown
    keras_row = next(line for line in markdown.splitlines() if line.startswith("| `baseline-keras` |")).split(" | ")
    assert keras_row[headers.index("p50 ms on Raspberry Pi 5 Model B Rev 1.0 (pi5-lab)")] == "–"  # not measured there


def test_micro_models_beside_resnet8_with_arena_and_flash(tmp_path):
    """Two models of one dataset (issue 15): a section with both, TFLM arena and flash from `run --mcu` per int8
    variant, and the same columns in each run's results table (a dash where TFLM did not run it)."""
    micro = make_run(
        tmp_path / "runs", "cifar10", "micro-cifar10", ["float", "qat"], mcu=True, scale=0.05, history=False, anatomy=False
    )
    resnet8 = make_run(
        tmp_path / "runs", "cifar10", "resnet8-cifar10", ["float", "qat"], mcu=True, scale=0.08, history=False, anatomy=False
    )
    markdown = write_report([micro, resnet8], tmp_path / "out", figures=False)["markdown"].read_text()
    section = markdown.split("## CIFAR-10: the models side by side")[1].split("\n## ")[0]
    rows = [line.strip("| ").split(" | ") for line in section.splitlines() if line.startswith("| ")]
    header, body = rows[0], rows[1:]  # the alignment row starts "|---"
    assert [(r[0], r[1]) for r in body] == [
        ("micro-cifar10", "`float`"),
        ("micro-cifar10", "`qat`"),
        ("resnet8-cifar10", "`float`"),
        ("resnet8-cifar10", "`qat`"),
    ]
    arena, flash = header.index("TFLM arena kB"), header.index("flash kB")
    assert (
        body[1][arena] == f"{1_130_000 * 0.05 // 20 / 1e3:.1f}" and body[3][flash] == f"{(int(1_130_000 * 0.08) + 36) / 1e3:.1f}"
    )
    assert body[0][arena] == "–"  # float: not for microcontrollers
    table = next(line for line in markdown.splitlines() if line.startswith("| variant |") and "TFLM arena kB" in line)
    qat = next(line for line in markdown.splitlines() if line.startswith("| `qat` |")).split(" | ")
    assert qat[table.split(" | ").index("TFLM = LiteRT top-1 %")] == "99.87"
    alone = write_report([micro], tmp_path / "alone", figures=False)["markdown"].read_text()
    assert "the models side by side" not in alone


def test_missing_jinja2_says_how_to_install_and_writes_nothing(monkeypatch, tmp_path):
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "jinja2" or name.startswith("jinja2."):
            raise ImportError("No module named 'jinja2'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(MissingDependencyError, match="pip install"):
        write_report([make_run(tmp_path / "runs")], tmp_path / "out", figures=False)
    assert not (tmp_path / "out" / "report.md").exists()


def test_a_tiny_model_run_on_its_first_500_is_labelled_as_such(tmp_path):
    """The labels follow the run, not the study: its own first-N, its own model, no empty per-layer excuse."""
    run_dir = make_run(tmp_path / "runs", "mnist", model="tiny-mnist", variants=["float", "qat"], anatomy=False, history=False)
    results_path = run_dir / "results.json"
    document = json.loads(results_path.read_text())
    for variant in document["variants"]:
        variant["accuracy"]["first_n_count"] = 500
    results_path.write_text(json.dumps(document))
    markdown = write_report([run_dir], tmp_path / "out", figures=False)["markdown"].read_text()
    assert "our acc. % (first 500)" in markdown and "our acc. % (first 1000)" not in markdown
    assert "the first 500 test images (the study used the first 1000)" in markdown
    assert "`tiny-mnist` is not the study's architecture" in markdown
    assert "trained anew with the study's settings" not in markdown
    assert "no pruned or clustered variant" in markdown and "No per-layer detail" not in markdown
