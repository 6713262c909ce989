"""The fast path of LDW analysis and synthesis: 4x4 mixing of the polyphase planes.

With ``K = 2m`` taps the analysis is ``sum_{a,c} M_ac @ roll(P, (-a, -c))`` over the four
stacked polyphase planes ``P`` (see :mod:`ldwseg.pooling.functional` for the maths). The
backward passes are written by hand: the input gradient of analysis is synthesis and vice
versa, and the gradient of the mixing matrices is a 4x4 gram of the planes and the bands.

How a map is laid out and cut into pieces, and the scratch buffers, is
:mod:`ldwseg.pooling.pieces`. For the filter gradient analysis keeps a tensor that the
network holds anyway, never a copy of its planes: its input, split again piece by piece in
backward, or for ``K = 2`` its output, whose bands are ``M @ P`` (:func:`_output_inverse`).
"""

from __future__ import annotations

import contextlib
import math

import torch
from torch import Tensor

from .pieces import Pieces, bands_view, buffer_view, empty_in_layout, image_view, is_channels_last

_MAX_CONDITION = 16.0
"""The largest condition number of ``M`` for which the filter gradient of a K = 2 analysis is
taken from its output: the output's rounding is amplified by at most this factor."""


def _split(image: Tensor, pad: int, flat: Tensor) -> Tensor:
    """Polyphase planes ``P[:, 2p + q, co, i, j, ci] = image[:, co, i, p, j, q, ci]`` in ``flat``.

    The planes are extended periodically by ``pad`` rows and columns, so that every shifted
    window of :func:`_mix` is a plain offset into the flat planes. One copy through a permuted
    view reads each input row once: measured 10-30% faster on the CPU than four copies of the
    strided phases."""
    n, co, h, _, w, _, ci = image.shape
    planes = buffer_view(flat, (n, 4, co, h + pad, w + pad, ci))
    phases = image.permute(0, 3, 5, 1, 2, 4, 6)
    target = planes.view(n, 2, 2, co, h + pad, w + pad, ci)
    (target[..., :h, :w, :] if pad else target).copy_(phases)
    for i in range(h, h + pad):
        planes[..., i, :w, :].copy_(planes[..., i % h, :w, :])
    for j in range(w, w + pad):
        planes[..., j, :].copy_(planes[..., j % w, :])
    return planes


def _merge(planes: Tensor, image: Tensor) -> None:
    """Inverse of :func:`_split` without margin: ``image[:, co, i, p, j, q, ci] = planes[:, 2p + q, co, i, j, ci]``.

    Four copies, one per phase: measured 20-60% faster on the CPU than one copy through a
    permuted view (the reverse holds for :func:`_split`), most on small maps."""
    phases = planes.unbind(1)
    for p, rows in enumerate(image.unbind(3)):
        for q, target in enumerate(rows.unbind(4)):
            target.copy_(phases[2 * p + q])


def _zero_pad(bands: Tensor, pad: int, flat: Tensor | None) -> Tensor:
    """Subbands ``(n, 4, Co, h, w, Ci)`` with a zero margin of ``pad`` rows and columns, copied to
    ``flat``; without a buffer (no margin, NCHW rows) the bands themselves."""
    if flat is None:
        return bands
    n, _, co, h, w, ci = bands.shape
    padded = buffer_view(flat, (n, 4, co, h + pad, w + pad, ci))
    padded[..., :h, :w, :].copy_(bands)
    if pad:
        padded[..., h:, :, :].zero_()
        padded[..., :h, w:, :].zero_()
    return padded


def _fold(padded: Tensor, h: int, w: int) -> Tensor:
    """Adjoint of the periodic extension of :func:`_split`: add the margin back, in place."""
    for i in range(h, padded.shape[-3]):
        padded[..., i % h, :, :].add_(padded[..., i, :, :])
    for j in range(w, padded.shape[-2]):
        padded[..., :h, j % w, :].add_(padded[..., :h, j, :])
    return padded[..., :h, :w, :]


def _mixing_matrices(low: Tensor, high: Tensor) -> Tensor:
    """``M[a * m + c][2X + Y, 2p + q] = Y[2a + p] * X[2c + q]`` with ``X, Y`` in (low, high)."""
    f = torch.stack([low, high])
    if f.shape[1] % 2:
        f = torch.cat([f, f.new_zeros(2, 1)], dim=1)
    m = f.shape[1] // 2
    f = f.view(2, m, 2)  # [filter, coarse tap a, phase p]
    mix = torch.einsum("yap,xcq->acxypq", f, f)
    return mix.reshape(m * m, 4, 4)


def _margin(mix: Tensor) -> int:
    """Rows and columns of periodic margin the ``m * m`` shifts need: ``m - 1``."""
    return math.isqrt(int(mix.shape[0])) - 1


def _windows(planes: Tensor, count: int) -> list[tuple[int, int, int]]:
    """``(k, offset, length)`` of the shifted windows in the flat padded planes ``(n, 4, Co, h', w', Ci)``.

    Shift ``(a, c)`` is the offset ``(a * w' + c) * Ci``; every window has the same length,
    which covers all valid outputs (``i < h, j < w``)."""
    m = math.isqrt(int(count))
    width, ci = planes.shape[-2], planes.shape[-1]
    length = math.prod(planes.shape[2:]) - (m - 1) * (width + 1) * ci
    return [(a * m + c, (a * width + c) * ci, length) for a in range(m) for c in range(m)]


def _mix(planes: Tensor, mix: Tensor, out: Tensor, flat: Tensor | None) -> None:
    """``out = sum_ac M_ac @ roll(P, (-a, -c))`` (analysis of one piece) into the bands view ``out``.

    ``planes`` carry the periodic margin of :func:`_split`, so each shifted window is a view.
    The sum is accumulated in ``flat``; without a buffer (one product, NCHW rows) it is written
    to ``out`` directly. ``bmm`` with an expanded (stride-0) matrix streams the planes in place,
    where ``torch.matmul`` would fold the product into one GEMM on a transposed copy."""
    n = planes.shape[0]
    rows = planes.view(n, 4, -1)
    if flat is None:
        torch.bmm(mix[0].expand(n, 4, 4), rows, out=out.view(n, 4, -1))
        return
    acc = buffer_view(flat, rows.shape)
    for k, offset, length in _windows(planes, mix.shape[0]):
        window = rows[:, :, offset : offset + length]
        if k == 0:
            torch.bmm(mix[k].expand(n, 4, 4), window, out=acc[:, :, :length])
        else:
            acc[:, :, :length].baddbmm_(mix[k].expand(n, 4, 4), window)
    h, w = out.shape[-3:-1]
    out.copy_(acc.view_as(planes)[..., :h, :w, :])


def _unmix(padded: Tensor, mix: Tensor, flat: Tensor) -> Tensor:
    """Adjoint of :func:`_mix`: the planes ``sum_ac roll(M_ac^T @ bands, (a, c))`` of one piece, in ``flat``.

    ``padded`` holds the bands with a zero margin (:func:`_zero_pad`)."""
    n = padded.shape[0]
    rows = padded.view(n, 4, -1)
    acc = buffer_view(flat, rows.shape)
    for k, offset, length in _windows(padded, mix.shape[0]):
        product = mix[k].T.expand(n, 4, 4)
        if k == 0:
            torch.bmm(product, rows[:, :, :length], out=acc[:, :, :length])
            if length < acc.shape[-1]:
                acc[:, :, length:].zero_()
        else:
            acc[:, :, offset : offset + length].baddbmm_(product, rows[:, :, :length])
    pad = _margin(mix)
    planes = acc.view_as(padded)
    return _fold(planes, padded.shape[-3] - pad, padded.shape[-2] - pad) if pad else planes


def _add_products(gram: Tensor, a: Tensor, b: Tensor) -> None:
    """``gram += sum_n a_n @ b_n^T`` for rows ``a, b`` of shape ``(n, 4, L)`` with unit stride along ``L``.

    Several samples make a batched product, which runs on every thread. BLAS runs a single
    ``4 x L`` by ``L x 4`` product on one thread, so one sample's product is cut into blocks
    of ``L`` to make a batch of them."""
    n, _, length = a.shape
    blocks = min(16, length // 2**14)
    if n > 1 or blocks < 2:
        gram += torch.bmm(a, b.transpose(1, 2)).sum(0)
        return
    main = length - length % blocks
    blocked_a = a[0, :, :main].view(4, blocks, -1).transpose(0, 1)
    blocked_b = b[0, :, :main].view(4, blocks, -1).transpose(0, 1)
    gram += torch.bmm(blocked_a, blocked_b.transpose(1, 2)).sum(0)
    if main < length:
        gram.addmm_(a[0, :, main:], b[0, :, main:].T)


def _gram(planes: Tensor, padded: Tensor, gram: Tensor) -> None:
    """``gram[ac] += sum_n bands_n @ roll(P_n, (-a, -c))^T``: the gradient of :func:`_mix` in ``M``.

    ``planes`` carry the periodic margin, ``padded`` holds the bands with a zero one (:func:`_zero_pad`)."""
    n = planes.shape[0]
    rows, bands = planes.view(n, 4, -1), padded.view(n, 4, -1)
    for k, offset, length in _windows(planes, gram.shape[0]):
        _add_products(gram[k], bands[:, :, :length], rows[:, :, offset : offset + length])


def _analysis(x: Tensor, mix: Tensor) -> Tensor:
    """Analysis of an even-sized map ``x`` (NCHW- or channels-last-contiguous), in ``x``'s layout."""
    channels_last, pad = is_channels_last(x), _margin(mix)
    n, c, h2, w2 = x.shape
    out = empty_in_layout(x, (n, 4 * c, h2 // 2, w2 // 2), channels_last)
    pieces = Pieces(out.shape, x, channels_last, pad)
    planes_buf, acc_buf = pieces.scratch(True, pad > 0 or channels_last)
    images, bands = pieces.cut(image_view(x, channels_last), True), pieces.cut(bands_view(out, channels_last), False)
    for image, band in zip(images, bands):
        _mix(_split(image, pad, planes_buf), mix, band, acc_buf)
    return out


def _synthesis(y: Tensor, mix: Tensor) -> Tensor:
    """Synthesis of subbands ``y`` (NCHW- or channels-last-contiguous) to ``(N, C, 2h, 2w)``, in ``y``'s layout."""
    channels_last, pad = is_channels_last(y), _margin(mix)
    n, c4, h, w = y.shape
    out = empty_in_layout(y, (n, c4 // 4, 2 * h, 2 * w), channels_last)
    pieces = Pieces(y.shape, y, channels_last, pad)
    padded_buf, acc_buf = pieces.scratch(pad > 0 or channels_last, True)
    images, bands = pieces.cut(image_view(out, channels_last), True), pieces.cut(bands_view(y, channels_last), False)
    for image, band in zip(images, bands):
        _merge(_unmix(_zero_pad(band, pad, padded_buf), mix, acc_buf), image)
    return out


def _analysis_backward(x: Tensor | None, g: Tensor, mix: Tensor, channels_last: bool, need_x: bool, need_mix: bool):
    """``(synthesis(g), gram(x, g))`` in one pass over the pieces; ``x`` is needed for the gram only."""
    pad = _margin(mix)
    g = g.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    n, c4, h, w = g.shape
    grad_x = empty_in_layout(g, (n, c4 // 4, 2 * h, 2 * w), channels_last) if need_x else None
    gram = torch.zeros_like(mix) if need_mix else None
    pieces = Pieces(g.shape, g, channels_last, pad)
    padded_buf, acc_buf, planes_buf = pieces.scratch(pad > 0 or channels_last, need_x, need_mix)
    bands = pieces.cut(bands_view(g, channels_last), False)
    grad_images = pieces.cut(image_view(grad_x, channels_last), True) if need_x else [None] * len(bands)
    images = pieces.cut(image_view(x, channels_last), True) if need_mix else [None] * len(bands)
    for band, grad_image, image in zip(bands, grad_images, images):
        padded = _zero_pad(band, pad, padded_buf)
        if grad_image is not None:
            _merge(_unmix(padded, mix, acc_buf), grad_image)
        if image is not None:
            _gram(_split(image, pad, planes_buf), padded, gram)
    return grad_x, gram


def _synthesis_backward(y: Tensor | None, g: Tensor, mix: Tensor, channels_last: bool, need_y: bool, need_mix: bool):
    """``(analysis(g), gram(g, y))``: by ``<g, S(y)> = <A(g), y>`` the mixing gradient of
    synthesis is the analysis gram with signal and cotangent swapped; ``y`` is needed for it only."""
    pad = _margin(mix)
    g = g.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    n, c, h2, w2 = g.shape
    y_shape = (n, 4 * c, h2 // 2, w2 // 2)
    grad_y = empty_in_layout(g, y_shape, channels_last) if need_y else None
    gram = torch.zeros_like(mix) if need_mix else None
    pieces = Pieces(y_shape, g, channels_last, pad)
    through_buffer = pad > 0 or channels_last
    planes_buf, acc_buf, padded_buf = pieces.scratch(True, need_y and through_buffer, need_mix and through_buffer)
    images = pieces.cut(image_view(g, channels_last), True)
    grad_bands = pieces.cut(bands_view(grad_y, channels_last), False) if need_y else [None] * len(images)
    bands = pieces.cut(bands_view(y, channels_last), False) if need_mix else [None] * len(images)
    for image, grad_band, band in zip(images, grad_bands, bands):
        planes = _split(image, pad, planes_buf)
        if grad_band is not None:
            _mix(planes, mix, grad_band, acc_buf)
        if band is not None:
            _gram(planes, _zero_pad(band, pad, padded_buf), gram)
    return grad_y, gram


def _output_inverse(x: Tensor, mix: Tensor) -> Tensor | None:
    """``M^-1`` in float64 when the filter gradient of a K = 2 analysis can come from its output.

    With one mixing matrix the bands are ``out = M P``, so the gram ``g P^T`` of
    :func:`_gram` is ``(g out^T) M^-T``: a product of two contiguous arrays, where the planes
    ``P`` would have to be split from the input again, a strided copy that costs a third of
    the pool's forward and backward on the CPU. Used for NCHW float32/float64 maps on the
    CPU, outside graph capture, and for a well-conditioned ``M`` (see ``_MAX_CONDITION``);
    ``None`` otherwise."""
    if mix.shape[0] != 1 or x.device.type != "cpu" or is_channels_last(x) or torch.compiler.is_compiling():
        return None
    if x.dtype not in (torch.float32, torch.float64):
        return None
    matrix = mix[0].detach().double()
    if torch.linalg.cond(matrix).item() > _MAX_CONDITION:
        return None
    return torch.linalg.inv(matrix)


def _autocast_off(t: Tensor) -> contextlib.AbstractContextManager:
    """Autocast turned off for ``t``'s device: the backward passes below run in their tensors'
    dtype (float32 after an autocast forward) also when called inside an autocast region."""
    device = t.device.type
    if torch.amp.is_autocast_available(device):
        return torch.autocast(device, enabled=False)
    return contextlib.nullcontext()


class _Analysis(torch.autograd.Function):
    """Analysis with a hand-written backward. For the filter gradient it keeps the input
    (which autograd usually holds anyway for the layer before), or for K = 2 the output
    (which the next layer usually holds, see :func:`_output_inverse`), never its planes. The
    output must then not be modified in place before backward (autograd checks this)."""

    @staticmethod
    def forward(ctx, x: Tensor, mix: Tensor) -> Tensor:
        ctx.channels_last = is_channels_last(x)
        out = _analysis(x, mix)
        inverse = _output_inverse(x, mix) if ctx.needs_input_grad[1] else None
        if inverse is None:
            ctx.save_for_backward(x if ctx.needs_input_grad[1] else None, None, mix, None)
        else:
            ctx.save_for_backward(None, out, mix, inverse)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g: Tensor):
        x, out, mix, inverse = ctx.saved_tensors
        need_x, need_mix = ctx.needs_input_grad
        with _autocast_off(g):
            if inverse is None:
                return _analysis_backward(x, g, mix, ctx.channels_last, need_x, need_mix)
            g = g.contiguous()
            grad_x, _ = _analysis_backward(None, g, mix, False, need_x, False)
            n = g.shape[0]
            products = torch.zeros_like(mix[0])
            _add_products(products, g.view(n, 4, -1), out.view(n, 4, -1))
            return grad_x, (products.double() @ inverse.T).to(mix.dtype)[None]  # (g out^T) M^-T


class _Synthesis(torch.autograd.Function):
    @staticmethod
    def forward(ctx, y: Tensor, mix: Tensor) -> Tensor:
        ctx.channels_last = is_channels_last(y)
        ctx.save_for_backward(y if ctx.needs_input_grad[1] else None, mix)
        return _synthesis(y, mix)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g: Tensor):
        y, mix = ctx.saved_tensors
        with _autocast_off(g):
            return _synthesis_backward(y, g, mix, ctx.channels_last, *ctx.needs_input_grad)
