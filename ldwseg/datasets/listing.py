"""Find a data set's files on disk: files by stem and VOC-style id lists."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..errors import DataError

__all__ = ["index_by_stem", "read_id_list"]


def index_by_stem(folder: Path, suffixes: Sequence[str]) -> dict[str, Path]:
    """Map each file stem in ``folder`` to its path, for files with one of ``suffixes``.

    Two files with the same stem (``a.jpg`` and ``a.png``) are ambiguous and raise.
    """
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in suffixes or not path.is_file():
            continue
        if path.stem in found:
            raise DataError(
                f"two files in {folder} share the stem {path.stem!r}: {found[path.stem].name} and {path.name}; "
                "expected one file per sample, remove or rename one of them"
            )
        found[path.stem] = path
    return found


def read_id_list(path: Path, *, hint: str) -> list[str]:
    """Sample ids listed one per line in ``path``.

    Accepts plain ids (``2007_000032``) and the DeepLab form
    (``/JPEGImages/2007_000032.jpg /SegmentationClassAug/2007_000032.png``): the id is the stem
    of the first field. ``hint`` says what to do when the list is missing or empty.
    """
    if not path.is_file():
        siblings = sorted(p.stem for p in path.parent.glob("*.txt")) if path.parent.is_dir() else []
        found = ", ".join(siblings) if siblings else "none"
        raise DataError(f"split list {path} does not exist (lists found there: {found}); {hint}")
    ids = [Path(line.split()[0]).stem for line in path.read_text().splitlines() if line.strip()]
    if not ids:
        raise DataError(f"split list {path} is empty: expected one sample id per line; {hint}")
    return ids
