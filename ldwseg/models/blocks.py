"""UNet building blocks: the double conv, the down blocks and the up blocks.

Down blocks take ``(in_channels, out_channels)`` and return the half-size features and,
for LDW, the pool's subbands (which :class:`LDWDetailUp` reuses). Up blocks take
``(in_channels, skip_channels, out_channels)`` and restore exactly the skip's height and
width, so no input size needs to be divisible by ``2^depth``.
:mod:`ldwseg.models.factory` names them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..pooling import EnergyAttention, LDWPool2d, LDWUnpool2d

__all__ = ["DoubleConv", "PoolOptions", "MaxPoolDown", "LDWDown", "DeconvUp", "LDWUp", "LDWDetailUp"]


@dataclass(frozen=True)
class PoolOptions:
    """The options of every LDW pool of a UNet.

    Args:
        wavelet: initial filters: a PyWavelets orthogonal wavelet name, ``"random"`` or
            ``"noise"`` (see :func:`~ldwseg.pooling.initial_filters`).
        kernel_size: filter length ``K``; ``None`` takes the wavelet's own length.
        constraint: ``"paper"`` (Eqs. 9-13), ``"orthogonal"`` or ``"lattice"``
            (:data:`~ldwseg.pooling.CONSTRAINTS`).
        attention: energy attention (Eqs. 16-17) after each pool (paper table 3).

    :func:`~ldwseg.models.check_unet` validates them.
    """

    wavelet: str = "haar"
    kernel_size: int | None = None
    constraint: str = "paper"
    attention: bool = True


class DoubleConv(nn.Sequential):
    """(3x3 conv, BatchNorm, ReLU) twice, as in Ronneberger et al.; the convs have no bias (BatchNorm has one).

    Args:
        in_channels: input channels.
        out_channels: channels of both convs.

    Shape:
        ``(N, in_channels, H, W) -> (N, out_channels, H, W)``.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class MaxPoolDown(nn.Module):
    """``MaxPool2d(2)`` in ceil mode, then the double conv.

    Args:
        in_channels: input channels.
        out_channels: output channels.

    Shape:
        ``(N, in_channels, H, W) -> (N, out_channels, ceil(H/2), ceil(W/2))``, and ``None``
        in place of subbands.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(2, ceil_mode=True)
        self.conv = DoubleConv(in_channels, out_channels)

    def forward(self, x: Tensor) -> tuple[Tensor, None]:
        return self.conv(self.pool(x)), None


class LDWDown(nn.Module):
    """LDW pooling (C -> 4C), optional energy attention, then the double conv.

    With ``efficient=True`` (the paper's section 3.4) a 1x1 conv first reduces C to C/4,
    so the pool returns C channels and the next conv does not grow.

    Args:
        in_channels: input channels ``C``; divisible by 4 when ``efficient``.
        out_channels: output channels.
        pool: the options of the :class:`~ldwseg.LDWPool2d` and its attention.
        efficient: reduce ``C`` to ``C/4`` with a 1x1 conv before the pool.

    Shape:
        ``(N, C, H, W) -> (N, out_channels, ceil(H/2), ceil(W/2))``, and the subbands
        ``(N, 4P, ceil(H/2), ceil(W/2))`` with ``P = C`` (``C/4`` when ``efficient``).
    """

    def __init__(
        self, in_channels: int, out_channels: int, *, pool: PoolOptions = PoolOptions(), efficient: bool = False
    ) -> None:
        super().__init__()
        if efficient and in_channels % 4:
            raise ValueError(f"LDWDown(efficient=True) pools in_channels / 4 channels; got in_channels={in_channels}")
        pooled = in_channels // 4 if efficient else in_channels
        self.reduce = nn.Conv2d(in_channels, pooled, 1, bias=False) if efficient else nn.Identity()
        self.pool = LDWPool2d(pooled, wavelet=pool.wavelet, kernel_size=pool.kernel_size, constraint=pool.constraint)
        self.attention = EnergyAttention(4 * pooled) if pool.attention else nn.Identity()
        self.conv = DoubleConv(4 * pooled, out_channels)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        bands = self.pool(self.reduce(x))
        return self.conv(self.attention(bands)), bands


def _match(x: Tensor, size: torch.Size) -> Tensor:
    """Pad (positive amounts) or crop (negative amounts) the bottom and right of ``x`` to ``size``."""
    dh, dw = size[0] - x.shape[-2], size[1] - x.shape[-1]
    if dh == 0 and dw == 0:
        return x
    return F.pad(x, (0, dw, 0, dh))


class DeconvUp(nn.Module):
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
        self.skip = skip
        self.conv = DoubleConv(in_channels // 2 + (skip_channels if skip else 0), out_channels)

    def forward(self, x: Tensor, skip: Tensor, bands: Tensor | None = None) -> Tensor:
        x = _match(self.up(x), skip.shape[-2:])
        return self.conv(torch.cat([x, skip], 1) if self.skip else x)


class LDWUp(nn.Module):
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

    detail: bool = False
    """Whether the detail bands come from the encoder (:class:`LDWDetailUp`) rather than the decoder."""

    def __init__(
        self, in_channels: int, skip_channels: int, out_channels: int, *, pool: LDWPool2d, skip: bool = True
    ) -> None:
        super().__init__()
        if self.detail and pool.channels is None:
            raise ValueError(f"{type(self).__name__} needs a pool built for a known number of channels")
        self.bands = pool.channels if self.detail else in_channels // 2
        self.project = nn.Conv2d(in_channels, self.bands if self.detail else 4 * self.bands, 1)
        self.unpool = LDWUnpool2d(pool)
        self.skip = skip
        self.conv = DoubleConv(self.bands + (skip_channels if skip else 0), out_channels)

    def forward(self, x: Tensor, skip: Tensor, bands: Tensor | None = None) -> Tensor:
        y = self.project(x)
        if self.detail:
            if bands is None:
                raise ValueError(f"{type(self).__name__} needs the encoder's subbands of this level")
            y = torch.cat([y, bands[:, self.bands :]], 1)
        x = self.unpool(y, output_size=skip.shape[-2:])
        return self.conv(torch.cat([x, skip], 1) if self.skip else x)


class LDWDetailUp(LDWUp):
    """:class:`LDWUp` where the decoder gives only ``LL`` and the encoder's stored ``LH, HL, HH``
    of the same level fill the detail bands (as in WaveSNet and LiftPool).

    The 1x1 conv maps ``C`` channels to the ``P`` channels of the pool's input. The
    arguments are those of :class:`LDWUp`; ``pool.channels`` must be set.

    Shape:
        ``x (N, C, h, w)``, ``skip (N, skip_channels, H, W)`` and ``bands (N, 4P, h, w)``
        (the pool's output) -> ``(N, out_channels, H, W)``.
    """

    detail = True
