"""What each task is, as plain facts every layer may read: its name, its losses, its output.

The training loop runs a :class:`~ldwseg.engine.task.Task` (:mod:`ldwseg.tasks` names the
concrete ones, which need the data sets and the models). The config, the checkpoints, the
export, the model card and the commands need only to know what a task is called and what
its network outputs; they read it here, so none of them branches on a task's name.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TASK_KINDS", "TaskKind", "task_kind"]


@dataclass(frozen=True)
class TaskKind:
    """The facts of one task.

    Attributes:
        name: its value of ``train.task``.
        title: what it is called in messages ("segmentation").
        description: its field, for a model card ("semantic segmentation").
        losses: the values of ``train.loss`` it takes, the default first.
        output: what its network outputs, the name of an exported model's output.
        predicts_image: the network outputs an image of the input's channels (else one map per class).
        folder_prefix: how its default output folder starts (``runs/<prefix><dataset>``).
    """

    name: str
    title: str
    description: str
    losses: tuple[str, ...]
    output: str
    predicts_image: bool
    folder_prefix: str


TASK_KINDS: dict[str, TaskKind] = {
    "seg": TaskKind(
        "seg", "segmentation", "semantic segmentation", ("ce", "ce+dice", "focal", "lovasz", "jaccard"), "logits",
        predicts_image=False, folder_prefix="",
    ),
    "recon": TaskKind(
        "recon", "reconstruction", "image reconstruction (autoencoding)", ("l1", "mse"), "reconstruction",
        predicts_image=True, folder_prefix="recon-",
    ),
}  # fmt: skip
"""Every task by its ``train.task`` name."""


def task_kind(name: str) -> TaskKind:
    """The task called ``name``; a ``KeyError`` names the valid ones (callers check user input first)."""
    if name not in TASK_KINDS:
        raise KeyError(f"unknown task {name!r}; the tasks are {', '.join(TASK_KINDS)}")
    return TASK_KINDS[name]
