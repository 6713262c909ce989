"""Atomic, durable writes: a file or a whole folder appears complete or not at all.

Both build their content under a hidden temporary name in the target's folder, flush it
to disk (``fsync``), rename it over the target (``os.replace``, atomic within a file
system) and then flush the folder, so the rename itself survives a crash. A reader, or
the next run after a power cut, sees the old content or the new one, never a part.

:func:`atomic_write` writes one file; :func:`atomic_folder` publishes a folder built in
full (a generated data set), for which one rename of the folder replaces a rename per
file. A hard kill can leave a hidden ``.<name>.<hex>.tmp`` behind; nothing else does.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = ["atomic_folder", "atomic_write"]

PathLike = str | os.PathLike


def _temporary_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")


def _fsync(path: Path, *, folder: bool = False) -> None:
    """Flush ``path``'s data, or a folder's entries (the names renamed into it), to the disk."""
    if folder and os.name != "posix":  # elsewhere a folder cannot be opened for fsync
        return
    fd = os.open(path, os.O_RDONLY if folder else os.O_RDWR)  # Windows flushes only files open for writing
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: PathLike, write: Callable[[Path], None]) -> None:
    """Create or replace ``path`` all at once with what ``write`` writes.

    ``write`` receives the path of an empty temporary file in ``path``'s folder and writes
    the full content there (by name or by opening it). The file then gets the permissions
    a plain ``open(path, "w")`` gives (the umask applied), even if ``write`` replaced it
    with a private one, is flushed to disk and renamed over ``path``. If ``write`` raises
    (or is interrupted), the temporary file is removed and ``path`` is untouched. Missing
    parent folders are created.

    Raises:
        OSError: the folder cannot be written; ``path`` is then untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = _temporary_name(path)
    # os.open with 0o666 applies the umask as open() does; tempfile.mkstemp would give 0o600
    os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        mode = temp.stat().st_mode
        write(temp)
        os.chmod(temp, mode)
        _fsync(temp)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync(path.parent, folder=True)


@contextlib.contextmanager
def atomic_folder(path: PathLike) -> Iterator[Path]:
    """Build a folder under a temporary name, then put it at ``path`` in one rename.

    The body fills the yielded empty folder (beside ``path``, with the permissions
    ``mkdir`` gives). When it returns, every file and folder in it is flushed to disk, an
    existing ``path`` is removed and the new folder renamed to ``path``: readers find no
    folder for that moment (POSIX cannot swap two folders in one rename), but never a
    partial one. When the body raises, the temporary folder is removed and ``path`` is
    untouched.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as parent:
        ...     with atomic_folder(Path(parent) / "set") as scratch:
        ...         _ = (scratch / "a.txt").write_text("a")
        ...     sorted(p.name for p in Path(parent).iterdir()), (Path(parent) / "set" / "a.txt").read_text()
        (['set'], 'a')
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = _temporary_name(path)
    scratch.mkdir()
    try:
        yield scratch
        for folder, _, files in os.walk(scratch):
            for name in files:
                _fsync(Path(folder) / name)
            _fsync(Path(folder), folder=True)
        if path.exists():
            shutil.rmtree(path)
        os.replace(scratch, path)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    _fsync(path.parent, folder=True)
