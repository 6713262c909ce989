"""How the polyphase fast path (:mod:`ldwseg.pooling.polyphase`) lays out a map and cuts it into pieces.

Memory: a map is processed in pieces of about :data:`CHUNK_BYTES` (a few samples, or a block of
channels of one sample) through scratch buffers of that size allocated once per call, so
the only input-sized allocations are the results (the output, the input gradient). A
piece's planes carry a periodic margin of ``m - 1`` rows and columns, so every shifted
product reads a view of them.

Layouts: NCHW and channels-last maps are read and written in place, and every result has
its input's layout. A map is viewed as ``(N, Co, h, 2, w, 2, Ci)`` and its subbands as
``(N, 4, Co, h, w, Ci)``, with ``(Co, Ci) = (C, 1)`` in NCHW memory and ``(1, C)`` in
channels-last memory; the planes of a piece are ``(n, 4, Co, h, w, Ci)`` in the same order,
so the same products serve both layouts. In NCHW memory a piece's bands are rows that the
products read and write directly; channels-last bands go through a scratch buffer, by
copies of runs of ``C`` contiguous values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from .huge_pages import advise_huge_pages

__all__ = ["CHUNK_BYTES", "Pieces", "bands_view", "buffer_view", "empty_in_layout", "image_view", "is_channels_last"]

CHUNK_BYTES = 2**21
"""The planes of one piece on the CPU: small enough that the scratch buffers stay in cache."""


def is_channels_last(t: Tensor) -> bool:
    """Whether ``t`` is channels-last in memory and not also NCHW-contiguous (``C = 1`` or ``H = W = 1``)."""
    return not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last)


def empty_in_layout(like: Tensor, shape: Sequence[int], channels_last: bool) -> Tensor:
    """A new result of the op in the given layout; large CPU results get huge pages (:mod:`.huge_pages`)."""
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    return advise_huge_pages(torch.empty(shape, dtype=like.dtype, device=like.device, memory_format=memory_format))


def image_view(x: Tensor, channels_last: bool) -> Tensor:
    """The ``(N, Co, h, 2, w, 2, Ci)`` view of a map ``(N, C, 2h, 2w)``."""
    n, c, h2, w2 = x.shape
    if channels_last:
        return x.permute(0, 2, 3, 1).view(n, 1, h2 // 2, 2, w2 // 2, 2, c)
    return x.view(n, c, h2 // 2, 2, w2 // 2, 2, 1)


def bands_view(y: Tensor, channels_last: bool) -> Tensor:
    """The ``(N, 4, Co, h, w, Ci)`` view of subbands ``(N, 4C, h, w)`` ordered ``[LL | LH | HL | HH]``."""
    n, c4, h, w = y.shape
    if channels_last:
        return y.permute(0, 2, 3, 1).view(n, h, w, 4, 1, c4 // 4).permute(0, 3, 4, 1, 2, 5)
    return y.view(n, 4, c4 // 4, h, w, 1)


class Pieces:
    """How a map with subbands of shape ``(N, 4C, h, w)`` is cut: ``samples`` samples of all
    channels, or ``channels`` channels of one sample, about ``CHUNK_BYTES`` of planes each on
    the CPU (where the scratch buffers then stay in cache); the whole map elsewhere."""

    def __init__(self, y_shape: Sequence[int], like: Tensor, channels_last: bool, pad: int) -> None:
        n, c, self.h, self.w = y_shape[0], y_shape[1] // 4, y_shape[2], y_shape[3]
        self.channels_last, self.pad, self.like = channels_last, pad, like
        per_channel = 4 * self.h * self.w * like.element_size()
        if like.device.type != "cpu":
            self.samples, self.channels = n, c
        elif c * per_channel <= CHUNK_BYTES:
            self.samples, self.channels = min(n, CHUNK_BYTES // (c * per_channel)), c
        else:
            self.samples, self.channels = 1, max(1, CHUNK_BYTES // per_channel)
        self.whole_samples = self.channels == c

    def cut(self, view: Tensor, image: bool) -> list[Tensor]:
        """The pieces of an :func:`image_view` (``image=True``) or :func:`bands_view` view, in the same order."""
        if self.whole_samples:
            return list(view.split(self.samples))
        dim = (6 if image else 5) if self.channels_last else (1 if image else 2)
        return [piece for sample in view.split(1) for piece in sample.split(self.channels, dim)]

    def scratch(self, *needed: bool) -> list[Tensor | None]:
        """One flat buffer per ``True`` in ``needed`` (``None`` for the others), each large enough
        for the padded planes of a piece; all of them are one allocation."""
        numel = self.samples * 4 * self.channels * (self.h + self.pad) * (self.w + self.pad)
        block = iter(torch.empty((sum(needed), numel), dtype=self.like.dtype, device=self.like.device).unbind(0))
        return [next(block) if need else None for need in needed]


def buffer_view(flat: Tensor, shape: Sequence[int]) -> Tensor:
    return flat[: math.prod(shape)].view(shape)
