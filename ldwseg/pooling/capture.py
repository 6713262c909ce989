"""LDW analysis and synthesis while a graph is captured (``torch.jit.trace``, ``torch.export``).

The fast path (:mod:`ldwseg.pooling.polyphase`) writes into preallocated buffers and reads
sizes as Python ints, which a capture freezes or loses; here the same maths is built of
ops whose batch, height and width stay symbolic, differentiated by autograd (see "Export"
in :mod:`ldwseg.pooling.functional`).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor

# absent from older torch releases, where torch.export (and dynamo=True) takes the fast path
_is_exporting = getattr(torch.compiler, "is_exporting", None)


def _capturing() -> bool:
    """True while ``torch.jit.trace``, ``torch.export`` or ``torch.compile`` records the model (the
    TorchScript and the dynamo ONNX exporters, and the compiler); plain calls are not.

    The compiler too: dynamo cannot trace the fast path's writes into views of preallocated
    buffers (``out=`` of a non-contiguous view) and would break the graph at every pool, running
    it eagerly between compiled pieces; these ops it captures whole, and inductor fuses them."""
    return torch.jit.is_tracing() or torch.compiler.is_compiling() or (_is_exporting is not None and _is_exporting())


@contextmanager
def _static_sizes() -> Iterator[None]:
    """Read sizes that the model fixes (channels, filter taps) or that only validate the example.

    ``torch.jit.trace`` hands out sizes as traced tensors and warns when one becomes a Python
    value, because that value is frozen into the graph. Inside this block every such read is
    one that must be frozen (the filter length and channel count cannot change without new
    parameters) or a check of the example input that does not enter the graph, so the
    warning is silenced. Outside tracing this is a no-op (``torch.export`` has no warning).
    """
    if not torch.jit.is_tracing():
        yield
        return
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        yield


def _static_size(size: int | Tensor | torch.SymInt) -> int:
    """A size the model fixes (e.g. a channel count) as a Python int, without a tracer warning.

    For a size that varies between inputs use the size itself: this freezes it into a trace."""
    if type(size) is int:
        return size
    with _static_sizes():
        return int(size)


def _with_last(t: Tensor, dim: int) -> Tensor:
    """``t`` followed by a copy of its last entry along ``dim`` (replicate padding by one)."""
    last = [slice(None)] * t.dim()
    last[dim] = slice(-1, None)
    return torch.cat([t, t[tuple(last)]], dim)


def _periodic(t: Tensor, dim: int, before: int, after: int) -> Tensor:
    """Entry ``r`` is ``t[(r - before) mod n]`` for ``r < before + n + after``, ``n = t.shape[dim]``.

    Entry ``j`` of ``t`` repeated ``before + after + 1`` times is ``t[j mod n]``, and for
    every ``n >= 1`` that repetition is long enough to hold the window of ``n + before + after``
    entries starting at ``before * (n - 1)``, which is ``-before`` modulo ``n``. So it is exact
    also for maps smaller than the margin, and only slices with symbolic bounds (no remainder of
    a symbolic size, which the dynamo exporter cannot convert).
    """
    margin = before + after
    if margin == 0:
        return t
    n = t.shape[dim]
    start = before * (n - 1)
    window = [slice(None)] * t.dim()
    window[dim] = slice(start, start + n + margin)
    return torch.cat([t] * (margin + 1), dim)[tuple(window)]


def _block_order(blocks: int, c: int, device: torch.device) -> Tensor:
    """Indices that reorder channels ``k * c + i`` (``blocks`` blocks of ``c``) to ``i * blocks + k``:
    ``index_select(1, _block_order(b, c))`` turns channel ``k * c + i`` into channel ``i * b + k``."""
    return torch.arange(blocks * c, device=device).view(blocks, c).T.reshape(-1)


def _capture_weight(low: Tensor, high: Tensor) -> Tensor:
    """The mixing matrices as a conv2d weight ``(4, 4, m, m)``.

    ``W[2X + Y, 2p + q, a, c] = M_ac[XY, pq] = Y[2a + p] * X[2c + q]``, as in
    :func:`_mixing_matrices` (an odd ``K`` gets a trailing zero tap)."""
    f = torch.stack([low, high])
    if int(f.shape[1]) % 2:
        f = torch.cat([f, f.new_zeros(2, 1)], dim=1)
    m = int(f.shape[1]) // 2
    g = f.view(2, m, 2).transpose(1, 2)  # [filter, phase, coarse tap]
    # dims (X, Y, p, q, a, c): g[Y, p, a] * g[X, q, c]
    return (g[None, :, :, None, :, None] * g[:, None, None, :, None, :]).reshape(4, 4, m, m)


# The channel reorders below are gathers with constant indices, not reshapes: the TorchScript
# exporter infers the sizes after a reshape built from Shape ops as the traced ones, and then
# folds a later module's size reads (EnergyAttention's pixel count) into constants.


def _capture_analysis(x: Tensor, low: Tensor, high: Tensor) -> Tensor:
    """:func:`ldw_analysis` out of ops that a graph capture records with symbolic sizes.

    ``bands = sum_ac M_ac @ P(i + a, j + c)`` is a stride-1 correlation of the planes, extended
    periodically by ``m - 1`` rows and columns, with :func:`_capture_weight`; each channel's
    four planes form one group of a grouped conv2d, whose output is ordered ``(C, XY)`` and
    is reordered to the ``[LL | LH | HL | HH]`` blocks ``(XY, C)``.
    """
    with _static_sizes():
        c = int(x.shape[1])
        weight = _capture_weight(low, high)
        margin = int(weight.shape[-1]) - 1
    rows = (x[..., 0::2, :], _with_last(x, -2)[..., 1::2, :])
    # plane 2p + q of x replicate-padded to even sides, as channels (2p + q) * C + c
    planes = torch.cat([phase for r in rows for phase in (r[..., 0::2], _with_last(r, -1)[..., 1::2])], dim=1)
    planes = planes.index_select(1, _block_order(4, c, x.device))  # channel 4c + 2p + q
    planes = _periodic(_periodic(planes, -2, 0, margin), -1, 0, margin)
    bands = F.conv2d(planes, weight.repeat(c, 1, 1, 1), groups=c)  # channel 4c + XY
    return bands.index_select(1, _block_order(c, 4, x.device))


def _capture_synthesis(y: Tensor, low: Tensor, high: Tensor, output_size: Sequence | None) -> Tensor:
    """:func:`ldw_synthesis` out of ops that a graph capture records with symbolic sizes.

    The adjoint of :func:`_capture_analysis`: ``P(i, j) = sum_ac M_ac^T @ bands((i - a) mod h,
    (j - c) mod w)``. With the bands extended periodically by ``m - 1`` in front, that is a
    correlation with the weight transposed in (bands, planes) and reversed in ``(a, c)``; the
    planes ``2p + q`` are then interleaved to ``x[2i + p, 2j + q]`` (a pixel shuffle) and cropped.
    """
    with _static_sizes():
        c = int(y.shape[1]) // 4
        weight = _capture_weight(low, high)
        m = int(weight.shape[-1])
    reverse = torch.arange(m - 1, -1, -1, device=weight.device)
    adjoint = weight.transpose(0, 1).index_select(2, reverse).index_select(3, reverse)
    bands = y.index_select(1, _block_order(4, c, y.device))  # channel 4c + XY
    bands = _periodic(_periodic(bands, -2, m - 1, 0), -1, m - 1, 0)
    planes = F.conv2d(bands, adjoint.repeat(c, 1, 1, 1), groups=c)  # channel 4c + 2p + q
    x = F.pixel_shuffle(planes, 2)
    if output_size is not None:
        # the sizes stay symbolic (traced or SymInt), so this crops at every runtime size
        x = x[..., : output_size[-2], : output_size[-1]]
    return x
