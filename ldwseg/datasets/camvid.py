"""CamVid in the SegNet layout: ``train/ trainannot/ val/ valannot/ test/ testannot/``.

Every file name starts with the video sequence it was taken from (``0016E5_07959.png``,
``Seq05VD_f00000.png``). In the SegNet version ``train/`` holds 367 images of three sequences
(0001TP 62, 0006R0 101, 0016E5 204) and ``val/`` 101 images of one of them (0016E5, a block
of frames between two training frames), so scores on ``val`` say little about unseen
sequences. Splits that hold out a whole sequence do:

* ``<split>-without-<SEQ>``: the images of ``<split>`` except those of sequence ``SEQ``
  (``train-without-0006R0``, 266 images);
* ``<split>-only-<SEQ>``: the images of ``<split>`` from sequence ``SEQ`` only
  (``train-only-0006R0``, 101 images),

where ``<split>`` is ``train``, ``val`` or ``test``; train on the first and validate on the second.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from ..errors import DataError
from .listing import index_by_stem
from .reading import IMAGE_SUFFIXES

__all__ = ["CAMVID_SPLITS", "CAMVID_VOID", "camvid_files", "camvid_sequence", "camvid_split_notes"]

CAMVID_SPLITS = ("train", "val", "test")
CAMVID_VOID = 11
"""The raw label of unlabelled pixels in SegNet's CamVid masks; read as the ignore label 255."""

_BY_SEQUENCE = re.compile(r"(?P<split>train|val|test)-(?P<how>without|only)-(?P<sequence>.+)")
_SEQUENCE_SPLITS = "<split>-without-<SEQ> or <split>-only-<SEQ> to hold out a sequence (e.g. train-without-0006R0)"


def camvid_sequence(path: Path) -> str:
    """The video sequence of a CamVid file: its name up to the first ``_`` (``0016E5_07959.png`` -> ``0016E5``)."""
    return path.name.split("_", 1)[0]


def camvid_split_notes() -> dict[str, str]:
    """Split name -> the images it holds (the counts are the SegNet version's)."""
    return {
        "train": "train/ (367 images: 0001TP 62, 0006R0 101, 0016E5 204)",
        "val": "val/ (101 images, all of 0016E5)",
        "test": "test/ (233 images)",
        "<split>-without-<SEQ>": "<split>/ except the images of sequence SEQ (train-without-0006R0: 266)",
        "<split>-only-<SEQ>": "the images of <split>/ from sequence SEQ (train-only-0006R0: 101)",
    }


def _parse_split(split: str) -> tuple[str, tuple[str, str] | None]:
    """The folder split of a split name and, for a sequence split, ``("without" | "only", sequence)``."""
    if split in CAMVID_SPLITS:
        return split, None
    match = _BY_SEQUENCE.fullmatch(split)
    if match is None:
        raise DataError(
            f"CamVid has no split {split!r}: expected one of {', '.join(CAMVID_SPLITS)}, or {_SEQUENCE_SPLITS}"
        )
    return match["split"], (match["how"], match["sequence"])


def _by_sequence(images: dict[str, Path], folder: Path, split: str, how: str, sequence: str) -> dict[str, Path]:
    """The entries of ``images`` kept by ``<split>-<how>-<sequence>``."""
    counts = Counter(camvid_sequence(path) for path in images.values())
    found = ", ".join(f"{name} ({count})" for name, count in sorted(counts.items()))
    if sequence not in counts:
        raise DataError(
            f"CamVid folder {folder} has no images of sequence {sequence!r} (file names start with their sequence); "
            f"sequences there: {found}; name one of them in {split}-{how}-<SEQ>"
        )
    kept = {stem: path for stem, path in images.items() if (camvid_sequence(path) == sequence) == (how == "only")}
    if not kept:
        raise DataError(
            f"CamVid split {split}-{how}-{sequence} is empty: {folder} holds only sequence {sequence}; "
            "hold out a sequence of a split that has several (train/ in the SegNet version)"
        )
    return kept


def camvid_files(root: Path, split: str) -> list[tuple[Path, Path]]:
    """``(<split>/<name>.png, <split>annot/<name>.png)`` pairs, matched by file name.

    Args:
        root: the ``CamVid`` folder (the one that holds ``train/`` and ``trainannot/``).
        split: ``"train"``, ``"val"``, ``"test"``, or one of them with a sequence held out:
            ``"<split>-without-<SEQ>"`` or ``"<split>-only-<SEQ>"`` (see the module docstring).
    """
    root = Path(root).expanduser()
    split, holdout = _parse_split(split)
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
    if holdout is not None:
        image_files = _by_sequence(image_files, images, split, *holdout)
    mask_files = index_by_stem(masks, (".png",))
    return [(path, mask_files.get(stem, masks / f"{stem}.png")) for stem, path in image_files.items()]
