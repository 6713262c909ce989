"""Energy attention (Eqs. 16-17): squeeze-and-excitation on per-channel energy."""

from __future__ import annotations

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
        """The summands of Eq. 16, ``X_c(x, y)^2`` after normalisation, shape ``(N, C, H, W)``."""
        return self.norm(x).square()

    def energy_of(self, total: Tensor, pixels: int) -> Tensor:
        """Eq. 16 from the density summed over ``pixels`` positions: the sum, or the mean (``energy``)."""
        return total if self.energy == "sum" else total / pixels

    def gates(self, energy: Tensor) -> Tensor:
        """Eq. 17: the SE gates ``(N, C)`` in ``(0, 1)`` of per-channel energies ``(N, C)``."""
        return self.excite(energy)

    def forward(self, x: Tensor) -> Tensor:
        if self.fixed_gates is not None:
            return x * self.fixed_gates[:, :, None, None]
        e = self.energy_of(self.energy_density(x).sum((-2, -1)), x.shape[-2] * x.shape[-1])  # Eq. 16
        return x * self.gates(e)[:, :, None, None]
