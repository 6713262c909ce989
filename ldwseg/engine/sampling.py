"""Deterministic, rank-sharded sampling and seeding for reproducible (and resumable) runs.

Two things make a run resumable at any step with the same result as an uninterrupted one:
the order of the samples depends only on ``(seed, epoch)`` (:class:`EpochShardSampler`,
which can also start part-way through its shard), and every sample's random augmentation
depends only on ``(seed, epoch, index)`` (:class:`SeededSamples`), not on which worker
process loads it or on what was drawn before.
"""

from __future__ import annotations

import random
import signal
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

__all__ = ["EpochShardSampler", "SeededSamples", "sample_seed", "seed_everything", "worker_init"]


class EpochShardSampler(Sampler[int]):
    """Indices shuffled by ``seed + epoch`` and dealt to ranks round robin.

    The order depends only on ``(seed, epoch)``, so a run resumed at an epoch boundary
    sees exactly the batches an uninterrupted run would. With ``pad=True`` every rank
    gets the same count (needed for training under DDP); evaluation uses ``pad=False``
    so no sample is counted twice. ``set_epoch(epoch, start=n)`` skips the first ``n``
    indices of this rank's shard: a run resumed after ``k`` batches of size ``B`` uses
    ``start=k * B``.
    """

    def __init__(
        self, size: int, *, seed: int = 0, shuffle: bool = True, rank: int = 0, world: int = 1, pad: bool = True
    ):
        self.size, self.seed, self.shuffle, self.rank, self.world, self.pad = size, seed, shuffle, rank, world, pad
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def _indices(self) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.size, generator=g).tolist()
        else:
            order = list(range(self.size))
        if self.pad and self.world > 1 and self.size % self.world:
            order += order[: self.world - self.size % self.world]
        return order[self.rank :: self.world][self.start :]

    def __iter__(self) -> Iterator[int]:
        return iter(self._indices())

    def __len__(self) -> int:
        return len(self._indices())


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A 32-bit seed for one sample of one epoch, independent of everything else."""
    return int(np.random.SeedSequence([seed % 2**32, epoch, index]).generate_state(1)[0])


class SeededSamples(Dataset):
    """Wraps a data set so that sample ``i`` of epoch ``e`` is augmented the same way every time.

    Before loading a sample it seeds Python's, NumPy's and torch's generators, and the
    data set's ``transform.reseed(seed)`` when it has one, with :func:`sample_seed`. The
    random crop, scale and flip of a sample then depend on ``(seed, epoch, index)`` only,
    in the main process or in any ``DataLoader`` worker, which is what makes a run
    resumed mid-epoch identical to an uninterrupted one.

    ``repeat = r`` makes one epoch pass ``r`` times over the data set (``r n`` samples,
    sample ``i`` reading item ``i mod n``, each pass with its own augmentation), as
    mmsegmentation's ``RepeatDataset``: for a small training set (DRIVE's 16 images) the
    per-epoch work of a run (validation, checkpoint, log row) then happens every ``r n``
    samples instead of every ``n``.
    """

    def __init__(self, dataset: Dataset, seed: int, *, repeat: int = 1) -> None:
        self.dataset, self.seed, self.epoch, self.repeat = dataset, seed, 0, repeat

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.dataset) * self.repeat  # type: ignore[arg-type]

    def __getitem__(self, index: int):
        if not 0 <= index < len(self):
            raise IndexError(f"sample {index} of a data set of {len(self)}")
        value = sample_seed(self.seed, self.epoch, index)
        random.seed(value)
        np.random.seed(value)
        torch.manual_seed(value)
        reseed = getattr(getattr(self.dataset, "transform", None), "reseed", None)
        if reseed is not None:
            reseed(value)
        return self.dataset[index % len(self.dataset)]  # type: ignore[arg-type]


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (model initialisation)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def worker_init(worker_id: int) -> None:
    """DataLoader workers: seed Python and NumPy from torch's per-worker seed.

    Workers ignore SIGINT: Ctrl-C reaches the whole process group, and the main process,
    which saves a checkpoint before it stops, shuts them down itself. (SIGTERM keeps its
    default: it is how the loader and multiprocessing stop workers.)
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    value = torch.initial_seed() % 2**32
    random.seed(value)
    np.random.seed(value)
