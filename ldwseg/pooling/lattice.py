"""Paraunitary lattice: every parameter value gives an orthogonal PR filter bank.

The analysis operator of Eq. 3-4 on the even/odd phases of a signal has the polyphase
matrix ``E(z) = [[L_e(z), L_o(z)], [H_e(z), H_o(z)]]`` with ``L_e(z) = sum_j l[2j] z^j``
(correlation, so positive powers). The bank is orthogonal (perfect reconstruction by
the adjoint) exactly when ``E`` is paraunitary, ``E(z) E(1/z)^T = I``. Products of
rotations ``R(t) = [[cos t, sin t], [-sin t, cos t]]`` and delays ``D(z) = diag(1, z)``
are paraunitary, and every paraunitary ``E`` of degree ``m - 1`` factors as

    E(z) = S R(t_{m-1}) D(z) R(t_{m-2}) ... D(z) R(t_0),   S = diag(1, +-1)

(Vaidyanathan's lattice). ``E(1) = S R(sum t)`` so ``sum l = cos T + sin T`` equals
``sqrt 2`` exactly when ``T = sum t = pi / 4``: one vanishing moment, the DC condition
of Eq. 9. We therefore learn ``t_1 .. t_{m-1}`` and set ``t_0 = pi / 4 - sum``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

__all__ = ["lattice_filters", "lattice_angles"]


def _rotation(t: Tensor) -> Tensor:
    c, s = torch.cos(t), torch.sin(t)
    return torch.stack([torch.stack([c, s]), torch.stack([-s, c])])


def lattice_filters(free_angles: Tensor, sign: float = 1.0) -> tuple[Tensor, Tensor]:
    """Filters of length ``2 * (len(free_angles) + 1)`` from the lattice angles.

    Differentiable in ``free_angles``; the result is an orthogonal PR bank for any value.
    """
    first = math.pi / 4 - free_angles.sum()
    angles = torch.cat([first.reshape(1), free_angles])
    # poly[r, c, j]: coefficient of z^j of E[r, c]
    poly = _rotation(angles[0]).unsqueeze(-1)
    for stage in range(1, angles.shape[0]):  # indices, not tensor iteration, so a trace records the reads
        zero = poly.new_zeros(2, 1)
        delayed = torch.stack([torch.cat([poly[0], zero], -1), torch.cat([zero, poly[1]], -1)])
        poly = torch.einsum("rk,kcj->rcj", _rotation(angles[stage]), delayed)
    taps = poly.shape[-1] * 2
    low = poly[0].transpose(0, 1).reshape(taps)  # l[2j] = E[0,0,j], l[2j+1] = E[0,1,j]
    high = poly[1].transpose(0, 1).reshape(taps) * sign
    return low, high


def lattice_angles(low: np.ndarray, high: np.ndarray, *, atol: float = 1e-6) -> tuple[np.ndarray, float]:
    """Factor an orthogonal bank into ``(free_angles, sign)`` for :func:`lattice_filters`.

    Raises ``ValueError`` when the pair is not an orthogonal PR bank with ``sum low = sqrt 2``.
    """
    low, high = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
    if low.shape != high.shape or low.ndim != 1:
        raise ValueError("low and high must be 1-D filters of the same length")
    if low.size % 2:
        low, high = np.append(low, 0.0), np.append(high, 0.0)
    m = low.size // 2
    poly = np.stack([np.stack([low[0::2], low[1::2]]), np.stack([high[0::2], high[1::2]])])
    sign = 1.0 if np.linalg.det(poly.sum(-1)) > 0 else -1.0
    poly[1] *= sign
    angles = []
    for degree in range(m - 1, 0, -1):
        top = poly[..., degree]
        col = int(np.argmax(np.abs(top).sum(0)))
        t = math.atan2(top[0, col], top[1, col])
        rt = _rotation(torch.tensor(t, dtype=torch.float64)).numpy().T
        poly = np.einsum("rk,kcj->rcj", rt, poly)
        if np.abs(poly[0, :, degree]).max() > atol or np.abs(poly[1, :, 0]).max() > atol:
            raise ValueError("the filters are not an orthogonal perfect-reconstruction bank")
        poly = np.stack([poly[0, :, :degree], poly[1, :, 1:]])
        angles.append(t)
    t0 = math.atan2(poly[0, 1, 0], poly[0, 0, 0])
    if not np.allclose(_rotation(torch.tensor(t0, dtype=torch.float64)).numpy(), poly[..., 0], atol=atol):
        raise ValueError("the filters are not an orthogonal perfect-reconstruction bank")
    free = np.array(angles[::-1], dtype=np.float64)
    if abs(math.remainder(t0 + free.sum() - math.pi / 4, 2 * math.pi)) > atol:
        raise ValueError("the low-pass filter must sum to sqrt(2) (one vanishing moment)")
    return free, sign
