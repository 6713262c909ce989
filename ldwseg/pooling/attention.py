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

    def forward(self, x: Tensor) -> Tensor:
        z = self.norm(x).square()
        e = z.sum((-2, -1)) if self.energy == "sum" else z.mean((-2, -1))  # Eq. 16
        gate = self.excite(e)  # Eq. 17
        return x * gate[:, :, None, None]
