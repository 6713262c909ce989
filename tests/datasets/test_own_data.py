"""Your own data: class names and colours, gray and 16-bit images read exactly, any channel count."""

import numpy as np
import pytest
import torch
from PIL import Image

from ldwseg.datasets import build_dataset, dataset_info, eval_transform, normalization, read_channels
from ldwseg.errors import ConfigError, DataError
from ldwseg.tasks import load_config


def folder(root, images: dict[str, np.ndarray], masks: dict[str, np.ndarray]):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for stem, array in images.items():
        if array.ndim == 3 and array.shape[-1] not in (3, 4):
            np.save(root / "images" / f"{stem}.npy", array)
        elif array.dtype == np.uint16:
            Image.fromarray(array).save(root / "images" / f"{stem}.png")  # uint16 gives mode I;16
        else:
            Image.fromarray(array).save(root / "images" / f"{stem}.png")
    for stem, mask in masks.items():
        Image.fromarray(mask.astype(np.uint8)).save(root / "masks" / f"{stem}.png")
    return root


def test_sixteen_bit_gray_images_are_read_exactly(tmp_path):
    stored = np.arange(0, 65536, 257 * 3, dtype=np.uint16)[:80].reshape(8, 10)
    stored[0, 0], stored[0, 1] = 1, 65534  # values that 8 bits would merge with their neighbours
    root = folder(tmp_path / "d", {"a": stored}, {"a": np.zeros((8, 10))})
    image = read_channels(root / "images" / "a.png", 1)
    assert image.dtype == np.float32 and image.shape == (8, 10, 1)
    np.testing.assert_array_equal(np.round(image[..., 0].astype(np.float64) * 65535).astype(np.uint16), stored)
    data = build_dataset("folder", root, "train", num_classes=2, channels=1)
    mean, std, top = normalization(1)
    x, _ = eval_transform(mean=mean, std=std, max_value=top)(*data.load(0))
    torch.testing.assert_close(x[0], torch.from_numpy((stored / 65535 - 0.5) / 0.25).float())


def test_multispectral_arrays_keep_every_channel(tmp_path):
    bands = np.random.default_rng(0).integers(0, 4096, (9, 12, 6)).astype(np.uint16)
    root = folder(tmp_path / "d", {"a": bands}, {"a": np.ones((9, 12))})
    data = build_dataset("folder", root, "train", num_classes=2, channels=6)
    image, mask = data.load(0)
    np.testing.assert_allclose(image, bands / 65535, rtol=1e-6)
    assert mask.shape == (9, 12)
    with pytest.raises(DataError, match="has 6 channel\\(s\\).*expected 3.*model.in_channels=6"):
        read_channels(root / "images" / "a.npy", 3)


def test_an_rgb_file_for_a_gray_model_is_refused_with_the_fix(tmp_path):
    root = folder(tmp_path / "d", {"a": np.zeros((8, 8, 3), np.uint8)}, {"a": np.zeros((8, 8))})
    with pytest.raises(DataError, match="model.in_channels=3"):
        build_dataset("folder", root, "train", num_classes=2, channels=1)


def test_class_names_and_colours_come_from_classes_txt(tmp_path):
    root = folder(tmp_path / "d", {"a": np.zeros((8, 8), np.uint8)}, {"a": np.zeros((8, 8))})
    (root / "classes.txt").write_text("# label 0 first\nbackground 0 0 0\nmembrane 255 255 255  # the walls\n")
    info = dataset_info("folder", root=root)
    assert info.num_classes == 2 and info.class_names == ["background", "membrane"]
    assert info.palette.tolist() == [[0, 0, 0], [255, 255, 255]]
    given = dataset_info("folder", root=root, class_names=["bg", "cell"], palette=[[1, 2, 3], [4, 5, 6]])
    assert given.class_names == ["bg", "cell"] and given.palette.tolist() == [[1, 2, 3], [4, 5, 6]]
    (root / "classes.txt").write_text("background 0 0\n")
    with pytest.raises(DataError, match="line 1: expected 'name' or 'name R G B'"):
        dataset_info("folder", root=root)
    with pytest.raises(DataError, match="3 class names \\(a, b, c\\) for data.num_classes=2"):
        dataset_info("folder", 2, class_names=["a", "b", "c"])
    with pytest.raises(DataError, match="name the classes of a folder data set; camvid has its own"):
        dataset_info("camvid", class_names=["a"])


def test_the_config_checks_channels_and_statistics():
    cfg = load_config(None, {"model.in_channels": 1, "data.mean": [0.4], "data.std": [0.2]})
    assert cfg.data.mean == [0.4] and cfg.model.in_channels == 1
    with pytest.raises(ConfigError, match="give 1 channel\\(s\\) but model.in_channels is 3"):
        load_config(None, {"data.mean": [0.4], "data.std": [0.2]})
    with pytest.raises(ConfigError, match="both or neither"):
        load_config(None, {"data.mean": [0.4, 0.4, 0.4]})
    palette = load_config(None, {"data.palette": [[0, 0, 0], [255, 0, 0]], "data.class_names": ["a", "b"]})
    assert palette.data.palette == [[0, 0, 0], [255, 0, 0]] and palette.data.class_names == ["a", "b"]
