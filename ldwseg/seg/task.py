"""The segmentation task for the training loop: data sets, cross-entropy, mIoU (and foreground Dice for 2 classes)."""

from __future__ import annotations

import logging
import math
import re
from dataclasses import asdict
from typing import Any

from ..config import Config
from ..datasets import build_dataset, dataset_info, eval_transform, normalization, pairs_collate, train_transform
from ..datasets.cache import size_words
from ..engine.precision import Precision
from ..engine.task import TaskData
from .class_weights import resolve_class_weights
from .evaluate import evaluate
from .loss import segmentation_criterion
from .metrics import FOREGROUND_KEYS, SegmentationMetrics

__all__ = ["SegmentationTask", "iou_column"]

log = logging.getLogger(__name__)


def _record(info: Any) -> dict[str, Any]:
    record = asdict(info)
    record["palette"] = info.palette.tolist()
    record["out_channels"] = info.num_classes
    return record


def iou_column(class_name: str) -> str:
    """The key of a class's IoU among the validation scores (``val_<key>`` in ``metrics.csv``).

    >>> iou_column("SignSymbol"), iou_column("potted plant")
    ('iou_signsymbol', 'iou_potted_plant')
    """
    return "iou_" + re.sub(r"[^a-z0-9]+", "_", class_name.lower()).strip("_")


class SegmentationTask:
    name = "seg"
    label = "mIoU"
    score = "miou"
    defaults: dict = {}  # the config defaults are the segmentation run's

    def data(self, cfg: Config) -> TaskData:
        """The train and val sets; the record keeps the classes, the eval scale and the class weights used."""
        d = cfg.data
        channels = cfg.model.in_channels
        classes = {"class_names": d.class_names, "palette": d.palette}
        info = dataset_info(d.dataset, num_classes=d.num_classes, root=d.root, **classes)
        mean, std, top = normalization(channels, d.mean, d.std)
        common = {
            "num_classes": d.num_classes,
            "download": d.download,
            "skip_bad": d.skip_bad,
            "channels": channels,
            "cache": d.cache,
        }
        scale = (d.scale_min, d.scale_max)
        train_tf = train_transform(d.crop_size, scale=scale, mean=mean, std=std, max_value=top)
        train = build_dataset(d.dataset, d.root, d.train_split, transform=train_tf, **common, **classes)
        val_tf = eval_transform(mean=mean, std=std, max_value=top)
        val = build_dataset(d.dataset, d.root, d.val_split, transform=val_tf, **common, **classes)
        if d.cache and train.cached + val.cached:
            log.info(
                "data.cache: %d training and %d validation pairs kept in memory (%s)",
                train.cached, val.cached, size_words(train.cache_bytes + val.cache_bytes),
            )  # fmt: skip
        record = _record(info)
        record.update(eval_scale=d.eval_scale, in_channels=channels, mean=list(mean), std=list(std), max_value=top)
        record["class_weights"] = resolve_class_weights(cfg.train.class_weights, train, info.class_names)
        return TaskData(train, val, info.num_classes, record, collate=pairs_collate)

    def criterion(self, cfg: Config, data: TaskData | None = None):
        """The loss ``train.loss``, weighted by the class weights ``data`` holds (none without ``data``)."""
        weights = None if data is None else data.record.get("class_weights")
        return segmentation_criterion(cfg.train.loss, class_weights=weights)

    def evaluate(self, model, loader, *, precision: Precision, data: TaskData) -> dict:
        """mIoU, pixel and mean accuracy, the IoU of every class (``iou_<name>``, NaN where undefined)
        and ``per_class_iou``; for two classes also ``fg_iou`` and ``dice``.

        The images run at the record's ``eval_scale``. The float values become the
        ``val_<key>`` columns of ``metrics.csv``, which ``ldwseg compare --metric`` ranks by.
        """
        metrics = SegmentationMetrics(data.out_channels).to(precision.device)
        result = evaluate(model, loader, metrics, precision=precision, eval_scale=data.record.get("eval_scale", 1.0))
        scores = {k: float(result[k]) for k in ("miou", "pixel_acc", "mean_acc")}
        scores.update({k: float(result[k]) for k in FOREGROUND_KEYS if k in result})
        names = data.record.get("class_names") or [f"class{k}" for k in range(data.out_channels)]
        per_class = {iou_column(n): math.nan if v is None else float(v) for n, v in zip(names, result["per_class_iou"])}
        return {**scores, **per_class, "per_class_iou": result["per_class_iou"]}
