"""Where a run may stop, and how it goes on: the checkpoint schedule, stop requests, the errors.

:class:`RunSaver` writes ``last.state.pt`` and ``last.safetensors`` when the schedule
asks for it; :class:`StepWatch`, called after every optimizer step, remembers the last
completed step, saves on schedule and turns a SIGINT/SIGTERM into a saved checkpoint
plus :class:`~ldwseg.errors.Interrupted`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..config import Config
from ..errors import Interrupted
from .checkpoints import ResumePoint, save_resume_state, save_run_checkpoint
from .distributed import DistInfo
from .epoch import EpochProgress, NonFiniteLossError
from .interrupt import SIGNAL_EXIT_CODES, StopRequests

__all__ = ["RunSaver", "StepWatch", "agreed_signal", "interrupted", "non_finite_loss"]


def agreed_signal(stop: StopRequests, dist_info: DistInfo, device: torch.device) -> str | None:
    """The signal that asked to stop, agreed on by all ranks (any rank's request stops all)."""
    if not dist_info.enabled:
        return stop.signal
    flag = torch.tensor([SIGNAL_EXIT_CODES.get(stop.signal or "", 0)], device=device)
    torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
    return {code: name for name, code in SIGNAL_EXIT_CODES.items()}.get(int(flag.item()))


def interrupted(out: Path, signal_name: str, where: str) -> Interrupted:
    """The error of a run stopped by ``signal_name`` after saving its checkpoint in ``out``."""
    return Interrupted(
        f"stopped by {signal_name} {where}; saved {out / 'last.safetensors'}; "
        f"go on with the same command plus --resume (--out {out})",
        exit_code=SIGNAL_EXIT_CODES[signal_name],
    )


def non_finite_loss(err: NonFiniteLossError, out: Path) -> NonFiniteLossError:
    """``err`` with what was kept in ``out`` and what to change before going on."""
    kept = out / "last.safetensors"
    return NonFiniteLossError(
        f"{err}; training stopped and nothing was saved after the last good checkpoint "
        f"({kept if kept.exists() else 'none yet'}); lower the learning rate (--lr or --set optim.lr=...), "
        "switch off mixed precision (--amp off) or lower --wavelet-weight, then "
        + ("--resume" if kept.exists() else "start again"),
        epoch=err.epoch,
        step=err.step,
    )


class RunSaver:
    """Writes ``last.state.pt`` + ``last.safetensors`` (rank 0 only) every ``train.checkpoint_every``
    steps, every ``train.checkpoint_minutes`` and whenever :meth:`save` is called."""

    def __init__(
        self, out: Path, model: nn.Module, optimizer, scheduler, cfg: Config, record: dict, *, is_main: bool
    ) -> None:
        self.out, self.model, self.optimizer, self.scheduler = out, model, optimizer, scheduler
        self.cfg, self.record, self.is_main = cfg, record, is_main
        self.every = cfg.train.checkpoint_every
        self.seconds = cfg.train.checkpoint_minutes * 60.0
        self.last_time = time.monotonic()

    def due(self, step: int) -> bool:
        by_steps = self.every > 0 and step % self.every == 0
        return by_steps or (self.seconds > 0 and time.monotonic() - self.last_time >= self.seconds)

    def save(self, point: ResumePoint, metrics: dict[str, Any]) -> None:
        """Save at ``point``; the weights' metadata names the epoch they are in (or just finished)."""
        self.last_time = time.monotonic()
        if not self.is_main:
            return
        state = self.out / "last.state.pt"  # first: resuming reads only this file
        save_resume_state(state, self.model, self.optimizer, self.scheduler, point, task=self.cfg.train.task)
        epoch = point.epoch if point.step else point.epoch - 1
        weights = self.out / "last.safetensors"
        save_run_checkpoint(weights, self.model, self.cfg, self.record, epoch=epoch, metrics=metrics)


class StepWatch:
    """The ``after_step`` of one epoch: keeps its last completed step, saves on schedule, stops on request.

    ``best`` (the best validation score so far) goes into every checkpoint it saves; it
    cannot change inside an epoch.
    """

    def __init__(
        self, saver: RunSaver, stop: StopRequests, dist_info: DistInfo, device: torch.device, *,
        start: EpochProgress, best: dict[str, Any],
    ) -> None:  # fmt: skip
        self.saver, self.stop, self.dist_info, self.device = saver, stop, dist_info, device
        self.last, self.best = start, best

    def __call__(self, progress: EpochProgress) -> None:
        self.last = progress
        signal_name = agreed_signal(self.stop, self.dist_info, self.device)
        if signal_name is not None:
            raise self.save_and_stop(signal_name)
        if self.saver.due(progress.step):
            self._save()

    def save_and_stop(self, signal_name: str) -> Interrupted:
        """Save the last completed step; the error to raise for ``signal_name``."""
        self._save()
        return interrupted(self.saver.out, signal_name, f"at epoch {self.last.epoch + 1}, step {self.last.step}")

    def _save(self) -> None:
        point = ResumePoint(self.last.epoch, self.last.step, self.last.sums, self.best)
        self.saver.save(point, {"step_in_epoch": self.last.step})
