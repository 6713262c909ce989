"""``data.cache``: pairs held in memory once read give the same items, batches and runs as the files."""

import logging

import numpy as np
import pytest
import torch
from PIL import Image
from trees import make_mixed_folder

import ldwseg.datasets.base as base
import ldwseg.datasets.cache as cache
from ldwseg.config import apply_overrides
from ldwseg.datasets import build_dataset
from ldwseg.engine.build import get_loaders
from ldwseg.engine.distributed import DistInfo
from ldwseg.errors import DataError
from ldwseg.tasks import get_task, load_config


def _scribble(image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A transform that writes into what it is given (albumentations may), then returns copies."""
    image += 1
    mask[:] = 0
    return image.copy(), mask.copy()


@pytest.fixture
def folder(tmp_path):
    return make_mixed_folder(tmp_path / "data")


def test_cached_items_equal_the_files_and_later_reads_open_no_file(folder, monkeypatch):
    plain = build_dataset("folder", folder, "train", num_classes=6)
    cached = build_dataset("folder", folder, "train", num_classes=6, cache=True)
    assert cached.cached == len(cached) == 7 and plain.cached == 0  # the check at construction filled it
    want = [plain[i] for i in range(len(plain))]

    def no_file(*args, **kwargs):
        raise AssertionError("a cached pair was read from its file again")

    monkeypatch.setattr(base, "read_image", no_file)
    monkeypatch.setattr(base, "read_mask", no_file)
    for _ in range(2):
        for i, (image, mask) in enumerate(want):
            got_image, got_mask = cached[i]
            assert got_image.dtype == np.uint8 and got_mask.dtype == np.int64
            np.testing.assert_array_equal(got_image, image)
            np.testing.assert_array_equal(got_mask, mask)
    # images as read, masks in one byte per label: an independent count of what was read
    assert cached.cache_bytes == sum(image.nbytes + mask.size for image, mask in want)


def test_a_transform_that_writes_into_the_pair_does_not_change_the_cache(folder):
    plain = build_dataset("folder", folder, "train", num_classes=6)
    cached = build_dataset("folder", folder, "train", num_classes=6, cache=True, transform=_scribble)
    for _ in range(2):
        for i in range(len(plain)):
            image, mask = plain[i]
            got_image, got_mask = cached[i]
            np.testing.assert_array_equal(got_image, image + 1)
            np.testing.assert_array_equal(got_mask, np.zeros_like(mask))
    cached.transform = None
    for i in range(len(plain)):
        np.testing.assert_array_equal(cached[i][0], plain[i][0])
        np.testing.assert_array_equal(cached[i][1], plain[i][1])


def test_dropping_a_bad_sample_keeps_every_cached_pair_with_its_files(folder):
    mask = np.asarray(Image.open(folder / "masks" / "00.png")).copy()
    mask[0, 0] = 200  # a label outside the 6 classes: the first sample is dropped, the rest renumbered
    Image.fromarray(mask).save(folder / "masks" / "00.png")
    plain = build_dataset("folder", folder, "train", num_classes=6, skip_bad=True)
    cached = build_dataset("folder", folder, "train", num_classes=6, skip_bad=True, cache=True)
    assert len(cached) == len(plain) == 6 and cached.files == plain.files
    for i in range(len(plain)):
        np.testing.assert_array_equal(cached[i][0], plain[i][0])
        np.testing.assert_array_equal(cached[i][1], plain[i][1])


def test_a_cached_run_trains_on_the_same_batches(tmp_path, caplog):
    root = make_mixed_folder(tmp_path / "data")
    cfg = load_config(
        None,
        {"data.dataset": "folder", "data.root": str(root), "data.num_classes": 6, "data.val_split": "train",
         "data.crop_size": 32, "train.batch_size": 2},
    )  # fmt: skip

    def batches(cfg):
        data = get_task("seg").data(cfg)
        loader, val_loader, sampler = get_loaders(data, cfg, DistInfo())
        sampler.set_epoch(2)
        loader.dataset.set_epoch(2)
        return data, [*loader, *val_loader]

    plain_data, plain = batches(cfg)
    with caplog.at_level(logging.INFO, logger="ldwseg"):
        cached_data, cached = batches(apply_overrides(cfg, ["data.cache=true"]))
    assert "data.cache: 7 training and 7 validation pairs kept in memory" in caplog.text
    assert cached_data.train.cached == len(cached_data.train) and plain_data.train.cached == 0
    assert len(cached) == len(plain) == 3 + 7  # 3 training batches of 2 (the last sample dropped), 7 val images
    torch.testing.assert_close(cached, plain, rtol=0, atol=0)  # every image and mask of every batch


def test_a_set_that_would_not_fit_in_memory_is_refused_before_it_is_kept(tmp_path, monkeypatch):
    folder = make_mixed_folder(tmp_path / "same", sizes=[(48, 40)] * 7)  # any pair estimates the set alike
    one_pair = 48 * 40 * 3 + 48 * 40  # an RGB uint8 image, a mask of one byte per label
    monkeypatch.setattr(cache, "available_memory", lambda: 2 * 7 * one_pair - 2)  # half of it: just under 7 pairs
    with pytest.raises(
        DataError,
        match=r"data\.cache would keep about 52 KB .*\(7 samples.* of the 105 KB available.*--set data\.cache=false",
    ):
        build_dataset("folder", folder, "train", num_classes=6, cache=True)
    monkeypatch.setattr(cache, "available_memory", lambda: 2 * 7 * one_pair + 2)
    assert build_dataset("folder", folder, "train", num_classes=6, cache=True).cached == 7


def test_the_available_memory_is_read_from_the_system():
    available = cache.available_memory()
    if available is None:
        pytest.skip("no /proc/meminfo here")
    assert 2**20 < available < 2**50


def test_the_processes_of_a_torchrun_machine_each_count(tmp_path, monkeypatch):
    folder = make_mixed_folder(tmp_path / "same", sizes=[(48, 40)] * 7)
    one_pair = 48 * 40 * 4
    monkeypatch.setattr(cache, "available_memory", lambda: 2 * 7 * one_pair + 2)  # room for one process's cache
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    with pytest.raises(DataError, match=r"about 105 KB .*\(7 samples like the first in each of 2 processes\)"):
        build_dataset("folder", folder, "train", num_classes=6, cache=True)
