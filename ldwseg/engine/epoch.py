"""One training epoch of any task: forward, task loss + constraint loss, backward, step."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ..errors import LDWSegError
from ..pooling import wavelet_loss

__all__ = ["NonFiniteLossError", "autocast", "train_one_epoch"]


class NonFiniteLossError(LDWSegError):
    """The loss became NaN or infinite at ``epoch`` (0-based), ``step`` (0-based, in the epoch)."""

    def __init__(self, message: str, *, epoch: int = 0, step: int = 0) -> None:
        super().__init__(message)
        self.epoch, self.step = epoch, step


def autocast(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for ``amp`` in ``{"off", "bf16", "fp16"}``."""
    if amp == "off":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


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
    device: torch.device,
    wavelet_weight: float = 1.0,
    amp: str = "off",
    scaler: torch.amp.GradScaler | None = None,
    channels_last: bool = False,
    max_steps: int | None = None,
    progress: Callable[[Iterable], Iterable] | None = None,
    epoch: int = 0,
    start_step: int = 0,
    sums: dict[str, float] | None = None,
    after_step: Callable[[int, dict[str, float]], None] | None = None,
) -> dict[str, float]:
    """Train for one pass over ``loader``; loss = task + ``wavelet_weight`` * constraint loss.

    Returns the step-averaged ``train_loss``, ``task_loss`` and ``wavelet_loss``.

    To finish an epoch that stopped after ``start_step`` batches, pass a ``loader`` that
    yields the remaining batches and the loss ``sums`` of the first ones. ``after_step``
    is called after every optimizer step with the steps done in this epoch so far and the
    running sums; it may save a checkpoint, or raise to stop.
    """
    model.train()
    sums = dict(sums) if sums else {"train_loss": 0.0, "task_loss": 0.0, "wavelet_loss": 0.0}
    steps = start_step
    batches = progress(loader) if progress is not None else loader
    for step, (images, masks) in enumerate(batches, start=start_step):
        if max_steps is not None and step >= max_steps:
            break
        images = images.to(device, non_blocking=True)
        masks = masks.to(device, non_blocking=True)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast(device, amp):
            logits = model(images)
        task = criterion(logits.float(), masks)
        reg = wavelet_loss(model)
        loss = task + wavelet_weight * reg
        values = torch.stack([loss, task, reg]).detach().tolist()  # one host transfer per step
        if not math.isfinite(values[0]):
            raise NonFiniteLossError(
                f"the loss became {values[0]} at epoch {epoch + 1}, step {step + 1} (task loss {values[1]}, "
                f"wavelet loss {values[2]})",
                epoch=epoch,
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
        for key, value in zip(("train_loss", "task_loss", "wavelet_loss"), values):
            sums[key] += value
        steps += 1
        if after_step is not None:
            after_step(steps, sums)
    return _mean_across_ranks(sums, steps, device)
