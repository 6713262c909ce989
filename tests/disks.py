"""Disks that misbehave, for the tests of write failures: a small tmpfs to fill, a read-only one.

Mounting needs Linux and root (or CAP_SYS_ADMIN); elsewhere :func:`small_disk` skips the
test cleanly, and the tests that can fall back on a patched writer do.
"""

import contextlib
import errno
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest


def _mount(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["mount", *args], capture_output=True, text=True, timeout=60)


@contextlib.contextmanager
def small_disk(folder: Path, size: str = "3m") -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``folder`` for the block, unmounted after; skips where mounting is refused."""
    if sys.platform != "linux" or os.geteuid() != 0:
        pytest.skip("mounting a small file system needs Linux and root")
    folder.mkdir(parents=True, exist_ok=True)
    mounted = _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder))
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, timeout=60)


def make_read_only(folder: Path, *, writable: bool = False) -> None:
    """Remount the :func:`small_disk` at ``folder`` read-only (no file there may be open for writing), or
    ``writable`` again."""
    remounted = _mount("-o", "remount,rw" if writable else "remount,ro", str(folder))
    assert remounted.returncode == 0, remounted.stderr


def fill(folder: Path) -> Path:
    """Fill the file system of ``folder`` with one file until no byte is left; returns that file."""
    filler = folder / "filler"
    block = bytes(64 * 1024)
    with open(filler, "wb", buffering=0) as f:
        with pytest.raises(OSError) as full:
            while True:
                f.write(block)  # a write that fits in part writes that part; the next one fails
    assert full.value.errno == errno.ENOSPC
    return filler


def temporary_files(folder: Path) -> list[str]:
    """The atomic writers' temporary files (``.<name>.<hex>.tmp``) left under ``folder``."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(".*.tmp"))
