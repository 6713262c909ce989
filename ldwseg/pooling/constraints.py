"""Constraint losses on a filter pair ``(W^L, W^H)`` and a perfect-reconstruction measure.

``paper_terms`` is Eqs. 9-12 of the paper term by term. ``orthogonal_terms`` are the
conditions under which the pair is an orthogonal two-channel perfect-reconstruction
(PR) bank for the correlation-and-adjoint pooling of :mod:`ldwseg.pooling.functional`:

* ``sum_n l[n] l[n + 2k] = delta_k`` and ``sum_n h[n] h[n + 2k] = delta_k`` (each
  filter is orthonormal to its own even shifts),
* ``sum_n l[n] h[n + 2k] = 0`` for every ``k`` (the channels are orthogonal),
* ``sum_n l[n] = sqrt 2`` (a low-pass with unit DC gain per level, Eq. 9's second term).

Together they make the analysis operator an orthogonal matrix on any even-sized
periodic signal, so synthesis (its transpose) inverts it exactly.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["paper_terms", "orthogonal_terms", "shift_correlations", "pr_error"]

SQRT2 = math.sqrt(2.0)


def paper_terms(low: Tensor, high: Tensor) -> dict[str, Tensor]:
    """The paper's constraint loss, Eqs. 9-12, one entry per term; Eq. 13 is their sum.

    ``L_Sym`` (Eq. 12) pairs tap ``i`` with its mirror ``K - 1 - i`` (0-based) for
    ``i < floor(K / 2)``, for both filters as the paper writes it.
    """
    k = low.shape[-1]
    half = k // 2
    low_energy, high_energy = low.square().sum(), high.square().sum()
    mirror = torch.arange(k - 1, k - 1 - half, -1, device=low.device)
    front = torch.arange(half, device=low.device)
    return {
        "low": (low_energy - 1) ** 2 + (low.sum() - SQRT2) ** 2,  # Eq. 9
        "high": (high_energy - 1) ** 2 + high.sum() ** 2,  # Eq. 10
        "reverse": (low_energy + high_energy - 2) ** 2,  # Eq. 11
        "sym": (low[front] - low[mirror]).square().sum() + (high[front] - high[mirror]).square().sum(),  # Eq. 12
    }


def shift_correlations(a: Tensor, b: Tensor) -> Tensor:
    """``c[k] = sum_n a[n] b[n + 2k]`` for every even shift ``2k`` with overlapping support.

    Returned for ``k = -(K - 1) // 2 .. (K - 1) // 2`` (index ``k + (K - 1) // 2``).
    """
    k = a.shape[-1]
    full = torch.nn.functional.conv1d(torch.nn.functional.pad(b, (k - 1, k - 1)).view(1, 1, -1), a.view(1, 1, -1)).view(
        -1
    )
    # full[j] = sum_n a[n] b[n + j - (k - 1)], shifts j - (k - 1) = -(k-1) .. k-1
    centre = k - 1
    reach = (k - 1) // 2
    return full[centre - 2 * reach : centre + 2 * reach + 1 : 2]


def orthogonal_terms(low: Tensor, high: Tensor) -> dict[str, Tensor]:
    """Squared violations of the orthogonal-PR conditions (see the module docstring)."""
    auto_low, auto_high = shift_correlations(low, low), shift_correlations(high, high)
    delta = torch.zeros_like(auto_low)
    delta[delta.shape[0] // 2] = 1.0
    return {
        "low_orthonormal": (auto_low - delta).square().sum(),
        "high_orthonormal": (auto_high - delta).square().sum(),
        "cross_orthogonal": shift_correlations(low, high).square().sum(),
        "low_dc": (low.sum() - SQRT2) ** 2,
    }


def pr_error(low: Tensor, high: Tensor) -> float:
    """Largest entry of ``A^T A - I`` for the 1-D analysis operator ``A`` of the pair.

    ``A`` is built on a periodic signal of length ``2K`` or more, so no wrap-around
    hides a violation. 0 (to rounding) exactly for orthogonal PR banks; the 2-D pooling
    is the tensor product of two such operators, so it has the same property.
    """
    low = low.detach().double().cpu()
    high = high.detach().double().cpu()
    k = low.shape[0]
    n = 2 * ((k + 1) // 2) * 2 + 2
    eye = torch.eye(n, dtype=torch.float64)
    rows = []
    for f in (low, high):
        for start in range(0, n, 2):
            idx = (start + torch.arange(k)) % n
            row = torch.zeros(n, dtype=torch.float64)
            row.index_add_(0, idx, f)
            rows.append(row)
    a = torch.stack(rows)
    return float((a.T @ a - eye).abs().max())
