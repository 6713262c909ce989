"""The blocks :func:`ldwseg.models.convert.replace.convert` puts in place of a model's downsampling layers.

:class:`LDWPoolMix` is LDW pooling followed by a 1x1 mix of the four bands (for max/avg
pools and stride-2 pointwise convs); :class:`LDWStridedConv` runs a strided conv at
stride 1 and pools its output (for every other stride-2 conv). ``size_offset`` crops the
pooled ``ceil(H / 2)`` to the replaced layer's ``(H + c) // 2`` (see :func:`size_offset`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ...errors import ConfigError
from ...pooling import EnergyAttention, LDWPool2d, pr_error
from ..layers.options import PoolOptions

__all__ = ["CONVERT_POOL", "LDWPoolMix", "LDWStridedConv", "output_size", "size_offset"]

CONVERT_POOL = PoolOptions(constraint="orthogonal", attention=False)
"""The pool options of a converted network unless told otherwise: Haar on the orthogonal constraint, no attention
(an average-pool start, see :meth:`LDWPoolMix.start_as`)."""

_BANDS = ((0, 0), (0, 1), (1, 0), (1, 1))
"""``[LL | LH | HL | HH]`` as (filter along the width, filter along the height); 0 = W^L, 1 = W^H."""


class LDWPoolMix(nn.Module):
    """LDW pooling, optional energy attention, then a 1x1 conv from the four subbands.

    Args:
        in_channels: input channels ``C_in`` (pooled to ``4 C_in`` subbands).
        out_channels: output channels ``C_out``.
        groups: groups of the 1x1 conv; output group ``g`` reads the four subbands of
            input group ``g``.
        bias: give the 1x1 conv a bias.
        size_offset: ``(c_h, c_w)``: the output is ``(H + c_h) // 2`` by ``(W + c_w) // 2``.
            1 is LDW pooling's own ``ceil(H / 2)``; smaller values crop the last output
            rows and columns, which the replaced layer does not compute.
        pool: the wavelet, kernel size, constraint and attention of the pool.
        replaces: description of the replaced layer, shown by :func:`converted_layers`.

    Shape:
        ``(N, C_in, H, W) -> (N, C_out, (H + c_h) // 2, (W + c_w) // 2)``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        groups: int = 1,
        bias: bool = False,
        size_offset: tuple[int, int] = (1, 1),
        pool: PoolOptions = CONVERT_POOL,
        replaces: str = "",
    ) -> None:
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"groups={groups} must divide in_channels={in_channels} and out_channels={out_channels}")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        if max(size_offset) > 1:
            raise ValueError(f"LDW pooling returns ceil(H/2), so size_offset must be at most 1, got {size_offset}")
        self.size_offset = size_offset
        self.replaces = replaces
        self.pool = LDWPool2d(
            in_channels,
            wavelet=pool.wavelet,
            kernel_size=pool.kernel_size,
            constraint=pool.constraint,
            trainable=pool.learn_filters,
        )
        self.attention = EnergyAttention(4 * in_channels) if pool.attention else nn.Identity()
        self.mix = nn.Conv2d(4 * in_channels, out_channels, 1, groups=groups, bias=bias)
        # channel b * C_in + g * C_g + i ([LL | LH | HL | HH] of all channels) goes to g * 4 C_g + b * C_g + i
        # ([LL_g | LH_g | HL_g | HH_g] per group); a constant gather keeps the spatial sizes symbolic in exports
        order = torch.arange(4 * in_channels).view(4, groups, -1).transpose(0, 1).flatten()
        self.register_buffer("band_order", order, persistent=False)

    def start_as(self, weight: Tensor, bias: Tensor | None = None, *, sample: bool) -> None:
        """Initialise the 1x1 conv so the block computes ``weight`` on the sampled or averaged input.

        ``weight`` is a pointwise ``(C_out, C_in / groups)`` map. With ``sample`` the block
        starts as ``weight`` applied to ``x[2i, 2j]`` (exact for a 2-tap orthogonal bank),
        else to the low-pass ``LL / (sum W^L)^2`` (the 2x2 mean for Haar). With attention
        the gates start at exactly 1/2 (last SE layer zeroed) and the weight is doubled.
        """
        coefficients = _band_coefficients(*self.pool.filters(), sample=sample)
        if isinstance(self.attention, EnergyAttention):
            last = [m for m in self.attention.excite if isinstance(m, nn.Linear)][-1]
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
            coefficients = 2 * coefficients  # sigmoid(0) = 1/2
        weight = weight.reshape(self.out_channels, self.in_channels // self.groups).to(self.mix.weight)
        with torch.no_grad():
            # within a group the inputs are ordered (band, channel): weight[o, b * C_g + i] = c_b W[o, i]
            self.mix.weight.copy_(torch.cat([c * weight for c in coefficients.to(weight)], 1)[..., None, None])
            if self.mix.bias is not None:
                self.mix.bias.copy_(torch.zeros(self.out_channels) if bias is None else bias)

    def forward(self, x: Tensor) -> Tensor:
        if not torch.jit.is_tracing() and x.dim() == 4 and x.shape[1] != self.in_channels:
            raise ValueError(
                f"the LDW block replacing {self.replaces or 'a layer'} was built for {self.in_channels} channels, "
                f"got input of shape {tuple(x.shape)}; convert the model with example_input=... so that "
                "the channels are recorded from a forward pass"
            )
        bands = self.attention(self.pool(x))
        if self.groups > 1:
            bands = bands.index_select(1, self.band_order)
        y = self.mix(bands)
        ch, cw = self.size_offset
        if ch < 1 or cw < 1:
            y = y[..., : (x.shape[-2] + ch) // 2, : (x.shape[-1] + cw) // 2]
        return y

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, groups={self.groups}, size_offset={self.size_offset}"


class LDWStridedConv(nn.Module):
    """A stride-2 conv as the same conv at stride 1, then LDW pooling with a per-channel mix.

    Args:
        conv: the convolution at stride 1 (its channels, groups, bias, padding, dilation
            and padding mode are those of the replaced layer).
        pool: the wavelet, kernel size, constraint and attention of the pool.
        replaces: description of the replaced layer, shown by :func:`converted_layers`.

    Shape:
        ``(N, C_in, H, W) -> (N, C_out, ceil(L_H / 2), ceil(L_W / 2))`` with ``L`` the
        stride-1 conv's output size, which is the stride-2 conv's output size.
    """

    def __init__(
        self,
        conv: nn.Conv2d,
        *,
        pool: PoolOptions = CONVERT_POOL,
        replaces: str = "",
    ) -> None:
        super().__init__()
        if tuple(conv.stride) != (1, 1):
            raise ValueError(f"LDWStridedConv takes the conv at stride 1, got stride {tuple(conv.stride)}")
        channels = conv.out_channels
        self.replaces = replaces
        self.conv = conv
        self.down = LDWPoolMix(channels, channels, groups=channels, pool=pool)
        self.down.start_as(torch.ones(channels, 1), sample=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.down(self.conv(x))


def _band_coefficients(low: Tensor, high: Tensor, *, sample: bool) -> Tensor:
    """Weights of ``[LL | LH | HL | HH]`` that give the sample ``x[2i, 2j]`` or the low-pass."""
    low, high = low.detach().double(), high.detach().double()
    if sample and low.numel() == 2 and pr_error(low, high) < 1e-6:
        # A 2-tap orthogonal bank is an orthonormal basis of each 2x2 block; x[2i, 2j] is
        # the coordinate sum_b Y_b[0] X_b[0] band_b (= (LL + LH + HL + HH) / 2 for Haar).
        taps = (low, high)
        return torch.stack([taps[x][0] * taps[y][0] for x, y in _BANDS]).float()
    dc = float(low.sum()) ** 2  # the DC gain of LL = W^L (x) W^L
    if dc < 1e-2:
        raise ConfigError(
            f"the low-pass filter {low.tolist()} sums to ~0, so no 1x1 mix of the bands starts as an average; "
            "use a named wavelet (haar, db2, ...) or 'random'"
        )
    return torch.tensor([1 / dc, 0.0, 0.0, 0.0])


def output_size(size: int, kernel: int, stride: int, padding: int, dilation: int, ceil_mode: bool) -> int:
    """PyTorch's output size of a pool (``pooling_output_shape``) or, with ``ceil_mode=False``, a conv."""
    out = (size + 2 * padding - dilation * (kernel - 1) - 1 + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def size_offset(kernel: int, padding: int, dilation: int, ceil_mode: bool) -> int | None:
    """The ``c`` with output size ``(H + c) // 2`` for every valid ``H`` of a stride-2 layer, or ``None``.

    Found by checking every ``H`` up to a few periods past the window.
    """
    offsets: set[int] | None = None
    for size in range(1, 2 * (dilation * (kernel - 1) + 2 * padding) + 9):
        out = output_size(size, kernel, 2, padding, dilation, ceil_mode)
        if out >= 1:
            fits = {2 * out - size, 2 * out - size + 1}  # the c with (size + c) // 2 == out
            offsets = fits if offsets is None else offsets & fits
    return offsets.pop() if offsets else None
