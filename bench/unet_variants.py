"""Parameters and FLOPs of every UNet variant (each down block with the up blocks it suits), as a Markdown table.

Each LDW design is listed beside its control twin (see ``ldwseg.models.unet.blocks.controls`` and
``ldwseg.models.unet.blocks.designs``); "vs maxpool" is the parameter count relative to the
max-pool/deconv UNet of the same width.

Usage: ``python bench/unet_variants.py [--width 64] [--size 320] [--classes 21] [--no-attention]``
"""

import argparse

from ldwseg.analysis.complexity import count_flops, count_parameters, format_count
from ldwseg.models import DOWNSAMPLERS, PoolOptions, UNet

VARIANTS = [
    ("maxpool", "deconv", False),
    ("avgpool", "deconv", False),
    ("conv", "deconv", False),
    ("blurpool", "deconv", False),
    ("ldw", "deconv", False),
    ("ldw", "ldw", False),
    ("ldw", "ldw-detail", False),
    ("spd", "shuffle", False),
    ("ldw", "ldw", True),
    ("ldw", "ldw-detail", True),
    ("spd", "shuffle", True),
    ("ldw-ll", "ldw", False),
    ("ldw-ll", "ldw-detail", False),
    ("ldw-maxblur", "ldw", False),
    ("ldw-hwd", "ldw", False),
    ("spd-hwd", "shuffle", False),
    ("ldw-grouped", "ldw", False),
    ("spd-grouped", "shuffle", False),
    ("ldw-efficient", "ldw", False),
    ("spd-efficient", "shuffle", False),
    ("ldw-shortcut", "ldw", False),
    ("spd-shortcut", "shuffle", False),
    ("maxpool-detail", "unpool-detail", False),
]
"""``(down, up, efficient)``: every down block once at least, the LDW ones with the reverse
pool and their ``spd`` twins with ``shuffle`` (its non-wavelet twin, of equal size)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--width", type=int, default=64, help="channels of the first level (64 in the paper)")
    parser.add_argument("--size", type=int, default=320, help="side of the square image the FLOPs are counted on")
    parser.add_argument("--classes", type=int, default=21, help="output channels (21 for VOC)")
    parser.add_argument(
        "--no-attention", action="store_true", help="build the LDW and SPD blocks without energy attention"
    )
    args = parser.parse_args()
    assert {down for down, _, _ in VARIANTS} == set(DOWNSAMPLERS), "every down block is listed"
    pool = PoolOptions(attention=not args.no_attention)
    print(
        f"UNet, base width {args.width}, depth 4, {args.classes} classes, energy attention "
        f"{'off' if args.no_attention else 'on'}, FLOPs for one {args.size}x{args.size} image"
    )
    print("\n| down | up | efficient (sec. 3.4) | params | vs maxpool | FLOPs |\n|---|---|---|---|---|---|")
    baseline = None
    for down, up, efficient in VARIANTS:
        model = UNet(3, args.classes, base_width=args.width, down=down, up=up, efficient=efficient, pool=pool)
        params = count_parameters(model)
        baseline = params if baseline is None else baseline
        flops = format_count(count_flops(model, (1, 3, args.size, args.size)))
        print(
            f"| {down} | {up} | {'yes' if efficient else 'no'} | {format_count(params)} | "
            f"{100 * (params - baseline) / baseline:+.2f}% | {flops} |"
        )


if __name__ == "__main__":
    main()
