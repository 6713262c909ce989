"""A network run on its input padded at the bottom and right to a multiple of a stride, its output cropped back.

A UNet of depth ``d`` or an smp encoder of output stride ``s`` splits an odd height or
width somewhere on the way down; padding the input to a multiple of ``2**d`` (or ``s``)
first makes every level's size even. The pad amounts are computed from the input's
shape, so a traced (ONNX) model keeps height and width symbolic.
"""

from __future__ import annotations

from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor

__all__ = ["pad_to_multiple", "run_padded"]


def pad_to_multiple(x: Tensor, multiple: int, *, mode: str = "constant") -> Tensor:
    """``x (N, C, H, W)`` padded at the bottom and right to the next multiples of ``multiple``.

    ``mode`` is :func:`torch.nn.functional.pad`'s: ``"constant"`` (zeros) or
    ``"replicate"`` (the last row and column repeated, as the LDW pool pads an odd size).
    """
    height, width = x.shape[-2], x.shape[-1]
    return F.pad(
        x, (0, (multiple - width % multiple) % multiple, 0, (multiple - height % multiple) % multiple), mode=mode
    )


def run_padded(net: Callable[[Tensor], Tensor], x: Tensor, multiple: int, *, mode: str = "constant") -> Tensor:
    """``net`` on :func:`pad_to_multiple` of ``x``, cropped back to ``x``'s height and width."""
    height, width = x.shape[-2], x.shape[-1]
    return net(pad_to_multiple(x, multiple, mode=mode))[..., :height, :width]
