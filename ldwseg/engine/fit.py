"""The training loop of both tasks: ``fit`` (its loaders and network come from :mod:`ldwseg.engine.build`).

The task (``cfg.train.task``: segmentation or reconstruction, see :mod:`ldwseg.engine.task`)
supplies the data, the loss and the validation score. Works in one process or under
``torchrun --nproc_per_node N -m ldwseg train ...`` (gloo on CPU, nccl on CUDA): each rank
trains on its shard, metrics are reduced across ranks, and only rank 0 writes checkpoints,
logs and the resolved config, and reports progress. ``train.sync_bn`` turns BatchNorm into
SyncBatchNorm across the ranks (torch's on CUDA, :mod:`ldwseg.engine.sync_bn` on the CPU).
Rank 0 reads the resume point and sends it to the others, so only rank 0's machine needs
the output folder.

Under ``torchrun --max-restarts N``, a group that the elastic agent restarted after a rank
died goes on from the run's last checkpoint by itself (the same command, no ``--resume``),
and a rank whose peer died fails with :class:`~ldwseg.engine.distributed.PeerLost`.

A run can stop anywhere and go on with ``resume=True`` exactly as if it had not stopped
(same weights and metrics on the CPU with a fixed seed): ``last.state.pt`` is written at
every epoch end, every ``train.checkpoint_every`` steps and every
``train.checkpoint_minutes``; SIGINT (Ctrl-C) and SIGTERM save it after the current step
and raise :class:`~ldwseg.errors.Interrupted` (see :mod:`ldwseg.engine.stopping`). A
NaN/Inf loss raises :class:`~ldwseg.engine.epoch.NonFiniteLossError` and leaves the last
good checkpoint as it was. One run at a time may use an output folder
(:class:`~ldwseg.engine.runlock.RunLock`).

:func:`fit` reads as its steps: :func:`~ldwseg.engine.prepare.prepare_run` builds a
:class:`~ldwseg.engine.prepare.Run` (data, model, optimizer, the resume point, the saver and
the metric log), then every epoch is :func:`_train_epoch`, :func:`_validate` when due and
:func:`_end_epoch`; :func:`_finish` closes the log and sums up.
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

from ..config import Config
from ..errors import ConfigError, WriteFailed
from .checkpoints import ResumePoint, save_run_checkpoint
from .distributed import barrier, cleanup_distributed, init_distributed, main_rank_logs, peer_lost
from .epoch import EpochProgress, NonFiniteLossError, train_one_epoch
from .interrupt import StopRequests
from .logs import epoch_pace, time_left
from .precision import cudnn_autotuner
from .prepare import Run, prepare_run
from .run_folder import RunFolder
from .runlock import RunLock
from .stopping import StepWatch, agreed_signal, interrupted, non_finite_loss
from .task import Task

__all__ = ["FitResult", "fit"]

log = logging.getLogger(__name__)

Progress = Callable[[Iterable, str], Iterable]


@dataclass
class FitResult:
    """What a run did: its best and last validation score (``score_name``), epochs run, seconds taken."""

    out: str
    task: str
    score_name: str
    best_score: float
    best_epoch: int
    last_score: float | None
    epochs_run: int
    seconds: float
    skipped: int = 0


def fit(
    task: Task, cfg: Config, out: str | Path, *, resume: bool = False, progress: Progress | None = None
) -> FitResult:
    """Train ``cfg`` on ``task`` and write checkpoints, logs and the resolved config into ``out``.

    ``progress`` wraps the batches of an epoch (a progress bar), on rank 0 only. An ``out``
    that holds an earlier run is refused unless ``resume`` (a :class:`~ldwseg.errors.ConfigError`;
    :func:`~ldwseg.engine.run_folder.clear_run` removes that run).
    """
    dist_info, device = init_distributed(cfg.train.device)
    try:
        lock = RunLock(out) if dist_info.is_main else contextlib.nullcontext()
        progress = progress if dist_info.is_main else None
        with main_rank_logs(dist_info), lock, StopRequests() as stop, cudnn_autotuner(device):
            started = time.perf_counter()
            run = prepare_run(task, cfg, Path(out), dist_info, device, stop, resume=resume)
            _log_start(run)
            for epoch in range(run.start.epoch, cfg.train.epochs):
                tick = time.perf_counter()
                row = _train_epoch(run, epoch, progress)
                if (epoch + 1) % cfg.train.eval_every == 0 or epoch + 1 == cfg.train.epochs:
                    row.update(_validate(run, epoch))
                row["seconds"] = round(time.perf_counter() - tick, 2)
                _end_epoch(run, epoch, row)
            return _finish(run, started)
    except RuntimeError as err:
        lost = peer_lost(err, dist_info)
        if lost is not None:
            raise lost from err
        if cfg.train.compile and _compiler_failed(err):
            raise ConfigError(
                f"train.compile=true: torch.compile could not compile the network ({_first_line(err)}); train "
                "without it (drop --set train.compile=true)"
            ) from err
        raise
    finally:
        cleanup_distributed()


def _compiler_failed(err: RuntimeError) -> bool:
    """Whether ``err`` is ``torch.compile`` failing to compile the network (inductor's ``InductorError`` is a
    ``BackendCompilerFailed``), not an error of the network itself. Imported here: torch._dynamo takes a
    second to import, and only a compiled run has it loaded."""
    from torch._dynamo.exc import BackendCompilerFailed, InternalTorchDynamoError

    return isinstance(err, (BackendCompilerFailed, InternalTorchDynamoError))


def _first_line(err: BaseException) -> str:
    """What went wrong inside the compiler (the error it wraps, else ``err``): its type and the first line of
    its message, at most 200 characters."""
    cause = getattr(err, "inner_exception", None) or err.__cause__ or err
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[0] if lines else ''}"[:200]


def _log_start(run: Run) -> None:
    """One line on what the run is about to do (logged by rank 0 only, see ``main_rank_logs``)."""
    data, info = run.data, run.dist_info
    classes = data.record.get("num_classes")
    outputs = f"{classes} classes" if classes is not None else f"{data.out_channels} output channels"
    group = f"world size {info.world_size} ({torch.distributed.get_backend()})" if info.enabled else "1 process"
    params, threads = sum(p.numel() for p in run.state.model.parameters()), torch.get_num_threads()
    log.info(
        "%s on %s: %d train / %d val samples, %s; %s, %d thread%s, %s; %s parameters; writing to %s",
        run.task.name,
        run.cfg.data.dataset,
        len(data.train),
        len(data.val),
        outputs,
        run.precision.device,
        threads,
        "" if threads == 1 else "s",
        group,
        f"{params:,}",
        run.out,
    )


def _train_epoch(run: Run, epoch: int, progress: Progress | None) -> dict[str, Any]:
    """Train ``epoch`` (the rest of it when the run resumes inside it), stepping the lr schedule after every step.

    Returns the epoch's log row so far: the lr it started with and the mean losses.
    """
    t = run.cfg.train
    begin = EpochProgress(epoch, run.start.step, run.start.sums) if epoch == run.start.epoch else EpochProgress(epoch)
    run.sampler.set_epoch(epoch, start=begin.step * t.batch_size)
    run.train_loader.dataset.set_epoch(epoch)
    rank_sums = run.start.rank_sums if epoch == run.start.epoch else None
    watch = StepWatch(
        run.saver, run.stop, run.dist_info, run.precision.device, start=begin, best=run.best, rank_sums=rank_sums
    )

    def labelled(batches: Iterable) -> Iterable:
        return progress(batches, f"epoch {epoch + 1}/{t.epochs}")

    def after_step(done: EpochProgress) -> None:
        run.state.scheduler.step()  # the schedule and the average move before the watch, which may checkpoint
        if run.state.ema is not None:
            run.state.ema.update()
        watch(done)

    lr = run.state.scheduler.get_last_lr()[0]

    try:
        stats = train_one_epoch(
            run.net, run.train_loader, run.state.optimizer, run.criterion, precision=run.precision,
            wavelet_weight=t.wavelet_weight, scaler=run.state.scaler, max_steps=t.max_steps_per_epoch,
            progress=labelled if progress else None, start=begin, after_step=after_step,
        )  # fmt: skip
    except RuntimeError as err:
        if run.stop.signal is None or peer_lost(err, run.dist_info) is not None:
            raise
        # a signal to the whole process group also stopped the DataLoader workers
        raise watch.save_and_stop(run.stop.signal) from err
    except NonFiniteLossError as err:
        raise non_finite_loss(err, run.out) from None
    return {"lr": lr, **stats}


def _validate(run: Run, epoch: int) -> dict[str, float]:
    """Score the model; a new best is saved as ``best.safetensors``. Returns the ``val_*`` entries of the row.

    Under ``torchrun`` each rank scores its shard of the validation set with the same network: the
    DDP wrapper syncs the model's buffers at its forward, and a weight average takes rank 0's
    buffers first (:meth:`~ldwseg.engine.ema.WeightAverage.broadcast_buffers`), so the logged score
    is that of the saved network. A best checkpoint the disk refuses stops the run with the
    checkpoint it goes on from (:meth:`~ldwseg.engine.stopping.RunSaver.write_failed`).
    """
    if run.state.ema is not None and run.dist_info.enabled:
        run.state.ema.broadcast_buffers()
    result = run.task.evaluate(run.evaluated, run.val_loader, precision=run.precision, data=run.data)
    run.last_score = float(result[run.task.score])
    if run.last_score > run.best["score"]:
        run.best = {"score": run.last_score, "epoch": epoch}
        if run.dist_info.is_main:
            path = RunFolder(run.out).best
            try:
                save_run_checkpoint(path, run.state.delivered, run.cfg, run.data.record, epoch=epoch, metrics=result)
            except WriteFailed as err:
                raise run.saver.write_failed(err) from err
    return {f"val_{k}": v for k, v in result.items() if isinstance(v, float)}


def _end_epoch(run: Run, epoch: int, row: dict[str, Any]) -> None:
    """Log ``row``, save the checkpoint of the epoch's end, and stop here if a signal asked to."""
    t = run.cfg.train
    run.metric_log.write(epoch, row)
    run.epoch_seconds.append(row["seconds"])
    run.saver.save(ResumePoint(epoch + 1, 0, None, run.best), row)
    scored = f"val_{run.task.score}" in row
    log.info(
        "epoch %d/%d  loss %.4f (task %.4f, wavelet %.4f)%s  %.1fs%s",
        epoch + 1,
        t.epochs,
        row["train_loss"],
        row["task_loss"],
        row["wavelet_loss"],
        f"  val {run.task.score} {run.last_score:.4f}" if scored else "",
        row["seconds"],
        time_left(epoch_pace(run.epoch_seconds), t.epochs - epoch - 1),
    )
    barrier(run.dist_info)
    signal_name = agreed_signal(run.stop, run.dist_info)
    if signal_name is not None and epoch + 1 < t.epochs:
        raise interrupted(run.out, signal_name, f"after epoch {epoch + 1}")


def _finish(run: Run, started: float) -> FitResult:
    """Close the metric log; the run's summary (``started``: its ``time.perf_counter()`` at the start)."""
    run.metric_log.close()
    skipped = sum(len(getattr(ds, "skipped", ())) for ds in (run.data.train, run.data.val))
    return FitResult(
        out=str(run.out), task=run.cfg.train.task, score_name=run.task.score, best_score=run.best["score"],
        best_epoch=run.best["epoch"], last_score=run.last_score, epochs_run=run.cfg.train.epochs - run.start.epoch,
        seconds=round(time.perf_counter() - started, 1), skipped=skipped,
    )  # fmt: skip
