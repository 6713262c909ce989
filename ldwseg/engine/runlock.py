"""One training run per output folder: an exclusive lock on ``<out>/.lock``.

The lock is an ``fcntl.flock`` on a file, so the operating system drops it when the
process ends in any way (``kill -9`` included) and a stale lock never blocks a new run.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ConfigError

__all__ = ["LOCK_NAME", "RunLock", "held_by_another_process"]

LOCK_NAME = ".lock"
"""The name of the lock file in a run's output folder."""


class RunLock:
    """Context manager holding ``<out>/.lock``; a second holder gets a :class:`ConfigError`."""

    def __init__(self, out: str | Path) -> None:
        self.path = Path(out) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise ConfigError(
                f"another ldwseg run (pid {holder}) is writing to {self.path.parent}; wait for it to finish, "
                "or choose another output folder (--out)"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            self.path.unlink(missing_ok=True)  # while still held, so no one locks a file about to vanish
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def held_by_another_process(lock: Path) -> bool:
    """Whether another process holds the ``flock`` on ``lock`` (a run writing to its folder).

    Asks by trying to take the lock, and drops it at once when that succeeds.
    """
    try:
        import fcntl
    except ImportError:  # not POSIX: no flock, no holder to ask
        return False
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # also drops the lock just taken
    return False
