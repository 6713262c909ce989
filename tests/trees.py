"""Small data trees for tests: linked from the real samples in ../shared/data, or generated."""

from pathlib import Path

import numpy as np
from PIL import Image

from ldwseg.datasets import render_scene

VOC_TRAIN, VOC_VAL = "2007_000032", "2007_000033"  # the two raw VOC pairs in the shared folder


def link(src: Path, dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.symlink_to(src)
    return dst


def make_voc(shared: Path, tmp: Path, *, aug: bool = False) -> Path:
    """``tmp/VOCdevkit/VOC2012`` holding the two raw VOC pairs; returns the VOCdevkit folder."""
    raw, voc = shared / "voc2012_raw_samples", tmp / "VOCdevkit" / "VOC2012"
    masks = shared / "voc2012_aug_masks_subset" / "SegmentationClassAug" if aug else raw / "SegmentationClass"
    for i in (VOC_TRAIN, VOC_VAL):
        link(raw / "JPEGImages" / f"{i}.jpg", voc / "JPEGImages" / f"{i}.jpg")
        link(masks / f"{i}.png", voc / masks.name / f"{i}.png")
    lists = voc / "ImageSets" / "Segmentation"
    lists.mkdir(parents=True)
    (lists / "train.txt").write_text(f"{VOC_TRAIN}\n")
    (lists / "val.txt").write_text(f"{VOC_VAL}\n")
    return tmp / "VOCdevkit"


def make_camvid(shared: Path, tmp: Path, count: int = 2) -> Path:
    camvid = tmp / "CamVid"
    for split in ("train", "val"):
        for image in sorted((shared / "camvid" / split).glob("*.png"))[:count]:
            link(image, camvid / split / image.name)
            link(shared / "camvid" / f"{split}annot" / image.name, camvid / f"{split}annot" / image.name)
    return camvid


def make_folder(shared: Path, root: Path) -> Path:
    raw = shared / "voc2012_raw_samples"
    for i in (VOC_TRAIN, VOC_VAL):
        link(raw / "JPEGImages" / f"{i}.jpg", root / "images" / f"{i}.jpg")
        link(raw / "SegmentationClass" / f"{i}.png", root / "masks" / f"{i}.png")
    return root


MIXED_SIZES = [(40, 56), (48, 48), (40, 56), (36, 60), (48, 48), (52, 44), (40, 56)]


def make_mixed_folder(root: Path, sizes=MIXED_SIZES, seed: int = 0) -> Path:
    """A folder data set (6 classes) of synthetic scenes cropped to different sizes."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i, (h, w) in enumerate(sizes):
        image, mask = render_scene(rng, max(h, w))
        Image.fromarray(image[:h, :w]).save(root / "images" / f"{i:02d}.png")
        Image.fromarray(mask[:h, :w]).save(root / "masks" / f"{i:02d}.png")
    return root
