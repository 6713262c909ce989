"""Atomic, durable writes: a file or a whole folder appears complete or not at all.

Both build their content under a hidden temporary name in the target's folder, flush it
to disk (``fsync``), rename it over the target (``os.replace``, atomic within a file
system) and then flush the folder, so the rename itself survives a crash. A reader, or
the next run after a power cut, sees the old content or the new one, never a part.

:func:`atomic_write` writes one file; :func:`atomic_folder` publishes a folder built in
full (a generated data set), for which one rename of the folder replaces a rename per
file. A hard kill can leave a hidden ``.<name>.<hex>.tmp`` behind; nothing else does.

When the operating system refuses the write (no space, a quota, a read-only file system,
an I/O error), both raise :class:`~ldwseg.errors.WriteFailed`, which names the error, the
file and what survived. The writers of torch and safetensors wrap that ``OSError`` in
errors of their own: its number is then in the exception chain, in the text (Rust's "os
error 28"), or nowhere (``torch.save`` to a full disk raises "RuntimeError: [enforce fail at
inline_container.cc:672] . unexpected pos ..."); in that last case the temporary file is
probed by appending to it, which meets the file system's own error while the disk is full.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

from ..errors import LDWSegError, WriteFailed

__all__ = ["STORAGE_ERRORS", "atomic_folder", "atomic_write", "remedy", "storage_errno"]

PathLike = str | os.PathLike

STORAGE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EFBIG)
"""The errors of the storage itself, rather than of the path or of the content being written."""

_REASONS = {
    errno.ENOSPC: ("no space left on the device", "free disk space"),
    errno.EDQUOT: ("disk quota exceeded", "free space within your quota"),
    errno.EROFS: ("read-only file system", "make the file system writable again"),
    errno.EIO: ("input/output error (the disk or its connection failed)", "check the disk (dmesg)"),
    errno.EFBIG: ("file too large for its file system", "use a file system that takes larger files"),
    errno.EACCES: ("permission denied", "make its folder writable"),
    errno.EPERM: ("operation not permitted", "make its folder writable"),
}
_RUST_OS_ERROR = re.compile(r"\(os error (\d+)\)")
_PROBE_BLOCK, _PROBE_BLOCKS = 64 * 1024, 16


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


def storage_errno(exc: BaseException) -> int | None:
    """The storage error that ``exc`` carries: its own, one in its ``__cause__``/``__context__`` chain,
    or one written in its text as Rust writes an ``io::Error`` ("... (os error 28)")."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        item = stack.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, OSError) and item.errno in STORAGE_ERRORS:
            return item.errno
        found = _RUST_OS_ERROR.search(str(item))
        if found and int(found.group(1)) in STORAGE_ERRORS:
            return int(found.group(1))
        stack += [item.__cause__, item.__context__]
    return None


def _probe(temp: Path) -> int | None:
    """The storage error that appending up to 1 MiB to ``temp`` meets, or ``None`` when it fits.

    A writer that fails for lack of space has written what fitted first, so the file
    system is still full (to less than a block) when this runs.
    """
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_APPEND)
    except OSError as err:
        return err.errno if err.errno in STORAGE_ERRORS else None
    try:
        block = bytes(_PROBE_BLOCK)
        for _ in range(_PROBE_BLOCKS):
            os.write(fd, block)  # a write that fits in part writes that part; the next one fails
        os.fsync(fd)
    except OSError as err:
        return err.errno if err.errno in STORAGE_ERRORS else None
    finally:
        os.close(fd)
    return None


def _storage_errno(exc: BaseException, temp: Path | None) -> int | None:
    """The storage error behind ``exc``, raised while ``temp`` was written (probed when ``exc`` names none).

    ldwseg's own errors (a model that does not export, bad pixels) and interruptions are
    not probed: they are not about the disk.
    """
    number = storage_errno(exc)
    if number is None and temp is not None and isinstance(exc, Exception) and not isinstance(exc, LDWSegError):
        number = _probe(temp)
    return number


def remedy(number: int) -> str:
    """What fixes the write error ``number`` (an ``errno``), in words: "free disk space", ..."""
    return _REASONS.get(number, ("", "check the disk and the path"))[1]


def _write_failed(number: int, path: Path, *, existed: bool) -> WriteFailed:
    """The error for ``number`` (an ``errno``) met while writing ``path``, which held an earlier version or not."""
    reason = _REASONS[number][0] if number in _REASONS else os.strerror(number).lower()
    kept = f"the earlier {path.name} is intact" if existed else f"no {path.name} was written"
    code = 2 if number in (errno.EACCES, errno.EPERM) else 1  # a permission is the user's to fix
    return WriteFailed(
        reason, path, errno=number, kept=f"{kept}, nothing half-written is left", exit_code=code,
        advice=f"{remedy(number)} or write elsewhere, then run the same command again",
    )  # fmt: skip


def atomic_write(path: PathLike, write: Callable[[Path], None]) -> None:
    """Create or replace ``path`` all at once with what ``write`` writes.

    ``write`` receives the path of an empty temporary file in ``path``'s folder and writes
    the full content there (by name or by opening it). The file then gets the permissions
    a plain ``open(path, "w")`` gives (the umask applied), even if ``write`` replaced it
    with a private one, is flushed to disk and renamed over ``path``. If ``write`` raises
    (or is interrupted), the temporary file is removed and ``path`` is untouched. Missing
    parent folders are created.

    Raises:
        WriteFailed: a storage error (:data:`STORAGE_ERRORS`: no space, quota, read-only file
            system, I/O error; found as the module docstring says) or a permission refused
            the write; ``path`` is then untouched. Other errors are raised as they are.
    """
    path = Path(path)
    existed = path.exists()
    temp = _temporary_name(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # os.open with 0o666 applies the umask as open() does; tempfile.mkstemp would give 0o600
        os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError as err:
        if err.errno not in _REASONS:  # a path that cannot be a file (ENOTDIR, ...): the caller's to word
            raise
        raise _write_failed(err.errno, path, existed=existed) from err
    try:
        mode = temp.stat().st_mode
        try:
            write(temp)
        except BaseException as err:
            number = _storage_errno(err, temp)
            if number is None:
                raise
            raise _write_failed(number, path, existed=existed) from err
        try:
            os.chmod(temp, mode)
            _fsync(temp)
            os.replace(temp, path)
        except OSError as err:
            if err.errno not in _REASONS:
                raise
            raise _write_failed(err.errno, path, existed=existed) from err
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
    untouched; a storage error (:data:`STORAGE_ERRORS`) in the body or in the publishing is
    raised as :class:`~ldwseg.errors.WriteFailed`.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as parent:
        ...     with atomic_folder(Path(parent) / "set") as scratch:
        ...         _ = (scratch / "a.txt").write_text("a")
        ...     sorted(p.name for p in Path(parent).iterdir()), (Path(parent) / "set" / "a.txt").read_text()
        (['set'], 'a')
    """
    path = Path(path)
    existed = path.exists()
    scratch = _temporary_name(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        scratch.mkdir()
    except OSError as err:
        if err.errno not in _REASONS:  # a path that cannot be a file (ENOTDIR, ...): the caller's to word
            raise
        raise _write_failed(err.errno, path, existed=existed) from err
    try:
        try:
            yield scratch
            for folder, _, files in os.walk(scratch):
                for name in files:
                    _fsync(Path(folder) / name)
                _fsync(Path(folder), folder=True)
            if path.exists():
                shutil.rmtree(path)
            os.replace(scratch, path)
        except BaseException as err:
            number = _storage_errno(err, None)
            if number is None:
                raise
            raise _write_failed(number, path, existed=existed and path.exists()) from err
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    _fsync(path.parent, folder=True)
