"""Segmentation losses: cross-entropy over the labelled pixels, optionally plus smp's Dice loss."""

from __future__ import annotations

from collections.abc import Callable

import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor

from ..datasets.palette import IGNORE_INDEX

__all__ = ["segmentation_criterion"]


def _labelled_share(labelled: Tensor) -> Tensor:
    """What one rank divides its summed cross-entropy by: its share ``N / W`` of the labelled pixels.

    ``N`` is the count over all ``W`` ranks of the process group (one all-reduce; a count
    carries no gradient), or this batch's count outside a group, at least 1.
    """
    count = labelled.sum()
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return count.clamp_min(1)
    dist.all_reduce(count)
    return count.clamp_min(1) / dist.get_world_size()


def segmentation_criterion(name: str, *, ignore_index: int = IGNORE_INDEX) -> Callable[[Tensor, Tensor], Tensor]:
    """Cross-entropy ignoring ``ignore_index``, optionally plus smp's multiclass Dice loss.

    The cross-entropy is the mean over the labelled pixels, and 0 (not NaN) for a batch
    whose pixels are all ignored, e.g. crops that fall entirely on VOC's void borders.

    In a process group (``torchrun``) it is the mean over the labelled pixels of all the
    ranks' batches: rank ``r`` returns ``sum_r / (N / W)``, its sum over the total count
    ``N`` shared by the ``W`` ranks, so the mean of the ranks' losses, and the gradient
    DDP averages, are those of one process that holds every rank's batch, however the
    ignored pixels fall. Every rank must then call the criterion in step (it all-reduces
    ``N``). The Dice term of ``"ce+dice"`` stays each rank's own: Dice is a ratio of sums
    over the batch, and no per-rank scaling makes the ranks' ratios into the ratio over
    the whole batch, so ``ce+dice`` in W ranks of batch B trains a little differently
    from one process of batch W * B.
    """

    def ce(logits: Tensor, target: Tensor) -> Tensor:
        total = F.cross_entropy(logits, target, ignore_index=ignore_index, reduction="sum")
        return total / _labelled_share(target != ignore_index)

    if name == "ce":
        return ce
    if name == "ce+dice":
        from segmentation_models_pytorch.losses import DiceLoss

        dice = DiceLoss(mode="multiclass", ignore_index=ignore_index)
        return lambda logits, target: ce(logits, target) + dice(logits, target)
    raise ValueError(f"unknown segmentation loss {name!r}; choose ce or ce+dice")
