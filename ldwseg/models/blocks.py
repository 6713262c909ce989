"""UNet building blocks: the double conv, and down/up samplers chosen by name.

Down blocks take ``(in_channels, out_channels)`` and return the half-size features and,
for LDW, the pool's subbands (which the ``ldw-detail`` decoder reuses). Up blocks take
``(in_channels, skip_channels, out_channels)`` and any skip size: they restore exactly
the skip's height and width, so no input size needs to be divisible by ``2^depth``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..pooling import EnergyAttention, LDWPool2d, LDWUnpool2d

__all__ = ["DoubleConv", "MaxPoolDown", "LDWDown", "DeconvUp", "LDWUp"]


class DoubleConv(nn.Sequential):
    """(3x3 conv, BatchNorm, ReLU) twice, as in Ronneberger et al."""

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
    """``MaxPool2d(2)`` (ceil mode, so odd sizes give ``ceil(H/2)``), then the double conv."""

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
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        wavelet: str = "haar",
        kernel_size: int | None = None,
        constraint: str = "paper",
        attention: bool = True,
        efficient: bool = False,
    ) -> None:
        super().__init__()
        pooled = in_channels // 4 if efficient else in_channels
        self.reduce = nn.Conv2d(in_channels, pooled, 1, bias=False) if efficient else nn.Identity()
        self.pool = LDWPool2d(pooled, wavelet=wavelet, kernel_size=kernel_size, constraint=constraint)
        self.attention = EnergyAttention(4 * pooled) if attention else nn.Identity()
        self.conv = DoubleConv(4 * pooled, out_channels)

    @property
    def pooled_channels(self) -> int:
        return self.pool.channels

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        bands = self.pool(self.reduce(x))
        return self.conv(self.attention(bands)), bands


def _match(x: Tensor, size: torch.Size) -> Tensor:
    """Crop (or zero-pad) the last two dims of ``x`` to ``size``."""
    dh, dw = size[0] - x.shape[-2], size[1] - x.shape[-1]
    if dh == 0 and dw == 0:
        return x
    return F.pad(x, (0, dw, 0, dh))


class DeconvUp(nn.Module):
    """2x2 transposed conv (C -> C/2), cropped to the skip, concatenated, double conv."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int, *, skip: bool = True) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, in_channels // 2, 2, stride=2)
        self.skip = skip
        self.conv = DoubleConv(in_channels // 2 + (skip_channels if skip else 0), out_channels)

    def forward(self, x: Tensor, skip: Tensor, bands: Tensor | None = None) -> Tensor:
        x = _match(self.up(x), skip.shape[-2:])
        return self.conv(torch.cat([x, skip], 1) if self.skip else x)


class LDWUp(nn.Module):
    """Reverse LDW pooling with the filters of the paired encoder pool (tied).

    ``detail=False``: a 1x1 conv maps the decoder features to four subbands of
    ``C'`` channels each, which the reverse pool brings to the skip's size.
    ``detail=True``: the decoder supplies only ``LL`` and the encoder's stored
    ``LH, HL, HH`` of the same level fill the detail bands (as WaveSNet and LiftPool).
    """

    def __init__(
        self,
        in_channels: int,
        skip_channels: int,
        out_channels: int,
        *,
        pool: LDWPool2d,
        pooled_channels: int,
        detail: bool = False,
        skip: bool = True,
    ) -> None:
        super().__init__()
        self.detail = detail
        self.bands = pooled_channels if detail else in_channels // 2
        self.project = nn.Conv2d(in_channels, self.bands if detail else 4 * self.bands, 1)
        self.unpool = LDWUnpool2d(pool)
        self.skip = skip
        self.conv = DoubleConv(self.bands + (skip_channels if skip else 0), out_channels)

    def forward(self, x: Tensor, skip: Tensor, bands: Tensor | None = None) -> Tensor:
        y = self.project(x)
        if self.detail:
            if bands is None:
                raise ValueError("LDWUp(detail=True) needs the encoder's subbands of this level")
            y = torch.cat([y, bands[:, self.bands :]], 1)
        x = self.unpool(y, output_size=skip.shape[-2:])
        return self.conv(torch.cat([x, skip], 1) if self.skip else x)
