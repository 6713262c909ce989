"""What one training run holds, and how it is built: :func:`prepare_run` makes the :class:`Run`
that :func:`~ldwseg.engine.fit.fit` trains.

It seeds the process, loads the data (rank 0 first, as it may generate or download it),
builds the loaders, the network (from ``train.init_from`` when given; SyncBatchNorm,
channels-last, DDP and ``torch.compile`` as the config asks), its optimizer, schedule,
weight average and loss scaler, restores them from the run's checkpoint when resuming,
and writes the resolved config and the environment beside the checkpoints (rank 0).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from ..config import Config
from ..io.atomic import atomic_write
from ..io.weights import load_matching_weights
from ..provenance import environment
from .build import build_model, get_loaders
from .checkpoints import ResumePoint
from .distributed import DistInfo, barrier, check_precision
from .ema import build_weight_average
from .interrupt import StopRequests
from .logs import TRAINING_LOGGER, MetricLog
from .optim import build_optimizer, build_scheduler, steps_per_epoch
from .precision import Precision
from .resume import resume_point
from .run_folder import RunFolder
from .sampling import EpochShardSampler, seed_everything
from .state import TrainingState
from .stopping import RunSaver
from .sync_bn import sync_batchnorm
from .task import Task, TaskData

__all__ = ["Run", "prepare_run"]

log = logging.getLogger(TRAINING_LOGGER)  # the set-up's lines are the run's: ``log_label`` names them too


def _scaler(precision: Precision) -> torch.amp.GradScaler | None:
    """The loss scaler fp16 needs against gradient underflow (refused off CUDA, see ``check_precision``)."""
    check_precision(precision.device, precision.amp)
    return torch.amp.GradScaler("cuda") if precision.amp == "fp16" else None


@dataclass
class Run:
    """Everything one training run holds, from :func:`prepare_run` to the run's end.

    ``state`` holds the bare network, its optimizer, schedule, weight average and loss
    scaler (:class:`~ldwseg.engine.state.TrainingState`); ``net`` is what trains: the network
    itself, its DDP wrapper, or a compiled wrapper of either (``train.compile``); ``evaluated``
    is what validation runs: the weight average when there is one, else the network or its
    DDP wrapper (never the compiled one, which would compile again for every eval shape).
    ``best`` and ``last_score`` are updated by :func:`~ldwseg.engine.fit.fit`'s validation.
    """

    task: Task
    cfg: Config
    out: Path
    dist_info: DistInfo
    precision: Precision
    stop: StopRequests
    data: TaskData
    train_loader: DataLoader
    val_loader: DataLoader
    sampler: EpochShardSampler
    state: TrainingState
    net: nn.Module
    evaluated: nn.Module
    criterion: Callable
    saver: RunSaver
    metric_log: MetricLog
    start: ResumePoint
    best: dict[str, Any]
    last_score: float | None = None
    epoch_seconds: list[float] = field(default_factory=list)


def _load_data(task: Task, cfg: Config, dist_info: DistInfo) -> TaskData:
    """The task's data, rank 0 first: it may generate or download it."""
    if not dist_info.is_main:
        barrier(dist_info)
    data = task.data(cfg)
    if dist_info.is_main:
        barrier(dist_info)
    return data


def prepare_run(
    task: Task, cfg: Config, out: Path, dist_info: DistInfo, device: torch.device, stop: StopRequests, *, resume: bool
) -> Run:
    """Seed, build data, model and optimizer, restore them when resuming, write the resolved config."""
    t = cfg.train
    seed_everything(t.seed)
    if dist_info.is_main:
        out.mkdir(parents=True, exist_ok=True)
    data = _load_data(task, cfg, dist_info)
    train_loader, val_loader, sampler = get_loaders(data, cfg, dist_info, device)
    precision = Precision(device, t.amp, t.channels_last)
    model = build_model(cfg, data.out_channels)
    if t.init_from and not resume:
        _initialise(model, t.init_from)
    model = model.to(device)
    if t.sync_bn:
        model = sync_batchnorm(model, dist_info, device)
    if t.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, cfg.optim)
    scheduler = build_scheduler(optimizer, cfg.optim, t.epochs, steps_per_epoch(train_loader, t.max_steps_per_epoch))
    ema = build_weight_average(model, t.ema_decay)
    state = TrainingState(model, optimizer, scheduler, ema=ema, scaler=_scaler(precision))
    start = resume_point(cfg, task.score, out, state, dist_info, resume=resume)
    net: nn.Module = model
    if dist_info.enabled:
        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    evaluated = net if ema is None else ema.module
    if t.compile:  # a wrapper for the forward only: checkpoints save ``model``, whose keys stay plain
        net = torch.compile(net)
    criterion = task.criterion(cfg, data)
    saver = RunSaver(out, state, cfg, data.record, is_main=dist_info.is_main, run_id=dist_info.run_id)
    metric_log = MetricLog(out, enabled=dist_info.is_main, start_epoch=start.epoch)
    if dist_info.is_main:
        cfg.save(RunFolder(out).config)
        text = json.dumps(environment(device), indent=2) + "\n"
        atomic_write(RunFolder(out).environment, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return Run(
        task=task, cfg=cfg, out=out, dist_info=dist_info, precision=precision, stop=stop, data=data,
        train_loader=train_loader, val_loader=val_loader, sampler=sampler, state=state, net=net, evaluated=evaluated,
        criterion=criterion, saver=saver, metric_log=metric_log, start=start, best=start.best,
    )  # fmt: skip


def _initialise(model: nn.Module, source: str) -> None:
    """Start ``model`` from the weights of ``source`` that fit it (``train.init_from``); one line says what did not."""
    found = load_matching_weights(source, model)
    kept = found["kept"]
    shown = "; ".join(kept[:3]) + (f" and {len(kept) - 3} more" if len(kept) > 3 else "")
    log.info(
        "initialised from %s: %d of %d tensors loaded%s", source, len(found["loaded"]),
        len(found["loaded"]) + len(kept), f"; not loaded (left as initialised): {shown}" if kept else "",
    )  # fmt: skip
