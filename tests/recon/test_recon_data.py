"""The autoencoder's crops: decoded images are cached within a byte budget, and the crops do not depend on it."""

import numpy as np
import pytest
import torch
from PIL import Image

from ldwseg.recon import data as recon_data
from ldwseg.recon.data import ImageCrops


@pytest.fixture
def photos(tmp_path):
    rng = np.random.default_rng(0)
    files = []
    for i, (h, w) in enumerate([(40, 50), (30, 20), (64, 64)]):
        path = tmp_path / f"{i}.png"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
        files.append(path)
    return files


def _counting_reads(monkeypatch) -> list:
    reads = []
    real = recon_data.read_image

    def read(path, **kwargs):
        reads.append(path)
        return real(path, **kwargs)

    monkeypatch.setattr(recon_data, "read_image", read)
    return reads


def _crops(dataset: ImageCrops, seed: int) -> torch.Tensor:
    np.random.seed(seed)
    return torch.stack([dataset[i][0] for i in range(len(dataset))])


def test_each_image_is_decoded_once_and_the_crops_match_uncached_reads(photos, monkeypatch):
    cached = ImageCrops(photos, crop_size=32, train=True, crops_per_image=4)
    uncached = ImageCrops(photos, crop_size=32, train=True, crops_per_image=4, cache_bytes=0)
    reads = _counting_reads(monkeypatch)
    first = _crops(cached, seed=1)
    assert sorted(reads) == sorted(photos)  # 12 crops, 3 decodes
    torch.testing.assert_close(_crops(cached, seed=1), first)
    assert len(reads) == 3
    torch.testing.assert_close(_crops(uncached, seed=1), first)
    assert len(reads) == 3 + 12


def test_the_cache_stops_at_its_budget(photos, monkeypatch):
    budget = 40 * 50 * 3 + 30 * 20 * 3  # the first two images, not the third
    dataset = ImageCrops(photos, crop_size=16, train=False, cache_bytes=budget)
    reads = _counting_reads(monkeypatch)
    for _ in range(2):
        for i in range(len(dataset)):
            dataset[i]
    assert reads.count(photos[0]) == 1 and reads.count(photos[1]) == 1 and reads.count(photos[2]) == 2


@pytest.mark.parametrize("train", [True, False])
def test_iterating_a_data_set_ends_after_its_length(photos, train):
    dataset = ImageCrops(photos, crop_size=16, train=train, crops_per_image=2)
    crops = [x for x, _ in dataset]
    expected = [(3, 16, 16)] * 6 if train else [(3, 40, 50), (3, 30, 20), (3, 64, 64)]
    assert [tuple(x.shape) for x in crops] == expected
    with pytest.raises(IndexError):
        dataset[len(dataset)]
