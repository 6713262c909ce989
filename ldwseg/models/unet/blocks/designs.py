"""LDW down blocks at (about) the max-pool UNet's parameters, each with a control twin.

``ldw`` hands all ``4C`` subbands to the next conv, which then has four times the
max-pool UNet's weights. The literature reports gains from wavelet downsampling at equal
or fewer parameters with these designs:

* ``ldw-ll`` (:class:`LDWLowBandDown`): the conv sees only ``LL``, the detail bands go to
  the decoder (WaveCNet: Li et al., "Wavelet integrated CNNs for noise-robust image
  classification", CVPR 2020; WaveSNet: Li et al., "Wavelet-based segmentation
  network", 2020). Twins: ``avgpool`` (Haar ``LL`` / 2), ``learn_filters=false``.
* ``ldw-maxblur`` (:class:`LDWMaxBlurDown`): Zhang's MaxBlurPool with the LDW low-pass as
  the blur (WaveCNet's replacement of max pooling, a dense max then the DWT's ``LL``).
  Twins: ``blurpool`` (fixed binomial blur), ``learn_filters=false``.
* ``ldw-hwd`` (:class:`LDWBandMixDown`): all subbands, reduced ``4C -> C`` by a 1x1 conv
  (HWD: Xu et al., "Haar wavelet downsampling: a simple but effective downsampling
  module for semantic segmentation", Pattern Recognition 2023). Twin: ``spd-hwd``.
* ``ldw-grouped`` (:class:`LDWGroupedDown`): all subbands, the first conv grouped by
  subband, so it has exactly the max-pool conv's weights. Twin: ``spd-grouped``.
* ``ldw-efficient`` (:class:`LDWReduceFirstDown`): all subbands of ``C/4`` channels, reduced
  by a 1x1 conv before the pool, so the next conv sees ``C`` maps as after max pooling
  (the paper's section 3.4; ``down=ldw, efficient=true``). The default of ``ldwseg
  train``, at the max-pool UNet's parameters (+0.3%).
  Twin: ``spd-efficient``.
* ``ldw-shortcut`` (:class:`LDWShortcutDown`): the max-pool block with the LDW pool on a
  residual shortcut (the LDW authors' ``Bottleneck_LDW``, paper section 3.4 and Fig. 4).
  Twin: ``spd-shortcut``.

The ``spd-*`` twins (:class:`~ldwseg.models.unet.blocks.controls.SpaceToDepthTwin`) replace the
pool by space-to-depth and keep everything else, energy attention included. To have
something to learn, use filters of ``K >= 4`` taps, e.g. ``model.wavelet=db2`` with
``model.constraint=lattice`` (the Haar bank is the only orthogonal one with ``K = 2``).
"""

from __future__ import annotations

from typing import ClassVar

import torch.nn.functional as F
from torch import Tensor, nn

from ...layers.blur import max_filter2d
from ...layers.options import PoolOptions
from ...layers.splits import make_attention, make_pool, make_split
from .base import DoubleConv, DownBlock
from .controls import SpaceToDepthTwin
from .ldw import LDWAllBandsDown

__all__ = [
    "LDWReduceFirstDown", "LDWGroupedDown", "LDWLowBandDown", "LDWMaxBlurDown", "LDWBandMixDown", "LDWShortcutDown",
    "SPDReduceFirstDown", "SPDGroupedDown", "SPDBandMixDown", "SPDShortcutDown",
]  # fmt: skip


class LDWLowBandDown(DownBlock):
    """LDW pooling, then the double conv on the ``LL`` band only (``C`` channels).

    The encoder has exactly the max-pool UNet's convs (plus ``2K`` filter taps per level);
    the block returns all four subbands, so ``up=ldw-detail`` puts the encoder's
    ``LH, HL, HH`` back in the decoder (WaveCNet / WaveSNet, Li et al. 2020). With
    ``learn_filters=false`` and Haar filters, ``LL`` is twice ``avgpool``'s output.

    Energy attention does not apply: with a single band its gate would be a plain
    squeeze-and-excitation layer that the twins (``avgpool``, ``blurpool``) lack.

    Args:
        in_channels: input channels ``C``.
        out_channels: output channels.
        pool: the options of the :class:`~ldwseg.LDWPool2d` (``attention`` is not used).

    Shape:
        ``(N, C, H, W) -> (N, out_channels, ceil(H/2), ceil(W/2))``, and the subbands
        ``(N, 4C, ceil(H/2), ceil(W/2))``.
    """

    options = ("pool",)
    ldw_pool = stores_bands = True
    dense_max: ClassVar[bool] = False
    """Take the dense 2x2 max (:func:`~ldwseg.models.layers.blur.max_filter2d`) before the pool."""

    def __init__(self, in_channels: int, out_channels: int, *, pool: PoolOptions = PoolOptions()) -> None:
        super().__init__()
        self.pool = make_pool(in_channels, pool)
        self.conv = DoubleConv(in_channels, out_channels)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        bands = self.pool(max_filter2d(x) if self.dense_max else x)
        return self.conv(bands[:, : self.pool.channels]), bands


class LDWMaxBlurDown(LDWLowBandDown):
    """Dense 2x2 max, LDW pooling keeping ``LL`` for the conv: MaxBlurPool with a learnable blur.

    Zhang (ICML 2019) blurs the dense max with a fixed binomial filter before
    subsampling; here the blur is the pool's low-pass ``W^L`` (``LL`` is ``W^L`` along
    both sides at stride 2), learned from its wavelet initialisation. The arguments,
    shapes and outputs are those of :class:`LDWLowBandDown`; the subbands are those of
    the max-filtered map. Twins: ``blurpool`` and this block with ``learn_filters=false``
    (Haar: Zhang's "Rect-2" box blur).
    """

    dense_max = True


class LDWBandMixDown(LDWAllBandsDown):
    """LDW pooling (C -> 4C), optional energy attention, 1x1 conv 4C -> C + BN + ReLU, double conv.

    The feature-encoding step of HWD (Xu et al., Pattern Recognition 2023), and of the
    LDW authors' stem: all four subbands reach the conv, reduced to ``C`` channels
    first, for ``4C^2`` extra weights per level. The arguments and shapes are those of
    :class:`~ldwseg.models.unet.blocks.ldw.LDWAllBandsDown` (``efficient`` included). Twin: ``spd-hwd``.
    """

    reduction = True


class SPDBandMixDown(SpaceToDepthTwin, LDWBandMixDown):
    """:class:`LDWBandMixDown` on the space-to-depth phases: ``spd-hwd``, the twin of ``ldw-hwd``."""


class LDWGroupedDown(LDWAllBandsDown):
    """LDW pooling (C -> 4C), optional energy attention, double conv whose first conv is grouped by subband.

    With ``groups=4`` each quarter of the output channels sees one subband, so the first
    conv has ``9 * C * out`` weights, those of the max-pool UNet's first conv. The
    arguments and shapes are those of :class:`~ldwseg.models.unet.blocks.ldw.LDWAllBandsDown`;
    ``out_channels`` must be divisible by 4. Twin: ``spd-grouped`` (grouped by phase).
    """

    groups = 4
    out_multiple = 4


class SPDGroupedDown(SpaceToDepthTwin, LDWGroupedDown):
    """:class:`LDWGroupedDown` on the space-to-depth phases: ``spd-grouped``, the twin of ``ldw-grouped``."""


class LDWReduceFirstDown(LDWAllBandsDown):
    """:class:`~ldwseg.models.unet.blocks.ldw.LDWAllBandsDown` with its reduction always on: a 1x1 conv
    ``C -> C/4``, the pool (``C/4 -> C`` subbands), then the double conv on ``C`` maps.

    ``down=ldw-efficient`` is ``down=ldw, efficient=true`` under its own name: the same
    modules, so the same state dict. The conv after the pool has the max-pool conv's
    weights; the 1x1 conv adds ``C^2 / 4`` per level (+0.3% at width 16, depth 4).

    Args:
        in_channels: input channels ``C``, divisible by 4.
        out_channels: output channels.
        pool: the options of the :class:`~ldwseg.LDWPool2d` and its attention.

    Shape:
        ``(N, C, H, W) -> (N, out_channels, ceil(H/2), ceil(W/2))``, and the subbands
        ``(N, C, ceil(H/2), ceil(W/2))``.
    """

    options = ("pool",)
    reduces = True

    def __init__(self, in_channels: int, out_channels: int, *, pool: PoolOptions = PoolOptions()) -> None:
        super().__init__(in_channels, out_channels, pool=pool, efficient=True)


class SPDReduceFirstDown(SpaceToDepthTwin, LDWReduceFirstDown):
    """:class:`LDWReduceFirstDown` on the space-to-depth phases: ``spd-efficient``, the twin of ``ldw-efficient``
    (``down=spd, efficient=true``)."""


class LDWShortcutDown(DownBlock):
    """The max-pool block plus an LDW shortcut: ``relu(conv(maxpool(x)) + BN(1x1(pool(x))))``.

    The main path is :class:`~ldwseg.models.unet.blocks.maxpool.MaxPoolDown` with its last ReLU moved
    after the sum; the shortcut is the LDW pool, optional energy attention on its ``4C``
    subbands and a 1x1 conv ``4C -> out`` with BatchNorm, as the LDW authors put the
    pool on the residual shortcut of their ``Bottleneck_LDW`` (section 3.4, Fig. 4). The
    shortcut adds ``4C * out`` weights per level. Twin: ``spd-shortcut``.

    Args:
        in_channels: input channels ``C``.
        out_channels: output channels.
        pool: the options of the :class:`~ldwseg.LDWPool2d` and its attention.

    Shape:
        ``(N, C, H, W) -> (N, out_channels, ceil(H/2), ceil(W/2))``, and the subbands
        ``(N, 4C, ceil(H/2), ceil(W/2))``.
    """

    options = ("pool",)
    ldw_pool = stores_bands = True
    split: ClassVar[str] = "ldw"

    def __init__(self, in_channels: int, out_channels: int, *, pool: PoolOptions = PoolOptions()) -> None:
        super().__init__()
        self.max = nn.MaxPool2d(2, ceil_mode=True)
        self.conv = DoubleConv(in_channels, out_channels)
        self.pool = make_split(self.split, in_channels, pool)
        self.attention = make_attention(4 * in_channels, pool)
        self.shortcut = nn.Sequential(
            nn.Conv2d(4 * in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels)
        )

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        bands = self.pool(x)
        y = self.conv.pre_activation(self.max(x)) + self.shortcut(self.attention(bands))
        return F.relu(y), bands if self.stores_bands else None


class SPDShortcutDown(SpaceToDepthTwin, LDWShortcutDown):
    """:class:`LDWShortcutDown` with space-to-depth on the shortcut: ``spd-shortcut``, the twin of ``ldw-shortcut``."""
