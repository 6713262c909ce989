"""Colour maps for label masks: the PASCAL VOC colour map, colourised masks and overlays."""

from __future__ import annotations

import numpy as np
from PIL import Image

from ..errors import DataError

__all__ = ["IGNORE_COLOR", "IGNORE_INDEX", "colorize", "overlay", "voc_palette"]

IGNORE_INDEX = 255
"""Label value that marks pixels to ignore (VOC object borders, CamVid void, crop padding)."""

IGNORE_COLOR = (224, 224, 192)
"""Colour of the ignore label in VOC masks (``voc_palette()[255]``)."""


def voc_palette(n: int = 256) -> np.ndarray:
    """The PASCAL VOC colour map, computed by the devkit's bit-interleaving rule.

    Bits ``3j``, ``3j+1`` and ``3j+2`` of the label ``i`` become bit ``7-j`` of red, green and
    blue respectively (``j = 0..7``), so label 1 is (128, 0, 0), label 2 (0, 128, 0) and
    label 255 the ignore colour (224, 224, 192).

    Args:
        n: number of colours, ``1 <= n <= 256``.

    Shape:
        - Output: ``(n, 3)`` ``uint8``.

    Example:
        >>> voc_palette(3).tolist()
        [[0, 0, 0], [128, 0, 0], [0, 128, 0]]
    """
    if not 1 <= n <= 256:
        raise DataError(f"voc_palette needs 1 <= n <= 256 colours, got n={n}; ask for at most 256")
    labels = np.arange(n, dtype=np.int64)
    palette = np.zeros((n, 3), dtype=np.int64)
    for j in range(8):
        for channel in range(3):
            bit = (labels >> (3 * j + channel)) & 1
            palette[:, channel] |= bit << (7 - j)
    return palette.astype(np.uint8)


def _full_palette(palette: np.ndarray) -> np.ndarray:
    """A 256-entry palette: the class colours, then black, with the ignore colour at 255."""
    palette = np.asarray(palette)
    if palette.ndim != 2 or palette.shape[1] != 3 or not 1 <= palette.shape[0] <= IGNORE_INDEX:
        raise DataError(
            f"expected a palette of shape (K, 3) with 1 <= K <= 255 class colours, got shape {palette.shape}; "
            "use dataset_info(name).palette or voc_palette(K)"
        )
    full = np.zeros((256, 3), dtype=np.uint8)
    full[: palette.shape[0]] = palette.astype(np.uint8)
    full[IGNORE_INDEX] = IGNORE_COLOR
    return full


def _check_labels(mask: np.ndarray, num_classes: int) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise DataError(f"expected a label mask of shape (H, W), got shape {mask.shape}; pass one mask at a time")
    bad = (mask < 0) | ((mask >= num_classes) & (mask != IGNORE_INDEX))
    if bad.any():
        values = np.unique(mask[bad])[:10].tolist()
        raise DataError(
            f"mask has label values {values} outside [0, {num_classes}) that are not the ignore label "
            f"{IGNORE_INDEX}; pass a palette with one colour per class"
        )
    return mask.astype(np.uint8)


def colorize(mask: np.ndarray, palette: np.ndarray) -> Image.Image:
    """A label mask as a palette (``"P"``) image, the format of VOC's ``SegmentationClass``.

    Args:
        mask: ``(H, W)`` integer labels in ``[0, K)`` or 255 (ignore).
        palette: ``(K, 3)`` ``uint8`` class colours; 255 is shown as (224, 224, 192).

    Returns:
        A mode ``"P"`` image whose pixel values are the labels themselves.
    """
    full = _full_palette(palette)
    image = Image.fromarray(_check_labels(mask, len(palette)), mode="P")
    image.putpalette(full.reshape(-1).tolist())
    return image


def overlay(image: np.ndarray, mask: np.ndarray, palette: np.ndarray, *, alpha: float = 0.5) -> np.ndarray:
    """Blend class colours over an image; ignored pixels keep the image's colour.

    Args:
        image: ``(H, W, 3)`` ``uint8`` RGB image.
        mask: ``(H, W)`` labels in ``[0, K)`` or 255.
        palette: ``(K, 3)`` class colours.
        alpha: weight of the class colour, in ``[0, 1]``.

    Returns:
        ``(H, W, 3)`` ``uint8``: ``(1 - alpha) * image + alpha * palette[mask]`` where labelled.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise DataError(
            f"expected an RGB uint8 image of shape (H, W, 3), got {image.dtype} {image.shape}; "
            "use denormalize() on a normalised tensor first"
        )
    if not 0.0 <= alpha <= 1.0:
        raise DataError(f"expected 0 <= alpha <= 1, got alpha={alpha}")
    labels = _check_labels(mask, len(palette))
    if labels.shape != image.shape[:2]:
        raise DataError(
            f"mask shape {labels.shape} differs from image shape {image.shape[:2]}; pass the mask of this image"
        )
    colours = _full_palette(palette)[labels].astype(np.float32)
    blended = (1.0 - alpha) * image.astype(np.float32) + alpha * colours
    labelled = (labels != IGNORE_INDEX)[..., None]
    return np.where(labelled, np.rint(blended), image).astype(np.uint8)
