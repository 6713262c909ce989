"""Predict segmentation masks for image files: palette-coded masks and overlays."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..distributed import resolve_device
from ..runs import load_run_model
from ..imageio import LoadedImage, load_image
from .data import colorize, eval_transform, overlay

__all__ = ["predict_images"]

log = logging.getLogger(__name__)


def _rgb8(image: LoadedImage) -> np.ndarray:
    """The image as uint8 RGB: gray channels repeated, alpha dropped, 16 bit rounded to 8."""
    array = image.array[..., :1].repeat(3, -1) if image.array.shape[-1] <= 2 else image.array[..., :3]
    return np.round(array * 255.0).astype(np.uint8)


@torch.no_grad()
def predict_images(
    checkpoint: str | Path,
    images: list[str | Path],
    out_dir: str | Path,
    *,
    device: str = "auto",
    with_overlay: bool = True,
) -> list[Path]:
    """Write ``<stem>_mask.png`` (palette PNG of class indices) and ``<stem>_overlay.png``."""
    dev = resolve_device(device)
    model, meta, _ = load_run_model(checkpoint, dev, task="seg")
    palette = np.asarray(meta["dataset"]["palette"], dtype=np.uint8)
    paths = [Path(p) for p in images]
    arrays = [_rgb8(load_image(p)) for p in paths]  # every file is checked before anything is written
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    transform = eval_transform()
    written: list[Path] = []
    for path, rgb in zip(paths, arrays):
        image, _ = transform(rgb, np.zeros(rgb.shape[:2], dtype=np.int64))
        logits = model(image.unsqueeze(0).to(dev))
        mask = logits.argmax(1)[0].cpu().numpy().astype(np.uint8)
        mask_path = out_dir / f"{path.stem}_mask.png"
        colorize(mask, palette).save(mask_path)
        written.append(mask_path)
        if with_overlay:
            over_path = out_dir / f"{path.stem}_overlay.png"
            Image.fromarray(overlay(rgb, mask, palette)).save(over_path)
            written.append(over_path)
        log.info("%s -> %s", path, mask_path)
    return written
