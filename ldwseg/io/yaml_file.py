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
        raise ConfigError(
            f"config file {path} does not exist; the example configs are in the configs/ folder of the "
            "ldwseg repository (a source checkout), not in the installed package"
        )
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
    """``value`` (as YAML read it) checked against a config field's type hint (``int``, ``float``, ``str``,
    ``bool``, ``list[float]``, or a union of these with ``None``: the first arm that accepts it)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        arms = [a for a in args if a is not type(None)]
        for arm in arms[:-1]:
            try:
                return coerce_value(value, arm, name, source)
            except ConfigError:
                continue
        try:
            return coerce_value(value, arms[-1], name, source)
        except ConfigError:
            if len(arms) == 1:
                raise
            shown = " or ".join(_type_name(a) for a in arms)
            raise ConfigError(f"{source}: {name} must be {shown}, got {value!r} ({type(value).__name__})") from None
    if typing.get_origin(hint) is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise ConfigError(f"{source}: {name} must be a list of {_type_name(item)}, got {value!r}")
        return [coerce_value(v, item, f"{name}[{i}]", source) for i, v in enumerate(value)]
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
            f"{source}: {name} must be of type {_type_name(hint)}, got {value!r} ({type(value).__name__})"
        )
    return value


def _type_name(hint: Any) -> str:
    if typing.get_origin(hint) is list:
        return f"list of {_type_name(typing.get_args(hint)[0])}"
    return getattr(hint, "__name__", str(hint))
