"""Reading image files as floats in [0, 1], keeping channels, bit depth and size (see :mod:`ldwseg.io`)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import ConfigError, DataError

__all__ = ["DEFAULT_MAX_PIXELS", "LoadedImage", "load_image"]

DEFAULT_MAX_PIXELS = 16384 * 16384
"""Default pixel limit of :func:`load_image` and of ``ldwseg predict``/``reconstruct``:
268,435,456 pixels (16384 x 16384), checked on the file header before decoding. Both
commands need at most about 35 bytes per pixel of an RGB image (measured: 5 GB for
``reconstruct`` and 3.3 GB for ``predict`` of a 12000 x 12000 image; tiles keep the
model's share small), so the limit keeps them under 10 GB; ``--max-pixels`` raises or
lowers it.
Pillow's own decompression-bomb check is off while ldwseg reads a file: this limit
replaces it, larger or smaller."""

_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
_TO_MODE = {
    "1": "L",
    "L": "L",
    "LA": "LA",
    "La": "LA",
    "RGB": "RGB",
    "RGBX": "RGB",
    "CMYK": "RGB",
    "YCbCr": "RGB",
    "LAB": "RGB",
    "HSV": "RGB",
    "RGBA": "RGBA",
    "RGBa": "RGBA",
    "PA": "RGBA",
}
_CHANNEL_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}
# Raw (on-disk) modes of 16-bit colour samples that Pillow reduces to 8 bits.
_COLOUR_16_RAW = ("LA", "RGB", "RGBA", "RGBX", "CMYK")
# Rows per block when whole-image arrays are converted: bounds the float temporaries.
_BLOCK_ROWS = 256

_pillow_lock = threading.Lock()
_pillow_readers = 0
_pillow_limit: int | None = None


@dataclass
class LoadedImage:
    """An image read by :func:`load_image`.

    Attributes:
        array: pixels as float32 ``(H, W, C)`` in ``[0, 1]`` (``C`` in 1-4, see the module table).
        mode: the Pillow mode of the file as stored (``"P"``, ``"I;16"``, ``"RGBA"``, ...).
        bit_depth: bits per sample, 8 or 16; ``array * (2**bit_depth - 1)`` are the stored values.
        format: Pillow's name of the file format (``"PNG"``, ``"JPEG"``, ...).
        path: the file it was read from.
        has_alpha: whether the last channel of ``array`` is alpha.
    """

    array: np.ndarray
    mode: str
    bit_depth: int
    format: str
    path: Path
    has_alpha: bool

    @property
    def pixel_mode(self) -> str:
        """The Pillow mode :func:`save_image` writes: ``"I;16"`` for 16 bits, else L/LA/RGB/RGBA."""
        return "I;16" if self.bit_depth == 16 else _CHANNEL_MODES[self.array.shape[-1]]

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)``, as Pillow reports sizes."""
        return self.array.shape[1], self.array.shape[0]


def _raw_mode(image: Image.Image) -> str:
    """The on-disk sample layout Pillow decodes from (``"RGB;16B"``, ``"I;16"``, ...)."""
    if not image.tile:
        return image.mode
    args = image.tile[0][3]  # (codec, extents, offset, args); args[0] or args is the raw mode
    raw = args if isinstance(args, str) else (args[0] if args else image.mode)
    return raw if isinstance(raw, str) else image.mode


@contextlib.contextmanager
def _own_size_limit() -> Iterator[None]:
    """Switch Pillow's decompression-bomb check off while ldwseg reads files (``max_pixels`` replaces it).

    ``PIL.Image.MAX_IMAGE_PIXELS`` is process-wide: it is saved when the first reader
    enters and restored when the last one leaves, so concurrent reads stay consistent.
    """
    global _pillow_readers, _pillow_limit
    with _pillow_lock:
        if _pillow_readers == 0:
            _pillow_limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        _pillow_readers += 1
    try:
        yield
    finally:
        with _pillow_lock:
            _pillow_readers -= 1
            if _pillow_readers == 0:
                Image.MAX_IMAGE_PIXELS = _pillow_limit


def _open(path: Path, max_pixels: int, min_size: int) -> tuple[Image.Image, str]:
    """Open and fully decode ``path`` after checking its header size against the limits.

    Returns the image and its raw mode (read before decoding, which clears the tiles).
    """
    with _own_size_limit():
        return _open_checked(path, max_pixels, min_size)


def _open_checked(path: Path, max_pixels: int, min_size: int) -> tuple[Image.Image, str]:
    if not path.exists():
        raise DataError(f"image file {path} does not exist; check the path")
    if path.is_dir():
        raise DataError(f"{path} is a directory; expected an image file")
    if path.stat().st_size == 0:
        raise DataError(f"image file {path} is empty (0 bytes); expected an image file, replace it")
    try:
        image = Image.open(path)
    except PermissionError as err:
        raise DataError(f"cannot read image file {path} ({err}); check its permissions") from err
    except OSError as err:  # UnidentifiedImageError is an OSError
        raise DataError(
            f"{path} is not an image PIL can read ({err}); expected a PNG, JPEG, TIFF, BMP or WebP file"
        ) from err
    try:
        width, height = image.size
        if width * height > max_pixels:
            raise DataError(
                f"image file {path} has {width}x{height} = {width * height} pixels, more than "
                f"max_pixels={max_pixels}; downscale the image or cut it into smaller files, or raise the "
                f"limit (--max-pixels {width * height}) if memory allows (about 35 bytes per pixel)"
            )
        if width < min_size or height < min_size:
            raise DataError(
                f"image file {path} is {width}x{height} pixels; expected at least {min_size}x{min_size} "
                f"(min_size={min_size}), use a larger image"
            )
        raw = _raw_mode(image)
        try:
            image.load()
        except (OSError, ValueError, SyntaxError, EOFError) as err:
            raise DataError(
                f"image file {path} is truncated or corrupt ({err}); expected a complete image, replace it"
            ) from err
    except BaseException:
        image.close()
        raise
    return image, raw


def _to_array(image: Image.Image, raw: str, path: Path) -> tuple[np.ndarray, int, bool]:
    """``(float32 (H, W, C) array in [0, 1], bit depth, has alpha)`` of a decoded image."""
    mode = image.mode
    if mode in _SIXTEEN_BIT_MODES or mode == "I":
        values = np.asarray(image)
        if mode == "I" and (values.min() < 0 or values.max() > 65535):
            raise DataError(
                f"image file {path} holds 32-bit integers outside [0, 65535]; expected 8 or 16-bit pixels, "
                "convert it to a 16-bit image"
            )
        return _scaled(values, 65535.0)[..., None], 16, False
    if mode == "F":
        raise DataError(
            f"image file {path} holds floating-point pixels; expected 8 or 16-bit integer pixels, "
            "convert it to a 16-bit PNG or TIFF"
        )
    raw_layout, _, raw_bits = raw.partition(";")
    if raw_layout in _COLOUR_16_RAW and raw_bits.startswith("16"):
        raise DataError(
            f"image file {path} is a 16-bit {raw_layout} image, which Pillow can only decode to 8 bits; "
            "expected 8-bit colour or 16-bit gray, convert it (or save each channel as a 16-bit gray file)"
        )
    if mode == "P":
        target = "RGBA" if image.has_transparency_data else "RGB"
    elif mode in _TO_MODE:
        target = _TO_MODE[mode]
    else:
        raise DataError(f"image file {path} has the unsupported mode {mode!r}; expected gray, RGB or RGBA, convert it")
    if target != mode:
        image = image.convert(target)
    values = np.asarray(image, dtype=np.uint8).reshape(image.height, image.width, -1)
    return _scaled(values, 255.0), 8, target in ("LA", "RGBA")


def _scaled(values: np.ndarray, top: float) -> np.ndarray:
    """``values / top`` as float32, without a second full-size temporary."""
    array = values.astype(np.float32)
    array /= np.float32(top)
    return array


def load_image(path: str | Path, *, min_size: int = 2, max_pixels: int = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Read an image file, keeping its channels and bit depth.

    Args:
        path: a PNG, JPEG, TIFF, BMP or WebP file (anything Pillow decodes).
        min_size: the smallest accepted width and height.
        max_pixels: the largest accepted ``width * height``, checked on the header before
            decoding, in place of Pillow's decompression-bomb check (see
            :data:`DEFAULT_MAX_PIXELS`).

    Returns:
        A :class:`LoadedImage`; its array follows the module table.

    Raises:
        DataError: the file is missing, a directory, empty, not an image, truncated,
            smaller than ``min_size`` or larger than ``max_pixels``, or has pixels this
            module cannot keep exactly (16-bit colour, floating point).
        ConfigError: ``max_pixels`` is not a positive integer.
    """
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1:
        raise ConfigError(f"max_pixels must be a positive integer, got {max_pixels!r}")
    path = Path(path)
    image, raw = _open(path, max_pixels, min_size)
    with image:
        array, bit_depth, has_alpha = _to_array(image, raw, path)
        return LoadedImage(
            array=array, mode=image.mode, bit_depth=bit_depth, format=image.format or "", path=path, has_alpha=has_alpha
        )
