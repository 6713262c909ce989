"""What a run trains and what ``--resume`` restores of it: :class:`TrainingState`.

The network, its optimizer, the learning-rate schedule, the moving average of the weights
(``train.ema_decay``) and the fp16 loss scaler belong together: every one of them moves at
every step, and a resumed run must find them all where the stopped one left them. One
object carries them through the training loop, the saver and the resume, and turns them
into one plain ``state_dict`` (tensors, numbers, lists: what ``torch.load(weights_only=True)``
reads back) and back.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError
from .ema import WeightAverage, delivered

__all__ = ["TrainingState", "unwrap"]

_OWN_SETTINGS = "resume with the run's own settings (its config.yaml) or start a new run in another --out"


def unwrap(model: nn.Module) -> nn.Module:
    """The network inside a DDP (``.module``) or compiled (``._orig_mod``) wrapper."""
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            return model
        model = inner


@dataclass
class TrainingState:
    """The network and everything that trains it (see the module docstring).

    ``model`` is the bare network, never a DDP or compiled wrapper; ``ema`` and ``scaler``
    are ``None`` when the run keeps no average or trains in bf16/float32.
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    ema: WeightAverage | None = None
    scaler: torch.amp.GradScaler | None = None

    @property
    def delivered(self) -> nn.Module:
        """The network the run validates and saves: the weight average when there is one."""
        return delivered(self.model, self.ema)

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "ema": None if self.ema is None else self.ema.state_dict(),
            "scaler": None if self.scaler is None else self.scaler.state_dict(),
        }

    def load_state_dict(self, stored: dict[str, Any], *, path: Path) -> None:
        """Load what :meth:`state_dict` saved; every mismatch is a :class:`CheckpointError` naming ``path``."""
        _load_weights(path, self.model, stored.get("model"))
        _load_average(path, self.ema, stored.get("ema"))
        try:
            self.optimizer.load_state_dict(stored["optimizer"])
            self.scheduler.load_state_dict(stored["scheduler"])
        except (KeyError, ValueError) as err:
            raise CheckpointError(
                f"{path} holds an optimizer state that does not fit this model ({err}); {_OWN_SETTINGS}"
            ) from err
        if self.scaler is not None and stored.get("scaler"):
            self.scaler.load_state_dict(stored["scaler"])


def _load_weights(path: Path, model: nn.Module, stored: Any) -> None:
    """Load the weights kept in a training state, naming the first key that does not fit."""
    current = model.state_dict()
    if not isinstance(stored, dict):
        raise CheckpointError(f"{path} has no model weights; it was not written by this version of ldwseg")
    for name, tensor in current.items():
        found = stored.get(name)
        if not isinstance(found, torch.Tensor) or found.shape != tensor.shape:
            what = "is missing" if found is None else f"has shape {tuple(getattr(found, 'shape', ()))}"
            raise CheckpointError(
                f"{path} does not fit the model: {name} {what}, the model needs {tuple(tensor.shape)}; {_OWN_SETTINGS}"
            )
    extra = sorted(set(stored) - set(current))
    if extra:
        raise CheckpointError(
            f"{path} does not fit the model: it has {extra[0]} (and {len(extra) - 1} more keys) that the model "
            f"lacks; {_OWN_SETTINGS}"
        )
    model.load_state_dict(stored)


def _load_average(path: Path, ema: WeightAverage | None, stored: Any) -> None:
    """Load the saved weight average; a run resumes with the averaging it was started with."""
    if (ema is None) != (stored is None):
        had = "with" if stored is not None else "without"
        raise CheckpointError(
            f"{path} was saved {had} a weight average (train.ema_decay) but this run is set up "
            f"{'without' if ema is None else 'with'} one; resume with the run's own settings (its config.yaml)"
        )
    if ema is not None:
        _load_weights(path, ema.averaged, stored)
