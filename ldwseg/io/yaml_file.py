"""Reading a YAML config file, with one clear error for every way it can be unreadable."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError

__all__ = ["read_yaml"]


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
