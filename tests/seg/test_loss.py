"""The segmentation cross-entropy: the mean over the labelled pixels, in one process or over 2 gloo ranks."""

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from run_checks import free_port

from ldwseg.seg.loss import segmentation_criterion

WORLD = 2


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and labels of 4 images; rank 0 would hold images 0-1, rank 1 images 2-3, with unequal ignored pixels."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 5, 6, 7, generator=g, dtype=torch.float64)
    target = torch.randint(0, 5, (4, 6, 7), generator=g)
    target[0, :4] = 255  # 56 labelled pixels on rank 0, 79 on rank 1
    target[3, 0, :5] = 255
    return logits, target


def rank_worker(rank: int, port: int, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        criterion = segmentation_criterion("ce")
        logits, target = batch()
        results = {}
        for name, mask in {"mixed": target, "rank 1 all ignored": target.where(torch.arange(4).view(4, 1, 1) < 2,
                                                                                  255)}.items():  # fmt: skip
            mine = logits[2 * rank : 2 * rank + 2].clone().requires_grad_(True)
            loss = criterion(mine, mask[2 * rank : 2 * rank + 2])
            loss.backward()
            results[name] = {"loss": loss.detach(), "grad": mine.grad}
        torch.save(results, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_one_process_is_the_mean_over_labelled_pixels_as_before():
    logits, target = batch()
    expected = F.cross_entropy(logits, target, ignore_index=255, reduction="sum") / (target != 255).sum()
    torch.testing.assert_close(segmentation_criterion("ce")(logits, target), expected, rtol=0, atol=0)
    torch.testing.assert_close(expected, F.cross_entropy(logits, target, ignore_index=255))


def test_two_ranks_average_to_the_one_process_loss_and_gradient(tmp_path):
    """DDP averages the ranks' gradients: that average must be the gradient of the mean over all labelled pixels."""
    mp.spawn(rank_worker, args=(free_port(), str(tmp_path)), nprocs=WORLD)
    ranks = [torch.load(tmp_path / f"rank{rank}.pt", weights_only=True) for rank in range(WORLD)]
    logits, target = batch()
    for name, mask in {"mixed": target, "rank 1 all ignored": target.where(torch.arange(4).view(4, 1, 1) < 2,
                                                                              255)}.items():  # fmt: skip
        whole = logits.clone().requires_grad_(True)
        loss = F.cross_entropy(whole, mask, ignore_index=255)
        loss.backward()
        torch.testing.assert_close(sum(r[name]["loss"] for r in ranks) / WORLD, loss.detach(), msg=name)
        averaged = torch.cat([r[name]["grad"] for r in ranks]) / WORLD
        torch.testing.assert_close(averaged, whole.grad, msg=name)


@pytest.mark.parametrize("name", ["ce", "ce+dice"])
def test_all_ignored_batch_is_finite(name):
    logits, target = batch()
    assert torch.isfinite(segmentation_criterion(name)(logits, torch.full_like(target, 255)))
