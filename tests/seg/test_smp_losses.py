"""smp's focal, Lovász-softmax and Jaccard losses as ``train.loss``: checked against naive computations over the
labelled pixels, against smp called directly, and on batches whose pixels are all ignored."""

import inspect

import pytest
import torch
from segmentation_models_pytorch.losses import FocalLoss, JaccardLoss, LovaszLoss

from ldwseg.config import Config, apply_overrides
from ldwseg.errors import ConfigError
from ldwseg.seg.loss import SEGMENTATION_LOSSES, segmentation_criterion

CLASSES = 5


def batch(dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and labels of 3 images, some pixels ignored (255), class 4 absent from the labels."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, CLASSES, 6, 7, generator=g, dtype=dtype)
    target = torch.randint(0, CLASSES - 1, (3, 6, 7), generator=g)
    target[0, :3] = 255
    target[2, :, 5:] = 255
    return logits, target


def labelled(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(P, C)`` logits and ``(P,)`` labels of the labelled pixels."""
    keep = target != 255
    return logits.permute(0, 2, 3, 1)[keep], target[keep]


def naive_focal(logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    """Per class, the binary focal loss of its logit (sigmoid, one class against the rest), averaged over the
    labelled pixels, then over the classes."""
    scores, labels = labelled(logits, target)
    losses = []
    for c in range(scores.shape[1]):
        p = scores[:, c].sigmoid()
        pt = torch.where(labels == c, p, 1 - p)
        losses.append((-((1 - pt) ** gamma) * pt.log()).mean())
    return torch.stack(losses).mean()


def naive_jaccard(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per class ``1 - sum(p t) / (sum p + sum t - sum(p t))`` over the labelled pixels (0 for a class absent
    from the labels), averaged over all classes."""
    scores, labels = labelled(logits, target)
    probs = scores.softmax(1)
    losses = []
    for c in range(probs.shape[1]):
        t = (labels == c).double()
        inter = (probs[:, c] * t).sum()
        union = probs[:, c].sum() + t.sum() - inter
        losses.append(1 - inter / union if t.sum() > 0 else torch.zeros((), dtype=probs.dtype))
    return torch.stack(losses).mean()


def naive_lovasz(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Berman et al.'s Lovász-softmax, one pixel at a time: per class present in the labels, the errors
    ``|t - p|`` sorted down, each weighted by the step of the Jaccard loss of the first k pixels."""
    scores, labels = labelled(logits, target)
    probs = scores.softmax(1)
    losses = []
    for c in labels.unique().tolist():
        fg = (labels == c).double()
        errors = (fg - probs[:, c]).abs()
        order = sorted(range(len(errors)), key=lambda i: -float(errors[i]))
        total, previous, loss = fg.sum(), 0.0, 0.0
        inside, outside = 0.0, 0.0
        for i in order:
            inside, outside = inside + float(fg[i]), outside + 1 - float(fg[i])
            jaccard = 1 - (total - inside) / (total + outside)
            loss = loss + errors[i] * (jaccard - previous)
            previous = jaccard
        losses.append(loss)
    return torch.stack(losses).mean()


@pytest.mark.parametrize("name, naive", [("focal", naive_focal), ("jaccard", naive_jaccard)])
def test_each_loss_is_the_naive_one_over_the_labelled_pixels(name, naive):
    logits, target = batch()
    torch.testing.assert_close(segmentation_criterion(name)(logits, target), naive(logits, target))


def test_lovasz_is_the_naive_one_over_the_labelled_pixels():
    """smp computes the Lovász weights in float32: the loss is float32, the naive one float64."""
    logits, target = batch(torch.float32)
    got = segmentation_criterion("lovasz")(logits, target)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got.double(), naive_lovasz(logits.double(), target), rtol=1e-5, atol=1e-6)


def test_smp_called_directly_agrees():
    """smp's own ignore_index: focal and Lovász take it; Jaccard takes it from smp 0.5 on (ldwseg masks itself)."""
    logits, target = batch(torch.float32)
    direct = {
        "focal": FocalLoss(mode="multiclass", ignore_index=255),
        "lovasz": LovaszLoss(mode="multiclass", ignore_index=255),
    }
    if "ignore_index" in inspect.signature(JaccardLoss).parameters:
        direct["jaccard"] = JaccardLoss(mode="multiclass", ignore_index=255)
    for name, loss in direct.items():
        torch.testing.assert_close(segmentation_criterion(name)(logits, target), loss(logits, target), msg=name)


def test_lovasz_of_hard_predictions_is_one_minus_the_iou():
    """The Lovász extension is exact at the vertices: for one-hot predictions it is the mean over the classes
    present of 1 - IoU."""
    _, target = batch()
    predicted = torch.randint(0, CLASSES, target.shape, generator=torch.Generator().manual_seed(1))
    logits = 60.0 * torch.nn.functional.one_hot(predicted, CLASSES).permute(0, 3, 1, 2).float()
    keep = target != 255
    ious = []
    for c in target[keep].unique().tolist():
        a, b = predicted[keep] == c, target[keep] == c
        ious.append((a & b).sum() / (a | b).sum())
    expected = 1 - torch.stack(ious).float().mean()
    torch.testing.assert_close(segmentation_criterion("lovasz")(logits, target), expected)


@pytest.mark.parametrize("name", ["focal", "lovasz", "jaccard"])
def test_all_ignored_batch_is_zero_with_zero_gradient(name):
    logits, target = batch()
    logits.requires_grad_(True)
    loss = segmentation_criterion(name)(logits, torch.full_like(target, 255))
    assert loss.shape == () and float(loss.detach()) == 0.0
    loss.backward()
    assert torch.count_nonzero(logits.grad) == 0


@pytest.mark.parametrize("name", ["focal", "lovasz", "jaccard"])
def test_ignored_pixels_do_not_matter(name):
    logits, target = batch()
    changed = logits.clone()
    changed.permute(0, 2, 3, 1)[target == 255] = 100.0
    criterion = segmentation_criterion(name)
    torch.testing.assert_close(criterion(changed, target), criterion(logits, target))


def test_the_config_takes_every_segmentation_loss_and_only_for_seg():
    for name in SEGMENTATION_LOSSES:
        assert apply_overrides(Config(), [f"train.loss={name}"]).train.loss == name
    with pytest.raises(ConfigError, match="train.loss='focal' does not fit train.task='recon'; choose one of l1, mse"):
        apply_overrides(Config(), ["train.task=recon", "train.loss=focal"])
    with pytest.raises(ValueError, match="choose one of ce, ce\\+dice, focal, lovasz, jaccard"):
        segmentation_criterion("dice")
