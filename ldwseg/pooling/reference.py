"""Readable reference implementation of LDW pooling, literally Eqs. 3-8.

Kept for tests and documentation; :mod:`ldwseg.pooling.functional` is the fast one.
The horizontal pass (Eqs. 3-4) correlates every row with ``W^L`` and ``W^H`` at
stride 2, the vertical pass (Eqs. 5-8) every column of the two results. Periodic
extension is an explicit circular pad of ``K - 2`` samples (wrapped as often as needed
for maps smaller than the filter). Synthesis is obtained as the vector-Jacobian
product of analysis, i.e. its adjoint by definition.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .functional import pad_to_even

__all__ = ["ldw_analysis_reference", "ldw_synthesis_reference"]


def _periodic_extend(x: Tensor, extra: int, dim: int) -> Tensor:
    """Append ``extra`` samples along ``dim`` that continue ``x`` periodically."""
    n = x.shape[dim]
    index = torch.arange(n + extra, device=x.device) % n
    return x.index_select(dim, index)


def _pass(x: Tensor, f: Tensor, dim: int) -> Tensor:
    """Stride-2 correlation of every line along ``dim`` (-1: rows, -2: columns) with ``f``."""
    k = f.shape[0]
    n, c = x.shape[:2]
    x = _periodic_extend(x, k - 2, dim)
    weight = f.view(1, 1, 1, k) if dim == -1 else f.view(1, 1, k, 1)
    stride = (1, 2) if dim == -1 else (2, 1)
    out = F.conv2d(x.reshape(n * c, 1, *x.shape[-2:]), weight, stride=stride)
    return out.view(n, c, *out.shape[-2:])


def ldw_analysis_reference(x: Tensor, low: Tensor, high: Tensor) -> Tensor:
    """Eqs. 3-8 in the paper's order: rows (horizontal) first, then columns."""
    x = pad_to_even(x)
    y_low = _pass(x, low, -1)  # Eq. 3
    y_high = _pass(x, high, -1)  # Eq. 4
    ll = _pass(y_low, low, -2)  # Eq. 5
    lh = _pass(y_low, high, -2)  # Eq. 6
    hl = _pass(y_high, low, -2)  # Eq. 7
    hh = _pass(y_high, high, -2)  # Eq. 8
    return torch.cat([ll, lh, hl, hh], dim=1)


def ldw_synthesis_reference(y: Tensor, low: Tensor, high: Tensor) -> Tensor:
    """Adjoint of :func:`ldw_analysis_reference` on the even size ``(2h, 2w)``."""
    n, c4, h, w = y.shape
    probe = torch.zeros(n, c4 // 4, 2 * h, 2 * w, dtype=y.dtype, device=y.device)
    _, adjoint = torch.autograd.functional.vjp(lambda t: ldw_analysis_reference(t, low, high), probe, y)
    return adjoint
