"""Evaluate a segmentation checkpoint: mIoU, per-class IoU, pixel accuracy at full resolution."""

from __future__ import annotations

from collections.abc import Callable, Iterable
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
from .metrics import SegmentationMetrics

__all__ = ["evaluate", "evaluate_checkpoint"]


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

    ``skip_bad`` leaves out the samples that cannot be used (listed in the log, counted in
    ``"skipped"``) instead of failing on them.
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
        "class_names": list(data.info.class_names),
    }


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
