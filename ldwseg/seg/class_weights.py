"""Class weights for the cross-entropy, from the pixel counts of the training labels.

With ``n_k`` the labelled pixels of class ``k`` in the training set (ignored pixels not
counted), ``N = sum_k n_k``, and ``m_k`` the pixels of the images that hold class ``k``:

* ``"enet"`` (Paszke et al., 2016, ENet, section 5.2): ``w_k = 1 / ln(1.02 + n_k / N)``;
  the constant 1.02 bounds the weights to ``[1, 1 / ln 1.02 ~ 50.5]``.
* ``"median"`` (Eigen and Fergus, 2015, median frequency balancing): with the class
  frequency ``f_k = n_k / m_k``, ``w_k = median(f) / f_k``, the median over the classes
  that occur.

A class that never occurs in the training labels gets weight 0: it contributes no pixel to
the loss anyway, and a finite placeholder would only hide that it is missing.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np

from ..datasets import IGNORE_INDEX, SegmentationDataset
from ..datasets.base import map_threads
from ..errors import ConfigError

__all__ = ["ENET_C", "class_pixel_counts", "class_weights", "resolve_class_weights"]

log = logging.getLogger(__name__)

ENET_C = 1.02
"""ENet's constant in ``1 / ln(c + p)``."""


def class_pixel_counts(dataset: SegmentationDataset) -> tuple[np.ndarray, np.ndarray]:
    """``(n, m)``: per class, its labelled pixels and the pixels of the images that hold it (int64 ``(K,)`` each).

    Reads every mask as training sees it before augmentation (``label_map`` and region applied).
    """
    k = dataset.info.num_classes

    def count(index: int) -> np.ndarray:
        _, mask = dataset.load(index)
        labelled = mask[mask != IGNORE_INDEX]
        return np.bincount(labelled.ravel(), minlength=k)[:k]

    per_image = np.stack(map_threads(count, range(len(dataset))))
    image_pixels = per_image.sum(axis=1, keepdims=True)
    return per_image.sum(axis=0), ((per_image > 0) * image_pixels).sum(axis=0)


def class_weights(pixels: np.ndarray, image_pixels: np.ndarray, method: str) -> list[float]:
    """The weights of ``method`` (``"enet"`` or ``"median"``) from :func:`class_pixel_counts`' ``(n, m)``."""
    pixels = np.asarray(pixels, dtype=np.float64)
    present = pixels > 0
    if not present.any():
        raise ConfigError("the training labels hold no labelled pixel, so no class weights can be computed from them")
    weights = np.zeros_like(pixels)
    if method == "enet":
        weights[present] = 1.0 / np.log(ENET_C + pixels[present] / pixels.sum())
    elif method == "median":
        freq = pixels[present] / np.asarray(image_pixels, dtype=np.float64)[present]
        weights[present] = np.median(freq) / freq
    else:
        raise ConfigError(f"unknown class weighting {method!r}; choose enet or median, or give a list of weights")
    return [float(w) for w in weights]


def resolve_class_weights(
    setting: str | Sequence[float] | None, train: SegmentationDataset, class_names: Sequence[str]
) -> list[float] | None:
    """The weights a run trains with: ``None``, the given list (one per class, checked), or computed from ``train``."""
    if setting is None:
        return None
    k = len(class_names)
    if not isinstance(setting, str):
        weights = [float(w) for w in setting]
        if len(weights) != k:
            raise ConfigError(
                f"train.class_weights lists {len(weights)} weights but the data set has {k} classes "
                f"({', '.join(class_names)}); give one weight per class"
            )
        return weights
    pixels, image_pixels = class_pixel_counts(train)
    weights = class_weights(pixels, image_pixels, setting)
    shown = ", ".join(f"{name} {w:.2f}" for name, w in zip(class_names, weights))
    log.info("class weights (%s, from %d training masks): %s", setting, len(train), shown)
    missing = [name for name, n in zip(class_names, pixels) if n == 0]
    if missing:
        log.warning("classes absent from the training labels get weight 0: %s", ", ".join(missing))
    if not all(math.isfinite(w) for w in weights):
        raise ConfigError(f"class weights {weights} are not finite; give them as a list instead")
    return weights
