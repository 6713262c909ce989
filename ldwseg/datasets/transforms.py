"""Paired image/mask transforms (albumentations), padding collate and de-normalisation.

Masks are resized with nearest neighbour only and padded with the ignore label 255, so an
ignored pixel never becomes a class and padding never counts in the loss or the metrics.
"""

from __future__ import annotations

from collections.abc import Sequence

import albumentations as A
import cv2
import numpy as np
import torch
from albumentations.pytorch import ToTensorV2
from torch import Tensor

from ..errors import DataError
from .palette import IGNORE_INDEX

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "SegTransform",
    "normalization",
    "denormalize",
    "eval_transform",
    "pad_collate",
    "pairs_collate",
    "stack_by_size",
    "train_transform",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalization(
    channels: int, mean: Sequence[float] | None = None, std: Sequence[float] | None = None
) -> tuple[tuple[float, ...], tuple[float, ...], float]:
    """``(mean, std, max_value)`` of images with ``channels`` channels: ``(image / max_value - mean) / std``.

    RGB images are read as ``uint8`` (``max_value`` 255) and default to ImageNet's mean and
    std; other channel counts are read as floats in ``[0, 1]`` (``max_value`` 1,
    :func:`~ldwseg.datasets.reading.read_channels`) and default to 0.5 and 0.25 per channel.

    >>> normalization(1)
    ((0.5,), (0.25,), 1.0)
    """
    default_mean, default_std = (
        (IMAGENET_MEAN, IMAGENET_STD) if channels == 3 else ((0.5,) * channels, (0.25,) * channels)
    )
    mean = tuple(float(m) for m in (default_mean if mean is None else mean))
    std = tuple(float(s) for s in (default_std if std is None else std))
    if len(mean) != channels or len(std) != channels or min(std) <= 0:
        raise DataError(
            f"expected {channels} means and {channels} positive stds (one per image channel, model.in_channels), got "
            f"mean={mean}, std={std}; set data.mean and data.std"
        )
    return mean, std, 255.0 if channels == 3 else 1.0


class SegTransform:
    """Runs an albumentations pipeline on an ``(image, mask)`` pair and returns tensors.

    Input: an ``(H, W, C)`` image (RGB ``uint8``, or float32 for other channel counts) and
    integer ``(H, W)`` labels (0..254, 255 = ignore).
    Output: float32 ``(C, H', W')`` and int64 ``(H', W')``.

    The random draws are seeded from torch's generator (``seed=None``), so ``torch.manual_seed``
    makes them reproducible, and again in each ``DataLoader`` worker from the worker's seed:
    albumentations keeps its own generator, which forked workers would otherwise all copy.
    """

    def __init__(self, transforms: Sequence[A.BasicTransform], *, seed: int | None = None) -> None:
        if seed is None:
            seed = int(torch.randint(0, 2**31 - 1, ()).item())
        self.pipeline = A.Compose([*transforms, ToTensorV2()], seed=seed)
        self._worker_seed: int | None = None

    def _reseed_in_worker(self) -> None:
        worker = torch.utils.data.get_worker_info()
        if worker is not None and worker.seed != self._worker_seed:
            self._worker_seed = worker.seed
            self.pipeline.set_random_seed(worker.seed % 2**32)

    def reseed(self, seed: int) -> None:
        """Seed the draws of the following calls (per sample; see :class:`ldwseg.engine.sampling.SeededSamples`)."""
        worker = torch.utils.data.get_worker_info()
        self._worker_seed = None if worker is None else worker.seed
        self.pipeline.set_random_seed(seed % 2**32)

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> tuple[Tensor, Tensor]:
        self._reseed_in_worker()
        mask = np.asarray(mask)
        if mask.size and (mask.min() < 0 or mask.max() > IGNORE_INDEX):
            raise DataError(
                f"expected mask labels in [0, {IGNORE_INDEX}], got values in [{mask.min()}, {mask.max()}]; "
                "read masks with a SegmentationDataset"
            )
        # OpenCV resizes and pads uint8 but not int64 masks; labels fit in uint8 (checked above).
        out = self.pipeline(image=np.ascontiguousarray(image), mask=mask.astype(np.uint8))
        return out["image"].float(), out["mask"].long()

    def __repr__(self) -> str:
        names = ", ".join(type(t).__name__ for t in self.pipeline.transforms)
        return f"SegTransform([{names}])"


def _normalize(mean: Sequence[float], std: Sequence[float], max_value: float) -> A.Normalize:
    if len(mean) != len(std) or not mean or min(std) <= 0:
        raise DataError(f"expected one mean and one positive std per channel, got mean={tuple(mean)}, std={tuple(std)}")
    return A.Normalize(mean=tuple(mean), std=tuple(std), max_pixel_value=max_value)


def train_transform(
    crop_size: int,
    *,
    scale: tuple[float, float] = (0.5, 2.0),
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    max_value: float = 255.0,
) -> SegTransform:
    """Random scale in ``scale``, pad to ``crop_size`` (image 0, mask 255), random crop, horizontal flip, normalise
    (``(image / max_value - mean) / std``, see :func:`normalization`).

    Example:
        >>> image, mask = train_transform(64)(np.zeros((50, 70, 3), np.uint8), np.zeros((50, 70), np.int64))
        >>> tuple(image.shape), tuple(mask.shape), image.dtype, mask.dtype
        ((3, 64, 64), (64, 64), torch.float32, torch.int64)
    """
    if crop_size < 1:
        raise DataError(f"expected a crop size >= 1 pixel, got {crop_size}")
    low, high = scale
    if not 0 < low <= high:
        raise DataError(f"expected a scale range 0 < low <= high, got {scale}; e.g. (0.5, 2.0)")
    return SegTransform(
        [
            # RandomScale draws the factor from 1 + scale_limit.
            A.RandomScale(
                scale_limit=(low - 1.0, high - 1.0),
                interpolation=cv2.INTER_LINEAR,
                mask_interpolation=cv2.INTER_NEAREST,
                p=1.0,
            ),
            A.PadIfNeeded(
                min_height=crop_size,
                min_width=crop_size,
                border_mode=cv2.BORDER_CONSTANT,
                fill=0,
                fill_mask=IGNORE_INDEX,
            ),
            A.RandomCrop(height=crop_size, width=crop_size),
            A.HorizontalFlip(p=0.5),
            _normalize(mean, std, max_value),
        ]
    )


def eval_transform(
    *, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD, max_value: float = 255.0
) -> SegTransform:
    """Normalise only: the image keeps its original resolution, the mask its labels."""
    return SegTransform([_normalize(mean, std, max_value)])


def pad_collate(batch: Sequence[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
    """Stack pairs of different sizes: pad at the bottom and right to the largest ``H`` and ``W``.

    Images are padded with 0 and masks with 255, so padding is ignored by the loss and metrics.

    Shape:
        - Input: pairs ``(C, H_i, W_i)`` and ``(H_i, W_i)``.
        - Output: ``(N, C, max H_i, max W_i)`` and ``(N, max H_i, max W_i)`` (int64).
    """
    if not batch:
        raise DataError("pad_collate got an empty batch; expected at least one (image, mask) pair")
    channels = {image.shape[0] for image, _ in batch}
    for image, mask in batch:
        if image.dim() != 3 or mask.dim() != 2 or image.shape[1:] != mask.shape or len(channels) != 1:
            raise DataError(
                f"pad_collate expects (C, H, W) images with (H, W) masks and one C, got {tuple(image.shape)} and "
                f"{tuple(mask.shape)} (channels {sorted(channels)}); apply a SegTransform first"
            )
    height = max(image.shape[1] for image, _ in batch)
    width = max(image.shape[2] for image, _ in batch)
    first_image, first_mask = batch[0]
    images = first_image.new_zeros((len(batch), channels.pop(), height, width))
    masks = torch.full((len(batch), height, width), IGNORE_INDEX, dtype=torch.int64, device=first_mask.device)
    for k, (image, mask) in enumerate(batch):
        images[k, :, : image.shape[1], : image.shape[2]] = image
        masks[k, : mask.shape[0], : mask.shape[1]] = mask
    return images, masks


def pairs_collate(batch: Sequence[tuple[Tensor, Tensor]]) -> list[tuple[Tensor, Tensor]]:
    """The batch as the list of its ``(image, mask)`` pairs, unpadded: evaluation batches them by size
    (:func:`stack_by_size`), so no image is run with another's padding."""
    return list(batch)


def stack_by_size(pairs: Sequence[tuple[Tensor, Tensor]]) -> list[tuple[Tensor, Tensor]]:
    """``(images, masks)`` batches of the pairs that share a size, in the order the sizes first occur.

    Padding images of different sizes to one batch (:func:`pad_collate`) changes what a
    network with a periodic border (the LDW pools) computes near the padding, so a score
    would depend on the batch size; stacking only equal sizes keeps every image as it is.

    Shape:
        - Input: pairs ``(C, H_i, W_i)`` and ``(H'_i, W'_i)`` (a mask may differ in size from its image).
        - Output: ``(n, C, H, W)`` and ``(n, H', W')`` per distinct ``(H, W, H', W')``.
    """
    groups: dict[tuple[int, ...], list[tuple[Tensor, Tensor]]] = {}
    for image, mask in pairs:
        groups.setdefault((*image.shape, *mask.shape), []).append((image, mask))
    return [(torch.stack([i for i, _ in g]), torch.stack([m for _, m in g])) for g in groups.values()]


def denormalize(
    image: Tensor, *, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
) -> np.ndarray:
    """Undo normalisation: a float ``(3, H, W)`` tensor back to RGB ``uint8`` ``(H, W, 3)``, for overlays."""
    if image.dim() != 3 or image.shape[0] != 3:
        raise DataError(f"expected a normalised (3, H, W) image, got shape {tuple(image.shape)}; index the batch first")
    m = torch.as_tensor(mean, dtype=image.dtype, device=image.device)[:, None, None]
    s = torch.as_tensor(std, dtype=image.dtype, device=image.device)[:, None, None]
    pixels = ((image.detach() * s + m) * 255.0).round().clamp(0, 255)
    return pixels.to(torch.uint8).permute(1, 2, 0).cpu().numpy()
