"""Reconstruct image files: the pure LDW round trip, or a trained autoencoder.

:func:`reconstruct_file` runs :func:`~ldwseg.pooling.multilevel.wavelet_round_trip` (the
pure transform), or a model, on an image file and writes the result in the input's pixel
format; :func:`reconstruct_image` does so with a reconstruction checkpoint
(``ldwseg reconstruct``).
Large images are processed in tiles (:mod:`ldwseg.inference.tiling`), so memory grows with the
image's pixels (about 35 bytes per RGB pixel) but not with the model's activations.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..engine.checkpoints import load_run_model
from ..engine.distributed import resolve_device
from ..errors import ConfigError, DataError
from ..inference.tiling import TileOptions, apply_tiled
from ..io import DEFAULT_MAX_PIXELS, load_image, output_format, quantize, save_image_stored
from ..pooling.filters import WaveletSpec
from ..pooling.multilevel import check_levels, is_perfect_reconstruction, wavelet_round_trip
from .autoencode import autoencode
from .quality import psnr, ssim

__all__ = ["DEFAULT_LEVELS", "DEFAULT_WAVELET", "autoencoder_fn", "reconstruct_file", "reconstruct_image"]

DEFAULT_LEVELS = 3
DEFAULT_WAVELET = "haar"
_KEEP_SUFFIXES = (".png", ".tif", ".tiff")


ModelFn = Callable[[Tensor], Tensor]

log = logging.getLogger(__name__)


def _default_output(path: Path, *, model: bool) -> Path:
    """``<stem>_recon.png`` for the wavelet round trip, ``<stem>_ae.png`` for a model, so neither replaces the other."""
    suffix = path.suffix if path.suffix.lower() in _KEEP_SUFFIXES else ".png"
    return path.with_name(f"{path.stem}_{'ae' if model else 'recon'}{suffix}")


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


def _round_trip_tiled(x: Tensor, levels: int, wavelet: WaveletSpec, tile: int) -> Tensor:
    """:func:`wavelet_round_trip` of ``x`` in float64, in tiles when the filters are perfect-reconstruction.

    Windows start at multiples of ``2**levels`` and are at least ``2**(levels + 1)`` px
    (when the image is), so every level halves whole pixel pairs and each window takes
    ``levels`` levels. A PR bank reproduces every window, hence the whole image, exactly
    (to float64 rounding); any other bank runs on the whole image, as tiles would change it.
    """
    check_levels(levels, x.shape[-2], x.shape[-1])
    if tile and max(x.shape[-2:]) > tile and not is_perfect_reconstruction(wavelet):
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
    tiles: TileOptions = TileOptions(),
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> dict[str, Any]:
    """Reconstruct an image file and write the result in the input's pixel format.

    The image is read with :func:`~ldwseg.io.load_image` (gray runs with ``C = 1``,
    RGBA with ``C = 4``, alpha reconstructed too), passed through ``model_fn`` or else
    :func:`wavelet_round_trip` (in float64, kept as float32: its only error is the final
    quantisation), and written with :func:`~ldwseg.io.save_image`. PSNR and
    SSIM compare the input with what was written, after quantisation to the output bit
    depth (on the stored integers, a strip at a time: see :mod:`ldwseg.recon.quality`).

    An image with a side longer than ``tiles.tile`` is processed in windows of at most
    ``tile x tile`` pixels (:func:`~ldwseg.inference.tiling.apply_tiled`): ``model_fn`` sees
    one window at a time, with ``tiles.margin`` pixels of context on each inner side,
    windows aligned on ``tiles.multiple``. Without ``model_fn`` the windows need no margin and the
    result is that of the whole image, as the round trip is exact on each window (a
    ``(low, high)`` pair that is not perfect-reconstruction runs on the whole image).

    Args:
        path: the input image.
        out: the output file; default ``<stem>_recon.png`` beside the input
            (``<stem>_ae.png`` with ``model_fn``), with the input's own suffix for PNG and TIFF inputs.
        levels: levels of the wavelet round trip (default 3); only without ``model_fn``.
        wavelet: the round trip's wavelet (default ``"haar"``); only without ``model_fn``.
        model_fn: a callable mapping a float32 ``(1, C, H, W)`` tensor in ``[0, 1]`` to one
            of the same shape (for example a trained autoencoder); called under ``no_grad``,
            once per window (plus the gate passes of ``model``, see below).
        model: the module ``model_fn`` runs, if any: tiled, its energy attention gates
            are then those of the whole image (see :mod:`ldwseg.inference.tiling`).
        progress: shows the model runs of a tiled image (see :func:`~ldwseg.inference.tiling.apply_tiled`).
        tiles: the windows for large images (:class:`~ldwseg.inference.tiling.TileOptions`;
            ``margin`` and ``multiple`` apply to ``model_fn`` only).
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
            or bad ``tiles`` or ``max_pixels``.
    """
    if model_fn is not None and (levels is not None or wavelet is not None):
        raise ConfigError("levels and wavelet set the wavelet round trip; drop them when model_fn is given")
    tiles.check()
    path = Path(path)
    image = load_image(path, max_pixels=max_pixels)
    target = _default_output(path, model=model_fn is not None) if out is None else Path(out)
    output_format(target, image)
    if target.resolve() == path.resolve():
        raise DataError(f"the output {target} would overwrite the input image; choose another output path")
    x = torch.from_numpy(image.array).permute(2, 0, 1)[None]
    with torch.no_grad():
        if model_fn is None:
            levels = DEFAULT_LEVELS if levels is None else levels
            y = _round_trip_tiled(x, levels, DEFAULT_WAVELET if wavelet is None else wavelet, tiles.tile)
        else:
            y = apply_tiled(
                _checked_model(model_fn, path),
                x,
                tile=tiles.tile,
                margin=tiles.margin,
                multiple=tiles.multiple,
                model=model,
                progress=progress,
            )
    written = save_image_stored(target, y[0].permute(1, 2, 0).numpy(), like=image)
    del y
    reference = quantize(image.array, image.bit_depth)
    top = float(2**image.bit_depth - 1)
    return {
        "psnr": psnr(reference, written, data_range=top),
        "ssim": ssim(reference, written, data_range=top),
        "output": str(target),
        "levels": levels,
        "mode": image.mode,
        "size": [image.array.shape[1], image.array.shape[0]],
    }


def autoencoder_fn(model: nn.Module, device: torch.device) -> Callable[[Tensor], Tensor]:
    """Wrap an RGB autoencoder for ``(1, C, H, W)`` images in [0, 1] with C = 1, 3 or 4.

    Gray images go through as three equal channels and come back as their mean; the
    alpha channel of RGBA images is passed through unchanged (the model sees RGB only).
    The model runs on the image padded to its stride (:func:`~ldwseg.recon.autoencode.autoencode`).
    """

    @torch.no_grad()
    def run(x: Tensor) -> Tensor:
        channels = x.shape[1]
        rgb = x.repeat(1, 3, 1, 1) if channels == 1 else x[:, :3]
        y = autoencode(model, rgb.to(device)).float().clamp(0, 1).cpu()
        if channels == 1:
            return y.mean(1, keepdim=True)
        return torch.cat([y, x[:, 3:]], 1) if channels == 4 else y

    return run


def reconstruct_image(
    image: str | Path,
    *,
    checkpoint: str | Path | None = None,
    out: str | Path | None = None,
    levels: int | None = None,
    wavelet: str | None = None,
    device: str = "auto",
    tiles: TileOptions = TileOptions(),
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress: Callable[[Iterable[int]], Iterable[int]] | None = None,
) -> dict[str, Any]:
    """Reconstruct ``image`` with a reconstruction checkpoint, or by the LDW round trip without one.

    Images with a side longer than ``tiles.tile`` pixels (0: never) run in overlapping
    windows with ``tiles.margin`` pixels of context, aligned on the model's ``2**depth``
    whatever ``tiles.multiple`` says (see :func:`reconstruct_file`); images of more than
    ``max_pixels`` pixels are refused before they are decoded.
    """
    if checkpoint is not None and (levels is not None or wavelet is not None):
        raise ConfigError(
            "--levels and --wavelet set the wavelet round trip, which runs without --checkpoint; "
            "drop them or --checkpoint"
        )
    if checkpoint is None:
        return reconstruct_file(image, out=out, levels=levels, wavelet=wavelet, tiles=tiles, max_pixels=max_pixels)
    dev = resolve_device(device)
    model, _, cfg = load_run_model(checkpoint, dev, task="recon")
    return reconstruct_file(
        image, out=out, levels=levels, wavelet=wavelet, model_fn=autoencoder_fn(model, dev), model=model,
        progress=progress, tiles=dataclasses.replace(tiles, multiple=2**cfg.model.depth), max_pixels=max_pixels,
    )  # fmt: skip
