"""Evaluate a segmentation model: mIoU, per-class IoU, pixel and mean accuracy, foreground Dice.

The network runs on each image resized by the run's ``data.eval_scale`` and its logits are
resized back to the label's size (:func:`~ldwseg.inference.scale.scaled_logits`), so the
scores are counted on the original labels. Images are batched only with images of their
own size (:func:`~ldwseg.datasets.stack_by_size`): no image is run beside another's
padding, and the scores do not depend on the batch size.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from ..datasets import build_dataset, eval_transform, pairs_collate, stack_by_size
from ..engine.checkpoints import load_run_model
from ..engine.distributed import resolve_device
from ..engine.precision import Precision
from ..errors import CheckpointError
from ..inference.scale import scaled_logits
from .metrics import FOREGROUND_KEYS, SegmentationMetrics

__all__ = ["evaluate", "evaluate_checkpoint", "json_report"]


def evaluate_checkpoint(
    checkpoint: str | Path,
    *,
    dataset: str | None = None,
    root: str | Path | None = None,
    split: str | None = None,
    device: str = "auto",
    batch_size: int = 1,
    num_workers: int = 0,
    skip_bad: bool = False,
    eval_scale: float | None = None,
    progress=None,
) -> dict[str, Any]:
    """Metrics of ``checkpoint`` on a split; data set, root and split default to the training run's.

    ``eval_scale`` resizes each image before the network (see the module docstring);
    ``None`` takes the run's own ``data.eval_scale``, so the result reproduces the
    validation score that training logged for this checkpoint.

    Returns mIoU, per-class IoU (a list in class order, ``None`` for a class absent from
    targets and predictions), pixel accuracy, ``class_names`` and, for two classes,
    ``fg_iou`` and ``dice`` (see :mod:`ldwseg.seg.metrics`).

    ``skip_bad`` leaves out the samples that cannot be used (listed in the log, counted in
    ``"skipped"``) instead of failing on them. Images of any size are scored whole: an smp
    arch that needs it pads each one to its encoder's output stride and crops its logits
    back (:class:`~ldwseg.models.smp_net.SMPSegmenter`).
    """
    dev = resolve_device(device)
    model, meta, cfg = load_run_model(checkpoint, dev, task="seg")
    classes = int(meta["dataset"]["num_classes"])
    name = dataset or cfg.data.dataset
    if root is None and name == cfg.data.dataset:
        root = cfg.data.root
    split = split or cfg.data.val_split
    data = build_dataset(
        name, root, split, transform=eval_transform(), num_classes=classes if name == "folder" else None,
        skip_bad=skip_bad,
    )
    if data.info.num_classes != classes:
        raise CheckpointError(
            f"{checkpoint} predicts {classes} classes but data set {name!r} has {data.info.num_classes}; "
            "evaluate it on a data set with the same classes"
        )
    scale = cfg.data.eval_scale if eval_scale is None else eval_scale
    if not 0 < scale <= 4:
        raise CheckpointError(f"--eval-scale must be in (0, 4], got {scale}; 1 runs the images as they are read")
    loader = DataLoader(data, batch_size=batch_size, shuffle=False, collate_fn=pairs_collate, num_workers=num_workers)
    amp = cfg.train.amp if (cfg.train.amp != "fp16" or dev.type == "cuda") else "off"  # fp16 autocast is CUDA-only
    metrics = SegmentationMetrics(classes).to(dev)
    result = evaluate(model, loader, metrics, precision=Precision(dev, amp), eval_scale=scale, progress=progress)
    return {
        "checkpoint": str(checkpoint),
        "dataset": name,
        "split": split,
        "eval_scale": scale,
        "images": len(data),
        "skipped": len(data.skipped),
        "miou": result["miou"],
        "per_class_iou": result["per_class_iou"],
        "pixel_acc": result["pixel_acc"],
        **{k: result[k] for k in FOREGROUND_KEYS if k in result},
        "class_names": _class_names(meta["dataset"], data.info.class_names),
    }


def _class_names(record: dict[str, Any], fallback: Sequence[str]) -> list[str]:
    """The class names the checkpoint stored, when they are one distinct string per class; else ``fallback``.

    The stored names say what the model's outputs mean; checkpoints written before the
    record held them (or edited ones) get the evaluated data set's names.
    """
    names = record.get("class_names")
    valid = (
        isinstance(names, list) and len(names) == len(fallback)
        and all(isinstance(n, str) for n in names) and len(set(names)) == len(names)
    )  # fmt: skip
    return list(names) if valid else list(fallback)


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def json_report(result: dict[str, Any]) -> dict[str, Any]:
    """The object ``ldwseg evaluate --json`` prints, from :func:`evaluate_checkpoint`'s result.

    ``per_class_iou`` maps each class name to its IoU, in class order (``class_names``
    lists that order too). Any score that is not a finite number, such as the IoU of a
    class absent from targets and predictions, is ``None`` (JSON ``null``), so the object
    passes ``json.dumps(..., allow_nan=False)``.
    """
    report = {
        "miou": _finite(result["miou"]),
        "per_class_iou": {n: _finite(v) for n, v in zip(result["class_names"], result["per_class_iou"], strict=True)},
        "pixel_acc": _finite(result["pixel_acc"]),
        **{k: _finite(result[k]) for k in FOREGROUND_KEYS if k in result},
    }
    return {**report, **{k: result[k] for k in ("class_names", "dataset", "split", "eval_scale", "images", "skipped")}}


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Iterable[Sequence[tuple[Tensor, Tensor]] | tuple[Tensor, Tensor]],
    metrics: SegmentationMetrics,
    *,
    precision: Precision,
    eval_scale: float = 1.0,
    progress: Callable[[Iterable], Iterable] | None = None,
) -> dict:
    """The scores of :meth:`SegmentationMetrics.compute` over ``loader``, counted at the labels' size.

    ``loader`` yields lists of ``(image, mask)`` pairs (:func:`~ldwseg.datasets.pairs_collate`),
    run in batches of equal size, or ``(images, masks)`` tensors, run as one batch. Each
    batch runs at ``eval_scale`` (see the module docstring).
    """
    model.eval()
    metrics.reset()
    for batch in progress(loader) if progress is not None else loader:
        for images, masks in [batch] if isinstance(batch[0], Tensor) else stack_by_size(batch):
            with precision.autocast():
                logits = scaled_logits(model, precision.inputs(images), scale=eval_scale, size=masks.shape[-2:])
            metrics.update(logits.float(), masks.to(precision.device))
    return metrics.compute()
