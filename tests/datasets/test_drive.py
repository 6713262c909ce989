"""The DRIVE loader: splits by image number, vessel labels, the field of view as the ignore label.

Real-data checks read ``../shared/data/drive`` (skipped when absent) and compare with Pillow
directly; error messages are checked on small trees of symlinks to the real files in ``tmp_path``.
"""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from trees import link

from ldwseg.datasets import DATASETS, SampleError, build_dataset, dataset_info, eval_transform
from ldwseg.errors import DataError
from ldwseg.seg.metrics import SegmentationMetrics

TRAIN, VAL = range(21, 37), range(37, 41)


def raw(path: Path) -> np.ndarray:
    """A mask file's stored values, decoded by Pillow alone."""
    with Image.open(path) as image:
        return np.asarray(image).astype(np.int64)


def make_drive(shared: Path, tmp: Path, numbers=VAL, *, folder: str = "training", offset: int = 0) -> Path:
    """``tmp/DRIVE/<folder>/{images,1st_manual,mask}`` linked from the real training files ``numbers``.

    ``offset`` renumbers them (``folder="test", offset=-20`` makes test images 01-20 of training 21-40).
    """
    real, drive = shared / "drive" / "training", tmp / "DRIVE"
    for n in numbers:
        m = n + offset
        link(real / "images" / f"{n}_training.tif", drive / folder / "images" / f"{m:02d}_{folder}.tif")
        link(real / "1st_manual" / f"{n}_manual1.gif", drive / folder / "1st_manual" / f"{m:02d}_manual1.gif")
        link(real / "mask" / f"{n}_training_mask.gif", drive / folder / "mask" / f"{m:02d}_{folder}_mask.gif")
    return drive


@pytest.fixture
def drive_root(shared_data) -> Path:
    root = shared_data / "drive"
    if not (root / "training").is_dir():
        pytest.skip(f"DRIVE is absent from {shared_data}")
    return root


# --- real data ------------------------------------------------------------------------------


def test_drive_info_and_registry():
    assert "drive" in DATASETS
    info = dataset_info("drive")
    assert info.num_classes == 2 and info.class_names == ["background", "vessel"] and info.ignore_index == 255
    np.testing.assert_array_equal(info.palette, [[0, 0, 0], [255, 255, 255]])
    assert info.splits == {
        "train": "training images 21-36 (16)",
        "val": "training images 37-40 (4)",
        "all": "training images 21-40 (20)",
        "test": "test images 01-20 (20)",
    }
    with pytest.raises(DataError, match="drive has 2 classes, got num_classes=3"):
        dataset_info("drive", 3)
    with pytest.raises(DataError, match="drive needs a data root, got none"):
        build_dataset("drive", None, "train")
    with pytest.raises(DataError, match="drive cannot be downloaded"):
        build_dataset("drive", "/nowhere", "train", download=True)


def test_drive_splits_by_image_number(drive_root):
    splits = {s: build_dataset("drive", drive_root, s, check=False) for s in ("train", "val", "all")}
    numbers = {s: [int(i.name.split("_")[0]) for i, _ in ds.files] for s, ds in splits.items()}
    assert numbers == {"train": list(TRAIN), "val": list(VAL), "all": list(range(21, 41))}
    for ds in splits.values():
        assert all(i.name.split("_")[0] == m.name.split("_")[0] for i, m in ds.files)


def test_drive_labels_match_the_files(drive_root):
    """Label 1 where the manual mask is 255 inside the FOV, 255 exactly outside the FOV, 0 elsewhere."""
    ds = build_dataset("drive", drive_root, "all")
    fractions = []
    for index, (image_path, manual_path) in enumerate(ds.files):
        image, mask = ds[index]
        fov = raw(drive_root / "training" / "mask" / image_path.name.replace(".tif", "_mask.gif"))
        vessels = raw(manual_path)
        assert image.shape == (584, 565, 3) and image.dtype == np.uint8
        assert mask.shape == (584, 565) == fov.shape == vessels.shape and mask.dtype == np.int64
        assert set(np.unique(fov)) == {0, 255} and set(np.unique(vessels)) == {0, 255}
        assert set(np.unique(mask)) == {0, 1, 255}
        np.testing.assert_array_equal(mask == 255, fov == 0)
        np.testing.assert_array_equal(mask == 1, (vessels == 255) & (fov == 255))
        assert image[fov == 0].mean() < 20 < image[fov == 255].mean(), "the FOV mask should cover the lit disc"
        fractions.append((mask == 1).sum() / (mask != 255).sum())
    assert all(0.07 < f < 0.20 for f in fractions), fractions
    assert 0.10 < np.mean(fractions) < 0.14


def test_drive_dice_counts_the_fov_only(drive_root):
    """A prediction that is right inside the FOV scores Dice 1, whatever it says outside."""
    _, mask = build_dataset("drive", drive_root, "val", transform=eval_transform())[0]
    assert (mask == 255).any()
    wrong_outside = torch.where(mask == 255, torch.ones_like(mask), mask)
    metrics = SegmentationMetrics(2)
    metrics.update(wrong_outside[None], mask[None])
    scores = metrics.compute()
    assert scores["dice"] == 1.0 and scores["fg_iou"] == 1.0 and scores["pixel_acc"] == 1.0
    assert metrics.confusion_matrix().sum() == (mask != 255).sum()


# --- small trees ----------------------------------------------------------------------------


def test_drive_test_split_reads_test_names(shared_data, tmp_path):
    drive = make_drive(shared_data, tmp_path, range(21, 41), folder="test", offset=-20)
    ds = build_dataset("drive", drive, "test")
    assert [i.name for i, _ in ds.files][:2] == ["01_test.tif", "02_test.tif"] and len(ds) == 20
    fov = raw(drive / "test" / "mask" / "01_test_mask.gif")
    np.testing.assert_array_equal(ds[0][1] == 255, fov == 0)


def test_drive_wrong_roots(shared_data, tmp_path):
    drive = make_drive(shared_data, tmp_path)
    with pytest.raises(DataError, match=r"DRIVE root .*nowhere does not exist; point --data-root at the DRIVE"):
        build_dataset("drive", tmp_path / "nowhere", "val")
    with pytest.raises(DataError, match=r"has no training/ folder.*one level too high, point --data-root at .*DRIVE"):
        build_dataset("drive", tmp_path, "val")
    with pytest.raises(DataError, match=r"one level too low, point --data-root at .*DRIVE$"):
        build_dataset("drive", drive / "training", "val")
    with pytest.raises(DataError, match=r"two levels too low, point --data-root at .*DRIVE$"):
        build_dataset("drive", drive / "training" / "1st_manual", "val")
    with pytest.raises(DataError, match=r"has no test/ folder.*has training/ only; use split train, val or all"):
        build_dataset("drive", drive, "test")
    with pytest.raises(DataError, match=r"no split 'holdout': expected one of train, val, all, test \(train = "):
        build_dataset("drive", drive, "holdout")
    (tmp_path / "elsewhere").mkdir()
    with pytest.raises(DataError, match=r"has no training/ folder: expected .*images/\*\.tif.*point --data-root"):
        build_dataset("drive", tmp_path / "elsewhere", "val")


def test_drive_missing_folder(shared_data, tmp_path):
    drive = make_drive(shared_data, tmp_path)
    (drive / "training" / "1st_manual").rename(drive / "training" / "manual")
    with pytest.raises(DataError, match=r"has no 1st_manual/ folder \(found: images, mask\).*restore it"):
        build_dataset("drive", drive, "val")


@pytest.mark.parametrize("gone", ["1st_manual/38_manual1.gif", "mask/38_training_mask.gif"])
def test_drive_missing_manual_or_fov_of_an_image(shared_data, tmp_path, gone):
    drive = make_drive(shared_data, tmp_path)
    (drive / "training" / gone).unlink()
    with pytest.raises(DataError, match=rf"drive: 1 listed files are missing: .*{gone}; restore them.*--skip-bad"):
        build_dataset("drive", drive, "val")
    ds = build_dataset("drive", drive, "val", skip_bad=True)
    assert [i.name for i, _ in ds.files] == ["37_training.tif", "39_training.tif", "40_training.tif"]
    assert [b.path.name for b in ds.skipped] == [Path(gone).name]


def test_drive_fov_of_another_size_is_refused(shared_data, tmp_path):
    drive = make_drive(shared_data, tmp_path)
    fov = drive / "training" / "mask" / "38_training_mask.gif"
    fov.unlink()
    Image.new("L", (100, 80), 255).save(fov)
    with pytest.raises(
        DataError, match=r"files cannot be used: .*38_training_mask.gif \(first: region mask .* is 100x80"
    ):
        build_dataset("drive", drive, "val")
    ds = build_dataset("drive", drive, "val", check=False)
    with pytest.raises(SampleError, match="expected equal sizes") as caught:
        ds[1]
    assert caught.value.path == fov
