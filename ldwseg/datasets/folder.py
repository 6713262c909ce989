"""A user's own data: ``images/*`` and ``masks/*.png`` matched by file stem, and its classes.

The classes may be named in a ``classes.txt`` at the data root, one line per label in
label order: ``name`` or ``name R G B`` (its colour, 0-255), ``#`` starting a comment::

    # label 0 first
    background 0 0 0
    membrane 255 255 255

``data.class_names`` and ``data.palette`` in a config say the same and take precedence.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError
from .listing import index_by_stem
from .reading import IMAGE_SUFFIXES

__all__ = ["CLASS_FILE", "folder_files", "read_class_file"]

CLASS_FILE = "classes.txt"


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


def read_class_file(root: str | Path) -> tuple[list[str], list[list[int]] | None] | None:
    """``(names, colours or None)`` from ``root/classes.txt``, or ``None`` when there is no such file.

    Colours must be given on every line or on none.
    """
    path = Path(root).expanduser() / CLASS_FILE
    if not path.is_file():
        return None
    names: list[str] = []
    colours: list[list[int]] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        if len(fields) not in (1, 4) or not all(f.isdigit() and int(f) <= 255 for f in fields[1:]):
            raise DataError(
                f"{path} line {number}: expected 'name' or 'name R G B' with R, G, B in 0..255, got {line.strip()!r}"
            )
        names.append(fields[0])
        if len(fields) == 4:
            colours.append([int(f) for f in fields[1:]])
    if not names or (colours and len(colours) != len(names)):
        raise DataError(f"{path}: expected one line per class, each with a colour or none with one; fix the file")
    if len(set(names)) != len(names):
        raise DataError(f"{path}: class names must differ, got {', '.join(names)}")
    return names, colours or None
