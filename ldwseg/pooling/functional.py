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

Implementation: with ``K = 2m`` taps (odd ``K`` gets a trailing zero tap), output
``(i, j)`` of band ``XY`` only reads the four polyphase planes ``P_pq = x[p::2, q::2]``
at ``(i + a, j + c)`` for ``a, c < m``. So the whole transform is

    bands = sum_{a,c} M_ac @ roll(P, (-a, -c)),    M_ac[XY, pq] = Y[2a + p] * X[2c + q]

a few 4x4 matrix products over the stacked planes (periodic extension is the roll, exact
for maps of any size), which BLAS streams at memory speed. The input gradient of
analysis *is* synthesis (``sum roll(M_ac^T @ g, (a, c))``) and vice versa, and the
gradient of the mixing matrices is ``g @ roll(P)^T``; autograd carries it back to
``W^L`` and ``W^H``. The rolls are never made: for ``m > 1`` the planes get a periodic
margin of ``m - 1`` rows and columns when they are split, so in the flattened planes the
shift ``(a, c)`` is just the offset ``a * (w + m - 1) + c`` and every product reads a view
(the adjoint adds the margin back). On the CPU a map is processed in pieces of about 2 MiB
through scratch buffers allocated once per call, so the only input-sized allocations are
the results; for the filter gradient analysis keeps its input (or, for ``K = 2``, its
output), not a copy of its planes (:mod:`ldwseg.pooling.polyphase`). Nothing here changes
the process's memory allocator (:mod:`ldwseg.pooling.allocator` is an explicit opt-in).

Layouts: NCHW-contiguous and channels-last maps are read and written in place, and the
result has the input's memory format, so a channels-last model stays channels-last; other
strides are copied to NCHW first.

Precision: under ``torch.autocast`` (bf16 or fp16, on any device) both functions turn
autocast off, run in float32 (half-precision inputs are upcast) and return float32, as
autocast does for normalisation layers. The 4x4 mixing, its accumulation and the filter
gradient then keep float32 accuracy: a pool and its reverse pool reconstruct their input
to float32 rounding, where running them in bf16 would lose all but ~50 dB. Outside
autocast they run in the input's dtype.

Export and compile: that fast path writes into preallocated buffers (``out=``, ``copy_``
into views) and splits the batch with Python ints read from the shapes: a graph capture
freezes those ints, the TorchScript tracer records the empty output buffer but not the
writes into its views, so its ONNX graph returns uninitialised memory, and dynamo cannot
trace an ``out=`` view at all (``torch.compile`` would break the graph at every pool). While
``torch.jit.trace`` (``torch.onnx.export(..., dynamo=False)``), ``torch.export``
(``dynamo=True``) or ``torch.compile`` records the model, both functions therefore compute
the same maths out of ops whose sizes stay symbolic, and autograd differentiates them (no
custom Function):

* the four phases are strided slices; the odd phase of a side is taken from the side
  extended by its last entry, which is the replicate padding of an odd side and leaves an
  even side unchanged, so no branch depends on the parity;
* the periodic margin is a window, with symbolic bounds, of the planes repeated ``m``
  times (exact also for maps smaller than the margin);
* the mixing is one grouped ``conv2d`` (``C`` groups of 4 planes) with the weight
  ``W[XY, pq, a, c] = M_ac[XY, pq]``; synthesis puts the margin in front, correlates with
  the weight transposed in ``(XY, pq)`` and reversed in ``(a, c)``, and interleaves the
  planes by a pixel shuffle;
* :func:`pad_to_even` extends every side by its last entry and cuts it to the even size.

Only the filter length and the channel count are frozen into the graph. Batch, height and
width stay symbolic, so a model exported with them declared dynamic (``dynamic_axes`` /
``dynamic_shapes``) is exact at every size, odd or even, whatever size it was exported at;
declared static, the runtime rejects other sizes rather than computing them wrongly. This
path is slower than the fast one when run eagerly, which only matters while capturing; under
``torch.compile`` the compiler fuses its ops (``fullgraph=True`` works).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .capture import _capture_analysis, _capture_synthesis, _capturing, _static_sizes, _with_last
from .polyphase import _Analysis, _analysis, _mixing_matrices, _Synthesis, _synthesis

__all__ = ["ldw_analysis", "ldw_synthesis", "pad_to_even", "subband_shape"]


def subband_shape(height: int, width: int) -> tuple[int, int]:
    """Spatial size of the subbands for an ``height x width`` input: the ceiling halves."""
    return (height + 1) // 2, (width + 1) // 2


def pad_to_even(x: Tensor) -> Tensor:
    """Pad the last two dimensions to even sizes by repeating the last row/column.

    While a graph is captured the parity of the sizes is not known: the map is extended by
    its last row and column and cut to ``2 * ceil(H / 2) x 2 * ceil(W / 2)``, with sizes
    that stay symbolic (see "Export" in the module docstring).
    """
    if _capturing():
        h, w = x.shape[-2], x.shape[-1]
        return _with_last(_with_last(x, -2), -1)[..., : (h + 1) // 2 * 2, : (w + 1) // 2 * 2]
    pad_h, pad_w = x.shape[-2] % 2, x.shape[-1] % 2
    if pad_h == 0 and pad_w == 0:
        return x
    return F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")


def _as_filter(f: Tensor | Sequence[float], like: Tensor, name: str) -> Tensor:
    if isinstance(f, Tensor):
        # not torch.as_tensor: torch.jit.trace records its result as a constant, not the parameter
        f = f.to(dtype=like.dtype, device=like.device)
    else:
        f = torch.as_tensor(f, dtype=like.dtype, device=like.device)
    if f.dim() != 1 or f.shape[0] < 2:
        raise ValueError(f"{name} must be a 1-D filter with at least 2 taps, got shape {tuple(f.shape)}")
    return f


def _filter_pair(low: Tensor | Sequence[float], high: Tensor | Sequence[float], like: Tensor) -> tuple[Tensor, Tensor]:
    low, high = _as_filter(low, like, "low"), _as_filter(high, like, "high")
    if low.shape != high.shape:
        raise ValueError(f"low and high must have the same length, got {low.shape[0]} and {high.shape[0]}")
    return low, high


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
            f"{what} must have a multiple of {channels_multiple} channels ([LL|LH|HL|HH] blocks), got {x.shape[1]}"
        )
    if x.shape[-2] == 0 or x.shape[-1] == 0:
        raise ValueError(f"{what} has an empty spatial size {tuple(x.shape[-2:])}")


def _check_output_size(h: int, w: int, output_size: Sequence[int] | None) -> tuple[int, int]:
    """The ``(H, W)`` that subbands of size ``h x w`` synthesise to: ``output_size`` or ``(2h, 2w)``."""
    out_h, out_w = (2 * h, 2 * w) if output_size is None else (int(output_size[-2]), int(output_size[-1]))
    if out_h not in (2 * h, 2 * h - 1) or out_w not in (2 * w, 2 * w - 1):
        raise ValueError(
            f"output_size {(out_h, out_w)} does not match subbands of size {(h, w)}: "
            f"expected height {2 * h} or {2 * h - 1} and width {2 * w} or {2 * w - 1}"
        )
    return out_h, out_w


def _needs_autograd(*tensors: Tensor) -> bool:
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def _autocast_on(t: Tensor) -> bool:
    """Whether autocast is enabled for ``t``'s device (see "Precision" in the module docstring)."""
    device = t.device.type
    return torch.amp.is_autocast_available(device) and torch.is_autocast_enabled(device)


def _at_least_float32(t: Tensor) -> Tensor:
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def _dense(t: Tensor) -> Tensor:
    """``t`` itself when NCHW- or channels-last-contiguous (the layouts the fast path reads), else an NCHW copy."""
    if t.is_contiguous() or t.is_contiguous(memory_format=torch.channels_last):
        return t
    return t.contiguous()


def ldw_analysis(x: Tensor, low: Tensor | Sequence[float], high: Tensor | Sequence[float]) -> Tensor:
    """LDW pooling (Eqs. 3-8): split each channel into four half-size subbands.

    Args:
        x: input of shape ``(N, C, H, W)``, any floating dtype, NCHW or channels-last.
        low: low-pass filter ``W^L`` of length ``K``.
        high: high-pass filter ``W^H`` of length ``K``.

    Returns:
        Tensor of shape ``(N, 4C, ceil(H/2), ceil(W/2))`` holding ``[LL | LH | HL | HH]``, in
        ``x``'s dtype (float32 or wider under autocast) and memory format.

    Under ``torch.jit.trace`` and ``torch.export`` (both ONNX exporters) the same result is
    computed by ops that keep batch, height and width symbolic; see "Export" in the module
    docstring.

    Example:
        >>> import pywt, torch
        >>> w = pywt.Wavelet("haar")
        >>> ldw_analysis(torch.ones(1, 1, 4, 4), w.rec_lo, w.rec_hi)[0, :, 0, 0].round(decimals=6)
        tensor([2., 0., 0., 0.])
    """
    if isinstance(x, Tensor) and _autocast_on(x):
        with torch.autocast(x.device.type, enabled=False):
            return ldw_analysis(_at_least_float32(x), low, high)
    if _capturing():
        with _static_sizes():
            _check_input(x, "x")
            low, high = _filter_pair(low, high, x)
        return _capture_analysis(x, low, high)
    _check_input(x, "x")
    low, high = _filter_pair(low, high, x)
    x = _dense(pad_to_even(x))
    mix = _mixing_matrices(low, high)
    return _Analysis.apply(x, mix) if _needs_autograd(x, mix) else _analysis(x, mix)


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
        Tensor of shape ``(N, C, H, W)``, in ``y``'s dtype (float32 or wider under autocast) and
        memory format (cropped to ``output_size`` by a view).

    Under ``torch.jit.trace`` and ``torch.export`` a symbolic ``output_size`` (e.g.
    ``x.shape[-2:]`` of the pooled input) stays symbolic in the graph, so the crop follows
    the runtime size; it is checked against the subbands only when its sizes are plain ints.
    """
    if isinstance(y, Tensor) and _autocast_on(y):
        with torch.autocast(y.device.type, enabled=False):
            return ldw_synthesis(_at_least_float32(y), low, high, output_size=output_size)
    if _capturing():
        with _static_sizes():
            _check_input(y, "y", channels_multiple=4)
            low, high = _filter_pair(low, high, y)
        sizes = (*y.shape[-2:], *(() if output_size is None else output_size[-2:]))
        if all(type(s) is int for s in sizes):  # symbolic sizes were checked when run eagerly
            _check_output_size(y.shape[-2], y.shape[-1], output_size)
        return _capture_synthesis(y, low, high, output_size)
    _check_input(y, "y", channels_multiple=4)
    low, high = _filter_pair(low, high, y)
    h, w = y.shape[-2:]
    out_h, out_w = _check_output_size(h, w, output_size)
    y = _dense(y)
    mix = _mixing_matrices(low, high)
    x = _Synthesis.apply(y, mix) if _needs_autograd(y, mix) else _synthesis(y, mix)
    if (out_h, out_w) != (2 * h, 2 * w):
        x = x[..., :out_h, :out_w]
    return x
