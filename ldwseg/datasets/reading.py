"""Decode a sample's image and label files into arrays, with one clear error naming any unusable file.

Both readers open files with :func:`ldwseg.io.open_image`, so a sample file is refused
for the same reasons, with the same messages and the same size limit, as an image given
to ``predict`` or ``reconstruct``; the refusal comes as a :class:`SampleError` naming the
file, which :func:`~ldwseg.datasets.validate` lists and ``--skip-bad`` leaves out.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..io import DEFAULT_MAX_PIXELS, load_image, load_rgb8, open_image

__all__ = ["IMAGE_SUFFIXES", "SampleError", "read_channels", "read_image", "read_mask"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".gif", ".webp", ".npy")
"""File suffixes that the folder-based loaders treat as images (``.npy``: an array of any channel count)."""

# Modes whose values are class indices: palette indices, 1/8/16-bit gray, 32-bit integers.
_LABEL_MODES = ("P", "L", "1", "I;16", "I;16B", "I;16L", "I")


class SampleError(DataError):
    """A sample's file cannot be used; ``path`` names the file."""

    def __init__(self, path: Path, message: str) -> None:
        super().__init__(message)
        self.path = path


@contextlib.contextmanager
def _naming(path: Path) -> Iterator[None]:
    """Turn the reader's :class:`~ldwseg.errors.DataError` into a :class:`SampleError` for ``path``."""
    try:
        yield
    except SampleError:
        raise
    except DataError as err:
        raise SampleError(path, str(err)) from err


def read_image(path: str | Path, *, min_size: int = 1, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read an image as RGB ``uint8`` ``(H, W, 3)``, whatever its stored mode (:func:`ldwseg.io.load_rgb8`).

    Gray, gray+alpha, palette, RGBA and CMYK images are converted to RGB (alpha is dropped);
    16-bit gray images are scaled to 8 bits (``round(v * 255 / 65535)``).

    Args:
        path: the image file.
        min_size: the smallest accepted width and height, checked on the header.
        max_pixels: the largest accepted ``width * height``, checked on the header.

    Raises:
        SampleError: the file cannot be used; the message says why.
    """
    path = Path(path)
    with _naming(path):
        return load_rgb8(path, min_size=min_size, max_pixels=max_pixels, limit_option=None)


def _read_array(path: Path, max_pixels: int) -> np.ndarray:
    """A ``.npy`` image: ``(H, W)`` or ``(H, W, C)``; integers scaled by their type's maximum, floats as stored."""
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise SampleError(
            path, f"image file {path} is not a readable .npy array ({err}); save it with numpy.save"
        ) from None
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[0] * array.shape[1] > max_pixels:
        raise SampleError(
            path, f"image file {path} holds an array of shape {array.shape}; expected (H, W) or (H, W, C)"
        )
    if np.issubdtype(array.dtype, np.integer):
        return (array / np.iinfo(array.dtype).max).astype(np.float32)
    if np.issubdtype(array.dtype, np.floating):
        return array.astype(np.float32)
    raise SampleError(path, f"image file {path} holds {array.dtype} values; expected integers or floats")


def read_channels(
    path: str | Path, channels: int, *, min_size: int = 1, max_pixels: int = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """Read an image exactly as float32 ``(H, W, channels)``: its stored values over their maximum.

    8-bit and 16-bit gray images give one channel (``v / 255``, ``v / 65535``: nothing is
    rounded), RGB three, and an alpha channel is dropped when the rest has ``channels``.
    ``.npy`` arrays hold any number of channels (multispectral rasters): integers are
    scaled by their type's maximum, floats kept as stored.

    Raises:
        SampleError: the file cannot be used, or has another number of channels.
    """
    path = Path(path)
    with _naming(path):
        if path.suffix.lower() == ".npy":
            array = _read_array(path, max_pixels)
        else:
            loaded = load_image(path, min_size=min_size, max_pixels=max_pixels)
            array = (
                loaded.array[..., :-1] if loaded.has_alpha and loaded.array.shape[-1] == channels + 1 else loaded.array
            )
        if array.shape[-1] != channels or min(array.shape[:2]) < min_size:
            raise SampleError(
                path,
                f"image {path} has {array.shape[-1]} channel(s) of {array.shape[1]}x{array.shape[0]} pixels; expected "
                f"{channels} (model.in_channels) and sides of at least {min_size}; convert the file or set "
                f"model.in_channels={array.shape[-1]}",
            )
        return np.ascontiguousarray(array)


def read_mask(path: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read a class-index mask as ``int64`` ``(H, W)``.

    Palette (``"P"``) PNGs such as VOC's are read as their palette *indices*, never as colours;
    8-bit, 16-bit and 1-bit gray images are read as their values.

    Raises:
        SampleError: the file cannot be used, or holds colours rather than class indices.
    """
    path = Path(path)
    with _naming(path), open_image(path, what="mask", max_pixels=max_pixels, limit_option=None) as image:
        if image.mode not in _LABEL_MODES:
            raise SampleError(
                path,
                f"mask {path} is a {image.mode} image; expected a class-index mask (palette or gray PNG with one "
                "label per pixel); convert colour-coded masks to indices first",
            )
        return np.asarray(image).astype(np.int64)
