"""The UNet of the paper's segmentation experiment, with max-pool or LDW samplers."""

from __future__ import annotations

from torch import Tensor, nn

from ..config import ModelConfig
from .blocks import DeconvUp, DoubleConv, LDWDown, LDWUp, MaxPoolDown

__all__ = ["UNet", "build_unet"]


class UNet(nn.Module):
    """Ronneberger's UNet: a double-conv stem, ``depth`` down blocks, ``depth`` up blocks.

    Args:
        in_channels: image channels.
        out_channels: classes (segmentation) or image channels (reconstruction).
        base_width: channels of the first level; level ``i`` has ``base_width * 2^i``.
        depth: number of downsamplings (4 in the paper).
        down: ``"maxpool"`` or ``"ldw"``.
        up: ``"deconv"``, ``"ldw"`` (reverse LDW pooling paired with the encoder pool
            of the same level) or ``"ldw-detail"`` (decoder gives LL, encoder gives the
            detail bands).
        skip: concatenate encoder features in the decoder (off for the autoencoder,
            so that everything passes through the pools and their reverse pools).
        wavelet, kernel_size, constraint: passed to every :class:`~ldwseg.LDWPool2d`.
        attention: energy attention after each LDW pool (paper table 3).
        efficient: 1x1 conv C -> C/4 before each LDW pool (paper section 3.4).

    Shape:
        ``(N, in_channels, H, W) -> (N, out_channels, H, W)`` for any ``H, W >= 1``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        base_width: int = 64,
        depth: int = 4,
        down: str = "ldw",
        up: str = "ldw",
        skip: bool = True,
        wavelet: str = "haar",
        kernel_size: int | None = None,
        constraint: str = "paper",
        attention: bool = True,
        efficient: bool = False,
    ) -> None:
        super().__init__()
        ModelConfig(
            down=down, up=up, base_width=base_width, depth=depth, wavelet=wavelet, kernel_size=kernel_size,
            constraint=constraint, attention=attention, efficient=efficient, skip=skip,
        ).validate()
        widths = [base_width * 2**i for i in range(depth + 1)]
        self.stem = DoubleConv(in_channels, widths[0])
        self.downs = nn.ModuleList()
        for cin, cout in zip(widths[:-1], widths[1:]):
            if down == "ldw":
                block = LDWDown(
                    cin, cout, wavelet=wavelet, kernel_size=kernel_size, constraint=constraint,
                    attention=attention, efficient=efficient,
                )
            else:
                block = MaxPoolDown(cin, cout)
            self.downs.append(block)
        self.ups = nn.ModuleList()
        for level in reversed(range(depth)):
            cin, cskip = widths[level + 1], widths[level]
            if up == "deconv":
                block = DeconvUp(cin, cskip, cskip, skip=skip)
            else:
                paired = self.downs[level]
                block = LDWUp(
                    cin, cskip, cskip, pool=paired.pool, pooled_channels=paired.pooled_channels,
                    detail=up == "ldw-detail", skip=skip,
                )
            self.ups.append(block)
        self.head = nn.Conv2d(widths[0], out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        skips, bands = [], []
        for block in self.downs:
            skips.append(x)
            x, sub = block(x)
            bands.append(sub)
        for block in self.ups:
            x = block(x, skips.pop(), bands.pop())
        return self.head(x)


def build_unet(cfg: ModelConfig, in_channels: int, out_channels: int) -> UNet:
    """The UNet described by a :class:`~ldwseg.config.ModelConfig`."""
    return UNet(
        in_channels, out_channels, base_width=cfg.base_width, depth=cfg.depth, down=cfg.down, up=cfg.up,
        skip=cfg.skip, wavelet=cfg.wavelet, kernel_size=cfg.kernel_size, constraint=cfg.constraint,
        attention=cfg.attention, efficient=cfg.efficient,
    )
