"""Class-weighted cross-entropy: the weights (ENet, median frequency), their counts, the loss, the config."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch.testing import assert_close
from trees import make_mixed_folder
from typer.testing import CliRunner

from ldwseg.cli import app
from ldwseg.datasets import build_dataset
from ldwseg.errors import ConfigError
from ldwseg.io.weights import read_metadata
from ldwseg.seg.class_weights import class_pixel_counts, class_weights, resolve_class_weights
from ldwseg.seg.loss import segmentation_criterion
from ldwseg.tasks import load_config


def test_enet_weights_follow_their_formula():
    pixels = np.array([700, 200, 100, 0])
    weights = class_weights(pixels, np.zeros(4), "enet")
    expected = [1 / math.log(1.02 + p / 1000) for p in (0.7e3, 0.2e3, 0.1e3)] + [0.0]
    assert weights == pytest.approx(expected)
    assert max(weights) <= 1 / math.log(1.02)


def test_median_frequency_weights_follow_eigen_and_fergus():
    """freq_k = pixels of k / pixels of the images holding k; w_k = median(freq) / freq_k."""
    pixels = np.array([600, 300, 50, 0])
    image_pixels = np.array([1000, 800, 200, 0])
    freq = [0.6, 0.375, 0.25]
    assert class_weights(pixels, image_pixels, "median") == pytest.approx([0.375 / f for f in freq] + [0.0])


def test_pixel_counts_are_those_of_the_mask_files(tmp_path):
    root = make_mixed_folder(tmp_path / "d")
    data = build_dataset("folder", root, "train", num_classes=6)
    pixels, image_pixels = class_pixel_counts(data)
    masks = [np.asarray(Image.open(m)).astype(np.int64) for _, m in data.files]
    for k in range(6):
        assert pixels[k] == sum(int((m == k).sum()) for m in masks)
        assert image_pixels[k] == sum(int((m != 255).sum()) for m in masks if (m == k).any())


def test_weighted_cross_entropy_is_torchs_weighted_mean():
    logits = torch.randn(2, 4, 5, 6, dtype=torch.float64)
    target = torch.randint(0, 4, (2, 5, 6))
    target[0, :2] = 255
    weights = [0.5, 2.0, 1.0, 3.0]
    loss = segmentation_criterion("ce", class_weights=weights)(logits, target)
    expected = F.cross_entropy(logits, target, weight=torch.tensor(weights, dtype=torch.float64), ignore_index=255)
    assert_close(loss, expected)
    ignored = torch.full_like(target, 255)
    assert segmentation_criterion("ce", class_weights=weights)(logits, ignored).item() == 0.0


def test_class_weights_fit_only_the_cross_entropy_and_the_classes():
    with pytest.raises(ConfigError, match="train.class_weights weights the cross-entropy"):
        load_config(None, {"train.class_weights": "enet", "train.loss": "focal"})
    with pytest.raises(ConfigError, match="median, enet"):
        load_config(None, {"train.class_weights": "inverse"})
    with pytest.raises(ConfigError, match="lists 2 weights but the data set has 3 classes"):
        resolve_class_weights([1.0, 2.0], None, ["a", "b", "c"])
    with pytest.raises(ValueError, match="ce and ce\\+dice"):
        segmentation_criterion("lovasz", class_weights=[1.0, 1.0])
    assert load_config(None, {"train.class_weights": [1, 2]}).train.class_weights == [1.0, 2.0]


@pytest.mark.slow
def test_a_run_trains_with_computed_weights_and_stores_them(tmp_path, private_data):
    root = make_mixed_folder(tmp_path / "d")
    out = tmp_path / "run"
    result = CliRunner().invoke(app, [
        "train", "--dataset", "folder", "--data-root", str(root), "--out", str(out), "--epochs", "1",
        "--device", "cpu", "--set", "data.num_classes=6", "--set", "model.base_width=4", "--set", "model.depth=2",
        "--set", "data.crop_size=32", "--set", "train.batch_size=4", "--set", "train.class_weights=median",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    stored = read_metadata(out / "best.safetensors")["dataset"]["class_weights"]
    data = build_dataset("folder", root, "train", num_classes=6)
    assert stored == pytest.approx(class_weights(*class_pixel_counts(data), "median"))
    assert "class weights (median" in result.output
