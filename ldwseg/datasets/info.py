"""What a data set's labels mean: class names, colours and the ignore label."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import DataError
from .camvid import camvid_split_notes
from .drive import drive_split_notes
from .palette import IGNORE_INDEX, voc_palette

__all__ = [
    "CAMVID_CLASSES",
    "CAMVID_PALETTE",
    "DRIVE_CLASSES",
    "DRIVE_PALETTE",
    "SYNTHETIC_CLASSES",
    "VOC_CLASSES",
    "DatasetInfo",
    "camvid_info",
    "drive_info",
    "folder_info",
    "synthetic_info",
    "voc_info",
]

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip

# SegNet's CamVid class order; label 11 (void) becomes the ignore label.
CAMVID_CLASSES = (
    "Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car", "Pedestrian", "Bicyclist",
)  # fmt: skip

# The colours of the SegNet tutorial's CamVid visualisation, in class order.
CAMVID_PALETTE = np.array(
    [
        (128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222), (128, 128, 0),
        (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192),
    ],
    dtype=np.uint8,
)  # fmt: skip

# DRIVE retina vessels: label 1 where the first observer drew a vessel.
DRIVE_CLASSES = ("background", "vessel")
DRIVE_PALETTE = np.array([(0, 0, 0), (255, 255, 255)], dtype=np.uint8)

# The generated data set of :mod:`ldwseg.datasets.synthetic`; label i is drawn as shape i.
SYNTHETIC_CLASSES = ("background", "disk", "rectangle", "triangle", "ring", "curve")


@dataclass(frozen=True, eq=False)
class DatasetInfo:
    """Label metadata of a data set.

    Attributes:
        name: registry name (``"voc12"``, ``"camvid"``, ...).
        num_classes: ``K``; labels are ``0..K-1``.
        class_names: ``K`` names, in label order.
        palette: ``(K, 3)`` ``uint8`` colours, in label order.
        ignore_index: the label of pixels that no loss or metric counts (255).
        splits: split name -> which samples it holds, for the data sets whose splits are fixed
            by the loader (``drive``, ``camvid``); empty where the splits are the user's lists.
    """

    name: str
    num_classes: int
    class_names: list[str]
    palette: np.ndarray
    ignore_index: int = field(default=IGNORE_INDEX)
    splits: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 1 <= self.num_classes < IGNORE_INDEX:
            raise DataError(
                f"{self.name}: expected 1 <= num_classes < {IGNORE_INDEX} (label {IGNORE_INDEX} means ignore), "
                f"got {self.num_classes}; pass a smaller --set data.num_classes=K"
            )
        if len(self.class_names) != self.num_classes:
            raise DataError(
                f"{self.name}: {len(self.class_names)} class names for {self.num_classes} classes; give one per class"
            )
        if self.palette.shape != (self.num_classes, 3) or self.palette.dtype != np.uint8:
            raise DataError(
                f"{self.name}: expected a uint8 palette of shape ({self.num_classes}, 3), "
                f"got {self.palette.dtype} {self.palette.shape}"
            )


def voc_info(name: str = "voc12") -> DatasetInfo:
    """PASCAL VOC 2012: background and 20 object classes, VOC colours."""
    return DatasetInfo(name, len(VOC_CLASSES), list(VOC_CLASSES), voc_palette(len(VOC_CLASSES)))


def camvid_info() -> DatasetInfo:
    """CamVid (SegNet version): 11 road-scene classes; void is ignored; splits by folder or by sequence."""
    return DatasetInfo(
        "camvid", len(CAMVID_CLASSES), list(CAMVID_CLASSES), CAMVID_PALETTE.copy(), splits=camvid_split_notes()
    )


def drive_info() -> DatasetInfo:
    """DRIVE: background and vessel, black and white; outside the field of view is ignored."""
    return DatasetInfo(
        "drive", len(DRIVE_CLASSES), list(DRIVE_CLASSES), DRIVE_PALETTE.copy(), splits=drive_split_notes()
    )


def synthetic_info() -> DatasetInfo:
    """The generated shapes data set: background, 4 filled shapes and thin curves, VOC colours."""
    names = list(SYNTHETIC_CLASSES)
    return DatasetInfo("synthetic", len(names), names, voc_palette(len(names)))


def folder_info(
    num_classes: int | None,
    *,
    class_names: Sequence[str] | None = None,
    palette: Sequence[Sequence[int]] | None = None,
) -> DatasetInfo:
    """A user's folder of images and index masks: its own class names and colours, else ``class<k>`` in VOC colours.

    ``num_classes`` may be left out when ``class_names`` gives them; when both are given they
    must agree. ``palette`` gives one RGB triple (0-255) per class.
    """
    if num_classes is None and class_names is None:
        raise DataError(
            "the folder data set needs the number of classes, got none; pass num_classes=K "
            "(--set data.num_classes=K), where the masks hold labels 0..K-1 and 255 = ignore, or name the classes "
            "(data.class_names, or a classes.txt at the data root)"
        )
    if num_classes is not None and class_names is not None and len(class_names) != num_classes:
        raise DataError(
            f"folder: {len(class_names)} class names ({', '.join(class_names)}) for data.num_classes={num_classes}; "
            "give one name per class"
        )
    k = num_classes if num_classes is not None else len(class_names or ())
    names = list(class_names) if class_names is not None else [f"class{i}" for i in range(max(k, 0))]
    if palette is None:
        colours = voc_palette()[: len(names)]
    else:
        colours = np.asarray(palette)
        if colours.shape != (len(names), 3) or colours.min(initial=0) < 0 or colours.max(initial=0) > 255:
            raise DataError(
                f"folder: data.palette must give one RGB triple in 0..255 per class ({len(names)}), got "
                f"{np.asarray(palette).tolist()}"
            )
        colours = colours.astype(np.uint8)
    return DatasetInfo("folder", k, names, colours)
