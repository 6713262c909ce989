"""``ldwseg reconstruct``: the pure LDW round trip, or a trained autoencoder, on one image file."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..engine.checkpoints import load_run_model
from ..engine.distributed import resolve_device
from ..inference.tiling import DEFAULT_MARGIN, DEFAULT_TILE
from ..io import DEFAULT_MAX_PIXELS
from .roundtrip import reconstruct_file

__all__ = ["autoencoder_fn", "reconstruct_image"]


def autoencoder_fn(model: nn.Module, device: torch.device) -> Callable[[Tensor], Tensor]:
    """Wrap an RGB autoencoder for ``(1, C, H, W)`` images in [0, 1] with C = 1, 3 or 4.

    Gray images go through as three equal channels and come back as their mean; the
    alpha channel of RGBA images is passed through unchanged (the model sees RGB only).
    """

    @torch.no_grad()
    def run(x: Tensor) -> Tensor:
        channels = x.shape[1]
        rgb = x.repeat(1, 3, 1, 1) if channels == 1 else x[:, :3]
        y = model(rgb.to(device)).float().clamp(0, 1).cpu()
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
    tile: int = DEFAULT_TILE,
    margin: int = DEFAULT_MARGIN,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress: Callable[[Iterable[int]], Iterable[int]] | None = None,
) -> dict[str, Any]:
    """Reconstruct ``image`` with a reconstruction checkpoint, or by the LDW round trip without one.

    Images with a side longer than ``tile`` pixels (0: never) run in overlapping windows
    of at most ``tile x tile`` pixels with ``margin`` pixels of context, aligned on the
    model's ``2**depth`` (see :func:`~ldwseg.recon.reconstruct_file`); images of more than
    ``max_pixels`` pixels are refused before they are decoded.
    """
    if checkpoint is None:
        return reconstruct_file(image, out=out, levels=levels, wavelet=wavelet, tile=tile, max_pixels=max_pixels)
    dev = resolve_device(device)
    model, _, cfg = load_run_model(checkpoint, dev, task="recon")
    return reconstruct_file(
        image, out=out, levels=levels, wavelet=wavelet, model_fn=autoencoder_fn(model, dev), model=model,
        progress=progress, tile=tile, margin=margin, multiple=2**cfg.model.depth, max_pixels=max_pixels,
    )  # fmt: skip
