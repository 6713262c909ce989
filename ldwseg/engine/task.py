"""The task protocol of the training loop: what differs between tasks (data, output channels, loss, score)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from torch import Tensor, nn
from torch.utils.data import Dataset

from ..config import Config
from .precision import Precision

__all__ = ["TaskData", "Task"]


@dataclass
class TaskData:
    """Train/val data of a task, the model's output channels and the data record kept in checkpoints."""

    train: Dataset
    val: Dataset
    out_channels: int
    record: dict[str, Any]
    collate: Callable | None = None


class Task(Protocol):
    name: str
    label: str  # what the score is called in messages, e.g. "mIoU"
    score: str  # key of the validation result that decides the best checkpoint (higher is better)
    defaults: dict[str, Any]  # what the task changes from the config defaults, as ``section.field: value``

    def data(self, cfg: Config) -> TaskData: ...

    def criterion(self, cfg: Config, data: TaskData | None = None) -> Callable[[Tensor, Tensor], Tensor]:
        """The task loss of ``cfg``; ``data`` (``None`` where no data is at hand, e.g. a cost probe) may refine it."""
        ...

    def evaluate(self, model: nn.Module, loader, *, precision: Precision, data: TaskData) -> dict:
        """Validation results over ``loader``, reduced over all ranks; :attr:`score` is one of its keys."""
        ...
