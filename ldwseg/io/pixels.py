"""Stored integers <-> float pixel values: ``v = k / (2**bit_depth - 1)`` and back.

A file stores integers ``k`` in ``[0, 2**b - 1]`` (``b`` = 8 or 16 bits per sample);
ldwseg computes on floats ``v = k / (2**b - 1)`` in ``[0, 1]``. :func:`scaled` maps
``k -> v`` and :func:`quantize` maps ``v -> round(clip(v, 0, 1) * (2**b - 1))``, so that
``quantize(scaled(k, b), b) == k`` for every ``k``: float32 holds ``k / (2**b - 1)``
within a relative ``2**-24``, far closer than the 0.5 that rounding tolerates.
Both work a block of rows at a time, which bounds the float temporaries of huge images.
"""

from __future__ import annotations

import numpy as np

__all__ = ["BIT_DEPTHS", "quantize", "scaled"]

BIT_DEPTHS = (8, 16)
"""Bits per sample that ldwseg reads and writes."""

BLOCK_ROWS = 256
"""Rows per block when whole-image arrays are converted or blended: bounds the float temporaries."""


def _top(bit_depth: int) -> int:
    if bit_depth not in BIT_DEPTHS:
        raise ValueError(f"bit_depth must be one of {BIT_DEPTHS}, got {bit_depth!r}")
    return 2**bit_depth - 1


def scaled(stored: np.ndarray, bit_depth: int) -> np.ndarray:
    """``stored / (2**bit_depth - 1)`` as float32, without a second full-size temporary.

    Args:
        stored: integers of a ``bit_depth``-bit image, any shape.
        bit_depth: 8 or 16.
    """
    array = stored.astype(np.float32)
    array /= np.float32(_top(bit_depth))
    return array


def quantize(array: np.ndarray, bit_depth: int) -> np.ndarray:
    """The integers a ``bit_depth``-bit file stores for float values ``array``.

    ``round(clip(array, 0, 1) * (2**bit_depth - 1))`` (halves to even, as ``np.rint``),
    computed in float32 (or the array's wider float type) a block of rows at a time.

    Args:
        array: values in ``[0, 1]`` (others are clipped), shape ``(H, ...)``; not NaN.
        bit_depth: 8 or 16.

    Returns:
        ``uint8`` (8 bits) or ``uint16`` (16 bits) of ``array``'s shape.

    Example:
        >>> quantize(np.array([-0.5, 0.2 / 255, 0.6 / 255, 1.7]), 8).tolist()
        [0, 0, 1, 255]
    """
    top = _top(bit_depth)
    work = np.result_type(array.dtype, np.float32) if array.dtype.kind == "f" else np.float64
    stored = np.empty(array.shape, dtype=np.uint16 if bit_depth == 16 else np.uint8)
    for row in range(0, array.shape[0], BLOCK_ROWS):
        block = np.clip(array[row : row + BLOCK_ROWS], 0.0, 1.0).astype(work, copy=False)
        block *= top
        stored[row : row + BLOCK_ROWS] = np.rint(block, out=block)
    return stored
