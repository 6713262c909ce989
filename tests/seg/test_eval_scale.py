"""Evaluation at the training scale (data.eval_scale) and scores that do not depend on the batch size."""

import json

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.testing import assert_close
from torch.utils.data import DataLoader
from trees import MIXED_SIZES as SIZES
from trees import make_mixed_folder
from typer.testing import CliRunner

from ldwseg.cli import app
from ldwseg.config import ModelConfig
from ldwseg.datasets import build_dataset, eval_transform, pad_collate, pairs_collate, stack_by_size
from ldwseg.engine.precision import Precision
from ldwseg.inference.scale import scaled_logits, scaled_size
from ldwseg.models.build import build_network
from ldwseg.seg.evaluate import evaluate
from ldwseg.seg.metrics import SegmentationMetrics


def test_scaled_size_rounds_and_keeps_one_pixel():
    assert scaled_size((360, 480), 0.5) == (180, 240)
    assert scaled_size((3, 3), 0.1) == (1, 1)


def test_half_scale_runs_the_network_on_the_opencv_linear_resize():
    """At 1/2 the image the network sees is OpenCV's INTER_LINEAR resize (the training augmentation's)."""
    image = torch.rand(1, 3, 36, 50, dtype=torch.float64)
    seen = []

    def net(x):
        seen.append(x)
        return x

    scaled_logits(net, image, scale=0.5)
    reference = cv2.resize(image[0].permute(1, 2, 0).numpy(), (25, 18), interpolation=cv2.INTER_LINEAR)
    assert_close(seen[0][0].permute(1, 2, 0), torch.from_numpy(reference))


def test_logits_come_back_at_the_label_size_bilinearly():
    image = torch.rand(2, 3, 30, 40)
    logits = scaled_logits(nn.Identity(), image, scale=0.5, size=(60, 80))
    half = F.interpolate(image, size=(15, 20), mode="bilinear", align_corners=False)
    assert_close(logits, F.interpolate(half, size=(60, 80), mode="bilinear", align_corners=False))
    assert scaled_logits(nn.Identity(), image) is image  # scale 1 at the input's size: nothing resized


def test_stack_by_size_batches_equal_sizes_only():
    pairs = [(torch.full((3, h, w), float(i)), torch.full((h, w), i)) for i, (h, w) in enumerate(SIZES)]
    batches = stack_by_size(pairs)
    assert [tuple(images.shape) for images, _ in batches] == [(3, 3, 40, 56), (2, 3, 48, 48), (1, 3, 36, 60),
                                                              (1, 3, 52, 44)]  # fmt: skip
    assert batches[0][0][:, 0, 0, 0].tolist() == [0.0, 2.0, 6.0] and batches[0][1][:, 0, 0].tolist() == [0, 2, 6]


def _confusion(model, data, batch_size: int, collate, scale: float = 1.0) -> torch.Tensor:
    metrics = SegmentationMetrics(6)
    loader = DataLoader(data, batch_size=batch_size, collate_fn=collate)
    evaluate(model, loader, metrics, precision=Precision(torch.device("cpu")), eval_scale=scale)
    return metrics.confusion_matrix()


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_scores_do_not_depend_on_the_batch_size(tmp_path, scale):
    """A random default LDW UNet: evaluation in batches of 1 and of 4 counts the same pixels the same way."""
    data = build_dataset("folder", make_mixed_folder(tmp_path / "d"), "val", transform=eval_transform(),
                         num_classes=6)  # fmt: skip
    torch.manual_seed(0)
    model = build_network(ModelConfig(base_width=8, depth=3), 3, 6).eval()
    one = _confusion(model, data, 1, pairs_collate, scale)
    assert torch.equal(_confusion(model, data, 4, pairs_collate, scale), one)
    assert torch.equal(_confusion(model, data, 7, pairs_collate, scale), one)
    assert one.sum() == sum(int((np.asarray(Image.open(m)) != 255).sum()) for _, m in data.files)


def test_padding_images_of_other_sizes_would_change_the_scores(tmp_path):
    """The control: the padded batches of the earlier evaluation change what the LDW pools compute."""
    data = build_dataset("folder", make_mixed_folder(tmp_path / "d"), "val", transform=eval_transform(),
                         num_classes=6)  # fmt: skip
    torch.manual_seed(0)
    model = build_network(ModelConfig(base_width=8, depth=3), 3, 6).eval()
    with torch.no_grad():
        images, _ = pad_collate([data[0], data[1]])  # 40x56 padded to 48x56 beside the 48x48 one
        alone = model(data[0][0][None])
        padded = model(images)[:1, :, :40, :56]
    assert not torch.allclose(alone, padded, atol=1e-4)


@pytest.mark.slow
def test_evaluate_reproduces_the_logged_val_score_at_the_training_scale(tmp_path, private_data):
    root = make_mixed_folder(tmp_path / "d")
    out = tmp_path / "run"
    runner = CliRunner()
    result = runner.invoke(app, [
        "train", "--dataset", "folder", "--data-root", str(root), "--out", str(out), "--epochs", "2",
        "--device", "cpu", "--set", "data.num_classes=6", "--set", "model.base_width=4", "--set", "model.depth=2",
        "--set", "data.crop_size=32", "--set", "train.batch_size=4", "--set", "data.scale_min=0.4",
        "--set", "data.scale_max=0.6", "--set", "data.eval_scale=0.5", "--set", "train.val_batch_size=3",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = (out / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    logged = max(float(r.split(",")[header.index("val_miou")]) for r in rows[1:])
    scores = {}
    for batch in ("1", "3", "7", None):
        size = [] if batch is None else ["--batch-size", batch]
        report = runner.invoke(app, ["evaluate", str(out / "best.safetensors"), "--json", *size])
        assert report.exit_code == 0, report.output
        scores[batch] = json.loads(report.output.strip().splitlines()[-1])
    assert {r["eval_scale"] for r in scores.values()} == {0.5}
    assert [scores[b]["batch_size"] for b in ("1", "7", None)] == [1, 7, 3]  # by default, as validation batched
    assert scores[None]["miou"] == pytest.approx(logged, abs=1e-12)
    assert scores["1"]["miou"] == scores["3"]["miou"] == scores["7"]["miou"] == pytest.approx(logged, abs=1e-12)
    full = runner.invoke(app, ["evaluate", str(out / "best.safetensors"), "--json", "--eval-scale", "1"])
    assert full.exit_code == 0 and json.loads(full.output.strip().splitlines()[-1])["eval_scale"] == 1.0
