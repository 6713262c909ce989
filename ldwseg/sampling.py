"""Deterministic, rank-sharded sampling and seeding for reproducible (and resumable) runs."""

from __future__ import annotations

import random
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Sampler

__all__ = ["EpochShardSampler", "seed_everything", "seed_epoch", "worker_init"]


class EpochShardSampler(Sampler[int]):
    """Indices shuffled by ``seed + epoch`` and dealt to ranks round robin.

    The order depends only on ``(seed, epoch)``, so a run resumed at an epoch boundary
    sees exactly the batches an uninterrupted run would. With ``pad=True`` every rank
    gets the same count (needed for training under DDP); evaluation uses ``pad=False``
    so no sample is counted twice.
    """

    def __init__(self, size: int, *, seed: int = 0, shuffle: bool = True, rank: int = 0, world: int = 1, pad: bool = True):
        self.size, self.seed, self.shuffle, self.rank, self.world, self.pad = size, seed, shuffle, rank, world, pad
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _indices(self) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.size, generator=g).tolist()
        else:
            order = list(range(self.size))
        if self.pad and self.world > 1 and self.size % self.world:
            order += order[: self.world - self.size % self.world]
        return order[self.rank :: self.world]

    def __iter__(self) -> Iterator[int]:
        return iter(self._indices())

    def __len__(self) -> int:
        return len(self._indices())


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (model initialisation)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def seed_epoch(seed: int, epoch: int, rank: int = 0) -> None:
    """Seed the augmentation RNGs of the main process for one epoch."""
    value = (seed * 1_000_003 + epoch * 1009 + rank) % 2**32
    random.seed(value)
    np.random.seed(value)
    torch.manual_seed(value)


def worker_init(worker_id: int) -> None:
    """DataLoader workers: seed Python and NumPy from torch's per-worker seed."""
    value = torch.initial_seed() % 2**32
    random.seed(value)
    np.random.seed(value)
