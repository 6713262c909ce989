"""The training loop of both tasks: ``get_loaders``, ``build_model``, ``fit``.

The task (``cfg.train.task``: segmentation or reconstruction, see :mod:`ldwseg.tasks`)
supplies the data, the loss and the validation score. Works in one process or under ``torchrun --nproc_per_node N -m ldwseg train ...``
(gloo on CPU, nccl on CUDA): each rank trains on its shard, metrics are reduced across
ranks, and only rank 0 writes checkpoints, logs and the resolved config.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from .config import Config
from .distributed import DistInfo, barrier, cleanup_distributed, init_distributed
from .errors import ConfigError
from .logs import MetricLog
from .models import UNet, build_unet
from .runs import restore_resume_state, save_resume_state, save_run_checkpoint
from .sampling import EpochShardSampler, seed_epoch, seed_everything, worker_init
from .seg.engine import train_one_epoch
from .tasks import TaskData, get_task

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


def get_loaders(data: TaskData, cfg: Config, dist_info: DistInfo) -> tuple[DataLoader, DataLoader, EpochShardSampler]:
    """Loaders whose order depends only on ``(seed, epoch)``; validation is sharded, not padded."""
    t, train, val = cfg.train, data.train, data.val
    if len(train) == 0:
        raise ConfigError("the training split is empty; check --data-root and the split file")
    sampler = EpochShardSampler(len(train), seed=t.seed, rank=dist_info.rank, world=dist_info.world_size)
    workers = cfg.data.num_workers
    common = {"num_workers": workers, "worker_init_fn": worker_init, "persistent_workers": False}
    train_loader = DataLoader(
        train, batch_size=t.batch_size, sampler=sampler, drop_last=len(sampler) >= 2 * t.batch_size, **common
    )
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


def fit(cfg: Config, out: str | Path, *, resume: bool = False, progress: Progress | None = None) -> FitResult:
    """Train ``cfg`` and write checkpoints, logs and the resolved config into ``out``."""
    dist_info, device = init_distributed(cfg.train.device)
    try:
        return _fit(cfg, Path(out), dist_info, device, resume=resume, progress=progress)
    finally:
        cleanup_distributed()


def _fit(
    cfg: Config, out: Path, dist_info: DistInfo, device: torch.device, *, resume: bool, progress: Progress | None
) -> FitResult:
    started = time.perf_counter()
    t = cfg.train
    seed_everything(t.seed)
    if dist_info.is_main:
        out.mkdir(parents=True, exist_ok=True)
    task = get_task(t.task)
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
    start_epoch, best = 0, {"score": -float("inf"), "epoch": -1}
    if resume:
        start_epoch, best = restore_resume_state(out, model, optimizer, scheduler, task=t.task)
        log.info("resuming %s at epoch %d (best %s so far %.4f)", out, start_epoch, task.score, best["score"])
    net = model
    if dist_info.enabled:
        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    criterion = task.criterion(cfg)
    scaler = _scaler(t.amp, device)
    record = data.record
    mlog = MetricLog(out, enabled=dist_info.is_main, start_epoch=start_epoch)
    if dist_info.is_main:
        cfg.save(out / "config.yaml")
    last_score = None
    for epoch in range(start_epoch, t.epochs):
        seed_epoch(t.seed, epoch, dist_info.rank)
        sampler.set_epoch(epoch)
        tick = time.perf_counter()
        wrap = (lambda it, e=epoch: progress(it, f"epoch {e + 1}/{t.epochs}")) if progress else None
        stats = train_one_epoch(
            net, train_loader, optimizer, criterion, device=device, wavelet_weight=t.wavelet_weight, amp=t.amp,
            scaler=scaler, channels_last=t.channels_last, max_steps=t.max_steps_per_epoch, progress=wrap, epoch=epoch,
        )
        row: dict[str, Any] = {"lr": scheduler.get_last_lr()[0], **stats}
        scheduler.step()
        if (epoch + 1) % t.eval_every == 0 or epoch + 1 == t.epochs:
            result = task.evaluate(net, val_loader, device=device, amp=t.amp, channels_last=t.channels_last, data=data)
            last_score = float(result[task.score])
            row.update({f"val_{k}": v for k, v in result.items() if isinstance(v, float)})
            if last_score > best["score"]:
                best = {"score": last_score, "epoch": epoch}
                if dist_info.is_main:
                    save_run_checkpoint(out / "best.safetensors", model, cfg, record, epoch=epoch, metrics=result)
        row["seconds"] = round(time.perf_counter() - tick, 2)
        if dist_info.is_main:
            save_run_checkpoint(out / "last.safetensors", model, cfg, record, epoch=epoch, metrics=row)
            save_resume_state(out / "last.state.pt", optimizer, scheduler, epoch=epoch, best=best)
            mlog.write(epoch, row)
        log.info(
            "epoch %d/%d  loss %.4f (task %.4f, wavelet %.4f)%s  %.1fs", epoch + 1, t.epochs, stats["train_loss"],
            stats["task_loss"], stats["wavelet_loss"],
            f"  val {task.score} {last_score:.4f}" if f"val_{task.score}" in row else "", row["seconds"],
        )
        barrier(dist_info)
    mlog.close()
    return FitResult(
        out=str(out), task=t.task, score_name=task.score, best_score=best["score"], best_epoch=best["epoch"],
        last_score=last_score, epochs_run=t.epochs - start_epoch, seconds=round(time.perf_counter() - started, 1),
    )
