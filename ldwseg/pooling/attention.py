"""Energy attention (Eqs. 16-17): squeeze-and-excitation on per-channel energy."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["EnergyAttention"]

ENERGY_MODES = ("mean", "sum")


class EnergyAttention(nn.Module):
    """Re-weight channels by an SE gate computed from their energy.

    The input is batch-normalised (without affine parameters, to remove brightness as
    the paper asks), the energy of channel ``c`` is ``E^c = sum_{x,y} X_c(x, y)^2``
    (Eq. 16), an SE MLP maps the energies to gates ``S_e`` in ``(0, 1)`` (Eq. 17), and
    the *input* channels are multiplied by the gates. It is a separate module so that
    :class:`~ldwseg.LDWPool2d` stays an invertible transform.

    Args:
        channels: number of channels ``C``.
        reduction: SE bottleneck ratio; the hidden width is ``max(C // reduction, 4)``.
        energy: ``"sum"`` is Eq. 16 literally; ``"mean"`` (default) divides it by the
            constant ``H * W`` so the MLP sees the same scale at every resolution
            (the sum grows with the map and saturates the sigmoid on large maps).

    Shape:
        - Input and output: ``(N, C, H, W)``.

    Note:
        The energy and the gates are computed in float32 (or in the input's dtype, if wider)
        and the output has the input's dtype: in a half-precision model the energy of a
        256x256 map, a sum of 65536 squares of values near 1, would overflow float16 (largest
        value 65504) and make the gates NaN.
    """

    def __init__(self, channels: int, *, reduction: int = 16, energy: str = "mean") -> None:
        super().__init__()
        if energy not in ENERGY_MODES:
            raise ValueError(f"unknown energy mode {energy!r}; choose one of {', '.join(ENERGY_MODES)}")
        if channels < 1 or reduction < 1:
            raise ValueError(f"channels and reduction must be positive, got {channels} and {reduction}")
        hidden = max(channels // reduction, 4)
        self.energy = energy
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.excite = nn.Sequential(
            nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels), nn.Sigmoid()
        )
        self.fixed_gates: Tensor | None = None
        """Gates ``(N, C)`` to use instead of computing them from the input (tiled inference
        sets the whole image's gates here, see :func:`~ldwseg.inference.tiling.apply_tiled`)."""

    def energy_density(self, x: Tensor) -> Tensor:
        """The summands of Eq. 16, ``X_c(x, y)^2`` after normalisation, shape ``(N, C, H, W)``, in float32 or wider."""
        z = self.norm(x)
        return z.float().square() if z.dtype in (torch.float16, torch.bfloat16) else z.square()

    def energy_of(self, total: Tensor, pixels: int) -> Tensor:
        """Eq. 16 from the density summed over ``pixels`` positions: the sum, or the mean (``energy``)."""
        return total if self.energy == "sum" else total / pixels

    def gates(self, energy: Tensor) -> Tensor:
        """Eq. 17: the SE gates ``(N, C)`` in ``(0, 1)`` of per-channel energies ``(N, C)``.

        The MLP runs in the energy's dtype: a half-precision module's weights are upcast to it
        for the call (differentiably), since its energy may not fit in half precision."""
        weight = self.excite[0].weight
        if weight.dtype == energy.dtype:
            return self.excite(energy)
        params = {name: p.to(energy.dtype) for name, p in self.excite.named_parameters()}
        return torch.func.functional_call(self.excite, params, (energy,))

    def forward(self, x: Tensor) -> Tensor:
        if self.fixed_gates is not None:
            return x * self.fixed_gates[:, :, None, None].to(x.dtype)
        e = self.energy_of(self.energy_density(x).sum((-2, -1)), x.shape[-2] * x.shape[-1])  # Eq. 16
        return x * self.gates(e)[:, :, None, None].to(x.dtype)
