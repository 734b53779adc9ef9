"""Issue 11: images of another size than the model's input (--fit resize|pad|crop, kept in the sidecar),
and TFLite Support metadata deciding the input range. Device side: no TensorFlow, seconds.
"""

from __future__ import annotations

import json

import flatbuffers
import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as s
from PIL import Image

from dnncomp.cli import main
from dnncomp.errors import ModelError
from dnncomp.evaluate import model_input_spec, prepare_inputs
from dnncomp.preprocess import (
    Fit,
    Preprocessing,
    choose_fit,
    load_fitted,
    preprocessing_from_options,
    read_sidecar,
    write_sidecar,
)
from dnncomp.signature import read_metadata
from tiny_tflite import tiny_flatbuffer

# ---- --fit --------------------------------------------------------------------------------


def digits(n=6, size=28, seed=0):
    """Grey 'digits': a bright blob on a black background, as MNIST's."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, size, size, 1), dtype=np.uint8)
    for i in range(n):
        top, left = rng.integers(4, size - 12, size=2)
        x[i, top : top + 8, left : left + 8] = rng.integers(150, 255)
    return x


def test_smaller_grey_images_are_padded_with_their_background_and_anything_else_resized():
    fit, note = choose_fit(digits(), (32, 32))
    assert fit.mode == "pad" and fit.fill == (0,) and "LeNet" in note and "--fit resize" in note
    white_paper = 255 - digits()  # dark digits on white: the background is white
    assert choose_fit(white_paper, (32, 32))[0].fill == (255,)
    colour = np.repeat(digits(), 3, axis=-1)
    assert choose_fit(colour, (32, 32))[0].mode == "resize"  # colour photos: no digit convention
    assert choose_fit(digits(size=40), (32, 32))[0].mode == "resize"  # larger: resized unless asked
    assert choose_fit(digits(), (28, 28)) == (None, None)  # same size: nothing to fit
    asked, note = choose_fit(digits(), (32, 32), "resize")
    assert asked.mode == "resize" and "(--fit)" in note


def test_pad_is_numpys_centred_pad_and_crop_takes_the_centre():
    x = digits()
    padded = Fit("pad", (0,)).apply(x, (32, 32))
    assert np.array_equal(padded, np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0))))  # the LeNet-5 convention
    assert np.array_equal(Fit("crop").apply(padded, (28, 28)), x)
    odd = Fit("pad", (7,)).apply(x[:, :27, :27], (32, 32))  # odd difference: the extra row after the image
    assert odd[0, 2, 2] == x[0, 0, 0] and (odd[:, :2] == 7).all() and (odd[:, -3:] == 7).all()
    with pytest.raises(ModelError, match="--fit 'stretch'"):
        Fit("stretch")


def test_the_fit_travels_in_the_sidecar_and_the_device_pads_as_it_says(tmp_path):
    model = tmp_path / "lenet.tflite"
    model.write_bytes(tiny_flatbuffer(input_shape=(1, 32, 32, 1)))
    write_sidecar(model, Preprocessing(source="test").with_fit(Fit("pad", (0,), "chosen")))
    stored = read_sidecar(model)
    assert stored.fit.mode == "pad" and stored.fit.fill == (0,) and stored.fit.source.startswith("sidecar")
    spec = model_input_spec(model)
    x = digits()
    fed = prepare_inputs(x, spec)
    assert fed.shape == (6, 32, 32, 1)
    assert np.allclose(fed, np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0))) / 255.0)


def _grey_folder(root, size=28, per_class=4):
    for k, name in enumerate(("a", "b")):
        (root / name).mkdir(parents=True)
        for i, img in enumerate(digits(per_class, size, seed=k)):
            Image.fromarray(img[..., 0], "L").save(root / name / f"{i}.png")
    return root


def test_evaluate_says_how_it_fitted_a_folder_and_fit_overrides_the_sidecar(tmp_path, capsys):
    folder = _grey_folder(tmp_path / "digits")
    model = tmp_path / "lenet.tflite"
    model.write_bytes(tiny_flatbuffer(input_shape=(1, 32, 32, 1), weights=[np.zeros((2, 1024), np.float32)]))
    assert main(["evaluate", str(model), "--dataset", f"folder:{folder}", "--no-latency"]) == 0
    out = capsys.readouterr().out
    assert "28x28 images on the model's 32x32 input: padded around the centre with the background 0" in out
    data, fit, _ = load_fitted(f"folder:{folder}", (32, 32), "crop")
    assert fit.mode == "crop" and data.x_test.shape[1:3] == (32, 32) and data.meta["own_image_size"] == [28, 28]
    write_sidecar(model, Preprocessing(source="test").with_fit(Fit("resize", (), "chosen")))
    assert main(["evaluate", str(model), "--dataset", f"folder:{folder}", "--no-latency", "--fit", "pad"]) == 0
    assert "pad (background 0) (--fit)" in capsys.readouterr().out


def test_fit_alone_gives_no_range():
    only = preprocessing_from_options(None, None, None, "pad")
    assert only.fit.mode == "pad" and only.assumed
    from dnncomp.preprocess import range_given

    assert not range_given(only) and range_given(preprocessing_from_options("0..255", None, None, "pad"))


# ---- TFLite Support metadata ---------------------------------------------------------------


def _metadata(mean=(), std=(), stats=None, labels_file=None, colour=2) -> bytes:
    """A TFLite Support ModelMetadata flatbuffer ("M001"), written field by field from metadata_schema.fbs."""
    b = flatbuffers.Builder(0)

    def floats(values):
        b.StartVector(4, len(values), 4)
        for v in reversed(values):
            b.PrependFloat32(float(v))
        return b.EndVector()

    def offsets(items):
        b.StartVector(4, len(items), 4)
        for item in reversed(items):
            b.PrependUOffsetTRelative(item)
        return b.EndVector()

    units = []
    if mean or std:
        m, sd = floats(mean), floats(std)
        b.StartObject(2)
        b.PrependUOffsetTRelativeSlot(0, m, 0)
        b.PrependUOffsetTRelativeSlot(1, sd, 0)
        options = b.EndObject()
        b.StartObject(2)  # ProcessUnit: options_type, options
        b.PrependUint8Slot(0, 1, 0)  # NormalizationOptions
        b.PrependUOffsetTRelativeSlot(1, options, 0)
        units.append(b.EndObject())
    stats_table = None
    if stats is not None:
        hi, lo = floats([stats[1]]), floats([stats[0]])
        b.StartObject(2)
        b.PrependUOffsetTRelativeSlot(0, hi, 0)
        b.PrependUOffsetTRelativeSlot(1, lo, 0)
        stats_table = b.EndObject()
    b.StartObject(2)  # ImageProperties: color_space, default_size
    b.PrependInt8Slot(0, colour, 0)
    image_properties = b.EndObject()
    b.StartObject(3)  # Content: properties_type, properties, range
    b.PrependUint8Slot(0, 2, 0)
    b.PrependUOffsetTRelativeSlot(1, image_properties, 0)
    content = b.EndObject()
    unit_vector = offsets(units) if units else None
    name = b.CreateString("image")
    b.StartObject(7)  # TensorMetadata
    b.PrependUOffsetTRelativeSlot(0, name, 0)
    b.PrependUOffsetTRelativeSlot(3, content, 0)
    if unit_vector is not None:
        b.PrependUOffsetTRelativeSlot(4, unit_vector, 0)
    if stats_table is not None:
        b.PrependUOffsetTRelativeSlot(5, stats_table, 0)
    input_tensor = b.EndObject()
    files = None
    if labels_file:
        file_name = b.CreateString(labels_file)
        b.StartObject(5)  # AssociatedFile: name, description, type
        b.PrependUOffsetTRelativeSlot(0, file_name, 0)
        b.PrependInt8Slot(2, 2, 0)  # TENSOR_AXIS_LABELS
        files = offsets([b.EndObject()])
    b.StartObject(7)
    if files is not None:
        b.PrependUOffsetTRelativeSlot(6, files, 0)
    output_tensor = b.EndObject()
    inputs, outputs = offsets([input_tensor]), offsets([output_tensor])
    b.StartObject(10)  # SubGraphMetadata
    b.PrependUOffsetTRelativeSlot(2, inputs, 0)
    b.PrependUOffsetTRelativeSlot(3, outputs, 0)
    graph = b.EndObject()
    graphs = offsets([graph])
    model_name = b.CreateString("digit classifier")
    b.StartObject(8)  # ModelMetadata
    b.PrependUOffsetTRelativeSlot(0, model_name, 0)
    b.PrependUOffsetTRelativeSlot(3, graphs, 0)
    b.Finish(b.EndObject(), file_identifier=b"M001")
    return bytes(b.Output())


def with_metadata(model_bytes: bytes, metadata: bytes, labels: list[str] | None = None) -> bytes:
    """``model_bytes`` with a TFLITE_METADATA buffer, and a labels file zipped onto the end, as the metadata writer does."""
    import io
    import zipfile

    model = s.ModelT.InitFromPackedBuf(model_bytes, 0)
    buffer = s.BufferT()
    buffer.data = np.frombuffer(metadata, dtype=np.uint8)
    model.buffers.append(buffer)
    entry = s.MetadataT()
    entry.name = "TFLITE_METADATA"
    entry.buffer = len(model.buffers) - 1
    model.metadata = [*(model.metadata or []), entry]
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    data = bytes(builder.Output())
    if labels:
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w") as z:
            z.writestr("labels.txt", "\n".join(labels) + "\n")
        data += archive.getvalue()
    return data


def _grey_levels_model(tmp_path, metadata: bytes | None, labels=None):
    """Logit 0 is the sum of the input, logit 1 is 0: a mid-grey 100 is class 1 in -1..1 and class 0 in 0..1."""
    w = np.zeros((2, 16), np.float32)
    w[0] = 1.0
    raw = tiny_flatbuffer(input_shape=(1, 4, 4, 1), weights=[w])
    path = tmp_path / "published.tflite"
    path.write_bytes(with_metadata(raw, metadata, labels) if metadata is not None else raw)
    return path


def test_metadata_is_read_field_by_field(tmp_path):
    path = _grey_levels_model(tmp_path, _metadata((127.5,), (127.5,), labels_file="labels.txt"), ["bright", "dark"])
    found = read_metadata(path.read_bytes())
    assert found.name == "digit classifier" and found.mean == (127.5,) and found.std == (127.5,)
    assert found.color_space == "grayscale" and found.labels == ("bright", "dark") and found.labels_file == "labels.txt"
    assert read_metadata(tiny_flatbuffer()) is None
    per_channel = read_metadata(with_metadata(tiny_flatbuffer(), _metadata((123.7, 116.3, 103.5), (58.4, 57.1, 57.4))))
    mapping = per_channel.preprocessing()
    assert mapping.input_range == (0.0, 255.0) and mapping.mean == (123.7, 116.3, 103.5) and mapping.std[0] == pytest.approx(58.4)
    assert read_metadata(with_metadata(tiny_flatbuffer(), _metadata(stats=(-1.0, 1.0)))).preprocessing().input_range == (
        -1.0,
        1.0,
    )
    assert read_metadata(with_metadata(tiny_flatbuffer(), _metadata((0.0,), (1.0,)))).preprocessing().input_range == (0.0, 255.0)


def test_metadata_decides_the_range_after_flags_and_sidecar(tmp_path, capsys):
    path = _grey_levels_model(tmp_path, _metadata((127.5,), (127.5,), labels_file="labels.txt"), ["bright", "dark"])
    folder = tmp_path / "levels"
    for name, level in (("bright", 200), ("dark", 100)):
        (folder / name).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(np.full((4, 4), level, np.uint8), "L").save(folder / name / f"{i}.png")
    spec = model_input_spec(path)
    assert spec.preprocessing.input_range == (-1.0, 1.0) and not spec.preprocessing.assumed
    assert "TFLite metadata" in spec.preprocessing.source and "NormalizationOptions mean 127.5" in spec.preprocessing.source
    record = tmp_path / "r.json"
    assert main(["evaluate", str(path), "--dataset", f"folder:{folder}", "--no-latency", "--json", str(record)]) == 0
    assert "range -1..1 (TFLite metadata" in capsys.readouterr().out
    assert json.loads(record.read_text())["variants"][0]["accuracy"]["full"] == 1.0  # 0..1 would score 50 %
    # the order: flags > sidecar > metadata
    assert model_input_spec(path, preprocessing=Preprocessing((0.0, 1.0), source="command line")).preprocessing.input_range == (
        0,
        1,
    )
    write_sidecar(path, Preprocessing((0.0, 255.0), source="compress"))
    assert model_input_spec(path).preprocessing.input_range == (0.0, 255.0)
    # without metadata, the same graph is assumed 0..1 (said)
    (tmp_path / "bare").mkdir()
    assert model_input_spec(_grey_levels_model(tmp_path / "bare", None)).preprocessing.assumed
