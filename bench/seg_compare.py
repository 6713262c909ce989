"""Max-pool/deconv UNet against LDW-UNet at the same budget on CamVid.

Both models get the same width, data, augmentation, optimiser, epochs and seed. Images
are used at half resolution (240x180) so the comparison fits about 30 minutes on 2 CPU
cores: training crops of 160 px from images randomly scaled by 0.4-0.6, evaluation on
the whole validation split resized to 240x180 (masks with nearest neighbour). Reports
val mIoU, parameters, FLOPs (one 240x180 image) and the median training step time.

Usage: ``python bench/seg_compare.py [--data-root ../shared/data/camvid] [--epochs 10]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import albumentations as A
import cv2
import torch
from torch.utils.data import DataLoader

from ldwseg.analysis.complexity import count_flops, count_parameters, format_count
from ldwseg.datasets import IMAGENET_MEAN, IMAGENET_STD, SegTransform, build_dataset, pad_collate, train_transform
from ldwseg.engine.epoch import train_one_epoch
from ldwseg.engine.fit import build_model
from ldwseg.engine.sampling import EpochShardSampler, seed_epoch, seed_everything
from ldwseg.seg.evaluate import evaluate
from ldwseg.seg.loss import segmentation_criterion
from ldwseg.seg.metrics import SegmentationMetrics
from ldwseg.tasks import load_config

VARIANTS = {
    "maxpool/deconv UNet": {"model.down": "maxpool", "model.up": "deconv", "train.wavelet_weight": 0.0},
    "LDW-UNet (orthogonal)": {"model.down": "ldw", "model.up": "ldw", "model.constraint": "orthogonal"},
    "LDW-UNet efficient (sec. 3.4)": {
        "model.down": "ldw", "model.up": "ldw", "model.constraint": "orthogonal", "model.efficient": True,
    },
}
EVAL_SIZE = (180, 240)


def half_resolution_eval() -> SegTransform:
    return SegTransform(
        [
            A.Resize(*EVAL_SIZE, interpolation=cv2.INTER_AREA, mask_interpolation=cv2.INTER_NEAREST),
            A.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD, max_pixel_value=255.0),
        ]
    )


def run(name: str, overrides: dict, args: argparse.Namespace) -> dict:
    base = {
        "data.dataset": "camvid", "data.root": str(args.data_root), "model.base_width": args.width,
        "train.epochs": args.epochs, "train.batch_size": 8, "optim.lr": 2e-3, "optim.step_size": max(1, args.epochs * 3 // 4),
        "train.seed": args.seed,
    }
    cfg = load_config(None, {**base, **overrides})
    seed_everything(cfg.train.seed)
    train = build_dataset("camvid", args.data_root, "train", transform=train_transform(160, scale=(0.4, 0.6)))
    val = build_dataset("camvid", args.data_root, "val", transform=half_resolution_eval())
    sampler = EpochShardSampler(len(train), seed=cfg.train.seed)
    loader = DataLoader(train, batch_size=cfg.train.batch_size, sampler=sampler, drop_last=True)
    val_loader = DataLoader(val, batch_size=4, collate_fn=pad_collate)
    model = build_model(cfg, train.info.num_classes)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, cfg.optim.step_size, cfg.optim.gamma)
    criterion = segmentation_criterion("ce")
    metrics = SegmentationMetrics(train.info.num_classes)
    device = torch.device("cpu")
    epoch_times, best = [], 0.0
    for epoch in range(cfg.train.epochs):
        seed_epoch(cfg.train.seed, epoch)
        sampler.set_epoch(epoch)
        tick = time.perf_counter()
        stats = train_one_epoch(
            model, loader, optimizer, criterion, device=device, wavelet_weight=cfg.train.wavelet_weight, epoch=epoch
        )
        epoch_times.append((time.perf_counter() - tick) / len(loader))
        scheduler.step()
        if (epoch + 1) % args.eval_every == 0 or epoch + 1 == cfg.train.epochs:
            miou = evaluate(model, val_loader, metrics, device=device)["miou"]
            best = max(best, miou)
            print(f"{name}: epoch {epoch + 1} loss {stats['train_loss']:.3f} val mIoU {miou:.4f}", flush=True)
    return {
        "model": name,
        "final_miou": miou,
        "best_miou": best,
        "params": count_parameters(model),
        "flops": count_flops(model, (1, 3, *EVAL_SIZE)),
        "step_ms": 1e3 * statistics.median(epoch_times),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/camvid")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--eval-every", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="Also write the rows to this JSON file.")
    args = parser.parse_args()
    rows = [run(name, overrides, args) for name, overrides in VARIANTS.items()]
    print("\n| model | val mIoU (final) | best | params | FLOPs (240x180) | train step |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['model']} | {r['final_miou']:.4f} | {r['best_miou']:.4f} | {format_count(r['params'])} | "
            f"{format_count(r['flops'])} | {r['step_ms']:.0f} ms |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
