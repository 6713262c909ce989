"""The optimizer and learning-rate schedule of a run, from a config's ``optim`` section.

Adam with two parameter groups: the network's weights (``optim.lr``, ``optim.weight_decay``)
and the LDW pools' filters (``optim.filter_lr``, by default ``optim.lr``, and no weight
decay). Adam's L2 term pulls every weight towards 0; on a filter bank that means towards
sum(W_L) = 0, against the constraint that keeps sum(W_L) = sqrt(2), so filters are exempt.

Schedules, stepped once per epoch:

* ``step``: ``lr * gamma ** (epoch // step_size)``;
* ``poly``: ``lr * (1 - epoch / epochs) ** power``, the decay of the torchvision
  segmentation references and mmsegmentation (power 0.9), stepped per epoch here;
* ``cosine``: ``lr * (1 + cos(pi * epoch / epochs)) / 2`` (Loshchilov and Hutter's SGDR
  without restarts), which spends more of a short run near the full rate than step decay.
"""

from __future__ import annotations

import torch
from torch import nn

from ..pooling import LDWPool2d

__all__ = ["build_optimizer", "build_scheduler", "filter_parameters"]


def filter_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters of every :class:`~ldwseg.pooling.LDWPool2d` in ``model`` (each once)."""
    seen: dict[int, nn.Parameter] = {}
    for module in model.modules():
        if isinstance(module, LDWPool2d):
            for p in module.parameters(recurse=False):
                seen.setdefault(id(p), p)
    return list(seen.values())


def build_optimizer(model: nn.Module, optim) -> torch.optim.Adam:
    """Adam over ``model``: weights with ``optim.lr`` and weight decay, filters with
    ``optim.filter_lr`` (``None``: ``optim.lr``) and none. ``optim`` is a config's ``optim`` section."""
    filters = filter_parameters(model)
    ids = {id(p) for p in filters}
    weights = [p for p in model.parameters() if id(p) not in ids]
    groups = [{"params": weights, "weight_decay": optim.weight_decay}]
    if filters:
        lr = optim.lr if optim.filter_lr is None else optim.filter_lr
        groups.append({"params": filters, "lr": lr, "weight_decay": 0.0})
    return torch.optim.Adam(groups, lr=optim.lr)


def build_scheduler(optimizer: torch.optim.Optimizer, optim, epochs: int) -> torch.optim.lr_scheduler.LRScheduler:
    """The per-epoch schedule ``optim.schedule`` (``step``, ``poly`` or ``cosine``) over ``epochs`` epochs."""
    if optim.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    if optim.schedule == "poly":
        return torch.optim.lr_scheduler.PolynomialLR(optimizer, total_iters=epochs, power=optim.power)
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=optim.step_size, gamma=optim.gamma)
