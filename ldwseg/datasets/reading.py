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
from ..io import DEFAULT_MAX_PIXELS, load_rgb8, open_image

__all__ = ["IMAGE_SUFFIXES", "SampleError", "read_image", "read_mask"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".gif", ".webp")
"""File suffixes that the folder-based loaders treat as images."""

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
