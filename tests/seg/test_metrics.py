import json
import math

import numpy as np
import pytest
import torch

from ldwseg.errors import DataError
from ldwseg.seg.metrics import SegmentationMetrics, format_iou_table


def bincount_confusion(pred: np.ndarray, target: np.ndarray, k: int) -> np.ndarray:
    """Independent reference: ``C[t, p]`` over pixels whose target is not 255."""
    keep = target != 255
    return np.bincount(k * target[keep].astype(np.int64) + pred[keep], minlength=k * k).reshape(k, k)


def reference_scores(confusion: np.ndarray) -> dict:
    tp = np.diag(confusion).astype(np.float64)
    union = confusion.sum(0) + confusion.sum(1) - tp
    iou = [tp[k] / union[k] if union[k] else None for k in range(len(tp))]
    defined = [v for v in iou if v is not None]
    rows = confusion.sum(1)
    return {
        "miou": sum(defined) / len(defined),
        "per_class_iou": iou,
        "pixel_acc": tp.sum() / confusion.sum(),
        "mean_acc": float(np.mean(tp[rows > 0] / rows[rows > 0])),
    }


def random_batch(n: int = 3, k: int = 5, size: tuple[int, int] = (17, 23)) -> tuple[torch.Tensor, torch.Tensor]:
    logits = torch.randn(n, k, *size)
    target = torch.randint(0, k, (n, *size))
    target[torch.rand(n, *size) < 0.2] = 255
    return logits, target


def test_shapes_of_the_scores():
    metrics = SegmentationMetrics(4)
    metrics.update(*random_batch(k=4))
    scores = metrics.compute()
    assert len(scores["per_class_iou"]) == 4
    assert np.array(scores["confusion"]).shape == (4, 4)
    json.dumps(scores, allow_nan=False)  # JSON-safe: plain floats, ints and None


def test_matches_bincount_reference_on_random_data():
    k = 5
    logits, target = random_batch(k=k)
    metrics = SegmentationMetrics(k)
    metrics.update(logits, target)
    scores = metrics.compute()

    confusion = bincount_confusion(logits.argmax(1).numpy(), target.numpy(), k)
    np.testing.assert_array_equal(np.array(scores["confusion"]), confusion)
    assert np.array(scores["confusion"]).sum() == int((target != 255).sum())
    expected = reference_scores(confusion)
    torch.testing.assert_close(scores["miou"], expected["miou"])
    torch.testing.assert_close(scores["per_class_iou"], expected["per_class_iou"])
    torch.testing.assert_close(scores["pixel_acc"], expected["pixel_acc"])
    torch.testing.assert_close(scores["mean_acc"], expected["mean_acc"])


def test_hand_made_example():
    # targets 0 0 1 1 | 2 255, predictions 0 1 1 1 | 0 2 (the 255 pixel does not count)
    target = torch.tensor([[[0, 0, 1], [1, 2, 255]]])
    preds = torch.tensor([[[0, 1, 1], [1, 0, 2]]])
    metrics = SegmentationMetrics(3)
    metrics.update(preds, target)
    scores = metrics.compute()
    assert scores["confusion"] == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    # class 0: tp 1, fp 1, fn 1 -> 1/3; class 1: tp 2, fp 1 -> 2/3; class 2: tp 0, fn 1 -> 0
    torch.testing.assert_close(scores["per_class_iou"], [1 / 3, 2 / 3, 0.0])
    torch.testing.assert_close(scores["miou"], 1 / 3)
    torch.testing.assert_close(scores["pixel_acc"], 3 / 5)
    torch.testing.assert_close(scores["mean_acc"], (1 / 2 + 1 + 0) / 3)


def test_logits_and_predictions_agree():
    logits, target = random_batch()
    from_logits, from_preds = SegmentationMetrics(5), SegmentationMetrics(5)
    from_logits.update(logits, target)
    from_preds.update(logits.argmax(1), target)
    assert from_logits.compute() == from_preds.compute()


def test_absent_class_is_none_and_left_out_of_the_mean():
    target = torch.tensor([[[0, 0], [1, 255]]])
    preds = torch.tensor([[[0, 1], [1, 3]]])  # class 2: nowhere; class 3: only on an ignored pixel
    metrics = SegmentationMetrics(4)
    metrics.update(preds, target)
    scores = metrics.compute()
    assert scores["per_class_iou"][2] is None and scores["per_class_iou"][3] is None
    torch.testing.assert_close(scores["per_class_iou"][:2], [1 / 2, 1 / 2])
    torch.testing.assert_close(scores["miou"], 1 / 2)  # the mean over the two defined classes, not over 4


def test_class_only_predicted_counts_as_zero():
    target = torch.tensor([[[0, 0]]])
    preds = torch.tensor([[[0, 1]]])
    metrics = SegmentationMetrics(2)
    metrics.update(preds, target)
    scores = metrics.compute()
    assert scores["per_class_iou"] == [0.5, 0.0]
    assert scores["miou"] == 0.25
    assert scores["mean_acc"] == 0.5  # class 1 has no target pixel: left out of the mean accuracy


def test_accumulating_updates_equals_one_update():
    batches = [random_batch(n=2) for _ in range(3)]
    accumulated, single = SegmentationMetrics(5), SegmentationMetrics(5)
    for logits, target in batches:
        accumulated.update(logits, target)
    single.update(torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches]))
    assert accumulated.compute() == single.compute()


def test_reset_forgets_and_to_moves():
    metrics = SegmentationMetrics(5).to("cpu")
    logits, target = random_batch()
    metrics.update(logits, target)
    metrics.reset()
    metrics.update(logits[:1], target[:1])
    reference = bincount_confusion(logits[:1].argmax(1).numpy(), target[:1].numpy(), 5)
    np.testing.assert_array_equal(np.array(metrics.compute()["confusion"]), reference)


def test_uint8_targets_do_not_overflow():
    k = 21
    target = torch.randint(0, k, (2, 9, 9))
    preds = torch.randint(0, k, (2, 9, 9))
    wide, narrow = SegmentationMetrics(k), SegmentationMetrics(k)
    wide.update(preds, target)
    narrow.update(preds.to(torch.uint8), target.to(torch.uint8))
    assert wide.compute() == narrow.compute()


def test_one_class_confusion_is_one_by_one():
    metrics = SegmentationMetrics(1)
    metrics.update(torch.zeros(1, 2, 3, dtype=torch.long), torch.tensor([[[0, 0, 255], [0, 0, 0]]]))
    scores = metrics.compute()
    assert scores["confusion"] == [[5]]
    assert (scores["miou"], scores["pixel_acc"], scores["mean_acc"]) == (1.0, 1.0, 1.0)


def test_label_out_of_range_message():
    metrics = SegmentationMetrics(3)
    with pytest.raises(DataError, match=r"labels must be 0 \.\. 2 or the ignore index 255, found \[7\]"):
        metrics.update(torch.zeros(1, 2, 2, dtype=torch.long), torch.tensor([[[0, 7], [1, 255]]]))


def test_bad_shape_message():
    metrics = SegmentationMetrics(3)
    with pytest.raises(ValueError, match=r"expected logits of shape \(1, 3, 2, 2\)"):
        metrics.update(torch.randn(1, 4, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="must be integer class indices"):
        metrics.update(torch.randn(1, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="target must hold integer class labels"):
        metrics.update(torch.randn(1, 3, 2, 2), torch.zeros(1, 2, 2))


def test_nothing_to_score_message():
    metrics = SegmentationMetrics(3)
    metrics.update(torch.zeros(1, 2, 2, dtype=torch.long), torch.full((1, 2, 2), 255))
    with pytest.raises(DataError, match="no labelled pixel was seen"):
        metrics.compute()


def test_ignore_index_must_not_be_a_class():
    with pytest.raises(ValueError, match="ignore_index=2 is a valid class"):
        SegmentationMetrics(3, ignore_index=2)


def test_format_iou_table():
    table = format_iou_table([0.5, None, 0.25], ["road", "sky", "car"])
    lines = table.splitlines()
    assert lines[0].split() == ["class", "IoU", "%"]
    assert lines[2].split() == ["road", "50.00"]
    assert lines[3].split() == ["sky", "-"]
    assert lines[-1].split() == ["mean", "37.50"]
    assert "class 1" in format_iou_table([0.5, float("nan")])
    assert math.isclose(float(format_iou_table([0.5, float("nan")]).splitlines()[-1].split()[-1]), 50.0)
    with pytest.raises(ValueError, match="got 2 IoU values but 1 class names"):
        format_iou_table([0.1, 0.2], ["a"])


def _ddp_worker(rank: int, world: int, init_file: str, batches: list, out_file: str) -> None:
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        metrics = SegmentationMetrics(5)
        metrics.update(*batches[rank])
        scores = metrics.compute()
        if rank == 0:
            with open(out_file, "w") as f:
                json.dump(scores, f)
    finally:
        torch.distributed.destroy_process_group()


def test_compute_sums_over_ddp_ranks(tmp_path):
    batches = [random_batch(n=1), random_batch(n=2)]
    out_file = tmp_path / "scores.json"
    torch.multiprocessing.spawn(
        _ddp_worker, args=(2, str(tmp_path / "init"), batches, str(out_file)), nprocs=2, join=True
    )
    single = SegmentationMetrics(5)
    single.update(torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches]))
    assert json.loads(out_file.read_text()) == json.loads(json.dumps(single.compute()))
