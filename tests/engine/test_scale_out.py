"""Scale-out under torchrun: elastic restarts that resume, SyncBatchNorm, two agents as two nodes.

Every run trains the same tiny model on the synthetic set with 2 CPU ranks (gloo), one
thread each. An uninterrupted 2-rank run is the reference: a group that torchrun restarts
after a rank was killed, and a group of two torchrun agents (two "nodes" on localhost),
must end with its weights and metrics exactly. With ``--sync-bn``, 2 ranks of batch 4
must end like 1 process of batch 8, to float rounding.
"""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from run_checks import assert_same_run, final_state, free_port
from typer.testing import CliRunner

from ldwseg.cli import app
from ldwseg.config import apply_overrides
from ldwseg.engine.build import build_model, get_loaders
from ldwseg.engine.checkpoints import save_run_checkpoint
from ldwseg.engine.distributed import DistInfo
from ldwseg.engine.sync_bn import SyncBatchNorm2d, convert_sync_batchnorm
from ldwseg.tasks import get_task, load_config

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("private_data")]  # torchrun runs

runner = CliRunner()
# 48 synthetic training images, 2 ranks of batch 4: 6 steps per epoch; a checkpoint every 2 steps
RUN = [
    "--epochs", "2", "--device", "cpu", "--set", "model.base_width=4", "--set", "model.depth=2",
    "--set", "data.crop_size=32", "--set", "train.batch_size=4", "--set", "train.checkpoint_every=2",
    "--set", "train.checkpoint_minutes=0",
]  # fmt: skip

# ldwseg's own entry point with test-only kills: rank 1 SIGKILLs itself after step 5 of epoch 1 in
# torchrun's first attempt, and at the end of the run (after its last checkpoint) in the second one.
# The survivor of the first attempt ignores the SIGTERM with which the agent stops the group once it
# sees the kill: it then always gets to say why it fails (its state), however late the load lets it.
KILLER = """
import os, signal, sys
from ldwseg.cli import main
from ldwseg.engine import fit, stopping

def attempt():
    return int(os.environ["TORCHELASTIC_RESTART_COUNT"]), os.environ["RANK"]

if attempt() == (0, "0"):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # ldwseg's handler (StopRequests) puts this back after the run

def kill():
    os.kill(os.getpid(), signal.SIGKILL)

after_step, finish = stopping.StepWatch.__call__, fit._finish

def killing_after_step(self, progress):
    if attempt() == (0, "1") and (progress.epoch, progress.step) == (0, 5):
        kill()
    return after_step(self, progress)

def killing_at_finish(run, started):
    if attempt() == (1, "1"):
        kill()
    return finish(run, started)

stopping.StepWatch.__call__, fit._finish = killing_after_step, killing_at_finish
sys.exit(main())
"""


def environment(data: Path) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "LDWSEG_DATA": str(data)}


TWO_RANKS = ["--standalone", "--nproc_per_node", "2"]


def start(data: Path, launch: list[str], args: list[str], *, script: Path | None = None) -> subprocess.Popen:
    """``torchrun LAUNCH -m ldwseg ARGS`` (or ``torchrun LAUNCH script ARGS``), in a process group of its own."""
    target = [str(script)] if script is not None else ["-m", "ldwseg"]
    command = [sys.executable, "-m", "torch.distributed.run", *launch, *target, *args]
    return subprocess.Popen(command, env=environment(data), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # fmt: skip


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    """Wait for a :func:`start`; a run that hangs fails the test, its agent and ranks killed."""
    try:
        _, err = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        _, err = proc.communicate()
        pytest.fail(f"torchrun did not finish in 240 s: {err[-3000:]}")
    return proc.returncode, err


def torchrun(data: Path, launch: list[str], args: list[str], *, script: Path | None = None) -> tuple[int, str]:
    """Run :func:`start` to its end: the exit status and stderr."""
    return finish(start(data, launch, args, script=script))


def train_args(out: Path, *extra: str) -> list[str]:
    return ["train", "--out", str(out), *RUN, *extra]


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("error:")]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data_dir) -> tuple[dict, list]:
    """The uninterrupted 2-rank run."""
    out = tmp_path_factory.mktemp("reference") / "run"
    code, err = torchrun(data_dir, TWO_RANKS, train_args(out))
    assert code == 0, err[-3000:]
    epoch_lines = [line for line in err.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in epoch_lines] == ["1/2", "2/2"], err  # rank 0 only
    return final_state(out)


def test_ranks_batches_together_are_the_one_process_batch():
    """2 ranks of batch B see, step by step, exactly the samples (augmented alike) of 1 process of batch 2B.

    The training itself is the same only with --sync-bn: otherwise BatchNorm statistics are
    per rank (the cross-entropy is the mean over all ranks' labelled pixels either way).
    """
    cfg = apply_overrides(load_config(None, {"data.dataset": "synthetic"}), ["data.crop_size=32"])
    data = get_task("seg").data(cfg)

    def batches(batch: int, dist_info: DistInfo) -> list:
        loader, _, sampler = get_loaders(data, apply_overrides(cfg, [f"train.batch_size={batch}"]), dist_info)
        sampler.set_epoch(1)
        loader.dataset.set_epoch(1)
        return list(loader)

    one = batches(8, DistInfo())
    ranks = [batches(4, DistInfo(rank, 2)) for rank in (0, 1)]
    assert len(one) == len(ranks[0]) == len(ranks[1]) == 6
    for (images, masks), (images_0, masks_0), (images_1, masks_1) in zip(one, *ranks):
        # the shuffled order is dealt round robin: sample 2i of a 2B batch to rank 0, 2i+1 to rank 1
        torch.testing.assert_close(torch.stack([images_0, images_1], 1).flatten(0, 1), images, rtol=0, atol=0)
        torch.testing.assert_close(torch.stack([masks_0, masks_1], 1).flatten(0, 1), masks, rtol=0, atol=0)


def test_a_group_restarted_by_torchrun_resumes_and_ends_like_an_uninterrupted_run(tmp_path, data_dir, reference):
    """Rank 1 is killed mid-epoch (attempt 0), then after the run's last checkpoint (attempt 1); the
    same command goes on from the last checkpoint, then sees the run finished and trains no more."""
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    out = tmp_path / "run"
    # --monitor-interval 1: the agent sees the kill within a second; the survivor reports, then exits (KILLER)
    launch = [*TWO_RANKS, "--max-restarts", "2", "--monitor-interval", "1"]
    code, err = torchrun(data_dir, launch, train_args(out), script=script)
    assert code == 0, err[-3000:]
    errors = error_lines(err)
    assert len(errors) == 1, err  # the survivor of attempt 0, in one line
    assert errors[0].startswith("error: rank 0 of 2: another training process of the group stopped (connection closed")
    assert "other ranks' logs" in errors[0] and "memory" in errors[0] and "--max-restarts" in errors[0]
    assert f"torchrun restart 1: resuming {out} at epoch 1, step 4" in err  # the checkpoint before the kill
    assert f"torchrun restart 2: {out} holds a finished run (2 of 2 epochs); nothing to train" in err
    assert "holds an earlier run" not in err
    epoch_lines = [line.split()[1] for line in err.splitlines() if line.startswith("epoch ")]
    assert epoch_lines == ["1/2", "2/2"], err  # rank 0 only, each epoch once
    assert_same_run(out, reference)


def test_two_torchrun_agents_on_localhost_train_like_one_agent_of_two_ranks(tmp_path, data_dir, reference):
    """Multi-node with c10d rendezvous: two agents of one rank each; only rank 0's folder gets files."""
    rendezvous = ["--nnodes", "2", "--nproc-per-node", "1", "--rdzv-backend", "c10d",
                  "--rdzv-endpoint", f"127.0.0.1:{free_port()}", "--rdzv-id", "scale-out-test"]  # fmt: skip
    outs = [tmp_path / f"node{n}" for n in (0, 1)]
    nodes = [start(data_dir, rendezvous, train_args(out)) for out in outs]
    for code, err in [finish(node) for node in nodes]:
        assert code == 0, err[-3000:]
    written = [out for out in outs if (out / "last.safetensors").exists()]
    assert len(written) == 1 and not [out for out in outs if out not in written and out.exists()]
    assert_same_run(written[0], reference)


def test_sync_bn_on_two_gloo_ranks_trains_like_one_process_of_twice_the_batch(tmp_path, data_dir):
    """2 ranks of batch 4 with --sync-bn end 3 epochs with the weights, BatchNorm statistics and metrics of
    1 process of batch 8: the ranks hold the halves of its batches (test above), BatchNorm normalises
    over both halves, and each rank's cross-entropy is its share of the mean over all labelled pixels."""
    synced, alone = tmp_path / "synced", tmp_path / "alone"
    longer = ["--epochs", "3", "--set", "train.checkpoint_every=0"]
    code, err = torchrun(data_dir, TWO_RANKS, train_args(synced, *longer, "--sync-bn"))
    assert code == 0, err[-3000:]
    one = subprocess.run([sys.executable, "-m", "ldwseg", *train_args(alone, *longer, "--set", "train.batch_size=8")],
                         env=environment(data_dir), capture_output=True, text=True, timeout=240)  # fmt: skip
    assert one.returncode == 0, one.stderr[-3000:]
    (weights, rows), (ref_weights, ref_rows) = final_state(synced), final_state(alone)
    # Equal to float32 rounding only: the ranks add the same numbers in another order (BatchNorm
    # sums of two half batches, DDP's average of two gradients), and Adam amplifies it: where a
    # gradient is within rounding of zero, m / sqrt(v) is still of order 1, so that weight may move
    # by up to lr = 2e-3 per step in one run and not the other. After 18 steps the largest weight
    # gap was 2.2e-6 on one machine and 2.9e-3 on another (the losses 2e-8 and 6e-6 apart, the val
    # metrics equal on both). Without the global cross-entropy normalisation the gaps were 2.2e-2 on
    # the weights and 5e-3 on the losses, which these bounds still catch. A val pixel whose two
    # largest logits lie within rounding may change class: one pixel of the 16 val images of
    # 128 x 128 is 3.8e-6 of pixel accuracy and about as much of mIoU, so 1e-5 lets two through.
    assert weights.keys() == ref_weights.keys()
    for name in weights:
        torch.testing.assert_close(weights[name], ref_weights[name], rtol=0, atol=1e-2, msg=name)
    assert [(r["epoch"], r["lr"]) for r in rows] == [(r["epoch"], r["lr"]) for r in ref_rows]
    for row, ref in zip(rows, ref_rows):
        for key, tolerance in [("train_loss", 1e-4), ("task_loss", 1e-4), ("wavelet_loss", 1e-4),
                               ("val_miou", 1e-5), ("val_pixel_acc", 1e-5)]:  # fmt: skip
            assert abs(float(row[key]) - float(ref[key])) <= tolerance, (row["epoch"], key, row[key], ref[key])

    evaluated = runner.invoke(app, ["evaluate", str(synced / "best.safetensors"), "--device", "cpu", "--json"])
    assert evaluated.exit_code == 0, evaluated.output  # the synced run's checkpoint, in one process
    best = max(float(r["val_miou"]) for r in rows)
    assert json.loads(evaluated.output.strip().splitlines()[-1])["miou"] == pytest.approx(best, abs=1e-6)


def test_a_weight_average_on_two_ranks_is_validated_as_best_safetensors_holds_it(tmp_path, data_dir):
    """2 ranks with train.ema_decay and no --sync-bn: each rank's average holds BatchNorm statistics of its
    own batches, and rank 0's is the one saved. Validation gives every rank rank 0's first, so every shard is
    scored with the saved network and ``evaluate`` of best.safetensors reproduces the logged scores (equal
    when measured; the bound leaves room for the flipped pixels of the test above). With each rank's own
    statistics, the logged mIoU of this run was 1.0e-3 above evaluate's."""
    out = tmp_path / "run"
    average = ["--epochs", "3", "--set", "optim.lr=0.02", "--set", "train.ema_decay=0.5",
               "--set", "train.checkpoint_every=0"]  # fmt: skip
    code, err = torchrun(data_dir, TWO_RANKS, train_args(out, *average))
    assert code == 0, err[-3000:]
    _, rows = final_state(out)
    evaluated = runner.invoke(app, ["evaluate", str(out / "best.safetensors"), "--device", "cpu", "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    report = json.loads(evaluated.output.strip().splitlines()[-1])
    best = max(rows, key=lambda row: float(row["val_miou"]))
    assert report["miou"] == pytest.approx(float(best["val_miou"]), abs=1e-5)
    assert report["pixel_acc"] == pytest.approx(float(best["val_pixel_acc"]), abs=1e-5)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="SyncBatchNorm across ranks needs 2 CUDA devices")
def test_sync_bn_trains_on_two_gpus_and_its_checkpoint_evaluates_in_one_process(tmp_path, data_dir):
    out = tmp_path / "run"
    args = train_args(out, "--sync-bn", "--device", "cuda", "--set", "train.checkpoint_every=0")
    code, err = torchrun(data_dir, TWO_RANKS, args)
    assert code == 0, err[-3000:]
    result = runner.invoke(app, ["evaluate", str(out / "best.safetensors"), "--device", "cuda:0"])
    assert result.exit_code == 0, result.output


def test_sync_bn_is_ignored_in_one_process_and_keeps_batchnorm2d_checkpoints(tmp_path):
    out = tmp_path / "run"
    args = ["train", "--out", str(out), *RUN, "--epochs", "1", "--sync-bn", "--set", "train.max_steps_per_epoch=2"]
    trained = runner.invoke(app, args)
    assert trained.exit_code == 0, trained.output
    assert "--sync-bn (train.sync_bn) has no effect in one process (no torchrun group); ignoring it" in trained.output

    cfg = apply_overrides(load_config(None, {"data.dataset": "synthetic"}), ["model.base_width=4", "model.depth=2"])
    data = get_task("seg").data(cfg)
    model = build_model(cfg, data.out_channels)
    plain_keys = list(model.state_dict())
    synced = convert_sync_batchnorm(model)  # what a --sync-bn run on CPUs trains
    assert any(isinstance(m, SyncBatchNorm2d) for m in synced.modules())
    assert list(synced.state_dict()) == plain_keys
    saved = tmp_path / "synced.safetensors"
    save_run_checkpoint(saved, synced, cfg, data.record, epoch=0, metrics={})
    evaluated = runner.invoke(app, ["evaluate", str(saved), "--device", "cpu", "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    assert '"miou"' in evaluated.output
