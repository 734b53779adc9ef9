"""Image files read as a person sees them: every format and mode Pillow opens, EXIF orientation,
bit depths scaled (not clipped), transparency, and the files in a folder that are not images."""

from __future__ import annotations

import struct
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from dnncomp.data import load_dataset
from dnncomp.data.images import IMAGE_EXTENSIONS, decode_image, decode_images, list_images, not_an_image
from dnncomp.errors import DataError


def ramp(h: int = 6, w: int = 8) -> np.ndarray:
    """A grey ramp 0..255 with distinct rows, so rotations are visible."""
    return (np.arange(h * w).reshape(h, w) * 255 // (h * w - 1)).astype(np.uint8)


def test_extensions_are_every_format_pillow_opens():
    for ext in (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".webp", ".gif", ".tif", ".tiff", ".jfif", ".mpo"):
        assert ext in IMAGE_EXTENSIONS, ext
    for ext in (".pdf", ".h5", ".txt", ".csv", ".json"):  # save-only, stubs, and not images
        assert ext not in IMAGE_EXTENSIONS, ext


@pytest.mark.parametrize("ext", [".png", ".bmp", ".ppm", ".tif", ".webp", ".gif"])
def test_lossless_formats_read_exactly(tmp_path, ext):
    rgb = np.stack([ramp(), ramp()[::-1], np.full((6, 8), 200, np.uint8)], axis=-1)
    path = tmp_path / f"x{ext}"
    img = Image.fromarray(rgb)
    img.save(path, **({"lossless": True} if ext == ".webp" else {}))
    got = decode_image(path)
    assert got.shape == (6, 8, 3) and got.dtype == np.uint8
    if ext == ".gif":  # 256-colour palette: quantized, close
        assert np.abs(got.astype(int) - rgb).mean() < 8
    else:
        np.testing.assert_array_equal(got, rgb)


def test_16_bit_is_scaled_by_its_range_not_clipped(tmp_path):
    values = np.array([[0, 257, 32768, 65535]], dtype=np.uint16)
    for name in ("x.png", "x.tif"):
        Image.fromarray(values).save(tmp_path / name)
        assert Image.open(tmp_path / name).mode.startswith("I;16")
        events = Counter()
        got = decode_image(tmp_path / name, grey=True, events=events)
        np.testing.assert_array_equal(got[..., 0], [[0, 1, 128, 255]])  # convert("L") would give 0, 255, 255, 255
        assert events["scaled_16bit"] == 1
    # A 16-bit PGM opens as mode "I" (32-bit container): still 16-bit data, scaled by 65535.
    (tmp_path / "x.pgm").write_bytes(b"P5\n4 1\n65535\n" + values.astype(">u2").tobytes())
    assert Image.open(tmp_path / "x.pgm").mode == "I"
    np.testing.assert_array_equal(decode_image(tmp_path / "x.pgm", grey=True)[..., 0], [[0, 1, 128, 255]])


def test_32_bit_integer_and_float_images(tmp_path):
    ints = np.array([[-(2**31), 0, 2**31 - 1]], dtype=np.int32)
    Image.fromarray(ints).save(tmp_path / "i.tif")
    events = Counter()
    np.testing.assert_array_equal(decode_image(tmp_path / "i.tif", grey=True, events=events)[..., 0], [[0, 128, 255]])
    assert events["scaled_32bit"] == 1
    Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32)).save(tmp_path / "unit.tif")
    np.testing.assert_array_equal(decode_image(tmp_path / "unit.tif", grey=True)[..., 0], [[0, 128, 255]])
    Image.fromarray(np.array([[0.0, 100.0, 300.0]], dtype=np.float32)).save(tmp_path / "pixels.tif")
    events = Counter()
    np.testing.assert_array_equal(decode_image(tmp_path / "pixels.tif", grey=True, events=events)[..., 0], [[0, 100, 255]])
    assert events["float_0_255"] == 1


def test_exif_orientation_is_applied(tmp_path):
    upright = ramp()
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated 90 degrees counter-clockwise; viewers rotate it back clockwise
    Image.fromarray(np.rot90(upright, 1).copy()).save(tmp_path / "r.png", exif=exif.tobytes())
    Image.fromarray(np.rot90(upright, 1).copy()).save(tmp_path / "r.jpg", exif=exif.tobytes(), quality=100)
    events = Counter()
    np.testing.assert_array_equal(decode_image(tmp_path / "r.png", grey=True, events=events)[..., 0], upright)
    assert np.abs(decode_image(tmp_path / "r.jpg", grey=True)[..., 0].astype(int) - upright).mean() < 3
    assert events["exif_orientation"] == 1
    exif[0x0112] = 3  # upside down
    Image.fromarray(upright[::-1, ::-1].copy()).save(tmp_path / "u.png", exif=exif.tobytes())
    np.testing.assert_array_equal(decode_image(tmp_path / "u.png", grey=True)[..., 0], upright)


def test_cmyk_jpeg_palette_and_bilevel(tmp_path):
    Image.new("CMYK", (4, 4), (0, 255, 255, 0)).save(tmp_path / "c.jpg", quality=100)  # pure red in CMYK
    events = Counter()
    red = decode_image(tmp_path / "c.jpg", events=events)
    assert red.shape == (4, 4, 3) and red[..., 0].min() > 240 and red[..., 1:].max() < 15
    assert events["cmyk"] == 1
    grey_gif = Image.fromarray(ramp()).convert("P")  # a palette of greys: stays one channel
    grey_gif.save(tmp_path / "g.gif")
    got = decode_image(tmp_path / "g.gif", grey=True)
    assert got.shape == (6, 8, 1)
    assert np.abs(got[..., 0].astype(int) - ramp()).max() <= 8
    Image.fromarray(ramp() > 127).save(tmp_path / "b.png")  # mode "1"
    assert set(np.unique(decode_image(tmp_path / "b.png", grey=True))) == {0, 255}


def test_alpha_is_composited_on_black(tmp_path):
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., :3] = (200, 100, 50)
    rgba[..., 3] = [[255, 0], [128, 255]]  # opaque, transparent, half
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    events = Counter()
    got = decode_image(tmp_path / "a.png", events=events)
    np.testing.assert_array_equal(got[0, 0], (200, 100, 50))
    np.testing.assert_array_equal(got[0, 1], (0, 0, 0))  # the colour behind full transparency is not read
    np.testing.assert_array_equal(got[1, 0], (100, 50, 25))
    assert events["alpha_composited"] == 1
    la = np.stack([np.full((2, 2), 200, np.uint8), np.array([[255, 0], [255, 255]], np.uint8)], axis=-1)
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    np.testing.assert_array_equal(decode_image(tmp_path / "la.png", grey=True)[..., 0], [[200, 0], [200, 200]])
    Image.fromarray(np.full((2, 2, 4), 255, np.uint8), "RGBA").save(tmp_path / "opaque.png")
    events = Counter()
    decode_image(tmp_path / "opaque.png", events=events)
    assert events["alpha_composited"] == 0  # fully opaque: nothing to say


def test_animated_gif_reads_the_first_frame(tmp_path):
    frames = [Image.fromarray(np.full((4, 4), v, np.uint8)) for v in (10, 250)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    events = Counter()
    got = decode_image(tmp_path / "anim.gif", grey=True, events=events)
    assert abs(int(got.mean()) - 10) <= 2 and events["multi_frame"] == 1


def test_events_are_counted_across_workers(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 8
    paths = []
    for i in range(5):
        path = tmp_path / f"{i}.png"
        Image.fromarray(ramp()).save(path, exif=exif.tobytes() if i % 2 else None)
        paths.append(path)
    for executor in ("serial", "thread"):
        decoded = decode_images(paths, executor=executor, workers=2, grey=True)
        assert decoded.events["exif_orientation"] == 2 and not decoded.failures


def test_not_images_by_kind(tmp_path):
    kinds = {
        name: not_an_image(tmp_path / name)
        for name in ("._x.png", ".DS_Store", "Thumbs.db", "desktop.ini", ".hidden.png", "README.txt", "labels", "x.PNG", "y.webp")
    }
    assert kinds["._x.png"].startswith("AppleDouble") and kinds[".DS_Store"].startswith(".DS_Store")
    assert kinds["Thumbs.db"].startswith("Thumbs.db") and kinds["desktop.ini"].startswith("desktop.ini")
    assert kinds[".hidden.png"] == "hidden files" and kinds["README.txt"] == "non-image files (.txt)"
    assert kinds["labels"] == "non-image files (no extension)"
    assert kinds["x.PNG"] is None and kinds["y.webp"] is None
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.png").write_bytes(b"")
    (tmp_path / "d" / "._a.png").write_bytes(b"\0\5\26\7")
    (tmp_path / "d" / "sub").mkdir()
    ignored = {}
    assert [p.name for p in list_images(tmp_path / "d", ignored)] == ["a.png"]
    assert {k: v["count"] for k, v in ignored.items()} == {
        "AppleDouble ._* files (macOS metadata, not images)": 1,
        "sub-folders inside class folders (not read)": 1,
    }


def _mixed_mode_folder(root):
    """Two classes with one file of each mode a user's folder may hold."""
    writers = [
        lambda p: Image.fromarray(ramp()).save(p / "grey.png"),
        lambda p: Image.fromarray(np.stack([ramp()] * 3, -1)).save(p / "rgb.jpg"),
        lambda p: Image.fromarray(ramp().astype(np.uint16) * 257).save(p / "deep.tif"),
        lambda p: Image.fromarray(np.dstack([np.stack([ramp()] * 3, -1), np.full((6, 8), 255, np.uint8)]), "RGBA").save(
            p / "a.png"
        ),
        lambda p: Image.fromarray(ramp()).convert("P").save(p / "p.gif"),
        lambda p: Image.fromarray(np.stack([ramp()] * 3, -1)).save(p / "w.webp", lossless=True),
        lambda p: Image.new("CMYK", (8, 6), (0, 0, 0, 100)).save(p / "c.jpg"),
        lambda p: Image.fromarray(ramp()).save(p / "b.bmp"),
    ]
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        for write in writers:
            write(root / name)
        (root / name / "._grey.png").write_bytes(struct.pack(">II", 0x00051607, 0x00020000) + b"\0" * 100)
        (root / name / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
        (root / name / "notes.txt").write_text("not an image")
    (root / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (root / "__MACOSX").mkdir()
    return root


def test_folder_of_every_mode_loads_and_counts_what_it_skipped(tmp_path):
    root = _mixed_mode_folder(tmp_path / "f")
    ds = load_dataset(f"folder:{root}", test_fraction=0.25)
    assert len(ds.y_train) + len(ds.y_test) == 16 and ds.x_train.shape[1:] == (6, 8, 3)  # CMYK/RGB among grey: RGB
    counts = {kind: v["count"] for kind, v in ds.meta["ignored"].items()}
    assert counts == {
        "AppleDouble ._* files (macOS metadata, not images)": 2,
        ".DS_Store files (macOS folder settings)": 3,
        "non-image files (.txt)": 2,
        "__MACOSX folders (macOS zip metadata)": 1,
    }
    assert ds.meta["decode"]["scaled_16bit"] == 2 and ds.meta["decode"]["cmyk"] == 2
    assert any("16-bit" in note for note in ds.meta["notes"]) and any("AppleDouble" in n for n in ds.meta["notes"])
    # Cached: the second load gives the same arrays and the same counts.
    again = load_dataset(f"folder:{root}", test_fraction=0.25)
    assert again.meta["from_cache"] and again.meta["decode"] == ds.meta["decode"]
    np.testing.assert_array_equal(again.x_test, ds.x_test)


def test_folder_of_grey_files_in_many_formats_stays_grey(tmp_path):
    for name in ("a", "b"):
        (tmp_path / "g" / name).mkdir(parents=True)
        Image.fromarray(ramp()).save(tmp_path / "g" / name / "1.png")
        Image.fromarray(ramp()).convert("P").save(tmp_path / "g" / name / "2.gif")
        Image.fromarray(ramp().astype(np.uint16) * 257).save(tmp_path / "g" / name / "3.tif")
    assert load_dataset(f"folder:{tmp_path / 'g'}").x_train.shape[-1] == 1


def test_empty_class_folder_says_what_it_held(tmp_path):
    (tmp_path / "f" / "a").mkdir(parents=True)
    (tmp_path / "f" / "b").mkdir(parents=True)
    Image.fromarray(ramp()).save(tmp_path / "f" / "a" / "x.png")
    (tmp_path / "f" / "b" / "._x.png").write_bytes(b"\0\5\26\7")
    with pytest.raises(DataError, match=r"b: empty class folder \(no image files; it holds only 1 AppleDouble"):
        load_dataset(f"folder:{tmp_path / 'f'}")


def test_unreadable_image_names_the_skip_bad_flag(tmp_path):
    for name in ("a", "b"):
        (tmp_path / "f" / name).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(ramp()).save(tmp_path / "f" / name / f"{i}.png")
    (tmp_path / "f" / "a" / "bad.png").write_bytes(b"not a png at all")
    with pytest.raises(DataError, match=r"bad\.png: cannot read image.*pass --skip-bad"):
        load_dataset(f"folder:{tmp_path / 'f'}")
    ds = load_dataset(f"folder:{tmp_path / 'f'}", skip_bad=True)
    assert len(ds.meta["skipped"]) == 1 and len(ds.y_train) + len(ds.y_test) == 6


def test_upright_size_and_class_folders_as_run_sees_them(tmp_path):
    from dnncomp.data.folder import class_folders
    from dnncomp.data.images import upright_size
    from dnncomp.run_target import _class_count, folder_image_size

    exif = Image.Exif()
    exif[0x0112] = 6
    for name in ("a", "b"):
        (tmp_path / "f" / name).mkdir(parents=True)
        for i in range(2):  # stored 8 high, 6 wide; shown 6 high, 8 wide
            Image.fromarray(np.rot90(ramp(), 1).copy()).save(tmp_path / "f" / name / f"{i}.jpg", exif=exif.tobytes())
    (tmp_path / "f" / "__MACOSX" / "a").mkdir(parents=True)
    (tmp_path / "f" / ".git").mkdir()
    assert upright_size(tmp_path / "f" / "a" / "0.jpg") == (6, 8)
    assert [d.name for d in class_folders(tmp_path / "f")] == ["a", "b"]
    assert _class_count("folder:x", tmp_path / "f") == 2
    assert folder_image_size(tmp_path / "f")[0] == (6, 8)
    assert load_dataset(f"folder:{tmp_path / 'f'}").x_train.shape[1:3] == (6, 8)
