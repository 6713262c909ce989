"""Image reconstruction through LDW pooling: the multi-level wavelet round trip, and files.

:func:`wavelet_round_trip` is the pure transform (a multi-level 2-D DWT and its inverse
built from one :class:`~ldwseg.LDWPool2d`); :func:`reconstruct_file` runs it, or a
trained model, on an image file and writes the result in the input's pixel format.
Large images are processed in tiles (:mod:`ldwseg.inference.tiling`), so memory grows with the
image's pixels (about 35 bytes per RGB pixel) but not with the model's activations.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import ConfigError, DataError
from ..inference.tiling import DEFAULT_MARGIN, DEFAULT_TILE, apply_tiled, check_tiling
from ..io import DEFAULT_MAX_PIXELS, load_image, output_format, save_image_stored
from ..pooling import initial_filters, ldw_analysis, ldw_synthesis, pr_error
from ..pooling.filters import WaveletSpec
from .quality import psnr, ssim

__all__ = ["DEFAULT_LEVELS", "DEFAULT_WAVELET", "max_levels", "reconstruct_file", "wavelet_round_trip"]

DEFAULT_LEVELS = 3
DEFAULT_WAVELET = "haar"
_KEEP_SUFFIXES = (".png", ".tif", ".tiff")

_BLOCK_ROWS = 256
_PR_TOLERANCE = 1e-9

ModelFn = Callable[[Tensor], Tensor]

log = logging.getLogger(__name__)


def max_levels(height: int, width: int) -> int:
    """The most levels an ``height x width`` image allows.

    A level halves its input (``ceil(s / 2)``) and needs an input of at least 2 px per
    side, so the answer is the number of halvings that take the shorter side down to 1:
    ``ceil(log2(min(H, W)))``.
    """
    side, levels = min(height, width), 0
    while side >= 2:
        side, levels = (side + 1) // 2, levels + 1
    return levels


def _check_levels(levels: int, height: int, width: int) -> None:
    if isinstance(levels, bool) or not isinstance(levels, int) or levels < 1:
        raise ConfigError(f"levels must be an integer >= 1, got {levels!r}")
    most = max_levels(height, width)
    if levels > most:
        raise DataError(
            f"levels={levels} is too many for a {height}x{width} image: each level halves the image and needs "
            f"at least 2 px per side, so at most {most} levels fit; use levels <= {most}"
        )


def wavelet_round_trip(
    x: Tensor, *, levels: int = DEFAULT_LEVELS, wavelet: WaveletSpec = DEFAULT_WAVELET, constraint: str = "orthogonal"
) -> Tensor:
    """Analyse ``x`` over ``levels`` levels of LDW pooling, then synthesise it back.

    Level ``k`` pools the ``LL`` band of level ``k - 1`` (Eqs. 3-8), as a multi-level
    DWT does, and keeps the three detail bands; synthesis (the adjoint, as in
    :class:`~ldwseg.LDWUnpool2d`) then runs from the coarsest level up, cropping each
    level to the size of its input. The filters are those an
    ``LDWPool2d(wavelet=wavelet, constraint=constraint)`` is initialised with, cast to
    ``x.dtype``. For an orthogonal wavelet the result equals ``x`` up to rounding, odd
    sizes included; for other filters it shows what the bank loses.

    Args:
        x: images ``(N, C, H, W)``, any floating dtype and device.
        levels: number of levels, ``1 <= levels <= max_levels(H, W)``.
        wavelet: the filters, as for :class:`~ldwseg.LDWPool2d` (a PyWavelets orthogonal
            wavelet name or a ``(low, high)`` pair).
        constraint: the constraint the filters are checked against, as for
            :class:`~ldwseg.LDWPool2d` (``"lattice"`` refuses non-orthogonal pairs).

    Shape:
        - Input and output: ``(N, C, H, W)``.

    Example:
        >>> x = torch.rand(1, 3, 33, 50, dtype=torch.float64)
        >>> torch.allclose(wavelet_round_trip(x, levels=4, wavelet="db2"), x)
        True
    """
    if not isinstance(x, Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"x must be a 4-D tensor (N, C, H, W), got {shape}; add a batch dimension with x[None]")
    _check_levels(levels, x.shape[-2], x.shape[-1])
    if isinstance(wavelet, str) and wavelet == "random":
        raise ValueError("wavelet_round_trip needs fixed filters: a PyWavelets wavelet name or a (low, high) pair")
    # the filters a fresh LDWPool2d(wavelet=..., constraint=...) starts from, in x's dtype
    # (an LDWPool2d would hold them as float32 parameters, limiting float64 input to ~1e-7)
    low_pass, high_pass = (
        torch.as_tensor(f, dtype=x.dtype, device=x.device) for f in initial_filters(wavelet, constraint=constraint)
    )
    channels = x.shape[1]
    low, details, sizes = x, [], []
    for _ in range(levels):
        sizes.append(low.shape[-2:])
        bands = ldw_analysis(low, low_pass, high_pass)  # [LL | LH | HL | HH], C channels each
        low = bands[:, :channels]
        details.append(bands[:, channels:])
    for detail, size in zip(reversed(details), reversed(sizes)):
        low = ldw_synthesis(torch.cat([low, detail], dim=1), low_pass, high_pass, output_size=size)
    return low


def _default_output(path: Path) -> Path:
    suffix = path.suffix if path.suffix.lower() in _KEEP_SUFFIXES else ".png"
    return path.with_name(f"{path.stem}_recon{suffix}")


def _stored_integers(array: np.ndarray, bit_depth: int) -> np.ndarray:
    """The integers ``k`` behind a float32 array ``k / (2**bit_depth - 1)`` read from or written to a file."""
    top = 2**bit_depth - 1
    stored = np.empty(array.shape, dtype=np.uint16 if bit_depth == 16 else np.uint8)
    for row in range(0, array.shape[0], _BLOCK_ROWS):
        stored[row : row + _BLOCK_ROWS] = np.rint(array[row : row + _BLOCK_ROWS] * np.float32(top))
    return stored


def _checked_model(model_fn: ModelFn, path: Path) -> ModelFn:
    """``model_fn`` with its output checked and moved to float32 on the CPU."""

    def run(x: Tensor) -> Tensor:
        y = model_fn(x)
        if not isinstance(y, Tensor) or tuple(y.shape) != tuple(x.shape):
            got = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
            raise DataError(
                f"model_fn returned {got} for {path}, expected a tensor of the input's shape {tuple(x.shape)}; "
                f"check that the model takes {x.shape[1]}-channel images"
            )
        return y.detach().to(device="cpu", dtype=torch.float32)

    return run


def _perfect_reconstruction(wavelet: WaveletSpec) -> bool:
    """Whether ``wavelet`` names fixed filters of an orthogonal perfect-reconstruction bank."""
    if isinstance(wavelet, str) and wavelet in ("random", "noise"):
        return False
    low, high = initial_filters(wavelet, constraint="orthogonal")
    return pr_error(torch.as_tensor(low), torch.as_tensor(high)) <= _PR_TOLERANCE


def _round_trip_tiled(x: Tensor, levels: int, wavelet: WaveletSpec, tile: int) -> Tensor:
    """:func:`wavelet_round_trip` of ``x`` in float64, in tiles when the filters are perfect-reconstruction.

    Windows start at multiples of ``2**levels`` and are at least ``2**(levels + 1)`` px
    (when the image is), so every level halves whole pixel pairs and each window takes
    ``levels`` levels. A PR bank reproduces every window, hence the whole image, exactly
    (to float64 rounding); any other bank runs on the whole image, as tiles would change it.
    """
    _check_levels(levels, x.shape[-2], x.shape[-1])
    if tile and max(x.shape[-2:]) > tile and not _perfect_reconstruction(wavelet):
        log.info("the wavelet is not perfect-reconstruction: the round trip runs on the whole image")
        tile = 0

    def run(window: Tensor) -> Tensor:
        return wavelet_round_trip(window.double(), levels=levels, wavelet=wavelet).float()

    tile = max(tile, 2 ** (levels + 1)) if tile else 0
    return apply_tiled(run, x, tile=tile, margin=0, multiple=2**levels)


def reconstruct_file(
    path: str | Path,
    *,
    out: str | Path | None = None,
    levels: int | None = None,
    wavelet: WaveletSpec | None = None,
    model_fn: ModelFn | None = None,
    model: nn.Module | None = None,
    progress: Callable[[Iterable[int]], Iterable[int]] | None = None,
    tile: int = DEFAULT_TILE,
    margin: int = DEFAULT_MARGIN,
    multiple: int = 16,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> dict[str, Any]:
    """Reconstruct an image file and write the result in the input's pixel format.

    The image is read with :func:`~ldwseg.io.load_image` (gray runs with ``C = 1``,
    RGBA with ``C = 4``, alpha reconstructed too), passed through ``model_fn`` or else
    :func:`wavelet_round_trip` (in float64, kept as float32: its only error is the final
    quantisation), and written with :func:`~ldwseg.io.save_image`. PSNR and
    SSIM compare the input with what was written, after quantisation to the output bit
    depth (on the stored integers, a strip at a time: see :mod:`ldwseg.recon.quality`).

    An image with a side longer than ``tile`` is processed in windows of at most
    ``tile x tile`` pixels (:func:`~ldwseg.inference.tiling.apply_tiled`): ``model_fn`` sees one
    window at a time, with ``margin`` pixels of context on each inner side, windows
    aligned on ``multiple``. Without ``model_fn`` the windows need no margin and the
    result is that of the whole image, as the round trip is exact on each window (a
    ``(low, high)`` pair that is not perfect-reconstruction runs on the whole image).

    Args:
        path: the input image.
        out: the output file; default ``<stem>_recon.png`` beside the input, or the
            input's own suffix for PNG and TIFF inputs.
        levels: levels of the wavelet round trip (default 3); only without ``model_fn``.
        wavelet: the round trip's wavelet (default ``"haar"``); only without ``model_fn``.
        model_fn: a callable mapping a float32 ``(1, C, H, W)`` tensor in ``[0, 1]`` to one
            of the same shape (for example a trained autoencoder); called under ``no_grad``,
            once per window (plus the gate passes of ``model``, see below).
        model: the module ``model_fn`` runs, if any: tiled, its energy attention gates
            are then those of the whole image (see :mod:`ldwseg.inference.tiling`).
        progress: shows the model runs of a tiled image (see :func:`~ldwseg.inference.tiling.apply_tiled`).
        tile: the longest window side in pixels; 0 processes the whole image at once.
        margin: context around each window's interior for ``model_fn`` (cover the
            model's receptive field for a result equal to the whole image's).
        multiple: the alignment of the windows for ``model_fn`` (``2**depth`` of a UNet).
        max_pixels: the largest image accepted, checked before decoding
            (:data:`~ldwseg.io.DEFAULT_MAX_PIXELS`).

    Returns:
        ``{"psnr": float (inf when exact), "ssim": float, "output": str, "levels": int or
        None (None with model_fn), "mode": the input's Pillow mode, "size": [W, H]}``.

    Raises:
        DataError: unreadable input, an image of more than ``max_pixels`` pixels, an
            output format that cannot store the input's pixels, an output equal to the
            input, too many levels, or a model output of the wrong shape. No output file is
            created when any error is raised.
        ConfigError: ``levels``/``wavelet`` given together with ``model_fn``, ``levels < 1``,
            or a bad ``tile``/``margin``/``multiple``/``max_pixels``.
    """
    if model_fn is not None and (levels is not None or wavelet is not None):
        raise ConfigError("levels and wavelet set the wavelet round trip; drop them when model_fn is given")
    check_tiling(tile, margin, multiple)
    path = Path(path)
    image = load_image(path, max_pixels=max_pixels)
    target = _default_output(path) if out is None else Path(out)
    output_format(target, image)
    if target.resolve() == path.resolve():
        raise DataError(f"the output {target} would overwrite the input image; choose another output path")
    x = torch.from_numpy(image.array).permute(2, 0, 1)[None]
    with torch.no_grad():
        if model_fn is None:
            levels = DEFAULT_LEVELS if levels is None else levels
            y = _round_trip_tiled(x, levels, DEFAULT_WAVELET if wavelet is None else wavelet, tile)
        else:
            y = apply_tiled(
                _checked_model(model_fn, path), x, tile=tile, margin=margin, multiple=multiple, model=model,
                progress=progress,
            )
    written = save_image_stored(target, y[0].permute(1, 2, 0).numpy(), like=image)
    del y
    reference = _stored_integers(image.array, image.bit_depth)
    top = float(2**image.bit_depth - 1)
    return {
        "psnr": psnr(reference, written, data_range=top),
        "ssim": ssim(reference, written, data_range=top),
        "output": str(target),
        "levels": levels,
        "mode": image.mode,
        "size": [image.array.shape[1], image.array.shape[0]],
    }
