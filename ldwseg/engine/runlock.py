"""One training run per output folder: an exclusive lock on ``<out>/.lock``.

The lock is a :class:`filelock.FileLock` (``flock`` on POSIX, ``LockFileEx`` on Windows),
so the operating system drops it when the process ends in any way (``kill -9`` included)
and a stale lock file never blocks a new run. The holder writes its pid into the file, for
the message that refuses a second run.
"""

from __future__ import annotations

import os
from pathlib import Path

from filelock import FileLock, Timeout

from ..errors import ConfigError, WriteFailed
from ..io.atomic import STORAGE_ERRORS, remedy

__all__ = ["LOCK_NAME", "RunLock", "held_by_another_process"]

LOCK_NAME = ".lock"
"""The name of the lock file in a run's output folder."""

# Windows locks byte 0 of the file, which no other process may then read: the pid starts after it.
_PID_OFFSET = 1


def _write_pid(fd: int) -> None:
    """Record this process in the lock file; ``fd`` is the lock's own descriptor, held."""
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, b"\n" + str(os.getpid()).encode())


def _holder(path: Path) -> str:
    """The pid the holder of ``path`` wrote, or ``"unknown"`` (not written yet, or unreadable)."""
    try:
        with path.open("rb") as f:
            f.seek(_PID_OFFSET)
            return f.read(64).decode(errors="replace").strip() or "unknown"
    except OSError:
        return "unknown"


class RunLock:
    """Context manager holding ``<out>/.lock``; a second holder gets a :class:`ConfigError`.

    The lock belongs to the process, not to a thread: any thread may release it.
    """

    def __init__(self, out: str | Path) -> None:
        self.path = Path(out) / LOCK_NAME
        self._lock: FileLock | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(self.path, timeout=0, thread_local=False, on_acquired=_write_pid)
        try:
            lock.acquire()
        except Timeout:
            raise ConfigError(
                f"another ldwseg run (pid {_holder(self.path)}) is writing to {self.path.parent}; wait for it to "
                "finish, or choose another output folder (--out)"
            ) from None
        except OSError as exc:
            if exc.errno in STORAGE_ERRORS:  # a full or read-only disk: the machine's problem, not the folder's kind
                raise WriteFailed(
                    f"{exc.strerror or exc}",
                    self.path,
                    errno=exc.errno,
                    kept="nothing of this run was written yet",
                    advice=remedy(exc.errno),
                ) from None
            raise ConfigError(  # e.g. a network file system without flock
                f"cannot lock {self.path} ({exc.strerror or exc}); choose an output folder (--out) on a local disk"
            ) from None
        self._lock = lock

    def release(self) -> None:
        if self._lock is None:
            return
        if os.name != "nt":
            # unlinked while still held, so no one locks a file about to vanish (a process that opened it
            # before sees the unlinked file and retries); Windows cannot unlink an open file, and there
            # filelock removes it on release
            self.path.unlink(missing_ok=True)
        self._lock.release()
        self._lock = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def held_by_another_process(lock: Path) -> bool:
    """Whether another process holds the lock file ``lock`` (a run writing to its folder).

    Asks by trying to take the lock, and drops it at once when that succeeds; a file that
    does not exist is held by no one.
    """
    if not lock.is_file():
        return False
    probe = FileLock(lock, timeout=0, thread_local=False)
    try:
        probe.acquire()
    except Timeout:
        return True
    except OSError:  # cannot be opened for locking (permissions): a run may well hold it
        return True
    probe.release()
    return False
