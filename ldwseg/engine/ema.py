"""An exponential moving average of the weights, the model a run validates and delivers.

After every optimizer step, ``ema = decay * ema + (1 - decay) * w`` for every parameter and
buffer (BatchNorm's running statistics included, so the averaged network carries statistics
that match its averaged weights). Averaging the last ~``1 / (1 - decay)`` steps smooths the
step-to-step noise of a small batch: a single checkpoint of a short reconstruction run can
swing by several dB between epochs, the average of its recent weights much less (Polyak and
Juditsky's averaging; the ``ModelEma`` of timm and mmengine). The average is torch's
:class:`~torch.optim.swa_utils.AveragedModel` (its copy of the network, its state dict), and
the first update copies the weights, so the average never holds the untrained
initialisation. The update is the arithmetic of its EMA update (``torch._foreach_lerp_``
for floating-point tensors), written here without its two reads of the step count
``n_averaged`` and its copy to the training device, which on a GPU wait for the device at
every step: the count stays on the CPU.

Under ``torchrun`` (DDP) the parameters, hence their averages, are equal on every rank, but
without ``train.sync_bn`` each rank's BatchNorm statistics come from its own batches, and
so do their averages. :meth:`WeightAverage.broadcast_buffers` makes them rank 0's on every
rank before validation: every shard is then scored with the network that rank 0 saves.
"""

from __future__ import annotations

from itertools import chain

import torch
import torch.distributed as dist
from torch import nn
from torch.optim.swa_utils import AveragedModel

__all__ = ["WeightAverage", "build_weight_average", "delivered"]


class WeightAverage:
    """The moving average of ``model``'s weights with ``decay`` in (0, 1).

    ``model`` is the bare network (not a DDP wrapper); :attr:`module` is the averaged copy,
    of the same class, which is what validation scores and checkpoints store.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.source, self.decay = model, decay
        self.averaged = AveragedModel(model, use_buffers=True)  # n_averaged on the CPU
        self.averaged.requires_grad_(False)

    @property
    def module(self) -> nn.Module:
        return self.averaged.module

    @torch.no_grad()
    def update(self) -> None:
        """Fold the source's current weights and buffers into the average (after an optimizer step)."""
        averaged = [t.detach() for t in chain(self.module.parameters(), self.module.buffers())]
        current = [t.detach() for t in chain(self.source.parameters(), self.source.buffers())]
        count = self.averaged.n_averaged
        if int(count) == 0:
            for mean, now in zip(averaged, current, strict=True):
                mean.copy_(now)
        else:
            pairs = list(zip(averaged, current, strict=True))
            real = [pair for pair in pairs if _interpolable(pair[0])]
            if real:
                torch._foreach_lerp_([mean for mean, _ in real], [now for _, now in real], 1 - self.decay)
            for mean, now in pairs:
                if not _interpolable(mean):  # counters such as BatchNorm's num_batches_tracked
                    mean.copy_(mean * self.decay + now * (1 - self.decay))
        count += 1

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


def _interpolable(t: torch.Tensor) -> bool:
    """Whether ``torch.lerp`` takes ``t`` (floating point or complex)."""
    return t.is_floating_point() or t.is_complex()


def build_weight_average(model: nn.Module, decay: float) -> WeightAverage | None:
    """The average of ``model`` for ``train.ema_decay = decay``; ``None`` when 0 (off)."""
    return WeightAverage(model, decay) if decay > 0 else None


def delivered(model: nn.Module, ema: WeightAverage | None) -> nn.Module:
    """The network a run validates and stores in its checkpoints: the average when it keeps one."""
    return model if ema is None else ema.module
