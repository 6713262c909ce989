"""Foreground IoU and Dice of 2-class segmentation, and the JSON of ``ldwseg evaluate``."""

import csv
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torch.testing import assert_close
from torch.utils.data import DataLoader
from torchmetrics.functional.classification import binary_f1_score, binary_jaccard_index
from typer.testing import CliRunner

from ldwseg.engine.precision import Precision
from ldwseg.engine.task import TaskData
from ldwseg.seg.evaluate import json_report
from ldwseg.seg.metrics import SegmentationMetrics, foreground_scores
from ldwseg.seg.task import SegmentationTask


def binary_batch(n: int = 3, size: tuple[int, int] = (19, 22)) -> tuple[torch.Tensor, torch.Tensor]:
    logits = torch.randn(n, 2, *size)
    target = (torch.rand(n, *size) < 0.3).long()  # a thin foreground, as vessels or membranes
    target[torch.rand(n, *size) < 0.15] = 255
    return logits, target


def torchmetrics_scores(preds: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """Independent reference: torchmetrics' binary Jaccard index and F1 of the foreground."""
    args = (preds.flatten(), target.flatten())
    return {
        "fg_iou": binary_jaccard_index(*args, ignore_index=255).double(),
        "dice": binary_f1_score(*args, ignore_index=255).double(),
    }


def scores(preds: torch.Tensor, target: torch.Tensor, k: int = 2) -> dict:
    metrics = SegmentationMetrics(k)
    metrics.update(preds, target)
    return metrics.compute()


# --- the scores ------------------------------------------------------------------------


def test_two_classes_add_fg_iou_and_dice_as_floats():
    result = scores(*binary_batch())
    assert isinstance(result["fg_iou"], float) and isinstance(result["dice"], float)
    assert 0.0 <= result["fg_iou"] <= result["dice"] <= 1.0  # Dice = 2 IoU / (1 + IoU) >= IoU
    assert result["fg_iou"] == result["per_class_iou"][1]
    json.dumps(result, allow_nan=False)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_no_foreground_keys_for_other_class_counts(k):
    target = torch.randint(0, k, (2, 8, 9))
    result = scores(torch.randint(0, k, (2, 8, 9)), target, k)
    assert "fg_iou" not in result and "dice" not in result


def test_matches_torchmetrics_on_random_data():
    logits, target = binary_batch()
    result = scores(logits, target)
    expected = torchmetrics_scores(logits.argmax(1), target)
    assert_close(torch.tensor(result["fg_iou"], dtype=torch.float64), expected["fg_iou"])
    assert_close(torch.tensor(result["dice"], dtype=torch.float64), expected["dice"])


def test_hand_made_example():
    # labelled pixels (target, pred): TP 2, FP 1, FN 3, TN 1; the 255 pixel predicted 1 is not counted
    target = torch.tensor([[[1, 1, 0, 1, 1, 1, 0, 255]]])
    preds = torch.tensor([[[1, 1, 1, 0, 0, 0, 0, 1]]])
    result = scores(preds, target)
    assert result["confusion"] == [[1, 1], [3, 2]]
    assert result["fg_iou"] == pytest.approx(2 / (2 + 1 + 3))
    assert result["dice"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 3))


def test_ignored_pixels_do_not_count():
    logits, target = binary_batch()
    preds = logits.argmax(1)
    labelled = target != 255
    # whatever is predicted on an ignored pixel, the scores are those of the labelled pixels alone
    flipped = torch.where(labelled, preds, 1 - preds)
    assert scores(preds, target) == scores(flipped, target)
    alone = scores(preds[labelled].view(1, 1, -1), target[labelled].view(1, 1, -1))
    assert scores(preds, target)["dice"] == alone["dice"]
    assert scores(preds, target)["fg_iou"] == alone["fg_iou"]


def test_accumulating_batches_equals_scoring_them_together():
    batches = [binary_batch(n=n, size=(11, 13)) for n in (1, 2, 3)]
    metrics = SegmentationMetrics(2)
    for logits, target in batches:
        metrics.update(logits, target)
    result = metrics.compute()
    preds = torch.cat([b[0].argmax(1) for b in batches])
    target = torch.cat([b[1] for b in batches])
    expected = torchmetrics_scores(preds, target)
    assert_close(torch.tensor(result["fg_iou"], dtype=torch.float64), expected["fg_iou"])
    assert_close(torch.tensor(result["dice"], dtype=torch.float64), expected["dice"])
    # the mean of per-batch Dice is not the Dice of all pixels: the confusion matrix is summed
    per_batch = [scores(b[0], b[1])["dice"] for b in batches]
    assert not math.isclose(sum(per_batch) / len(per_batch), result["dice"], rel_tol=1e-9)


def test_absent_foreground_scores_one():
    target = torch.tensor([[[0, 0, 255], [0, 0, 0]]])
    preds = torch.tensor([[[0, 0, 1], [0, 0, 0]]])  # the one foreground prediction is on an ignored pixel
    result = scores(preds, target)
    assert result["fg_iou"] == 1.0 and result["dice"] == 1.0
    assert result["per_class_iou"][1] is None  # the per-class IoU stays undefined, left out of the mIoU
    assert result["miou"] == 1.0
    json.dumps(result, allow_nan=False)


def test_foreground_only_predicted_scores_zero():
    result = scores(torch.tensor([[[0, 1, 1]]]), torch.tensor([[[0, 0, 0]]]))
    assert result["fg_iou"] == 0.0 and result["dice"] == 0.0


def test_foreground_scores_function():
    confusion = torch.tensor([[50, 4], [6, 10]])  # TP 10, FP 4, FN 6
    assert foreground_scores(confusion) == pytest.approx({"fg_iou": 10 / 20, "dice": 20 / 30})
    assert foreground_scores(torch.tensor([[7, 0], [0, 0]])) == {"fg_iou": 1.0, "dice": 1.0}
    with pytest.raises(ValueError, match=r"2 x 2 confusion matrix, got shape \(3, 3\)"):
        foreground_scores(torch.zeros(3, 3, dtype=torch.long))


# --- the training loop's validation result --------------------------------------------


class FixedLogits(nn.Module):
    """A stand-in model: returns the logits stored for each batch, in order."""

    def __init__(self, logits: list[torch.Tensor]) -> None:
        super().__init__()
        self.logits = logits
        self.calls = 0

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.logits[self.calls - 1]


@pytest.mark.parametrize("k", [2, 3])
def test_task_evaluate_reports_dice_for_two_classes(k):
    batches = [(torch.randn(2, k, 6, 7), torch.randint(0, k, (2, 6, 7))) for _ in range(2)]
    loader = DataLoader([(torch.zeros(3, 6, 7), t) for _, t in batches], batch_size=None)
    model = FixedLogits([logits for logits, _ in batches])
    data = TaskData(train=[], val=[], out_channels=k, record={})
    result = SegmentationTask().evaluate(model, loader, precision=Precision(torch.device("cpu")), data=data)
    if k == 2:
        preds = torch.cat([logits.argmax(1) for logits, _ in batches])
        expected = torchmetrics_scores(preds, torch.cat([t for _, t in batches]))
        assert isinstance(result["dice"], float) and isinstance(result["fg_iou"], float)
        assert_close(torch.tensor(result["dice"], dtype=torch.float64), expected["dice"])
        assert_close(torch.tensor(result["fg_iou"], dtype=torch.float64), expected["fg_iou"])
    else:
        assert "dice" not in result and "fg_iou" not in result
    per_class = {f"iou_class{c}" for c in range(k)}
    assert set(result) - {"dice", "fg_iou"} == {"miou", "pixel_acc", "mean_acc", "per_class_iou", *per_class}
    iou = [result[f"iou_class{c}"] for c in range(k)]
    expected_iou = [math.nan if v is None else v for v in result["per_class_iou"]]
    assert_close(
        torch.tensor(iou, dtype=torch.float64), torch.tensor(expected_iou, dtype=torch.float64), equal_nan=True
    )


# --- the JSON of ldwseg evaluate -------------------------------------------------------


def evaluation(**scores) -> dict:
    base = {
        "checkpoint": "c.safetensors", "dataset": "folder", "split": "val", "eval_scale": 1.0, "images": 2,
        "skipped": 0,
        "miou": 0.5, "per_class_iou": [0.5, None], "pixel_acc": 0.75, "class_names": ["background", "vessel"],
    }  # fmt: skip
    return {**base, **scores}


def test_json_report_keys_per_class_iou_by_class_name():
    report = json_report(evaluation(fg_iou=1.0, dice=1.0))
    assert report["per_class_iou"] == {"background": 0.5, "vessel": None}
    assert list(report["per_class_iou"]) == report["class_names"] == ["background", "vessel"]
    assert (report["fg_iou"], report["dice"]) == (1.0, 1.0)
    assert json.loads(json.dumps(report, allow_nan=False)) == report
    assert "fg_iou" not in json_report(evaluation())


def test_json_report_writes_non_finite_scores_as_null():
    report = json_report(evaluation(per_class_iou=[float("nan"), 0.25], miou=float("inf"), dice=float("nan")))
    assert report["per_class_iou"] == {"background": None, "vessel": 0.25}
    assert report["miou"] is None and report["dice"] is None
    assert "NaN" not in json.dumps(report, allow_nan=False)


@pytest.mark.parametrize(
    ("stored", "names"),
    [
        (["background", "vessel"], ["background", "vessel"]),
        (None, ["class0", "class1"]),  # not stored: the evaluated data set's names
        (["vessel", "vessel"], ["class0", "class1"]),  # not one distinct name per class
        (["background", 3], ["class0", "class1"]),
    ],
    ids=["stored", "absent", "duplicate", "not strings"],
)
def test_evaluate_checkpoint_names_classes_as_the_checkpoint_does(tmp_path, stored, names):
    from ldwseg.config import Config
    from ldwseg.engine.checkpoints import save_run_checkpoint
    from ldwseg.models import build_unet
    from ldwseg.seg.evaluate import evaluate_checkpoint

    root = binary_folder(tmp_path / "vessels", n=2, size=24)
    data = {"dataset": "folder", "root": str(root), "num_classes": 2}
    cfg = Config.from_dict({"model": {"base_width": 4, "depth": 2}, "data": data})
    record = {"name": "folder", "num_classes": 2, "out_channels": 2}
    if stored is not None:
        record["class_names"] = stored
    path = tmp_path / "best.safetensors"
    save_run_checkpoint(path, build_unet(cfg.model, 3, 2), cfg, record, epoch=0, metrics={})
    result = evaluate_checkpoint(path, device="cpu")
    assert result["class_names"] == names
    report = json_report(result)
    assert list(report["per_class_iou"]) == names
    assert set(report) >= {"fg_iou", "dice"}
    json.dumps(report, allow_nan=False)


# --- end to end: train on a 2-class folder, evaluate --json ------------------------------


def binary_folder(root, n: int = 4, size: int = 40):
    """``images/*.png`` of bright lines on noise and ``masks/*.png`` labelling them 1, a few pixels 255."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        mask = np.zeros((size, size), np.uint8)
        mask[rng.integers(0, size, 3), :] = 1  # horizontal "vessels"
        mask[:, rng.integers(0, size, 2)] = 1
        mask[:2, :2] = 255
        image = rng.integers(0, 90, (size, size, 3)).astype(np.uint8)
        image[mask == 1] += 150
        Image.fromarray(image).save(root / "images" / f"img{i}.png")
        Image.fromarray(mask, mode="L").save(root / "masks" / f"img{i}.png")
    return root


@pytest.mark.slow
@pytest.mark.usefixtures("private_data")
def test_evaluate_json_of_a_two_class_checkpoint(tmp_path):
    from ldwseg.cli import app
    from ldwseg.datasets import build_dataset, eval_transform
    from ldwseg.engine.checkpoints import load_run_model

    runner = CliRunner()
    data, out = binary_folder(tmp_path / "vessels"), tmp_path / "run"
    tiny = ["--set", "model.base_width=4", "--set", "model.depth=2", "--set", "data.crop_size=32"]
    result = runner.invoke(app, [
        "train", "--dataset", "folder", "--data-root", str(data), "--set", "data.num_classes=2", *tiny,
        "--epochs", "1", "--device", "cpu", "--out", str(out),
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    with (out / "metrics.csv").open() as f:
        (row,) = list(csv.DictReader(f))
    assert {"val_miou", "val_fg_iou", "val_dice"} <= set(row)

    ckpt = out / "best.safetensors"
    result = runner.invoke(app, ["evaluate", str(ckpt), "--json", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert list(report["per_class_iou"]) == report["class_names"] == ["class0", "class1"]
    assert report["images"] == 4
    assert report["dice"] == pytest.approx(float(row["val_dice"]), abs=1e-6)
    assert report["fg_iou"] == pytest.approx(float(row["val_fg_iou"]), abs=1e-6)
    assert report["fg_iou"] == report["per_class_iou"]["class1"]

    # the reference: the model's own predictions scored by torchmetrics
    model, _, _ = load_run_model(ckpt)
    preds, targets = [], []
    with torch.no_grad():
        for image, mask in build_dataset("folder", data, "val", transform=eval_transform(), num_classes=2):
            preds.append(model(image[None]).argmax(1).flatten())
            targets.append(mask.flatten())
    expected = torchmetrics_scores(torch.cat(preds), torch.cat(targets))
    assert_close(torch.tensor(report["dice"], dtype=torch.float64), expected["dice"], atol=1e-6, rtol=0)
    assert_close(torch.tensor(report["fg_iou"], dtype=torch.float64), expected["fg_iou"], atol=1e-6, rtol=0)

    table = runner.invoke(app, ["evaluate", str(ckpt), "--device", "cpu"])
    assert table.exit_code == 0 and "Dice" in table.stdout and "class1" in table.stdout
