"""The UNet's normalisation layers: BatchNorm, or a learned per-channel scale and shift.

``model.norm="batch"`` keeps every :class:`torch.nn.BatchNorm2d` of the double convs and
decoders, as Ronneberger's UNet has them. ``"affine"`` replaces each of them by
:class:`ChannelAffine`, ``y = w_c x + b_c``: BatchNorm's learned scale and shift without
the normalisation by batch statistics, so training and evaluation compute the same
function and no running statistics exist. An autoencoder needs that: BatchNorm
normalises by statistics of a few crops while training and of running averages when
evaluated, and a reconstruction error of a few 1/255 per pixel is what separates a
blurred reconstruction from a faithful one (PSNR = -10 log10 of the mean squared error).
The energy attention's own normalisation (no learned affine) is part of its definition
and stays.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["NORMS", "ChannelAffine", "replace_batchnorm"]

NORMS = ("batch", "affine")
"""The values of ``model.norm``."""


class ChannelAffine(nn.Module):
    """A learned scale and shift per channel, ``y[:, c] = weight[c] * x[:, c] + bias[c]``.

    Starts as the identity, as a fresh BatchNorm's affine part does; its ``weight`` and
    ``bias`` have BatchNorm's names and shapes.

    Shape:
        ``(N, C, H, W) -> (N, C, H, W)``.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        return torch.addcmul(self.bias[:, None, None], self.weight[:, None, None], x)

    def extra_repr(self) -> str:
        return str(self.weight.numel())


def replace_batchnorm(module: nn.Module) -> nn.Module:
    """``module`` with every :class:`torch.nn.BatchNorm2d` that has a learned affine replaced,
    in place, by a :class:`ChannelAffine` of its channels (fresh: the identity).

    Returns the new root when ``module`` itself is such a BatchNorm.
    """
    if type(module) is nn.BatchNorm2d and module.affine:
        return ChannelAffine(module.num_features)
    for name, child in module.named_children():
        module.add_module(name, replace_batchnorm(child))
    return module
