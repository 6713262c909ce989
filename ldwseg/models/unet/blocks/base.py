"""The UNet's building blocks: the double conv, the down and up block protocols, channel reduction.

Down blocks (:class:`DownBlock`) take ``(in_channels, out_channels)`` and return the
``ceil(H/2) x ceil(W/2)`` features and, for LDW, the pool's subbands (which
:class:`~ldwseg.models.unet.blocks.ldw.LDWDetailUp` reuses). Up blocks (:class:`UpBlock`)
take ``(in_channels, skip_channels, out_channels)`` and restore exactly the skip's height
and width, so no input size needs to be divisible by ``2^depth``. The blocks themselves are
in ``maxpool``, ``ldw``, ``controls``, ``designs`` and ``bypass``;
:mod:`ldwseg.models.unet.registry` names them all.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ....pooling.capture import _capturing
from ...layers.options import PoolOptions

__all__ = ["DoubleConv", "DownBlock", "PoolConvDown", "PoolOptions", "UpBlock", "channel_reduction", "match_size"]


class DoubleConv(nn.Sequential):
    """(3x3 conv, BatchNorm, ReLU) twice, as in Ronneberger et al.; the convs have no bias (BatchNorm has one).

    Args:
        in_channels: input channels.
        out_channels: channels of both convs.
        groups: groups of the first conv (both channel counts divisible by it).

    Shape:
        ``(N, in_channels, H, W) -> (N, out_channels, H, W)``.
    """

    def __init__(self, in_channels: int, out_channels: int, *, groups: int = 1) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False, groups=groups),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )

    def pre_activation(self, x: Tensor) -> Tensor:
        """The double conv without its final ReLU, for a residual sum before that ReLU."""
        for layer in list(self)[:-1]:
            x = layer(x)
        return x


class DownBlock(nn.Module):
    """Base of the encoder blocks: ``(in_channels, out_channels)``, halving the size.

    ``forward(x)`` returns ``(features, bands)``: the ``ceil(H/2) x ceil(W/2)`` features
    and the LDW pool's subbands, or ``None`` for a block that stores none. The class
    attributes tell the factory and :func:`~ldwseg.models.check_unet` what a block takes
    and what it offers the decoder block of its level.
    """

    options: ClassVar[tuple[str, ...]] = ()
    """The keyword options of the constructor, among ``"pool"`` (:class:`PoolOptions`) and ``"efficient"``."""
    ldw_pool: ClassVar[bool] = False
    """Whether the block owns an :class:`~ldwseg.LDWPool2d` at ``self.pool``, which an LDW up block can reverse."""
    stores_bands: ClassVar[bool] = False
    """Whether ``forward`` returns side information for the decoder block of its level."""
    band_kind: ClassVar[str] = "subbands"
    """What it stores: the LDW pool's ``"subbands"`` (for :class:`LDWDetailUp`) or the max
    pool's ``"residual"`` (for :class:`~ldwseg.models.unet.blocks.bypass.ResidualUp`)."""
    out_multiple: ClassVar[int] = 1
    """What ``out_channels`` must be a multiple of."""
    reduces: ClassVar[bool] = False
    """Whether the block always reduces ``C`` to ``C/4`` before its split (``efficient`` built in),
    so ``in_channels`` must be a multiple of 4."""


def channel_reduction(in_channels: int, out_channels: int) -> nn.Sequential:
    """1x1 conv (no bias), BatchNorm and ReLU: the channel reduction of HWD's feature-encoding module."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)
    )


class UpBlock(nn.Module):
    """Base of the decoder blocks: ``(in_channels, skip_channels, out_channels)``, restoring the skip's size.

    ``forward(x, skip, bands)`` takes the decoder features, the encoder features of the
    level and what the down block of the level returned as bands.
    """

    needs_pool: ClassVar[bool] = False
    """Whether the block reverses the LDW pool of the down block of its level."""
    needs_bands: ClassVar[bool] = False
    """Whether the block takes that down block's stored side information, of kind ``band_kind``."""
    band_kind: ClassVar[str] = "subbands"
    """The kind of side information it takes (see :attr:`DownBlock.band_kind`)."""

    def _add_merge(self, channels: int, skip_channels: int, out_channels: int, skip: bool) -> None:
        """Build the double conv after upsampling to ``channels`` channels (plus the skip's, when ``skip``)."""
        self.skip = skip
        self.conv = DoubleConv(channels + (skip_channels if skip else 0), out_channels)

    def merge(self, x: Tensor, skip: Tensor) -> Tensor:
        """The double conv of the upsampled ``x``, concatenated with the encoder features when ``self.skip``."""
        return self.conv(torch.cat([x, skip], 1) if self.skip else x)


class PoolConvDown(DownBlock):
    """Base of the blocks that downsample with a layer of their own, then apply the double conv.

    Subclasses give the layer (``C`` to ``C`` channels, ``ceil(H/2) x ceil(W/2)``) in
    :meth:`downsampler`; it is the block's ``pool`` attribute.

    Shape:
        ``(N, in_channels, H, W) -> (N, out_channels, ceil(H/2), ceil(W/2))``, and ``None``
        in place of subbands.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.pool = self.downsampler(in_channels)
        self.conv = DoubleConv(in_channels, out_channels)

    @staticmethod
    def downsampler(channels: int) -> nn.Module:
        """The downsampling layer for ``channels`` channels."""
        raise NotImplementedError

    def forward(self, x: Tensor) -> tuple[Tensor, None]:
        return self.conv(self.pool(x)), None


def match_size(x: Tensor, size: torch.Size) -> Tensor:
    """Pad (positive amounts) or crop (negative amounts) the bottom and right of ``x`` to ``size``."""
    dh, dw = size[0] - x.shape[-2], size[1] - x.shape[-1]
    if dh == 0 and dw == 0 and not _capturing():  # a trace must record the pad, whose amounts vary with the size
        return x
    return F.pad(x, (0, dw, 0, dh))
