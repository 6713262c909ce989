"""Segmentation checkpoints: weights + metadata in safetensors, training state beside them.

``best.safetensors`` / ``last.safetensors`` hold the weights, the resolved config and the
data set description, so ``evaluate`` and ``predict`` need only the file.
``last.state.pt`` holds optimizer, scheduler, epoch and RNG states for ``--resume``; it
is loaded with ``torch.load(weights_only=True)`` and never unpickles code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import __version__
from ..checkpoint import (
    capture_rng_state,
    load_training_state,
    load_weights,
    read_metadata,
    restore_rng_state,
    save_training_state,
    save_weights,
)
from ..config import Config
from ..errors import CheckpointError
from ..models import UNet, build_unet

__all__ = ["save_run_checkpoint", "save_resume_state", "restore_resume_state", "load_segmentation_model"]

TASK = "seg"


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") else model


def save_run_checkpoint(path: Path, model: nn.Module, cfg: Config, dataset: dict[str, Any], *, epoch: int, metrics: dict) -> None:
    """Weights plus everything ``evaluate``/``predict`` need, written atomically."""
    meta = {
        "task": TASK,
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


def restore_resume_state(out: Path, model: nn.Module, optimizer, scheduler) -> tuple[int, dict]:
    """Load ``out/last.*``; returns the next epoch and the best-so-far record."""
    weights, state_path = out / "last.safetensors", out / "last.state.pt"
    if not weights.exists() or not state_path.exists():
        raise CheckpointError(
            f"--resume needs {weights.name} and {state_path.name} in {out}, but they are missing; "
            "start without --resume or point --out at the run to continue"
        )
    meta = read_metadata(weights)
    if meta.get("task") != TASK:
        raise CheckpointError(f"{weights} is a {meta.get('task')!r} checkpoint, not a segmentation one")
    load_weights(weights, _unwrap(model))
    state = load_training_state(state_path)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    restore_rng_state(state["rng"])
    return int(state["epoch"]) + 1, dict(state["best"])


def load_segmentation_model(path: str | Path, device: torch.device) -> tuple[UNet, dict, Config]:
    """Rebuild the UNet a checkpoint describes and load its weights (safely)."""
    meta = read_metadata(path)
    task = meta.get("task")
    if task != TASK:
        raise CheckpointError(
            f"{path} is a {task!r} checkpoint, but this command needs a segmentation ('seg') checkpoint"
        )
    cfg = Config.from_dict(meta["config"], source=f"{path} (stored config)")
    model = build_unet(cfg.model, 3, int(meta["dataset"]["num_classes"]))
    load_weights(path, model)
    return model.to(device).eval(), meta, cfg
