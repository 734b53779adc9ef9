"""TFLite Micro: arena search, op list, TFLM-vs-LiteRT equivalence, C array export, missing ops (issue 15)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from dnncomp.cli import main
from dnncomp.micro import TFLM_ALIGNMENT, _Worker, align, flash_bytes, resolver_method

tflm = pytest.importorskip("tflite_micro", reason="needs pip install 'dnncomp[mcu]'")


@cache
def _models(data_dir: Path) -> dict[str, bytes]:
    """A small CNN trained 1 epoch on 2000 real MNIST images, as int8 (int8 I/O) and float32; and a
    float model with TOPK_V2, an op TFLM does not have."""
    from dnncomp.keras_env import import_keras

    tf, keras = import_keras()
    keras.utils.set_random_seed(0)
    with np.load(data_dir / "mnist.npz") as z:
        x = z["x_train"][:2000, ..., None].astype(np.float32) / 255.0
        y = z["y_train"][:2000]
    layers = keras.layers
    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Conv2D(8, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(16, 3, activation="relu"),
            layers.GlobalAveragePooling2D(),
            layers.Dense(10),
        ]
    )
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=1, batch_size=64, verbose=0)

    def representative():
        for i in range(0, 200, 10):
            yield [x[i : i + 1]]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    int8 = converter.convert()
    float32 = tf.lite.TFLiteConverter.from_keras_model(model).convert()

    inp = keras.Input((4, 4, 1))
    scores = layers.Dense(10)(layers.Flatten()(inp))
    top = tf.math.top_k(scores, k=10).values  # TOPK_V2: a builtin LiteRT has and TFLM lacks
    topk = tf.lite.TFLiteConverter.from_keras_model(keras.Model(inp, top)).convert()
    return {"int8": int8, "float": float32, "topk": topk}


@pytest.fixture(scope="module")
def models(real_data_dir, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("micro-models")
    paths = {}
    for name, data in _models(real_data_dir).items():
        paths[name] = out / f"{name}.tflite"
        paths[name].write_bytes(data)
    return paths


def test_flash_and_names():
    assert align(1) == 16 and align(16) == 16 and align(17) == 32
    assert flash_bytes(4888) == {"model_bytes": 4888, "aligned_bytes": 4896, "c_array_adds_bytes": 12, "total_bytes": 4900}
    assert resolver_method("CONV_2D") == "AddConv2D"
    assert resolver_method("DEPTHWISE_CONV_2D") == "AddDepthwiseConv2D"
    assert resolver_method("BATCH_MATMUL") == "AddBatchMatMul"


@pytest.mark.tf
@pytest.mark.slow
@pytest.mark.tf  # builds its models (or the case's inputs) with TensorFlow
@pytest.mark.realdata
@pytest.mark.parametrize("kind", ["int8", "float"])
def test_arena_search_finds_what_tflm_needs(models, kind):
    from dnncomp.micro import search_arena

    result = search_arena(models[kind])
    arena = result.arena_bytes
    assert arena is not None and arena % TFLM_ALIGNMENT == 0
    # The interpreter's own account of what it allocated, within its alignment.
    assert result.reported_bytes is not None and abs(arena - result.reported_bytes) < TFLM_ALIGNMENT
    with _Worker(models[kind]) as worker:
        assert worker.request(cmd="probe", arena=arena)["ok"]
        assert not worker.request(cmd="probe", arena=arena - TFLM_ALIGNMENT)["ok"]
        # Far too small crashes TFLM's Python wrapper; the child process absorbs it.
        assert not worker.request(cmd="probe", arena=96)["ok"]
        assert worker.request(cmd="probe", arena=arena)["ok"]


@pytest.mark.tf
@pytest.mark.slow
@pytest.mark.tf  # builds its models (or the case's inputs) with TensorFlow
@pytest.mark.realdata
def test_report_ops_io_and_equivalence(models, real_data_dir):
    from dnncomp.micro import micro_report

    with np.load(real_data_dir / "mnist.npz") as z:
        images = z["x_test"][:300, ..., None]
    report = micro_report(models["int8"], x_uint8=images, dataset="mnist")
    assert report["runs"] and report["missing_ops"] == []
    assert report["ops"] == ["CONV_2D", "MAX_POOL_2D", "MEAN", "FULLY_CONNECTED"]
    assert report["resolver"] == ["AddConv2D", "AddMaxPool2D", "AddMean", "AddFullyConnected"]
    assert report["int8_io"] is True
    assert report["inputs"][0]["dtype"] == "int8" and report["inputs"][0]["scale"] > 0
    assert report["flash"]["model_bytes"] == models["int8"].stat().st_size
    eq = report["equivalence"]
    assert eq["images"] == 300
    assert eq["top1_agreement"] >= 0.99
    assert eq["max_abs_diff"] <= 2  # int8 steps: TFLM's and LiteRT's integer kernels round alike

    float_report = micro_report(models["float"])
    assert float_report["runs"] and float_report["int8_io"] is False


@pytest.mark.tf
@pytest.mark.slow
@pytest.mark.tf  # builds its models (or the case's inputs) with TensorFlow
@pytest.mark.realdata
def test_inspect_target_mcu_cli(models, real_data_dir, tmp_path, capsys):
    out = tmp_path / "inspect.json"
    code = main(
        [
            "inspect",
            str(models["int8"]),
            "--target",
            "mcu",
            "--dataset",
            "mnist",
            "--data-dir",
            str(real_data_dir),
            "--limit",
            "100",
            "--json",
            str(out),
        ]
    )
    text = capsys.readouterr().out
    assert code == 0
    assert re.search(r"TFLM arena [\d,]+ B", text)
    assert "op resolver (4): AddConv2D, AddMaxPool2D, AddMean, AddFullyConnected" in text
    assert "TFLM vs LiteRT on 100 mnist test images" in text
    mcu = json.loads(out.read_text())[str(models["int8"])]["mcu"]
    assert mcu["arena_bytes"] > 0 and mcu["equivalence"]["images"] == 100


@pytest.mark.tf
@pytest.mark.slow
@pytest.mark.tf  # builds its models (or the case's inputs) with TensorFlow
@pytest.mark.realdata
def test_missing_op_is_one_line_not_a_crash(models, capsys, tmp_path):
    code = main(["inspect", str(models["topk"]), "--target", "mcu"])
    text = capsys.readouterr().out
    assert code == 0
    assert "ops TFLM lacks: TOPK_V2" in text
    assert "TFLM cannot run this model: TFLM lacks op(s) TOPK_V2" in text

    code = main(["export", str(models["topk"]), "--c-array", str(tmp_path / "topk")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().count("\n") == 0 and "TOPK_V2" in err and err.startswith("error:")
    assert not (tmp_path / "topk.h").exists()


@pytest.mark.tf
@pytest.mark.slow
@pytest.mark.tf  # builds its models (or the case's inputs) with TensorFlow
@pytest.mark.realdata
def test_c_array_compiles_and_holds_the_model(models, tmp_path, capsys):
    gxx = shutil.which("g++")
    if gxx is None:
        pytest.skip("no g++ on this machine")
    code = main(["export", str(models["int8"]), "--c-array", str(tmp_path / "mnist-int8"), "--arena-margin", "25"])
    assert code == 0, capsys.readouterr().err
    header, source = tmp_path / "mnist-int8.h", tmp_path / "mnist-int8.cc"
    h = header.read_text()
    measured = int(re.search(r"kTensorArenaMeasuredBytes = (\d+);", h).group(1))
    arena = int(re.search(r"kTensorArenaBytes = (\d+);", h).group(1))
    assert arena == align(int(np.ceil(measured * 1.25))) and arena % 16 == 0
    assert "kInputZeroPoint = -128;" in h or re.search(r"kInputZeroPoint = -?\d+;", h)
    # The array's bytes are the model's bytes.
    body = re.search(r"kModelData\[\] = \{(.*?)\};", source.read_text(), re.S).group(1)
    assert bytes(int(b, 16) for b in re.findall(r"0x([0-9a-f]{2})", body)) == models["int8"].read_bytes()

    subprocess.run([gxx, "-c", "-std=c++17", "-Wall", "-Werror", str(source), "-o", str(tmp_path / "model.o")], check=True)
    # A stand-in resolver with the four Add* methods: RegisterOps calls each once; the array is 16-byte aligned.
    (tmp_path / "use.cc").write_text(
        '#include "mnist-int8.h"\n'
        "struct Resolver { unsigned n = 0; int AddConv2D() { return ++n, 0; } int AddMaxPool2D() { return ++n, 0; }\n"
        "  int AddMean() { return ++n, 0; } int AddFullyConnected() { return ++n, 0; } };\n"
        "int main() { Resolver r; bool ok = mnist_int8::RegisterOps(r);\n"
        "  bool aligned = reinterpret_cast<std::uintptr_t>(mnist_int8::kModelData) % 16 == 0;\n"
        "  return ok && aligned && r.n == mnist_int8::kOpCount && mnist_int8::kModelDataLength > 0 ? 0 : 1; }\n"
    )
    subprocess.run(
        [gxx, "-std=c++17", "-Wall", "-Werror", str(tmp_path / "use.cc"), str(tmp_path / "model.o"), "-o", str(tmp_path / "use")],
        check=True,
    )
    assert subprocess.run([str(tmp_path / "use")]).returncode == 0


def test_without_tflite_micro_one_line(monkeypatch, tmp_path, capsys):
    model = tmp_path / "m.tflite"
    model.write_bytes(b"\0\0\0\0TFL3" + b"\0" * 32)
    monkeypatch.setitem(sys.modules, "tflite_micro", None)  # import now raises ImportError
    assert main(["export", str(model), "--c-array", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "pip install 'dnncomp[mcu]'" in err and err.count("\n") == 1


# ---- the micro family and ResNet-8 ------------------------------------------------------------


def test_resnet8_recipe_is_mlperf_tinys():
    from dnncomp.errors import ModelError
    from dnncomp.models import get_model_spec, resolve_model_name
    from dnncomp.train import check_schedule

    spec = get_model_spec("resnet8-cifar10")
    assert (
        resolve_model_name("micro", "cifar10") == "micro-cifar10"
        and resolve_model_name("resnet8", "cifar10") == "resnet8-cifar10"
    )
    assert spec.training["batch_size"] == 32 and spec.output == "softmax"
    recipe = check_schedule(spec.training["schedule"])
    assert recipe["name"] == "adam-exponential" and recipe["learning_rate"] == 1e-3 and recipe["decay_per_epoch"] == 0.99
    assert recipe["augment"]["rotation"] == 15.0 and recipe["augment"]["shift"] == 0.1 and recipe["augment"]["horizontal_flip"]
    with pytest.raises(ModelError, match="decay_per_epoch"):
        check_schedule({**spec.training["schedule"], "decay_per_epoch": 1.5})
    with pytest.raises(ModelError, match="missing key"):
        check_schedule({k: v for k, v in spec.training["schedule"].items() if k != "decay_per_epoch"})


def _int8_flatbuffer(model, input_shape, seed=0) -> bytes:
    """Full-integer conversion of an untrained model, calibrated on random images (the arena depends
    on the architecture only)."""
    from dnncomp.keras_env import import_keras

    tf, _ = import_keras()
    rng = np.random.default_rng(seed)

    def representative():
        for _ in range(4):
            yield [rng.random((1, *input_shape), dtype=np.float32)]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return converter.convert()


@pytest.mark.tf
@pytest.mark.slow
@pytest.mark.tf  # builds its models (or the case's inputs) with TensorFlow
def test_micro_models_within_resnet8_budget_and_arena(tmp_path):
    """Params and MACs read from the converted int8 flatbuffer; arenas measured by the same TFLM search."""
    from dnncomp.anatomy import inspect_model
    from dnncomp.micro import search_arena
    from dnncomp.models import MICRO_BUDGET, RESNET8_PARAMS, build_model, get_model_spec

    arenas = {}
    for name in ("resnet8-cifar10", "micro-cifar10", "micro-mnist", "micro-gtsrb"):
        spec = get_model_spec(name)
        model = build_model(name)
        assert model.count_params() == spec.params_approx
        data = _int8_flatbuffer(model, spec.input_shape)
        anatomy = inspect_model(data, tensors=False)
        budget_params, budget_macs = MICRO_BUDGET[spec.dataset]
        if name == "resnet8-cifar10":
            assert model.count_params() == RESNET8_PARAMS
            assert abs(anatomy["macs"] - 12_500_000) < 0.01 * 12_500_000  # "about 12.5 M MACs"
            assert anatomy["op_counts"].get("ADD") == 3  # three residual stacks
        else:
            assert model.count_params() <= budget_params and anatomy["params"] <= budget_params
            assert anatomy["macs"] <= budget_macs
        if name == "micro-cifar10":
            # its blocks 2 and 3 pool after their second convolution (16x16 and 8x8, as a CIFAR ResNet's
            # stages): the MACs ResNet-8's budget leaves go to resolution, not parameters
            assert anatomy["macs"] == 12_313_056 and "block 2 after its second" in spec.description
        path = tmp_path / f"{name}.tflite"
        path.write_bytes(data)
        arenas[name] = search_arena(path).arena_bytes
    assert arenas["micro-cifar10"] <= arenas["resnet8-cifar10"], arenas


@pytest.mark.tf
@pytest.mark.slow
@pytest.mark.tf  # builds its models (or the case's inputs) with TensorFlow
@pytest.mark.realdata
def test_mcu_side_runs_without_tensorflow(models, tmp_path):
    """inspect --target mcu and export --c-array are device-side: no TensorFlow, in the TFLM child either."""
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(
        "import importlib.abc, sys\n"
        "class NoTF(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in {'tensorflow', 'tf_keras', 'keras', 'tensorflow_model_optimization'}:\n"
        "            raise ImportError(name + ' blocked by the test')\n"
        "sys.meta_path.insert(0, NoTF())\n"
    )
    import os

    env = {**os.environ, "PYTHONPATH": str(blocker) + os.pathsep + str(Path(__file__).resolve().parents[1] / "src")}
    code = (
        "import sys; from dnncomp.cli import main\n"
        f"assert main(['inspect', {str(models['int8'])!r}, '--target', 'mcu']) == 0\n"
        f"assert main(['export', {str(models['int8'])!r}, '--c-array', {str(tmp_path / 'm')!r}]) == 0\n"
        "assert 'tensorflow' not in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "TFLM arena" in done.stdout and (tmp_path / "m.cc").is_file()


@pytest.mark.tf
@pytest.mark.slow
@pytest.mark.tf  # builds its models (or the case's inputs) with TensorFlow
@pytest.mark.realdata
def test_fixed_batch_and_two_output_models(case_inputs, real_data_dir, capsys):
    """A model with its batch fixed at 4 is fed 4 images at a time on both sides; one with two outputs
    keeps its arena and op list, and says why it is not compared."""
    batch4 = case_inputs("12-fixed-batch-tflite") / "batch4.tflite"
    assert (
        main(["inspect", str(batch4), "--target", "mcu", "--dataset", "mnist", "--data-dir", str(real_data_dir), "--limit", "10"])
        == 0
    )
    text = capsys.readouterr().out
    assert "TFLM vs LiteRT on 10 mnist test images:" in text
    assert re.search(
        r"reference kernels \(BUILTIN_REF\): top-1 agreement 100.00 % \(0 differ\), 10 of 10 outputs identical", text
    )

    two_outputs = case_inputs("18-multi-output-tflite") / "two_outputs.tflite"
    assert (
        main(
            [
                "inspect",
                str(two_outputs),
                "--target",
                "mcu",
                "--dataset",
                "mnist",
                "--data-dir",
                str(real_data_dir),
                "--limit",
                "10",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert re.search(r"TFLM arena [\d,]+ B", text) and "TFLM vs LiteRT not compared" in text


@pytest.mark.tf
@pytest.mark.slow
@pytest.mark.tf  # builds its model with TensorFlow
def test_equivalence_tells_litert_kernels_apart(tmp_path, capsys):
    """A tiny residual int8 model (untrained, seeded): TFLM computes bit for bit what LiteRT's reference
    kernels compute; LiteRT's optimized builtin kernels first differ at the convolution without a fused
    ReLU (a negative half rounded up), and the record says which kernels and delegate each comparison ran."""
    from dnncomp.keras_env import import_keras
    from dnncomp.micro import equivalence, equivalence_lines, first_difference, search_arena

    _, keras = import_keras()
    keras.utils.set_random_seed(0)
    layers = keras.layers
    inp = keras.Input((16, 16, 3))
    stem = layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
    branch = layers.Conv2D(8, 3, padding="same")(layers.Conv2D(8, 3, padding="same", activation="relu")(stem))
    out = layers.GlobalAveragePooling2D()(layers.Conv2D(10, 1)(layers.ReLU()(layers.Add()([stem, branch]))))
    path = tmp_path / "residual.tflite"
    path.write_bytes(_int8_flatbuffer(keras.Model(inp, out), (16, 16, 3)))
    x = np.random.default_rng(1).integers(-128, 128, size=(200, 16, 16, 3), dtype=np.int8)

    arena = search_arena(path).arena_bytes
    eq = equivalence(path, x, arena)
    reference, builtin, deployed = (eq["litert"][k] for k in ("reference", "builtin", "deployed"))
    assert eq["compared_with"] == "reference" and eq["top1_agreement"] == reference["top1_agreement"]
    assert (reference["resolver"], builtin["resolver"], deployed["resolver"]) == (
        "BUILTIN_REF",
        "BUILTIN_WITHOUT_DEFAULT_DELEGATES",
        "AUTO",
    )
    assert reference["delegate"] is None and builtin["delegate"] is None
    assert deployed["delegate"] in ("XNNPACK", None) and (deployed["delegate"] is None) == (deployed["ops_delegated"] == 0)
    # Same fixed-point arithmetic: every output identical, hence no first difference.
    assert reference["outputs_identical"] == 200 and reference["max_abs_diff"] == 0 and "first_difference" not in reference
    # The optimized kernels' rounding shows where an output can go negative: the second convolution of the branch.
    assert builtin["outputs_identical"] < 200
    first = builtin["first_difference"]
    assert (first["op"], first["fused_activation"], first["max_abs_diff"]) == ("CONV_2D", "NONE", 1.0), first
    if deployed["delegate"]:  # XNNPACK requantizes in float32: a one-step difference from the first layer on
        assert deployed["first_difference"]["op"] == "CONV_2D" and deployed["first_difference"]["max_abs_diff"] == 1.0
    again = first_difference(path, x[first["image"]], "builtin")
    assert {k: again[k] for k in ("op_index", "values_differ")} == {k: first[k] for k in ("op_index", "values_differ")}

    text = "\n".join(equivalence_lines({"dataset": "random", **eq}, "int8"))
    assert "reference kernels (BUILTIN_REF): top-1 agreement 100.00 % (0 differ" in text
    assert "200 of 200 outputs identical, largest raw difference 0 int8 steps" in text
    assert f"first differs at op {first['op_index']} CONV_2D, no fused activation" in text
    assert "why they differ: kernel rounding, not the model" in text
