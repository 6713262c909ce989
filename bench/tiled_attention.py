"""Tiled against whole-image segmentation on a real mosaic, with and without whole-image gates.

    python bench/tiled_attention.py runs/synthetic/best.safetensors [--tile 1024 --tile 384]

Builds a mosaic of CamVid val frames (../shared/data; 4 x 4 frames of 360 x 480 make
1440 x 1920), labels it whole and in tiles (the default 64 px margin), and prints the
share of labels that differ from the whole image's when the energy attention gates are
computed per window and when they are those of the whole image (what ``ldwseg predict``
does), with the time of each.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import typer
from PIL import Image

from ldwseg.engine.checkpoints import load_run_model
from ldwseg.inference.tiling import apply_tiled
from ldwseg.seg.predict import window_labels

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def mosaic(shared: Path, side: int) -> torch.Tensor:
    frames = sorted((shared / "camvid" / "val").glob("*.png"))[: side * side]
    if len(frames) < side * side:
        raise typer.BadParameter(f"need {side * side} CamVid val frames under {shared}, found {len(frames)}")
    rgb = [np.asarray(Image.open(f).convert("RGB")) for f in frames]
    rows = [np.concatenate(rgb[i * side : (i + 1) * side], axis=1) for i in range(side)]
    return torch.from_numpy(np.concatenate(rows, axis=0)).permute(2, 0, 1)[None]


def main(
    checkpoint: Path = typer.Argument(..., help="A segmentation checkpoint."),
    tile: list[int] = typer.Option([1024, 384], help="Window sides to compare."),
    shared: Path = typer.Option(SHARED, help="The shared data folder."),
    side: int = typer.Option(4, min=1, help="Frames per mosaic side."),
) -> None:
    model, _, cfg = load_run_model(checkpoint, torch.device("cpu"), task="seg")
    labels, multiple = window_labels(model, torch.device("cpu")), 2**cfg.model.depth
    x = mosaic(shared, side)
    with torch.no_grad():
        start = time.perf_counter()
        whole = apply_tiled(labels, x, tile=0, multiple=multiple)
        typer.echo(f"{tuple(x.shape[-2:])} mosaic, whole image: {time.perf_counter() - start:.1f} s")
        for size in tile:
            for gates, gate_model in (("per window", None), ("whole image", model)):
                start = time.perf_counter()
                tiled = apply_tiled(labels, x, tile=size, multiple=multiple, model=gate_model)
                seconds = time.perf_counter() - start
                share = (tiled != whole).double().mean().item()
                typer.echo(f"tile {size}, gates {gates}: {share:.3%} of labels differ, {seconds:.1f} s")


if __name__ == "__main__":
    typer.run(main)
