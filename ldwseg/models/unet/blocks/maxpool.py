"""Max pooling and the transposed conv: the paper's UNet baseline."""

from __future__ import annotations

from torch import Tensor, nn

from .base import PoolConvDown, UpBlock, match_size

__all__ = ["DeconvUp", "MaxPoolDown"]


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
