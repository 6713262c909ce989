"""Run checkpoints: weights + metadata in safetensors, training state beside them.

``best.safetensors`` / ``last.safetensors`` hold the weights, the task, the resolved config
and the data set description, so ``evaluate``, ``predict`` and ``reconstruct`` need only
the file.
``last.state.pt`` holds optimizer, scheduler, epoch and RNG states for ``--resume``; it
is loaded with ``torch.load(weights_only=True)`` and never unpickles code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import __version__
from .checkpoint import (
    capture_rng_state,
    load_training_state,
    load_weights,
    read_metadata,
    restore_rng_state,
    save_training_state,
    save_weights,
)
from .config import Config
from .errors import CheckpointError
from .models import UNet, build_unet

__all__ = ["TASK_NAMES", "save_run_checkpoint", "save_resume_state", "restore_resume_state", "load_run_model"]

TASK_NAMES = {"seg": "segmentation", "recon": "reconstruction"}


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") else model


def save_run_checkpoint(path: Path, model: nn.Module, cfg: Config, dataset: dict[str, Any], *, epoch: int, metrics: dict) -> None:
    """Weights plus everything ``evaluate``/``predict`` need, written atomically."""
    meta = {
        "task": cfg.train.task,
        "ldwseg_version": __version__,
        "config": cfg.to_dict(),
        "dataset": dataset,
        "epoch": epoch,
        "metrics": metrics,
    }
    save_weights(path, _unwrap(model), metadata=meta)


def save_resume_state(path: Path, optimizer, scheduler, *, epoch: int, best: dict) -> None:
    save_training_state(
        path,
        {
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "epoch": epoch,
            "best": best,
            "rng": capture_rng_state(),
        },
    )


def _check_task(path: Path | str, meta: dict, task: str) -> None:
    found = meta.get("task")
    if found != task:
        raise CheckpointError(
            f"{path} is a {TASK_NAMES.get(found, repr(found))} checkpoint, but this needs a "
            f"{TASK_NAMES[task]} ('{task}') checkpoint"
        )


def restore_resume_state(out: Path, model: nn.Module, optimizer, scheduler, *, task: str) -> tuple[int, dict]:
    """Load ``out/last.*``; returns the next epoch and the best-so-far record."""
    weights, state_path = out / "last.safetensors", out / "last.state.pt"
    if not weights.exists() or not state_path.exists():
        raise CheckpointError(
            f"--resume needs {weights.name} and {state_path.name} in {out}, but they are missing; "
            "start without --resume or point --out at the run to continue"
        )
    _check_task(weights, read_metadata(weights), task)
    load_weights(weights, _unwrap(model))
    state = load_training_state(state_path)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    restore_rng_state(state["rng"])
    return int(state["epoch"]) + 1, dict(state["best"])


def _out_channels(path: Path | str, meta: dict[str, Any]) -> int:
    """Segmentation predicts one map per class; reconstruction predicts the RGB image."""
    task = meta.get("task")
    if task == "recon":
        return 3
    if task == "seg":
        dataset = meta.get("dataset")
        num_classes = dataset.get("num_classes") if isinstance(dataset, dict) else None
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise CheckpointError(
                f"{path} is a segmentation checkpoint but its metadata has no valid dataset.num_classes "
                f"(got {num_classes!r}); use a checkpoint written by ldwseg's training"
            )
        return num_classes
    raise CheckpointError(
        f"{path} is a {task!r} checkpoint; ldwseg can rebuild the model of a 'seg' or 'recon' checkpoint only"
    )


def load_run_model(
    path: str | Path, device: torch.device | str = "cpu", *, task: str | None = None
) -> tuple[UNet, dict, Config]:
    """Rebuild the UNet a checkpoint describes and load its weights (safely).

    ``task`` (``"seg"`` or ``"recon"``) makes a checkpoint of the other task an error;
    ``None`` accepts both. Returns the model in eval mode, the metadata and the config.
    """
    meta = read_metadata(path)
    if task is not None:
        _check_task(path, meta, task)
    out_channels = _out_channels(path, meta)
    config = meta.get("config")
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict):
        raise CheckpointError(f"{path} has no stored config (metadata 'config'); use a checkpoint written by ldwseg")
    cfg = Config.from_dict(config, source=f"{path} (stored config)")
    model = build_unet(cfg.model, 3, out_channels)
    load_weights(path, model)
    return model.to(device).eval(), meta, cfg
