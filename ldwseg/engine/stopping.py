"""Where a run may stop, and how it goes on: the checkpoint schedule, stop requests, the errors.

:class:`RunSaver` writes ``last.state.pt`` and ``last.safetensors`` when the schedule
asks for it; :class:`StepWatch`, called after every optimizer step, remembers the last
completed step, saves on schedule and turns a SIGINT/SIGTERM into a saved checkpoint
plus :class:`~ldwseg.errors.Interrupted`. Under ``torchrun`` the ranks agree after every
step, on the host, on whether to stop or save, and rank 0 saves the loss sums of every
rank, so a resumed run reports the same epoch losses as an uninterrupted one.

A checkpoint the disk refuses (full, read-only, failing) stops the run with
:class:`~ldwseg.errors.WriteFailed` naming the checkpoint that survived, from which
``--resume`` goes on (:meth:`RunSaver.write_failed`).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from ..config import Config
from ..errors import CheckpointError, Interrupted, WriteFailed
from ..io.atomic import remedy
from ..io.training_state import load_training_state
from .checkpoints import ResumePoint, save_resume_state, save_run_checkpoint
from .distributed import DistInfo, control_group
from .epoch import LOSS_NAMES, EpochProgress, NonFiniteLossError
from .interrupt import SIGNAL_EXIT_CODES, StopRequests
from .run_folder import RunFolder
from .state import TrainingState

__all__ = [
    "RunSaver", "StepWatch", "agreed_signal", "interrupted", "non_finite_loss", "rerun_goes_on", "rerun_resumes",
]  # fmt: skip


_RERUN = "run the same command again: it keeps the finished runs and resumes this one"
"""How a command that resumes its runs by itself (``compare``, ``sweep``, ``ablate``) goes on."""


def _point_words(point: ResumePoint) -> str:
    """Where a checkpoint stands, as the resume line words it: ``"epoch 2, step 3"`` or ``"the end of epoch 1"``."""
    return f"epoch {point.epoch + 1}, step {point.step}" if point.step else f"the end of epoch {point.epoch}"


def _signal_code(signal_name: str | None) -> int:
    """A stop request as a number ranks can reduce: its exit status (:data:`SIGNAL_EXIT_CODES`), 0 for none."""
    return SIGNAL_EXIT_CODES.get(signal_name or "", 0)


def _signal_name(code: int) -> str | None:
    """The signal of an exit status from :func:`_signal_code`; ``None`` for 0."""
    return {c: name for name, c in SIGNAL_EXIT_CODES.items()}.get(code)


def agreed_signal(stop: StopRequests, dist_info: DistInfo) -> str | None:
    """The signal that asked to stop, agreed on by all ranks on the host (any rank's request stops all)."""
    if not dist_info.enabled:
        return stop.signal
    flag = torch.tensor([_signal_code(stop.signal)])
    dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=control_group())
    return _signal_name(int(flag))


def interrupted(out: Path, signal_name: str, where: str) -> Interrupted:
    """The error of a run stopped by ``signal_name`` after saving its checkpoint in ``out``."""
    return Interrupted(
        f"stopped by {signal_name} {where}; saved {out / 'last.safetensors'}",
        exit_code=SIGNAL_EXIT_CODES[signal_name],
        advice=f"go on with the same command plus --resume (--out {out})",
    )


def rerun_resumes(err: Interrupted) -> Interrupted:
    """``err`` of a run stopped inside a command that resumes its runs by itself (``compare``,
    ``sweep``, ``ablate``): the same command again goes on, where ``train`` needs ``--resume``."""
    return err.instead(advice=_RERUN)


def non_finite_loss(err: NonFiniteLossError, out: Path) -> NonFiniteLossError:
    """``err`` with what was kept in ``out`` and what to change before going on."""
    kept = RunFolder(out).last
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
    steps, every ``train.checkpoint_minutes`` and whenever :meth:`save` is called.

    With a weight average (``ema``), ``last.safetensors`` holds the averaged weights, the ones
    the run validates; ``last.state.pt`` holds both.
    """

    def __init__(
        self, out: Path, state: TrainingState, cfg: Config, record: dict, *, is_main: bool, run_id: str | None = None
    ) -> None:
        self.out, self.state = out, state
        self.cfg, self.record, self.is_main, self.run_id = cfg, record, is_main, run_id
        self.every = cfg.train.checkpoint_every
        self.seconds = cfg.train.checkpoint_minutes * 60.0
        self.last_time = time.monotonic()
        self.saved: ResumePoint | None = None  # the last training state this saver wrote

    def due(self, step: int) -> bool:
        by_steps = self.every > 0 and step % self.every == 0
        return by_steps or (self.seconds > 0 and time.monotonic() - self.last_time >= self.seconds)

    def save(self, point: ResumePoint, metrics: dict[str, Any]) -> None:
        """Save at ``point``; the weights' metadata names the epoch they are in (or just finished).

        Raises:
            WriteFailed: the disk refused a file; the message names the checkpoint that
                ``--resume`` goes on from (:meth:`write_failed`).
        """
        self.last_time = time.monotonic()
        if not self.is_main:
            return
        state = RunFolder(self.out).state  # first: resuming reads only this file
        try:
            save_resume_state(state, self.state, point, task=self.cfg.train.task, run_id=self.run_id)
            self.saved = point
            epoch = point.epoch if point.step else point.epoch - 1
            weights = RunFolder(self.out).last
            save_run_checkpoint(weights, self.state.delivered, self.cfg, self.record, epoch=epoch, metrics=metrics)
        except WriteFailed as err:
            raise self.write_failed(err) from err

    def write_failed(self, err: WriteFailed) -> WriteFailed:
        """``err`` (a run file the disk refused) with the checkpoint the run goes on from, and how."""
        state = RunFolder(self.out).state
        point = self.saved if self.saved is not None else _stored_point(state)
        fix = remedy(err.errno)
        if point is None:
            again = " with --overwrite" if RunFolder(self.out).best.exists() else ""
            return err.instead(
                kept=f"{err.kept}; the run has saved no checkpoint to resume from yet",
                advice=f"{fix}, then start the run again (the same command{again})",
            )
        kept = f"the run's checkpoint {state} (at {_point_words(point)}) is intact"
        return err.instead(
            kept=f"{kept}, nothing half-written is left" if Path(err.path) == state else f"{err.kept}; {kept}",
            advice=f"{fix}, then go on from it with the same command plus --resume (--out {self.out})",
        )


def rerun_goes_on(err: WriteFailed) -> WriteFailed:
    """``err`` of a run trained by a command that resumes its runs by itself (``compare``, ``sweep``,
    ``ablate``): running that command again goes on, where ``train`` needs ``--resume``."""
    return err.instead(
        kept=err.kept,
        advice=f"{remedy(err.errno)}, then {_RERUN} from its checkpoint",
    )


def _stored_point(state: Path) -> ResumePoint | None:
    """Where the training state in ``state`` stands; ``None`` when there is none (or it cannot be read)."""
    if not state.is_file():
        return None
    try:
        stored = load_training_state(state)
        return ResumePoint(int(stored["epoch"]), int(stored["step"]))
    except (CheckpointError, KeyError, TypeError, ValueError):
        return None


class StepWatch:
    """The ``after_step`` of one epoch: keeps its last completed step, saves on schedule, stops on request.

    ``best`` (the best validation score so far) goes into every checkpoint it saves; it
    cannot change inside an epoch. ``rank_sums``: every rank's loss sums at ``start``
    (under ``torchrun``, when the epoch resumes inside itself).

    Under ``torchrun`` no step waits for the device: the ranks agree on stopping and saving
    through CPU tensors (:func:`~ldwseg.engine.distributed.control_group`), and every rank's
    loss sums are gathered on the training device without being read; a save reads the
    gather of its own step. The previous step's gather is waited for before the next one
    starts, which on CUDA orders the streams and leaves the host free.
    """

    def __init__(
        self, saver: RunSaver, stop: StopRequests, dist_info: DistInfo, device: torch.device, *,
        start: EpochProgress, best: dict[str, Any], rank_sums: list[dict[str, float]] | None = None,
    ) -> None:  # fmt: skip
        self.saver, self.stop, self.dist_info, self.device = saver, stop, dist_info, device
        # one process saves no rank sums: those of a group it resumed from would go stale beside its own
        self.last, self.best, self._rank_sums = start, best, rank_sums if dist_info.enabled else None
        self._gather: tuple[list[torch.Tensor], dist.Work] | None = None  # the last step's, unread

    def __call__(self, progress: EpochProgress) -> None:
        if self.dist_info.enabled:
            signal_name, due = self._agree(progress)
            self._gather_sums(progress)
        else:
            signal_name, due = self.stop.signal, self.saver.due(progress.step)
        self.last = progress
        if signal_name is not None:
            raise self.save_and_stop(signal_name)
        if due:
            self._save()

    @property
    def rank_sums(self) -> list[dict[str, float]] | None:
        """Every rank's loss sums at the last step (read off the device: a synchronisation)."""
        if self._gather is not None:
            rows, work = self._gather
            work.wait()
            self._rank_sums = [dict(zip(LOSS_NAMES, row.tolist())) for row in torch.stack(rows).cpu()]
            self._gather = None
        return self._rank_sums

    def _agree(self, progress: EpochProgress) -> tuple[str | None, bool]:
        """One ``all_gather`` of (signal, due) from every rank, on the host: any rank's request to stop,
        or to save (``checkpoint_minutes`` is timed per rank), holds for all."""
        mine = torch.tensor([_signal_code(self.stop.signal), self.saver.due(progress.step)])
        rows = [torch.empty_like(mine) for _ in range(self.dist_info.world_size)]
        dist.all_gather(rows, mine, group=control_group())
        table = torch.stack(rows)
        return _signal_name(int(table[:, 0].max())), bool(table[:, 1].any())

    def _gather_sums(self, progress: EpochProgress) -> None:
        """Start gathering every rank's loss sums of ``progress`` on the training device."""
        if self._gather is not None:
            self._gather[1].wait()
        mine = progress.device_sums(self.device)
        rows = [torch.empty_like(mine) for _ in range(self.dist_info.world_size)]
        self._gather = rows, dist.all_gather(rows, mine, async_op=True)

    def save_and_stop(self, signal_name: str) -> Interrupted:
        """Save the last completed step; the error to raise for ``signal_name``."""
        self._save()
        return interrupted(self.saver.out, signal_name, f"at epoch {self.last.epoch + 1}, step {self.last.step}")

    def _save(self) -> None:
        """Save the last step, unless a rank's loss was not finite by then: every rank holds the same
        gathered sums, so all of them raise together and none writes a checkpoint."""
        sums = self.last.sums  # raises on a rank whose own loss was not finite, naming the step
        rank_sums = self.rank_sums
        for rank, values in enumerate(rank_sums or []):
            if not all(math.isfinite(v) for v in values.values()):
                raise NonFiniteLossError(
                    f"the loss became NaN or infinite on rank {rank} of {self.dist_info.world_size} by epoch "
                    f"{self.last.epoch + 1}, step {self.last.step} (that rank's log names the step)",
                    epoch=self.last.epoch,
                    step=self.last.step - 1,
                )
        point = ResumePoint(self.last.epoch, self.last.step, sums, self.best, rank_sums)
        self.saver.save(point, {"step_in_epoch": self.last.step})
