"""CamVid in the SegNet layout: ``train/ trainannot/ val/ valannot/ test/ testannot/``."""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError
from .listing import index_by_stem
from .reading import IMAGE_SUFFIXES

__all__ = ["CAMVID_SPLITS", "CAMVID_VOID", "camvid_files"]

CAMVID_SPLITS = ("train", "val", "test")
CAMVID_VOID = 11
"""The raw label of unlabelled pixels in SegNet's CamVid masks; read as the ignore label 255."""


def camvid_files(root: Path, split: str) -> list[tuple[Path, Path]]:
    """``(<split>/<name>.png, <split>annot/<name>.png)`` pairs, matched by file name.

    Args:
        root: the ``CamVid`` folder (the one that holds ``train/`` and ``trainannot/``).
        split: ``"train"``, ``"val"`` or ``"test"``.
    """
    root = Path(root).expanduser()
    if split not in CAMVID_SPLITS:
        raise DataError(f"CamVid has no split {split!r}: expected one of {', '.join(CAMVID_SPLITS)}")
    if not root.is_dir():
        found = "is a file, not a folder" if root.exists() else "does not exist"
        raise DataError(f"CamVid root {root} {found}; point --data-root at the CamVid folder (SegNet layout)")
    images, masks = root / split, root / f"{split}annot"
    if not images.is_dir():
        folders = {f"{s}{a}" for s in CAMVID_SPLITS for a in ("", "annot")}
        if (root / "CamVid" / split).is_dir():
            fix = f"the root is one level too high, point --data-root at {root / 'CamVid'}"
        elif root.name in folders:
            fix = f"the root is one level too low, point --data-root at {root.parent}"
        else:
            found = [s for s in CAMVID_SPLITS if (root / s).is_dir()]
            fix = f"splits found there: {', '.join(found) or 'none'}; point --data-root at the CamVid folder"
        raise DataError(f"CamVid root {root} has no {split}/ folder: expected {images}/*.png and {masks}/*.png; {fix}")
    if not masks.is_dir():
        raise DataError(
            f"CamVid root {root} has {split}/ but no {split}annot/: expected the label PNGs in {masks}; restore them"
        )
    image_files = index_by_stem(images, IMAGE_SUFFIXES)
    if not image_files:
        raise DataError(f"CamVid folder {images} has no images: expected {images}/*.png; restore them")
    mask_files = index_by_stem(masks, (".png",))
    return [(path, mask_files.get(stem, masks / f"{stem}.png")) for stem, path in image_files.items()]
