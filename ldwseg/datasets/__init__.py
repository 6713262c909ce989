"""Segmentation data: data sets by name, transforms, colour maps and the synthetic set.

Items are ``(image, mask)`` pairs: RGB ``uint8`` ``(H, W, 3)`` and ``int64`` ``(H, W)`` arrays,
or after a transform float32 ``(3, H, W)`` and int64 ``(H, W)`` tensors; 255 marks ignored pixels.
"""

from .base import BadFile, PairTransform, SegmentationDataset, validate
from .info import DatasetInfo
from .palette import IGNORE_COLOR, IGNORE_INDEX, colorize, overlay, voc_palette
from .reading import SampleError, read_channels, read_image, read_mask
from .registry import DATASETS, build_dataset, dataset_info, default_data_dir
from .synthetic import generate_synthetic, render_scene
from .transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    SegTransform,
    denormalize,
    eval_transform,
    normalization,
    pad_collate,
    pairs_collate,
    stack_by_size,
    train_transform,
)

__all__ = [
    "DATASETS",
    "IGNORE_COLOR",
    "IGNORE_INDEX",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "BadFile",
    "DatasetInfo",
    "PairTransform",
    "SampleError",
    "SegTransform",
    "SegmentationDataset",
    "build_dataset",
    "colorize",
    "dataset_info",
    "default_data_dir",
    "denormalize",
    "eval_transform",
    "generate_synthetic",
    "normalization",
    "overlay",
    "pad_collate",
    "pairs_collate",
    "read_channels",
    "read_image",
    "read_mask",
    "render_scene",
    "stack_by_size",
    "train_transform",
    "validate",
    "voc_palette",
]
