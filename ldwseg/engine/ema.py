"""An exponential moving average of the weights, the model a run validates and delivers.

After every optimizer step, ``ema = decay * ema + (1 - decay) * w`` for every parameter and
buffer (BatchNorm's running statistics included, so the averaged network carries statistics
that match its averaged weights). Averaging the last ~``1 / (1 - decay)`` steps smooths the
step-to-step noise of a small batch: a single checkpoint of a short reconstruction run can
swing by several dB between epochs, the average of its recent weights much less (Polyak and
Juditsky's averaging; the ``ModelEma`` of timm and mmengine). The arithmetic is torch's
:class:`~torch.optim.swa_utils.AveragedModel` with its EMA update; the first update copies
the weights, so the average never holds the untrained initialisation.

Under ``torchrun`` (DDP) the parameters, hence their averages, are equal on every rank, but
without ``train.sync_bn`` each rank's BatchNorm statistics come from its own batches, and
so do their averages. :meth:`WeightAverage.broadcast_buffers` makes them rank 0's on every
rank before validation: every shard is then scored with the network that rank 0 saves.
"""

from __future__ import annotations

import torch.distributed as dist
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

__all__ = ["WeightAverage", "build_weight_average", "delivered"]


class WeightAverage:
    """The moving average of ``model``'s weights with ``decay`` in (0, 1).

    ``model`` is the bare network (not a DDP wrapper); :attr:`module` is the averaged copy,
    of the same class, which is what validation scores and checkpoints store.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.source = model
        self.averaged = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
        self.averaged.requires_grad_(False)

    @property
    def module(self) -> nn.Module:
        return self.averaged.module

    def update(self) -> None:
        """Fold the source's current weights into the average (after an optimizer step)."""
        self.averaged.update_parameters(self.source)

    def state_dict(self) -> dict:
        return self.averaged.state_dict()

    def broadcast_buffers(self) -> None:
        """Give the averaged network rank 0's buffers (BatchNorm's running statistics) on every rank.

        Rank 0's, rather than the mean over ranks: rank 0's average is what ``last.state.pt``
        and the checkpoints store, so the scored network is the saved one (``evaluate`` of
        ``best.safetensors`` reproduces the logged score) and a resumed run scores what an
        uninterrupted one does. Each rank's average already spans ~``1 / (1 - decay)`` of its
        batches, so rank 0's statistics lose little against the mean. A collective: every
        rank of the group must call it.
        """
        for buffer in self.module.buffers():
            dist.broadcast(buffer, src=0)


def build_weight_average(model: nn.Module, decay: float) -> WeightAverage | None:
    """The average of ``model`` for ``train.ema_decay = decay``; ``None`` when 0 (off)."""
    return WeightAverage(model, decay) if decay > 0 else None


def delivered(model: nn.Module, ema: WeightAverage | None) -> nn.Module:
    """The network a run validates and stores in its checkpoints: the average when it keeps one."""
    return model if ema is None else ema.module
