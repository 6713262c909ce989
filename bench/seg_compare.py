"""Max-pool/deconv UNet against LDW-UNets at the same budget on CamVid, through ``ldwseg``'s own training.

Every model is trained by :func:`ldwseg.tasks.train` (what ``ldwseg train`` runs) with the
same width, data, augmentation, optimiser, epochs and seed: training crops of 160 px from
images randomly scaled by 0.4-0.6, validation on the whole val split at full size. Prints
final and best val mIoU, parameters, FLOPs (one 480x360 image) and seconds per epoch.

Usage: ``python bench/seg_compare.py [--data-root ../shared/data/camvid] [--epochs 10] [--out runs/seg_compare]``
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import statistics
from pathlib import Path

from ldwseg.analysis.complexity import count_flops, count_parameters, format_count
from ldwseg.engine.fit import build_model
from ldwseg.io.weights import read_metadata
from ldwseg.tasks import load_config, train

VARIANTS = {
    "maxpool/deconv UNet": {"model.down": "maxpool", "model.up": "deconv", "train.wavelet_weight": 0.0},
    "LDW-UNet (orthogonal)": {"model.down": "ldw", "model.up": "ldw", "model.constraint": "orthogonal"},
    "LDW-UNet efficient (sec. 3.4)": {
        "model.down": "ldw", "model.up": "ldw", "model.constraint": "orthogonal", "model.efficient": True,
    },
}
FLOP_SIZE = (360, 480)  # CamVid's frames


def run(name: str, overrides: dict, args: argparse.Namespace) -> dict:
    base = {
        "data.dataset": args.dataset, "data.root": None if args.data_root is None else str(args.data_root),
        "data.crop_size": args.crop, "data.scale_min": 0.4, "data.scale_max": 0.6, "model.base_width": args.width,
        "train.epochs": args.epochs, "train.batch_size": 8, "optim.lr": 2e-3,
        "optim.step_size": max(1, args.epochs * 3 // 4), "train.seed": args.seed, "train.eval_every": args.eval_every,
        "train.max_steps_per_epoch": args.max_steps,
    }  # fmt: skip
    cfg = load_config(None, {**base, **overrides})
    out = args.out / re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") / f"seed{args.seed}"
    result = train(cfg, out)
    with (out / "metrics.csv").open(newline="") as f:
        seconds = [float(r["seconds"]) for r in csv.DictReader(f)]
    classes = int(read_metadata(out / "best.safetensors")["dataset"]["out_channels"])
    model = build_model(cfg, classes)
    return {
        "model": name,
        "final_miou": result.last_score,
        "best_miou": result.best_score,
        "params": count_parameters(model),
        "flops": count_flops(model, (1, 3, *FLOP_SIZE)),
        "epoch_s": statistics.median(seconds),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="camvid", help="Data set name (camvid; synthetic for a smoke run).")
    parser.add_argument("--data-root", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/camvid")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--crop", type=int, default=160)
    parser.add_argument("--eval-every", type=int, default=5)
    parser.add_argument("--max-steps", type=int, default=None, help="Cap on the steps of an epoch (smoke runs).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/seg_compare"))
    parser.add_argument("--json", type=Path, help="Also write the rows to this JSON file.")
    args = parser.parse_args(argv)
    if args.dataset != "camvid" and args.data_root == parser.get_default("data_root"):
        args.data_root = None
    rows = [run(name, overrides, args) for name, overrides in VARIANTS.items()]
    print("\n| model | val mIoU (final) | best | params | FLOPs (480x360) | s / epoch |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['model']} | {r['final_miou']:.4f} | {r['best_miou']:.4f} | {format_count(r['params'])} | "
            f"{format_count(r['flops'])} | {r['epoch_s']:.1f} |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
