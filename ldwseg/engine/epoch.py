"""One training epoch of any task: forward, task loss + constraint loss, backward, step."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ..errors import LDWSegError
from ..pooling import wavelet_loss
from .precision import Precision

__all__ = ["EpochProgress", "NonFiniteLossError", "train_one_epoch"]

_LOSSES = ("train_loss", "task_loss", "wavelet_loss")


class NonFiniteLossError(LDWSegError):
    """The loss became NaN or infinite at ``epoch`` (0-based), ``step`` (0-based, in the epoch)."""

    def __init__(self, message: str, *, epoch: int = 0, step: int = 0) -> None:
        super().__init__(message)
        self.epoch, self.step = epoch, step


@dataclass(frozen=True)
class EpochProgress:
    """How far an epoch has got: ``epoch`` (0-based) after ``step`` optimizer steps.

    ``sums`` are the running sums of ``train_loss``, ``task_loss`` and ``wavelet_loss``
    over those steps (``None`` before the first).
    """

    epoch: int = 0
    step: int = 0
    sums: dict[str, float] | None = None


def _mean_across_ranks(values: dict[str, float], count: int, device: torch.device) -> dict[str, float]:
    """Step-weighted means of ``values`` (sums over ``count`` steps) over all ranks."""
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys] + [float(count)], dtype=torch.float64, device=device)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(t)
    total = max(t[-1].item(), 1.0)
    return {k: t[i].item() / total for i, k in enumerate(keys)}


def train_one_epoch(
    model: nn.Module,
    loader: Iterable[tuple[Tensor, Tensor]],
    optimizer: torch.optim.Optimizer,
    criterion: Callable[[Tensor, Tensor], Tensor],
    *,
    precision: Precision,
    wavelet_weight: float = 1.0,
    scaler: torch.amp.GradScaler | None = None,
    max_steps: int | None = None,
    progress: Callable[[Iterable], Iterable] | None = None,
    start: EpochProgress = EpochProgress(),
    after_step: Callable[[EpochProgress], None] | None = None,
) -> dict[str, float]:
    """Train for one pass over ``loader``; loss = task + ``wavelet_weight`` * constraint loss.

    Returns the step-averaged ``train_loss``, ``task_loss`` and ``wavelet_loss``.

    To finish an epoch that stopped after ``start.step`` batches, pass a ``loader`` that
    yields the remaining batches and the loss sums of the first ones in ``start.sums``.
    ``after_step`` is called after every optimizer step with the epoch's progress so far;
    it may save a checkpoint, or raise to stop. ``scaler`` (fp16 only) scales the loss
    against float16 gradient underflow.
    """
    model.train()
    sums = dict(start.sums) if start.sums else dict.fromkeys(_LOSSES, 0.0)
    steps = start.step
    batches = progress(loader) if progress is not None else loader
    for step, (images, masks) in enumerate(batches, start=start.step):
        if max_steps is not None and step >= max_steps:
            break
        images = precision.inputs(images)
        masks = masks.to(precision.device, non_blocking=True)
        with precision.autocast():
            logits = model(images)
        task = criterion(logits.float(), masks)
        reg = wavelet_loss(model)
        loss = task + wavelet_weight * reg
        values = torch.stack([loss, task, reg]).detach().tolist()  # one host transfer per step
        if not math.isfinite(values[0]):
            raise NonFiniteLossError(
                f"the loss became {values[0]} at epoch {start.epoch + 1}, step {step + 1} (task loss {values[1]}, "
                f"wavelet loss {values[2]})",
                epoch=start.epoch,
                step=step,
            )
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        for key, value in zip(_LOSSES, values):
            sums[key] += value
        steps += 1
        if after_step is not None:
            after_step(EpochProgress(start.epoch, steps, dict(sums)))
    return _mean_across_ranks(sums, steps, precision.device)
