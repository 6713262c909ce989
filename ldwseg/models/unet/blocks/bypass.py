"""Max pooling with a detail bypass: the max-pool twin of ``ldw-ll`` with ``up=ldw-detail``.

``ldw-ll`` hands the double conv the ``LL`` band and stores ``LH, HL, HH`` for the
decoder, which rebuilds its level from its own ``LL`` and those three bands. Compared
with a max-pool/deconv autoencoder that passes nothing around its bottleneck, that is
not like for like. This pair passes the same amount of side information around max
pooling:

* ``maxpool-detail`` (:class:`MaxPoolDetailDown`): ``m = maxpool(x)``, the double conv on
  ``m``, and the residual ``r = x - up(m)`` stored for the decoder (``up``: each value
  repeated over its 2x2 window). Per 2x2 window of each channel ``r`` holds four numbers,
  one of them 0 (the maximum's, SegNet's stored index), so three numbers and an index
  cross, against the three detail coefficients of ``ldw-ll``.
* ``unpool-detail`` (:class:`ResidualUp`): a 1x1 conv maps the decoder features to the
  level's ``C`` channels as an estimate of ``m``, which is repeated over the windows and
  added to ``r``; with the true ``m`` this gives ``x`` back exactly, as the reverse LDW
  pool gives ``x`` from the true ``LL`` and the stored details.

Both have exactly the parameters of ``ldw-ll`` / ``ldw-detail`` without the filter taps.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import UpBlock, match_size
from .maxpool import MaxPoolDown

__all__ = ["MaxPoolDetailDown", "ResidualUp", "repeat_windows"]


def repeat_windows(m: Tensor, size: torch.Size) -> Tensor:
    """Each value of ``m`` repeated over its 2x2 window, cropped to ``size`` (the pooled map's ``H, W``)."""
    return F.interpolate(m, scale_factor=2.0, mode="nearest")[..., : size[0], : size[1]]


class MaxPoolDetailDown(MaxPoolDown):
    """``MaxPool2d(2)`` in ceil mode, then the double conv; stores ``x - up(maxpool(x))`` for ``up=unpool-detail``.

    Args:
        in_channels: input channels ``C``.
        out_channels: output channels.

    Shape:
        ``(N, C, H, W) -> (N, out_channels, ceil(H/2), ceil(W/2))``, and the residual
        ``(N, C, H, W)``, which is 0 at each window's maximum.
    """

    stores_bands = True
    band_kind = "residual"

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        m = self.pool(x)
        return self.conv(m), x - repeat_windows(m, x.shape[-2:])


class ResidualUp(UpBlock):
    """1x1 conv to the level's ``C`` channels, repeated over 2x2 windows, plus the stored residual, double conv.

    The decoder of :class:`MaxPoolDetailDown`: ``x_hat = up(conv1x1(x)) + r``. The
    arguments are those of :class:`~ldwseg.models.unet.blocks.maxpool.DeconvUp`; the level's ``C`` is
    ``skip_channels``, the channels of the encoder features that were pooled.

    Shape:
        ``x (N, in, h, w)``, ``skip (N, C, H, W)`` and the residual ``(N, C, H, W)`` ->
        ``(N, out_channels, H, W)``.
    """

    needs_bands = True
    band_kind = "residual"

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int, *, skip: bool = True) -> None:
        super().__init__()
        self.bands = skip_channels
        self.project = nn.Conv2d(in_channels, skip_channels, 1)
        self._add_merge(skip_channels, skip_channels, out_channels, skip)

    def forward(self, x: Tensor, skip: Tensor, bands: Tensor | None = None) -> Tensor:
        if bands is None:
            raise ValueError(f"{type(self).__name__} needs the residual its level's maxpool-detail block stores")
        size = skip.shape[-2:]
        estimate = match_size(repeat_windows(self.project(x), (2 * x.shape[-2], 2 * x.shape[-1])), size)
        return self.merge(estimate + bands, skip)
