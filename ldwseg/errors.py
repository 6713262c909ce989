"""User-facing errors. The CLI prints each as one line and exits non-zero.

Raise these (never ``assert``) for problems a user can fix; the message says what was
expected, what was found, and what to do. The CLI exits with the error's ``exit_code``
(2 unless a subclass says otherwise).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

__all__ = ["LDWSegError", "ConfigError", "DataError", "CheckpointError", "Interrupted", "WriteFailed", "check_choice"]


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


def check_choice(label: str, name: str, choices: Iterable[str]) -> str:
    """``name`` if it is one of ``choices``; else a :class:`ConfigError` listing them.

    ``label`` names the argument in the message (``"model.down"`` for a config field).
    """
    choices = tuple(choices)
    if name not in choices:
        raise ConfigError(f"{label}={name!r} is not valid; choose one of {', '.join(choices)}")
    return name


class Interrupted(LDWSegError):
    """The user stopped a run (Ctrl-C, SIGINT or SIGTERM); the message says what was saved.

    The message reads ``<stopped>; <advice>`` when there is advice on how to go on. The CLI
    prints it and exits with :attr:`exit_code`: 130 as shells report for SIGINT by default,
    or the code given (143 for SIGTERM).
    """

    exit_code = 130

    def __init__(self, stopped: str = "interrupted", *, exit_code: int = 130, advice: str | None = None) -> None:
        super().__init__(stopped if advice is None else f"{stopped}; {advice}")
        self.stopped, self.advice, self.exit_code = stopped, advice, exit_code

    def instead(self, *, advice: str) -> Interrupted:
        """The same stop, with how to go on as the caller knows it."""
        return Interrupted(self.stopped, exit_code=self.exit_code, advice=advice)


class WriteFailed(LDWSegError):
    """The operating system refused to write a file: no space left, a quota, a read-only file system, an I/O error.

    Raised by the atomic writers (:mod:`ldwseg.io.atomic`), so nothing half-written is left under
    the file's name. The message reads ``<reason> while writing <path>; <kept>; <advice>``, where
    ``kept`` says what survived. The CLI exits with 1 (the machine's problem), or 2 for a
    permission the user can fix.

    Attributes:
        errno: the operating system's error number.
        path: the file (or folder) that was being written.
        reason: the error in words ("no space left on the device").
        kept: what survived ("the earlier last.state.pt is intact").
        advice: how to go on.
    """

    exit_code = 1

    def __init__(self, reason: str, path: str | os.PathLike, *, errno: int, kept: str, advice: str,
                 exit_code: int = 1) -> None:  # fmt: skip
        super().__init__(f"{reason} while writing {path}; {kept}; {advice}")
        self.reason, self.path, self.errno, self.kept, self.advice = reason, os.fspath(path), errno, kept, advice
        self.exit_code = exit_code

    def instead(self, *, kept: str, advice: str) -> WriteFailed:
        """The same failure, with what survived and how to go on as the caller knows them."""
        return WriteFailed(self.reason, self.path, errno=self.errno, kept=kept, advice=advice, exit_code=self.exit_code)

    def __reduce__(self) -> tuple:  # pickled whole (torch.distributed sends errors between ranks)
        return _rebuild_write_failed, (self.reason, self.path, self.errno, self.kept, self.advice, self.exit_code)


def _rebuild_write_failed(reason: str, path: str, errno: int, kept: str, advice: str, exit_code: int) -> WriteFailed:
    return WriteFailed(reason, path, errno=errno, kept=kept, advice=advice, exit_code=exit_code)
