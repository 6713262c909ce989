"""Help texts that show the effective defaults: ``{section.field}`` in an option's help.

An option's help may name a config field as ``{train.epochs}`` (or ``{task.score}``); when
help is shown, that becomes the value of a default :class:`~ldwseg.config.Config` plus any
task that changes it ("40; 80 for --task recon"). The values are read only when help is
printed, since reading the task table loads every task's code.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import typer
from typer.core import TyperCommand

__all__ = ["DefaultsTyper", "choices", "config_default"]

_CHOICES = re.compile(r"\{choices:(\w+)\}")
"""How option help names a registry whose entries ``--help`` lists: ``{choices:down}`` (see :func:`choices`)."""

_CONFIG_FIELD = re.compile(r"\{((?:model|data|optim|train|task)\.[a-z_]+)\}")
"""How option help names a config field (or a task attribute: ``{task.score}``) whose effective default
``--help`` shows: ``{train.epochs}``."""


def _shown(value: Any) -> str:
    """A config value as it is written after ``--set section.field=``."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    return f"{value:g}" if isinstance(value, float) else str(value)


def config_default(key: str) -> str:
    """The effective default of the config field ``key`` (``"train.epochs"``), as ``--help`` shows it.

    The value of :class:`~ldwseg.config.Config`, then that of each task whose own defaults
    (:data:`ldwseg.tasks.TASKS`) differ: ``"40; 80 for --task recon"``. ``"task.<attribute>"``
    gives an attribute of the tasks the same way (``"task.score"``: ``"miou; psnr for --task recon"``).
    """
    from ..config import Config
    from ..tasks import TASKS

    section, name = key.split(".", 1)
    cfg = Config()
    if section == "task":
        base = getattr(TASKS[cfg.train.task], name)
        own = [(task, getattr(cls, name)) for task, cls in TASKS.items()]
    else:
        base = getattr(getattr(cfg, section), name)
        own = [(task, cls.defaults[key]) for task, cls in TASKS.items() if key in cls.defaults and key != "train.task"]
    return "; ".join([_shown(base), *(f"{_shown(v)} for --task {task}" for task, v in own if v != base)])


def _by_kind(table: dict[str, type]) -> str:
    """A block registry's names grouped by the module that defines them (``controls: avgpool, conv, ...``)."""
    groups: dict[str, list[str]] = {}
    for name, block in table.items():
        groups.setdefault(block.__module__.rsplit(".", 1)[-1], []).append(name)
    return "; ".join(f"{kind}: {', '.join(names)}" for kind, names in groups.items())


def choices(name: str) -> str:
    """The valid values of an option, read from the registry that defines them (``{choices:<name>}`` in help).

    A new block, data set, arch, constraint or loss appears in ``--help`` without an edit here.
    """
    from ..config import AMP_CHOICES, OPTIMIZER_CHOICES
    from ..datasets import DATASETS
    from ..models import DOWNSAMPLERS, UPSAMPLERS
    from ..models.build import ARCHS
    from ..pooling import CONSTRAINTS
    from ..task_kinds import TASK_KINDS

    listed = {
        "down": lambda: _by_kind(DOWNSAMPLERS),
        "up": lambda: _by_kind(UPSAMPLERS),
        "dataset": lambda: ", ".join(DATASETS) + "; for --task recon also photos (or any of them: its images)",
        "arch": lambda: ", ".join(ARCHS),
        "constraint": lambda: ", ".join(CONSTRAINTS),
        "task": lambda: ", ".join(f"{k} ({v.title})" for k, v in TASK_KINDS.items()),
        "loss": lambda: "; ".join(f"{k}: {', '.join(v.losses)}" for k, v in TASK_KINDS.items()),
        "amp": lambda: ", ".join(AMP_CHOICES),
        "optimizer": lambda: ", ".join(OPTIMIZER_CHOICES),
    }
    if name not in listed:
        raise KeyError(f"no registry named {name!r} for help text; known: {', '.join(listed)}")
    return listed[name]()


class _DefaultsHelp(TyperCommand):
    """A command whose help may name config fields as ``{section.field}``: ``--help`` shows their
    :func:`config_default` there.

    They are filled in when the help is shown, not at import: the task defaults need
    :mod:`ldwseg.tasks`, whose import takes seconds that ``ldwseg --version`` should not wait.
    """

    def format_help(self, ctx, formatter) -> None:
        def fill(text: str | None) -> str | None:
            text = text and _CHOICES.sub(lambda m: choices(m.group(1)), text)
            return text and _CONFIG_FIELD.sub(lambda m: config_default(m.group(1)), text)

        self.help = fill(self.help)
        for param in self.params:
            if hasattr(param, "help"):
                param.help = fill(param.help)
        super().format_help(ctx, formatter)


class DefaultsTyper(typer.Typer):
    """The app whose commands show the defaults of the config fields their help names (:class:`_DefaultsHelp`)."""

    def command(self, *args: Any, cls: type[TyperCommand] | None = None, **kwargs: Any) -> Callable:
        return super().command(*args, cls=cls or _DefaultsHelp, **kwargs)
