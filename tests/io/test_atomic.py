"""Atomic writes: a file or folder appears whole or not at all, flushed to disk before and after the rename."""

import errno
import os
import pickle
import stat

import pytest
from disks import make_read_only, small_disk

from ldwseg.errors import DataError, WriteFailed
from ldwseg.io import atomic_folder, atomic_write


def umask_mode(*, folder: bool = False) -> int:
    """The mode ``open(path, "w")`` (or ``mkdir``) gives a new file (or folder)."""
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if folder else 0o666) & ~umask


@pytest.fixture
def events(monkeypatch) -> list[str]:
    """What reaches the disk, in order: ``file`` and ``folder`` fsyncs, and ``replace`` (the rename)."""
    seen: list[str] = []
    fsync, replace = os.fsync, os.replace

    def recording_fsync(fd: int) -> None:
        seen.append("folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        fsync(fd)

    def recording_replace(src, dst) -> None:
        seen.append("replace")
        replace(src, dst)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    monkeypatch.setattr(os, "replace", recording_replace)
    return seen


def test_atomic_write_creates_parents_and_replaces(tmp_path):
    path = tmp_path / "run" / "ckpt" / "note.txt"
    atomic_write(path, lambda tmp: tmp.write_text("one"))
    atomic_write(path, lambda tmp: tmp.write_text("two"))
    assert path.read_text() == "two"
    assert path.stat().st_mode & 0o777 == umask_mode()
    assert os.listdir(path.parent) == ["note.txt"]


def test_atomic_write_keeps_ordinary_permissions_when_the_writer_makes_the_file_private(tmp_path):
    path = tmp_path / "w.bin"

    def private(tmp):
        tmp.unlink()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT, 0o600)  # as safetensors writes
        os.write(fd, b"data")
        os.close(fd)

    atomic_write(path, private)
    assert path.read_bytes() == b"data" and path.stat().st_mode & 0o777 == umask_mode()


@pytest.mark.skipif(os.name != "posix", reason="folders are flushed on POSIX only")
def test_atomic_write_flushes_the_file_before_the_rename_and_the_folder_after(tmp_path, events):
    atomic_write(tmp_path / "a.txt", lambda tmp: tmp.write_text("a"))
    assert events == ["file", "replace", "folder"]


@pytest.mark.parametrize("error", [OSError("No space left on device"), KeyboardInterrupt()])
def test_failed_atomic_write_keeps_the_old_file_and_leaves_nothing(tmp_path, error):
    path = tmp_path / "a.txt"
    path.write_text("old")

    def failing(tmp):
        tmp.write_text("half")
        raise error

    with pytest.raises(type(error)):
        atomic_write(path, failing)
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["a.txt"]


def test_atomic_folder_publishes_the_whole_folder_and_replaces_the_old_one(tmp_path):
    target = tmp_path / "data" / "set"
    for old, new in ((None, "one"), ("one", "two")):
        with atomic_folder(target) as scratch:
            assert scratch.parent == target.parent and list(scratch.iterdir()) == []
            assert scratch.stat().st_mode & 0o777 == umask_mode(folder=True)  # not mkdtemp's 0700
            (scratch / "sub").mkdir()
            (scratch / "sub" / "f.txt").write_text(new)
            # while the new set is built, readers see the old one (or none at first)
            assert (target / "sub" / "f.txt").read_text() == old if old else not target.exists()
        assert (target / "sub" / "f.txt").read_text() == new
    assert target.stat().st_mode & 0o777 == umask_mode(folder=True)
    assert os.listdir(target.parent) == ["set"]


def test_failed_atomic_folder_keeps_the_old_folder_and_leaves_nothing(tmp_path):
    target = tmp_path / "set"
    target.mkdir()
    (target / "f.txt").write_text("old")
    with pytest.raises(RuntimeError, match="generation failed"):
        with atomic_folder(target) as scratch:
            (scratch / "f.txt").write_text("half")
            raise RuntimeError("generation failed")
    assert (target / "f.txt").read_text() == "old" and os.listdir(tmp_path) == ["set"]


@pytest.mark.skipif(os.name != "posix", reason="folders are flushed on POSIX only")
def test_atomic_folder_flushes_every_file_and_folder_before_the_rename(tmp_path, events):
    with atomic_folder(tmp_path / "set") as scratch:
        (scratch / "sub").mkdir()
        for name in ("a", "b"):
            (scratch / "sub" / name).write_text(name)
        (scratch / "c").write_text("c")
    assert sorted(events[:-2]) == ["file"] * 3 + ["folder"] * 2  # 3 files, the folder and sub/
    assert events[-2:] == ["replace", "folder"]


def _wrapped(error: OSError) -> RuntimeError:
    """A RuntimeError raised while ``error`` was handled, as torch.save to a file object raises one."""
    try:
        raise error
    except OSError:
        try:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 832 vs 726")
        except RuntimeError as wrapped:
            return wrapped


@pytest.mark.parametrize(
    "error, number, words",
    [
        (OSError(errno.ENOSPC, "No space left on device"), errno.ENOSPC, "no space left on the device"),
        (_wrapped(OSError(errno.EDQUOT, "Disk quota exceeded")), errno.EDQUOT, "disk quota exceeded"),
        (
            Exception("Error while serializing: I/O error: Read-only file system (os error 30)"),
            errno.EROFS,
            "read-only file system",
        ),
        (_wrapped(OSError(errno.EIO, "Input/output error")), errno.EIO, "input/output error (the disk"),
    ],
    ids=["OSError", "torch.save", "safetensors", "EIO"],
)
@pytest.mark.parametrize("earlier", [True, False], ids=["replacing", "new"])
def test_a_storage_error_of_the_writer_is_write_failed_naming_the_file_and_what_survived(
    tmp_path, error, number, words, earlier
):
    path = tmp_path / "a.txt"
    if earlier:
        path.write_text("old")

    def failing(tmp):
        tmp.write_text("half")
        raise error

    with pytest.raises(WriteFailed) as failed:
        atomic_write(path, failing)
    kept = "the earlier a.txt is intact" if earlier else "no a.txt was written"
    message = str(failed.value)
    assert message.startswith(words) and f" while writing {path}; {kept}, nothing half-written is left; " in message
    assert (failed.value.errno, failed.value.path, failed.value.exit_code) == (number, str(path), 1)
    assert os.listdir(tmp_path) == (["a.txt"] if earlier else [])
    assert path.read_text() == "old" if earlier else not path.exists()
    copy = pickle.loads(pickle.dumps(failed.value))  # as torch.distributed sends it to the other ranks
    assert (str(copy), copy.errno, copy.path, copy.exit_code) == (message, number, str(path), 1)


@pytest.mark.parametrize("error", [RuntimeError("boom"), ValueError("bad value"), DataError("bad pixels")])
def test_errors_of_the_writer_that_are_not_the_disks_pass_as_they_are(tmp_path, error):
    """The disk has room (the probe of an error that names no number finds it), so the writer's error stands."""

    def failing(tmp):
        tmp.write_text("half")
        raise error

    with pytest.raises(type(error), match=str(error)):
        atomic_write(tmp_path / "a.txt", failing)
    assert os.listdir(tmp_path) == []


def test_a_full_disk_found_by_probing_and_a_read_only_one(tmp_path):
    """torch.save to a full disk says only "unexpected pos": the probe finds ENOSPC; a read-only disk refuses
    the temporary file itself. The earlier file and folder stay as they were."""
    import torch

    with small_disk(tmp_path / "disk", "1m") as disk:
        atomic_write(disk / "w.pt", lambda tmp: torch.save({"w": torch.zeros(4)}, tmp))
        with atomic_folder(disk / "set") as scratch:
            (scratch / "f.txt").write_text("old")
        before = (disk / "w.pt").read_bytes()
        big = {"w": torch.zeros(512 * 1024)}  # 2 MiB on a 1 MiB disk
        with pytest.raises(WriteFailed, match=rf"^no space left on the device while writing {disk / 'w.pt'}; the "):
            atomic_write(disk / "w.pt", lambda tmp: torch.save(big, tmp))
        assert (disk / "w.pt").read_bytes() == before

        def filling(scratch):
            (scratch / "f.txt").write_bytes(bytes(2 * 2**20))

        with pytest.raises(WriteFailed, match=r"^no space left on the device while writing .*set; the earlier set"):
            with atomic_folder(disk / "set") as scratch:
                filling(scratch)
        assert (disk / "set" / "f.txt").read_text() == "old"
        assert sorted(os.listdir(disk)) == ["set", "w.pt"]

        make_read_only(disk)
        with pytest.raises(WriteFailed, match=r"^read-only file system while writing .*w.pt; the earlier w.pt") as ro:
            atomic_write(disk / "w.pt", lambda tmp: torch.save(big, tmp))
        assert ro.value.errno == errno.EROFS and (disk / "w.pt").read_bytes() == before
