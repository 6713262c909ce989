"""CamVid splits that hold out a whole video sequence: ``<split>-without-<SEQ>`` and ``<split>-only-<SEQ>``.

Counts are checked on the real SegNet CamVid in ``../shared/data/camvid`` (skipped when absent);
the parsing and the error messages on a small tree of symlinks in ``tmp_path``.
"""

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from trees import link

from ldwseg.datasets import build_dataset, dataset_info
from ldwseg.errors import DataError

TRAIN_SEQUENCES = {"0001TP": 62, "0006R0": 101, "0016E5": 204}  # SegNet's train/; val/ is 101 frames of 0016E5


def names(root: Path, split: str) -> list[str]:
    return [image.name for image, _ in build_dataset("camvid", root, split, check=False).files]


def make_sequences(shared: Path, tmp: Path, per_sequence: int = 2) -> Path:
    """``tmp/CamVid`` with the first ``per_sequence`` train images of each sequence and 2 val images."""
    real, camvid = shared / "camvid", tmp / "CamVid"
    chosen = {"train": [], "val": sorted((real / "val").glob("*.png"))[:2]}
    for sequence in TRAIN_SEQUENCES:
        chosen["train"] += sorted((real / "train").glob(f"{sequence}_*.png"))[:per_sequence]
    for split, images in chosen.items():
        for image in images:
            link(image, camvid / split / image.name)
            link(real / f"{split}annot" / image.name, camvid / f"{split}annot" / image.name)
    return camvid


@pytest.fixture
def camvid_root(shared_data) -> Path:
    root = shared_data / "camvid"
    if not (root / "train").is_dir():
        pytest.skip(f"CamVid is absent from {shared_data}")
    return root


# --- real data ------------------------------------------------------------------------------


def test_real_sequence_counts(camvid_root):
    train = names(camvid_root, "train")
    assert Counter(n.split("_")[0] for n in train) == TRAIN_SEQUENCES
    assert Counter(n.split("_")[0] for n in names(camvid_root, "val")) == {"0016E5": 101}
    for sequence, count in TRAIN_SEQUENCES.items():
        only, without = names(camvid_root, f"train-only-{sequence}"), names(camvid_root, f"train-without-{sequence}")
        assert len(only) == count and len(without) == len(train) - count
        assert all(n.startswith(f"{sequence}_") for n in only) and not any(n.startswith(sequence) for n in without)
        assert sorted(only + without) == sorted(train)
    assert names(camvid_root, "val-only-0016E5") == names(camvid_root, "val")


def test_real_sequence_split_reads_labels(camvid_root):
    ds = build_dataset("camvid", camvid_root, "train-only-0006R0", check=False)
    image, mask = ds[0]
    stored = np.asarray(Image.open(ds.files[0][1])).astype(np.int64)
    assert image.shape == (360, 480, 3) and ds.files[0][1].parent.name == "trainannot"
    np.testing.assert_array_equal(mask, np.where(stored == 11, 255, stored))


# --- small trees ----------------------------------------------------------------------------


def test_holdout_splits_on_a_tree(shared_data, tmp_path):
    camvid = make_sequences(shared_data, tmp_path)
    assert [n.split("_")[0] for n in names(camvid, "train-without-0006R0")] == ["0001TP"] * 2 + ["0016E5"] * 2
    only = build_dataset("camvid", camvid, "train-only-0006R0")
    assert [(i.name, m.parent.name) for i, m in only.files] == [
        (i.name, "trainannot") for i in sorted((camvid / "train").glob("0006R0_*"))
    ]
    assert len(names(camvid, "val-only-0016E5")) == 2


def test_unknown_sequence_lists_the_sequences(shared_data, tmp_path):
    camvid = make_sequences(shared_data, tmp_path)
    with pytest.raises(
        DataError,
        match=r"train has no images of sequence 'Seq05VD' .*sequences there: 0001TP \(2\), 0006R0 \(2\), 0016E5 \(2\); "
        r"name one of them in train-without-<SEQ>",
    ):
        build_dataset("camvid", camvid, "train-without-Seq05VD")
    with pytest.raises(DataError, match=r"val has no images of sequence '0006r0' .*sequences there: 0016E5 \(2\)"):
        build_dataset("camvid", camvid, "val-only-0006r0")


def test_holdout_split_errors(shared_data, tmp_path):
    camvid = make_sequences(shared_data, tmp_path)
    with pytest.raises(DataError, match=r"val-without-0016E5 is empty: .*holds only sequence 0016E5"):
        build_dataset("camvid", camvid, "val-without-0016E5")
    for bad in ("train-except-0006R0", "train-without-", "trainval-only-0006R0", "sequence-0006R0"):
        with pytest.raises(
            DataError, match=rf"no split '{bad}': expected one of train, val, test, or <split>-without-"
        ):
            build_dataset("camvid", camvid, bad)
    with pytest.raises(DataError, match=r"has no test/ folder.*splits found there: train, val"):
        build_dataset("camvid", camvid, "test-only-Seq05VD")


def test_camvid_info_documents_the_splits():
    splits = dataset_info("camvid").splits
    assert set(splits) == {"train", "val", "test", "<split>-without-<SEQ>", "<split>-only-<SEQ>"}
    assert "0006R0 101" in splits["train"] and "0016E5" in splits["val"]
