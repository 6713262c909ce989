"""What a run is built from: its data loaders and its network.

``get_loaders`` gives batches that depend only on ``(seed, epoch)``, so a resumed run sees
the batches it would have seen; ``build_model`` builds the network of a config, for training
and for ``ldwseg compare``'s cost columns.
"""

from __future__ import annotations

import logging

from torch import nn
from torch.utils.data import DataLoader

from ..config import Config
from ..errors import ConfigError
from ..models.arch import build_network, input_multiple
from ..models.smp_net import SMPSegmenter
from .distributed import DistInfo
from .sampling import EpochShardSampler, SeededSamples, worker_init
from .task import TaskData

__all__ = ["build_model", "get_loaders"]

log = logging.getLogger(__name__)


def get_loaders(data: TaskData, cfg: Config, dist_info: DistInfo) -> tuple[DataLoader, DataLoader, EpochShardSampler]:
    """Loaders whose batches depend only on ``(seed, epoch)``; validation is sharded, not padded.

    The training set is wrapped in :class:`~ldwseg.engine.sampling.SeededSamples` (``data.repeat``
    passes per epoch): call
    ``train_loader.dataset.set_epoch(epoch)`` with ``sampler.set_epoch(epoch)``.
    """
    t, train, val = cfg.train, data.train, data.val
    if len(train) == 0:
        raise ConfigError("the training split is empty; check --data-root and the split file")
    samples = SeededSamples(train, t.seed, repeat=cfg.data.repeat)
    sampler = EpochShardSampler(len(samples), seed=t.seed, rank=dist_info.rank, world=dist_info.world_size)
    workers = cfg.data.num_workers
    common = {"num_workers": workers, "worker_init_fn": worker_init, "persistent_workers": False}
    train_loader = DataLoader(
        samples, batch_size=t.batch_size, sampler=sampler,
        drop_last=len(sampler) >= 2 * t.batch_size, **common,
    )  # fmt: skip
    val_sampler = EpochShardSampler(len(val), shuffle=False, rank=dist_info.rank, world=dist_info.world_size, pad=False)
    val_loader = DataLoader(val, batch_size=t.val_batch_size, sampler=val_sampler, collate_fn=data.collate, **common)
    return train_loader, val_loader, sampler


def build_model(cfg: Config, out_channels: int) -> nn.Module:
    """The network of ``cfg.model`` with ``out_channels`` outputs: the UNet or an smp arch
    (:func:`~ldwseg.models.arch.build_network`, which checkpoints are rebuilt with too).

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
    model = build_network(cfg.model, 3, out_channels)
    multiple = input_multiple(model)
    if isinstance(model, SMPSegmenter) and model.pads and cfg.data.crop_size % multiple:
        padded = -(-cfg.data.crop_size // multiple) * multiple
        log.warning(
            "data.crop_size=%d is not a multiple of %d (the output stride of model.encoder=%s): %s pads every crop "
            "to %d; --set data.crop_size=%d trains on what it computes", cfg.data.crop_size, multiple,
            cfg.model.encoder, cfg.model.arch, padded, padded,
        )  # fmt: skip
    return model
