"""PSNR and SSIM of reconstruction checkpoints on real photos they never saw (../shared/data).

    python bench/recon_photos.py runs/recon-photos/best.safetensors [more checkpoints]
    python bench/recon_photos.py --compare runs/recon-compare [--json]
    python bench/recon_photos.py --compare runs/evidence-recon --pair max,ldw --pair max-detail,ldw-detail

Reads the VOC 2012 val crops, the raw VOC samples and the first CamVid val frames (21
photos by default), runs ``ldwseg reconstruct --checkpoint`` on each (full image, the
files' own size), and prints the PSNR and SSIM per image and a summary per checkpoint:
mean, worst photo, and how many reach 30 dB. ``--compare`` reads the best checkpoint of
every run of an ``ldwseg compare --task recon`` folder (``<variant>/seed<k>/``) and
summarises each variant over its seeds: mean ± std of the per-seed means and worsts.
``--pair A,B`` adds the paired table of ``B`` against ``A`` (seed by seed, as
``ldwseg compare`` gives it for val) for the photos' mean and worst PSNR.
"""

from __future__ import annotations

import json
import statistics
import tempfile
from pathlib import Path

import typer

from ldwseg.analysis.compare_summary import summarise
from ldwseg.analysis.compare_table import format_summary
from ldwseg.cli.app import user_errors
from ldwseg.recon.reconstruct import reconstruct_image

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def photos(shared: Path, camvid_frames: int) -> list[Path]:
    files = sorted((shared / "voc2012_val_crops" / "samples").glob("*_image.png"))
    files += sorted((shared / "voc2012_raw_samples" / "JPEGImages").glob("*.jpg"))
    files += sorted((shared / "camvid" / "val").glob("*.png"))[:camvid_frames]
    return files


def score_checkpoint(ckpt: Path, files: list[Path], tmp: Path, *, echo) -> dict:
    """Per-photo PSNR and SSIM of ``ckpt`` and their summary."""
    rows = []
    for i, path in enumerate(files):
        result = reconstruct_image(path, checkpoint=ckpt, out=tmp / f"{i}.png", device="cpu")
        name = f"{path.parent.parent.name}/{path.name}"
        rows.append({"photo": name, "psnr": result["psnr"], "ssim": result["ssim"]})
        echo(f"{ckpt}  {name}  {result['psnr']:.2f} dB  SSIM {result['ssim']:.4f}")
    psnrs = [r["psnr"] for r in rows]
    worst = min(rows, key=lambda r: r["psnr"])
    return {
        "checkpoint": str(ckpt), "photos": rows, "mean_psnr": statistics.mean(psnrs), "min_psnr": worst["psnr"],
        "worst_photo": worst["photo"], "mean_ssim": statistics.mean(r["ssim"] for r in rows),
        "min_ssim": min(r["ssim"] for r in rows), "at_30db": sum(p >= 30 for p in psnrs),
    }  # fmt: skip


def _spread(values: list[float]) -> str:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.2f} ± {std:.2f}"


def compare_table(folder: Path, files: list[Path], tmp: Path, *, echo) -> list[dict]:
    """Each variant of an ``ldwseg compare`` folder, scored over its seeds' best checkpoints."""
    variants = []
    for variant in sorted(p for p in folder.iterdir() if p.is_dir()):
        ckpts = sorted(variant.glob("seed*/best.safetensors"), key=lambda c: int(c.parent.name[4:]))
        if ckpts:
            runs = [{"seed": int(c.parent.name[4:]), **score_checkpoint(c, files, tmp, echo=echo)} for c in ckpts]
            cost = json.loads((variant / "cost.json").read_text()) if (variant / "cost.json").is_file() else {}
            variants.append({"variant": variant.name, "runs": runs, "cost": cost})
    return variants


def parse_pair(pair: str, folder: Path | None) -> list[str]:
    """The two variant names of ``--pair "A,B"``, each a variant folder of ``folder``."""
    names = [name.strip() for name in pair.split(",")]
    if folder is None or len(names) != 2 or not all((folder / n).is_dir() for n in names):
        raise typer.BadParameter(f"--pair {pair!r} must name two variant folders of --compare FOLDER")
    return names


def pair_tables(variants: list[dict], names: list[str], n_photos: int) -> str:
    """The paired tables (mean and worst photo PSNR) of the variants ``names`` (twin first)."""
    found = {v["variant"]: v for v in variants}
    if not set(names) <= set(found):
        raise typer.BadParameter(f"--pair {','.join(names)}: a variant has no finished run (best.safetensors)")
    seeds = sorted(set.intersection(*({r["seed"] for r in found[n]["runs"]} for n in names)))
    tables = []
    for key, label in (("mean_psnr", "photo-mean PSNR"), ("min_psnr", "worst-photo PSNR")):
        rows = [
            {"variant": n, "seed": r["seed"], "score": r[key], "best_score": r[key],
             **{k: found[n]["cost"].get(k, 0.0) for k in ("params", "flops", "step_ms", "peak_mem_mb")}}
            for n in names for r in found[n]["runs"] if r["seed"] in seeds
        ]  # fmt: skip
        summary = summarise(rows, metric=label, variants=names, seeds=seeds)
        tables.append(format_summary(summary, split=f"{n_photos} photos"))
    return "\n\n".join(tables)


@user_errors
def main(
    checkpoints: list[Path] | None = typer.Argument(None, help="Reconstruction checkpoints."),
    compare: Path | None = typer.Option(None, help="An `ldwseg compare --task recon` output folder."),
    shared: Path = typer.Option(SHARED, help="The shared data folder."),
    camvid_frames: int = typer.Option(5, help="How many CamVid val frames to include."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object with every score."),
    pair: list[str] | None = typer.Option(None, help="With --compare: 'A,B', the paired table of B against A."),
) -> None:
    files = photos(shared, camvid_frames)
    if not files:
        raise typer.BadParameter(f"no photos under {shared}")
    if not checkpoints and compare is None:
        raise typer.BadParameter("give checkpoints or --compare FOLDER")
    pairs = [parse_pair(p, compare) for p in pair or []]
    echo = (lambda line: None) if as_json else typer.echo
    with tempfile.TemporaryDirectory() as tmp:
        runs = [score_checkpoint(c, files, Path(tmp), echo=echo) for c in checkpoints or []]
        variants = compare_table(compare, files, Path(tmp), echo=echo) if compare is not None else []
    if as_json:
        typer.echo(json.dumps({"checkpoints": runs, "variants": variants}, indent=1))
        return
    for run in runs:
        typer.echo(
            f"{run['checkpoint']}: mean PSNR {run['mean_psnr']:.2f} dB over {len(files)} photos (worst "
            f"{run['min_psnr']:.2f}, {run['worst_photo']}), mean SSIM {run['mean_ssim']:.4f}, "
            f"{run['at_30db']} of {len(files)} at >= 30 dB"
        )
    if variants:
        typer.echo(
            "\n| variant | seeds | mean PSNR (dB) | worst photo PSNR (dB) | mean SSIM | photos >= 30 dB |\n"
            "|---|---|---|---|---|---|"
        )
    for v in variants:
        r = v["runs"]
        ssim = statistics.mean(x["mean_ssim"] for x in r)
        typer.echo(
            f"| {v['variant']} | {len(r)} | {_spread([x['mean_psnr'] for x in r])} | "
            f"{_spread([x['min_psnr'] for x in r])} | {ssim:.4f} | {min(x['at_30db'] for x in r)}-"
            f"{max(x['at_30db'] for x in r)} of {len(files)} |"
        )
    for names in pairs:
        typer.echo("\n" + pair_tables(variants, names, len(files)))


if __name__ == "__main__":
    typer.run(main)
