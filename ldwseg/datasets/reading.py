"""Decode image and label files into arrays, with one clear error for any unreadable file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import DataError

__all__ = ["IMAGE_SUFFIXES", "SampleError", "read_image", "read_mask"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".gif", ".webp")
"""File suffixes that the folder-based loaders treat as images."""

# Pillow reports broken files with any of these (UnidentifiedImageError is an OSError;
# truncated data gives OSError or SyntaxError, odd headers ValueError or EOFError).
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError)
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I")
_LABEL_MODES = ("P", "L", "1", *_SIXTEEN_BIT)


class SampleError(DataError):
    """A sample's file cannot be used; ``path`` names the file."""

    def __init__(self, path: Path, message: str) -> None:
        super().__init__(message)
        self.path = path


def _open(path: Path, kind: str) -> Image.Image:
    """Open and fully decode ``path``, so that truncated files fail here and not later."""
    try:
        with Image.open(path) as image:
            image.load()
            return image.copy()
    except FileNotFoundError as err:
        raise SampleError(
            path, f"{kind} file {path} does not exist; restore it or remove its id from the split list"
        ) from err
    except Image.DecompressionBombError as err:
        raise SampleError(
            path, f"{kind} file {path} is too large to decode safely ({err}); downscale it or leave it out (--skip-bad)"
        ) from err
    except _DECODE_ERRORS as err:
        size = path.stat().st_size if path.exists() else 0
        raise SampleError(
            path,
            f"cannot read {kind} file {path} ({size} bytes): {err}; expected a valid image file, "
            "replace it or pass skip_bad=True (--skip-bad) to drop unreadable samples",
        ) from err


def read_image(path: str | Path) -> np.ndarray:
    """Read an image as RGB ``uint8`` ``(H, W, 3)``, whatever its stored mode.

    Gray, gray+alpha, palette, RGBA and CMYK images are converted to RGB (alpha is dropped);
    16-bit gray images are scaled to 8 bits (``v * 255 / 65535``).
    """
    path = Path(path)
    image = _open(path, "image")
    if image.mode in _SIXTEEN_BIT:
        values = np.asarray(image).astype(np.float64)
        if values.min() < 0 or values.max() > 65535:
            raise SampleError(
                path,
                f"image {path} is a {image.mode} image with values outside [0, 65535]; "
                "expected 8-bit or 16-bit pixels, convert it to an 8-bit RGB image",
            )
        gray = np.rint(values * (255.0 / 65535.0)).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if image.mode == "F":
        raise SampleError(
            path, f"image {path} holds floating-point pixels; expected 8 or 16-bit, convert it to 8-bit RGB"
        )
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.asarray(image, dtype=np.uint8).copy()


def read_mask(path: str | Path) -> np.ndarray:
    """Read a class-index mask as ``int64`` ``(H, W)``.

    Palette (``"P"``) PNGs such as VOC's are read as their palette *indices*, never as colours;
    8-bit, 16-bit and 1-bit gray images are read as their values.
    """
    path = Path(path)
    image = _open(path, "mask")
    if image.mode not in _LABEL_MODES:
        raise SampleError(
            path,
            f"mask {path} is a {image.mode} image; expected a class-index mask (palette or gray PNG with one "
            "label per pixel); convert colour-coded masks to indices first",
        )
    return np.asarray(image).astype(np.int64)
