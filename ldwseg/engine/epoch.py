"""One training epoch of any task: forward, task loss + constraint loss, backward, step.

The epoch's loss sums stay on the training device, so a step never waits for the GPU:
:class:`LossTotals` adds each step's losses there and keeps the first step whose loss was
NaN or infinite; the host reads them (one synchronisation) when it needs them: at a
checkpoint (:attr:`EpochProgress.sums`), every ``read_every`` steps and at the epoch's end.
A read that finds a non-finite loss raises :class:`NonFiniteLossError` naming that step.
Until then no non-finite gradient reaches the weights: a step whose loss is not finite
updates nothing, decided on the device (:func:`_optimizer_step`). On the CPU a read costs
nothing, so it happens at every step, before the optimizer step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ..errors import LDWSegError
from ..pooling import wavelet_loss
from .precision import Precision

__all__ = ["DEVICE_READ_EVERY", "LOSS_NAMES", "EpochProgress", "LossTotals", "NonFiniteLossError", "train_one_epoch"]

LOSS_NAMES = ("train_loss", "task_loss", "wavelet_loss")
"""The losses an epoch sums, in the order of :meth:`EpochProgress.device_sums`."""

DEVICE_READ_EVERY = 100
"""Steps between two reads of the loss sums off the CPU (besides checkpoints and the epoch's end):
the most steps a NaN loss goes unreported, at one host synchronisation per that many steps."""


class NonFiniteLossError(LDWSegError):
    """The loss became NaN or infinite at ``epoch`` (0-based), ``step`` (0-based, in the epoch)."""

    def __init__(self, message: str, *, epoch: int = 0, step: int = 0) -> None:
        super().__init__(message)
        self.epoch, self.step = epoch, step


class LossTotals:
    """An epoch's running sums of ``train_loss``, ``task_loss`` and ``wavelet_loss``, on the training device.

    :meth:`add` queues a few device operations and returns new totals (these stay as they
    were, so a progress point keeps the sums of its step); :meth:`read` copies them to the
    host once and raises :class:`NonFiniteLossError` if a step's loss was NaN or infinite.
    The sums are float64, added in step order, as Python floats would be.
    """

    def __init__(self, sums: Tensor, first_bad: Tensor, epoch: int) -> None:
        self._sums = sums  # (3,) float64
        self._first_bad = first_bad  # (4,) float64: step, loss, task loss, wavelet loss; step -1: none yet
        self._epoch = epoch
        self._read: dict[str, float] | None = None

    @classmethod
    def start(cls, sums: dict[str, float] | None, *, epoch: int, device: torch.device) -> LossTotals:
        """The totals of ``epoch`` after the steps whose sums are ``sums`` (``None``: no step yet)."""
        values = [0.0] * len(LOSS_NAMES) if sums is None else [sums[k] for k in LOSS_NAMES]
        first_bad = torch.full((4,), -1.0, dtype=torch.float64, device=device)
        return cls(torch.tensor(values, dtype=torch.float64, device=device), first_bad, epoch)

    def add(self, step: int, losses: Tensor) -> tuple[LossTotals, Tensor]:
        """These totals plus ``losses`` (``loss, task, wavelet`` of ``step``, 0-based in the epoch), and
        whether its loss is finite (a boolean on the device)."""
        values = losses.detach().to(torch.float64)
        finite = torch.isfinite(values[0])
        first = ~finite & (self._first_bad[0] < 0)
        record = torch.cat([values.new_full((1,), step), values])
        totals = LossTotals(self._sums + values, torch.where(first, record, self._first_bad), self._epoch)
        return totals, finite

    def on_device(self) -> Tensor:
        """The sums as they are, a float64 tensor in :data:`LOSS_NAMES` order on the device, not read."""
        return self._sums

    def read(self) -> dict[str, float]:
        """The sums on the host (one synchronisation, then kept).

        Raises:
            NonFiniteLossError: a step's loss was NaN or infinite (the first such step is named).
        """
        if self._read is None:
            step, loss, task, reg, *sums = torch.cat([self._first_bad, self._sums]).tolist()
            if step >= 0:
                raise NonFiniteLossError(
                    f"the loss became {loss} at epoch {self._epoch + 1}, step {int(step) + 1} (task loss {task}, "
                    f"wavelet loss {reg})",
                    epoch=self._epoch,
                    step=int(step),
                )
            self._read = dict(zip(LOSS_NAMES, sums))
        return dict(self._read)


@dataclass(frozen=True)
class EpochProgress:
    """How far an epoch has got: ``epoch`` (0-based) after ``step`` optimizer steps.

    ``totals`` are the running sums of ``train_loss``, ``task_loss`` and ``wavelet_loss`` over
    those steps (``None`` before the first): a dict, or the :class:`LossTotals` of a running
    epoch, which :attr:`sums` reads off the device when asked.
    """

    epoch: int = 0
    step: int = 0
    totals: dict[str, float] | LossTotals | None = None

    @property
    def sums(self) -> dict[str, float] | None:
        """The loss sums on the host.

        Raises:
            NonFiniteLossError: a step up to this one had a NaN or infinite loss.
        """
        return self.totals.read() if isinstance(self.totals, LossTotals) else self.totals

    def device_sums(self, device: torch.device) -> Tensor:
        """The loss sums as a float64 tensor in :data:`LOSS_NAMES` order on ``device``, without a read
        (a running epoch's own tensor; zeros before the first step)."""
        if isinstance(self.totals, LossTotals):
            return self.totals.on_device()
        sums = self.totals or {}
        return torch.tensor([sums.get(k, 0.0) for k in LOSS_NAMES], dtype=torch.float64, device=device)


def _mean_across_ranks(values: dict[str, float], count: int, device: torch.device) -> dict[str, float]:
    """Step-weighted means of ``values`` (sums over ``count`` steps) over all ranks."""
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys] + [float(count)], dtype=torch.float64, device=device)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(t)
    total = max(t[-1].item(), 1.0)
    return {k: t[i].item() / total for i, k in enumerate(keys)}


def _optimizer_step(
    optimizer: torch.optim.Optimizer, loss: Tensor, scaler: torch.amp.GradScaler | None, finite: Tensor | None
) -> None:
    """Backward and step; ``finite`` (a device boolean; ``None``: known finite) skips the update when false.

    Decided on the device, without a synchronisation: with a ``scaler`` one gradient becomes
    infinite, so the scaler skips the step as it does after an overflow; otherwise every
    gradient becomes 0, so no NaN reaches the parameters (Adam's moments and weight decay still
    move them a little; the run stops at the next read, which comes before any checkpoint).
    """
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        if finite is not None:
            grads = _grads(optimizer)
            if grads:
                grads[0].add_(torch.where(finite, 0.0, float("inf")).to(grads[0].dtype))
        scaler.step(optimizer)
        scaler.update()
        return
    loss.backward()
    if finite is not None:
        bad = ~finite
        for grad in _grads(optimizer):
            grad.masked_fill_(bad, 0.0)
    optimizer.step()


def _grads(optimizer: torch.optim.Optimizer) -> list[Tensor]:
    return [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]


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
    read_every: int | None = None,
) -> dict[str, float]:
    """Train for one pass over ``loader``; loss = task + ``wavelet_weight`` * constraint loss.

    Returns the step-averaged ``train_loss``, ``task_loss`` and ``wavelet_loss``.

    To finish an epoch that stopped after ``start.step`` batches, pass a ``loader`` that
    yields the remaining batches and the loss sums of the first ones in ``start.totals``.
    ``after_step`` is called after every optimizer step with the epoch's progress so far;
    it may save a checkpoint (reading :attr:`EpochProgress.sums`), or raise to stop.
    ``scaler`` (fp16 only) scales the loss against float16 gradient underflow.
    ``read_every``: steps between reads of the loss sums (see the module docstring; default
    1 on the CPU, :data:`DEVICE_READ_EVERY` elsewhere); 1 checks every loss before its step.

    Raises:
        NonFiniteLossError: at the first read after a step whose loss was NaN or infinite.
    """
    model.train()
    device = precision.device
    every = read_every or (1 if device.type == "cpu" else DEVICE_READ_EVERY)
    totals = LossTotals.start(start.sums, epoch=start.epoch, device=device)
    steps = start.step
    batches = progress(loader) if progress is not None else loader
    for step, (images, masks) in enumerate(batches, start=start.step):
        if max_steps is not None and step >= max_steps:
            break
        images = precision.inputs(images)
        masks = masks.to(device, non_blocking=True)
        with precision.autocast():
            logits = model(images)
        task = criterion(logits.float(), masks)
        reg = wavelet_loss(model)
        loss = task + wavelet_weight * reg
        totals, finite = totals.add(step, torch.stack([loss, task, reg]))
        if every == 1:
            totals.read()  # raises before a non-finite loss takes its step
        _optimizer_step(optimizer, loss, scaler, None if every == 1 else finite)
        steps += 1
        if after_step is not None:
            after_step(EpochProgress(start.epoch, steps, totals))
        if steps % every == 0:
            totals.read()
    return _mean_across_ranks(totals.read(), steps, device)
