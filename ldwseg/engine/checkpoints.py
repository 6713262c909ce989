"""Run checkpoints: weights + metadata in safetensors, training state beside them.

``best.safetensors`` / ``last.safetensors`` hold the weights, the task, the resolved config
and the data set description, so ``evaluate``, ``predict``, ``filters``, ``export`` and
``reconstruct`` need only the file: the stored ``model`` section rebuilds the network
(the UNet or an smp arch) through :func:`~ldwseg.models.build.build_network`, as training did.
``last.state.pt`` holds everything ``--resume`` needs in one file, written atomically:
the weights again, the optimizer, scheduler and RNG states, where the run stopped
(epoch, steps done in it, the epoch's running loss sums of every rank) and the
``torchrun`` run it belongs to (``TORCHELASTIC_RUN_ID``). One file means a crash can
never pair new weights with an old optimizer state. It is loaded with
``torch.load(weights_only=True)`` and never unpickles code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..config import Config
from ..errors import CheckpointError
from ..io.training_state import capture_rng_state, load_training_state, restore_rng_state, save_training_state
from ..io.weights import load_weights, read_metadata, save_weights
from ..models.build import build_network
from ..provenance import environment
from ..task_kinds import TASK_KINDS
from ..version import __version__
from .run_folder import RunFolder
from .state import TrainingState, unwrap

__all__ = [
    "TASK_NAMES", "ResumePoint", "stored_palette", "save_run_checkpoint", "save_resume_state", "read_resume_state",
    "apply_resume_state", "load_run_model",
]  # fmt: skip

TASK_NAMES = {name: kind.title for name, kind in TASK_KINDS.items()}
_STATE_FORMAT = 3


def save_run_checkpoint(
    path: Path, model: nn.Module, cfg: Config, dataset: dict[str, Any], *, epoch: int, metrics: dict
) -> None:
    """Weights plus everything ``evaluate``/``predict`` need, written atomically."""
    meta = {
        "task": cfg.train.task,
        "ldwseg_version": __version__,
        "config": cfg.to_dict(),
        "dataset": dataset,
        "epoch": epoch,
        # strict JSON: an undefined score (the IoU of a class absent from targets and predictions) is null
        "metrics": {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in metrics.items()},
        "environment": environment(),
    }
    save_weights(path, unwrap(model), metadata=meta)


@dataclass
class ResumePoint:
    """Where a run continues: ``epoch`` (0-based) after ``step`` of its batches.

    ``sums`` holds this rank's running loss sums over those steps (``None`` at an epoch
    boundary), ``rank_sums`` those of every rank under ``torchrun`` (the epoch's mean loss
    is reduced over ranks at its end); ``best`` the best validation score so far and its epoch.
    """

    epoch: int = 0
    step: int = 0
    sums: dict[str, float] | None = None
    best: dict[str, Any] = field(default_factory=lambda: {"score": -float("inf"), "epoch": -1})
    rank_sums: list[dict[str, float]] | None = None


def save_resume_state(
    path: Path, state: TrainingState, point: ResumePoint, *, task: str, run_id: str | None = None
) -> None:
    """Everything ``--resume`` needs to continue exactly at ``point``, in one atomic file.

    ``state``: the network, optimizer, schedule, weight average and loss scaler
    (:class:`~ldwseg.engine.state.TrainingState`). ``run_id``: the ``torchrun`` run
    (``TORCHELASTIC_RUN_ID``) writing it, which a restart of that run continues by itself.
    """
    save_training_state(
        path,
        {
            "format": _STATE_FORMAT,
            "task": task,
            **state.state_dict(),
            "epoch": point.epoch,
            "step": point.step,
            "sums": point.sums,
            "rank_sums": point.rank_sums,
            "best": point.best,
            "rng": capture_rng_state(),
            "run_id": run_id,
        },
    )


_NO_METADATA = (
    "has no ldwseg metadata (task, config, classes): it was not written by ldwseg's training; "
    "use the best.safetensors or last.safetensors of an ldwseg run"
)


def _check_task(path: Path | str, meta: dict, task: str) -> None:
    found = meta.get("task")
    if found is None:
        raise CheckpointError(f"{path} {_NO_METADATA}")
    if found != task:
        raise CheckpointError(
            f"{path} is a {TASK_NAMES.get(found, repr(found))} checkpoint, but this needs a "
            f"{TASK_NAMES[task]} ('{task}') checkpoint"
        )


def read_resume_state(out: Path, *, task: str) -> dict[str, Any]:
    """``out/last.state.pt``, checked: present, of ``task`` and of this format, its ``path`` added for messages.

    Plain data (tensors, numbers, lists, dicts), so rank 0 can send it to the other ranks,
    which load it with :func:`apply_resume_state`. The state file alone decides where the
    run goes on (it is written before ``last.safetensors``, which a crash may leave one
    checkpoint behind); both must be of ``task``.
    """
    weights, state_path = RunFolder(out).last, RunFolder(out).state
    if not state_path.exists():
        raise CheckpointError(
            f"--resume needs {state_path.name} in {out}, but it is missing (no checkpoint was saved there yet); "
            "start without --resume or point --out at the run to continue"
        )
    if weights.exists():
        _check_task(weights, read_metadata(weights), task)
    state = load_training_state(state_path)
    _check_task(state_path, state, task)
    if state.get("format") != _STATE_FORMAT:
        raise CheckpointError(
            f"{state_path} was written by an older ldwseg (no 'format': {_STATE_FORMAT} in it); "
            "continue that run with the version that started it, or start a new run"
        )
    state["path"] = str(state_path)
    return state


def apply_resume_state(stored: dict[str, Any], state: TrainingState, *, rank: int = 0, world: int = 1) -> ResumePoint:
    """Load a :func:`read_resume_state` into the training ``state`` and the RNGs; returns where to go on.

    Rank ``rank`` of ``world`` takes its own loss sums when the state was saved by as many
    ranks; otherwise rank 0 takes the saved ones and the other ranks start from zero.
    """
    state.load_state_dict(stored, path=Path(stored["path"]))
    restore_rng_state(stored["rng"])
    rank_sums = stored.get("rank_sums")
    if rank_sums is not None and len(rank_sums) == world:
        sums = rank_sums[rank]
    else:
        sums = stored.get("sums") if rank == 0 else None
    return ResumePoint(
        epoch=int(stored["epoch"]), step=int(stored["step"]), sums=None if sums is None else dict(sums),
        best=dict(stored["best"]), rank_sums=None if rank_sums is None else [dict(r) for r in rank_sums],
    )  # fmt: skip


def stored_palette(path: Path | str, meta: dict[str, Any]) -> np.ndarray:
    """The class colours of a segmentation checkpoint, ``uint8 (K, 3)``, checked."""
    num_classes = _out_channels(path, meta)
    palette = meta["dataset"].get("palette")
    rows = palette if isinstance(palette, list) else []
    valid = len(rows) >= num_classes and all(
        isinstance(row, list) and len(row) == 3
        and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in row)
        for row in rows
    )  # fmt: skip
    if not valid:
        raise CheckpointError(
            f"{path} has no valid dataset.palette in its metadata (expected {num_classes} RGB triples in 0..255, "
            f"got {str(palette)[:60]}); use a checkpoint written by ldwseg's training"
        )
    return np.asarray(rows, dtype=np.uint8)


def _out_channels(path: Path | str, meta: dict[str, Any]) -> int:
    """The network's output channels: one map per class, or the image it was given, channel for channel."""
    task = meta.get("task")
    if task is None:
        raise CheckpointError(f"{path} {_NO_METADATA}")
    kind = TASK_KINDS.get(task)
    if kind is None:
        raise CheckpointError(
            f"{path} is a {task!r} checkpoint; ldwseg rebuilds the models of the tasks {', '.join(TASK_KINDS)} only"
        )
    if kind.predicts_image:
        config = meta.get("config")
        model = config.get("model") if isinstance(config, dict) else None
        key, count = "config.model.in_channels", model.get("in_channels", 3) if isinstance(model, dict) else 3
    else:
        dataset = meta.get("dataset")
        key, count = "dataset.num_classes", dataset.get("num_classes") if isinstance(dataset, dict) else None
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise CheckpointError(
            f"{path} is a {kind.title} checkpoint but its metadata has no valid {key} (got {count!r}); use a "
            "checkpoint written by ldwseg's training"
        )
    return count


def load_run_model(
    path: str | Path, device: torch.device | str = "cpu", *, task: str | None = None
) -> tuple[nn.Module, dict, Config]:
    """Rebuild the network a checkpoint describes and load its weights (safely).

    The network is built by :func:`~ldwseg.models.build.build_network` from the stored
    config, without downloading any pretrained encoder weights (the checkpoint's replace
    them). ``task`` (``"seg"`` or ``"recon"``) makes a checkpoint of the other task an
    error; ``None`` accepts both. Returns the model in eval mode, the metadata and the config.
    """
    meta = read_metadata(path)
    if task is not None:
        _check_task(path, meta, task)
    out_channels = _out_channels(path, meta)
    config = meta.get("config")
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict):
        raise CheckpointError(f"{path} has no stored config (metadata 'config'); use a checkpoint written by ldwseg")
    cfg = Config.from_dict(config, source=f"{path} (stored config)")
    model = build_network(cfg.model, cfg.model.in_channels, out_channels, pretrained=False)
    load_weights(path, model)
    model.checkpoint_metadata = meta  # what save_pretrained writes beside the weights (ldwseg.models.sharing)
    return model.to(device).eval(), meta, cfg
