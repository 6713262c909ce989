"""Reading a YAML config file, with one clear error for every way it can be unreadable."""

from __future__ import annotations

import math
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError

__all__ = ["coerce_value", "read_yaml"]


def read_yaml(path: Path) -> Any:
    """The parsed content of a YAML config file; every way it can be unreadable is a :class:`ConfigError`."""
    if path.is_dir():
        raise ConfigError(f"config file {path} is a folder; expected a YAML file such as configs/synthetic.yaml")
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist; the bundled ones are in configs/")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not a text file (not UTF-8); expected a YAML file") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path} ({exc.strerror or exc}); check its permissions") from None
    try:
        return yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"config file {path} is not valid YAML{where}: {problem}; fix the syntax there") from None


def coerce_value(value: Any, hint: Any, name: str, source: str) -> Any:
    """``value`` (as YAML read it) checked against a config field's type hint (``int``, ``float``, ``str``, ``bool``, ``X | None``)."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        hint = next(a for a in args if a is not type(None))
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if hint is float and isinstance(value, str):
        try:
            value = float(value)  # YAML 1.1 reads "1e-3" (no dot) as a string
        except ValueError:
            pass
    if hint is float and isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigError(f"{source}: {name} must be a finite number, got {value!r}")
        return value
    if hint is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    ok = isinstance(value, hint) and not (hint is int and isinstance(value, bool))
    if not ok:
        raise ConfigError(
            f"{source}: {name} must be of type {getattr(hint, '__name__', hint)}, got {value!r} ({type(value).__name__})"
        )
    return value
