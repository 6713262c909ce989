"""Predict segmentation masks for image files: palette-coded masks and overlays.

Images larger than a tile run through the model in overlapping windows
(:func:`~ldwseg.inference.tiling.apply_tiled`), each reduced to ``uint8`` class labels at once, so
the per-class logits of a whole large image never exist; images above the pixel limit
are refused before they are decoded, and outputs are written atomically.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from ..datasets import colorize, eval_transform, overlay
from ..engine.checkpoints import load_run_model, stored_palette
from ..engine.distributed import resolve_device
from ..errors import DataError
from ..inference.tiling import DEFAULT_MARGIN, DEFAULT_TILE, apply_tiled, check_tiling
from ..io import DEFAULT_MAX_PIXELS, load_rgb8, write_pil_image
from ..io.pixels import BLOCK_ROWS

__all__ = ["predict_images", "window_labels"]

log = logging.getLogger(__name__)

def window_labels(model: nn.Module, device: torch.device) -> Callable[[Tensor], Tensor]:
    """Map a ``(1, 3, h, w)`` uint8 window to its ``(1, 1, h, w)`` uint8 class labels."""
    transform = eval_transform()

    def run(window: Tensor) -> Tensor:
        rgb = np.ascontiguousarray(window[0].permute(1, 2, 0).numpy())
        image, _ = transform(rgb, np.zeros(rgb.shape[:2], dtype=np.int64))
        logits = model(image.unsqueeze(0).to(device))
        # argmax over a contiguous last dimension: several times faster on CPU than over dim 1
        labels = logits.permute(0, 2, 3, 1).contiguous().argmax(-1)
        return labels.unsqueeze(1).to(device="cpu", dtype=torch.uint8)

    return run


def _overlay(rgb: np.ndarray, mask: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """:func:`~ldwseg.datasets.overlay` a block of rows at a time (it blends in float32)."""
    blended = np.empty_like(rgb)
    for row in range(0, rgb.shape[0], BLOCK_ROWS):
        rows = slice(row, row + BLOCK_ROWS)
        blended[rows] = overlay(rgb[rows], mask[rows], palette)
    return blended


def _check_distinct_outputs(paths: list[Path]) -> None:
    """Two inputs with the same name (``a/x.png``, ``b/x.jpg``) would write the same output files."""
    seen: dict[str, Path] = {}
    for path in paths:
        if path.stem in seen:
            raise DataError(
                f"{seen[path.stem]} and {path} would both be written as {path.stem}_mask.png; "
                "predict them into separate --out folders, or rename one"
            )
        seen[path.stem] = path


@torch.no_grad()
def predict_images(
    checkpoint: str | Path,
    images: list[str | Path],
    out_dir: str | Path,
    *,
    device: str = "auto",
    with_overlay: bool = True,
    tile: int = DEFAULT_TILE,
    margin: int = DEFAULT_MARGIN,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress: Callable[[Iterable[int]], Iterable[int]] | None = None,
) -> list[Path]:
    """Write ``<stem>_mask.png`` (palette PNG of class indices) and ``<stem>_overlay.png``.

    Every image is read (and checked) before anything is written, and each file is
    written to a temporary file that is then renamed, so a failure never leaves a partial
    output.

    Args:
        checkpoint: a segmentation checkpoint.
        images: image files (gray, RGB, RGBA, palette, 8 or 16 bit), read as the data sets
            read them (:func:`~ldwseg.io.load_rgb8`).
        out_dir: the output folder, created if missing.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        with_overlay: also write the colour overlays.
        tile: images with a side longer than this run in overlapping windows of at most
            ``tile x tile`` pixels, aligned on the model's ``2**depth``; 0 runs every image
            whole. The model's energy attention gates are those of the whole image
            (one extra pass over the windows per attention module, see
            :mod:`ldwseg.inference.tiling`).
        margin: context kept around each window's interior, in pixels.
        max_pixels: images with more pixels are refused before decoding
            (:data:`~ldwseg.io.DEFAULT_MAX_PIXELS`).
        progress: shows the model runs of a tiled image (see :func:`~ldwseg.inference.tiling.apply_tiled`).

    Returns:
        The files written.

    Raises:
        DataError: an unreadable image, one above ``max_pixels``, or a failed write.
        ConfigError: a bad ``tile``, ``margin`` or ``max_pixels``.
        CheckpointError: the checkpoint is unusable or not a segmentation checkpoint.
    """
    dev = resolve_device(device)
    model, meta, cfg = load_run_model(checkpoint, dev, task="seg")
    multiple = 2**cfg.model.depth
    check_tiling(tile, margin, multiple)
    palette = stored_palette(checkpoint, meta)
    paths = list(dict.fromkeys(Path(p) for p in images))  # each file once
    _check_distinct_outputs(paths)
    for path in paths:  # every file is read (checked) before anything is written; one at a time in memory
        load_rgb8(path, max_pixels=max_pixels)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    labels = window_labels(model, dev)
    written: list[Path] = []
    for path in paths:
        rgb = load_rgb8(path, max_pixels=max_pixels)
        x = torch.from_numpy(rgb).permute(2, 0, 1)[None]
        mask = apply_tiled(
            labels, x, tile=tile, margin=margin, multiple=multiple, model=model, progress=progress
        )[0, 0].numpy()
        mask_path = out_dir / f"{path.stem}_mask.png"
        write_pil_image(mask_path, colorize(mask, palette), "PNG")
        written.append(mask_path)
        if with_overlay:
            over_path = out_dir / f"{path.stem}_overlay.png"
            write_pil_image(over_path, Image.fromarray(_overlay(rgb, mask, palette)), "PNG")
            written.append(over_path)
        log.info("%s -> %s", path, mask_path)
    return written
