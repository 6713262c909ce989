"""Decoded ``(image, mask)`` pairs kept in memory (``data.cache``), for data sets that fit.

Each pair is held as read (the image) and in the smallest unsigned integer type that holds
its labels (the mask), and every read returns fresh copies, so a transform may write into
them. Before the first pair is kept, the whole set's size is estimated from it and checked
against the memory the system has available: a set that would not fit is refused with one
error, instead of the process being killed part-way through an epoch.

Every process holds its own cache: under ``torchrun`` each of the ``LOCAL_WORLD_SIZE``
processes of a machine, which the check counts. Data workers started by ``fork`` read the
pairs their training process kept without copying them (the arrays are never written).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Hashable
from pathlib import Path

import numpy as np

from ..errors import DataError

__all__ = ["MEMORY_SHARE", "PairCache", "available_memory", "size_words"]

MEMORY_SHARE = 0.5
"""The largest share of the available memory an estimated cache may take."""

Pair = tuple[np.ndarray, np.ndarray]


def available_memory() -> int | None:
    """The memory the system can give without swapping (Linux ``MemAvailable``), in bytes; ``None`` elsewhere."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def size_words(nbytes: float) -> str:
    """``nbytes`` for a message.

    >>> size_words(3 * 2**30), size_words(330 * 2**20), size_words(67_200)
    ('3.0 GB', '330 MB', '66 KB')
    """
    if nbytes >= 2**30:
        return f"{nbytes / 2**30:.1f} GB"
    return f"{nbytes / 2**20:.0f} MB" if nbytes >= 2**20 else f"{nbytes / 2**10:.0f} KB"


class PairCache:
    """The pairs of one data set of ``count`` samples named ``name``, keyed by their files."""

    def __init__(self, name: str, count: int) -> None:
        self.name, self.count = name, count
        self._pairs: dict[Hashable, Pair] = {}
        self._lock = threading.Lock()  # the start-up check reads pairs on several threads

    def __len__(self) -> int:
        return len(self._pairs)

    @property
    def nbytes(self) -> int:
        return sum(image.nbytes + mask.nbytes for image, mask in self._pairs.values())

    def get(self, key: Hashable, read: Callable[[], Pair]) -> Pair:
        """Copies of the pair under ``key``, read (and kept) the first time.

        Raises:
            DataError: the first pair, times the number of samples, would take more than
                :data:`MEMORY_SHARE` of the available memory.
        """
        pair = self._pairs.get(key)
        if pair is None:
            image, mask = read()
            pair = image, mask.astype(np.min_scalar_type(int(mask.max(initial=0))))
            with self._lock:
                if not self._pairs:
                    self._check_fits(pair)
                self._pairs.setdefault(key, pair)
        image, mask = pair
        return image.copy(), mask.astype(np.int64)

    def _check_fits(self, pair: Pair) -> None:
        processes = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
        estimate = (pair[0].nbytes + pair[1].nbytes) * self.count * processes
        available = available_memory()
        if available is not None and estimate > MEMORY_SHARE * available:
            each = f" in each of {processes} processes" if processes > 1 else ""
            raise DataError(
                f"{self.name}: data.cache would keep about {size_words(estimate)} of decoded images and masks in memory "
                f"({self.count} samples like the first{each}), more than half of the {size_words(available)} available; "
                "leave it off (--set data.cache=false) or free memory"
            )
