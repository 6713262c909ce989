"""The whole configuration, and how it is put together: defaults, the task's defaults, a
YAML file, then ``section.field=value`` overrides; unknown keys and wrong types are errors.
"""

from __future__ import annotations

import copy
import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError, check_choice
from ..io.atomic import atomic_write
from ..io.yaml_file import coerce_value, read_yaml
from .sections import MAX_BATCH_PIXELS, TASK_CHOICES, DataConfig, ModelConfig, OptimConfig, TrainConfig

__all__ = ["Config", "compose_config", "apply_overrides"]


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def validate(self) -> Config:
        for section in (self.model, self.data, self.optim, self.train):
            section.validate()
        if self.data.mean is not None and len(self.data.mean) != self.model.in_channels:
            raise ConfigError(
                f"data.mean and data.std give {len(self.data.mean)} channel(s) but model.in_channels is "
                f"{self.model.in_channels}; give one value per image channel"
            )
        pixels = self.train.batch_size * self.data.crop_size**2
        if pixels > MAX_BATCH_PIXELS:
            raise ConfigError(
                f"train.batch_size={self.train.batch_size} crops of {self.data.crop_size}x{self.data.crop_size} are "
                f"{pixels:.2e} pixels per batch, more than the {MAX_BATCH_PIXELS:.2e} ldwseg allows (their "
                "activations would exhaust memory); lower the batch size or data.crop_size"
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(
        cls, raw: dict[str, Any], *, source: str = "config", base: Config | None = None, validate: bool = True
    ) -> Config:
        """Build and validate from nested dicts (on top of ``base``); unknown keys and wrong types are errors.

        ``validate=False`` leaves the checks of values and their combinations to the caller
        (for a config that overrides will still change); a failed check names ``source``.
        """
        if not isinstance(raw, dict):
            raise ConfigError(f"{source} must be a mapping of sections, got {type(raw).__name__}")
        cfg = copy.deepcopy(base) if base is not None else cls()
        for section_name, values in raw.items():
            section = _section(cfg, section_name, source)
            if values is None:
                continue
            if not isinstance(values, dict):
                raise ConfigError(f"{source}: section {section_name!r} must be a mapping, got {values!r}")
            for key, value in values.items():
                _set_field(section, section_name, key, value, source)
        if not validate:
            return cfg
        try:
            return cfg.validate()
        except ConfigError as exc:
            if source == "config":
                raise
            raise ConfigError(f"{source}: {exc}") from None

    def save(self, path: str | Path) -> None:
        """Write the config as YAML, atomically: ``path`` holds the earlier file or this one, never a part of it.

        Raises:
            WriteFailed: the disk is full, read-only or failing (see :func:`~ldwseg.io.atomic_write`).
        """
        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        atomic_write(path, lambda temp: temp.write_text(text, encoding="utf-8"))


def _section(cfg: Config, name: str, source: str):
    names = [f.name for f in dataclasses.fields(cfg)]
    if name not in names:
        raise ConfigError(f"{source}: unknown section {name!r}; valid sections are {', '.join(names)}")
    return getattr(cfg, name)


def _field_types(section) -> dict[str, Any]:
    return typing.get_type_hints(type(section))


def _set_field(section, section_name: str, key: str, value: Any, source: str) -> None:
    hints = _field_types(section)
    if key not in hints:
        raise ConfigError(
            f"{source}: unknown key {section_name}.{key}; valid keys are "
            + ", ".join(f"{section_name}.{k}" for k in hints)
        )
    setattr(section, key, coerce_value(value, hints[key], f"{section_name}.{key}", source))


def apply_overrides(cfg: Config, overrides: list[str] | dict[str, Any], *, validate: bool = True) -> Config:
    """Apply ``section.field=value`` strings (values parsed as YAML) or a ``{key: value}`` dict, then validate."""
    for dotted, value in _override_items(overrides):
        if "." not in dotted:
            raise ConfigError(f"override {dotted!r} must name section.field, e.g. model.base_width=16")
        section_name, key = dotted.split(".", 1)
        _set_field(_section(cfg, section_name, "override"), section_name, key, value, "override")
    return cfg.validate() if validate else cfg


def _override_items(overrides: list[str] | dict[str, Any]) -> list[tuple[str, Any]]:
    return list(overrides.items()) if isinstance(overrides, dict) else [_split_override(o) for o in overrides]


def _split_override(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.field=value, e.g. train.epochs=5")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def _task_of(raw: dict[str, Any], overrides: list[str] | dict[str, Any]) -> str:
    task = dict(_override_items(overrides)).get("train.task")
    if task is None and isinstance(raw.get("train"), dict):
        task = raw["train"].get("task")
    task = task or "seg"
    check_choice("train.task", task, TASK_CHOICES)
    return task


def compose_config(
    path: str | Path | None = None,
    overrides: list[str] | dict[str, Any] | None = None,
    *,
    task_defaults: Mapping[str, Mapping[str, Any]],
    validate: bool = True,
) -> Config:
    """Defaults, the task's defaults, the YAML file (if any), then the overrides; validated once, at the end.

    ``task_defaults`` maps each task name to what it changes (``{"section.field": value}``);
    :func:`ldwseg.tasks.load_config` passes every task's own. ``validate=False`` returns the
    unchecked result, for a caller that applies more overrides.
    """
    raw: dict[str, Any] = {}
    source = "config"
    if path is not None:
        path = Path(path)
        raw = read_yaml(path)
        source = str(path)
    overrides = overrides or []
    base = Config()
    for dotted, value in task_defaults[_task_of(raw if isinstance(raw, dict) else {}, overrides)].items():
        section, key = dotted.split(".", 1)
        _set_field(getattr(base, section), section, key, value, "task defaults")
    cfg = Config.from_dict(raw, source=source, base=base, validate=False)
    return apply_overrides(cfg, overrides, validate=validate)
