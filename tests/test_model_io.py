"""Model files: Keras 2 and Keras 3 .keras/.h5, SavedModel directories, the Lambda guard (issue 11, case 13)."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from dnncomp.errors import ModelError
from dnncomp.model_io import inspect_model_file, load_model, saved_model_config

# ---- no TensorFlow: what a file is, read without deserialising -----------------------------


def test_not_model_files_are_one_line_model_errors(tmp_path):
    with pytest.raises(ModelError, match="missing.keras: model file not found"):
        inspect_model_file(tmp_path / "missing.keras")
    (tmp_path / "junk.keras").write_bytes(b"not a zip")
    with pytest.raises(ModelError, match="junk.keras: not a readable Keras model file"):
        inspect_model_file(tmp_path / "junk.keras")
    with zipfile.ZipFile(tmp_path / "other.keras", "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(ModelError, match="other.keras: a zip without config.json"):
        inspect_model_file(tmp_path / "other.keras")
    (tmp_path / "model.pb").write_bytes(b"x")
    with pytest.raises(ModelError, match="model.pb: unsupported model file"):
        inspect_model_file(tmp_path / "model.pb")
    garbage = tmp_path / "garbage_dir"
    garbage.mkdir()
    (garbage / "notes.txt").write_text("x")
    with pytest.raises(ModelError, match="garbage_dir: a directory without saved_model.pb"):
        load_model(garbage)
    for error in _errors(lambda: saved_model_config(garbage), lambda: load_model(tmp_path / "junk.keras")):
        assert "\n" not in str(error)


def test_weights_only_h5_is_refused(tmp_path):
    import h5py

    path = tmp_path / "model.weights.h5"
    with h5py.File(path, "w") as h5:
        h5.create_dataset("layers/dense/vars/0", data=np.zeros((4, 2), np.float32))
    with pytest.raises(ModelError, match="model.weights.h5: an HDF5 file without a model config \\(weights only\\?\\)"):
        load_model(path)


def test_keras_version_and_lambdas_from_the_config(tmp_path):
    config = {
        "class_name": "Sequential",
        "config": {
            "name": "s",
            "layers": [
                {"class_name": "InputLayer", "config": {"batch_shape": [None, 4], "name": "in"}},
                {"class_name": "Lambda", "config": {"name": "doubler"}},
            ],
        },
    }
    path = tmp_path / "k3.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", json.dumps(config))
        archive.writestr("metadata.json", json.dumps({"keras_version": "3.15.1"}))
    info = inspect_model_file(path)
    assert info.kind == "keras" and info.keras_major == 3 and info.lambdas == ["doubler"]
    with pytest.raises(ModelError, match="Lambda layers \\(doubler\\).*--unsafe"):
        load_model(path)  # refused before anything is deserialised: no TensorFlow needed to say no


def _errors(*calls):
    for call in calls:
        try:
            call()
        except ModelError as exc:
            yield exc


# ---- Keras 2 files: the Lambda guard and --unsafe -----------------------------------------


@pytest.mark.tf
@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:You are saving your model as an HDF5 file")
@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_lambda_refused_without_unsafe(tmp_path, suffix):
    from dnncomp.keras_env import import_keras
    from dnncomp.train import load_baseline

    _, keras = import_keras()
    model = keras.Sequential(
        [keras.Input(shape=(4,)), keras.layers.Lambda(lambda t: t * 2, name="doubler"), keras.layers.Dense(2)]
    )
    path = tmp_path / f"evil{suffix}"
    model.save(path)
    with pytest.raises(ModelError, match="Lambda layers \\(doubler\\).*--unsafe"):
        load_baseline(path)
    x = np.ones((3, 4), np.float32)
    loaded = load_baseline(path, unsafe=True)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


@pytest.mark.tf
@pytest.mark.slow
def test_unsafe_loading_block_sets_the_default(tmp_path):
    from dnncomp.keras_env import import_keras
    from dnncomp.model_io import unsafe_loading

    _, keras = import_keras()
    model = keras.Sequential([keras.Input(shape=(4,)), keras.layers.Lambda(lambda t: t + 1, name="plus_one")])
    path = tmp_path / "lambda.keras"
    model.save(path)
    with unsafe_loading():
        assert "--unsafe" in load_model(path).note
    with pytest.raises(ModelError, match="plus_one"):
        load_model(path)  # outside the block: refused again


@pytest.mark.tf
@pytest.mark.slow
def test_savedmodel_dirs(tmp_path):
    from dnncomp.keras_env import import_keras

    tf, keras = import_keras()
    model = keras.Sequential([keras.Input(shape=(6,)), keras.layers.Dense(3, activation="softmax")])
    model.save(str(tmp_path / "keras_sm"), save_format="tf")
    x = np.random.default_rng(0).uniform(size=(5, 6)).astype(np.float32)
    loaded = load_model(tmp_path / "keras_sm")
    assert loaded.info.kind == "savedmodel"
    np.testing.assert_allclose(loaded.model.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)

    with_lambda = keras.Sequential([keras.Input(shape=(6,)), keras.layers.Lambda(lambda t: t * 3, name="triple")])
    with_lambda.save(str(tmp_path / "lambda_sm"), save_format="tf")
    with pytest.raises(ModelError, match="lambda_sm: refusing to load a model with Lambda layers \\(triple\\).*--unsafe"):
        load_model(tmp_path / "lambda_sm")
    np.testing.assert_allclose(load_model(tmp_path / "lambda_sm", unsafe=True).model.predict(x, verbose=0), x * 3, rtol=1e-6)

    module = tf.Module()
    module.v = tf.Variable(1.0)
    module.f = tf.function(lambda t: t * module.v, input_signature=[tf.TensorSpec([None, 6], tf.float32)])
    tf.saved_model.save(module, str(tmp_path / "plain_sm"))
    with pytest.raises(
        ModelError, match="plain_sm: a TensorFlow SavedModel without Keras metadata.*model.save\\('model.keras'\\)"
    ):
        load_model(tmp_path / "plain_sm")

    keras3 = _keras3()
    keras3.Sequential([keras3.Input((6,)), keras3.layers.Dense(3)]).export(str(tmp_path / "k3_export"), verbose=False)
    with pytest.raises(ModelError, match="k3_export: a TensorFlow SavedModel without Keras metadata.*Keras 3's model.export"):
        load_model(tmp_path / "k3_export")


# ---- Keras 3 files: translated, weights copied, outputs equal -----------------------------


def _keras3():
    keras3 = pytest.importorskip("keras")
    if not keras3.__version__.startswith("3."):
        pytest.skip(f"keras {keras3.__version__} is not Keras 3")
    return keras3


def _keras3_model(keras3, seed: int = 0):
    """A functional Keras 3 CNN on MNIST-shaped input with the layers users have: rescaling, a nested Sequential,
    batch norm, a residual Add, depthwise conv, regularizer, softmax; random weights (BN statistics too)."""
    L = keras3.layers
    inner = keras3.Sequential([keras3.Input((28, 28, 8)), L.Conv2D(8, 3, padding="same"), L.BatchNormalization()], name="block")
    image = keras3.Input((28, 28, 1), name="image")
    x = L.Rescaling(1 / 255.0)(image)
    x = L.Conv2D(8, 3, padding="same", activation="relu", kernel_regularizer=keras3.regularizers.L2(1e-4))(x)
    x = L.Add()([x, inner(x)])
    x = L.DepthwiseConv2D(3, padding="same")(x)
    x = L.MaxPooling2D(2)(x)
    x = L.GlobalAveragePooling2D()(x)
    out = L.Dense(10, activation="softmax")(x)
    model = keras3.Model(image, out)
    rng = np.random.default_rng(seed)
    model.set_weights(
        [
            rng.uniform(0.5, 1.5, w.shape).astype(np.float32)
            if "variance" in v.path
            else rng.normal(0, 0.3, w.shape).astype(np.float32)
            for v, w in zip(model.weights, model.get_weights())
        ]
    )
    return model


@pytest.mark.tf
@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:You are saving your model as an HDF5 file")
@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_keras3_file_is_translated_with_equal_outputs_on_real_images(tmp_path, real_data_dir, suffix):
    keras3 = _keras3()
    from dnncomp.data import load_dataset

    model3 = _keras3_model(keras3)
    path = tmp_path / f"k3{suffix}"
    model3.save(path)
    images = load_dataset("mnist", data_dir=real_data_dir).x_test[:200].astype(np.float32)  # raw pixels: the model rescales
    images = images.reshape(-1, 28, 28, 1)

    loaded = load_model(path)
    assert loaded.info.keras_major == 3 and "translated to Keras 2" in loaded.note
    assert type(loaded.model).__module__.startswith("tf_keras")
    expected = model3.predict(images, verbose=0)
    got = loaded.model.predict(images, verbose=0)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert (np.argmax(got, 1) == np.argmax(expected, 1)).all()
    assert [layer.name for layer in loaded.model.layers] == [layer.name for layer in model3.layers]
    # every load is a fresh model: recipes must never share layers
    assert load_model(path).model is not loaded.model


@pytest.mark.tf
@pytest.mark.slow
def test_keras3_custom_layer_is_one_line_naming_it(tmp_path):
    keras3 = _keras3()

    @keras3.saving.register_keras_serializable(package="test_model_io")
    class Doubler(keras3.layers.Layer):
        def call(self, x):
            return x * 2

    model = keras3.Sequential([keras3.Input((4,)), Doubler(name="my_doubler"), keras3.layers.Dense(2)])
    path = tmp_path / "custom.keras"
    model.save(path)
    with pytest.raises(ModelError) as info:
        load_model(path)
    message = str(info.value)
    assert "custom.keras" in message and "my_doubler" in message and "Doubler" in message and "\n" not in message


# ---- case 13: every file converts, at the accuracy of the model it came from --------------


def _tflite_accuracy(path, images_uint8, labels) -> float:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    inp = interpreter.get_input_details()[0]
    shape = [len(images_uint8), *inp["shape"][1:]]
    interpreter.resize_tensor_input(inp["index"], shape)
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    x = images_uint8.reshape(shape).astype(np.float32) / 255.0
    if inp["dtype"] != np.float32:
        scale, zero = inp["quantization"]
        info = np.iinfo(inp["dtype"])
        x = np.clip(np.round(x / scale + zero), info.min, info.max).astype(inp["dtype"])
    interpreter.set_tensor(inp["index"], x)
    interpreter.invoke()
    scores = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    return float(np.mean(np.argmax(scores, 1) == labels))


@pytest.mark.tf
@pytest.mark.slow
def test_case13_keras3_and_savedmodel_files_compress(case_inputs, real_data_dir, tmp_path, capsys):
    from dnncomp.cli import main
    from dnncomp.data import load_dataset

    d = case_inputs("13-keras3-savedmodel-files")
    test = load_dataset("mnist", data_dir=real_data_dir)
    x, y = test.x_test[:2000], test.y_test[:2000]
    keras3 = _keras3()
    reference = {  # the accuracy of the model each file holds, computed by the Keras that wrote it
        "k3.keras": float(
            np.mean(np.argmax(keras3.saving.load_model(d / "k3.keras", compile=False).predict(x / 255.0, verbose=0), 1) == y)
        ),
        "k2_savedmodel": float(np.mean(np.argmax(load_model(d / "k2.keras").model.predict(x / 255.0, verbose=0), 1) == y)),
    }
    reference["k3.h5"] = reference["k3.keras"]  # the same Keras 3 model, saved twice
    runs = [("k3.keras", "float"), ("k3.h5", "float"), ("k3.h5", "ptq-int8"), ("k2_savedmodel", "float")]
    for name, recipe in runs:
        out = tmp_path / f"{name.replace('.', '_')}-{recipe}.tflite"
        code = main(
            [
                "compress",
                str(d / name),
                "--dataset",
                "mnist",
                "--data-dir",
                str(real_data_dir),
                "--recipe",
                recipe,
                "--out",
                str(out),
                "--quiet",
            ]
        )
        assert code == 0, (name, recipe)
        said = capsys.readouterr().out
        if name.startswith("k3"):  # said once, after checking the translation on the dataset's images
            assert said.count("translated to Keras 2") == 1 and "outputs equal on 64 images of the data" in said, said
        accuracy = _tflite_accuracy(out, x, y)
        assert abs(accuracy - reference[name]) <= 0.01, (name, recipe, accuracy, reference[name])


@pytest.mark.tf
@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:You are saving your model as an HDF5 file")
@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_keras3_lambda_only_with_unsafe(tmp_path, suffix):
    keras3 = _keras3()
    model = keras3.Sequential(
        [keras3.Input((4,)), keras3.layers.Lambda(lambda t: t * 2 + 1, name="affine"), keras3.layers.Dense(2)]
    )
    path = tmp_path / f"lambda3{suffix}"
    model.save(path)
    with pytest.raises(ModelError, match="Lambda layers \\(affine\\).*--unsafe"):
        load_model(path)
    loaded = load_model(path, unsafe=True)
    assert "translated to Keras 2" in loaded.note and "--unsafe" in loaded.note
    x = np.random.default_rng(0).uniform(size=(5, 4)).astype(np.float32)
    np.testing.assert_allclose(loaded.model.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


@pytest.mark.tf
@pytest.mark.slow
def test_compress_cli_lambda_needs_unsafe(tmp_path, real_data_dir, capsys):
    from dnncomp.cli import main
    from dnncomp.keras_env import import_keras

    _, keras = import_keras()
    L = keras.layers
    model = keras.Sequential([keras.Input((28, 28, 1)), L.Lambda(lambda t: t * 1.0, name="identity"), L.Flatten(), L.Dense(10)])
    path = tmp_path / "with_lambda.keras"
    model.save(path)
    args = [
        "compress",
        str(path),
        "--dataset",
        "mnist",
        "--data-dir",
        str(real_data_dir),
        "--recipe",
        "float",
        "--out",
        str(tmp_path / "out.tflite"),
        "--quiet",
    ]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert (
        "Lambda layers (identity)" in err and "--unsafe" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    )
    assert not (tmp_path / "out.tflite").exists()
    assert main(args + ["--unsafe"]) == 0
    assert (tmp_path / "out.tflite").stat().st_size > 0


@pytest.mark.tf
@pytest.mark.slow
def test_keras2_custom_class_is_one_line_naming_it(tmp_path):
    from dnncomp.keras_env import import_keras

    _, keras = import_keras()
    keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="head")]).save(tmp_path / "standard.keras")
    with zipfile.ZipFile(tmp_path / "standard.keras") as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(files["config.json"])
    config["config"]["layers"][1].update(class_name="MyDense", module="mypackage.layers")  # as a user's own class saves
    files["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(tmp_path / "custom.keras", "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    with pytest.raises(ModelError) as info:
        load_model(tmp_path / "custom.keras")
    assert str(info.value) == (
        f"{tmp_path / 'custom.keras'}: layer head is of class MyDense, not a standard Keras layer "
        "(a custom class); dnncomp loads standard layers only: rebuild the model from them"
    )


@pytest.mark.tf
@pytest.mark.slow
def test_run_says_that_a_users_keras3_file_was_translated(tmp_path):
    """`run --model my.keras` loads the user's file through model_io and passes on what loading did."""
    from dnncomp.run_target import load_user_model

    keras3 = _keras3()
    path = tmp_path / "mine.keras"
    _keras3_model(keras3).save(path)
    notes: list[str] = []
    model = load_user_model(path, notes)
    assert model.output_shape == (None, 10)
    assert len(notes) == 1 and "Keras 3" in notes[0]
