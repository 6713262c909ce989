"""Image files: modes and bit depths kept, 8-bit RGB for segmentation, one set of refusals, atomic writes.

Files are written with Pillow (and tifffile for a 16-bit colour TIFF) from scikit-image's
bundled photos; what ldwseg reads and writes is compared with Pillow's own decoding.
"""

from pathlib import Path

import numpy as np
import pytest
from bad_files import make_bad, png_bytes
from PIL import Image
from skimage import data

from ldwseg.errors import ConfigError, DataError
from ldwseg.io import (
    SAVE_FORMATS,
    LoadedImage,
    load_image,
    load_rgb8,
    open_image,
    output_format,
    quantize,
    save_image,
    scaled,
)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return data.astronaut()[100:161, 150:223]  # 61 x 73, odd on both sides


@pytest.fixture(scope="module")
def gray16() -> np.ndarray:
    """16-bit gray that uses the low byte too: camera * 257 plus a ramp."""
    camera = data.camera()[:45, :39].astype(np.uint32) * 257
    return (camera - np.arange(39, dtype=np.uint32) * 3 % 200).clip(0, 65535).astype(np.uint16)


def rgba_of(photo: np.ndarray) -> np.ndarray:
    alpha = data.camera()[: photo.shape[0], : photo.shape[1], None]
    return np.concatenate([photo, alpha], axis=-1)


# --- reading -------------------------------------------------------------------------


CHANNELS = {"L": (1, False), "LA": (2, True), "RGB": (3, False), "RGBA": (4, True)}


@pytest.mark.parametrize(
    ("kind", "suffix"),
    [(k, s) for k in CHANNELS for s in (".png", ".tif", ".bmp", ".webp") if (k, s) != ("LA", ".bmp")],
)
def test_8bit_files_read_as_pillow_decodes_them(tmp_path, photo, kind, suffix):
    pixels = {"L": photo[..., 0], "LA": rgba_of(photo)[..., [0, 3]], "RGB": photo, "RGBA": rgba_of(photo)}[kind]
    path = tmp_path / f"x{suffix}"
    Image.fromarray(pixels).save(path, **({"lossless": True, "exact": True} if suffix == ".webp" else {}))
    reread = Image.open(path)  # BMP drops alpha, WebP stores gray as RGB: compare with what is there
    image = load_image(path)
    assert (image.mode, image.bit_depth, image.path, image.array.dtype) == (reread.mode, 8, path, np.float32)
    assert (image.array.shape[-1], image.has_alpha) == CHANNELS[reread.mode]
    stored = np.asarray(reread).reshape(image.array.shape)
    np.testing.assert_array_equal(np.rint(image.array * 255), stored)
    assert image.array.min() >= 0 and image.array.max() <= 1


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16bit_gray_keeps_every_bit(tmp_path, gray16, suffix):
    path = tmp_path / f"g16{suffix}"
    Image.fromarray(gray16).save(path)
    image = load_image(path)
    assert image.mode.startswith("I;16") and image.bit_depth == 16 and not image.has_alpha
    assert image.array.shape == (*gray16.shape, 1)
    np.testing.assert_array_equal(np.rint(image.array[..., 0] * 65535).astype(np.uint16), gray16)


def test_big_endian_16bit_png_written_by_hand(tmp_path, gray16):
    rows = b"".join(b"\0" + row.astype(">u2").tobytes() for row in gray16)
    path = tmp_path / "be16.png"
    path.write_bytes(png_bytes(gray16.shape[1], gray16.shape[0], 16, 0, rows))
    image = load_image(path)
    np.testing.assert_array_equal(np.rint(image.array[..., 0] * 65535).astype(np.uint16), gray16)


def test_32bit_integer_image_within_16_bits_is_read_as_16bit(tmp_path, gray16):
    path = tmp_path / "i32.tif"
    Image.fromarray(gray16.astype(np.int32)).save(path)
    image = load_image(path)
    assert image.mode == "I" and image.bit_depth == 16
    np.testing.assert_array_equal(np.rint(image.array[..., 0] * 65535), gray16)


@pytest.mark.parametrize("transparent", [False, True])
def test_palette_images_become_rgb_or_rgba(tmp_path, photo, transparent):
    palette_image = Image.fromarray(photo).quantize(16)
    path = tmp_path / "p.png"
    palette_image.save(path, **({"transparency": 3} if transparent else {}))
    image = load_image(path)
    expected = np.asarray(Image.open(path).convert("RGBA" if transparent else "RGB"))
    assert image.mode == "P" and image.has_alpha == transparent and image.bit_depth == 8
    np.testing.assert_array_equal(np.rint(image.array * 255).astype(np.uint8), expected)


def test_jpeg_and_bilevel_read_as_their_decoded_pixels(tmp_path, photo):
    jpeg, bilevel = tmp_path / "x.jpg", tmp_path / "b.png"
    Image.fromarray(photo).save(jpeg, quality=80)
    Image.fromarray(photo[..., 0] > 128).save(bilevel)
    image = load_image(jpeg)
    assert (image.format, image.mode, image.array.shape) == ("JPEG", "RGB", photo.shape)
    np.testing.assert_array_equal(np.rint(image.array * 255), np.asarray(Image.open(jpeg)))
    image = load_image(bilevel)
    assert image.mode == "1" and image.array.shape == (*photo.shape[:2], 1)
    np.testing.assert_array_equal(image.array[..., 0], (photo[..., 0] > 128).astype(np.float32))


# --- refusals ------------------------------------------------------------------------


BAD_FILES = {
    "missing": "does not exist",
    "directory": "is a directory",
    "empty": r"is empty \(0 bytes\)",
    "text": "is not an image PIL can read",
    "truncated_jpeg": "truncated or corrupt",
    "truncated_png": "truncated or corrupt",
    "one_pixel": r"is 1x1 pixels; expected at least 2x2",
    "decompression_bomb": r"20000x20000 = 400000000 pixels, more than max_pixels=268435456",  # ours, not Pillow's
    "float_tiff": "floating-point pixels",
    "rgb16_tiff": "16-bit RGB image",
    "rgb16_png": "16-bit RGB image",
}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_unusable_files_raise_one_clear_data_error(tmp_path, kind):
    path = make_bad(kind, tmp_path)
    with pytest.raises(DataError, match=BAD_FILES[kind]) as caught:
        load_image(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_pixel_limit_is_checked_on_the_header_before_decoding(tmp_path):
    path = tmp_path / "claims_big.png"
    path.write_bytes(png_bytes(3000, 2000, 8, 0, b""))  # no pixel data: decoding would fail
    with pytest.raises(DataError, match=r"3000x2000 = 6000000 pixels, more than max_pixels=5000000"):
        load_image(path, max_pixels=5_000_000)
    with pytest.raises(DataError, match="truncated or corrupt"):
        load_image(path, max_pixels=6_000_000)


def test_min_size_is_configurable(tmp_path, photo):
    path = tmp_path / "x.png"
    Image.fromarray(photo).save(path)
    with pytest.raises(DataError, match=r"is 73x61 pixels; expected at least 64x64 \(min_size=64\)"):
        load_image(path, min_size=64)
    assert load_image(path, min_size=61).size == (73, 61)


EXACT_ONLY = ("rgb16_tiff", "rgb16_png")  # 8-bit RGB needs only the 8 bits Pillow decodes


@pytest.mark.parametrize("kind", sorted(set(BAD_FILES) - set(EXACT_ONLY)))
def test_every_reader_refuses_the_same_files_with_the_same_message(tmp_path, kind):
    path = make_bad(kind, tmp_path)
    with pytest.raises(DataError) as exact:
        load_image(path)
    with pytest.raises(DataError) as rgb8:
        load_rgb8(path)
    assert str(rgb8.value) == str(exact.value)
    if kind != "float_tiff":  # a mask reader checks the decoded mode itself
        with pytest.raises(DataError, match=BAD_FILES[kind]) as opened:
            with open_image(path, what="mask", min_size=2):
                pass
        assert str(opened.value).replace("mask file", "image file") == str(exact.value)


@pytest.mark.parametrize("kind", ["empty", "text", "truncated_jpeg", "truncated_png"])
def test_unreadable_files_say_cannot_read(tmp_path, kind):
    path = make_bad(kind, tmp_path)
    with pytest.raises(DataError, match=rf"^cannot read image file {path}: it is"):
        load_image(path)


def test_the_size_refusal_names_the_option_only_where_there_is_one(tmp_path, photo):
    path = tmp_path / "x.png"
    Image.fromarray(photo).save(path)
    with pytest.raises(DataError, match=r"x.png is too large to decode safely: 73x61 = 4453 pixels.*--max-pixels 4453"):
        load_rgb8(path, max_pixels=4452)
    with pytest.raises(DataError, match=r"smaller files$"):
        load_rgb8(path, max_pixels=4452, limit_option=None)
    with pytest.raises(ConfigError, match="max_pixels must be a positive integer, got 0"):
        load_rgb8(path, max_pixels=0)


# --- 8-bit RGB -------------------------------------------------------------------------


def test_rgb8_of_8bit_files_is_what_pillow_converts_to_rgb(tmp_path, photo):
    rgba = rgba_of(photo)
    files = {
        "L": Image.fromarray(photo[..., 0]),
        "LA": Image.fromarray(rgba[..., [0, 3]]),
        "RGB": Image.fromarray(photo),
        "RGBA": Image.fromarray(rgba),
        "P": Image.fromarray(photo).quantize(16),
        "1": Image.fromarray(photo[..., 0] > 128),
    }
    for mode, image in files.items():
        path = tmp_path / f"{mode}.png"
        image.save(path, **({"transparency": 3} if mode == "P" else {}))
        rgb = load_rgb8(path)
        assert rgb.dtype == np.uint8 and rgb.shape == (*photo.shape[:2], 3) and rgb.flags.writeable, mode
        np.testing.assert_array_equal(rgb, np.asarray(Image.open(path).convert("RGB")), err_msg=mode)


def test_rgb8_rounds_16bit_gray_as_quantize_does(tmp_path):
    every = np.arange(65536, dtype=np.uint16).reshape(256, 256)  # every 16-bit value once
    path = tmp_path / "g16.png"
    Image.fromarray(every).save(path)
    expected = np.rint(every.astype(np.float64) * 255 / 65535).astype(np.uint8)
    np.testing.assert_array_equal(load_rgb8(path), np.dstack([expected] * 3))
    np.testing.assert_array_equal(load_rgb8(path)[..., :1], quantize(load_image(path).array, 8))


def test_rgb8_reads_16bit_colour_as_pillow_decodes_it(tmp_path):
    path = make_bad("rgb16_png", tmp_path)  # every sample 1000 of 65535
    with pytest.raises(DataError, match="16-bit RGB image"):
        load_image(path)
    np.testing.assert_array_equal(load_rgb8(path), np.asarray(Image.open(path).convert("RGB")))
    assert (load_rgb8(path) == 1000 >> 8).all()  # Pillow keeps the high byte


# --- stored integers <-> floats ----------------------------------------------------------


@pytest.mark.parametrize("bit_depth", [8, 16])
def test_quantize_inverts_scaled_for_every_stored_value(bit_depth):
    stored = np.arange(2**bit_depth, dtype=np.uint16 if bit_depth == 16 else np.uint8).reshape(-1, 1)
    values = scaled(stored, bit_depth)
    assert values.dtype == np.float32 and values.min() == 0 and values.max() == 1
    np.testing.assert_array_equal(quantize(values, bit_depth), stored)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_quantize_clips_and_rounds_block_by_block(dtype):
    values = np.random.default_rng(0).uniform(-0.2, 1.2, size=(700, 5, 3)).astype(dtype)  # 3 blocks of rows
    for bit_depth, stored in ((8, np.uint8), (16, np.uint16)):
        # the naive formula in the array's own precision, on the whole array at once
        expected = np.rint(np.clip(values, 0, 1) * dtype(2**bit_depth - 1)).astype(stored)
        result = quantize(values, bit_depth)
        assert result.dtype == stored
        np.testing.assert_array_equal(result, expected)
    with pytest.raises(ValueError, match=r"bit_depth must be one of \(8, 16\), got 12"):
        quantize(values, 12)


# --- writing -------------------------------------------------------------------------


def loaded(pixels: np.ndarray, bit_depth: int = 8, mode: str = "RGB") -> LoadedImage:
    array = (pixels.reshape(*pixels.shape[:2], -1) / (2**bit_depth - 1)).astype(np.float32)
    return LoadedImage(array, mode, bit_depth, "PNG", Path("in.png"), array.shape[-1] in (2, 4))


@pytest.mark.parametrize("suffix", [".png", ".tif"])
@pytest.mark.parametrize("kind", ["L", "LA", "RGB", "RGBA", "I;16"])
def test_save_reproduces_the_pixels_exactly(tmp_path, photo, gray16, suffix, kind):
    rgba = rgba_of(photo)
    pixels = {"L": photo[..., 1], "LA": rgba[..., [1, 3]], "RGB": photo, "RGBA": rgba, "I;16": gray16}
    like = loaded(pixels[kind], 16 if kind == "I;16" else 8, kind)
    out = tmp_path / f"out{suffix}"
    written = save_image(out, like.array, like=like)
    reread = Image.open(out)
    assert reread.mode == kind and reread.size == like.size
    np.testing.assert_array_equal(np.asarray(reread), pixels[kind])
    np.testing.assert_array_equal(written, like.array)


def test_save_clips_and_rounds(tmp_path):
    like = loaded(np.zeros((2, 3), np.uint8), mode="L")
    values = np.array([[-0.5, 0.2 / 255, 0.6 / 255], [1.0, 1.7, 254.4 / 255]], np.float32)
    written = save_image(tmp_path / "c.png", values, like=like)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "c.png")), [[0, 0, 1], [255, 255, 254]])
    np.testing.assert_array_equal(np.rint(written[..., 0] * 255), [[0, 0, 1], [255, 255, 254]])


def test_jpeg_output_reports_the_values_it_stored(tmp_path, photo):
    like = loaded(photo)
    written = save_image(tmp_path / "o.jpg", like.array, like=like)
    np.testing.assert_array_equal(np.rint(written * 255), np.asarray(Image.open(tmp_path / "o.jpg")))
    assert 0 < np.abs(written - like.array).max() < 0.25


@pytest.mark.parametrize(
    ("name", "kind", "message"),
    [
        ("o.gif", "RGB", r"unknown image suffix '\.gif'; use one of \.png, \.tif"),
        ("o", "RGB", r"unknown image suffix ''"),
        ("o.jpg", "RGBA", r"JPEG cannot store RGBA pixels .*; use one of \.png, \.tif, \.tiff, \.webp"),
        ("o.bmp", "I;16", r"BMP cannot store I;16 pixels .*; use one of \.png, \.tif, \.tiff$"),
        ("o.webp", "L", r"WEBP cannot store L pixels"),
    ],
)
def test_unwritable_formats_are_refused_before_writing(tmp_path, photo, gray16, name, kind, message):
    pixels = {"RGB": photo, "RGBA": rgba_of(photo), "I;16": gray16, "L": photo[..., 0]}[kind]
    like = loaded(pixels, 16 if kind == "I;16" else 8, kind)
    with pytest.raises(DataError, match=message):
        save_image(tmp_path / name, like.array, like=like)
    assert list(tmp_path.iterdir()) == []


def test_every_listed_suffix_writes_rgb(tmp_path, photo):
    like = loaded(photo)
    for suffix in SAVE_FORMATS:
        assert output_format(tmp_path / f"o{suffix.upper()}", like) == SAVE_FORMATS[suffix]
        save_image(tmp_path / f"o{suffix}", like.array, like=like)
        assert Image.open(tmp_path / f"o{suffix}").size == like.size


def test_save_checks_shape_values_and_folder(tmp_path, photo):
    like = loaded(photo)
    broken = like.array.copy()
    broken[0, 0, 0], broken[3, 2, 1] = np.nan, np.inf
    with pytest.raises(DataError, match="the array has 2 NaN or infinite values"):
        save_image(tmp_path / "o.png", broken, like=like)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match=r"the array has shape \(61, 73, 1\), expected \(61, 73, 3\)"):
        save_image(tmp_path / "o.png", like.array[..., :1], like=like)
    with pytest.raises(DataError, match="the folder .*nowhere does not exist; create it first"):
        save_image(tmp_path / "nowhere" / "o.png", like.array, like=like)


def test_failed_save_leaves_no_partial_file_and_keeps_the_old_one(tmp_path, photo, monkeypatch):
    like = loaded(photo)
    out = tmp_path / "o.png"
    save_image(out, like.array, like=like)
    before = out.read_bytes()

    def failing_save(self, fp, *args, **kwargs):
        fp.write(b"\x89PNG half a file")
        raise OSError("No space left on device")

    monkeypatch.setattr(Image.Image, "save", failing_save)
    with pytest.raises(DataError, match=r"cannot write .*o\.png \(No space left on device\)"):
        save_image(out, 1 - like.array, like=like)
    with pytest.raises(DataError, match="No space left on device"):
        save_image(tmp_path / "new.png", like.array, like=like)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.png"]
    assert out.read_bytes() == before


def test_saved_file_gets_ordinary_permissions(tmp_path, photo):
    like = loaded(photo)
    out = tmp_path / "o.png"
    save_image(out, like.array, like=like)
    reference = tmp_path / "plain"
    reference.write_bytes(b"")
    assert out.stat().st_mode == reference.stat().st_mode
