"""UNet building blocks: the double conv, the base down and up blocks, max pooling, LDW and its decoders.

Down blocks (:class:`DownBlock`) take ``(in_channels, out_channels)`` and return the
``ceil(H/2) x ceil(W/2)`` features and, for LDW, the pool's subbands (which
:class:`LDWDetailUp` reuses). Up blocks (:class:`UpBlock`) take
``(in_channels, skip_channels, out_channels)`` and restore exactly the skip's height and
width, so no input size needs to be divisible by ``2^depth``. The controls are in
:mod:`~ldwseg.models.controls`, the other LDW designs in :mod:`~ldwseg.models.designs`;
:mod:`ldwseg.models.factory` names them all.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..pooling import LDWPool2d, LDWUnpool2d
from ..pooling.capture import _capturing
from .splits import PoolOptions, make_attention, make_split

__all__ = [
    "DoubleConv", "DownBlock", "UpBlock", "PoolOptions", "PoolConvDown", "MaxPoolDown", "LDWDown", "DeconvUp",
    "LDWUp", "LDWDetailUp", "channel_reduction", "match_size",
]  # fmt: skip


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
    pool's ``"residual"`` (for :class:`~ldwseg.models.bypass.ResidualUp`)."""
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


class MaxPoolDown(PoolConvDown):
    """``MaxPool2d(2)`` in ceil mode, then the double conv (the paper's baseline UNet).

    Args:
        in_channels: input channels.
        out_channels: output channels.

    Shape:
        ``(N, in_channels, H, W) -> (N, out_channels, ceil(H/2), ceil(W/2))``, and ``None``
        in place of subbands.
    """

    @staticmethod
    def downsampler(channels: int) -> nn.Module:
        return nn.MaxPool2d(2, ceil_mode=True)


class LDWDown(DownBlock):
    """LDW pooling (C -> 4C), optional energy attention, then the double conv.

    With ``efficient=True`` (the paper's section 3.4) a 1x1 conv first reduces C to C/4,
    so the pool returns C channels and the next conv does not grow. With Haar filters
    this is the function class of :class:`~ldwseg.models.controls.SpaceToDepthDown`
    (``spd``), its non-wavelet twin; the energy attention applies to the ``4P``
    subbands.

    Args:
        in_channels: input channels ``C``; divisible by 4 when ``efficient``.
        out_channels: output channels.
        pool: the options of the :class:`~ldwseg.LDWPool2d` and its attention.
        efficient: reduce ``C`` to ``C/4`` with a 1x1 conv before the pool.

    Shape:
        ``(N, C, H, W) -> (N, out_channels, ceil(H/2), ceil(W/2))``, and the subbands
        ``(N, 4P, ceil(H/2), ceil(W/2))`` with ``P = C`` (``C/4`` when ``efficient``).
    """

    options = ("pool", "efficient")
    ldw_pool = stores_bands = True
    split: ClassVar[str] = "ldw"
    """The 2x2 split (:func:`~ldwseg.models.splits.make_split`): the LDW pool, or space-to-depth for the twin."""
    groups: ClassVar[int] = 1
    """Groups of the first conv after the split (4: one per subband)."""
    reduction: ClassVar[bool] = False
    """Reduce the ``4P`` split channels to ``P`` by a 1x1 conv, BatchNorm and ReLU (``mix``) before the conv."""

    def __init__(
        self, in_channels: int, out_channels: int, *, pool: PoolOptions = PoolOptions(), efficient: bool = False
    ) -> None:
        super().__init__()
        if efficient and in_channels % 4:
            raise ValueError(
                f"{type(self).__name__}(efficient=True) pools in_channels / 4 channels; got in_channels={in_channels}"
            )
        pooled = in_channels // 4 if efficient else in_channels
        self.reduce = nn.Conv2d(in_channels, pooled, 1, bias=False) if efficient else nn.Identity()
        self.pool = make_split(self.split, pooled, pool)
        self.attention = make_attention(4 * pooled, pool)
        self.mix = channel_reduction(4 * pooled, pooled) if self.reduction else nn.Identity()
        self.conv = DoubleConv(pooled if self.reduction else 4 * pooled, out_channels, groups=self.groups)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        bands = self.pool(self.reduce(x))
        return self.conv(self.mix(self.attention(bands))), bands if self.stores_bands else None


def match_size(x: Tensor, size: torch.Size) -> Tensor:
    """Pad (positive amounts) or crop (negative amounts) the bottom and right of ``x`` to ``size``."""
    dh, dw = size[0] - x.shape[-2], size[1] - x.shape[-1]
    if dh == 0 and dw == 0 and not _capturing():  # a trace must record the pad, whose amounts vary with the size
        return x
    return F.pad(x, (0, dw, 0, dh))


class DeconvUp(UpBlock):
    """2x2 transposed conv (C -> C/2), cropped to the skip, concatenated with it, double conv.

    Args:
        in_channels: decoder channels ``C``.
        skip_channels: channels of the encoder features of this level.
        out_channels: output channels.
        skip: concatenate the encoder features; without, the skip gives only the size.

    Shape:
        ``x (N, C, h, w)``, ``skip (N, skip_channels, H, W)`` -> ``(N, out_channels, H, W)``;
        the ``(2h, 2w)`` map is cropped or zero-padded to ``(H, W)``.
    """

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int, *, skip: bool = True) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, in_channels // 2, 2, stride=2)
        self._add_merge(in_channels // 2, skip_channels, out_channels, skip)

    def forward(self, x: Tensor, skip: Tensor, bands: Tensor | None = None) -> Tensor:
        return self.merge(match_size(self.up(x), skip.shape[-2:]), skip)


class LDWUp(UpBlock):
    """Reverse LDW pooling with the filters of the encoder pool of the same level (tied).

    A 1x1 conv maps the decoder features to four subbands ``[LL | LH | HL | HH]`` of
    ``C/2`` channels each; the reverse pool (the adjoint of Eqs. 3-8, their inverse for
    a PR bank) brings them to the skip's size, then the skip is concatenated and the
    double conv follows.

    Args:
        in_channels: decoder channels ``C``.
        skip_channels: channels of the encoder features of this level.
        out_channels: output channels.
        pool: the encoder's :class:`~ldwseg.LDWPool2d` of this level, whose filters are reused.
        skip: concatenate the encoder features; without, the skip gives only the size.

    Shape:
        ``x (N, C, h, w)``, ``skip (N, skip_channels, H, W)`` with ``H`` in ``{2h - 1, 2h}``
        (same for ``W``) -> ``(N, out_channels, H, W)``.
    """

    needs_pool = True

    def __init__(
        self, in_channels: int, skip_channels: int, out_channels: int, *, pool: LDWPool2d, skip: bool = True
    ) -> None:
        super().__init__()
        if self.needs_bands and pool.channels is None:
            raise ValueError(f"{type(self).__name__} needs a pool built for a known number of channels")
        self.bands = pool.channels if self.needs_bands else in_channels // 2
        self.project = nn.Conv2d(in_channels, self.bands if self.needs_bands else 4 * self.bands, 1)
        self.unpool = LDWUnpool2d(pool)
        self._add_merge(self.bands, skip_channels, out_channels, skip)

    def forward(self, x: Tensor, skip: Tensor, bands: Tensor | None = None) -> Tensor:
        y = self.project(x)
        if self.needs_bands:
            if bands is None:
                raise ValueError(f"{type(self).__name__} needs the encoder's subbands of this level")
            y = torch.cat([y, bands[:, self.bands :]], 1)
        return self.merge(self.unpool(y, output_size=skip.shape[-2:]), skip)


class LDWDetailUp(LDWUp):
    """:class:`LDWUp` where the decoder gives only ``LL`` and the encoder's stored ``LH, HL, HH``
    of the same level fill the detail bands (as in WaveSNet and LiftPool).

    The 1x1 conv maps ``C`` channels to the ``P`` channels of the pool's input. The
    arguments are those of :class:`LDWUp`; ``pool.channels`` must be set.

    Shape:
        ``x (N, C, h, w)``, ``skip (N, skip_channels, H, W)`` and ``bands (N, 4P, h, w)``
        (the pool's output) -> ``(N, out_channels, H, W)``.
    """

    needs_bands = True
