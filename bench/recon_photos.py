"""PSNR of a reconstruction checkpoint on real photos it never saw (../shared/data).

    python bench/recon_photos.py runs/recon-photos/best.safetensors [more checkpoints]

Reads the VOC 2012 val crops, the raw VOC samples and the first CamVid val frames, runs
``ldwseg reconstruct --checkpoint`` on each (full image, the files' own size), and prints
the PSNR per image and the mean per checkpoint.
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

import typer

from ldwseg.recon.reconstruct import reconstruct_image

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def photos(shared: Path, camvid_frames: int) -> list[Path]:
    files = sorted((shared / "voc2012_val_crops" / "samples").glob("*_image.png"))
    files += sorted((shared / "voc2012_raw_samples" / "JPEGImages").glob("*.jpg"))
    files += sorted((shared / "camvid" / "val").glob("*.png"))[:camvid_frames]
    return files


def main(
    checkpoints: list[Path] = typer.Argument(..., help="Reconstruction checkpoints."),
    shared: Path = typer.Option(SHARED, help="The shared data folder."),
    camvid_frames: int = typer.Option(5, help="How many CamVid val frames to include."),
) -> None:
    files = photos(shared, camvid_frames)
    if not files:
        raise typer.BadParameter(f"no photos under {shared}")
    with tempfile.TemporaryDirectory() as tmp:
        for ckpt in checkpoints:
            scores = []
            for i, path in enumerate(files):
                result = reconstruct_image(path, checkpoint=ckpt, out=Path(tmp) / f"{i}.png", device="cpu")
                scores.append(result["psnr"])
                typer.echo(f"{ckpt}  {path.parent.parent.name}/{path.name}  {result['psnr']:.2f} dB")
            typer.echo(
                f"{ckpt}: mean PSNR {statistics.mean(scores):.2f} dB over {len(scores)} photos "
                f"(min {min(scores):.2f}, median {statistics.median(scores):.2f}, "
                f"{sum(s >= 30 for s in scores)} of {len(scores)} at >= 30 dB)"
            )


if __name__ == "__main__":
    typer.run(main)
