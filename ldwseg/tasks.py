"""What differs between tasks: data, output channels, loss and validation score."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from torch import Tensor, nn
from torch.utils.data import Dataset

from .config import Config

__all__ = ["TaskData", "Task", "get_task"]


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
    score: str  # key of the validation result that decides the best checkpoint (higher is better)

    def data(self, cfg: Config) -> TaskData: ...

    def criterion(self, cfg: Config) -> Callable[[Tensor, Tensor], Tensor]: ...

    def evaluate(self, model: nn.Module, loader, *, device, amp: str, channels_last: bool, data: TaskData) -> dict: ...


def get_task(name: str) -> Task:
    if name == "seg":
        from .seg.task import SegmentationTask

        return SegmentationTask()
    if name == "recon":
        from .recon.task import ReconstructionTask

        return ReconstructionTask()
    raise ValueError(f"unknown task {name!r}; choose seg or recon")
