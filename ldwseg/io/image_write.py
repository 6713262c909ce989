"""Writing images back losslessly in the input's pixel format, atomically (see :mod:`ldwseg.io`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import DataError
from .atomic import atomic_write
from .image_read import LoadedImage, load_image
from .pixels import quantize, scaled

__all__ = ["SAVE_FORMATS", "output_format", "save_image", "save_image_stored", "write_pil_image"]

SAVE_FORMATS = {
    ".png": "PNG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
    ".webp": "WEBP",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
}
"""Output suffixes :func:`save_image` accepts, and the Pillow format each one writes."""

# Modes each format stores exactly (WebP is written lossless); JPEG is lossy.
_FORMAT_MODES = {
    "PNG": ("L", "LA", "RGB", "RGBA", "I;16"),
    "TIFF": ("L", "LA", "RGB", "RGBA", "I;16"),
    "BMP": ("L", "RGB"),
    "WEBP": ("RGB", "RGBA"),
    "JPEG": ("L", "RGB"),
}
_SAVE_OPTIONS = {
    "WEBP": {"lossless": True, "exact": True},  # exact: keep the colour under alpha = 0
    "JPEG": {"quality": 95, "subsampling": 0},
}
_LOSSY_FORMATS = ("JPEG",)


def output_format(path: str | Path, like: LoadedImage) -> str:
    """The Pillow format that ``path``'s suffix selects, checked against ``like``'s pixels.

    Raises:
        DataError: the suffix is unknown, or the format cannot store ``like.pixel_mode``
            (alpha in JPEG or BMP, 16 bits outside PNG and TIFF, gray in WebP).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SAVE_FORMATS:
        raise DataError(
            f"cannot write {path}: unknown image suffix {path.suffix!r}; use one of {', '.join(SAVE_FORMATS)}"
        )
    fmt = SAVE_FORMATS[suffix]
    mode = like.pixel_mode
    if mode not in _FORMAT_MODES[fmt]:
        fits = [s for s, f in SAVE_FORMATS.items() if mode in _FORMAT_MODES[f]]
        raise DataError(
            f"cannot write {path}: {fmt} cannot store {mode} pixels ({like.bit_depth}-bit, "
            f"{like.array.shape[-1]} channels) of {like.path}; use one of {', '.join(fits)}"
        )
    return fmt


def write_pil_image(path: str | Path, image: Image.Image, fmt: str | None = None) -> None:
    """Save ``image`` to ``path`` with :func:`~ldwseg.io.atomic_write`: complete or not at all, flushed to disk.

    A failure (or a crash) never leaves a partial ``path``: an existing file stays intact
    and the temporary file is removed.

    Args:
        path: the output file.
        image: any Pillow image the format can store.
        fmt: the Pillow format; default the one ``path``'s suffix selects (:data:`SAVE_FORMATS`).

    Raises:
        DataError: an unknown suffix (without ``fmt``), or a write that fails without an
            operating-system error number.
        WriteFailed: the disk is full, read-only, over quota or failing
            (:func:`~ldwseg.io.atomic.atomic_write`).
    """
    path = Path(path)
    if fmt is None:
        fmt = SAVE_FORMATS.get(path.suffix.lower())
        if fmt is None:
            raise DataError(
                f"cannot write {path}: unknown image suffix {path.suffix!r}; use one of {', '.join(SAVE_FORMATS)}"
            )

    def save(temp: Path) -> None:
        with temp.open("wb") as handle:
            image.save(handle, format=fmt, **_SAVE_OPTIONS.get(fmt, {}))

    try:
        atomic_write(path, save)
    except OSError as err:
        raise DataError(f"cannot write {path} ({err}); check that the folder is writable and has free space") from err


def save_image(path: str | Path, array: np.ndarray, *, like: LoadedImage) -> np.ndarray:
    """Write ``array`` with the channels, bit depth and size of ``like``, atomically.

    The format follows ``path``'s suffix (:data:`SAVE_FORMATS`), whatever ``like``'s own
    format was: a reconstruction of a JPEG is best written as ``.png``, as a ``.jpg``
    output would add a second, lossy compression (quality 95, no chroma subsampling).
    WebP is written lossless. Values are clipped to ``[0, 1]`` and rounded to the bit depth.
    The file is written to a temporary file in the same folder and renamed over ``path``,
    so a failure never leaves a partial file and an existing ``path`` stays intact.

    Args:
        path: the output file.
        array: float ``(H, W, C)`` with ``like.array``'s shape (``(H, W)`` for ``C = 1``).
        like: the image whose pixel layout is reproduced.

    Returns:
        The values as stored, float32 ``(H, W, C)`` in ``[0, 1]``: the quantised array,
        or for JPEG the file decoded again.

    Raises:
        DataError: unknown suffix, a format that cannot store these pixels, NaN or
            infinite values, a missing output folder, or a write that fails.
        ValueError: ``array`` does not have ``like.array``'s shape.
    """
    return scaled(save_image_stored(path, array, like=like), like.bit_depth)


def save_image_stored(path: str | Path, array: np.ndarray, *, like: LoadedImage) -> np.ndarray:
    """:func:`save_image`, returning the stored integers rather than their float values.

    Returns:
        ``uint8`` or ``uint16`` ``(H, W, C)``: ``k`` where :func:`save_image` returns
        ``k / (2**bit_depth - 1)``; a quarter (8 bit) or half (16 bit) of the float32
        array's memory, which matters for huge images.
    """
    path = Path(path)
    fmt = output_format(path, like)
    array = np.asarray(array)
    if array.ndim == 2:
        array = array[..., None]
    if array.shape != like.array.shape:
        raise ValueError(
            f"cannot write {path}: the array has shape {array.shape}, expected {like.array.shape} "
            f"(H, W, C) like {like.path}"
        )
    bad = array.size - np.count_nonzero(np.isfinite(array))
    if bad:
        raise DataError(f"cannot write {path}: the array has {bad} NaN or infinite values; expected values in [0, 1]")
    if not path.parent.is_dir():
        raise DataError(f"cannot write {path}: the folder {path.parent} does not exist; create it first")
    stored = quantize(array, like.bit_depth)
    # fromarray picks L / LA / RGB / RGBA from the channel count and I;16 from uint16
    image = Image.fromarray(stored[..., 0] if stored.shape[-1] == 1 else stored)
    write_pil_image(path, image, fmt)
    del image
    if fmt in _LOSSY_FORMATS:
        decoded = load_image(path, min_size=1, max_pixels=max(stored.shape[0] * stored.shape[1], 1))
        return quantize(decoded.array, like.bit_depth)
    return stored
