"""The multi-level LDW transform: a multi-level 2-D DWT built from LDW pooling, and its inverse."""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import ConfigError, DataError
from .constraints import pr_error
from .filters import WaveletSpec, initial_filters
from .functional import ldw_analysis, ldw_synthesis

__all__ = [
    "PR_TOLERANCE",
    "RANDOM_WAVELETS",
    "check_fixed_wavelet",
    "check_levels",
    "is_perfect_reconstruction",
    "max_levels",
    "wavelet_round_trip",
]

PR_TOLERANCE = 1e-9
"""The largest PR error (:func:`~ldwseg.pooling.pr_error`) of a bank called perfect-reconstruction:
float64 rounding of the named orthogonal wavelets stays below 1e-12."""


def max_levels(height: int, width: int) -> int:
    """The most levels an ``height x width`` image allows.

    A level halves its input (``ceil(s / 2)``) and needs an input of at least 2 px per
    side, so the answer is the number of halvings that take the shorter side down to 1:
    ``ceil(log2(min(H, W)))``.
    """
    side, levels = min(height, width), 0
    while side >= 2:
        side, levels = (side + 1) // 2, levels + 1
    return levels


def check_levels(levels: int, height: int, width: int) -> None:
    """Refuse a number of levels that is not an integer >= 1 or does not fit an ``height x width`` image."""
    if isinstance(levels, bool) or not isinstance(levels, int) or levels < 1:
        raise ConfigError(f"levels must be an integer >= 1, got {levels!r}")
    most = max_levels(height, width)
    if levels > most:
        raise DataError(
            f"levels={levels} is too many for a {height}x{width} image: each level halves the image and needs "
            f"at least 2 px per side, so at most {most} levels fit; use levels <= {most}"
        )


RANDOM_WAVELETS = ("random", "noise")
"""The ``wavelet`` values that draw filters at random instead of naming them."""


def check_fixed_wavelet(wavelet: WaveletSpec) -> None:
    """Refuse a ``wavelet`` that does not name fixed filters (a PyWavelets name or a ``(low, high)`` pair).

    Raises:
        ConfigError: ``"random"``/``"noise"``, or a name PyWavelets does not know.
    """
    if isinstance(wavelet, str) and wavelet in RANDOM_WAVELETS:
        raise ConfigError(
            f"{wavelet!r} draws filters at random; the round trip needs fixed filters: a named wavelet such as "
            "haar or db2, or a (low, high) pair"
        )
    try:
        initial_filters(wavelet, constraint="orthogonal")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def wavelet_round_trip(
    x: Tensor, *, levels: int = 3, wavelet: WaveletSpec = "haar", constraint: str = "orthogonal"
) -> Tensor:
    """Analyse ``x`` over ``levels`` levels of LDW pooling, then synthesise it back.

    Level ``k`` pools the ``LL`` band of level ``k - 1`` (Eqs. 3-8), as a multi-level
    DWT does, and keeps the three detail bands; synthesis (the adjoint, as in
    :class:`~ldwseg.LDWUnpool2d`) then runs from the coarsest level up, cropping each
    level to the size of its input. The filters are those an
    ``LDWPool2d(wavelet=wavelet, constraint=constraint)`` is initialised with, cast to
    ``x.dtype``. For an orthogonal wavelet the result equals ``x`` up to rounding, odd
    sizes included; for other filters it shows what the bank loses.

    Args:
        x: images ``(N, C, H, W)``, any floating dtype and device.
        levels: number of levels, ``1 <= levels <= max_levels(H, W)``.
        wavelet: the filters, as for :class:`~ldwseg.LDWPool2d` (a PyWavelets orthogonal
            wavelet name or a ``(low, high)`` pair).
        constraint: the constraint the filters are checked against, as for
            :class:`~ldwseg.LDWPool2d` (``"lattice"`` refuses non-orthogonal pairs).

    Shape:
        - Input and output: ``(N, C, H, W)``.

    Example:
        >>> x = torch.rand(1, 3, 33, 50, dtype=torch.float64)
        >>> torch.allclose(wavelet_round_trip(x, levels=4, wavelet="db2"), x)
        True
    """
    if not isinstance(x, Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"x must be a 4-D tensor (N, C, H, W), got {shape}; add a batch dimension with x[None]")
    check_levels(levels, x.shape[-2], x.shape[-1])
    check_fixed_wavelet(wavelet)
    # the filters a fresh LDWPool2d(wavelet=..., constraint=...) starts from, in x's dtype
    # (an LDWPool2d would hold them as float32 parameters, limiting float64 input to ~1e-7)
    low_pass, high_pass = (
        torch.as_tensor(f, dtype=x.dtype, device=x.device) for f in initial_filters(wavelet, constraint=constraint)
    )
    channels = x.shape[1]
    low, details, sizes = x, [], []
    for _ in range(levels):
        sizes.append(low.shape[-2:])
        bands = ldw_analysis(low, low_pass, high_pass)  # [LL | LH | HL | HH], C channels each
        low = bands[:, :channels]
        details.append(bands[:, channels:])
    for detail, size in zip(reversed(details), reversed(sizes)):
        low = ldw_synthesis(torch.cat([low, detail], dim=1), low_pass, high_pass, output_size=size)
    return low


def is_perfect_reconstruction(wavelet: WaveletSpec) -> bool:
    """Whether ``wavelet`` names fixed filters of an orthogonal perfect-reconstruction bank."""
    if isinstance(wavelet, str) and wavelet in RANDOM_WAVELETS:
        return False
    low, high = initial_filters(wavelet, constraint="orthogonal")
    return pr_error(torch.as_tensor(low), torch.as_tensor(high)) <= PR_TOLERANCE
