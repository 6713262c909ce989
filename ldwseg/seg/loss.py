"""Segmentation losses: cross-entropy over the labelled pixels (optionally plus smp's Dice loss),
or smp's focal, Lovász-softmax or Jaccard loss; every one leaves out the ignored pixels (label 255)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor

from ..datasets.palette import IGNORE_INDEX
from ..task_kinds import TASK_KINDS

__all__ = ["SEGMENTATION_LOSSES", "jaccard_loss", "segmentation_criterion"]

SEGMENTATION_LOSSES = TASK_KINDS["seg"].losses
"""The values of ``train.loss`` for the segmentation task."""


def _labelled_share(labelled: Tensor) -> Tensor:
    """What one rank divides its summed cross-entropy by: its share ``N / W`` of the labelled pixels.

    ``N`` is the count over all ``W`` ranks of the process group (one all-reduce; a count
    carries no gradient), or this batch's count outside a group. ``labelled`` may hold
    per-pixel weights instead of a mask: ``N`` is then their sum. An ``N`` of 0 (every pixel
    ignored, where the summed loss is 0 too) is replaced by 1, so the loss is 0, not NaN.
    """
    count = labelled.sum().to(torch.float64)
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(count)
        return count.where(count > 0, 1.0) / dist.get_world_size()
    return count.where(count > 0, 1.0)


def jaccard_loss(logits: Tensor, target: Tensor, *, ignore_index: int = IGNORE_INDEX) -> Tensor:
    """smp's multiclass Jaccard loss over the pixels whose label is not ``ignore_index``.

    ``1 - sum(p t) / (sum p + sum t - sum(p t))`` per class over the batch (``p`` the
    softmax, ``t`` the one-hot labels), 0 for a class absent from the labels, averaged over
    the classes. The ignored pixels are masked out of both ``p`` and ``t`` and the masked
    maps go to smp's ``JaccardLoss`` in its multilabel mode on probabilities, which then
    computes exactly the multiclass loss: smp's own ``ignore_index`` for this loss came
    only with smp 0.5.

    Shape:
        ``logits (N, C, H, W)``, ``target (N, H, W)`` labels in ``[0, C)`` or ``ignore_index``.
    """
    from segmentation_models_pytorch.losses import JaccardLoss

    labelled = (target != ignore_index).unsqueeze(1)
    probs = logits.softmax(dim=1) * labelled
    onehot = F.one_hot(target.where(labelled[:, 0], 0), logits.shape[1]).permute(0, 3, 1, 2) * labelled
    return JaccardLoss(mode="multilabel", from_logits=False)(probs, onehot)


def segmentation_criterion(
    name: str, *, ignore_index: int = IGNORE_INDEX, class_weights: Sequence[float] | None = None
) -> Callable[[Tensor, Tensor], Tensor]:
    """The loss ``name`` (one of :data:`SEGMENTATION_LOSSES`) of logits and labels, ignoring ``ignore_index``.

    * ``"ce"``: cross-entropy, the mean over the labelled pixels, and 0 (not NaN) for a
      batch whose pixels are all ignored, e.g. crops that fall entirely on VOC's void borders.
      With ``class_weights`` ``w`` (:mod:`ldwseg.seg.class_weights`), the weighted mean
      ``sum_i w[y_i] CE_i / sum_i w[y_i]`` over the labelled pixels ``i``, as
      ``F.cross_entropy(weight=w)`` computes it.
    * ``"ce+dice"``: that plus smp's multiclass Dice loss.
    * ``"focal"``: smp's multiclass focal loss (``gamma = 2``): per class the binary focal
      loss of the class's logit (sigmoid, one class against the rest), the mean over the
      labelled pixels, averaged over the classes; 0 for an all-ignored batch.
    * ``"lovasz"``: smp's Lovász-softmax loss (Berman et al., 2018) over the labelled
      pixels of the batch, averaged over the classes present in the labels; 0 for an
      all-ignored batch.
    * ``"jaccard"``: :func:`jaccard_loss`, the soft Jaccard (IoU) loss.

    In a process group (``torchrun``) the cross-entropy and the focal loss are means over
    the labelled pixels of all the ranks' batches: rank ``r`` returns ``sum_r / (N / W)``,
    its sum over the total count ``N`` shared by the ``W`` ranks, so the mean of the ranks'
    losses, and the gradient DDP averages, are those of one process that holds every rank's
    batch, however the ignored pixels fall. Every rank must then call the criterion in step
    (it all-reduces ``N``). The Dice term of ``"ce+dice"`` and the Lovász and Jaccard losses
    stay each rank's own: they are ratios of sums (or sorts) over the batch, and no per-rank
    scaling makes the ranks' values into the value over the whole batch, so these losses in
    W ranks of batch B train a little differently from one process of batch W * B.
    """

    if class_weights is not None and name not in ("ce", "ce+dice"):
        raise ValueError(f"class weights apply to the cross-entropy losses ce and ce+dice, not {name!r}")

    def ce(logits: Tensor, target: Tensor) -> Tensor:
        if class_weights is None:
            total = F.cross_entropy(logits, target, ignore_index=ignore_index, reduction="sum")
            return total / _labelled_share(target != ignore_index).to(total.dtype)
        weight = torch.as_tensor(class_weights, dtype=logits.dtype, device=logits.device)
        total = F.cross_entropy(logits, target, weight=weight, ignore_index=ignore_index, reduction="sum")
        labelled = target != ignore_index
        return total / _labelled_share(weight[target.where(labelled, 0)] * labelled).to(total.dtype)

    if name == "ce":
        return ce
    if name == "ce+dice":
        from segmentation_models_pytorch.losses import DiceLoss

        dice = DiceLoss(mode="multiclass", ignore_index=ignore_index)
        return lambda logits, target: ce(logits, target) + dice(logits, target)
    if name == "focal":
        from segmentation_models_pytorch.losses import FocalLoss

        # summed over the labelled pixels (0 when there are none), then divided by their count
        focal = FocalLoss(mode="multiclass", ignore_index=ignore_index, reduction="sum")
        return lambda logits, target: focal(logits, target) / _labelled_share(target != ignore_index).to(logits.dtype)
    if name == "lovasz":
        from segmentation_models_pytorch.losses import LovaszLoss

        lovasz = LovaszLoss(mode="multiclass", ignore_index=ignore_index)
        # smp computes the Jaccard weights in float32, so the logits must be float32 too; it returns an empty
        # tensor when every pixel is ignored, whose sum is that batch's 0
        return lambda logits, target: lovasz(logits.float(), target).sum()
    if name == "jaccard":
        return lambda logits, target: jaccard_loss(logits, target, ignore_index=ignore_index)
    raise ValueError(f"unknown segmentation loss {name!r}; choose one of {', '.join(SEGMENTATION_LOSSES)}")
