"""Initial filters for LDW pooling: named PyWavelets banks, explicit pairs or random.

Named wavelets are read from PyWavelets and never typed in by hand. ldwseg correlates
(Eq. 3), so the analysis filters are PyWavelets' ``rec_lo`` / ``rec_hi``, the
time-reversed ``dec_lo`` / ``dec_hi`` (see :mod:`ldwseg.pooling.functional`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pywt
import torch

from .lattice import lattice_angles, lattice_filters

__all__ = ["CONSTRAINTS", "initial_filters", "orthogonal_wavelets"]

CONSTRAINTS = ("paper", "orthogonal", "lattice")

WaveletSpec = str | tuple[Sequence[float], Sequence[float]]


def orthogonal_wavelets(max_length: int | None = None) -> list[str]:
    """Names of PyWavelets' orthogonal discrete wavelets, optionally up to a filter length."""
    names = []
    for name in pywt.wavelist(kind="discrete"):
        w = pywt.Wavelet(name)
        if w.orthogonal and (max_length is None or w.dec_len <= max_length):
            names.append(name)
    return names


def check_constraint(constraint: str) -> str:
    if constraint not in CONSTRAINTS:
        raise ValueError(f"unknown constraint {constraint!r}; choose one of {', '.join(CONSTRAINTS)}")
    return constraint


def _named(name: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        w = pywt.Wavelet(name)
    except ValueError:
        raise ValueError(
            f"unknown wavelet {name!r}; use a PyWavelets orthogonal wavelet such as "
            "'haar', 'db2', 'db4', 'sym4' or 'coif1' (pywt.wavelist(kind='discrete') lists them), "
            "'random' with kernel_size, or a (low, high) pair"
        ) from None
    if not w.orthogonal:
        raise ValueError(
            f"wavelet {name!r} is biorthogonal: its analysis and synthesis filters differ, but "
            "LDWUnpool2d reuses the pool's filters; pick an orthogonal wavelet (haar, dbN, symN, coifN)"
        )
    return np.asarray(w.rec_lo, dtype=np.float64), np.asarray(w.rec_hi, dtype=np.float64)


def _random_paper(k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random symmetric filters meeting Eqs. 9-12 exactly: norms 1, sums sqrt 2 and 0."""
    if k < 3:
        raise ValueError(
            "the paper constraint has no solution for kernel_size=2: a symmetric 2-tap high-pass "
            "with zero sum is zero (Eq. 12 against Eq. 10); use kernel_size >= 3 or another constraint"
        )
    half = (k + 1) // 2
    # symmetric vectors are M @ v for v in R^half
    m = np.zeros((k, half))
    for i in range(half):
        m[i, i] = m[k - 1 - i, i] = 1.0
    basis, _ = np.linalg.qr(m)
    ones = np.ones(k) / math.sqrt(k)

    def draw(total: float) -> np.ndarray:
        u = basis @ rng.standard_normal(half)
        u -= ones * (ones @ u)
        u /= np.linalg.norm(u)
        mean_part = ones * (total / math.sqrt(k))
        return mean_part + u * math.sqrt(max(0.0, 1.0 - total**2 / k))

    return draw(math.sqrt(2.0)), draw(0.0)


def _random_orthogonal(k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    if k % 2:
        raise ValueError(f"orthogonal filter banks have even length; got kernel_size={k}, use {k + 1}")
    angles = torch.from_numpy(rng.uniform(-math.pi, math.pi, size=k // 2 - 1))
    low, high = lattice_filters(angles)
    return low.numpy(), high.numpy()


def initial_filters(
    wavelet: WaveletSpec,
    *,
    kernel_size: int | None = None,
    constraint: str = "paper",
    seed: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Resolve ``wavelet`` into float64 ``(low, high)`` arrays.

    Args:
        wavelet: a PyWavelets orthogonal wavelet name, ``"random"`` (drawn to satisfy
            ``constraint`` exactly: the paper's "pretrain" option), ``"noise"`` (plain
            Gaussian taps of unit expected norm that satisfy no constraint: "no
            pretrain"), or ``(low, high)``.
        kernel_size: filter length ``K``; required for ``"random"`` and ``"noise"``.
        constraint: for ``"random"``, the constraint the drawn filters satisfy exactly.
        seed: seed for ``"random"``/``"noise"``; ``None`` draws from torch's global generator.
    """
    check_constraint(constraint)
    if isinstance(wavelet, str) and wavelet in ("random", "noise"):
        if kernel_size is None or kernel_size < 2:
            raise ValueError(f"wavelet={wavelet!r} needs kernel_size=K with K >= 2")
        if seed is None:
            seed = int(torch.randint(0, 2**31 - 1, ()).item())
        rng = np.random.default_rng(seed)
        if wavelet == "noise":
            if constraint == "lattice":
                raise ValueError("wavelet='noise' cannot be a lattice: every lattice filter is orthogonal")
            low, high = rng.standard_normal((2, kernel_size)) / math.sqrt(kernel_size)
        else:
            draw = _random_paper if constraint == "paper" else _random_orthogonal
            low, high = draw(kernel_size, rng)
    elif isinstance(wavelet, str):
        low, high = _named(wavelet)
    else:
        try:
            low, high = (np.asarray(f, dtype=np.float64) for f in wavelet)
        except (TypeError, ValueError):
            raise ValueError(
                f"wavelet must be a name or a (low, high) pair of number sequences, got {wavelet!r}"
            ) from None
        if low.ndim != 1 or low.shape != high.shape or low.size < 2:
            raise ValueError(
                f"(low, high) must be 1-D filters of equal length >= 2, got shapes {low.shape} and {high.shape}"
            )
    if kernel_size is not None and low.size != kernel_size:
        raise ValueError(
            f"kernel_size={kernel_size} does not match the {low.size}-tap filters of {wavelet!r}; "
            "omit kernel_size or pick a wavelet of that length"
        )
    if constraint == "lattice":
        lattice_angles(low, high)  # raises with a clear message when not orthogonal
    return low, high
