"""Functional LDW analysis and synthesis: the fast implementation of Eqs. 3-8.

Conventions (used everywhere in ldwseg):

* ``low`` and ``high`` are the paper's ``W^L`` and ``W^H`` of length ``K``. They are
  applied by *correlation* at stride 2 with periodic extension (Eqs. 3-8)::

      Y[k] = sum_i W[i] * X[(2k + i) mod n]

* The output channel blocks are ``[LL | LH | HL | HH]``. The first letter names the
  filter applied along the width (the paper's horizontal pass, Eqs. 3-4), the second
  the filter applied along the height (the vertical pass, Eqs. 5-8). So ``LH`` is
  low-pass along the width and high-pass along the height.
* Relation to PyWavelets: with ``low = pywt.Wavelet(name).rec_lo`` and
  ``high = rec_hi`` (the time-reversed decomposition filters), the four blocks equal
  ``cA, cH, cV, cD`` of ``pywt.dwt2(np.roll(x, -(K // 2 - 1), axis=(-2, -1)), name,
  mode="periodization")``: PyWavelets convolves with ``dec_lo`` and centres the
  window ``K // 2 - 1`` samples earlier, ldwseg correlates from ``2k`` as Eq. 3 writes.
* Odd heights or widths are padded to even by repeating the last row or column, so
  the output is ``ceil(H / 2) x ceil(W / 2)``; :func:`ldw_synthesis` crops back to
  the requested ``output_size``.

Synthesis is the exact adjoint (transpose) of analysis on even sizes, so for an
orthogonal perfect-reconstruction bank ``synthesis(analysis(x)) == x``.

Implementation: the two separable passes are written as strided phase views of the
input, so periodic extension costs no padded copy (a tap ``i >= 2`` reads the phase
``i % 2`` rolled by ``i // 2`` coarse samples, split into two slices). Gradients are
hand-written: the input gradient of analysis *is* synthesis and vice versa, and the
filter gradients are phase-wise inner products. The passes run height first, then
width, which keeps the wide contiguous rows in the first pass; the result equals the
paper's rows-then-columns order because the two passes commute.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["ldw_analysis", "ldw_synthesis", "pad_to_even", "subband_shape"]


def subband_shape(height: int, width: int) -> tuple[int, int]:
    """Spatial size of the subbands for an ``height x width`` input: the ceiling halves."""
    return (height + 1) // 2, (width + 1) // 2


def pad_to_even(x: Tensor) -> Tensor:
    """Pad the last two dimensions to even sizes by repeating the last row/column."""
    pad_h, pad_w = x.shape[-2] % 2, x.shape[-1] % 2
    if pad_h == 0 and pad_w == 0:
        return x
    return F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")


def _phases(x: Tensor, dim: int, tap: int) -> tuple[Tensor, int]:
    """Phase ``tap % 2`` of ``x`` along ``dim`` (a strided view) and its coarse roll."""
    half = x.shape[dim] // 2
    view = x.unflatten(dim, (half, 2)).select(dim + 1 if dim >= 0 else dim, tap % 2)
    return view, (tap // 2) % half


def _corr2(x: Tensor, f: Tensor, dim: int, out: Tensor | None = None) -> Tensor:
    """``out[k] = sum_i f[i] x[(2k + i) mod n]`` along ``dim`` (Eq. 3 on one axis)."""
    for i in range(f.shape[0]):
        phase, shift = _phases(x, dim, i)
        half = phase.shape[dim]
        if i == 0:
            out = torch.mul(phase, f[0], out=out) if out is not None else phase * f[0]
            continue
        head = out.narrow(dim, 0, half - shift)
        head.addcmul_(phase.narrow(dim, shift, half - shift), f[i])
        if shift:
            tail = out.narrow(dim, half - shift, shift)
            tail.addcmul_(phase.narrow(dim, 0, shift), f[i])
    return out


def _corr2_adjoint(y: Tensor, f: Tensor, dim: int, out: Tensor, accumulate: bool) -> Tensor:
    """Adjoint of :func:`_corr2`: ``out[(2k + i) mod n] += f[i] y[k]``."""
    for i in range(f.shape[0]):
        phase, shift = _phases(out, dim, i)
        half = phase.shape[dim]
        if i < 2 and not accumulate:
            torch.mul(y, f[i], out=phase)
            continue
        phase.narrow(dim, shift, half - shift).addcmul_(y.narrow(dim, 0, half - shift), f[i])
        if shift:
            phase.narrow(dim, 0, shift).addcmul_(y.narrow(dim, half - shift, shift), f[i])
    return out


def _phase_dots(x: Tensor, g: Tensor, dim: int, taps: int) -> Tensor:
    """``d[i] = sum_k g[k] x[(2k + i) mod n]``: the gradient of :func:`_corr2` in ``f``."""
    dots = []
    for i in range(taps):
        phase, shift = _phases(x, dim, i)
        half = phase.shape[dim]
        total = (phase.narrow(dim, shift, half - shift) * g.narrow(dim, 0, half - shift)).sum()
        if shift:
            total = total + (phase.narrow(dim, 0, shift) * g.narrow(dim, half - shift, shift)).sum()
        dots.append(total)
    return torch.stack(dots)


def _height(x: Tensor, low: Tensor, high: Tensor) -> tuple[Tensor, Tensor]:
    """Vertical pass: low- and high-pass along the height (Eqs. 5-8, one axis)."""
    return _corr2(x, low, -2), _corr2(x, high, -2)


def _width(c_low: Tensor, c_high: Tensor, low: Tensor, high: Tensor) -> Tensor:
    """Horizontal pass on the two height-filtered maps, written as ``[LL|LH|HL|HH]``."""
    n, c, h, w2 = c_low.shape
    out = torch.empty((n, 4, c, h, w2 // 2), dtype=c_low.dtype, device=c_low.device)
    for band, (wfilt, src) in enumerate(((low, c_low), (low, c_high), (high, c_low), (high, c_high))):
        _corr2(src, wfilt, -1, out=out[:, band])
    return out.view(n, 4 * c, h, w2 // 2)


def _width_adjoint(y: Tensor, low: Tensor, high: Tensor) -> tuple[Tensor, Tensor]:
    """Adjoint of :func:`_width`: two height-filtered maps from the four subbands."""
    n, c4, h, w = y.shape
    bands = y.view(n, 4, c4 // 4, h, w)
    shape = (n, c4 // 4, h, 2 * w)
    c_low = torch.empty(shape, dtype=y.dtype, device=y.device)
    c_high = torch.empty(shape, dtype=y.dtype, device=y.device)
    _corr2_adjoint(bands[:, 0], low, -1, c_low, accumulate=False)
    _corr2_adjoint(bands[:, 2], high, -1, c_low, accumulate=True)
    _corr2_adjoint(bands[:, 1], low, -1, c_high, accumulate=False)
    _corr2_adjoint(bands[:, 3], high, -1, c_high, accumulate=True)
    return c_low, c_high


def _height_adjoint(c_low: Tensor, c_high: Tensor, low: Tensor, high: Tensor) -> Tensor:
    """Adjoint of :func:`_height`."""
    n, c, h, w = c_low.shape
    out = torch.empty((n, c, 2 * h, w), dtype=c_low.dtype, device=c_low.device)
    _corr2_adjoint(c_low, low, -2, out, accumulate=False)
    _corr2_adjoint(c_high, high, -2, out, accumulate=True)
    return out


def _filter_grads(
    x: Tensor,
    c: tuple[Tensor, Tensor],
    gc: tuple[Tensor, Tensor],
    g: Tensor,
    taps: int,
) -> tuple[Tensor, Tensor]:
    """Gradients of ``<g, analysis(x)>`` in ``low`` and ``high``.

    ``c`` are the height-filtered maps of ``x`` and ``gc`` the width-adjoint of ``g``.
    """
    n, c4, h, w = g.shape
    bands = g.view(n, 4, c4 // 4, h, w)
    d_low = (
        _phase_dots(c[0], bands[:, 0], -1, taps)
        + _phase_dots(c[1], bands[:, 1], -1, taps)
        + _phase_dots(x, gc[0], -2, taps)
    )
    d_high = (
        _phase_dots(c[0], bands[:, 2], -1, taps)
        + _phase_dots(c[1], bands[:, 3], -1, taps)
        + _phase_dots(x, gc[1], -2, taps)
    )
    return d_low, d_high


def _analysis_raw(x: Tensor, low: Tensor, high: Tensor) -> Tensor:
    return _width(*_height(x, low, high), low, high)


def _synthesis_raw(y: Tensor, low: Tensor, high: Tensor) -> Tensor:
    return _height_adjoint(*_width_adjoint(y, low, high), low, high)


class _Analysis(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, low: Tensor, high: Tensor) -> Tensor:
        ctx.save_for_backward(x, low, high)
        return _analysis_raw(x, low, high)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g: Tensor):
        x, low, high = ctx.saved_tensors
        g = g.contiguous()
        gc = _width_adjoint(g, low, high)
        grad_x = _height_adjoint(*gc, low, high) if ctx.needs_input_grad[0] else None
        grad_low = grad_high = None
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            grad_low, grad_high = _filter_grads(x, _height(x, low, high), gc, g, low.shape[0])
        return grad_x, grad_low, grad_high


class _Synthesis(torch.autograd.Function):
    @staticmethod
    def forward(ctx, y: Tensor, low: Tensor, high: Tensor) -> Tensor:
        ctx.save_for_backward(y, low, high)
        return _synthesis_raw(y, low, high)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g: Tensor):
        y, low, high = ctx.saved_tensors
        g = g.contiguous()
        c = _height(g, low, high)
        grad_y = _width(*c, low, high) if ctx.needs_input_grad[0] else None
        grad_low = grad_high = None
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            gc = _width_adjoint(y, low, high)
            grad_low, grad_high = _filter_grads(g, c, gc, y, low.shape[0])
        return grad_y, grad_low, grad_high


def _as_filter(f: Tensor | Sequence[float], like: Tensor, name: str) -> Tensor:
    f = torch.as_tensor(f, dtype=like.dtype, device=like.device)
    if f.dim() != 1 or f.shape[0] < 2:
        raise ValueError(f"{name} must be a 1-D filter with at least 2 taps, got shape {tuple(f.shape)}")
    return f


def _check_input(x: Tensor, what: str, channels_multiple: int = 1) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{what} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(
            f"{what} must be a 4-D tensor (N, C, H, W), got shape {tuple(x.shape)}; "
            "add a batch dimension with x.unsqueeze(0) for a single image"
        )
    if not x.is_floating_point():
        raise TypeError(f"{what} must be a floating-point tensor, got {x.dtype}; convert it with x.float()")
    if x.shape[1] % channels_multiple:
        raise ValueError(
            f"{what} must have a multiple of {channels_multiple} channels ([LL|LH|HL|HH] blocks), "
            f"got {x.shape[1]}"
        )
    if x.shape[-2] == 0 or x.shape[-1] == 0:
        raise ValueError(f"{what} has an empty spatial size {tuple(x.shape[-2:])}")


def _needs_autograd(*tensors: Tensor) -> bool:
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def ldw_analysis(x: Tensor, low: Tensor | Sequence[float], high: Tensor | Sequence[float]) -> Tensor:
    """LDW pooling (Eqs. 3-8): split each channel into four half-size subbands.

    Args:
        x: input of shape ``(N, C, H, W)``, any floating dtype.
        low: low-pass filter ``W^L`` of length ``K``.
        high: high-pass filter ``W^H`` of length ``K``.

    Returns:
        Tensor of shape ``(N, 4C, ceil(H/2), ceil(W/2))`` holding ``[LL | LH | HL | HH]``.

    Example:
        >>> import pywt, torch
        >>> w = pywt.Wavelet("haar")
        >>> ldw_analysis(torch.ones(1, 1, 4, 4), w.rec_lo, w.rec_hi)[0, :, 0, 0]
        tensor([2., 0., 0., 0.])
    """
    _check_input(x, "x")
    low, high = _as_filter(low, x, "low"), _as_filter(high, x, "high")
    if low.shape != high.shape:
        raise ValueError(f"low and high must have the same length, got {low.shape[0]} and {high.shape[0]}")
    x = pad_to_even(x).contiguous()
    if _needs_autograd(x, low, high):
        return _Analysis.apply(x, low, high)
    return _analysis_raw(x, low, high)


def ldw_synthesis(
    y: Tensor,
    low: Tensor | Sequence[float],
    high: Tensor | Sequence[float],
    *,
    output_size: Sequence[int] | None = None,
) -> Tensor:
    """Reverse LDW pooling: the adjoint of :func:`ldw_analysis`, its inverse for PR banks.

    Args:
        y: subbands of shape ``(N, 4C, h, w)`` ordered ``[LL | LH | HL | HH]``.
        low: low-pass filter ``W^L`` (the same one analysis used).
        high: high-pass filter ``W^H``.
        output_size: ``(H, W)`` to crop to, each ``2h`` or ``2h - 1`` (resp. ``w``);
            default ``(2h, 2w)``.

    Returns:
        Tensor of shape ``(N, C, H, W)``.
    """
    _check_input(y, "y", channels_multiple=4)
    low, high = _as_filter(low, y, "low"), _as_filter(high, y, "high")
    if low.shape != high.shape:
        raise ValueError(f"low and high must have the same length, got {low.shape[0]} and {high.shape[0]}")
    h, w = y.shape[-2:]
    out_h, out_w = (2 * h, 2 * w) if output_size is None else (int(output_size[-2]), int(output_size[-1]))
    if out_h not in (2 * h, 2 * h - 1) or out_w not in (2 * w, 2 * w - 1):
        raise ValueError(
            f"output_size {(out_h, out_w)} does not match subbands of size {(h, w)}: "
            f"expected height {2 * h} or {2 * h - 1} and width {2 * w} or {2 * w - 1}"
        )
    y = y.contiguous()
    x = _Synthesis.apply(y, low, high) if _needs_autograd(y, low, high) else _synthesis_raw(y, low, high)
    if (out_h, out_w) != (2 * h, 2 * w):
        x = x[..., :out_h, :out_w]
    return x
