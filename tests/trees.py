"""Small data trees for tests, linked from the real samples in ../shared/data."""

from pathlib import Path

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
