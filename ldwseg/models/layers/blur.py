"""Anti-aliased downsampling (Zhang, "Making convolutional networks shift-invariant again", ICML 2019).

Zhang's MaxBlurPool splits max pooling into a dense max (``k = 2``, stride 1), which is
shift-equivariant, and a fixed low-pass blur evaluated at stride 2, which limits the
aliasing of the subsampling. Here the blur is his "Tri-3" binomial filter
``[1, 2, 1] / 4`` (outer product with itself in 2-D); its frequency response
``cos^2(w / 2)`` is 1 at ``w = 0`` (the mean is kept) and 0 at Nyquist. Both steps pad
by repeating the last row/column, as the LDW pool pads odd sizes, so that any
``H x W`` gives ``ceil(H/2) x ceil(W/2)`` with each output centred on a 2x2 block, as
``MaxPool2d(2, ceil_mode=True)`` is.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["BINOMIAL_3", "BlurPool2d", "MaxFilter2d", "blur_kernel", "blur_pool2d", "max_filter2d"]

BINOMIAL_3 = (1.0, 2.0, 1.0)
"""The 1-D taps of the blur, before normalisation to sum 1 (row 2 of Pascal's triangle)."""


def max_filter2d(x: Tensor) -> Tensor:
    """Dense 2x2 max: ``y[i, j] = max(x[i:i+2, j:j+2])``, the last row/column repeated; same size.

    Shape:
        ``(N, C, H, W) -> (N, C, H, W)``.
    """
    return F.max_pool2d(F.pad(x, (0, 1, 0, 1), mode="replicate"), 2, stride=1)


class MaxFilter2d(nn.Module):
    """:func:`max_filter2d` as a module (no parameters)."""

    def forward(self, x: Tensor) -> Tensor:
        return max_filter2d(x)


def blur_kernel(channels: int, *, dtype: torch.dtype | None = None, device: torch.device | None = None) -> Tensor:
    """The depthwise binomial kernel ``(channels, 1, 3, 3)``: ``b b^T`` with ``b = [1, 2, 1] / 4``."""
    taps = torch.tensor(BINOMIAL_3, dtype=dtype, device=device)
    taps = taps / taps.sum()
    return (taps[:, None] * taps[None, :]).expand(channels, 1, 3, 3).contiguous()


def blur_pool2d(x: Tensor, kernel: Tensor | None = None) -> Tensor:
    """Blur each channel with the binomial kernel and keep every second row and column.

    Args:
        x: ``(N, C, H, W)``.
        kernel: the depthwise kernel ``(C, 1, 3, 3)``; default :func:`blur_kernel`.

    Shape:
        ``(N, C, H, W) -> (N, C, ceil(H/2), ceil(W/2))``: output ``i`` is
        ``(x[2i-1] + 2 x[2i] + x[2i+1]) / 4`` along each side, ``x[-1] = x[0]`` and
        ``x[H] = x[H-1]``.

    Example:
        >>> blur_pool2d(torch.ones(1, 2, 5, 4)).shape
        torch.Size([1, 2, 3, 2])
    """
    c = x.shape[1]
    if kernel is None:
        kernel = blur_kernel(c, dtype=x.dtype, device=x.device)
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel.to(x.dtype), stride=2, groups=c)


class BlurPool2d(nn.Module):
    """:func:`blur_pool2d` with the kernel as a non-persistent buffer (no state-dict entry).

    Args:
        channels: channels ``C`` of the input.

    Shape:
        ``(N, C, H, W) -> (N, C, ceil(H/2), ceil(W/2))``.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.register_buffer("kernel", torch.empty(channels, 1, 3, 3), persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Fill the kernel with the binomial blur (:func:`blur_kernel`)."""
        with torch.no_grad():
            self.kernel.copy_(blur_kernel(self.channels))

    def forward(self, x: Tensor) -> Tensor:
        return blur_pool2d(x, self.kernel)

    def extra_repr(self) -> str:
        return str(self.channels)
