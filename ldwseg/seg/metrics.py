"""Segmentation scores from one confusion matrix: IoU per class, mIoU, pixel and mean accuracy.

For two classes (background 0, foreground 1: vessels, membranes, ...) also the
foreground's IoU and Dice.

The confusion matrix ``C`` (``K x K``, ``int64``) counts labelled pixels: ``C[t, p]`` is
the number of pixels of true class ``t`` predicted as ``p``; pixels whose target is the
ignore index (255) are not counted. From it, for class ``k``::

    TP_k = C[k, k]      FP_k = sum_t C[t, k] - TP_k      FN_k = sum_p C[k, p] - TP_k
    IoU_k = TP_k / (TP_k + FP_k + FN_k)
    pixel_acc = trace(C) / sum(C)
    acc_k = TP_k / (TP_k + FN_k)        (the class's accuracy, i.e. its recall)
    precision_k = TP_k / (TP_k + FP_k)

A class that appears neither in the targets nor in the predictions has
``TP + FP + FN = 0``: its IoU is undefined, reported as ``None``, and left out of the mean
(as torchmetrics' ``JaccardIndex`` does when absent classes give NaN and the mean skips
them). A class that is only predicted has IoU 0 and does count in the mIoU. The mean
accuracy averages ``acc_k`` over the classes present in the targets. ``acc_k`` is
undefined (``None``) for a class absent from the targets, ``precision_k`` for a class never
predicted.

With ``K = 2``, class 1 is the foreground and, with ``TP, FP, FN`` of class 1::

    fg_iou = TP / (TP + FP + FN)
    dice = 2 TP / (2 TP + FP + FN)      (the F1 score of the foreground)

When the foreground is absent from both targets and predictions (``TP + FP + FN = 0``),
both are **1.0**: every labelled pixel is correctly background. Unlike the per-class IoU
(``None`` there), the two foreground scores are always floats, so a run's log and
``ldwseg compare --metric dice`` always have a number to rank, and strict JSON holds them.

The counting is torchmetrics' ``MulticlassConfusionMatrix``, so under
``torch.distributed`` the matrices of all ranks are summed in :meth:`compute`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypedDict

import torch
from torch import Tensor, nn
from torchmetrics.classification import MulticlassConfusionMatrix

from ..datasets.palette import IGNORE_INDEX
from ..errors import DataError

__all__ = ["FOREGROUND_KEYS", "SegmentationMetrics", "SegmentationScores", "foreground_scores", "format_iou_table"]

FOREGROUND_KEYS = ("fg_iou", "dice")
"""The scores :meth:`SegmentationMetrics.compute` adds for two classes."""


class _Scores(TypedDict):
    miou: float
    per_class_iou: list[float | None]
    pixel_acc: float
    mean_acc: float
    per_class_acc: list[float | None]
    per_class_precision: list[float | None]
    confusion: list[list[int]]


class SegmentationScores(_Scores, total=False):
    """What :meth:`SegmentationMetrics.compute` returns; plain Python values, JSON-safe.

    ``fg_iou`` and ``dice`` are there for two classes only.
    """

    fg_iou: float
    dice: float


def foreground_scores(confusion: Tensor) -> dict[str, float]:
    """IoU and Dice of class 1 from a ``2 x 2`` confusion matrix ``C[target, pred]``.

    Both are 1.0 when class 1 is neither a target nor a prediction (see the module docstring).

    Example:
        >>> foreground_scores(torch.tensor([[5, 1], [2, 3]]))  # TP 3, FP 1, FN 2
        {'fg_iou': 0.5, 'dice': 0.6666666666666666}
    """
    if confusion.shape != (2, 2):
        raise ValueError(f"foreground scores need a 2 x 2 confusion matrix, got shape {tuple(confusion.shape)}")
    counts = confusion.double()
    tp, fp, fn = counts[1, 1], counts[0, 1], counts[1, 0]
    if tp + fp + fn == 0:
        return {"fg_iou": 1.0, "dice": 1.0}
    return {"fg_iou": float(tp / (tp + fp + fn)), "dice": float(2 * tp / (2 * tp + fp + fn))}


class SegmentationMetrics(nn.Module):
    """Accumulate a confusion matrix over batches and score it (see the module docstring).

    Args:
        num_classes: number of classes ``K``; labels are ``0 .. K - 1``.
        ignore_index: target value of unlabelled pixels, not counted.

    Shape:
        - Input of :meth:`update`: logits ``(N, K, H, W)`` (the class is their argmax
          over dim 1) or integer predictions ``(N, H, W)``.
        - Target: integer ``(N, H, W)`` with values in ``0 .. K - 1`` or ``ignore_index``.

    Example:
        >>> metrics = SegmentationMetrics(3)
        >>> metrics.update(torch.tensor([[[0, 1], [2, 2]]]), torch.tensor([[[0, 1], [2, 255]]]))
        >>> metrics.compute()["miou"]
        1.0
    """

    def __init__(self, num_classes: int, *, ignore_index: int = IGNORE_INDEX) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, got {num_classes}")
        if 0 <= ignore_index < num_classes:
            raise ValueError(
                f"ignore_index={ignore_index} is a valid class of {num_classes}; use a label outside "
                f"0 .. {num_classes - 1} (255 by convention)"
            )
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        # validate_args=False: update() runs one cheaper range check with a clearer message
        self.confmat = MulticlassConfusionMatrix(num_classes, ignore_index=ignore_index, validate_args=False)

    def _as_predictions(self, logits_or_preds: Tensor, target: Tensor) -> Tensor:
        k = self.num_classes
        if logits_or_preds.shape == target.shape:
            if logits_or_preds.is_floating_point():
                raise ValueError(
                    f"predictions of shape {tuple(target.shape)} must be integer class indices, got "
                    f"{logits_or_preds.dtype}; pass logits of shape (N, {k}, H, W) or preds.long()"
                )
            return logits_or_preds
        logit_shape = (target.shape[0], k, *target.shape[1:]) if target.dim() else None
        if logits_or_preds.shape == logit_shape:
            return logits_or_preds.argmax(dim=1)
        raise ValueError(
            f"expected logits of shape {logit_shape} or predictions of the target's shape "
            f"{tuple(target.shape)}, got {tuple(logits_or_preds.shape)}"
        )

    @torch.no_grad()
    def update(self, logits_or_preds: Tensor, target: Tensor) -> None:
        """Add one batch of logits ``(N, K, H, W)`` or predictions ``(N, H, W)`` to the counts."""
        if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
            raise ValueError(f"target must hold integer class labels, got {target.dtype}; convert it with .long()")
        preds = self._as_predictions(logits_or_preds.detach(), target)
        labelled = target != self.ignore_index
        bad_target = labelled & ((target < 0) | (target >= self.num_classes))
        bad_pred = (preds < 0) | (preds >= self.num_classes)
        if bool(bad_target.any()) or bool(bad_pred.any()):
            found = torch.cat([target[bad_target], preds[bad_pred]]).unique()[:10].tolist()
            raise DataError(
                f"labels must be 0 .. {self.num_classes - 1} or the ignore index {self.ignore_index}, "
                f"found {found}; check num_classes and that unlabelled pixels are {self.ignore_index}"
            )
        self.confmat.update(preds, target)

    def confusion_matrix(self) -> Tensor:
        """The ``K x K`` matrix ``C[target, pred]`` summed over updates (and over DDP ranks)."""
        # torchmetrics returns a 0-d count for K = 1; keep the documented K x K shape
        return self.confmat.compute().reshape(self.num_classes, self.num_classes)

    def compute(self) -> SegmentationScores:
        """Score the pixels seen since the last :meth:`reset` (see the module docstring)."""
        confusion = self.confusion_matrix()
        counts = confusion.double()
        total = counts.sum()
        if total == 0:
            raise DataError(
                f"no labelled pixel was seen: update() was not called or every target pixel is "
                f"the ignore index {self.ignore_index}; there is nothing to score"
            )
        tp = counts.diagonal()
        in_target = counts.sum(dim=1)
        union = in_target + counts.sum(dim=0) - tp
        iou = torch.where(union > 0, tp / union.clamp(min=1), torch.nan)
        present = in_target > 0
        predicted = counts.sum(dim=0)
        acc = torch.where(present, tp / in_target.clamp(min=1), torch.nan)
        precision = torch.where(predicted > 0, tp / predicted.clamp(min=1), torch.nan)
        scores: SegmentationScores = {
            "miou": float(iou.nanmean()),
            "per_class_iou": [None if math.isnan(v) else v for v in iou.tolist()],
            "pixel_acc": float(tp.sum() / total),
            "mean_acc": float((tp[present] / in_target[present]).mean()),
            "per_class_acc": [None if math.isnan(v) else v for v in acc.tolist()],
            "per_class_precision": [None if math.isnan(v) else v for v in precision.tolist()],
            "confusion": confusion.tolist(),
        }
        if self.num_classes == 2:
            scores.update(foreground_scores(confusion))
        return scores

    def reset(self) -> None:
        """Forget every pixel seen so far."""
        self.confmat.reset()

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, ignore_index={self.ignore_index}"


def format_iou_table(per_class_iou: Sequence[float | None], class_names: Sequence[str] | None = None) -> str:
    """A plain-text table of IoU per class in percent, with the mean of the defined ones.

    ``None`` (or NaN) marks a class absent from targets and predictions: it is shown as
    ``-`` and, like in :meth:`SegmentationMetrics.compute`, left out of the mean.
    ``class_names`` defaults to ``class 0``, ``class 1``, ...
    """
    if class_names is None:
        class_names = [f"class {i}" for i in range(len(per_class_iou))]
    if len(class_names) != len(per_class_iou):
        raise ValueError(
            f"got {len(per_class_iou)} IoU values but {len(class_names)} class names; give one name per class"
        )
    absent = [v is None or math.isnan(v) for v in per_class_iou]
    defined = [v for v, gone in zip(per_class_iou, absent) if not gone]
    rows = [(name, "-" if gone else f"{100 * v:.2f}") for name, v, gone in zip(class_names, per_class_iou, absent)]
    mean = ("mean", f"{100 * sum(defined) / len(defined):.2f}" if defined else "-")
    width = max(len("class"), *(len(name) for name, _ in [*rows, mean]))
    digits = max(len("IoU %"), *(len(value) for _, value in [*rows, mean]))
    rule = f"{'-' * width}  {'-' * digits}"
    lines = [f"{name:<{width}}  {value:>{digits}}" for name, value in [("class", "IoU %"), *rows]]
    return "\n".join([lines[0], rule, *lines[1:], rule, f"{mean[0]:<{width}}  {mean[1]:>{digits}}"])
