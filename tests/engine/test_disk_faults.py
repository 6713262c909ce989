"""A disk that fills up, turns read-only or fails while ldwseg writes: one line, nothing lost, nothing half-written.

Where the test may mount (Linux, root), the disk is a real tmpfs of a few MiB, filled up
or remounted read-only at the moment the test wants; elsewhere the writer is patched to
fail as torch's does on a full disk (a RuntimeError around the OSError). Each failure must
end the command with exit status 1 and one ``error:`` line that names the error and the
file, leave the earlier file byte for byte and no temporary file, and the command run
again (``train --resume``; ``compare`` and ``sweep`` as they are) must finish the work.
"""

import errno
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from disks import fill, make_read_only, small_disk, temporary_files
from PIL import Image
from run_checks import Run, assert_same_run, cli, final_state

from ldwseg.config import Config
from ldwseg.engine import fit, stopping
from ldwseg.errors import WriteFailed
from ldwseg.io.training_state import load_training_state

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("private_data")]  # end-to-end runs

# 48 synthetic training images, batch 4, 8 steps per epoch; a checkpoint every 3 steps
RUN = [
    "--epochs", "2", "--device", "cpu", "--set", "model.base_width=4", "--set", "model.depth=2",
    "--set", "data.crop_size=32", "--set", "train.batch_size=4", "--set", "train.max_steps_per_epoch=8",
    "--set", "train.checkpoint_every=3", "--set", "train.checkpoint_minutes=0",
]  # fmt: skip


def error_line(run: Run, *words: str) -> str:
    """The one ``error:`` line of a run that failed with the machine's exit status 1; it holds ``words``."""
    assert run.code == 1, run
    assert "Traceback" not in run.err + run.out
    lines = [line for line in run.err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, run.err
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


class Disk:
    """Where a test writes, and how it breaks: ``"full"`` and ``"read-only"`` on a mounted tmpfs,
    ``"patched"`` (any machine) by checkpoint writers that fail as ``torch.save`` does on a full disk.

    A training cannot meet a read-only remount: the file system refuses it while the run
    holds its lock file open for writing.
    """

    def __init__(self, kind: str, root: Path) -> None:
        self.kind, self.root, self.patch = kind, root, pytest.MonkeyPatch()
        self.filler: Path | None = None

    def break_it(self) -> None:
        if self.kind == "full":
            self.filler = fill(self.root)
        elif self.kind == "read-only":
            make_read_only(self.root)
        else:  # the two writers of checkpoints
            self.patch.setattr(torch, "save", _failing_torch_save)
            self.patch.setattr("safetensors.torch.save_model", lambda model, path, **_: _failing_torch_save(None, path))

    def repair(self) -> None:
        if self.kind == "full":
            self.filler.unlink()
        elif self.kind == "read-only":
            make_read_only(self.root, writable=True)
        self.patch.undo()

    @property
    def words(self) -> str:
        return "read-only file system" if self.kind == "read-only" else "no space left on the device"


def _failing_torch_save(obj, f, *args, **kwargs) -> None:
    """``torch.save`` on a full disk: part of the file, then the OSError wrapped in a RuntimeError."""
    Path(f).write_bytes(b"PK\x03\x04 the first part of an archive")
    try:
        raise OSError(errno.ENOSPC, "No space left on device")
    except OSError:
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 832 vs 726") from None


@pytest.fixture(params=["full", "read-only", "patched"])
def disk(request, tmp_path):
    """A :class:`Disk` of each kind (a test may name the kinds it takes with ``indirect`` parametrisation)."""
    if request.param == "patched":
        broken = Disk("patched", tmp_path / "disk")
        yield broken
        broken.patch.undo()
        return
    with small_disk(tmp_path / "disk", "3m") as root:
        broken = Disk(request.param, root)
        yield broken
        broken.patch.undo()


TRAINING_DISKS = pytest.mark.parametrize("disk", ["full", "patched"], indirect=True)
MOUNTED_DISKS = pytest.mark.parametrize("disk", ["full", "read-only"], indirect=True)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data_dir) -> tuple[dict, list]:
    """The uninterrupted run."""
    out = tmp_path_factory.mktemp("reference") / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LDWSEG_DATA", str(data_dir))  # as private_data does for each test, which runs after this
        run = cli("train", "--out", out, *RUN)
    assert run.code == 0, run.err
    return final_state(out)


@TRAINING_DISKS
def test_a_checkpoint_the_disk_refuses_stops_in_one_line_keeps_the_last_one_and_resume_finishes(
    disk, monkeypatch, reference
):
    """The disk breaks just before the checkpoint of step 6 of epoch 1 (the one of step 3 is on it)."""
    out = disk.root / "run"
    kept: dict[str, bytes] = {}
    save = stopping.save_resume_state

    def breaking_before_step_6(path, state, point, **kwargs):
        if (point.epoch, point.step) == (0, 6) and not kept:
            kept.update({name: (out / name).read_bytes() for name in ("last.state.pt", "last.safetensors")})
            disk.break_it()
        return save(path, state, point, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(stopping, "save_resume_state", breaking_before_step_6)
        failed = cli("train", "--out", out, *RUN)
    line = error_line(failed, disk.words, f"while writing {out / 'last.state.pt'};")
    assert f"the run's checkpoint {out / 'last.state.pt'} (at epoch 1, step 3) is intact" in line
    assert f"the same command plus --resume (--out {out})" in line
    for name, before in kept.items():
        assert (out / name).read_bytes() == before, name
    assert load_training_state(out / "last.state.pt")["step"] == 3
    assert temporary_files(out) == []

    disk.repair()
    resumed = cli("train", "--out", out, *RUN, "--resume")
    assert resumed.code == 0, resumed.err
    assert "resuming" in resumed.err and "at epoch 1, step 3" in resumed.err
    assert_same_run(out, reference)


@TRAINING_DISKS
def test_a_best_checkpoint_the_disk_refuses_names_the_run_checkpoint_to_resume_from(disk, monkeypatch, reference):
    """The disk breaks after epoch 1's training, before its validation writes best.safetensors."""
    out = disk.root / "run"
    validate = fit._validate

    def breaking_at_validation(run, epoch):
        disk.break_it()
        return validate(run, epoch)

    with monkeypatch.context() as patch:
        patch.setattr(fit, "_validate", breaking_at_validation)
        failed = cli("train", "--out", out, *RUN)
    line = error_line(failed, disk.words, f"while writing {out / 'best.safetensors'};")
    assert "no best.safetensors was written" in line
    assert f"the run's checkpoint {out / 'last.state.pt'} (at epoch 1, step 6) is intact" in line
    assert not (out / "best.safetensors").exists() and temporary_files(out) == []

    disk.repair()
    resumed = cli("train", "--out", out, *RUN, "--resume")
    assert resumed.code == 0, resumed.err
    assert_same_run(out, reference)


def test_config_yaml_is_written_atomically(disk):
    path = disk.root / "run" / "config.yaml"
    Config().save(path)
    before = path.read_bytes()
    changed = Config()
    changed.train.epochs = 99
    disk.break_it()
    if disk.kind == "patched":  # yaml text, not torch.save: refuse the temporary file itself
        disk.patch.setattr(Path, "write_text", lambda *a, **k: _failing_torch_save(None, a[0]))
    with pytest.raises(WriteFailed, match=rf"^{disk.words} while writing {path}; the earlier config.yaml is intact"):
        changed.save(path)
    assert path.read_bytes() == before and temporary_files(path.parent) == []
    disk.repair()
    changed.save(path)
    assert "epochs: 99" in path.read_text()


# ------------------------------------------------------------------------------------ the other writers


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_dir) -> dict[str, Path]:
    """A tiny segmentation checkpoint and a reconstruction one (one short epoch each), and an image."""
    root = tmp_path_factory.mktemp("trained")
    tiny = ["--epochs", "1", "--device", "cpu", "--set", "model.base_width=4", "--set", "model.depth=2",
            "--set", "data.crop_size=32", "--set", "train.max_steps_per_epoch=2"]  # fmt: skip
    image = root / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (72, 96, 3), dtype=np.uint8)).save(image)
    photos = root / "photos"
    photos.mkdir()
    for i in range(8):
        shutil.copy(image, photos / f"p{i}.png")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LDWSEG_DATA", str(data_dir))
        seg = cli("train", "--out", root / "seg", *tiny)
        recon = cli("train", "--task", "recon", "--dataset", "folder", "--data-root", photos, "--out",
                    root / "recon", *tiny)  # fmt: skip
    assert seg.code == 0, seg.err
    assert recon.code == 0, recon.err
    return {"seg": root / "seg" / "best.safetensors", "recon": root / "recon" / "best.safetensors", "image": image}


def _commands(trained: dict[str, Path], out: Path) -> dict[str, tuple[list, Path]]:
    """Each writing command, and the file it writes (first) into ``out``."""
    return {
        "predict": (["predict", trained["seg"], trained["image"], "--out", out], out / "photo_mask.png"),
        "reconstruct": (
            ["reconstruct", trained["image"], "--checkpoint", trained["recon"], "--out", out / "photo_ae.png"],
            out / "photo_ae.png",
        ),
        "export": (["export", trained["seg"], out / "model.onnx"], out / "model.onnx"),
    }


@MOUNTED_DISKS  # these writers are not torch.save's: the patched disk would not meet them
@pytest.mark.parametrize("command", ["predict", "reconstruct", "export"])
def test_an_output_the_disk_refuses_is_one_line_and_the_earlier_output_stays(disk, trained, command):
    out = disk.root / "out"
    out.mkdir()
    args, written = _commands(trained, out)[command]
    first = cli(*args)
    assert first.code == 0, first.err
    before = written.read_bytes()
    disk.break_it()
    line = error_line(cli(*args), disk.words, f"while writing {written};")
    assert f"the earlier {written.name} is intact" in line
    assert written.read_bytes() == before and temporary_files(out) == []
    disk.repair()
    assert cli(*args).code == 0


@TRAINING_DISKS
@pytest.mark.parametrize("command", ["compare", "sweep"])
def test_a_run_of_compare_or_sweep_the_disk_refuses_goes_on_when_the_command_runs_again(disk, monkeypatch, command):
    """The disk breaks at the first checkpoint inside the second epoch of the first run."""
    out = disk.root / command
    tiny = ["--epochs", "2", "--set", "model.base_width=4", "--set", "model.depth=2", "--set", "data.crop_size=32",
            "--set", "train.max_steps_per_epoch=4", "--set", "train.checkpoint_every=2"]  # fmt: skip
    args = {
        "compare": ["compare", "--variant", "max: model.down=maxpool model.up=deconv", "--seeds", "0", *tiny],
        "sweep": ["sweep", "--wavelet-weights", "0.1", "--constraint", "orthogonal", *tiny],
    }[command] + ["--out", out]
    broke: list[bool] = []
    save = stopping.save_resume_state

    def breaking(path, state, point, **kwargs):
        if (point.epoch, point.step) == (1, 2) and not broke:
            broke.append(True)
            disk.break_it()
        return save(path, state, point, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(stopping, "save_resume_state", breaking)
        line = error_line(cli(*args), disk.words, "last.state.pt; the run's checkpoint")
    assert "(at the end of epoch 1) is intact" in line
    assert "run the same command again: it keeps the finished runs and resumes this one" in line
    assert "--resume" not in line and temporary_files(out) == []
    disk.repair()
    again = cli(*args)
    assert again.code == 0, again.err
    assert "resuming" in again.err and "at epoch 2, step 0" in again.err


def test_a_library_error_around_a_full_disk_is_reported_as_the_full_disk(monkeypatch):
    """A write outside the atomic writers (a library's own file) that fails on a full disk, wrapped by the
    library in a RuntimeError, is still the machine's one line, not an "unexpected" error."""
    import ldwseg.analysis.bench

    def failing(*args, **kwargs):
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 832 vs 726") from None

    monkeypatch.setattr(ldwseg.analysis.bench, "run_pool_benchmark", failing)
    line = error_line(cli("bench", "--quick"), "no space left on the device", "RuntimeError: [enforce fail")
    assert line.startswith("error: no space left on the device")
