"""Evaluate a segmentation checkpoint at full resolution: mIoU, per-class IoU, pixel accuracy, foreground Dice."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from ..datasets import build_dataset, eval_transform, pad_collate
from ..engine.checkpoints import load_run_model
from ..engine.distributed import resolve_device
from ..engine.precision import Precision
from ..errors import CheckpointError
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
    progress=None,
) -> dict[str, Any]:
    """Metrics of ``checkpoint`` on a split; data set, root and split default to the training run's.

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
    loader = DataLoader(data, batch_size=batch_size, shuffle=False, collate_fn=pad_collate, num_workers=num_workers)
    amp = cfg.train.amp if (cfg.train.amp != "fp16" or dev.type == "cuda") else "off"  # fp16 autocast is CUDA-only
    metrics = SegmentationMetrics(classes).to(dev)
    result = evaluate(model, loader, metrics, precision=Precision(dev, amp), progress=progress)
    return {
        "checkpoint": str(checkpoint),
        "dataset": name,
        "split": split,
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
    return {**report, **{k: result[k] for k in ("class_names", "dataset", "split", "images", "skipped")}}


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Iterable[tuple[Tensor, Tensor]],
    metrics: SegmentationMetrics,
    *,
    precision: Precision,
    progress: Callable[[Iterable], Iterable] | None = None,
) -> dict:
    """mIoU, per-class IoU and pixel accuracy over ``loader`` at the images' own size."""
    model.eval()
    metrics.reset()
    for images, masks in progress(loader) if progress is not None else loader:
        with precision.autocast():
            logits = model(precision.inputs(images))
        metrics.update(logits.float(), masks.to(precision.device))
    return metrics.compute()
