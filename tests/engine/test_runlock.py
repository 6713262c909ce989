"""The run lock: one training run per output folder, whichever process holds it."""

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from filelock import FileLock

from ldwseg.engine.runlock import LOCK_NAME, RunLock, held_by_another_process
from ldwseg.errors import ConfigError

HOLD = (
    "import sys; from ldwseg.engine.runlock import RunLock; lock = RunLock(sys.argv[1]); lock.acquire(); "
    "print('held', flush=True); sys.stdin.read(); lock.release()"
)


@contextmanager
def held_elsewhere(out: Path) -> Iterator[subprocess.Popen]:
    """Another process holding ``out``'s lock until the block ends."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(out)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "held"
        yield proc
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)


def test_a_lock_held_by_another_process_is_refused_with_its_pid(tmp_path):
    out = tmp_path / "run"
    with held_elsewhere(out) as proc:
        with pytest.raises(ConfigError, match=rf"^another ldwseg run \(pid {proc.pid}\) is writing to .*--out\)$"):
            RunLock(out).acquire()
        with pytest.raises(ConfigError, match=rf"pid {proc.pid}\)"):  # a refused try leaves the holder's pid
            RunLock(out).acquire()
        assert held_by_another_process(out / LOCK_NAME)
    assert proc.returncode == 0
    assert not (out / LOCK_NAME).exists()  # the holder removed it on release
    with RunLock(out):
        assert (out / LOCK_NAME).is_file()


def test_a_lock_held_in_this_process_is_refused_and_released_once(tmp_path):
    out = tmp_path / "run"
    lock = RunLock(out)
    with lock:
        with pytest.raises(ConfigError, match=rf"\(pid {os.getpid()}\) is writing to {out}"):
            RunLock(out).acquire()
    assert not (out / LOCK_NAME).exists()
    lock.release()  # a second release does nothing
    with RunLock(out):
        pass


def test_held_by_another_process_is_false_for_a_stale_or_missing_lock(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    assert not held_by_another_process(out / LOCK_NAME)
    (out / LOCK_NAME).write_text("\n12345")  # left by a killed run: no process holds it
    assert not held_by_another_process(out / LOCK_NAME)
    with RunLock(out):  # and it does not block a new run
        pass


def test_a_file_system_without_locks_is_one_clear_error(tmp_path, monkeypatch):
    def no_flock(self, *args, **kwargs):
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(FileLock, "acquire", no_flock)
    with pytest.raises(ConfigError, match=r"cannot lock .*\.lock \(Function not implemented\); choose an output"):
        RunLock(tmp_path / "run").acquire()
