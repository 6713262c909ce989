"""Evaluate a segmentation model: mIoU, per-class IoU, pixel and mean accuracy, foreground Dice.

The network runs on each image resized by the run's ``data.eval_scale`` and its logits are
resized back to the label's size (:func:`~ldwseg.inference.scale.scaled_logits`), so the
scores are counted on the original labels. Images are batched only with images of their
own size (:func:`~ldwseg.datasets.stack_by_size`): no image is run beside another's
padding, and the scores do not depend on the batch size.

Two evaluation modes, as mmsegmentation has them: test-time augmentation (``tta``: flips
and scales, the class probabilities averaged, :mod:`ldwseg.inference.tta`) and tiling
(``tile``: each image run in overlapping windows, exactly as ``ldwseg predict`` runs a large
image, :mod:`ldwseg.inference.tiling`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from ..datasets import build_dataset, eval_transform, normalization, pairs_collate, stack_by_size
from ..engine.checkpoints import load_run_model
from ..engine.distributed import inference_amp, resolve_device
from ..engine.precision import Precision
from ..errors import CheckpointError
from ..inference.tiling import DEFAULT_MARGIN, apply_tiled, check_tiling
from ..inference.tta import TTA, class_scores, labels
from ..models.build import input_multiple
from .metrics import FOREGROUND_KEYS, SegmentationMetrics

__all__ = ["evaluate", "evaluate_checkpoint", "json_report"]


def evaluate_checkpoint(
    checkpoint: str | Path,
    *,
    dataset: str | None = None,
    root: str | Path | None = None,
    split: str | None = None,
    device: str = "auto",
    batch_size: int | None = None,
    num_workers: int = 0,
    skip_bad: bool = False,
    eval_scale: float | None = None,
    amp: str | None = None,
    tta: TTA = TTA(),
    tile: int = 0,
    progress=None,
) -> dict[str, Any]:
    """Metrics of ``checkpoint`` on a split; data set, root and split default to the training run's.

    ``batch_size`` ``None`` takes the run's ``train.val_batch_size``, so the network computes
    exactly what validation computed. Images of one size only share a batch, so other batch
    sizes give the same scores up to float rounding: the CPU's convolution kernels may differ
    with the batch size and flip a pixel whose two best classes tie to 1e-7 (an untrained
    network has many).

    ``eval_scale`` resizes each image before the network (see the module docstring);
    ``None`` takes the run's own ``data.eval_scale``, so the result reproduces the
    validation score that training logged for this checkpoint. ``amp`` (``off``, ``bf16``,
    ``fp16``) is the network's autocast; ``None`` takes the run's ``train.amp``, as
    validation and ``predict`` do (:func:`~ldwseg.engine.distributed.inference_amp`).

    ``tta`` averages the class probabilities over flips and scales; ``tile > 0`` runs each
    image in windows of at most ``tile x tile`` pixels, as ``predict`` does (see the module
    docstring).

    Returns mIoU, per-class IoU, accuracy and precision (lists in class order, ``None``
    where undefined), pixel and mean accuracy, the confusion matrix ``C[target, pred]``,
    ``class_names`` and, for two classes, ``fg_iou`` and ``dice`` (see :mod:`ldwseg.seg.metrics`).

    ``skip_bad`` leaves out the samples that cannot be used (listed in the log, counted in
    ``"skipped"``) instead of failing on them. Images of any size are scored whole: an smp
    arch that needs it pads each one to its encoder's output stride and crops its logits
    back (:class:`~ldwseg.models.smp.SMPSegmenter`).
    """
    dev = resolve_device(device)
    model, meta, cfg = load_run_model(checkpoint, dev, task="seg")
    classes = int(meta["dataset"]["num_classes"])
    name = dataset or cfg.data.dataset
    if root is None and name == cfg.data.dataset:
        root = cfg.data.root
    split = split or cfg.data.val_split
    record = meta["dataset"]
    channels = cfg.model.in_channels
    mean, std, top = normalization(channels, record.get("mean", cfg.data.mean), record.get("std", cfg.data.std))
    data = build_dataset(
        name, root, split, transform=eval_transform(mean=mean, std=std, max_value=top),
        num_classes=classes if name == "folder" else None, skip_bad=skip_bad, channels=channels,
    )  # fmt: skip
    if data.info.num_classes != classes:
        raise CheckpointError(
            f"{checkpoint} predicts {classes} classes but data set {name!r} has {data.info.num_classes}; "
            "evaluate it on a data set with the same classes"
        )
    scale = cfg.data.eval_scale if eval_scale is None else eval_scale
    if not 0 < scale <= 4:
        raise CheckpointError(f"--eval-scale must be in (0, 4], got {scale}; 1 runs the images as they are read")
    if tile:
        check_tiling(tile, DEFAULT_MARGIN, input_multiple(model))
    batch_size = batch_size or cfg.train.val_batch_size
    loader = DataLoader(
        data, batch_size=batch_size, shuffle=False, collate_fn=pairs_collate, num_workers=num_workers,
        pin_memory=dev.type == "cuda",
    )  # fmt: skip
    amp = inference_amp(dev, cfg.train.amp, amp)
    metrics = SegmentationMetrics(classes).to(dev)
    result = evaluate(
        model, loader, metrics, precision=Precision(dev, amp), eval_scale=scale, tta=tta, tile=tile, progress=progress
    )
    return {
        "checkpoint": str(checkpoint),
        "dataset": name,
        "split": split,
        "eval_scale": scale,
        "tta": str(tta),
        "tile": tile,
        "amp": amp,
        "batch_size": batch_size,
        "images": len(data),
        "skipped": len(data.skipped),
        **result,
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

    ``per_class_iou``, ``per_class_acc`` and ``per_class_precision`` map each class name to
    its score, in class order (``class_names`` lists that order too); ``confusion`` is the
    matrix ``C[target][pred]`` in pixels. Any score that is not a finite number, such as the
    IoU of a class absent from targets and predictions, is ``None`` (JSON ``null``), so the
    object passes ``json.dumps(..., allow_nan=False)``.
    """
    names = result["class_names"]
    per_class = {
        key: {n: _finite(v) for n, v in zip(names, result[key], strict=True)}
        for key in ("per_class_iou", "per_class_acc", "per_class_precision")
        if key in result
    }
    report = {
        "miou": _finite(result["miou"]),
        "pixel_acc": _finite(result["pixel_acc"]),
        **{k: _finite(result[k]) for k in ("mean_acc", *FOREGROUND_KEYS) if k in result},
        **per_class,
    }
    shown = ("confusion", "class_names", "dataset", "split", "eval_scale", "tta", "tile", "amp", "batch_size", "images",
             "skipped")  # fmt: skip
    return {**report, **{k: result[k] for k in shown if k in result}}


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Iterable[Sequence[tuple[Tensor, Tensor]] | tuple[Tensor, Tensor]],
    metrics: SegmentationMetrics,
    *,
    precision: Precision,
    eval_scale: float = 1.0,
    tta: TTA = TTA(),
    tile: int = 0,
    progress: Callable[[Iterable], Iterable] | None = None,
) -> dict:
    """The scores of :meth:`SegmentationMetrics.compute` over ``loader``, counted at the labels' size.

    ``loader`` yields lists of ``(image, mask)`` pairs (:func:`~ldwseg.datasets.pairs_collate`),
    run in batches of equal size, or ``(images, masks)`` tensors, run as one batch. Each
    batch runs at ``eval_scale``, with ``tta``, in windows of ``tile`` pixels when ``tile > 0``
    (see the module docstring; images and masks must then have the same size).
    """
    model.eval()
    metrics.reset()
    for batch in progress(loader) if progress is not None else loader:
        for images, masks in [batch] if isinstance(batch[0], Tensor) else stack_by_size(batch):
            images, masks = precision.inputs(images), masks.to(precision.device)
            with precision.autocast():
                if tile:
                    predicted = apply_tiled(
                        lambda window: labels(class_scores(model, window, scale=eval_scale, tta=tta)), images,
                        tile=tile, margin=DEFAULT_MARGIN, multiple=input_multiple(model), model=model,
                    )[:, 0].long()  # fmt: skip
                else:
                    predicted = class_scores(model, images, scale=eval_scale, size=masks.shape[-2:], tta=tta).float()
            metrics.update(predicted, masks)
    return metrics.compute()
