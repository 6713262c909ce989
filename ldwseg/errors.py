"""User-facing errors. The CLI prints each as one line and exits non-zero.

Raise these (never ``assert``) for problems a user can fix; the message says what was
expected, what was found, and what to do.
"""

from __future__ import annotations

__all__ = ["LDWSegError", "ConfigError", "DataError", "CheckpointError"]


class LDWSegError(Exception):
    """Base class of the errors that ldwseg reports to users as one clear line."""


class ConfigError(LDWSegError, ValueError):
    """A configuration file, key or value is invalid."""


class DataError(LDWSegError, ValueError):
    """A data set, file or sample cannot be used."""


class CheckpointError(LDWSegError, ValueError):
    """A checkpoint cannot be read, is unsafe, or does not fit the model or task."""
