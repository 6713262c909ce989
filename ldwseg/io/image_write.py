"""Writing images back losslessly in the input's pixel format, atomically (see :mod:`ldwseg.io`)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import DataError
from .image_read import _BLOCK_ROWS, LoadedImage, _scaled, load_image

__all__ = ["SAVE_FORMATS", "output_format", "save_image", "save_image_stored", "write_atomic"]

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
            f"cannot write {path}: unknown image suffix {path.suffix!r}; "
            f"use one of {', '.join(SAVE_FORMATS)}"
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


def _quantize(array: np.ndarray, bit_depth: int) -> np.ndarray:
    """``round(clip(array, 0, 1) * (2**bit_depth - 1))`` as uint8/uint16, a block of rows at a time."""
    top = 2**bit_depth - 1
    work = np.result_type(array.dtype, np.float32) if array.dtype.kind == "f" else np.float64
    stored = np.empty(array.shape, dtype=np.uint16 if bit_depth == 16 else np.uint8)
    for row in range(0, array.shape[0], _BLOCK_ROWS):
        block = np.clip(array[row : row + _BLOCK_ROWS], 0.0, 1.0).astype(work, copy=False)
        block *= top
        stored[row : row + _BLOCK_ROWS] = np.rint(block, out=block)
    return stored


def write_atomic(path: str | Path, image: Image.Image, fmt: str | None = None) -> None:
    """Save ``image`` to a new file beside ``path``, flush it to disk, then rename it over ``path``.

    A failure (or a crash) never leaves a partial ``path``: an existing file stays intact
    and the temporary file is removed (a hard kill can leave a hidden ``.<name>.<hex>.tmp``).

    Args:
        path: the output file.
        image: any Pillow image the format can store.
        fmt: the Pillow format; default the one ``path``'s suffix selects (:data:`SAVE_FORMATS`).

    Raises:
        DataError: an unknown suffix (without ``fmt``), or a write that fails.
    """
    path = Path(path)
    if fmt is None:
        fmt = SAVE_FORMATS.get(path.suffix.lower())
        if fmt is None:
            raise DataError(
                f"cannot write {path}: unknown image suffix {path.suffix!r}; use one of {', '.join(SAVE_FORMATS)}"
            )
    # os.open with mode 0o666 gives the temporary file the permissions (umask applied) that
    # a plain open() of ``path`` would; tempfile.mkstemp would leave it readable by the owner only.
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    created = False
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        created = True
        with os.fdopen(fd, "wb") as handle:
            image.save(handle, format=fmt, **_SAVE_OPTIONS.get(fmt, {}))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
        created = False
    except OSError as err:
        raise DataError(f"cannot write {path} ({err}); check that the folder is writable and has free space") from err
    finally:
        if created:
            temp.unlink(missing_ok=True)


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
    return _scaled(save_image_stored(path, array, like=like), 2**like.bit_depth - 1)


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
    stored = _quantize(array, like.bit_depth)
    # fromarray picks L / LA / RGB / RGBA from the channel count and I;16 from uint16
    image = Image.fromarray(stored[..., 0] if stored.shape[-1] == 1 else stored)
    write_atomic(path, image, fmt)
    del image
    if fmt in _LOSSY_FORMATS:
        decoded = load_image(path, min_size=1, max_pixels=max(stored.shape[0] * stored.shape[1], 1))
        return _quantize(decoded.array, like.bit_depth)
    return stored
