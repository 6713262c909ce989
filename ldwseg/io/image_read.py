"""Reading image files: as floats keeping channels and bit depth, or as 8-bit RGB (see :mod:`ldwseg.io`).

Every reader opens files through :func:`open_image`, so all of them refuse the same
files with the same messages, and all replace Pillow's decompression-bomb check with the
same header check (``max_pixels``).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

from ..errors import ConfigError, DataError
from .pixels import quantize, scaled

__all__ = ["DEFAULT_MAX_PIXELS", "LoadedImage", "load_image", "load_rgb8", "open_image"]

DEFAULT_MAX_PIXELS = 16384 * 16384
"""Default pixel limit of every reader here (so of the data sets too) and of ``ldwseg predict``/``reconstruct``:
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
LIMIT_OPTION = "--max-pixels"
"""The command-line option that sets ``max_pixels`` (``predict``, ``reconstruct``), named in the refusal."""

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
        """The Pillow mode :func:`~ldwseg.io.save_image` writes: ``"I;16"`` for 16 bits, else L/LA/RGB/RGBA."""
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


def _check_limit(max_pixels: int) -> None:
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1:
        raise ConfigError(f"max_pixels must be a positive integer, got {max_pixels!r}")


def _open(
    path: Path, *, what: str, min_size: int, max_pixels: int, limit_option: str | None
) -> tuple[Image.Image, str]:
    """Open and fully decode ``path`` after checking its header size against the limits.

    Returns the image and its raw mode (read before decoding, which clears the tiles).
    """
    _check_limit(max_pixels)
    with _own_size_limit():
        return _open_checked(path, what, min_size, max_pixels, limit_option)


def _open_checked(
    path: Path, what: str, min_size: int, max_pixels: int, limit_option: str | None
) -> tuple[Image.Image, str]:
    if not path.exists():
        raise DataError(f"{what} file {path} does not exist; check the path")
    if path.is_dir():
        raise DataError(f"{what} file {path} is a directory; expected a file")
    if path.stat().st_size == 0:
        raise DataError(f"cannot read {what} file {path}: it is empty (0 bytes); replace it with a valid image")
    try:
        image = Image.open(path)
    except PermissionError as err:
        raise DataError(f"cannot read {what} file {path} ({err}); check its permissions") from err
    except OSError as err:  # UnidentifiedImageError is an OSError
        raise DataError(
            f"cannot read {what} file {path}: it is not an image PIL can read ({err}); "
            "expected a PNG, JPEG, TIFF, BMP or WebP file"
        ) from err
    try:
        width, height = image.size
        if width * height > max_pixels:
            raise_limit = (
                f", or raise the limit ({limit_option} {width * height}) if memory allows (about 35 bytes per pixel)"
                if limit_option
                else ""
            )
            raise DataError(
                f"{what} file {path} is too large to decode safely: {width}x{height} = {width * height} pixels, "
                f"more than max_pixels={max_pixels}; downscale it or cut it into smaller files{raise_limit}"
            )
        if width < min_size or height < min_size:
            raise DataError(
                f"{what} file {path} is {width}x{height} pixels; expected at least {min_size}x{min_size} "
                f"(min_size={min_size}), use a larger image"
            )
        raw = _raw_mode(image)
        try:
            image.load()
        except (OSError, ValueError, SyntaxError, EOFError) as err:
            raise DataError(
                f"cannot read {what} file {path}: it is truncated or corrupt ({err}); expected a complete image, "
                "replace it"
            ) from err
    except BaseException:
        image.close()
        raise
    return image, raw


@contextlib.contextmanager
def open_image(
    path: str | Path,
    *,
    what: str = "image",
    min_size: int = 1,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    limit_option: str | None = LIMIT_OPTION,
) -> Iterator[Image.Image]:
    """The decoded Pillow image of ``path``, after the checks every ldwseg reader makes.

    For readers that need the file's own mode (label masks read as palette indices);
    :func:`load_image` and :func:`load_rgb8` open files through it.

    Args:
        path: an image file.
        what: the file's role in the messages (``"image"``, ``"mask"``).
        min_size: the smallest accepted width and height.
        max_pixels: the largest accepted ``width * height``, checked on the header before
            decoding, in place of Pillow's decompression-bomb check (see
            :data:`DEFAULT_MAX_PIXELS`).
        limit_option: the option that raises ``max_pixels``, suggested when an image is
            refused as too large; ``None`` where the caller has none.

    Raises:
        DataError: the file is missing, a directory, empty, not an image, truncated, smaller
            than ``min_size`` or larger than ``max_pixels``.
        ConfigError: ``max_pixels`` is not a positive integer.
    """
    image, _ = _open(Path(path), what=what, min_size=min_size, max_pixels=max_pixels, limit_option=limit_option)
    with image:
        yield image


def _decode(image: Image.Image, raw: str, path: Path, *, exact: bool) -> tuple[np.ndarray, int, bool]:
    """``(stored integers (H, W, C) uint8 or uint16, bit depth, has alpha)`` of a decoded image.

    ``exact`` refuses 16-bit colour files, whose samples Pillow reduces to their high byte;
    otherwise those 8 bits are returned.
    """
    mode = image.mode
    if mode in _SIXTEEN_BIT_MODES or mode == "I":
        values = np.asarray(image)
        if mode == "I" and (values.min() < 0 or values.max() > 65535):
            raise DataError(
                f"image file {path} holds 32-bit integers outside [0, 65535]; expected 8 or 16-bit pixels, "
                "convert it to a 16-bit image"
            )
        return values.astype(np.uint16, copy=False)[..., None], 16, False
    if mode == "F":
        raise DataError(
            f"image file {path} holds floating-point pixels; expected 8 or 16-bit integer pixels, "
            "convert it to a 16-bit PNG or TIFF"
        )
    raw_layout, _, raw_bits = raw.partition(";")
    if exact and raw_layout in _COLOUR_16_RAW and raw_bits.startswith("16"):
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
    return values, 8, target in ("LA", "RGBA")


class _Stored(NamedTuple):
    """A file's pixels as its stored integers, and what :class:`LoadedImage` reports about it."""

    values: np.ndarray
    """``uint8`` or ``uint16`` ``(H, W, C)``, channels as in the module table."""
    bit_depth: int
    has_alpha: bool
    mode: str
    format: str


def _read_stored(path: Path, *, exact: bool, min_size: int, max_pixels: int, limit_option: str | None) -> _Stored:
    image, raw = _open(path, what="image", min_size=min_size, max_pixels=max_pixels, limit_option=limit_option)
    with image:
        return _Stored(*_decode(image, raw, path, exact=exact), mode=image.mode, format=image.format or "")


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
    path = Path(path)
    stored = _read_stored(path, exact=True, min_size=min_size, max_pixels=max_pixels, limit_option=LIMIT_OPTION)
    return LoadedImage(
        array=scaled(stored.values, stored.bit_depth),
        mode=stored.mode,
        bit_depth=stored.bit_depth,
        format=stored.format,
        path=path,
        has_alpha=stored.has_alpha,
    )


def load_rgb8(
    path: str | Path,
    *,
    min_size: int = 2,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    limit_option: str | None = LIMIT_OPTION,
) -> np.ndarray:
    """Read an image file as 8-bit RGB, what a segmentation model sees.

    Gray (and gray + alpha) files give three equal channels; alpha is dropped; palette
    files give their colours. 16-bit gray is rounded to 8 bits with :func:`~ldwseg.io.quantize`,
    ``round(k * 255 / 65535)``; 16-bit colour files, which Pillow decodes to 8 bits (the high
    byte of each sample), are read as decoded rather than refused as by :func:`load_image`.

    Args:
        path: a PNG, JPEG, TIFF, BMP or WebP file (anything Pillow decodes).
        min_size: the smallest accepted width and height.
        max_pixels: the largest accepted ``width * height`` (see :func:`open_image`).
        limit_option: the option that raises ``max_pixels`` (see :func:`open_image`).

    Returns:
        A writable ``uint8`` array ``(H, W, 3)``.

    Raises:
        DataError: as :func:`open_image`, or floating-point or 32-bit pixels.
        ConfigError: ``max_pixels`` is not a positive integer.
    """
    path = Path(path)
    stored = _read_stored(path, exact=False, min_size=min_size, max_pixels=max_pixels, limit_option=limit_option)
    values = stored.values
    colour = values[..., :1] if values.shape[-1] <= 2 else values[..., :3]
    if stored.bit_depth == 16:
        colour = quantize(scaled(colour, 16), 8)
    if colour.shape[-1] == 1:
        return np.repeat(colour, 3, axis=2)
    return colour.copy()  # a view of np.asarray(image), which Pillow makes read-only
