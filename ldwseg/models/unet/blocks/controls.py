"""Controls for the LDW designs: downsamplers without a learnable wavelet, and the sub-pixel decoder.

Each LDW result needs a twin that differs only in what is tested:

* :class:`SpaceToDepthDown` (``spd``) is the twin of :class:`~ldwseg.models.unet.blocks.ldw.LDWAllBandsDown`
  (``ldw``): the same convs on the four polyphase components instead of the four
  subbands. With the Haar filters the subbands are an orthogonal 4x4 mix of the phases,
  which the next conv absorbs, so ``ldw`` with fixed Haar filters *is* ``spd``
  (SPD-Conv: Sunkara & Luo, "No more strided convolutions or pooling", ECML-PKDD 2022).
* :class:`AvgPoolDown` (``avgpool``) is the twin of max pooling and, up to a factor 2 the
  BatchNorm absorbs, the Haar LL band of ``ldw-ll``.
* :class:`StridedConvDown` (``conv``) learns its downsampling freely (Springenberg et al.,
  "Striving for simplicity: the all convolutional net", ICLR 2015 workshop).
* :class:`BlurPoolDown` (``blurpool``) is Zhang's anti-aliased max pooling, the fixed-filter
  twin of ``ldw-maxblur``.
* :class:`ShuffleUp` (``shuffle``) is the twin of :class:`~ldwseg.models.unet.blocks.ldw.LDWUp`:
  the same 1x1 conv to four ``C/2``-channel maps, put back by depth-to-space (sub-pixel
  convolution: Shi et al., CVPR 2016) instead of the reverse pool.

None of these has an LDW pool or subbands, so the LDW decoders cannot follow them and the
filter options do not apply. Energy attention (``model.attention``) applies to ``spd``
only, on its ``4C`` phases as ``ldw`` applies it to its subbands; the others have a
single ``C``-channel map after downsampling, like max pooling, which has none.
"""

from __future__ import annotations

from torch import Tensor, nn

from ...layers.blur import BlurPool2d, MaxFilter2d
from ...layers.splits import depth_to_space
from .base import PoolConvDown, UpBlock, match_size
from .ldw import LDWAllBandsDown

__all__ = ["AvgPoolDown", "BlurPoolDown", "ShuffleUp", "SpaceToDepthDown", "SpaceToDepthTwin", "StridedConvDown"]


class SpaceToDepthTwin:
    """Mixin that turns an LDW down block into its space-to-depth twin: the split is
    :func:`~ldwseg.models.layers.splits.space_to_depth` and no pool or subbands are left for the decoder."""

    split = "spd"
    ldw_pool = stores_bands = False


class SpaceToDepthDown(SpaceToDepthTwin, LDWAllBandsDown):
    """Space-to-depth (C -> 4C phases), optional energy attention, then the double conv on ``4C``.

    The non-wavelet twin of ``ldw``: the same parameters, ``efficient`` and attention
    included (SPD-Conv: Sunkara & Luo, ECML-PKDD 2022). Odd sizes are padded by
    repeating the last row/column, as the LDW pool pads. The channels are phase-major
    (``[x[0::2, 0::2] | x[0::2, 1::2] | x[1::2, 0::2] | x[1::2, 1::2]]``, ``C`` each).

    Args:
        in_channels: input channels ``C``; divisible by 4 when ``efficient``.
        out_channels: output channels.
        pool: only ``pool.attention`` applies.
        efficient: reduce ``C`` to ``C/4`` with a 1x1 conv first, as ``ldw`` does.

    Shape:
        ``(N, C, H, W) -> (N, out_channels, ceil(H/2), ceil(W/2))``, and ``None`` in place
        of subbands.
    """


class AvgPoolDown(PoolConvDown):
    """``AvgPool2d(2)`` in ceil mode, then the double conv: the twin of max pooling.

    On an odd side the last window averages the entries it holds, which equals the mean
    of the side padded by repeating its last row/column; so the output is half the Haar
    ``LL`` band that the LDW pool computes.

    Shape:
        ``(N, in_channels, H, W) -> (N, out_channels, ceil(H/2), ceil(W/2))``.
    """

    @staticmethod
    def downsampler(channels: int) -> nn.Module:
        return nn.AvgPool2d(2, ceil_mode=True)


class StridedConvDown(PoolConvDown):
    """3x3 conv at stride 2 (``C -> C``, padding 1, no bias), BatchNorm, ReLU, then the double conv.

    A learnable downsampling with no wavelet structure (Springenberg et al., ICLR 2015
    workshop). Its ``9C^2`` extra weights per level make it the largest of the controls.

    Shape:
        ``(N, in_channels, H, W) -> (N, out_channels, ceil(H/2), ceil(W/2))``.
    """

    @staticmethod
    def downsampler(channels: int) -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(channels, channels, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
        )


class BlurPoolDown(PoolConvDown):
    """MaxBlurPool: dense 2x2 max, binomial blur at stride 2, then the double conv.

    Zhang, "Making convolutional networks shift-invariant again", ICML 2019: the max at
    stride 1 keeps shift-equivariance and the fixed ``[1, 2, 1] / 4`` blur (outer product)
    anti-aliases the subsampling (see :mod:`ldwseg.models.layers.blur`). The fixed-filter twin
    of ``ldw-maxblur``.

    Shape:
        ``(N, in_channels, H, W) -> (N, out_channels, ceil(H/2), ceil(W/2))``.
    """

    @staticmethod
    def downsampler(channels: int) -> nn.Module:
        return nn.Sequential(MaxFilter2d(), BlurPool2d(channels))


class ShuffleUp(UpBlock):
    """1x1 conv (C -> 4 x C/2), depth-to-space, cropped to the skip, concatenated with it, double conv.

    The twin of :class:`~ldwseg.models.unet.blocks.ldw.LDWUp` with the same parameters: the four
    maps are the phases of the upsampled map instead of its subbands (sub-pixel
    convolution, Shi et al., "Real-time single image and video super-resolution using an
    efficient sub-pixel convolutional neural network", CVPR 2016). With the Haar filters
    the reverse pool is depth-to-space after an orthogonal 4x4 mix, which the 1x1 conv
    absorbs. The arguments and shapes are those of :class:`~ldwseg.models.unet.blocks.ldw.LDWUp`
    without ``pool``: it pairs with any down block.
    """

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int, *, skip: bool = True) -> None:
        super().__init__()
        self.bands = in_channels // 2
        self.project = nn.Conv2d(in_channels, 4 * self.bands, 1)
        self._add_merge(self.bands, skip_channels, out_channels, skip)

    def forward(self, x: Tensor, skip: Tensor, bands: Tensor | None = None) -> Tensor:
        return self.merge(match_size(depth_to_space(self.project(x)), skip.shape[-2:]), skip)
