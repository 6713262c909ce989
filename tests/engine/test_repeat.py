"""data.repeat: several passes over a small training set per epoch, each with its own augmentation."""

import numpy as np
import pytest
import torch

from ldwseg.config import ConfigError
from ldwseg.datasets import train_transform
from ldwseg.engine.build import get_loaders
from ldwseg.engine.distributed import DistInfo
from ldwseg.engine.sampling import SeededSamples
from ldwseg.engine.task import TaskData
from ldwseg.tasks import load_config


class Pairs(torch.utils.data.Dataset):
    """Three 24x24 images whose pixels hold their index, augmented by a real train transform."""

    def __init__(self):
        self.transform = train_transform(16, scale=(0.8, 1.2))

    def __len__(self):
        return 3

    def __getitem__(self, index):
        image = np.full((24, 24, 3), 50 * index, np.uint8)
        image[:, :12] += 20  # a left half, so crops and flips show in the pixels
        return self.transform(image, np.full((24, 24), index, np.int64))


def test_repeat_passes_over_the_data_with_fresh_augmentation():
    samples = SeededSamples(Pairs(), seed=0, repeat=4)
    assert len(samples) == 12
    items = [samples[i] for i in range(12)]
    assert [int(mask[0, 0]) for _, mask in items] == [i % 3 for i in range(12)]
    assert not all(torch.equal(items[i][0], items[i + 3][0]) for i in range(9))  # other crops/flips per pass
    assert torch.equal(samples[7][0], items[7][0])  # sample i of an epoch is always augmented alike


def test_the_loader_of_a_repeated_set_has_repeat_times_the_batches():
    cfg = load_config(None, {"data.repeat": 4, "train.batch_size": 2})
    data = TaskData(Pairs(), Pairs(), 3, {})
    train_loader, _, sampler = get_loaders(data, cfg, DistInfo())
    assert len(sampler) == 12 and len(train_loader) == 6
    with pytest.raises(ConfigError, match="data.repeat must be >= 1"):
        load_config(None, {"data.repeat": 0})


def test_iterating_repeated_samples_ends_after_every_pass():
    samples = SeededSamples(Pairs(), seed=0, repeat=2)
    assert [int(y.flatten()[0]) for _, y in samples] == [0, 1, 2, 0, 1, 2]
    with pytest.raises(IndexError):
        samples[6]
