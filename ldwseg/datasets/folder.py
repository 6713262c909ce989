"""A user's own data: ``images/*`` and ``masks/*.png`` matched by file stem."""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError
from .listing import index_by_stem
from .reading import IMAGE_SUFFIXES

__all__ = ["folder_files"]


def folder_files(root: Path, split: str) -> list[tuple[Path, Path]]:
    """``(images/<stem>.*, masks/<stem>.png)`` pairs.

    Args:
        root: a folder with ``images/`` and ``masks/``, or with ``<split>/images`` and
            ``<split>/masks`` for separate splits.
        split: the sub-folder to read when ``root/<split>/images`` exists; otherwise every split
            reads ``root/images``.

    Masks hold one class index per pixel (0..K-1, 255 = ignore), as palette or gray PNGs.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        found = "is a file, not a folder" if root.exists() else "does not exist"
        raise DataError(f"folder root {root} {found}; point --data-root at the folder holding images/ and masks/")
    base = root / split if (root / split / "images").is_dir() else root
    images, masks = base / "images", base / "masks"
    if not images.is_dir():
        fix = (
            f"the root is one level too low, point --data-root at {root.parent}"
            if root.name in ("images", "masks") and (root.parent / "images").is_dir()
            else "point --data-root at the folder holding images/ and masks/"
        )
        raise DataError(
            f"folder root {root} has no images/ folder: expected {root}/images/* and {root}/masks/*.png "
            f"(or {root}/{split}/images and {root}/{split}/masks); {fix}"
        )
    if not masks.is_dir():
        raise DataError(f"folder root {base} has images/ but no masks/: expected {masks}/<image stem>.png")
    image_files = index_by_stem(images, IMAGE_SUFFIXES)
    if not image_files:
        raise DataError(f"folder {images} has no images: expected files ending in {', '.join(IMAGE_SUFFIXES)}")
    mask_files = index_by_stem(masks, IMAGE_SUFFIXES)
    return [(path, mask_files.get(stem, masks / f"{stem}.png")) for stem, path in image_files.items()]
