"""The tasks ldwseg trains, by name, and the entry points that need to know them.

The engine (:mod:`ldwseg.engine`) runs any :class:`~ldwseg.engine.task.Task`; this module
is the one place that names the concrete ones, so the dependencies run one way:
engine -> {seg, recon} -> tasks -> cli.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .config import Config, compose_config
from .engine.fit import FitResult, Progress, fit
from .engine.task import Task
from .errors import ConfigError
from .recon.task import ReconstructionTask
from .seg.task import SegmentationTask

__all__ = ["TASKS", "get_task", "load_config", "train"]

TASKS: dict[str, type] = {"seg": SegmentationTask, "recon": ReconstructionTask}


def get_task(name: str) -> Task:
    """The task called ``name`` (``seg`` or ``recon``)."""
    if name not in TASKS:
        raise ConfigError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}")
    return TASKS[name]()


def load_config(
    path: str | Path | None = None, overrides: list[str] | dict[str, Any] | None = None, *, validate: bool = True
) -> Config:
    """Defaults, the task's own defaults, the YAML file (if any), then the overrides (see
    :func:`ldwseg.config.compose_config`)."""
    defaults = {name: task.defaults for name, task in TASKS.items()}
    return compose_config(path, overrides, task_defaults=defaults, validate=validate)


def train(cfg: Config, out: str | Path, *, resume: bool = False, progress: Progress | None = None) -> FitResult:
    """Train ``cfg`` (its ``train.task``) into ``out``; see :func:`ldwseg.engine.fit.fit`."""
    return fit(get_task(cfg.train.task), cfg, out, resume=resume, progress=progress)
