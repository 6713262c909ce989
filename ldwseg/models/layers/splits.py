"""The 2x2 split of a down block: ``C`` channels to ``4C`` at half size, with or without a wavelet.

A down block that splits uses either the LDW pool (Eqs. 3-8: four subbands
``[LL | LH | HL | HH]``) or its non-wavelet twin, space-to-depth (the four polyphase
components of each channel, as in SPD-Conv). With the fixed Haar filters the subbands
are an orthogonal 4x4 mix of the phases of each 2x2 block, which the next conv absorbs:
the two splits then give the same function class, and only learned filters (``K >= 4``)
can tell them apart. :class:`PoolOptions` holds the options of every LDW pool of a UNet.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...pooling import EnergyAttention, LDWPool2d
from ...pooling.capture import _static_size
from ...pooling.functional import pad_to_even
from .options import PoolOptions

__all__ = [
    "SPLITS", "SpaceToDepth", "depth_to_space", "make_attention", "make_pool", "make_split",
    "space_to_depth",
]  # fmt: skip

SPLITS = ("ldw", "spd")
"""The splits :func:`make_split` builds: the LDW pool and space-to-depth."""


def make_pool(channels: int, pool: PoolOptions) -> LDWPool2d:
    """The :class:`~ldwseg.LDWPool2d` over ``channels`` channels that ``pool`` describes."""
    return LDWPool2d(
        channels, wavelet=pool.wavelet, kernel_size=pool.kernel_size, constraint=pool.constraint,
        trainable=pool.learn_filters,
    )  # fmt: skip


def make_attention(channels: int, pool: PoolOptions) -> nn.Module:
    """Energy attention over ``channels`` channels when ``pool.attention``, else the identity."""
    return EnergyAttention(channels) if pool.attention else nn.Identity()


def space_to_depth(x: Tensor, *, phase_major: bool = False) -> Tensor:
    """The four polyphase components ``x[..., p::2, q::2]`` of each channel, at half size.

    Odd sides are first padded to even by repeating the last row or column, as the LDW
    pool pads (:func:`~ldwseg.pooling.functional.pad_to_even`).

    Args:
        x: ``(N, C, H, W)``.
        phase_major: order the channels ``[phase 0 | phase 1 | phase 2 | phase 3]``
            (``C`` each, phase ``2p + q``), like the LDW subband blocks; default: the
            order of :func:`torch.nn.functional.pixel_unshuffle`, channel ``4c + 2p + q``.

    Shape:
        ``(N, C, H, W) -> (N, 4C, ceil(H/2), ceil(W/2))``.

    Example:
        >>> import torch
        >>> space_to_depth(torch.arange(4.0).view(1, 1, 2, 2)).flatten()
        tensor([0., 1., 2., 3.])
    """
    y = F.pixel_unshuffle(pad_to_even(x), 2)
    if not phase_major:
        return y
    # a gather of constant indices, not view/transpose: a trace would freeze their sizes
    c = _static_size(y.shape[1]) // 4
    return y.index_select(1, torch.arange(4 * c, device=y.device).view(c, 4).T.reshape(-1))


def depth_to_space(y: Tensor) -> Tensor:
    """The inverse of :func:`space_to_depth` with ``phase_major=True``, before any crop.

    Shape:
        ``(N, 4C, h, w) -> (N, C, 2h, 2w)``; channel block ``2p + q`` lands on ``[p::2, q::2]``.

    Example:
        >>> import torch
        >>> x = torch.randn(2, 3, 6, 4)
        >>> torch.equal(depth_to_space(space_to_depth(x, phase_major=True)), x)
        True
    """
    n, c4, h, w = y.shape
    return F.pixel_shuffle(y.view(n, 4, c4 // 4, h, w).transpose(1, 2).reshape(n, c4, h, w), 2)


class SpaceToDepth(nn.Module):
    """:func:`space_to_depth` as a module (SPD-Conv's space-to-depth layer; no parameters).

    Args:
        phase_major: see :func:`space_to_depth`.
    """

    def __init__(self, *, phase_major: bool = False) -> None:
        super().__init__()
        self.phase_major = phase_major

    def forward(self, x: Tensor) -> Tensor:
        return space_to_depth(x, phase_major=self.phase_major)

    def extra_repr(self) -> str:
        return f"phase_major={self.phase_major}"


def make_split(split: str, channels: int, pool: PoolOptions) -> nn.Module:
    """The split ``split`` (one of :data:`SPLITS`) of ``channels`` channels.

    ``"ldw"`` is the LDW pool that ``pool`` describes; ``"spd"`` is space-to-depth in
    the subbands' channel layout (phase-major), so that a conv grouped by subband on the
    LDW side is grouped by phase on the SPD side.
    """
    if split == "ldw":
        return make_pool(channels, pool)
    if split == "spd":
        return SpaceToDepth(phase_major=True)
    raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
