"""Interruption and resume, NaN losses, one run per output folder, deterministic data.

The subprocess tests train the same tiny run three ways (uninterrupted, killed with
SIGKILL and resumed, stopped with SIGINT/SIGTERM and resumed) and require identical final
weights and metrics: the kill loses only the steps since the last checkpoint, and the
resumed run redoes them exactly.
"""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from run_checks import assert_same_run, final_state
from safetensors.torch import load_file
from typer.testing import CliRunner

from ldwseg.cli import app
from ldwseg.config import apply_overrides
from ldwseg.engine.build import get_loaders
from ldwseg.engine.distributed import DistInfo
from ldwseg.engine.runlock import RunLock
from ldwseg.io.training_state import load_training_state
from ldwseg.io.weights import read_metadata
from ldwseg.tasks import get_task, load_config

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("private_data")]  # end-to-end runs

runner = CliRunner()
# 48 synthetic training images, batch 4: 12 steps per epoch; a checkpoint every 3 steps
RUN = [
    "--epochs", "2", "--device", "cpu", "--set", "model.base_width=4", "--set", "data.crop_size=32",
    "--set", "train.batch_size=4", "--set", "train.checkpoint_every=3", "--set", "train.checkpoint_minutes=0",
]  # fmt: skip


# ldwseg's own entry point, paused after step 5 of epoch 1 (two steps after the checkpoint of step 3)
# until a signal arrives: the test sends its signal once the pause is announced, a state of the run,
# rather than after a time that a loaded machine may stretch past the end of the run.
PAUSED = """
import sys, threading
from ldwseg.cli import main
from ldwseg.engine import interrupt, stopping

signalled = threading.Event()
handle, after_step = interrupt.StopRequests._handle, stopping.StepWatch.__call__

def noting_handle(self, number, frame):
    handle(self, number, frame)
    signalled.set()

def pausing_after_step(self, progress):
    if (progress.epoch, progress.step) == (0, 5):
        print("paused at epoch 1, step 5", flush=True)
        while not signalled.wait(0.05):
            pass
    return after_step(self, progress)

interrupt.StopRequests._handle, stopping.StepWatch.__call__ = noting_handle, pausing_after_step
sys.exit(main())
"""


def start(out: Path, data: Path, *extra: str, script: Path | None = None) -> subprocess.Popen:
    """``ldwseg train`` (or ``python script train``) of :data:`RUN` into ``out``."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "LDWSEG_DATA": str(data)}
    target = [str(script)] if script is not None else ["-m", "ldwseg"]
    command = [sys.executable, *target, "train", "--out", str(out), *RUN, *extra]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    _, err = proc.communicate(timeout=300)
    return proc.returncode, err


def start_paused(out: Path, data: Path, tmp_path: Path) -> subprocess.Popen:
    """A :data:`PAUSED` run, returned once it has paused after step 5 of epoch 1."""
    script = tmp_path / "paused.py"
    script.write_text(PAUSED)
    proc = start(out, data, script=script)
    line = proc.stdout.readline()  # the pause, or the end of the output when the run failed first
    if line.strip() != "paused at epoch 1, step 5":
        proc.kill()
        pytest.fail(f"the run did not pause: {line!r} {proc.communicate()[1][-3000:]}")
    return proc


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data_dir) -> tuple[dict, list]:
    """The uninterrupted run."""
    out = tmp_path_factory.mktemp("reference")
    code, err = finish(start(out, data_dir))
    assert code == 0, err
    return final_state(out)


def test_kill_9_then_resume_ends_exactly_like_an_uninterrupted_run(tmp_path, data_dir, reference):
    out = tmp_path / "run"
    proc = start_paused(out, data_dir, tmp_path)
    proc.kill()  # SIGKILL: no handler runs
    proc.communicate()
    state = load_training_state(out / "last.state.pt")
    assert (state["epoch"], state["step"]) == (0, 3)  # steps 4 and 5, done after this checkpoint, are lost
    code, err = finish(start(out, data_dir, "--resume"))
    assert code == 0, err
    assert f"resuming {out} at epoch 1, step 3" in err
    assert_same_run(out, reference)


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_sigint_and_sigterm_save_a_checkpoint_and_exit_cleanly(tmp_path, data_dir, reference, sig, code):
    out = tmp_path / "run"
    proc = start_paused(out, data_dir, tmp_path)
    proc.send_signal(sig)
    returncode, err = finish(proc)
    assert returncode == code, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and f"stopped by {sig.name} at epoch 1, step 5" in lines[0] and "--resume" in lines[0], err
    state = load_training_state(out / "last.state.pt")
    assert (state["epoch"], state["step"]) == (0, 5)  # the step it stopped after, saved
    returncode, err = finish(start(out, data_dir, "--resume"))
    assert returncode == 0, err
    assert_same_run(out, reference)


def test_a_second_run_on_the_same_output_folder_is_refused(tmp_path):
    out = tmp_path / "run"
    with RunLock(out):
        result = runner.invoke(app, ["train", "--out", str(out), *RUN])
    assert result.exit_code == 2
    assert f"another ldwseg run (pid {os.getpid()}) is writing to {out}" in result.output
    assert not (out / "last.safetensors").exists()
    with RunLock(out):  # released by the first holder: free again
        pass


def test_the_lock_dies_with_its_process(tmp_path):
    out = tmp_path / "run"
    code = f"from ldwseg.engine.runlock import RunLock; RunLock({str(out)!r}).acquire(); import os; os._exit(0)"
    subprocess.run([sys.executable, "-c", code], check=True)
    with RunLock(out):  # a stale lock file never blocks
        pass


def test_nan_loss_names_the_step_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    import ldwseg.seg.task as seg_task

    real = seg_task.segmentation_criterion
    calls = {"n": 0}

    def poisoned(name, **kwargs):
        criterion = real(name, **kwargs)

        def loss(logits, target):
            calls["n"] += 1
            value = criterion(logits, target)
            return value * float("nan") if calls["n"] == 5 else value

        return loss

    monkeypatch.setattr(seg_task, "segmentation_criterion", poisoned)
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", "--out", str(out), *RUN])
    assert result.exit_code == 2
    message = result.output.strip().splitlines()[-1]
    assert "the loss became nan at epoch 1, step 5" in message
    assert "lower the learning rate" in message and "--amp off" in message and "--resume" in message
    assert str(out / "last.safetensors") in message
    kept = read_metadata(out / "last.safetensors")
    assert kept["metrics"]["step_in_epoch"] == 3  # the checkpoint before the bad step, not after it
    assert load_training_state(out / "last.state.pt")["step"] == 3
    assert all(torch.isfinite(t).all() for t in load_file(out / "last.safetensors").values())


def batches(cfg, epoch: int, start: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    data = get_task("seg").data(cfg)
    loader, _, sampler = get_loaders(data, cfg, DistInfo())
    sampler.set_epoch(epoch, start=start)
    loader.dataset.set_epoch(epoch)
    return list(loader)


def test_augmentation_depends_only_on_seed_epoch_and_sample():
    cfg = apply_overrides(load_config(None, {"data.dataset": "synthetic"}), ["train.batch_size=4", "data.crop_size=32"])
    in_process = batches(cfg, epoch=1)
    with_workers = batches(apply_overrides(cfg, ["data.num_workers=2"]), epoch=1)
    resumed = batches(cfg, epoch=1, start=3 * 4)  # after 3 steps
    assert len(in_process) == 12
    for got, want in [*zip(with_workers, in_process), *zip(resumed, in_process[3:])]:
        torch.testing.assert_close(got[0], want[0], rtol=0, atol=0)
        torch.testing.assert_close(got[1], want[1], rtol=0, atol=0)
    other_epoch = batches(cfg, epoch=2)
    assert not torch.equal(other_epoch[0][0], in_process[0][0])


def test_cross_entropy_of_an_all_ignored_batch_is_zero_not_nan():
    from ldwseg.seg.loss import segmentation_criterion

    criterion = segmentation_criterion("ce")
    logits = torch.randn(2, 5, 6, 7)
    target = torch.randint(0, 5, (2, 6, 7))
    target[0, :3] = 255
    torch.testing.assert_close(criterion(logits, target), torch.nn.CrossEntropyLoss(ignore_index=255)(logits, target))
    assert criterion(logits, torch.full_like(target, 255)).item() == 0.0


def test_a_file_that_breaks_during_training_in_a_worker_is_one_line(tmp_path, data_dir, monkeypatch):
    """Files are checked up front; one that breaks later, read in a DataLoader worker, is still one line."""
    import shutil

    import ldwseg.datasets.base as base

    root = tmp_path / "synthetic"
    shutil.copytree(data_dir / "synthetic", root)
    broken = sorted((root / "VOC2012" / "JPEGImages").iterdir())[0]
    broken.write_text("not an image any more")
    monkeypatch.setattr(base, "validate", lambda dataset: [])  # as if it broke after the check
    result = runner.invoke(
        app, ["train", "--out", str(tmp_path / "run"), "--data-root", str(root), *RUN, "--set", "data.num_workers=1"]
    )
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines[-1].startswith("error: cannot read image file") and broken.name in lines[-1], result.output
    assert "Traceback" not in result.output


def test_recon_folder_with_a_bad_image_fails_listing_it_or_skips_it(tmp_path):
    import numpy as np
    from PIL import Image

    root = tmp_path / "photos"
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(11):
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(root / f"p{i:02d}.png")
    (root / "p05.png").write_bytes((root / "p04.png").read_bytes()[:60])  # truncated
    Image.new("RGB", (1, 1)).save(root / "p07.png")
    args = ["train", "--task", "recon", "--dataset", "folder", "--data-root", str(root), "--epochs", "1",
            "--device", "cpu", "--set", "model.base_width=4", "--set", "data.crop_size=32",
            "--set", "train.max_steps_per_epoch=2"]  # fmt: skip
    failed = runner.invoke(app, [*args, "--out", str(tmp_path / "a")])
    assert failed.exit_code == 2
    line = failed.output.strip().splitlines()[-1]
    assert line.startswith("error: 2 of 9 images cannot be used") and "p05.png" in line and "p07.png" in line
    assert "--skip-bad" in line and not (tmp_path / "a").exists()
    skipped = runner.invoke(app, [*args, "--out", str(tmp_path / "b"), "--skip-bad"])
    assert skipped.exit_code == 0, skipped.output
    assert "skipped 2 bad samples" in skipped.output
