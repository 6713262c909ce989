"""Per-class accuracy and precision, and the files of ``evaluate --report``."""

import csv

import numpy as np
import pytest
import torch
from PIL import Image

from ldwseg.seg.metrics import SegmentationMetrics
from ldwseg.seg.report import REPORT_FILES, row_normalised, write_report


def naive_scores(preds: np.ndarray, target: np.ndarray, k: int) -> dict:
    """Per-class recall and precision by counting pixels one class at a time."""
    labelled = target != 255
    acc, precision = [], []
    for c in range(k):
        true_c = labelled & (target == c)
        pred_c = labelled & (preds == c)
        hit = int((true_c & pred_c).sum())
        acc.append(hit / true_c.sum() if true_c.any() else None)
        precision.append(hit / pred_c.sum() if pred_c.any() else None)
    return {"acc": acc, "precision": precision}


def test_per_class_accuracy_and_precision_count_pixels():
    rng = np.random.default_rng(0)
    target = rng.integers(0, 3, (2, 9, 11))
    target[0, :2] = 255
    preds = rng.integers(0, 3, (2, 9, 11))
    preds[preds == 2] = 0  # class 2 is never predicted: its precision is undefined
    metrics = SegmentationMetrics(4)  # class 3 appears nowhere: both undefined
    metrics.update(torch.from_numpy(preds), torch.from_numpy(target))
    scores = metrics.compute()
    expected = naive_scores(preds, target, 4)
    assert scores["per_class_acc"] == pytest.approx(expected["acc"])
    assert scores["per_class_precision"] == pytest.approx(expected["precision"])
    assert scores["per_class_acc"][3] is None and scores["per_class_precision"][2] is None
    assert scores["mean_acc"] == pytest.approx(np.mean([a for a in expected["acc"] if a is not None]))


def test_the_report_files_hold_the_scores(tmp_path):
    confusion = [[50, 5, 0], [10, 30, 0], [0, 0, 0]]
    result = {
        "class_names": ["sky", "road", "pole"], "confusion": confusion, "per_class_iou": [50 / 65, 30 / 45, None],
        "per_class_acc": [50 / 55, 30 / 40, None], "per_class_precision": [50 / 60, 30 / 35, None],
    }  # fmt: skip
    written = write_report(result, tmp_path / "report")
    assert [p.name for p in written] == list(REPORT_FILES)
    with written[0].open() as f:
        rows = list(csv.DictReader(f))
    assert [r["class"] for r in rows] == ["sky", "road", "pole"]
    assert float(rows[1]["precision"]) == pytest.approx(30 / 35) and rows[2]["iou"] == "" and rows[0]["pixels"] == "55"
    with written[1].open() as f:
        matrix = list(csv.reader(f))
    assert matrix[0] == ["true \\ predicted", "sky", "road", "pole"] and matrix[2] == ["road", "10", "30", "0"]
    assert Image.open(written[2]).size[0] > 100
    np.testing.assert_allclose(row_normalised(np.array(confusion)), [[50 / 55, 5 / 55, 0], [0.25, 0.75, 0], [0, 0, 0]])
