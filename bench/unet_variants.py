"""Parameters and FLOPs of every UNet variant (down x up x efficient), as a Markdown table.

Usage: ``python bench/unet_variants.py [--width 64] [--size 320] [--classes 21]``
"""

import argparse

from ldwseg.analysis.complexity import count_flops, count_parameters, format_count
from ldwseg.models import UNet

VARIANTS = [
    ("maxpool", "deconv", False),
    ("ldw", "deconv", False),
    ("ldw", "ldw", False),
    ("ldw", "ldw-detail", False),
    ("ldw", "ldw", True),
    ("ldw", "ldw-detail", True),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--width", type=int, default=64, help="channels of the first level (64 in the paper)")
    parser.add_argument("--size", type=int, default=320, help="side of the square image the FLOPs are counted on")
    parser.add_argument("--classes", type=int, default=21, help="output channels (21 for VOC)")
    args = parser.parse_args()
    print(f"UNet, base width {args.width}, depth 4, {args.classes} classes, FLOPs for one {args.size}x{args.size} image")
    print("\n| down | up | efficient (sec. 3.4) | params | FLOPs |\n|---|---|---|---|---|")
    for down, up, efficient in VARIANTS:
        model = UNet(3, args.classes, base_width=args.width, down=down, up=up, efficient=efficient)
        flops = count_flops(model, (1, 3, args.size, args.size))
        print(f"| {down} | {up} | {'yes' if efficient else 'no'} | {format_count(count_parameters(model))} | {format_count(flops)} |")


if __name__ == "__main__":
    main()
