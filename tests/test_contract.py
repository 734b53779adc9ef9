"""The model file's contract: input layout, classes, logits/softmax, its own normalisation (dnncomp.contract)."""

from __future__ import annotations

import numpy as np
import pytest

from dnncomp.errors import ModelError
from dnncomp.models import get_model_spec
from dnncomp.preprocess import Preprocessing, input_layout


def _contract(input_shape, num_classes=10, output="logits", preprocessing=None):
    from dnncomp.contract import ModelContract

    return ModelContract(
        path="m.keras",
        name="m",
        input_shape=input_shape,
        layout=input_layout(input_shape),
        num_classes=num_classes,
        output=output,
        output_reason="test",
        preprocessing=preprocessing,
        normalisation="rescaling" if preprocessing else None,
    )


def test_a_registered_model_agrees_with_a_file_of_the_same_image_in_another_layout():
    from dnncomp.contract import check_agrees

    check_agrees(_contract((28, 28, 1)), get_model_spec("study-mnist"), what="--model")  # (28, 28) is the same image
    check_agrees(_contract((784,)), get_model_spec("study-mnist"), what="--model")
    with pytest.raises(ModelError, match="m.keras takes 28x28x1 images and has 10 classes, but --model study-cifar10"):
        check_agrees(_contract((28, 28, 1)), get_model_spec("study-cifar10"), what="--model")
    with pytest.raises(ModelError, match="has 5 classes"):
        check_agrees(_contract((28, 28), num_classes=5), get_model_spec("study-mnist"), what="--model")


def test_spec_from_contract_takes_shape_classes_and_output_from_the_file():
    from dnncomp.contract import spec_from_contract

    spec = spec_from_contract(_contract((28, 28, 1), output="softmax"), "mnist")
    assert (spec.input_shape, spec.num_classes, spec.from_logits, spec.name) == ((28, 28, 1), 10, False, "m.keras")
    assert "fine_tune_learning_rate" not in spec.training
    lent = spec_from_contract(_contract((32, 32, 3), output="logits"), "cifar10", get_model_spec("study-cifar10"))
    assert lent.name == "study-cifar10" and lent.from_logits  # the registry says softmax; the file decides
    assert lent.training == get_model_spec("study-cifar10").training


def test_preprocessing_the_model_decides_the_user_or_the_stated_default():
    from dnncomp.contract import resolve_preprocessing

    assumed = resolve_preprocessing(_contract((28, 28)), None)
    assert assumed.input_range == (0.0, 1.0) and assumed.assumed
    given = Preprocessing(input_range=(-1.0, 1.0), source="command line")
    assert resolve_preprocessing(_contract((28, 28)), given) is given
    own = Preprocessing(input_range=(0.0, 255.0), source="model: Rescaling inside")
    assert resolve_preprocessing(_contract((28, 28), preprocessing=own), None) is own
    assert resolve_preprocessing(_contract((28, 28), preprocessing=own), Preprocessing(input_range=(0.0, 255.0))) is own
    with pytest.raises(ModelError, match="normalises its own input"):
        resolve_preprocessing(_contract((28, 28), preprocessing=own), given)


def test_model_inputs_follow_the_layout_and_the_preprocessing():
    from dnncomp.models import ModelSpec
    from dnncomp.train import model_inputs

    x = np.arange(2 * 28 * 28, dtype=np.uint32).reshape(2, 28, 28, 1).astype(np.uint8)
    study = model_inputs(get_model_spec("study-mnist"), x)
    assert study.shape == (2, 28, 28) and np.array_equal(study, x[..., 0].astype(np.float32) * np.float32(1 / 255))
    flat = ModelSpec(name="mlp", family="user", dataset="mnist", input_shape=(784,), num_classes=10, output="logits")
    assert np.array_equal(model_inputs(flat, x), study.reshape(2, 784))
    raw = model_inputs(flat, x, Preprocessing(input_range=(0.0, 255.0)))
    assert np.allclose(raw, x.reshape(2, 784).astype(np.float32))
    signed = model_inputs(get_model_spec("study-mnist"), x, Preprocessing(input_range=(-1.0, 1.0)))
    assert np.allclose(signed, study * 2 - 1, atol=1e-6)


@pytest.mark.tf
@pytest.mark.slow
def test_read_contract_of_common_keras_classifiers():
    from dnncomp.contract import read_contract
    from dnncomp.keras_env import import_keras

    _, keras = import_keras()
    L = keras.layers
    cnn = keras.Sequential([keras.Input((28, 28, 1)), L.Conv2D(2, 3), L.Flatten(), L.Dense(10, activation="softmax")])
    c = read_contract(cnn, path="cnn.keras")
    assert (c.input_shape, c.layout.kind, c.channels, c.num_classes, c.output) == ((28, 28, 1), "HWC", 1, 10, "softmax")
    assert c.preprocessing is None

    mlp = keras.Sequential([keras.Input((784,)), L.Dense(8, activation="relu"), L.Dense(10)])
    c = read_contract(mlp, path="mlp.keras")
    assert (c.layout.kind, c.layout.image_size, c.output) == ("flat", (28, 28), "logits")

    inner = keras.Sequential([keras.Input((4,)), L.Dense(5), L.Softmax()], name="head")
    x = keras.Input((3, 16, 16))  # channel-first
    nested = keras.Model(x, inner(L.Dense(4)(L.Flatten()(x))))
    c = read_contract(nested, path="nested.keras")
    assert (c.layout.kind, c.channels, c.num_classes, c.output) == ("CHW", 3, 5, "softmax")
    assert "inside head" in c.output_reason

    trailing = keras.Sequential([keras.Input((8, 8, 3)), L.Flatten(), L.Dense(4), L.Activation("softmax"), L.Dropout(0.1)])
    assert read_contract(trailing, path="t.keras").output == "softmax"

    raw = keras.Sequential([keras.Input((28, 28)), L.Reshape((28, 28, 1)), L.Rescaling(1 / 255.0), L.Flatten(), L.Dense(10)])
    c = read_contract(raw, path="raw.keras")
    assert c.preprocessing.input_range == (0.0, 255.0) and "Rescaling" in c.normalisation
    unit = keras.Sequential([keras.Input((28, 28)), L.Rescaling(2.0, offset=-1.0), L.Flatten(), L.Dense(10)])
    assert read_contract(unit, path="unit.keras").preprocessing.input_range == (0.0, 1.0)

    a, b = keras.Input((4,)), keras.Input((4,))
    two = keras.Model([a, b], L.Dense(3)(L.Concatenate()([a, b])))
    with pytest.raises(ModelError, match="two.keras: has 2 input"):
        read_contract(two, path="two.keras")
    regression = keras.Sequential([keras.Input((8, 8, 1)), L.Flatten(), L.Dense(1)])
    with pytest.raises(ModelError, match="not a vector of class scores"):
        read_contract(regression, path="r.keras")


@pytest.mark.tf
@pytest.mark.slow
def test_a_batch_norm_after_a_dense_is_folded_into_it_exactly():
    from dnncomp.compress.quantize import fold_dense_batch_norms
    from dnncomp.keras_env import import_keras

    _, keras = import_keras()
    L = keras.layers
    rng = np.random.default_rng(0)

    def with_statistics(model):
        for layer in model.layers:
            if isinstance(layer, L.BatchNormalization):  # non-trivial statistics, as after training
                n = layer.gamma.shape[0]
                layer.set_weights([rng.uniform(0.5, 2, n), rng.normal(0, 1, n), rng.normal(0, 1, n), rng.uniform(0.5, 2, n)])
        return model

    sequential = with_statistics(
        keras.Sequential(
            [
                keras.Input((6,)),
                L.Dense(5, use_bias=False),
                L.BatchNormalization(),
                L.ReLU(),
                L.Dense(3),
            ]
        )
    )
    x = keras.Input((6,))
    h = L.Dense(5, activation="relu")(x)  # activated: nothing to fold
    functional = with_statistics(keras.Model(x, L.BatchNormalization()(L.Dense(3)(L.BatchNormalization()(h)))))
    probe = rng.uniform(0, 1, (8, 6)).astype(np.float32)
    for model, expected_folds in ((sequential, 1), (functional, 1)):
        folded, pairs = fold_dense_batch_norms(model)
        assert len(pairs) == expected_folds
        bns = [layer for layer in folded.layers if isinstance(layer, L.BatchNormalization)]
        assert len(bns) == sum(isinstance(layer, L.BatchNormalization) for layer in model.layers) - expected_folds
        assert np.allclose(model(probe, training=False).numpy(), folded(probe, training=False).numpy(), atol=1e-5)
