"""Where a run starts: fresh, from ``--resume``, or after a ``torchrun`` restart.

Rank 0 reads the saved state and sends it to every rank, so only its machine needs the
output folder. A restarted group resumes only from a checkpoint its own torchrun run
wrote; a run that is not resumed never replaces a folder that holds one.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ..config import Config
from .checkpoints import ResumePoint, apply_resume_state, read_resume_state
from .distributed import DistInfo, from_main
from .run_folder import RunFolder, check_new_run
from .state import TrainingState

__all__ = ["resume_point", "saved_state"]

log = logging.getLogger(__name__)


def resume_point(
    cfg: Config, score: str, out: Path, state: TrainingState, dist_info: DistInfo, *, resume: bool
) -> ResumePoint:
    """Where the run starts: the beginning, or the training state saved in ``out``, loaded into ``state``.

    The run resumes with ``resume``, or when ``torchrun`` restarted it and ``out`` holds a
    checkpoint of this torchrun run. Rank 0 reads the file and sends it to every rank.
    """
    stored = from_main(lambda: saved_state(cfg, out, dist_info, resume=resume), dist_info)
    if stored is None:
        return ResumePoint()
    start = apply_resume_state(stored, state, rank=dist_info.rank, world=dist_info.world_size)
    best = "" if start.best["epoch"] < 0 else f" (best {score} so far {start.best['score']:.4f})"
    restart = "" if resume else f"torchrun restart {dist_info.restart}: "
    if start.epoch >= cfg.train.epochs:
        log.info("%s%s holds a finished run (%d of %d epochs); nothing to train", restart, out, start.epoch,
                 cfg.train.epochs)  # fmt: skip
    else:
        log.info("%sresuming %s at epoch %d, step %d%s", restart, out, start.epoch + 1, start.step, best)
    return start


def saved_state(cfg: Config, out: Path, dist_info: DistInfo, *, resume: bool) -> dict[str, Any] | None:
    """The training state to go on from (rank 0): ``out``'s with ``resume``; after a torchrun restart, this
    torchrun run's own, if it saved one yet; else ``None``."""
    path = RunFolder(out).state
    if resume:
        return read_resume_state(out, task=cfg.train.task)
    if dist_info.restart == 0:
        check_new_run(out)  # a run is never replaced silently: resume it, or clear it first
        return None
    state = read_resume_state(out, task=cfg.train.task) if path.exists() else None
    if state is not None and state.get("run_id") == dist_info.run_id:
        return state
    log.info("torchrun restart %d: %s holds no checkpoint of this run yet; starting from the beginning",
             dist_info.restart, out)  # fmt: skip
    return None
