"""The GPU input pipeline and the loop without a host read per step: loss sums kept on the device, a NaN
found at the next read with its step, no update from a non-finite loss; workers, pinned memory, cuDNN.

Every loop test runs on the CPU, with reads deferred (``read_every``) as off the CPU, and on CUDA when
there is one.
"""

import pytest
import torch
from torch import nn

from ldwseg.config import Config, apply_overrides
from ldwseg.engine.build import MAX_DEFAULT_WORKERS, data_workers, get_loaders
from ldwseg.engine.distributed import DistInfo
from ldwseg.engine.epoch import (
    DEVICE_READ_EVERY,
    EpochProgress,
    LossTotals,
    NonFiniteLossError,
    train_one_epoch,
)  # fmt: skip
from ldwseg.engine.precision import Precision, cudnn_autotuner
from ldwseg.errors import ConfigError
from ldwseg.tasks import get_task

DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")),
]
NEVER = 10**6  # read_every: only when asked and at the end


def batches(count: int, nan_at: int | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    data = [(torch.rand(2, 3, 6, 5, generator=g), torch.rand(2, 2, 6, 5, generator=g)) for _ in range(count)]
    if nan_at is not None:
        data[nan_at][0][0, 0, 0, 0] = float("nan")
    return data


def model_and_optimizer(device: str) -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = nn.Conv2d(3, 2, 3, padding=1).to(device)
    return model, torch.optim.SGD(model.parameters(), lr=0.1)  # no momentum: a zero gradient moves nothing


def train(device: str, data, **kwargs) -> tuple[dict, nn.Module]:
    model, optimizer = model_and_optimizer(device)
    precision = Precision(torch.device(device))
    stats = train_one_epoch(model, data, optimizer, nn.MSELoss(), precision=precision, **kwargs)
    return stats, model


@pytest.mark.parametrize("device", DEVICES)
def test_deferred_reads_train_exactly_as_reading_every_step(device):
    data = batches(5)
    every_step, model = train(device, data, read_every=1)
    deferred, deferred_model = train(device, data, read_every=NEVER)
    assert deferred == every_step
    for got, want in zip(deferred_model.parameters(), model.parameters()):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


@pytest.mark.parametrize("device", DEVICES)
def test_checkpoints_read_the_sums_of_their_step_and_a_resumed_epoch_is_exact(device):
    data = batches(4)
    whole, model = train(device, data, read_every=NEVER)
    seen: list[EpochProgress] = []
    part, optimizer = model_and_optimizer(device)
    precision = Precision(torch.device(device))
    train_one_epoch(part, data, optimizer, nn.MSELoss(), precision=precision, max_steps=2, start=EpochProgress(3),
                    after_step=seen.append, read_every=NEVER)  # fmt: skip
    first, second = (p.sums for p in seen)  # read after the epoch: each keeps the sums of its own step
    assert first["train_loss"] < second["train_loss"] and set(first) == {"train_loss", "task_loss", "wavelet_loss"}
    resume = EpochProgress(3, 2, dict(second))  # as a checkpoint stores it
    resumed = train_one_epoch(part, data[2:], optimizer, nn.MSELoss(), precision=precision, start=resume,
                              read_every=NEVER)  # fmt: skip
    assert resumed == whole
    for got, want in zip(part.parameters(), model.parameters()):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


@pytest.mark.parametrize("device", DEVICES)
def test_a_nan_loss_found_at_a_later_read_names_its_step_and_updated_nothing(device):
    data = batches(4, nan_at=1)
    precision = Precision(torch.device(device))
    model, optimizer = model_and_optimizer(device)
    steps: list[int] = []
    with pytest.raises(NonFiniteLossError, match=r"the loss became nan at epoch 5, step 2 \(task loss nan") as info:
        train_one_epoch(model, data, optimizer, nn.MSELoss(), precision=precision, start=EpochProgress(4),
                        read_every=NEVER, after_step=lambda p: steps.append(p.step))  # fmt: skip
    assert (info.value.epoch, info.value.step) == (4, 1)
    assert steps == [1, 2, 3, 4]  # found at the read at the end; every step but the bad one updated the weights
    _, reference = train(device, [data[0], data[2], data[3]])
    for got, want in zip(model.parameters(), reference.parameters()):
        assert torch.isfinite(got).all()
        torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_a_checkpoint_after_a_nan_step_raises_before_anything_is_saved():
    saved: list[int] = []

    def save_every_third(progress: EpochProgress) -> None:
        if progress.step % 3 == 0:
            sums = progress.sums  # what a checkpoint stores: read first, so a NaN raises here
            saved.append((progress.step, sums["train_loss"]))

    model, optimizer = model_and_optimizer("cpu")
    with pytest.raises(NonFiniteLossError, match=r"at epoch 1, step 5 "):
        train_one_epoch(model, batches(8, nan_at=4), optimizer, nn.MSELoss(), precision=Precision(torch.device("cpu")),
                        read_every=NEVER, after_step=save_every_third)  # fmt: skip
    assert [step for step, _ in saved] == [3]


def test_with_a_loss_scaler_a_nan_step_is_skipped_by_the_scaler():
    """The deferred check hands a non-finite step to the scaler as an overflow: no update, the scale backs off."""
    data = batches(3, nan_at=1)
    model, optimizer = model_and_optimizer("cpu")
    scaler = torch.amp.GradScaler("cpu", init_scale=8.0)
    reference, reference_optimizer = model_and_optimizer("cpu")
    train_one_epoch(reference, [data[0], data[2]], reference_optimizer, nn.MSELoss(),
                    precision=Precision(torch.device("cpu")), scaler=torch.amp.GradScaler("cpu", init_scale=8.0))  # fmt: skip
    with pytest.raises(NonFiniteLossError, match=r"step 2 "):
        train_one_epoch(model, data, optimizer, nn.MSELoss(), precision=Precision(torch.device("cpu")), scaler=scaler,
                        read_every=NEVER)  # fmt: skip
    assert scaler.get_scale() == 4.0  # one step skipped
    for got, want in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_loss_totals_add_in_float64_in_step_order_and_keep_the_first_bad_step():
    totals = LossTotals.start({"train_loss": 1.5, "task_loss": 1.0, "wavelet_loss": 0.25}, epoch=0, device="cpu")
    totals, finite = totals.add(3, torch.tensor([0.1, 0.2, 0.3]))
    assert bool(finite)
    want = [1.5 + float(torch.tensor(0.1)), 1.0 + float(torch.tensor(0.2)), 0.25 + float(torch.tensor(0.3))]
    assert list(totals.read().values()) == want  # as the Python floats of earlier versions summed them
    bad, finite = totals.add(4, torch.tensor([float("inf"), 0.5, 0.0]))
    worse, _ = bad.add(5, torch.tensor([float("nan"), 0.5, 0.0]))
    assert not bool(finite)
    assert totals.read() == dict(zip(("train_loss", "task_loss", "wavelet_loss"), want))  # earlier totals unchanged
    with pytest.raises(NonFiniteLossError, match=r"the loss became inf at epoch 1, step 5 \(task loss 0.5"):
        worse.read()


def test_the_default_read_interval_is_every_step_on_the_cpu_only():
    assert DEVICE_READ_EVERY > 1
    model, optimizer = model_and_optimizer("cpu")
    calls = []
    with pytest.raises(NonFiniteLossError):  # read before the bad step takes its optimizer step
        train_one_epoch(model, batches(4, nan_at=1), optimizer, nn.MSELoss(), precision=Precision(torch.device("cpu")),
                        after_step=lambda p: calls.append(p.step))  # fmt: skip
    assert calls == [1]


# --- the input pipeline ------------------------------------------------------------------------------------------


def test_data_workers_default_to_none_on_the_cpu_and_to_the_cores_on_cuda(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(32)), raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert data_workers(None, cpu) == 0
    assert data_workers(None, cuda) == MAX_DEFAULT_WORKERS
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")  # 8 torchrun processes share the 32 cores
    assert data_workers(None, cuda) == 4
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0}, raising=False)
    assert data_workers(None, cuda) == 1
    assert data_workers(3, cpu) == 3 and data_workers(0, cuda) == 0  # a number given is kept


@pytest.mark.usefixtures("private_data")
def test_loaders_for_cuda_pin_memory_and_start_workers_and_for_the_cpu_neither(monkeypatch):
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    cfg = apply_overrides(Config(), ["data.crop_size=32"])
    data = get_task("seg").data(cfg)
    for device, pinned, workers in [
        (None, False, 0),
        ("cpu", False, 0),
        ("cuda", True, data_workers(None, torch.device("cuda"))),
    ]:
        loaders = get_loaders(data, cfg, DistInfo(), None if device is None else torch.device(device))[:2]
        assert [(loader.pin_memory, loader.num_workers) for loader in loaders] == [(pinned, workers)] * 2
    loaders = get_loaders(data, apply_overrides(cfg, ["data.num_workers=0"]), DistInfo(), torch.device("cuda"))[:2]
    assert [loader.num_workers for loader in loaders] == [0, 0]


def test_num_workers_is_a_count_or_null():
    assert Config().data.num_workers is None
    assert apply_overrides(Config(), ["data.num_workers=null"]).data.num_workers is None
    with pytest.raises(ConfigError, match=r"data.num_workers must be >= 0 \(or null: the device's default\), got -1"):
        apply_overrides(Config(), ["data.num_workers=-1"])


def test_cudnn_autotuner_is_on_while_training_on_cuda_and_restored_after():
    before = torch.backends.cudnn.benchmark
    try:
        torch.backends.cudnn.benchmark = False
        with cudnn_autotuner(torch.device("cpu")):
            assert torch.backends.cudnn.benchmark is False
        with cudnn_autotuner(torch.device("cuda")):
            assert torch.backends.cudnn.benchmark is True
        assert torch.backends.cudnn.benchmark is False
    finally:
        torch.backends.cudnn.benchmark = before


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
def test_a_cuda_epoch_never_waits_for_the_gpu_between_reads():
    """``torch.cuda.set_sync_debug_mode("error")`` turns every host synchronisation into an error."""
    model, optimizer = model_and_optimizer("cuda")
    data = [(x.pin_memory(), y.pin_memory()) for x, y in batches(4)]
    loader = iter(data)
    precision = Precision(torch.device("cuda"))
    steps = []

    def no_sync_steps(batches_):
        for batch in batches_:
            torch.cuda.set_sync_debug_mode("error")
            yield batch
        torch.cuda.set_sync_debug_mode("default")  # the final read synchronises, by design

    try:
        train_one_epoch(model, loader, optimizer, nn.MSELoss(), precision=precision, progress=no_sync_steps,
                        read_every=NEVER, after_step=lambda p: steps.append(p.step))  # fmt: skip
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert steps == [1, 2, 3, 4]
