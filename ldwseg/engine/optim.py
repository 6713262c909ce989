"""The optimizer and learning-rate schedule of a run, from a config's ``optim`` section.

``optim.name``: ``adam`` (the default; ``weight_decay`` is an L2 term in the gradient, as
the paper trains), ``adamw`` (decoupled weight decay, Loshchilov and Hutter) or ``sgd``
(``optim.momentum``, ``optim.nesterov``), over up to three parameter groups:

* the weights of convolutions and linear layers: ``optim.lr``, ``optim.weight_decay``;
* biases and normalisation parameters (every 1-d parameter outside the LDW pools):
  ``optim.lr`` and no weight decay, as timm (``filter_bias_and_bn``) and mmsegmentation
  (``norm_decay_mult=0``) do: a BatchNorm scale is followed by nothing that undoes a
  shrink, so decaying it only fights the loss (``optim.norm_bias_decay=true`` decays them too);
* the LDW pools' filters: ``optim.filter_lr`` (by default ``optim.lr``) and no weight
  decay. The L2 term pulls every weight towards 0; on a filter bank that means towards
  sum(W_L) = 0, against the constraint that keeps sum(W_L) = sqrt(2), so filters are exempt.

Schedules: the factor ``f`` of the learning rate after ``i`` optimizer steps, with ``E``
epochs of ``S`` steps. With ``optim.by_epoch`` (the default) the decay moves once per
epoch, ``t = floor(i / S) / E``; without it, at every step, ``t = i / (E S)``, as the
torchvision segmentation references and mmsegmentation (``by_epoch=False``) do:

* ``step``: ``gamma ** (floor(i / S) // step_size)``, ``step_size`` in epochs either way;
* ``poly``: ``(1 - t) ** power`` (power 0.9 in those references);
* ``cosine``: ``(1 + cos(pi t)) / 2`` (Loshchilov and Hutter's SGDR without restarts),
  which spends more of a short run near the full rate than step decay.

``optim.warmup_steps = W > 0`` multiplies the first ``W`` steps by ``(i + 1) / W``, a
linear warm-up to the full rate (as the torchvision references' ``LinearLR``): Adam's
first steps, taken with poorly estimated moments and from BatchNorm statistics of a
random network, are then small. The schedule is stepped after every optimizer step.
"""

from __future__ import annotations

import math
from collections.abc import Sized

import torch
from torch import nn

from ..pooling import LDWPool2d

__all__ = ["build_optimizer", "build_scheduler", "filter_parameters", "lr_factor", "steps_per_epoch"]


def filter_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters of every :class:`~ldwseg.pooling.LDWPool2d` in ``model`` (each once)."""
    seen: dict[int, nn.Parameter] = {}
    for module in model.modules():
        if isinstance(module, LDWPool2d):
            for p in module.parameters(recurse=False):
                seen.setdefault(id(p), p)
    return list(seen.values())


def build_optimizer(model: nn.Module, optim) -> torch.optim.Optimizer:
    """``optim.name`` over ``model``'s parameter groups (see the module docstring); ``optim`` is a
    config's ``optim`` section. Empty groups are left out."""
    filters = filter_parameters(model)
    ids = {id(p) for p in filters}
    rest = [p for p in model.parameters() if id(p) not in ids]
    decayed = [p for p in rest if p.ndim > 1 or optim.norm_bias_decay]
    plain = [p for p in rest if not (p.ndim > 1 or optim.norm_bias_decay)]
    filter_lr = optim.lr if optim.filter_lr is None else optim.filter_lr
    groups = [
        {"params": decayed, "weight_decay": optim.weight_decay},
        {"params": plain, "weight_decay": 0.0},
        {"params": filters, "lr": filter_lr, "weight_decay": 0.0},
    ]
    groups = [g for g in groups if g["params"]]
    # on CUDA one fused kernel per step, whose inf check lets the fp16 loss scaler skip steps without a host sync
    fused = {"fused": True} if groups and all(p.is_cuda for g in groups for p in g["params"]) else {}
    if optim.name == "sgd":
        return torch.optim.SGD(groups, lr=optim.lr, momentum=optim.momentum, nesterov=optim.nesterov, **fused)
    if optim.name == "adamw":
        return torch.optim.AdamW(groups, lr=optim.lr, **fused)
    return torch.optim.Adam(groups, lr=optim.lr, **fused)


def steps_per_epoch(loader: Sized, max_steps: int | None = None) -> int:
    """The optimizer steps of one epoch over ``loader`` (its batches, at most ``max_steps``), at least 1."""
    steps = len(loader)
    return max(1, steps if max_steps is None else min(steps, max_steps))


def lr_factor(optim, step: int, *, epochs: int, steps_per_epoch: int) -> float:
    """The factor of the learning rate after ``step`` optimizer steps (see the module docstring)."""
    epoch = step // steps_per_epoch
    if optim.schedule == "step":
        decay = optim.gamma ** (epoch // optim.step_size)
    else:
        t = epoch / epochs if optim.by_epoch else step / (epochs * steps_per_epoch)
        t = min(t, 1.0)
        decay = (1.0 - t) ** optim.power if optim.schedule == "poly" else (1.0 + math.cos(math.pi * t)) / 2.0
    if step < optim.warmup_steps:
        decay *= (step + 1) / optim.warmup_steps
    return decay


def build_scheduler(
    optimizer: torch.optim.Optimizer, optim, epochs: int, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """The schedule ``optim.schedule`` (``step``, ``poly`` or ``cosine``, after ``optim.warmup_steps`` of
    warm-up) over ``epochs`` epochs of ``steps_per_epoch`` steps; call its ``step()`` after every optimizer step."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(optim, step, epochs=epochs, steps_per_epoch=steps_per_epoch)
    )
