"""Energy attention under tiled inference: the gates of the whole image, found window by window.

:class:`~ldwseg.pooling.EnergyAttention` gates every channel by an energy summed over the
*whole* map (Eq. 16), which no window sees. :func:`whole_image_gates` computes those
gates as the whole image would: one pass over the windows per attention module, in the
order the model runs them, each summing the module's energy density over the window
cores (mapped to that module's resolution), with the gates found so far held fixed and
the forward pass stopped at the module. The final pass then runs with every gate fixed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from ..pooling import EnergyAttention

__all__ = ["Span", "attention_modules", "whole_image_gates"]

Span = tuple[int, int, int, int]
"""``(core_start, core_stop, window_start, window_stop)`` along one axis of an image."""

log = logging.getLogger(__name__)


class _GatesFound(Exception):
    """Ends a gate pass's forward run once the attention module of the pass has been reached."""


def _core_at(span: Span, size: int, length: int) -> slice:
    """The core of an axis span on a map of ``length`` pixels at a coarser resolution.

    The map's scale is the power of two ``s`` with ``ceil(window / s) == length`` (the
    smallest one: a window of one level pixel has a core of 0 or 1 pixels at any larger
    scale too). Windows start at multiples of the scale, and a level pixel belongs to
    the window whose core holds its first input pixel, so the cores of all windows still
    partition the level's pixels.
    """
    core_start, core_stop, start, stop = span
    if (start, stop) == (0, size):
        return slice(0, length)
    scale = 1
    while -(-(stop - start) // scale) > length:
        scale *= 2
    return slice(-(-(core_start - start) // scale), -(-(core_stop - start) // scale))


def attention_modules(model: nn.Module | None) -> list[EnergyAttention]:
    """The energy attention modules of ``model``, in the order ``modules()`` lists them."""
    return [] if model is None else [m for m in model.modules() if isinstance(m, EnergyAttention)]


@contextmanager
def whole_image_gates(
    modules: list[EnergyAttention],
    fn: Callable[[Tensor], Tensor],
    x: Tensor,
    rows: list[Span],
    cols: list[Span],
    ticks: Iterator[int],
) -> Iterator[None]:
    """Hold each of the energy attention ``modules`` at the gates of the whole image ``x``.

    The gates are found without gradients, in the order the modules run, each pass with
    the gates found before it held fixed."""
    if not modules:
        yield
        return
    try:
        for module in modules:
            with torch.no_grad():
                energy = _whole_image_energy(module, fn, x, rows, cols, ticks)
                module.fixed_gates = module.gates(energy)
        log.info("energy attention: gates of %d modules computed over the whole image", len(modules))
        yield
    finally:
        for module in modules:
            module.fixed_gates = None


def _whole_image_energy(
    module: EnergyAttention,
    fn: Callable[[Tensor], Tensor],
    x: Tensor,
    rows: list[Span],
    cols: list[Span],
    ticks: Iterator[int],
) -> Tensor:
    """Eq. 16 for ``module`` over the whole image: its energy density summed over the window cores."""
    height, width = x.shape[-2:]
    sums: list[Tensor] = []
    pixels = 0
    window: tuple[Span, Span] = rows[0], cols[0]

    def collect(_: nn.Module, args: tuple[Tensor, ...]) -> None:
        nonlocal pixels
        z = module.energy_density(args[0])
        core = z[..., _core_at(window[0], height, z.shape[-2]), _core_at(window[1], width, z.shape[-1])]
        sums.append(core.sum((-2, -1)))
        pixels += core.shape[-2] * core.shape[-1]
        raise _GatesFound

    handle = module.register_forward_pre_hook(collect)
    try:
        for window in ((row, col) for row in rows for col in cols):
            try:
                fn(x[..., window[0][2] : window[0][3], window[1][2] : window[1][3]])
            except _GatesFound:
                next(ticks, None)
                continue
            raise ValueError("fn ran a window without reaching an energy attention module of model; "
                             "pass the model that fn runs")  # fmt: skip
    finally:
        handle.remove()
    return module.energy_of(torch.stack(sums).sum(0), pixels)
