"""The architecture registry: names, specs without TensorFlow, and the study's exact models."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from dnncomp.errors import ModelError
from dnncomp.models import default_model_for, get_model_spec, list_models, resolve_model_name

# SPEC.md: "float params (approx.)"
SPEC_PARAMS = {"study-mnist": 1.1e6, "study-cifar10": 1.25e6, "study-gtsrb": 1.17e6}

# (class, filters/units/rate/size, kernel, padding, activation) per layer, as SPEC.md lists them
SPEC_LAYERS = {
    "study-mnist": [
        ("Reshape", (28, 28, 1)),
        ("Conv2D", 32, (5, 5), "valid", "relu"),
        ("MaxPooling2D", (2, 2)),
        ("Conv2D", 64, (5, 5), "valid", "relu"),
        ("MaxPooling2D", (2, 2)),
        ("Flatten",),
        ("Dense", 1024, "relu"),
        ("Dense", 10, "linear"),
    ],
    "study-cifar10": [
        ("Conv2D", 32, (3, 3), "same", "relu"),
        ("Conv2D", 32, (3, 3), "valid", "relu"),
        ("MaxPooling2D", (2, 2)),
        ("Dropout", 0.25),
        ("Conv2D", 64, (3, 3), "same", "relu"),
        ("Conv2D", 64, (3, 3), "valid", "relu"),
        ("MaxPooling2D", (2, 2)),
        ("Dropout", 0.25),
        ("Flatten",),
        ("Dense", 512, "relu"),
        ("Dropout", 0.5),
        ("Dense", 10, "softmax"),
    ],
    "study-gtsrb": [
        ("Conv2D", 16, (3, 3), "valid", "relu"),
        ("Conv2D", 32, (3, 3), "valid", "relu"),
        ("MaxPooling2D", (2, 2)),
        ("Conv2D", 64, (3, 3), "valid", "relu"),
        ("Conv2D", 128, (3, 3), "valid", "relu"),
        ("MaxPooling2D", (2, 2)),
        ("Flatten",),
        ("Dense", 512, "relu"),
        ("Dropout", 0.5),
        ("Dense", 43, "softmax"),
    ],
}


def _describe(layer) -> tuple:
    cfg = layer.get_config()
    kind = type(layer).__name__
    if kind == "Conv2D":
        return (kind, cfg["filters"], tuple(cfg["kernel_size"]), cfg["padding"], cfg["activation"])
    if kind == "Dense":
        return (kind, cfg["units"], cfg["activation"])
    if kind == "MaxPooling2D":
        return (kind, tuple(cfg["pool_size"]))
    if kind == "Dropout":
        return (kind, cfg["rate"])
    if kind == "Reshape":
        return (kind, tuple(cfg["target_shape"]))
    return (kind,)


def test_study_specs():
    names = [spec.name for spec in list_models()]
    assert {"study-mnist", "study-cifar10", "study-gtsrb"} <= set(names)
    mnist, cifar, gtsrb = (get_model_spec(f"study-{d}") for d in ("mnist", "cifar10", "gtsrb"))
    assert (mnist.input_shape, mnist.image_size, mnist.channels, mnist.output, mnist.num_classes) == (
        (28, 28),
        (28, 28),
        1,
        "logits",
        10,
    )
    assert (cifar.input_shape, cifar.image_size, cifar.output, cifar.num_classes) == ((32, 32, 3), (32, 32), "softmax", 10)
    assert (gtsrb.input_shape, gtsrb.image_size, gtsrb.output, gtsrb.num_classes) == ((30, 30, 3), (30, 30), "softmax", 43)
    assert mnist.from_logits and not cifar.from_logits
    for spec in (mnist, cifar):
        assert spec.training == {"epochs": 50, "batch_size": 32, "patience": 5, "validation": "last:0.2"}
    assert gtsrb.training["validation"] == "random:0.25"
    json.dumps([spec.to_dict() for spec in list_models()])


def test_name_resolution():
    assert default_model_for("cifar10") == "study-cifar10"
    assert resolve_model_name(None, "mnist") == "study-mnist"
    assert resolve_model_name("study", "gtsrb") == "study-gtsrb"
    assert resolve_model_name("study-cifar10", "cifar10") == "study-cifar10"
    assert resolve_model_name("improved", "cifar10") == "improved-cifar10"
    assert resolve_model_name("tiny", "mnist") == "tiny-mnist"
    with pytest.raises(
        ModelError, match=r"known models: improved-cifar10, .*study-mnist.*\(or a family: improved, micro, resnet8, study, tiny\)"
    ):
        resolve_model_name("resnet", "cifar10")
    with pytest.raises(ModelError, match="known models"):
        get_model_spec("resnet50")
    with pytest.raises(ModelError, match="pass --model"):
        default_model_for("folder:/tmp/x")


def test_registry_and_recipes_import_without_tensorflow():
    code = (
        "import sys; sys.modules['tensorflow'] = None; sys.modules['tf_keras'] = None\n"
        "from dnncomp.models import get_model_spec, resolve_model_name\n"
        "from dnncomp.compress import list_recipes, get_recipe\n"
        "import dnncomp.train, dnncomp.export\n"
        "assert get_model_spec(resolve_model_name('study', 'gtsrb')).image_size == (30, 30)\n"
        "print(','.join(r.name for r in list_recipes()), get_recipe('prune').resolve_params({'end_step': '10'})['end_step'])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    names, end_step = out.split()
    assert {"float", "qat", "prune", "cluster"} <= set(names.split(",")) and end_step == "10"


@pytest.mark.tf
@pytest.mark.parametrize("name", sorted(SPEC_PARAMS))
def test_study_model_is_the_papers(name):
    from dnncomp.models import build_model

    model = build_model(name)
    spec = get_model_spec(name)
    assert model.count_params() == spec.params_approx
    assert abs(model.count_params() - SPEC_PARAMS[name]) <= 0.05 * SPEC_PARAMS[name]
    assert tuple(model.input_shape[1:]) == spec.input_shape
    assert tuple(model.output_shape) == (None, spec.num_classes)
    assert [_describe(layer) for layer in model.layers] == SPEC_LAYERS[name]
    assert build_model(name) is not model  # a fresh model every time
