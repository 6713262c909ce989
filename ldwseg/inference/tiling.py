"""Tiled inference: run a fully-convolutional function on a large image one window at a time.

:func:`apply_tiled` cuts ``(N, C, H, W)`` images into overlapping windows of at most
``tile x tile`` pixels, calls ``fn`` on one window at a time and copies into a
preallocated output only the *interior* of each window: every output pixel comes from
the window in which it lies at least ``margin`` pixels away from every edge that is not
an image edge. For a function whose receptive field reaches at most ``margin`` pixels,
and whose windows are aligned on the strides it needs (``multiple``: a UNet with ``d``
downsamplings needs ``2**d``), the result equals ``fn`` applied to the whole image.
:func:`~ldwseg.models.build.input_multiple` gives a model's ``multiple``: ``2**depth`` for
the UNet, the encoder's output stride (32; 16 for DeepLabV3+) for an smp arch, which pads
each window to it as it pads a whole image (where smp needs it). The receptive field of an smp encoder (a
ResNet's reaches hundreds of pixels) exceeds any practical margin, and DeepLabV3+ pools
each window as a whole, so their tiled result is close to the whole image's, not equal.

Energy attention (:class:`~ldwseg.EnergyAttention`) gates every channel by an energy
summed over the *whole* map, which no window sees. Given the ``model`` that ``fn`` runs,
:func:`apply_tiled` first computes those gates as the whole image would: one pass over
the windows per attention module, in the order the model runs them, each summing the
energy over the window cores (mapped to that module's resolution) with the gates found
so far held fixed and stopping the forward pass at that module. The final pass then runs
with every gate fixed, so tiling changes nothing but what the margin does not cover.

Only one window's activations exist at a time, so the peak memory of ``fn`` is that of
a ``tile x tile`` image whatever the image size; the output is written in place, in the
dtype ``fn`` returns (for example ``uint8`` class labels, so that per-class logits of the
whole image are never held).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from .gates import Span, attention_modules, whole_image_gates

__all__ = ["DEFAULT_MARGIN", "DEFAULT_TILE", "Span", "TileOptions", "apply_tiled", "check_tiling", "tile_spans"]

DEFAULT_TILE = 1024
"""Default window side of ``predict`` and ``reconstruct --checkpoint``, in pixels (0 = whole image)."""

DEFAULT_MARGIN = 64
"""Default context kept around each window's interior, in pixels."""

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TileOptions:
    """How a large image is cut into windows (see :func:`apply_tiled`).

    Args:
        tile: the longest window side in pixels; 0 runs the whole image at once.
        margin: context kept around each window's interior, in pixels; cover the model's
            receptive field for a result equal to the whole image's.
        multiple: the alignment of the window starts (``2**depth`` for a UNet, the
            encoder's output stride for an smp arch: :func:`~ldwseg.models.build.input_multiple`).
    """

    tile: int = DEFAULT_TILE
    margin: int = DEFAULT_MARGIN
    multiple: int = 16

    def check(self) -> TileOptions:
        """These options as :func:`apply_tiled` uses them; raises :class:`ConfigError` for bad ones."""
        check_tiling(self.tile, self.margin, self.multiple)
        return self


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def check_tiling(tile: int, margin: int, multiple: int = 1) -> tuple[int, int]:
    """``(tile, margin)`` as :func:`apply_tiled` uses them: rounded to ``multiple`` (tile down, margin up).

    Call it to refuse bad settings before any work is done.

    Raises:
        ConfigError: a negative or non-integer argument, ``multiple < 1``, or a non-zero
            ``tile`` below ``2 * margin + multiple`` (no interior left).
    """
    for name, value, least in (("tile", tile, 0), ("margin", margin, 0), ("multiple", multiple, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ConfigError(f"{name} must be an integer >= {least}, got {value!r}")
    if tile == 0:
        return 0, 0
    rounded, margin = tile // multiple * multiple, _round_up(margin, multiple)
    if rounded - 2 * margin < multiple:
        least = 2 * margin + multiple
        raise ConfigError(
            f"tile={tile} (rounded down to {rounded}, a multiple of {multiple}) leaves no interior with "
            f"margin={margin}: each window keeps tile - 2 * margin pixels; use a tile of at least {least}, "
            "or 0 for the whole image"
        )
    return rounded, margin


def tile_spans(size: int, tile: int, margin: int, multiple: int = 1) -> list[Span]:
    """How :func:`apply_tiled` covers one axis of ``size`` pixels.

    Windows start at multiples of ``multiple`` (``tile`` is rounded down to one,
    ``margin`` up), step by ``tile - 2 * margin`` and the last one is moved back so
    that it ends at the image edge; each is at most ``tile`` long. Consecutive windows
    overlap by at least ``2 * margin`` and the boundary between their cores lies in the
    middle of the overlap. ``tile = 0``, or ``size <= tile``, gives one window.

    Returns:
        ``(core_start, core_stop, window_start, window_stop)`` per window: the cores
        partition ``[0, size)``, each core lies inside its window, and at least
        ``margin`` pixels from each window end that is not ``0`` or ``size``.

    Raises:
        ConfigError: a negative or non-integer argument, or ``tile < 2 * margin + multiple``.
    """
    tile, margin = check_tiling(tile, margin, multiple)
    if tile == 0 or size <= tile:
        return [(0, size, 0, size)]
    step, last = tile - 2 * margin, _round_up(size - tile, multiple)
    starts = [0]
    while starts[-1] + tile < size:
        starts.append(min(starts[-1] + step, last))
    stops = [min(start + tile, size) for start in starts]
    bounds = [0] + [(nxt + stop) // 2 for nxt, stop in zip(starts[1:], stops[:-1])] + [size]
    return [(bounds[i], bounds[i + 1], starts[i], stops[i]) for i in range(len(starts))]


def apply_tiled(
    fn: Callable[[Tensor], Tensor],
    x: Tensor,
    *,
    tile: int = DEFAULT_TILE,
    margin: int = DEFAULT_MARGIN,
    multiple: int = 16,
    model: nn.Module | None = None,
    progress: Callable[[Iterable[int]], Iterable[int]] | None = None,
) -> Tensor:
    """Apply ``fn`` to ``x`` window by window (see the module docstring).

    Args:
        fn: maps ``(N, C, h, w)`` windows of ``x`` (views, possibly non-contiguous) to
            ``(N, C', h, w)`` tensors; any dtype and device. Called once per window, in
            row-major order, under the caller's grad mode (before that, with ``model``,
            once per window and attention module without gradients, for the gates).
        x: ``(N, C, H, W)`` images, any dtype (``uint8`` keeps a huge input small).
        tile: the longest window side in pixels, rounded down to a multiple of
            ``multiple``; ``0`` runs ``fn`` once on the whole image.
        margin: context around each window's interior, rounded up to a multiple of
            ``multiple``; cover ``fn``'s receptive field to get the whole-image result.
        multiple: the alignment of the window starts (``2**depth`` for a UNet, the
            encoder's output stride for an smp arch: :func:`~ldwseg.models.build.input_multiple`).
        model: the module ``fn`` runs; when it holds energy attention and ``x`` needs
            more than one window, the gates are computed over the whole image first.
        progress: wraps ``range(runs)``, the runs of ``fn`` to come (for example a tqdm
            bar), and is advanced after each; used only when there is more than one window.

    Returns:
        ``(N, C', H, W)`` on ``x``'s device, in the dtype of ``fn``'s first output.

    Raises:
        ConfigError: bad ``tile``/``margin``/``multiple`` (see :func:`tile_spans`).
        ValueError: ``x`` is not 4-D, or ``fn`` returns a tensor of another batch or
            spatial size than its window.
    """
    if not isinstance(x, Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"x must be a 4-D tensor (N, C, H, W), got {shape}")
    height, width = x.shape[-2:]
    rows, cols = tile_spans(height, tile, margin, multiple), tile_spans(width, tile, margin, multiple)
    count = len(rows) * len(cols)
    modules = attention_modules(model) if count > 1 else []
    if count > 1:
        tile, margin = check_tiling(tile, margin, multiple)
        log.info("%dx%d image: %d windows of at most %d px (margin %d)", width, height, count, tile, margin)
    ticks = iter(progress(range(count * (1 + len(modules))))) if progress is not None and count > 1 else iter(())
    try:
        with whole_image_gates(modules, fn, x, rows, cols, ticks):
            return _run_windows(fn, x, rows, cols, ticks)
    finally:
        next(ticks, None)  # an exhausted bar closes


def _run_windows(
    fn: Callable[[Tensor], Tensor], x: Tensor, rows: list[Span], cols: list[Span], ticks: Iterator[int]
) -> Tensor:
    height, width = x.shape[-2:]
    out: Tensor | None = None
    for core_top, core_bottom, top, bottom in rows:
        for core_left, core_right, left, right in cols:
            y = fn(x[..., top:bottom, left:right])
            next(ticks, None)
            expected = (x.shape[0], bottom - top, right - left)
            if not isinstance(y, Tensor) or y.dim() != 4 or (y.shape[0], *y.shape[-2:]) != expected:
                got = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
                raise ValueError(
                    f"fn returned {got} for a window of shape {tuple(x.shape[:2]) + expected[1:]}; "
                    "expected the window's batch and spatial size (N, C', h, w)"
                )
            if out is None:
                out = torch.empty((x.shape[0], y.shape[1], height, width), dtype=y.dtype, device=x.device)
            out[..., core_top:core_bottom, core_left:core_right] = y[
                ..., core_top - top : core_bottom - top, core_left - left : core_right - left
            ]
    return out
