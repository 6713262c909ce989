"""The LDW blocks: the paper's down block (all four subbands to the conv) and the reverse pools of the decoder."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from ....pooling import LDWPool2d, LDWUnpool2d
from ...layers.options import PoolOptions
from ...layers.splits import make_attention, make_split
from .base import DoubleConv, DownBlock, UpBlock, channel_reduction

__all__ = ["LDWAllBandsDown", "LDWDetailUp", "LDWUp"]


class LDWAllBandsDown(DownBlock):
    """LDW pooling (C -> 4C), optional energy attention, then the double conv.

    With ``efficient=True`` (the paper's section 3.4) a 1x1 conv first reduces C to C/4,
    so the pool returns C channels and the next conv does not grow. With Haar filters
    this is the function class of :class:`~ldwseg.models.unet.blocks.controls.SpaceToDepthDown`
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
    """The 2x2 split (:func:`~ldwseg.models.layers.splits.make_split`): the LDW pool, or space-to-depth for the twin."""
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
