"""Segmentation losses: cross-entropy over the labelled pixels, optionally plus smp's Dice loss."""

from __future__ import annotations

from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor

from ..datasets.palette import IGNORE_INDEX

__all__ = ["segmentation_criterion"]


def segmentation_criterion(name: str, *, ignore_index: int = IGNORE_INDEX) -> Callable[[Tensor, Tensor], Tensor]:
    """Cross-entropy ignoring ``ignore_index``, optionally plus smp's multiclass Dice loss.

    The cross-entropy is the mean over the labelled pixels, and 0 (not NaN) for a batch
    whose pixels are all ignored, e.g. crops that fall entirely on VOC's void borders.
    """

    def ce(logits: Tensor, target: Tensor) -> Tensor:
        total = F.cross_entropy(logits, target, ignore_index=ignore_index, reduction="sum")
        return total / (target != ignore_index).sum().clamp_min(1)

    if name == "ce":
        return ce
    if name == "ce+dice":
        from segmentation_models_pytorch.losses import DiceLoss

        dice = DiceLoss(mode="multiclass", ignore_index=ignore_index)
        return lambda logits, target: ce(logits, target) + dice(logits, target)
    raise ValueError(f"unknown segmentation loss {name!r}; choose ce or ce+dice")
