"""The segmentation data package: palette, readers, loaders, validation, transforms, synthetic set.

Loaders are checked on small trees built in ``tmp_path`` from the team's real samples (linked,
never copied into the repository); values are compared with Pillow and NumPy directly.
"""

import logging
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from skimage.measure import label as connected_components
from torch.utils.data import DataLoader, Dataset
from trees import VOC_TRAIN, VOC_VAL, link, make_camvid, make_folder, make_voc

from ldwseg.datasets import (
    DATASETS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    SampleError,
    SegmentationDataset,
    build_dataset,
    colorize,
    dataset_info,
    denormalize,
    eval_transform,
    generate_synthetic,
    overlay,
    pad_collate,
    read_image,
    read_mask,
    train_transform,
    validate,
    voc_palette,
)
from ldwseg.datasets.info import folder_info
from ldwseg.errors import DataError

IGNORE_RGB = (224, 224, 192)


def devkit_palette(n: int) -> np.ndarray:
    """The VOC devkit's ``labelcolormap`` written as its MATLAB loop, bit by bit."""
    cmap = np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        cmap[i] = (r, g, b)
    return cmap


@pytest.fixture(scope="module")
def synthetic_default(tmp_path_factory) -> tuple[Path, float]:
    """The synthetic set with its default parameters, and the seconds it took to write."""
    root = tmp_path_factory.mktemp("synthetic")
    start = time.perf_counter()
    generate_synthetic(root)
    return root, time.perf_counter() - start


# --- palette ------------------------------------------------------------------------------


def test_voc_palette_matches_the_devkit_loop():
    palette = voc_palette(256)
    assert palette.shape == (256, 3) and palette.dtype == np.uint8
    np.testing.assert_array_equal(palette, devkit_palette(256))
    assert tuple(palette[15]) == (192, 128, 128)  # person
    assert tuple(palette[255]) == IGNORE_RGB
    np.testing.assert_array_equal(voc_palette(21), palette[:21])


def test_voc_palette_rejects_too_many_colours():
    with pytest.raises(DataError, match="1 <= n <= 256"):
        voc_palette(300)


def test_shared_val_targets_use_only_voc_colours(shared_data):
    allowed = {tuple(c) for c in voc_palette(256)[:21]} | {IGNORE_RGB}
    seen: set[tuple[int, ...]] = set()
    targets = sorted((shared_data / "voc2012_val_crops" / "samples").glob("*_target.png"))
    assert len(targets) == 14
    for target in targets:
        rgb = np.asarray(Image.open(target).convert("RGB")).reshape(-1, 3).astype(np.int64)
        packed = np.unique(rgb[:, 0] << 16 | rgb[:, 1] << 8 | rgb[:, 2])
        seen |= {(int(c >> 16), int(c >> 8 & 255), int(c & 255)) for c in packed}
    assert seen <= allowed, f"colours outside the VOC palette: {sorted(seen - allowed)}"
    assert len(seen - {(0, 0, 0), IGNORE_RGB}) >= 5  # several object classes, not only background


def test_colorize_reproduces_the_real_voc_png(shared_data):
    path = shared_data / "voc2012_raw_samples" / "SegmentationClass" / f"{VOC_TRAIN}.png"
    image = colorize(read_mask(path), voc_palette(21))
    assert image.mode == "P"
    np.testing.assert_array_equal(np.asarray(image), np.asarray(Image.open(path)))
    np.testing.assert_array_equal(np.asarray(image.convert("RGB")), np.asarray(Image.open(path).convert("RGB")))


def test_colorize_rejects_labels_without_a_colour():
    with pytest.raises(DataError, match=r"label values \[7\] outside \[0, 3\)"):
        colorize(np.array([[0, 7], [255, 2]]), voc_palette(3))


def test_overlay_blends_labelled_pixels_and_keeps_ignored_ones():
    image = np.full((2, 2, 3), 100, dtype=np.uint8)
    mask = np.array([[0, 1], [255, 1]])
    palette = np.array([[0, 0, 0], [200, 50, 250]], dtype=np.uint8)
    out = overlay(image, mask, palette, alpha=0.5)
    np.testing.assert_array_equal(out[0, 0], [50, 50, 50])
    np.testing.assert_array_equal(out[0, 1], [150, 75, 175])
    np.testing.assert_array_equal(out[1, 0], [100, 100, 100])
    np.testing.assert_array_equal(overlay(image, mask, palette, alpha=1.0)[1, 1], palette[1])
    with pytest.raises(DataError, match="differs from image shape"):
        overlay(image, mask[:1], palette)


# --- readers ------------------------------------------------------------------------------


def test_read_image_converts_every_mode_to_rgb(tmp_path):
    gray = np.arange(48, dtype=np.uint8).reshape(6, 8) * 5
    Image.fromarray(gray, mode="L").save(tmp_path / "gray.png")
    wide = (np.arange(48, dtype=np.uint16).reshape(6, 8) * 1300).astype(np.uint16)
    Image.fromarray(wide).save(tmp_path / "wide.png")
    rgba = np.dstack([np.full((6, 8, 3), 40, np.uint8), np.full((6, 8), 7, np.uint8)])
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "rgba.png")
    colorize(np.eye(6, 8, dtype=np.int64), voc_palette(2)).save(tmp_path / "palette.png")

    for name in ("gray", "wide", "rgba", "palette"):
        image = read_image(tmp_path / f"{name}.png")
        assert image.shape == (6, 8, 3) and image.dtype == np.uint8, name
    np.testing.assert_array_equal(read_image(tmp_path / "gray.png"), np.dstack([gray] * 3))
    assert Image.open(tmp_path / "wide.png").mode.startswith("I")
    expected = np.rint(wide.astype(np.float64) * 255 / 65535).astype(np.uint8)
    np.testing.assert_array_equal(read_image(tmp_path / "wide.png"), np.dstack([expected] * 3))
    np.testing.assert_array_equal(read_image(tmp_path / "rgba.png"), rgba[..., :3])
    np.testing.assert_array_equal(read_image(tmp_path / "palette.png")[1, 1], [128, 0, 0])


def test_voc_masks_are_read_as_palette_indices(shared_data):
    path = shared_data / "voc2012_raw_samples" / "SegmentationClass" / f"{VOC_TRAIN}.png"
    mask = read_mask(path)
    assert mask.dtype == np.int64 and mask.shape == (281, 500)
    np.testing.assert_array_equal(mask, np.asarray(Image.open(path)))
    assert set(np.unique(mask)) == {0, 1, 15, 255}


# --- VOC ----------------------------------------------------------------------------------


@pytest.mark.parametrize("level", ["VOCdevkit", "VOC2012"])
def test_voc12_reads_the_real_layout(shared_data, tmp_path, level):
    devkit = make_voc(shared_data, tmp_path)
    root = devkit if level == "VOCdevkit" else devkit / "VOC2012"
    train = build_dataset("voc12", root, "train")
    val = build_dataset("voc12", root, "val")
    assert [p[0].stem for p in train.files] == [VOC_TRAIN] and [p[0].stem for p in val.files] == [VOC_VAL]
    image, mask = val[0]
    assert image.shape == (366, 500, 3) and image.dtype == np.uint8
    assert mask.shape == (366, 500) and mask.dtype == np.int64
    np.testing.assert_array_equal(image, np.asarray(Image.open(val.files[0][0]).convert("RGB")))
    np.testing.assert_array_equal(mask, np.asarray(Image.open(val.files[0][1])))
    assert train.info.num_classes == 21 and train.info.class_names[15] == "person"
    assert train.info.ignore_index == 255


def test_voc12_wrong_roots_name_the_expected_folder(shared_data, tmp_path):
    devkit = make_voc(shared_data, tmp_path)
    with pytest.raises(DataError, match=r"one level too high.*point --data-root at .*VOCdevkit"):
        build_dataset("voc12", tmp_path, "train")
    with pytest.raises(DataError, match=r"inside the VOC2012 folder.*point --data-root at .*VOCdevkit"):
        build_dataset("voc12", devkit / "VOC2012" / "JPEGImages", "train")
    with pytest.raises(DataError, match=r"inside the VOC2012 folder .*VOC2012: .*point --data-root at .*VOCdevkit"):
        build_dataset("voc12", devkit / "VOC2012" / "ImageSets" / "Segmentation", "train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"has no VOC2012 folder: expected .*empty/VOC2012/JPEGImages"):
        build_dataset("voc12", tmp_path / "empty", "train")
    with pytest.raises(DataError, match="does not exist"):
        build_dataset("voc12", tmp_path / "nowhere", "train")


def test_voc12_missing_or_empty_split_list(shared_data, tmp_path):
    devkit = make_voc(shared_data, tmp_path)
    with pytest.raises(DataError, match=r"trainval.txt does not exist \(lists found there: train, val\)"):
        build_dataset("voc12", devkit, "trainval")
    (devkit / "VOC2012" / "ImageSets" / "Segmentation" / "val.txt").write_text("\n\n")
    with pytest.raises(DataError, match=r"val\.txt is empty"):
        build_dataset("voc12", devkit, "val")


def test_voc12_aug_maps_splits_and_reads_the_real_masks(shared_data, tmp_path, caplog):
    devkit = make_voc(shared_data, tmp_path, aug=True)
    lists = devkit / "VOC2012" / "ImageSets" / "Segmentation"
    with pytest.raises(DataError, match=r"train_aug.txt does not exist.*comes with SegmentationClassAug"):
        build_dataset("voc12-aug", devkit, "train")
    for name in ("train_aug", "val"):  # the real id lists: 10582 and 1449 ids, of which 1 image each is here
        lists.joinpath(f"{name}.txt").unlink(missing_ok=True)
        link(shared_data / "voc2012_aug_masks_subset" / f"{name}.txt", lists / f"{name}.txt")
    with pytest.raises(DataError, match=r"listed files are missing: .*JPEGImages/2007_000039.jpg"):
        build_dataset("voc12-aug", devkit, "train")
    with caplog.at_level(logging.WARNING):
        train = build_dataset("voc12-aug", devkit, "train", skip_bad=True)
        val = build_dataset("voc12-aug", devkit, "val", skip_bad=True)
    assert [p[0].stem for p in train.files] == [VOC_TRAIN] and [p[0].stem for p in val.files] == [VOC_VAL]
    assert len(train.skipped) >= 10581 and "skipped" in caplog.text
    assert train.files[0][1].parent.name == "SegmentationClassAug"
    _, mask = train[0]
    np.testing.assert_array_equal(mask, np.asarray(Image.open(train.files[0][1])))
    assert set(np.unique(mask)) == {0, 1, 15, 255}


def test_voc12_aug_accepts_plain_gray_index_masks(shared_data, tmp_path):
    devkit = make_voc(shared_data, tmp_path, aug=True)
    aug = devkit / "VOC2012" / "SegmentationClassAug" / f"{VOC_VAL}.png"
    indices = np.asarray(Image.open(aug))
    aug.unlink()
    Image.fromarray(indices, mode="L").save(aug)  # the usual SegmentationClassAug.zip stores gray PNGs
    _, mask = build_dataset("voc12-aug", devkit, "val")[0]
    np.testing.assert_array_equal(mask, indices)


def test_voc12_aug_without_its_masks_says_what_to_unpack(shared_data, tmp_path):
    devkit = make_voc(shared_data, tmp_path)
    with pytest.raises(DataError, match=r"has no SegmentationClassAug folder.*unpack"):
        build_dataset("voc12-aug", devkit, "val")


# --- CamVid and folder --------------------------------------------------------------------


def test_camvid_void_becomes_ignore(shared_data, tmp_path):
    camvid = make_camvid(shared_data, tmp_path)
    ds = build_dataset("camvid", camvid, "train")
    assert len(ds) == 2 and ds.info.num_classes == 11 and ds.info.palette.shape == (11, 3)
    assert ds.info.class_names[0] == "Sky" and ds.info.class_names[10] == "Bicyclist"
    image, mask = ds[0]
    raw = np.asarray(Image.open(ds.files[0][1])).astype(np.int64)
    assert (raw == 11).any(), "the sample should contain void pixels"
    assert image.shape == (360, 480, 3) and mask.shape == (360, 480) and mask.dtype == np.int64
    np.testing.assert_array_equal(mask, np.where(raw == 11, 255, raw))
    assert set(np.unique(mask)) <= set(range(11)) | {255}


def test_camvid_wrong_roots(shared_data, tmp_path):
    camvid = make_camvid(shared_data, tmp_path)
    with pytest.raises(DataError, match=r"one level too high, point --data-root at .*CamVid"):
        build_dataset("camvid", tmp_path, "train")
    with pytest.raises(DataError, match=r"one level too low, point --data-root at .*CamVid"):
        build_dataset("camvid", camvid / "train", "train")
    with pytest.raises(DataError, match=r"no test/ folder.*splits found there: train, val"):
        build_dataset("camvid", camvid, "test")
    with pytest.raises(DataError, match="expected one of train, val, test"):
        build_dataset("camvid", camvid, "holdout")


def test_folder_pairs_by_stem_and_needs_num_classes(shared_data, tmp_path):
    root = make_folder(shared_data, tmp_path / "mine")
    with pytest.raises(DataError, match=r"needs the number of classes.*--set data.num_classes=K"):
        build_dataset("folder", root, "train")
    ds = build_dataset("folder", root, "val", num_classes=21)
    assert [(i.stem, m.stem) for i, m in ds.files] == [(VOC_TRAIN, VOC_TRAIN), (VOC_VAL, VOC_VAL)]
    assert ds.info.num_classes == 21 and len(ds.info.class_names) == 21
    np.testing.assert_array_equal(ds[1][1], np.asarray(Image.open(root / "masks" / f"{VOC_VAL}.png")))


def test_folder_uses_a_split_subfolder_when_present(shared_data, tmp_path):
    root = make_folder(shared_data, tmp_path / "mine")
    make_folder(shared_data, root / "val")
    (root / "val" / "images" / f"{VOC_TRAIN}.jpg").unlink()
    assert len(build_dataset("folder", root, "val", num_classes=21)) == 1
    assert len(build_dataset("folder", root, "train", num_classes=21)) == 2
    with pytest.raises(DataError, match=r"has no images/ folder: expected .*images/\*"):
        build_dataset("folder", tmp_path, "train", num_classes=21)


def test_registry_names_and_errors(tmp_path):
    assert set(DATASETS) == {"voc12", "voc12-aug", "camvid", "drive", "folder", "synthetic"}
    with pytest.raises(DataError, match="unknown data set 'cityscapes'; expected one of: voc12, voc12-aug, camvid"):
        build_dataset("cityscapes", tmp_path, "train")
    with pytest.raises(DataError, match="voc12 has 21 classes, got num_classes=5"):
        dataset_info("voc12", 5)
    with pytest.raises(DataError, match="camvid cannot be downloaded"):
        build_dataset("camvid", tmp_path, "train", download=True)
    with pytest.raises(DataError, match="voc12 needs a data root"):
        build_dataset("voc12", None, "train")
    info = dataset_info("synthetic")
    assert info.num_classes == 6 and info.class_names[-1] == "curve" and info.palette.shape == (6, 3)
    np.testing.assert_array_equal(dataset_info("folder", 4).palette, voc_palette(4))


# --- bad samples --------------------------------------------------------------------------


def broken_folder(shared_data: Path, root: Path) -> dict[str, Path]:
    """A folder data set with one good pair and one pair per kind of defect."""
    raw = shared_data / "voc2012_raw_samples"
    jpeg = (raw / "JPEGImages" / f"{VOC_TRAIN}.jpg").read_bytes()
    mask = np.asarray(Image.open(raw / "SegmentationClass" / f"{VOC_TRAIN}.png"))
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    files = {}
    for name in ("good", "text", "truncated", "empty", "resized", "labels"):
        files[name] = root / "images" / (f"{name}.png" if name == "text" else f"{name}.jpg")
        files[name].write_bytes(jpeg)
        colorize(mask, voc_palette(21)).save(root / "masks" / f"{name}.png")
    files["text"].write_text("this is not an image")
    files["truncated"].write_bytes(jpeg[: len(jpeg) // 2])
    files["empty"].write_bytes(b"")
    colorize(mask[:, :-3], voc_palette(21)).save(root / "masks" / "resized.png")
    Image.fromarray(np.where(mask == 15, 40, mask).astype(np.uint8), mode="L").save(root / "masks" / "labels.png")
    return files


def test_bad_samples_raise_naming_the_file(shared_data, tmp_path):
    files = broken_folder(shared_data, tmp_path)
    ds = build_dataset("folder", tmp_path, "train", num_classes=21, check=False)  # checked when read
    by_stem = {image.stem: k for k, (image, _) in enumerate(ds.files)}
    ds[by_stem["good"]]
    for name in ("text", "truncated", "empty"):
        with pytest.raises(DataError, match=rf"cannot read image file .*{files[name].name}"):
            ds[by_stem[name]]
    with pytest.raises(DataError, match=r"mask .*resized.png is 497x281 \(WxH\) but image .*resized.jpg is 500x281"):
        ds[by_stem["resized"]]
    with pytest.raises(DataError, match=r"mask .*labels.png has label values \[40\] outside \[0, 21\)"):
        ds[by_stem["labels"]]


def test_validate_and_skip_bad_list_the_bad_files(shared_data, tmp_path, caplog):
    files = broken_folder(shared_data, tmp_path)
    bad = validate(build_dataset("folder", tmp_path, "train", num_classes=21, check=False))
    expected = {files[n] for n in ("text", "truncated", "empty")} | {
        tmp_path / "masks" / "resized.png",
        tmp_path / "masks" / "labels.png",
    }
    assert {b.path for b in bad} == expected
    with caplog.at_level(logging.WARNING):
        ds = build_dataset("folder", tmp_path, "train", num_classes=21, skip_bad=True)
    assert [image.stem for image, _ in ds.files] == ["good"]
    assert {b.path for b in ds.skipped} == expected and "skipped 5 of 6 samples" in caplog.text
    assert validate(ds) == []


def test_default_check_refuses_the_data_set_listing_the_bad_files(shared_data, tmp_path):
    files = broken_folder(shared_data, tmp_path)
    Image.new("RGB", (1, 1)).save(tmp_path / "images" / "tiny.png")
    Image.new("L", (1, 1)).save(tmp_path / "masks" / "tiny.png")
    with pytest.raises(DataError) as err:
        build_dataset("folder", tmp_path, "train", num_classes=21)
    message = str(err.value)
    assert "6 files cannot be used" in message and "--skip-bad" in message and "\n" not in message
    for name in ("empty", "labels", "resized"):  # the first five, sorted by file name, are listed
        assert name in message
    assert "and 1 more" in message
    ds = build_dataset("folder", tmp_path, "train", num_classes=21, skip_bad=True)
    assert [image.stem for image, _ in ds.files] == ["good"]
    assert any(b.path.name == "tiny.png" and "1x1 pixels" in b.reason for b in ds.skipped)
    assert files["good"].exists()


def test_missing_mask_raises_at_construction(shared_data, tmp_path):
    root = make_folder(shared_data, tmp_path)
    (root / "masks" / f"{VOC_VAL}.png").unlink()
    with pytest.raises(DataError, match=rf"1 listed files are missing: .*masks/{VOC_VAL}.png.*--skip-bad"):
        build_dataset("folder", root, "train", num_classes=21)
    assert len(build_dataset("folder", root, "train", num_classes=21, skip_bad=True)) == 1


def test_region_ignores_the_labels_outside_it(tmp_path):
    """``region`` (DRIVE's field of view): labels where the region file is 0 become 255, after ``label_map``."""
    labels = np.zeros((12, 10), dtype=np.uint8)
    labels[3:9, 2:8] = 7  # raw 7 is mapped to class 1
    inside = np.zeros((12, 10), dtype=np.uint8)
    inside[:, 5:] = 255
    Image.fromarray(np.full((12, 10, 3), 90, dtype=np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(labels, mode="L").save(tmp_path / "a_mask.png")
    Image.fromarray(inside, mode="L").save(tmp_path / "a_region.png")
    ds = SegmentationDataset(
        [(tmp_path / "a.png", tmp_path / "a_mask.png")],
        info=folder_info(2),
        label_map={7: 1},
        region=lambda mask: mask.with_name(mask.name.replace("_mask", "_region")),
    )
    _, mask = ds[0]
    np.testing.assert_array_equal(mask, np.where(inside == 0, 255, np.where(labels == 7, 1, 0)))
    (tmp_path / "a_region.png").unlink()
    with pytest.raises(DataError, match=r"1 listed files are missing: .*a_region.png"):
        SegmentationDataset([(tmp_path / "a.png", tmp_path / "a_mask.png")], info=folder_info(2), region=ds.region)


# --- transforms ---------------------------------------------------------------------------


def voc_like_pair() -> tuple[np.ndarray, np.ndarray]:
    """A VOC-shaped pair made here (281 x 500): a person (15) and a bottle (5 would do; 1 here) on background,
    each outlined by the ignore label 255 as VOC's masks are, over a noisy image."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (281, 500, 3)).astype(np.uint8)
    mask = np.zeros((281, 500), np.int64)
    mask[40:240, 100:220] = 255
    mask[43:237, 103:217] = 15
    mask[150:200, 300:330] = 255
    mask[152:198, 302:328] = 1
    return image, mask


def test_train_transform_pads_masks_with_ignore():
    image, mask = voc_like_pair()  # 281 x 500
    out_image, out_mask = train_transform(513, scale=(1.0, 1.0))(image, mask)
    assert out_image.shape == (3, 513, 513) and out_image.dtype == torch.float32
    assert out_mask.shape == (513, 513) and out_mask.dtype == torch.int64
    # A 281-row image in 513 rows leaves at least 232 padded rows, all ignored and black.
    padded_rows = (out_mask == 255).all(dim=1)
    assert padded_rows.sum() >= 513 - 281
    black = -torch.tensor(IMAGENET_MEAN) / torch.tensor(IMAGENET_STD)
    torch.testing.assert_close(out_image[:, padded_rows, :].mean(dim=(1, 2)), black)
    labelled = out_mask[out_mask != 255]
    assert sorted(labelled.unique().tolist()) == [0, 1, 15]
    assert (out_mask == 15).sum() == (mask == 15).sum()  # scale 1: the person keeps every pixel


def test_train_transform_never_interpolates_labels():
    image, mask = voc_like_pair()
    transform = train_transform(320)
    for _ in range(8):
        out_image, out_mask = transform(image, mask)
        assert out_image.shape == (3, 320, 320)
        assert set(out_mask.unique().tolist()) <= {0, 1, 15, 255}


def test_eval_transform_keeps_resolution_and_labels():
    image, mask = voc_like_pair()
    out_image, out_mask = eval_transform()(image, mask)
    assert out_image.shape == (3, 281, 500) and out_image.dtype == torch.float32
    np.testing.assert_array_equal(out_mask.numpy(), mask)
    expected = (image / 255.0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    torch.testing.assert_close(out_image, torch.from_numpy(expected.transpose(2, 0, 1)).float(), atol=1e-5, rtol=0)
    np.testing.assert_array_equal(denormalize(out_image), image)


def test_pad_collate_pads_images_with_zero_and_masks_with_ignore():
    a = (torch.randn(3, 5, 7), torch.randint(0, 3, (5, 7)))
    b = (torch.randn(3, 6, 4), torch.randint(0, 3, (6, 4)))
    images, masks = pad_collate([a, b])
    assert images.shape == (2, 3, 6, 7) and masks.shape == (2, 6, 7) and masks.dtype == torch.int64
    torch.testing.assert_close(images[0, :, :5, :7], a[0])
    torch.testing.assert_close(images[1, :, :6, :4], b[0])
    assert (images[0, :, 5:] == 0).all() and (images[1, :, :, 4:] == 0).all()
    assert (masks[0, 5:] == 255).all() and (masks[1, :, 4:] == 255).all()
    assert torch.equal(masks[0, :5, :7], a[1]) and torch.equal(masks[1, :6, :4], b[1])
    with pytest.raises(DataError, match="empty batch"):
        pad_collate([])


class _SameImage(Dataset):
    """The same pair at every index, so any difference between items comes from the transform."""

    def __init__(self, transform):
        self.transform = transform

    def __len__(self):
        return 4

    def __getitem__(self, index):
        image = np.arange(40 * 40 * 3, dtype=np.uint8).reshape(40, 40, 3)
        return self.transform(image, np.zeros((40, 40), dtype=np.int64))


def test_augmentations_differ_between_workers_and_follow_torch_seed():
    loader = DataLoader(_SameImage(train_transform(24, scale=(0.8, 1.6))), batch_size=1, num_workers=2)
    first, second = list(loader)[:2]  # item 0 from worker 0, item 1 from worker 1
    assert not torch.equal(first[0], second[0])
    torch.manual_seed(1)
    one = _SameImage(train_transform(24))[0]
    torch.manual_seed(1)
    two = _SameImage(train_transform(24))[0]
    assert torch.equal(one[0], two[0]) and torch.equal(one[1], two[1])


# --- synthetic ----------------------------------------------------------------------------


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_synthetic_is_deterministic(tmp_path):
    options = {"num_train": 3, "num_val": 2, "size": 64}
    first = tree_bytes(generate_synthetic(tmp_path / "a", seed=3, **options))
    second = tree_bytes(generate_synthetic(tmp_path / "b", seed=3, **options))
    other = tree_bytes(generate_synthetic(tmp_path / "c", seed=4, **options))
    assert len(first) == 3 + 5 + 5 + 1  # train/val/trainval lists, 5 images, 5 masks, the stamp
    assert first == second
    assert first["VOC2012/JPEGImages/train_0000.jpg"] != other["VOC2012/JPEGImages/train_0000.jpg"]


def test_synthetic_defaults_are_fast_and_complete(synthetic_default):
    root, seconds = synthetic_default
    assert seconds < 5.0
    voc = root / "VOC2012"
    assert len(list((voc / "JPEGImages").glob("*.jpg"))) == 48 + 16
    masks = [np.asarray(Image.open(p)) for p in sorted((voc / "SegmentationClass").glob("*.png"))]
    assert all(Image.open(p).mode == "P" for p in sorted((voc / "SegmentationClass").glob("*.png"))[:3])
    assert masks[0].shape == (128, 128)
    values = set(np.unique(np.stack(masks)).tolist())
    assert values == {0, 1, 2, 3, 4, 5, 255}


def test_synthetic_masks_have_borders_thin_curves_and_small_objects(synthetic_default):
    root, _ = synthetic_default
    touching = thin = curve = 0
    small = 0
    for path in sorted((root / "VOC2012" / "SegmentationClass").glob("*.png")):
        mask = np.asarray(Image.open(path))
        shape, background = (mask >= 1) & (mask <= 4), mask == 0
        # VOC's border band: a shape pixel never touches a background pixel directly.
        touching += (shape[:, 1:] & background[:, :-1]).sum() + (shape[:, :-1] & background[:, 1:]).sum()
        touching += (shape[1:] & background[:-1]).sum() + (shape[:-1] & background[1:]).sum()
        curves = (mask == 5).astype(np.uint8)
        curve += curves.sum()
        thin += curves.sum() - cv2.erode(curves, np.ones((3, 3), np.uint8)).sum()
        areas = np.bincount(connected_components(shape, connectivity=1).ravel())[1:]
        small += (areas < 40).sum()
    assert touching == 0
    assert curve > 0 and thin / curve > 0.75  # most curve pixels lie within 1 px of the curve's edge
    assert small >= 20


def test_synthetic_is_idempotent_and_guards_foreign_folders(tmp_path):
    root = generate_synthetic(tmp_path / "s", num_train=2, num_val=1, size=48)
    image = root / "VOC2012" / "JPEGImages" / "train_0000.jpg"
    stamp = image.stat().st_mtime_ns
    generate_synthetic(root, num_train=2, num_val=1, size=48)
    assert image.stat().st_mtime_ns == stamp
    generate_synthetic(root, num_train=3, num_val=1, size=48)
    assert len(list((root / "VOC2012" / "JPEGImages").iterdir())) == 4
    (tmp_path / "user" / "VOC2012").mkdir(parents=True)
    with pytest.raises(DataError, match="not written by generate_synthetic"):
        generate_synthetic(tmp_path / "user")
    with pytest.raises(DataError, match="size >= 32"):
        generate_synthetic(tmp_path / "tiny", size=8)


def test_build_synthetic_defaults_to_the_data_folder(tmp_path, monkeypatch, synthetic_default):
    root, _ = synthetic_default
    (tmp_path / "synthetic").symlink_to(root)
    monkeypatch.setenv("LDWSEG_DATA", str(tmp_path))
    train = build_dataset("synthetic", None, "train", transform=train_transform(64))
    val = build_dataset("synthetic", None, "val")
    assert len(train) == 48 and len(val) == 16 and train.files[0][0].parent.parent.parent == tmp_path / "synthetic"
    assert val.info.class_names == ["background", "disk", "rectangle", "triangle", "ring", "curve"]
    image, mask = train[0]
    assert image.shape == (3, 64, 64) and image.dtype == torch.float32 and mask.dtype == torch.int64
    image, mask = val[0]
    assert image.shape == (128, 128, 3) and image.dtype == np.uint8 and mask.dtype == np.int64


def test_an_image_too_large_to_decode_is_a_bad_sample(tmp_path):
    path = tmp_path / "big.png"
    Image.new("RGB", (64, 64)).save(path)
    with pytest.raises(SampleError, match=r"big.png is too large to decode safely") as caught:
        read_image(path, max_pixels=100)  # 4096 px > 100, checked on the header
    assert caught.value.path == path
    colorize(np.zeros((64, 64), np.int64), voc_palette(2)).save(tmp_path / "big_mask.png")
    with pytest.raises(SampleError, match=r"mask file .*big_mask.png is too large to decode safely"):
        read_mask(tmp_path / "big_mask.png", max_pixels=100)


def test_the_pixel_limit_is_ldwsegs_not_pillows(tmp_path, monkeypatch):
    """Sample files pass the size check of every ldwseg reader (predict's too), which replaces Pillow's."""
    path = tmp_path / "big.png"
    Image.new("RGB", (64, 64), (1, 2, 3)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # Pillow alone would refuse 4096 px > 2 x 100
    np.testing.assert_array_equal(read_image(path), np.full((64, 64, 3), (1, 2, 3), np.uint8))
    assert Image.MAX_IMAGE_PIXELS == 100  # put back after reading


def test_unreadable_files_name_their_role(tmp_path):
    (tmp_path / "empty.png").touch()
    with pytest.raises(SampleError, match=r"^cannot read image file .*empty.png: it is empty \(0 bytes\)"):
        read_image(tmp_path / "empty.png")
    with pytest.raises(SampleError, match=r"^cannot read mask file .*empty.png: it is empty \(0 bytes\)"):
        read_mask(tmp_path / "empty.png")
    Image.new("RGB", (4, 4)).save(tmp_path / "colour.png")
    with pytest.raises(SampleError, match=r"mask .*colour.png is a RGB image; expected a class-index mask"):
        read_mask(tmp_path / "colour.png")
    Image.new("RGB", (7, 9)).save(tmp_path / "small.png")
    with pytest.raises(SampleError, match=r"small.png is 7x9 pixels; expected at least 8x8"):
        read_image(tmp_path / "small.png", min_size=8)
