"""DRIVE retina vessels (Staal et al. 2004): ``training/`` and ``test/``, each with ``images/ 1st_manual/ mask/``.

Labels: 0 background, 1 vessel (the first observer's ``1st_manual`` masks, which store vessels
as 255), and 255 = ignore outside the field of view (FOV, the ``mask/`` files, 0 outside), so
losses and metrics such as Dice count the pixels inside the FOV only. A few vessel pixels of
the manual masks lie outside the FOV (0 to 77 per training image); they are ignored too.

Splits, by DRIVE's image numbers (its 20 training images are numbered 21-40, its 20 test
images 01-20):

* ``train``: training images 21-36 (16 images);
* ``val``: training images 37-40 (4 images);
* ``all``: training images 21-40 (20 images), to train on all of them;
* ``test``: test images 01-20 (20 images), in the copies whose ``test/`` has ``1st_manual/``.

Files: ``training/images/21_training.tif`` (RGB, 565x584), ``training/1st_manual/21_manual1.gif``
and ``training/mask/21_training_mask.gif``; ``test/`` names them ``01_test.tif``,
``01_manual1.gif`` and ``01_test_mask.gif``.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError

__all__ = ["DRIVE_SPLITS", "DRIVE_VESSEL", "drive_files", "drive_fov", "drive_split_notes"]

DRIVE_SPLITS: dict[str, tuple[str, range]] = {
    "train": ("training", range(21, 37)),
    "val": ("training", range(37, 41)),
    "all": ("training", range(21, 41)),
    "test": ("test", range(1, 21)),
}
"""Split name -> (DRIVE folder, image numbers)."""

DRIVE_VESSEL = 255
"""The raw value of vessel pixels in DRIVE's manual masks; read as label 1."""

_FOLDERS = ("images", "1st_manual", "mask")
_SPLIT_FOLDERS = ("training", "test")
_HINT = "point --data-root at the DRIVE folder (the one holding training/)"


def drive_split_notes() -> dict[str, str]:
    """Split name -> the images it holds, e.g. ``{"val": "training images 37-40 (4)", ...}``."""
    return {
        name: f"{folder} images {numbers[0]:02d}-{numbers[-1]:02d} ({len(numbers)})"
        for name, (folder, numbers) in DRIVE_SPLITS.items()
    }


def drive_fov(manual: Path) -> Path:
    """The field-of-view mask of ``<folder>/1st_manual/NN_manual1.gif``: ``<folder>/mask/NN_<folder>_mask.gif``.

    For example ``training/1st_manual/21_manual1.gif`` -> ``training/mask/21_training_mask.gif``.
    """
    folder = manual.parent.parent
    number = manual.name.split("_", 1)[0]
    return folder / "mask" / f"{number}_{folder.name}_mask.gif"


def _wrong_root(root: Path, folder: str) -> str:
    """Why ``root`` has no ``folder/`` and which root to use instead."""
    if root.name in _SPLIT_FOLDERS and (root / "images").is_dir():
        return f"the root is one level too low, point --data-root at {root.parent}"
    if root.name in _FOLDERS and (root.parent.parent / folder).is_dir():
        return f"the root is two levels too low, point --data-root at {root.parent.parent}"
    if (root / "DRIVE" / folder).is_dir():
        return f"the root is one level too high, point --data-root at {root / 'DRIVE'}"
    if folder == "test" and (root / "training").is_dir():
        return "this copy of DRIVE has training/ only; use split train, val or all"
    return _HINT


def drive_files(root: Path, split: str) -> list[tuple[Path, Path]]:
    """``(images/NN_<folder>.tif, 1st_manual/NN_manual1.gif)`` pairs of ``split``, by image number.

    The field of view of each pair is :func:`drive_fov` of its mask.

    Args:
        root: the ``DRIVE`` folder (the one that holds ``training/``).
        split: ``"train"`` (training images 21-36), ``"val"`` (37-40), ``"all"`` (21-40) or
            ``"test"`` (test images 01-20).
    """
    root = Path(root).expanduser()
    if split not in DRIVE_SPLITS:
        notes = "; ".join(f"{name} = {note}" for name, note in drive_split_notes().items())
        raise DataError(f"DRIVE has no split {split!r}: expected one of {', '.join(DRIVE_SPLITS)} ({notes})")
    if not root.is_dir():
        found = "is a file, not a folder" if root.exists() else "does not exist"
        raise DataError(f"DRIVE root {root} {found}; {_HINT}")
    folder, numbers = DRIVE_SPLITS[split]
    base = root / folder
    if not base.is_dir():
        raise DataError(
            f"DRIVE root {root} has no {folder}/ folder: expected {base}/images/*.tif, {base}/1st_manual/*.gif "
            f"and {base}/mask/*.gif; {_wrong_root(root, folder)}"
        )
    for sub in _FOLDERS:
        if not (base / sub).is_dir():
            found = ", ".join(s for s in _FOLDERS if (base / s).is_dir()) or "none"
            raise DataError(
                f"DRIVE folder {base} has no {sub}/ folder (found: {found}): expected images/, 1st_manual/ (vessels) "
                "and mask/ (field of view); restore it from the DRIVE archive"
            )
    return [(base / "images" / f"{n:02d}_{folder}.tif", base / "1st_manual" / f"{n:02d}_manual1.gif") for n in numbers]
