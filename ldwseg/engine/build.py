"""What a run is built from: its data loaders and its network.

``get_loaders`` gives batches that depend only on ``(seed, epoch)``, so a resumed run sees
the batches it would have seen; ``build_model`` builds the network of a config, for training
and for ``ldwseg compare``'s cost columns. For a CUDA device the loaders read in worker
processes by default (:func:`data_workers`) into pinned memory, so the copies to the GPU
run asynchronously and the GPU does not wait for the data.
"""

from __future__ import annotations

import logging
import os

import torch
from torch import nn
from torch.utils.data import DataLoader

from ..config import Config
from ..errors import ConfigError
from ..models.build import build_network, input_multiple
from ..models.smp import SMPSegmenter
from .distributed import DistInfo
from .sampling import EpochShardSampler, SeededSamples, worker_init
from .task import TaskData

__all__ = ["MAX_DEFAULT_WORKERS", "build_model", "data_workers", "get_loaders"]

log = logging.getLogger(__name__)

MAX_DEFAULT_WORKERS = 8
"""The most data workers a CUDA run starts per process unless ``data.num_workers`` says otherwise."""


def data_workers(num_workers: int | None, device: torch.device) -> int:
    """The data-loading processes for ``data.num_workers`` on ``device``: the number given, else 0 on the CPU
    (workers would compete with the training for its cores) and, on CUDA, the cores of this process
    shared among the ``torchrun`` processes of the machine (``LOCAL_WORLD_SIZE``), at most
    :data:`MAX_DEFAULT_WORKERS`."""
    if num_workers is not None:
        return num_workers
    if device.type != "cuda":
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    per_process = cores // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return max(1, min(MAX_DEFAULT_WORKERS, per_process))


def get_loaders(
    data: TaskData, cfg: Config, dist_info: DistInfo, device: torch.device | None = None
) -> tuple[DataLoader, DataLoader, EpochShardSampler]:
    """Loaders whose batches depend only on ``(seed, epoch)``; validation is sharded, not padded.

    The training set is wrapped in :class:`~ldwseg.engine.sampling.SeededSamples` (``data.repeat``
    passes per epoch): call
    ``train_loader.dataset.set_epoch(epoch)`` with ``sampler.set_epoch(epoch)``. ``device``
    (default the CPU) is where the batches go: it sets the default workers
    (:func:`data_workers`) and, for CUDA, pinned memory.
    """
    t, train, val = cfg.train, data.train, data.val
    if len(train) == 0:
        raise ConfigError("the training split is empty; check --data-root and the split file")
    samples = SeededSamples(train, t.seed, repeat=cfg.data.repeat)
    sampler = EpochShardSampler(len(samples), seed=t.seed, rank=dist_info.rank, world=dist_info.world_size)
    device = torch.device("cpu") if device is None else device
    common = {
        "num_workers": data_workers(cfg.data.num_workers, device), "worker_init_fn": worker_init,
        "persistent_workers": False,  # the workers must see set_epoch: each epoch starts them anew
        "pin_memory": device.type == "cuda",
    }  # fmt: skip
    train_loader = DataLoader(
        samples, batch_size=t.batch_size, sampler=sampler,
        drop_last=len(sampler) >= 2 * t.batch_size, **common,
    )  # fmt: skip
    val_sampler = EpochShardSampler(len(val), shuffle=False, rank=dist_info.rank, world=dist_info.world_size, pad=False)
    val_loader = DataLoader(val, batch_size=t.val_batch_size, sampler=val_sampler, collate_fn=data.collate, **common)
    return train_loader, val_loader, sampler


def build_model(cfg: Config, out_channels: int) -> nn.Module:
    """The network of ``cfg.model`` with ``out_channels`` outputs: the UNet or an smp arch
    (:func:`~ldwseg.models.build.build_network`, which checkpoints are rebuilt with too).

    Most smp networks pad their input to a multiple of the encoder's output stride; a
    ``data.crop_size`` that is not one then trains on padded crops, which a warning says.
    DeepLabV3+ is refused with batches of one image: the BatchNorm of its image-pooling
    branch would see one value per channel.
    """
    if cfg.model.arch == "smp-deeplabv3plus" and cfg.train.batch_size < 2:
        raise ConfigError(
            "model.arch=smp-deeplabv3plus needs train.batch_size >= 2 (the BatchNorm of its image-pooling branch "
            f"sees one value per image), got {cfg.train.batch_size}; use --batch-size 2 or more"
        )
    model = build_network(cfg.model, cfg.model.in_channels, out_channels)
    multiple = input_multiple(model)
    if isinstance(model, SMPSegmenter) and model.pads and cfg.data.crop_size % multiple:
        padded = -(-cfg.data.crop_size // multiple) * multiple
        log.warning(
            "data.crop_size=%d is not a multiple of %d (the output stride of model.encoder=%s): %s pads every crop "
            "to %d; --set data.crop_size=%d trains on what it computes", cfg.data.crop_size, multiple,
            cfg.model.encoder, cfg.model.arch, padded, padded,
        )  # fmt: skip
    return model
