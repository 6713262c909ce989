"""User-facing errors. The CLI prints each as one line and exits non-zero.

Raise these (never ``assert``) for problems a user can fix; the message says what was
expected, what was found, and what to do. The CLI exits with the error's ``exit_code``
(2 unless a subclass says otherwise).
"""

from __future__ import annotations

__all__ = ["LDWSegError", "ConfigError", "DataError", "CheckpointError", "Interrupted"]


class LDWSegError(Exception):
    """Base class of the errors that ldwseg reports to users as one clear line."""

    exit_code: int = 2
    """The exit status of the ``ldwseg`` command that fails with this error."""


class ConfigError(LDWSegError, ValueError):
    """A configuration file, key or value is invalid."""


class DataError(LDWSegError, ValueError):
    """A data set, file or sample cannot be used."""


class CheckpointError(LDWSegError, ValueError):
    """A checkpoint cannot be read, is unsafe, or does not fit the model or task."""


class Interrupted(LDWSegError):
    """The user stopped a run (Ctrl-C, SIGINT or SIGTERM); the message says what was saved.

    The CLI prints the message and exits with :attr:`exit_code`: 130 as shells report
    for SIGINT by default, or the code given (143 for SIGTERM).
    """

    exit_code = 130

    def __init__(self, message: str = "interrupted", *, exit_code: int = 130) -> None:
        super().__init__(message)
        self.exit_code = exit_code
