"""The segmentation task for the training loop: data sets, cross-entropy, mIoU (and foreground Dice for 2 classes)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from ..config import Config
from ..datasets import build_dataset, dataset_info, eval_transform, pad_collate, train_transform
from ..engine.precision import Precision
from ..engine.task import TaskData
from .evaluate import evaluate
from .loss import segmentation_criterion
from .metrics import FOREGROUND_KEYS, SegmentationMetrics

__all__ = ["SegmentationTask"]


def _record(info: Any) -> dict[str, Any]:
    record = asdict(info)
    record["palette"] = info.palette.tolist()
    record["out_channels"] = info.num_classes
    return record


class SegmentationTask:
    name = "seg"
    label = "mIoU"
    score = "miou"
    defaults: dict = {}  # the config defaults are the segmentation run's

    def data(self, cfg: Config) -> TaskData:
        d = cfg.data
        info = dataset_info(d.dataset, num_classes=d.num_classes)
        common = {"num_classes": d.num_classes, "download": d.download, "skip_bad": d.skip_bad}
        train = build_dataset(
            d.dataset, d.root, d.train_split, transform=train_transform(d.crop_size, scale=(d.scale_min, d.scale_max)),
            **common,
        )
        val = build_dataset(d.dataset, d.root, d.val_split, transform=eval_transform(), **common)
        return TaskData(train, val, info.num_classes, _record(info), collate=pad_collate)

    def criterion(self, cfg: Config):
        return segmentation_criterion(cfg.train.loss)

    def evaluate(self, model, loader, *, precision: Precision, data: TaskData) -> dict:
        """mIoU, pixel accuracy and per-class IoU; for two classes also ``fg_iou`` and ``dice``.

        The float values become the ``val_<key>`` columns of ``metrics.csv``, which
        ``ldwseg compare --metric`` ranks by.
        """
        metrics = SegmentationMetrics(data.out_channels).to(precision.device)
        result = evaluate(model, loader, metrics, precision=precision)
        scores = {"miou": float(result["miou"]), "pixel_acc": float(result["pixel_acc"])}
        scores.update({k: float(result[k]) for k in FOREGROUND_KEYS if k in result})
        return {**scores, "per_class_iou": result["per_class_iou"]}
