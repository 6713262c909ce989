"""``SegmentationDataset``: (image, mask) pairs from files, checked as they are read."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from torch.utils.data import Dataset

from ..errors import DataError
from .cache import PairCache
from .info import DatasetInfo
from .reading import SampleError, read_channels, read_image, read_mask

__all__ = ["MIN_SIDE", "BadFile", "list_paths", "map_threads", "PairTransform", "SegmentationDataset", "validate"]

logger = logging.getLogger(__name__)

_LISTED = 5  # how many file names an error message lists before "and N more"
_LOG_CHECK_FROM = 500  # data sets this large log that they are being checked
_MISSING = "missing file"
MIN_SIDE = 8
"""The smallest image side (pixels) a sample may have, for segmentation and reconstruction alike."""


class PairTransform(Protocol):
    """Maps a uint8 ``(H, W, 3)`` image and an int64 ``(H, W)`` mask to the pair a model consumes."""

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> tuple[Any, Any]: ...


@dataclass(frozen=True)
class BadFile:
    """A sample that cannot be used: the offending file and why."""

    path: Path
    reason: str


def list_paths(paths: Sequence[Path]) -> str:
    """The first few ``paths`` for an error message, then "and N more"."""
    shown = ", ".join(str(p) for p in paths[:_LISTED])
    return shown + (f" and {len(paths) - _LISTED} more" if len(paths) > _LISTED else "")


def map_threads(fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
    """``[fn(x) for x in items]`` on a few threads: decoding images releases the GIL."""
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        return list(pool.map(fn, items))


class SegmentationDataset(Dataset):
    """A list of ``(image_path, mask_path)`` pairs read into ``(image, mask)`` items.

    Without a transform an item is an RGB ``uint8`` ``(H, W, 3)`` array (``channels=3``, the
    default) or a float32 ``(H, W, channels)`` array of the stored values over their maximum
    (any other ``channels``: gray 8 and 16-bit images read exactly, ``.npy`` arrays of any
    channel count, :func:`~ldwseg.datasets.reading.read_channels`), and an ``int64``
    ``(H, W)`` array with labels in ``[0, K)`` and 255 = ignore. With a transform (see
    :mod:`ldwseg.datasets.transforms`) it is whatever the transform returns, normally a float32
    ``(3, H, W)`` tensor and an int64 ``(H, W)`` tensor.

    Every pair is read once when the data set is made (``check=True``, the default): a
    missing or unreadable file, a mask whose size differs from its image, or labels outside
    ``[0, K)`` other than 255 make it fail with one error listing the bad files, so training
    never starts on data that would break part-way. Items are checked again as they are read.

    Args:
        files: ``(image_path, mask_path)`` pairs.
        info: the label metadata; ``info.num_classes`` bounds the labels.
        transform: applied to each ``(image, mask)`` pair.
        label_map: raw mask value -> label (CamVid: ``{11: 255}``), applied before the check.
        region: mask path -> the file of the region its labels are valid in (DRIVE: the field of
            view); pixels that are 0 there become the ignore label, after ``label_map``. The
            region file is read like a mask, must have the image's size and counts as one of
            the sample's files for the checks and ``skip_bad``.
        skip_bad: drop the pairs that fail the check (listed in ``.skipped`` and logged)
            instead of raising.
        check: read every pair now; ``False`` only checks that the files exist (faster for
            huge data sets, but a broken file then stops training when it is reached).
        channels: the image channels the model takes (``model.in_channels``); see above.
        cache: keep every pair in memory once read (the check above reads them all), so later
            epochs skip decoding (:mod:`.cache`; CamVid's 468 frames: about 330 MB). Items are
            the same as without it. A set estimated at more than half of the available memory
            is refused. Every process keeps its own (forked data workers share their parent's).
    """

    def __init__(
        self,
        files: Sequence[tuple[Path, Path]],
        *,
        info: DatasetInfo,
        transform: PairTransform | None = None,
        label_map: Mapping[int, int] | None = None,
        region: Callable[[Path], Path] | None = None,
        skip_bad: bool = False,
        check: bool = True,
        channels: int = 3,
        cache: bool = False,
    ) -> None:
        self.info = info
        self.channels = channels
        self.transform = transform
        self.label_map = dict(label_map or {})
        self.region = region
        self.files: list[tuple[Path, Path]] = [(Path(i), Path(m)) for i, m in files]
        self.skipped: list[BadFile] = []
        self._cache = PairCache(info.name, len(self.files)) if cache else None
        if not self.files:
            raise DataError(f"{info.name}: expected at least one (image, mask) pair, found none; check the data root")
        missing = [BadFile(p, _MISSING) for pair in self.files for p in self._sample_files(pair) if not p.is_file()]
        if missing:
            self._refuse_or_drop(
                missing, skip_bad=skip_bad, what="listed files are missing", todo="restore them, fix the split list"
            )
        if check:
            bad = validate(self)
            if bad:
                self._refuse_or_drop(bad, skip_bad=skip_bad, what="files cannot be used", todo="fix or remove them")

    def _sample_files(self, pair: tuple[Path, Path]) -> tuple[Path, ...]:
        """The files a sample is read from: image, mask and, with ``region``, the region file."""
        return pair if self.region is None else (*pair, self.region(pair[1]))

    def _refuse_or_drop(self, bad: list[BadFile], *, skip_bad: bool, what: str, todo: str) -> None:
        if not skip_bad:
            first = "" if bad[0].reason == _MISSING else f" (first: {bad[0].reason.rstrip('.')})"
            raise DataError(
                f"{self.info.name}: {len(bad)} {what}: {list_paths([b.path for b in bad])}{first}; "
                f"{todo}, or pass --skip-bad (skip_bad=True) to leave those samples out"
            )
        self._drop(bad)

    def _drop(self, bad: list[BadFile]) -> None:
        if not bad:
            return
        paths = {b.path for b in bad}
        kept = [pair for pair in self.files if not paths.intersection(self._sample_files(pair))]
        if not kept:
            raise DataError(
                f"{self.info.name}: all {len(self.files)} samples are bad, e.g. {bad[0].path} ({bad[0].reason}); "
                "check the data root and the files"
            )
        logger.warning(
            "%s: skipped %d of %d samples: %s",
            self.info.name,
            len(self.files) - len(kept),
            len(self.files),
            "; ".join(f"{b.path} ({b.reason})" for b in bad[:_LISTED]),
        )
        self.skipped += bad
        self.files = kept

    def __len__(self) -> int:
        return len(self.files)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The checked, untransformed pair: the image (see the class docstring) and int64 ``(H, W)`` labels."""
        pair = self.files[index]  # the key: dropping bad samples renumbers the files
        if self._cache is None:
            return self._read(pair)
        return self._cache.get(pair, lambda: self._read(pair))

    @property
    def cached(self) -> int:
        """How many pairs are held in memory (0 without ``cache``)."""
        return 0 if self._cache is None else len(self._cache)

    @property
    def cache_bytes(self) -> int:
        """The memory the held pairs take (0 without ``cache``)."""
        return 0 if self._cache is None else self._cache.nbytes

    def _read(self, pair: tuple[Path, Path]) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`load` from the files."""
        image_path, mask_path = pair
        if self.channels == 3:
            image = read_image(image_path, min_size=MIN_SIDE)
        else:
            image = read_channels(image_path, self.channels, min_size=MIN_SIDE)
        mask = read_mask(mask_path)
        if mask.shape != image.shape[:2]:
            raise SampleError(
                mask_path,
                f"mask {mask_path} is {mask.shape[1]}x{mask.shape[0]} (WxH) but image {image_path} is "
                f"{image.shape[1]}x{image.shape[0]}; expected equal sizes, re-export the mask at the image's size",
            )
        if self.label_map:
            raw = mask.copy()
            for src, dst in self.label_map.items():
                mask[raw == src] = dst
        if self.region is not None:
            region_path = self.region(mask_path)
            inside = read_mask(region_path)
            if inside.shape != mask.shape:
                raise SampleError(
                    region_path,
                    f"region mask {region_path} is {inside.shape[1]}x{inside.shape[0]} (WxH) but mask {mask_path} is "
                    f"{mask.shape[1]}x{mask.shape[0]}; expected equal sizes, restore the region mask of this sample",
                )
            mask[inside == 0] = self.info.ignore_index
        num_classes, ignore = self.info.num_classes, self.info.ignore_index
        bad = (mask < 0) | ((mask >= num_classes) & (mask != ignore))
        if bad.any():
            values = np.unique(mask[bad]).tolist()
            raise SampleError(
                mask_path,
                f"mask {mask_path} has label values {values[:10]} outside [0, {num_classes}) "
                f"({ignore} = ignore); expected {self.info.name} labels, check num_classes or fix the mask",
            )
        return image, mask

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        image, mask = self.load(index)
        if self.transform is None:
            return image, mask
        return self.transform(image, mask)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.info.name!r}, samples={len(self)}, classes={self.info.num_classes}, "
            f"skipped={len(self.skipped)}, transform={self.transform!r})"
        )


def validate(dataset: SegmentationDataset) -> list[BadFile]:
    """Read every pair of ``dataset`` and return the ones that fail, with the reason.

    Checks what reading an item checks (readable files, equal sizes, labels in range), so an
    empty list means that every item can be loaded.
    """
    if len(dataset.files) >= _LOG_CHECK_FROM:
        logger.info("%s: checking %d samples", dataset.info.name, len(dataset.files))

    def check(index: int) -> BadFile | None:
        try:
            dataset.load(index)
        except SampleError as err:
            return BadFile(err.path, str(err))
        return None

    return [b for b in map_threads(check, range(len(dataset.files))) if b is not None]
