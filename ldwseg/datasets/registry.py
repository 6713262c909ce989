"""Data sets by name: ``build_dataset("voc12", root, "train")`` and ``dataset_info("camvid")``."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataError
from .base import PairTransform, SegmentationDataset
from .camvid import CAMVID_VOID, camvid_files
from .drive import DRIVE_VESSEL, drive_files, drive_fov
from .folder import folder_files, read_class_file
from .info import DatasetInfo, camvid_info, drive_info, folder_info, synthetic_info, voc_info
from .palette import IGNORE_INDEX
from .synthetic import synthetic_root
from .voc import voc12_files

__all__ = ["DATASETS", "build_dataset", "dataset_info", "default_data_dir"]

DATA_ENV = "LDWSEG_DATA"
"""Environment variable naming the data folder (default: ``data/`` in the repository)."""

Files = Callable[[Path, str, bool], list[tuple[Path, Path]]]  # (root, split, download) -> pairs


@dataclass(frozen=True)
class _Entry:
    files: Files
    info: Callable[[int | None], DatasetInfo]
    label_map: Mapping[int, int] = field(default_factory=dict)
    region: Callable[[Path], Path] | None = None  # mask path -> its valid region (see SegmentationDataset)
    downloads: bool = False


def _fixed(make: Callable[[], DatasetInfo]) -> Callable[[int | None], DatasetInfo]:
    """Info of a data set whose classes are fixed: a different ``num_classes`` is an error."""

    def info(num_classes: int | None) -> DatasetInfo:
        fixed = make()
        if num_classes is not None and num_classes != fixed.num_classes:
            raise DataError(
                f"{fixed.name} has {fixed.num_classes} classes, got num_classes={num_classes}; "
                f"drop the option or set it to {fixed.num_classes}"
            )
        return fixed

    return info


def _no_download(files: Callable[[Path, str], list[tuple[Path, Path]]]) -> Files:
    return lambda root, split, download: files(root, split)


_ENTRIES: dict[str, _Entry] = {
    "voc12": _Entry(lambda r, s, d: voc12_files(r, s, download=d), _fixed(voc_info), downloads=True),
    "voc12-aug": _Entry(
        lambda r, s, d: voc12_files(r, s, aug=True, download=d), _fixed(lambda: voc_info("voc12-aug")), downloads=True
    ),
    "camvid": _Entry(_no_download(camvid_files), _fixed(camvid_info), {CAMVID_VOID: IGNORE_INDEX}),
    "drive": _Entry(_no_download(drive_files), _fixed(drive_info), {DRIVE_VESSEL: 1}, region=drive_fov),
    "folder": _Entry(_no_download(folder_files), folder_info),
    # Generated on demand, so "download" has nothing to fetch: the set is written when missing.
    "synthetic": _Entry(lambda r, s, d: voc12_files(synthetic_root(r), s), _fixed(synthetic_info), downloads=True),
}

DATASETS: tuple[str, ...] = tuple(_ENTRIES)
"""The names that :func:`build_dataset` and :func:`dataset_info` accept."""


def _entry(name: str) -> _Entry:
    if name not in _ENTRIES:
        raise DataError(f"unknown data set {name!r}; expected one of: {', '.join(DATASETS)}")
    return _ENTRIES[name]


def default_data_dir() -> Path:
    """``$LDWSEG_DATA`` when set, else ``data/`` under the working directory.

    Never a path inside the installed package: after a ``pip install`` that would be
    ``site-packages``, which is neither the user's nor writable in general.
    """
    env = os.environ.get(DATA_ENV)
    return Path(env).expanduser() if env else Path.cwd() / "data"


def dataset_info(
    name: str,
    num_classes: int | None = None,
    *,
    root: str | Path | None = None,
    class_names: Sequence[str] | None = None,
    palette: Sequence[Sequence[int]] | None = None,
) -> DatasetInfo:
    """Class names, colours and ignore label of data set ``name``.

    ``num_classes`` must match the fixed count of the data sets that have one. A ``folder``
    data set takes its classes from ``class_names`` and ``palette``, else from a
    ``classes.txt`` under ``root`` (:func:`~.folder.read_class_file`), else needs ``num_classes``.
    """
    if name != "folder":
        if class_names is not None or palette is not None:
            raise DataError(
                f"data.class_names and data.palette name the classes of a folder data set; {name} has its own"
            )
        return _entry(name).info(num_classes)
    if class_names is None and root is not None:
        found = read_class_file(root)
        if found is not None:
            class_names, palette = found[0], palette if palette is not None else found[1]
    return folder_info(num_classes, class_names=class_names, palette=palette)


def build_dataset(
    name: str,
    root: str | Path | None,
    split: str,
    *,
    transform: PairTransform | None = None,
    num_classes: int | None = None,
    download: bool = False,
    skip_bad: bool = False,
    check: bool = True,
    channels: int = 3,
    class_names: Sequence[str] | None = None,
    palette: Sequence[Sequence[int]] | None = None,
    cache: bool = False,
) -> SegmentationDataset:
    """The ``split`` of data set ``name`` under ``root``.

    Args:
        name: one of :data:`DATASETS`.
        root: ``voc12``/``voc12-aug``: ``VOCdevkit`` or ``VOC2012``; ``camvid``: the ``CamVid``
            folder; ``drive``: the ``DRIVE`` folder (holding ``training/``); ``folder``: the folder
            with ``images/`` and ``masks/``; ``synthetic``: where the set is generated, ``None`` for
            ``default_data_dir() / "synthetic"``.
        split: ``"train"``, ``"val"`` (``voc12``: any list in ``ImageSets/Segmentation``; CamVid also
            ``"test"`` and sequence splits such as ``"train-without-0006R0"``; DRIVE also ``"all"`` and
            ``"test"``); ``dataset_info(name).splits`` describes the fixed ones.
        transform: applied to each ``(image, mask)`` pair, e.g. :func:`~.transforms.train_transform`.
        num_classes: required for ``folder``; must match the others' class count when given.
        download: fetch VOC 2012 when missing (``voc12``, ``voc12-aug``); ``synthetic`` is always
            generated when missing.
        skip_bad: drop missing or unusable samples (see ``.skipped``) instead of raising.
        check: read every sample now, so bad files are reported before anything starts
            (see :class:`~.base.SegmentationDataset`).
        channels: the image channels to read (``model.in_channels``; see
            :class:`~.base.SegmentationDataset`).
        class_names, palette: a ``folder`` data set's classes (see :func:`dataset_info`).
        cache: keep the decoded pairs in memory (see :class:`~.base.SegmentationDataset`).

    Example:
        >>> ds = build_dataset("synthetic", None, "val")
        >>> image, mask = ds[0]
        >>> image.dtype, mask.dtype, ds.info.num_classes
        (dtype('uint8'), dtype('int64'), 6)
    """
    entry = _entry(name)
    info = dataset_info(name, num_classes, root=root, class_names=class_names, palette=palette)
    if download and not entry.downloads:
        raise DataError(f"{name} cannot be downloaded; expected its files under --data-root, get them by hand")
    if root is None:
        if name != "synthetic":
            raise DataError(f"{name} needs a data root, got none; pass root (--data-root) pointing at its files")
        root = default_data_dir() / "synthetic"
    pairs = entry.files(Path(root).expanduser(), split, download)
    return SegmentationDataset(
        pairs,
        info=info,
        transform=transform,
        label_map=entry.label_map,
        region=entry.region,
        skip_bad=skip_bad,
        check=check,
        channels=channels,
        cache=cache,
    )
