"""``ldwseg reconstruct``: the pure LDW round trip, or a trained autoencoder, on one image file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..distributed import resolve_device
from ..runs import load_run_model
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
) -> dict[str, Any]:
    """Reconstruct ``image`` with a reconstruction checkpoint, or by the LDW round trip without one."""
    if checkpoint is None:
        return reconstruct_file(image, out=out, levels=levels, wavelet=wavelet)
    dev = resolve_device(device)
    model, _, _ = load_run_model(checkpoint, dev, task="recon")
    return reconstruct_file(image, out=out, levels=levels, wavelet=wavelet, model_fn=autoencoder_fn(model, dev))
