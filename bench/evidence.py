"""The like-for-like comparisons of docs/results.md, run through ``ldwseg compare``.

    python bench/evidence.py camvid          # 14 variants x 3 seeds, then each twin pair
    python bench/evidence.py drive           # 6 variants x 3 seeds, vessel Dice in the FOV
    python bench/evidence.py camvid --print  # the commands only
    python bench/evidence.py camvid --heldout train-only-0006R0   # the same runs on a held-out split
    python bench/evidence.py camvid --only max,spd,ldw-haar       # some variants and their pairs
    python bench/evidence.py recon           # the autoencoder pairs, PSNR on the held-out photos

Each study is one ``ldwseg compare`` over every variant (the table against max pooling),
then one per twin pair on the same folder: ``compare`` keeps finished runs, so the pair
tables only re-read them and give the paired difference and t of the thing tested. It
resumes where it stopped, so it may run over several sessions. ``--heldout SPLIT`` scores
every finished run's best checkpoint (chosen on val) on a split no run saw, and prints the
same tables for it. The ``recon`` study's unseen photos are scored by
``bench/recon_photos.py --compare`` on its folder.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import typer

from ldwseg.analysis.compare_summary import summarise
from ldwseg.analysis.compare_table import format_summary
from ldwseg.seg.evaluate import evaluate_checkpoint

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"

MAX = "max: model.down=maxpool model.up=deconv train.wavelet_weight=0"
MAX_SHUFFLE = "max-shuffle: model.down=maxpool model.up=shuffle train.wavelet_weight=0"
LEARN = "model.wavelet=db2 model.constraint=lattice"
GROUPED = f"ldw-grouped-db2: model.down=ldw-grouped model.up=ldw {LEARN} model.attention=false"
SPD_GROUPED = "spd-grouped: model.down=spd-grouped model.up=shuffle model.attention=false train.wavelet_weight=0"
GROUPED_FIXED = (
    f"ldw-grouped-db2-fixed: model.down=ldw-grouped model.up=ldw {LEARN} model.attention=false "
    "model.learn_filters=false"
)
LOW = f"ldw-ll-db2: model.down=ldw-ll model.up=ldw {LEARN}"
LOW_FIXED = f"ldw-ll-db2-fixed: model.down=ldw-ll model.up=ldw {LEARN} model.learn_filters=false"
BLUR = "blurpool-shuffle: model.down=blurpool model.up=shuffle train.wavelet_weight=0"
MAXBLUR = f"ldw-maxblur-db2: model.down=ldw-maxblur model.up=ldw {LEARN}"
# the paper-literal pool (all 4C subbands into the next conv, 63% more parameters) with its
# space-to-depth twin, and its equal-parameter form (sec. 3.4, 1x1 conv 4C -> C) with its twin
PAPER_HAAR = "ldw-haar: model.down=ldw model.up=ldw model.wavelet=haar model.constraint=orthogonal model.attention=true"
PAPER_DB2 = f"ldw-db2: model.down=ldw model.up=ldw {LEARN} model.attention=true"
SPD = "spd: model.down=spd model.up=shuffle model.attention=true train.wavelet_weight=0"
EFFICIENT = f"ldw-efficient-db2: model.down=ldw model.up=ldw model.efficient=true {LEARN}"
SPD_EFFICIENT = "spd-efficient: model.down=spd model.up=shuffle model.efficient=true train.wavelet_weight=0"
# the autoencoder pairs: nothing bypasses the bottleneck, or each level's details do (the
# recon task's own defaults otherwise: Haar on the orthogonal constraint, batch 4, cosine)
AE_MAX = "max: model.down=maxpool model.up=deconv train.wavelet_weight=0"
AE_LDW = "ldw: model.down=ldw-ll model.up=ldw"
AE_MAX_DETAIL = "max-detail: model.down=maxpool-detail model.up=unpool-detail train.wavelet_weight=0"
AE_LDW_DETAIL = "ldw-detail: model.down=ldw-ll model.up=ldw-detail"

STUDIES = {
    "camvid": {
        "options": [
            "--dataset", "camvid", "--data-root", str(SHARED / "camvid"),
            "--set", "data.train_split=train-without-0006R0", "--set", "model.base_width=16",
            "--set", "data.crop_size=128", "--set", "data.scale_min=0.4", "--set", "data.scale_max=0.6",
            "--epochs", "8", "--batch-size", "8", "--lr", "0.002", "--set", "optim.step_size=6",
            "--set", "train.eval_every=8",
        ],
        "variants": [
            MAX, MAX_SHUFFLE, GROUPED, SPD_GROUPED, LOW, LOW_FIXED, GROUPED_FIXED, BLUR, MAXBLUR,
            PAPER_HAAR, PAPER_DB2, SPD, EFFICIENT, SPD_EFFICIENT,
        ],
        "pairs": [
            (MAX, MAX_SHUFFLE), (MAX_SHUFFLE, GROUPED), (SPD_GROUPED, GROUPED), (GROUPED_FIXED, GROUPED),
            (LOW_FIXED, LOW), (MAX_SHUFFLE, LOW), (BLUR, MAXBLUR), (MAX_SHUFFLE, MAXBLUR),
            (MAX, PAPER_HAAR), (SPD, PAPER_HAAR), (PAPER_HAAR, PAPER_DB2), (MAX, EFFICIENT), (SPD_EFFICIENT, EFFICIENT),
            (GROUPED, EFFICIENT),
        ],
    },
    "drive": {
        "options": [
            "--dataset", "drive", "--data-root", str(SHARED / "drive"), "--metric", "dice",
            "--set", "model.base_width=16", "--set", "data.crop_size=128", "--set", "data.scale_min=0.8",
            "--set", "data.scale_max=1.2", "--epochs", "50", "--batch-size", "8", "--lr", "0.002",
            "--set", "optim.step_size=40", "--set", "train.eval_every=50",
        ],
        "variants": [MAX, MAX_SHUFFLE, GROUPED, SPD_GROUPED, EFFICIENT, SPD_EFFICIENT],
        "pairs": [
            (MAX, MAX_SHUFFLE), (MAX_SHUFFLE, GROUPED), (SPD_GROUPED, GROUPED), (MAX, EFFICIENT),
            (SPD_EFFICIENT, EFFICIENT), (GROUPED, EFFICIENT),
        ],
    },
    "recon": {
        # the budget and settings of `ldwseg train --task recon`, unchanged
        "options": ["--task", "recon"],
        "variants": [AE_MAX, AE_LDW, AE_MAX_DETAIL, AE_LDW_DETAIL],
        "pairs": [(AE_MAX, AE_LDW), (AE_MAX_DETAIL, AE_LDW_DETAIL)],
    },
}  # fmt: skip


def _compare(options: list[str], variants: list[str], seeds: str, out: Path) -> list[str]:
    command = ["ldwseg", "compare", *options, "--seeds", seeds, "--out", str(out)]
    for variant in variants:
        command += ["--variant", variant]
    return command


def _name(variant: str) -> str:
    return variant.split(":", 1)[0].strip()


def heldout_tables(spec: dict, out: Path, seeds: list[int], split: str, metric: str, only: list[str]) -> None:
    """Score each run's best checkpoint on ``split`` and print the study's tables for those scores
    (for the variants in ``only``, all when empty)."""
    names = [_name(v) for v in spec["variants"] if not only or _name(v) in only]
    missing = [
        name for name in names if not all((out / name / f"seed{s}" / "best.safetensors").is_file() for s in seeds)
    ]
    if missing:
        raise typer.BadParameter(f"{out} has no finished runs of {', '.join(missing)}; run the study first")
    rows = []
    for name in names:
        cost = json.loads((out / name / "cost.json").read_text())
        for seed in seeds:
            result = evaluate_checkpoint(out / name / f"seed{seed}" / "best.safetensors", split=split, device="cpu")
            typer.echo(f"{name} seed {seed}: {split} {metric} {result[metric]:.4f}", err=True)
            rows.append({"variant": name, "seed": seed, "score": result[metric], "best_score": result[metric], **cost})
    pairs = [[_name(a), _name(b)] for a, b in spec["pairs"] if {_name(a), _name(b)} <= set(names)]
    for table in [names, *pairs]:
        picked = [r for r in rows if r["variant"] in table]
        summary = summarise(picked, metric=metric, variants=table, seeds=seeds)
        typer.echo(format_summary(summary, split=split) + "\n")


def main(
    study: str = typer.Argument(..., help="camvid, drive or recon."),
    out: Path = typer.Option(None, help="Output folder (default: runs/evidence-<study>)."),
    seeds: str = typer.Option("0,1,2", help="Comma-separated seeds."),
    print_only: bool = typer.Option(False, "--print", help="Print the commands, run nothing."),
    heldout: str = typer.Option(None, help="Score the finished runs on this split instead of training."),
    only: str = typer.Option("", help="Comma-separated variant names: run (or score) these and their pairs only."),
) -> None:
    if study not in STUDIES:
        raise typer.BadParameter(f"unknown study {study!r}; choose {', '.join(STUDIES)}")
    spec = STUDIES[study]
    out = out or Path("runs") / f"evidence-{study}"
    chosen = [name for name in only.split(",") if name]
    known = [_name(v) for v in spec["variants"]]
    unknown = [name for name in chosen if name not in known]
    if unknown:
        raise typer.BadParameter(
            f"--only names {', '.join(unknown)}, not a {study} variant; choose from {', '.join(known)}"
        )
    if heldout is not None:
        if study == "recon":
            raise typer.BadParameter("score the recon study with: python bench/recon_photos.py --compare " + str(out))
        metric = "dice" if "--metric" in spec["options"] else "miou"
        heldout_tables(spec, out, [int(s) for s in seeds.split(",")], heldout, metric, chosen)
        return
    variants = [v for v in spec["variants"] if not chosen or _name(v) in chosen]
    pairs = [pair for pair in spec["pairs"] if all(v in variants for v in pair)]
    commands = [_compare(spec["options"], variants, seeds, out)]
    commands += [_compare(spec["options"], list(pair), seeds, out) for pair in pairs]
    for command in commands:
        typer.echo("$ " + shlex.join(command))
        if not print_only:
            code = subprocess.call(command)
            if code:
                sys.exit(code)


if __name__ == "__main__":
    typer.run(main)
