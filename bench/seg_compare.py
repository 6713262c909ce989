"""Max-pool/deconv UNet against LDW-UNets at one budget on CamVid: a preset of ``ldwseg compare``.

Every model is trained by ``ldwseg compare`` (the training of ``ldwseg train``) with the
same width, data, augmentation, optimiser, epochs and seeds: training crops of 160 px
from images randomly scaled by 0.4-0.6, validation on the whole val split at full size.
Prints the comparison table (final val mIoU per seed, mean ± std, paired difference to
the max-pool UNet, wins and t) with parameters, FLOPs of one crop and the step time.

Usage: ``python bench/seg_compare.py [--data-root ../shared/data/camvid] [--epochs 10] [--seeds 0,1,2]``
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ldwseg.analysis.compare import Variant, run_compare
from ldwseg.analysis.compare_table import format_summary
from ldwseg.tasks import load_config

VARIANTS = [
    Variant("maxpool", ("model.down=maxpool", "model.up=deconv", "train.wavelet_weight=0")),
    Variant("ldw", ("model.down=ldw", "model.up=ldw", "model.constraint=orthogonal")),
    Variant("ldw-efficient", ("model.down=ldw", "model.up=ldw", "model.constraint=orthogonal", "model.efficient=true")),
]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="camvid", help="Data set name (camvid; synthetic for a smoke run).")
    parser.add_argument("--data-root", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/camvid")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--crop", type=int, default=160)
    parser.add_argument("--eval-every", type=int, default=5)
    parser.add_argument("--max-steps", type=int, default=None, help="Cap on the steps of an epoch (smoke runs).")
    parser.add_argument("--seeds", default="0,1,2", help="Comma-separated seeds.")
    parser.add_argument("--out", type=Path, default=Path("runs/seg_compare"))
    parser.add_argument("--json", type=Path, help="Also write the summary to this JSON file.")
    args = parser.parse_args(argv)
    if args.dataset != "camvid" and args.data_root == parser.get_default("data_root"):
        args.data_root = None
    base = load_config(None, {
        "data.dataset": args.dataset, "data.root": None if args.data_root is None else str(args.data_root),
        "data.crop_size": args.crop, "data.scale_min": 0.4, "data.scale_max": 0.6, "model.base_width": args.width,
        "train.epochs": args.epochs, "train.batch_size": 8, "optim.lr": 2e-3,
        "optim.step_size": max(1, args.epochs * 3 // 4), "train.eval_every": args.eval_every,
        "train.max_steps_per_epoch": args.max_steps,
    })  # fmt: skip
    seeds = [int(s) for s in args.seeds.split(",")]
    summary = run_compare(base, VARIANTS, seeds, args.out)
    print(format_summary(summary))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
