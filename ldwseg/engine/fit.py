"""The training loop of both tasks: ``get_loaders``, ``build_model``, ``fit``.

The task (``cfg.train.task``: segmentation or reconstruction, see :mod:`ldwseg.engine.task`)
supplies the data, the loss and the validation score. Works in one process or under ``torchrun --nproc_per_node N -m ldwseg train ...``
(gloo on CPU, nccl on CUDA): each rank trains on its shard, metrics are reduced across
ranks, and only rank 0 writes checkpoints, logs and the resolved config.

A run can stop anywhere and go on with ``resume=True`` exactly as if it had not stopped
(same weights and metrics on the CPU with a fixed seed): ``last.state.pt`` is written at
every epoch end, every ``train.checkpoint_every`` steps and every
``train.checkpoint_minutes``; SIGINT (Ctrl-C) and SIGTERM save it after the current step
and raise :class:`~ldwseg.errors.Interrupted`. A NaN/Inf loss raises
:class:`~ldwseg.engine.epoch.NonFiniteLossError` and leaves the last good checkpoint as it
was. One run at a time may use an output folder (:class:`~ldwseg.engine.runlock.RunLock`).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from ..config import Config
from ..errors import ConfigError, Interrupted
from ..models import UNet, build_unet
from .checkpoints import ResumePoint, restore_resume_state, save_resume_state, save_run_checkpoint
from .distributed import DistInfo, barrier, cleanup_distributed, init_distributed
from .epoch import NonFiniteLossError, train_one_epoch
from .interrupt import SIGNAL_EXIT_CODES, StopRequests
from .logs import MetricLog
from .runlock import RunLock
from .sampling import EpochShardSampler, SeededSamples, seed_everything, worker_init
from .task import Task, TaskData

__all__ = ["FitResult", "get_loaders", "build_model", "fit"]

log = logging.getLogger(__name__)

Progress = Callable[[Iterable, str], Iterable]


@dataclass
class FitResult:
    out: str
    task: str
    score_name: str
    best_score: float
    best_epoch: int
    last_score: float | None
    epochs_run: int
    seconds: float
    skipped: int = 0


def get_loaders(data: TaskData, cfg: Config, dist_info: DistInfo) -> tuple[DataLoader, DataLoader, EpochShardSampler]:
    """Loaders whose batches depend only on ``(seed, epoch)``; validation is sharded, not padded.

    The training set is wrapped in :class:`~ldwseg.engine.sampling.SeededSamples`: call
    ``train_loader.dataset.set_epoch(epoch)`` with ``sampler.set_epoch(epoch)``.
    """
    t, train, val = cfg.train, data.train, data.val
    if len(train) == 0:
        raise ConfigError("the training split is empty; check --data-root and the split file")
    sampler = EpochShardSampler(len(train), seed=t.seed, rank=dist_info.rank, world=dist_info.world_size)
    workers = cfg.data.num_workers
    common = {"num_workers": workers, "worker_init_fn": worker_init, "persistent_workers": False}
    train_loader = DataLoader(
        SeededSamples(train, t.seed), batch_size=t.batch_size, sampler=sampler,
        drop_last=len(sampler) >= 2 * t.batch_size, **common,
    )  # fmt: skip
    val_sampler = EpochShardSampler(
        len(val), shuffle=False, rank=dist_info.rank, world=dist_info.world_size, pad=False
    )
    val_loader = DataLoader(val, batch_size=t.val_batch_size, sampler=val_sampler, collate_fn=data.collate, **common)
    return train_loader, val_loader, sampler


def build_model(cfg: Config, out_channels: int) -> UNet:
    return build_unet(cfg.model, 3, out_channels)


def _scaler(amp: str, device: torch.device) -> torch.amp.GradScaler | None:
    if amp != "fp16":
        return None
    if device.type != "cuda":
        raise ConfigError("--amp fp16 needs a CUDA device; on the CPU use --amp bf16 or --amp off")
    return torch.amp.GradScaler("cuda")


def fit(
    task: Task, cfg: Config, out: str | Path, *, resume: bool = False, progress: Progress | None = None
) -> FitResult:
    """Train ``cfg`` on ``task`` and write checkpoints, logs and the resolved config into ``out``."""
    dist_info, device = init_distributed(cfg.train.device)
    try:
        lock = RunLock(out) if dist_info.is_main else contextlib.nullcontext()
        with lock, StopRequests() as stop:
            return _fit(task, cfg, Path(out), dist_info, device, resume=resume, progress=progress, stop=stop)
    finally:
        cleanup_distributed()


def _stop_requested(stop: StopRequests, dist_info: DistInfo, device: torch.device) -> str | None:
    """The signal that asked to stop, agreed on by all ranks (any rank's request stops all)."""
    if not dist_info.enabled:
        return stop.signal
    flag = torch.tensor([SIGNAL_EXIT_CODES.get(stop.signal or "", 0)], device=device)
    torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
    return {code: name for name, code in SIGNAL_EXIT_CODES.items()}.get(int(flag.item()))


class _Saver:
    """Writes ``last.safetensors`` + ``last.state.pt`` (rank 0) at the points the config asks for."""

    def __init__(self, out: Path, model, optimizer, scheduler, cfg: Config, record: dict, is_main: bool) -> None:
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
        save_run_checkpoint(self.out / "last.safetensors", self.model, self.cfg, self.record, epoch=epoch, metrics=metrics)


def _resume_hint(out: Path) -> str:
    return f"go on with the same command plus --resume (--out {out})"


def _fit(
    task: Task,
    cfg: Config,
    out: Path,
    dist_info: DistInfo,
    device: torch.device,
    *,
    resume: bool,
    progress: Progress | None,
    stop: StopRequests,
) -> FitResult:
    started = time.perf_counter()
    t = cfg.train
    seed_everything(t.seed)
    if dist_info.is_main:
        out.mkdir(parents=True, exist_ok=True)
    if not dist_info.is_main:
        barrier(dist_info)  # rank 0 first: it may generate or download the data
    data = task.data(cfg)
    if dist_info.is_main:
        barrier(dist_info)
    train_loader, val_loader, sampler = get_loaders(data, cfg, dist_info)
    model = build_model(cfg, data.out_channels).to(device)
    if t.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.optim.step_size, gamma=cfg.optim.gamma)
    point = ResumePoint()
    if not resume and dist_info.is_main and (out / "last.state.pt").exists():
        log.warning("%s holds an earlier run; starting over (pass --resume to continue it instead)", out)
    if resume:
        point = restore_resume_state(out, model, optimizer, scheduler, task=t.task)
        log.info(
            "resuming %s at epoch %d, step %d (best %s so far %.4f)", out, point.epoch + 1, point.step, task.score,
            point.best["score"],
        )
    net = model
    if dist_info.enabled:
        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    criterion = task.criterion(cfg)
    scaler = _scaler(t.amp, device)
    saver = _Saver(out, model, optimizer, scheduler, cfg, data.record, dist_info.is_main)
    mlog = MetricLog(out, enabled=dist_info.is_main, start_epoch=point.epoch)
    if dist_info.is_main:
        cfg.save(out / "config.yaml")
    best, last_score = point.best, None

    def interrupted(signal_name: str, where: str) -> Interrupted:
        return Interrupted(
            f"stopped by {signal_name} {where}; saved {out / 'last.safetensors'}; {_resume_hint(out)}",
            exit_code=SIGNAL_EXIT_CODES[signal_name],
        )

    for epoch in range(point.epoch, t.epochs):
        start_step, sums = (point.step, point.sums) if epoch == point.epoch else (0, None)
        sampler.set_epoch(epoch, start=start_step * t.batch_size)
        train_loader.dataset.set_epoch(epoch)
        tick = time.perf_counter()

        done = [ResumePoint(epoch, start_step, sums, best)]  # the last completed step, for a stop mid-fetch

        def after_step(steps: int, running: dict[str, float], epoch: int = epoch, done: list = done) -> None:
            done[0] = ResumePoint(epoch, steps, dict(running), done[0].best)
            signal_name = _stop_requested(stop, dist_info, device)
            if signal_name is not None:
                saver.save(done[0], {"step_in_epoch": steps})
                raise interrupted(signal_name, f"at epoch {epoch + 1}, step {steps}")
            if saver.due(steps):
                saver.save(done[0], {"step_in_epoch": steps})

        wrap = (lambda it, e=epoch: progress(it, f"epoch {e + 1}/{t.epochs}")) if progress else None
        try:
            stats = train_one_epoch(
                net, train_loader, optimizer, criterion, device=device, wavelet_weight=t.wavelet_weight, amp=t.amp,
                scaler=scaler, channels_last=t.channels_last, max_steps=t.max_steps_per_epoch, progress=wrap,
                epoch=epoch, start_step=start_step, sums=sums, after_step=after_step,
            )  # fmt: skip
        except RuntimeError as err:
            if stop.signal is None:
                raise
            # a signal to the whole process group also stopped the DataLoader workers
            saver.save(done[0], {"step_in_epoch": done[0].step})
            raise interrupted(stop.signal, f"at epoch {epoch + 1}, step {done[0].step}") from err
        except NonFiniteLossError as err:
            kept = out / "last.safetensors"
            raise NonFiniteLossError(
                f"{err}; training stopped and nothing was saved after the last good checkpoint "
                f"({kept if kept.exists() else 'none yet'}); lower the learning rate (--lr or --set optim.lr=...), "
                "switch off mixed precision (--amp off) or lower --wavelet-weight, then "
                + ("--resume" if kept.exists() else "start again"),
                epoch=err.epoch,
                step=err.step,
            ) from None
        row: dict[str, Any] = {"lr": scheduler.get_last_lr()[0], **stats}
        scheduler.step()
        if (epoch + 1) % t.eval_every == 0 or epoch + 1 == t.epochs:
            result = task.evaluate(net, val_loader, device=device, amp=t.amp, channels_last=t.channels_last, data=data)
            last_score = float(result[task.score])
            row.update({f"val_{k}": v for k, v in result.items() if isinstance(v, float)})
            if last_score > best["score"]:
                best = {"score": last_score, "epoch": epoch}
                if dist_info.is_main:
                    save_run_checkpoint(out / "best.safetensors", model, cfg, data.record, epoch=epoch, metrics=result)
        row["seconds"] = round(time.perf_counter() - tick, 2)
        mlog.write(epoch, row)
        saver.save(ResumePoint(epoch + 1, 0, None, best), row)
        log.info(
            "epoch %d/%d  loss %.4f (task %.4f, wavelet %.4f)%s  %.1fs", epoch + 1, t.epochs, stats["train_loss"],
            stats["task_loss"], stats["wavelet_loss"],
            f"  val {task.score} {last_score:.4f}" if f"val_{task.score}" in row else "", row["seconds"],
        )
        barrier(dist_info)
        signal_name = _stop_requested(stop, dist_info, device)
        if signal_name is not None and epoch + 1 < t.epochs:
            raise interrupted(signal_name, f"after epoch {epoch + 1}")
    mlog.close()
    skipped = sum(len(getattr(ds, "skipped", ())) for ds in (data.train, data.val))
    return FitResult(
        out=str(out), task=t.task, score_name=task.score, best_score=best["score"], best_epoch=best["epoch"],
        last_score=last_score, epochs_run=t.epochs - point.epoch, seconds=round(time.perf_counter() - started, 1),
        skipped=skipped,
    )
