"""Model size and cost: unique parameters and FLOPs of one forward pass.

FLOPs are what :class:`torch.utils.flop_counter.FlopCounterMode` counts: 2 per
multiply-add of matrix products and convolutions, i.e. ``2 * M * N * K`` for an
``(M, K) @ (K, N)`` product and ``2 * Cin/groups * Cout * prod(kernel) * prod(out_size)``
per image for a convolution (biases excluded). Element-wise operations (activations,
normalisation, additions) are not counted; halve the count for multiply-accumulates
(MACs). LDW pooling is a few ``4 x 4`` batched matrix products over the polyphase planes
(see :mod:`ldwseg.pooling.functional`), so it is counted, at ``2 * 4 * K^2`` FLOPs per
input channel and output position for ``K``-tap filters.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["count_flops", "count_parameters", "format_count"]

_UNITS = ("", "K", "M", "G", "T", "P")


def count_parameters(model: nn.Module) -> int:
    """Number of parameter elements, each tied (shared) parameter counted once."""
    return sum(p.numel() for p in model.parameters())


def _inplace_product_flops(
    self_shape: Sequence[int], a_shape: Sequence[int], b_shape: Sequence[int], *args: object, **kwargs: object
) -> int:
    """``2 * (M * K * N)`` per matrix of ``self += a @ b`` (``addmm_``/``baddbmm_``)."""
    *batch, m, k = a_shape
    return 2 * math.prod(batch) * m * k * b_shape[-1]


# FlopCounterMode knows addmm and baddbmm but not their in-place forms, which the LDW
# core uses to accumulate its shifted products; without these it misses all but one.
_EXTRA_FORMULAS = {
    torch.ops.aten.addmm_: _inplace_product_flops,
    torch.ops.aten.baddbmm_: _inplace_product_flops,
}


def count_flops(model: nn.Module, input_shape: Sequence[int], *, device: torch.device | str | None = None) -> int:
    """FLOPs of ``model(torch.zeros(input_shape))`` as defined in the module docstring.

    The forward pass runs under ``torch.no_grad()`` in eval mode (BatchNorm then uses
    its running statistics and leaves them alone); each submodule's training flag is
    restored afterwards.

    Args:
        model: the model.
        input_shape: the full input shape, batch included, e.g. ``(1, 3, 512, 512)``.
        device: where to create the input; default: where the model's parameters are
            (the CPU for a model without any).
    """
    first = next(model.parameters(), None)
    model_device = torch.device("cpu") if first is None else first.device
    device = model_device if device is None else torch.device(device)
    if first is not None and (device.type != model_device.type or device.index not in (None, model_device.index)):
        raise ValueError(
            f"the model is on {model_device} but device={str(device)!r}; move the model with "
            f"model.to({str(device)!r}) or leave device unset"
        )
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.get_default_dtype())
    x = torch.zeros(tuple(input_shape), dtype=dtype, device=device)
    training = {m: m.training for m in model.modules()}
    counter = FlopCounterMode(display=False, custom_mapping=_EXTRA_FORMULAS)
    try:
        model.eval()
        with torch.no_grad(), counter:
            model(x)
    finally:
        for m, flag in training.items():
            m.training = flag
    return counter.get_total_flops()


def format_count(n: float) -> str:
    """``n`` with a decimal unit prefix and two decimals: ``1234567 -> "1.23 M"``, ``12 -> "12"``."""
    if abs(n) < 1000:
        return f"{n:g}" if isinstance(n, float) else str(n)
    power = 1
    while power < len(_UNITS) - 1 and abs(n) / 1000**power >= 999.995:  # would print as "1000.00"
        power += 1
    return f"{n / 1000**power:.2f} {_UNITS[power]}"
