"""What a training run writes into its output folder, and the rule that a run never replaces another silently.

A folder that holds a run's checkpoints is refused to a new run (:func:`check_new_run`):
continue it (``--resume``), replace it (``--overwrite``: :func:`clear_run` first) or train
elsewhere. ``ldwseg compare``, ``sweep`` and ``ablate`` resume their own runs instead, when
the run there has their settings (:func:`check_same_settings`).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..config import Config
from ..errors import ConfigError
from .runlock import RunLock

__all__ = [
    "CHECKPOINT_FILES", "RUN_FILES", "RunFolder", "check_new_run", "check_same_settings", "clear_run", "written_files",
]  # fmt: skip


@dataclass(frozen=True)
class RunFolder:
    """A training run's output folder: the one place that names the files in it.

    ``best`` and ``last`` are the weights of the best and the last validated epoch (the
    checkpoints ``evaluate`` and ``predict`` take), ``state`` what ``--resume`` reads (it
    alone decides where a run goes on), ``metrics`` one CSV row per epoch, ``config`` the
    resolved config, ``environment`` the versions, commit and device of the process that
    trained it (or last resumed it), ``tensorboard`` the event files' folder and
    ``result`` the summary a command that trains several runs keeps of a finished one.
    """

    path: Path

    @property
    def best(self) -> Path:
        return self.path / "best.safetensors"

    @property
    def last(self) -> Path:
        return self.path / "last.safetensors"

    @property
    def state(self) -> Path:
        return self.path / "last.state.pt"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.csv"

    @property
    def config(self) -> Path:
        return self.path / "config.yaml"

    @property
    def environment(self) -> Path:
        return self.path / "environment.json"

    @property
    def tensorboard(self) -> Path:
        return self.path / "tensorboard"

    @property
    def result(self) -> Path:
        return self.path / "result.json"


_NAMES = RunFolder(Path())
CHECKPOINT_FILES = tuple(p.name for p in (_NAMES.best, _NAMES.last, _NAMES.state))
"""The files whose presence means that a folder holds a run (what a new run would replace)."""

RUN_FILES = (
    *CHECKPOINT_FILES,
    *(p.name for p in (_NAMES.metrics, _NAMES.config, _NAMES.environment, _NAMES.tensorboard)),
)
"""Everything a training run writes into its folder (``tensorboard`` is a folder, there when TensorBoard is)."""


def written_files(out: str | Path) -> list[str]:
    """The :data:`RUN_FILES` present in ``out``, in that order; folders end with ``/``."""
    out = Path(out)
    return [f"{name}/" if (out / name).is_dir() else name for name in RUN_FILES if (out / name).exists()]


def check_new_run(out: str | Path) -> None:
    """Refuse to start a new run in ``out`` when it holds one, naming the ways on.

    Raises:
        ConfigError: ``out`` holds a checkpoint of an earlier run.
    """
    out = Path(out)
    found = [name for name in CHECKPOINT_FILES if (out / name).is_file()]
    if not found:
        return
    resume = "pass --resume to continue it, " if _NAMES.state.name in found else ""
    raise ConfigError(
        f"{out} holds an earlier run ({', '.join(found)}); {resume}--overwrite to replace it, or choose another --out"
    )


RESULT_NEUTRAL = (
    "data.root", "data.num_workers", "data.cache", "train.checkpoint_every", "train.checkpoint_minutes",
)  # fmt: skip
"""Config fields whose value does not change the weights or scores a run ends with: where the
data set lies (the same data on another machine, or given as a relative path once and an
absolute one the next time; which data set, split and classes are compared), how it is
loaded, how often the run checkpoints."""


def _compared(cfg: Config) -> dict:
    settings = cfg.to_dict()
    for key in RESULT_NEUTRAL:
        section, field = key.split(".")
        settings[section].pop(field)
    return settings


def check_same_settings(out: str | Path, cfg: Config, *, whose: str) -> None:
    """Refuse to go on with the run in ``out`` unless its ``config.yaml`` holds ``cfg`` (no file: nothing to check).

    The stored file is read as a config on top of today's defaults, so a field that a later
    ldwseg added (absent from the file) counts as its default, which is what that run trained with.
    Settings that do not change what a run computes (:data:`RESULT_NEUTRAL`: where the data
    lies, the data loader's workers, how often it checkpoints) may differ.

    Raises:
        ConfigError: the settings differ (``whose``: whose settings they should be, for the message).
    """
    stored = RunFolder(Path(out)).config
    if not stored.is_file():
        return
    raw = yaml.safe_load(stored.read_text())
    try:
        same = _compared(Config.from_dict(raw, source=str(stored), validate=False)) == _compared(cfg)
    except ConfigError:
        same = False
    if not same:
        raise ConfigError(f"{out} holds a run with other settings than {whose}; give another --out, or remove {out}")


def clear_run(out: str | Path) -> list[str]:
    """Remove the :data:`RUN_FILES` of an earlier run from ``out`` (nothing else); returns what was removed.

    Holds the run's lock meanwhile, so a run still writing there is never cleared away.

    Raises:
        ConfigError: another process is training into ``out``.
    """
    out = Path(out)
    if not out.is_dir():
        return []
    with RunLock(out):
        removed = written_files(out)
        for name in removed:
            path = out / name.rstrip("/")
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
    return removed
