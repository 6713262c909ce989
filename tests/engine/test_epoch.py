"""One epoch in pieces equals one epoch whole; Precision moves and casts batches; StepWatch saves and stops."""

import pytest
import torch
from torch import nn

from ldwseg.engine.checkpoints import ResumePoint
from ldwseg.engine.distributed import DistInfo
from ldwseg.engine.epoch import EpochProgress, NonFiniteLossError, train_one_epoch
from ldwseg.engine.interrupt import StopRequests
from ldwseg.engine.precision import Precision
from ldwseg.engine.stopping import StepWatch
from ldwseg.errors import Interrupted

CPU = Precision(torch.device("cpu"))


def batches(count: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    return [(torch.rand(2, 3, 6, 5, generator=g), torch.rand(2, 2, 6, 5, generator=g)) for _ in range(count)]


def model_and_optimizer() -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = nn.Conv2d(3, 2, 3, padding=1)
    return model, torch.optim.SGD(model.parameters(), lr=0.1)


def test_an_epoch_resumed_after_two_steps_equals_the_whole_epoch():
    data = batches(4)
    model, optimizer = model_and_optimizer()
    whole = train_one_epoch(model, data, optimizer, nn.MSELoss(), precision=CPU, start=EpochProgress(3))

    part, part_optimizer = model_and_optimizer()
    seen: list[EpochProgress] = []
    train_one_epoch(part, data, part_optimizer, nn.MSELoss(), precision=CPU, max_steps=2, start=EpochProgress(3),
                    after_step=seen.append)  # fmt: skip
    assert [(p.epoch, p.step) for p in seen] == [(3, 1), (3, 2)]
    resumed = train_one_epoch(part, data[2:], part_optimizer, nn.MSELoss(), precision=CPU, start=seen[-1])

    assert resumed == whole
    for got, want in zip(part.parameters(), model.parameters()):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_a_nan_loss_names_the_epoch_and_step_of_the_start_point():
    model, optimizer = model_and_optimizer()
    data = batches(3)
    data[1][0][0, 0, 0, 0] = float("nan")
    with pytest.raises(NonFiniteLossError, match=r"the loss became nan at epoch 5, step 2") as info:
        train_one_epoch(model, data, optimizer, nn.MSELoss(), precision=CPU, start=EpochProgress(4))
    assert (info.value.epoch, info.value.step) == (4, 1)


def test_precision_moves_inputs_to_its_layout_and_casts_in_autocast():
    x = torch.rand(2, 3, 5, 4)
    nhwc = Precision(torch.device("cpu"), amp="bf16", channels_last=True)
    moved = nhwc.inputs(x)
    assert moved.is_contiguous(memory_format=torch.channels_last) and torch.equal(moved, x)
    assert CPU.inputs(x).is_contiguous()
    conv = nn.Conv2d(3, 4, 3)
    with nhwc.autocast():
        assert conv(moved).dtype == torch.bfloat16
    with CPU.autocast():
        assert conv(x).dtype == torch.float32


def test_precision_rejects_an_unknown_amp_mode():
    with pytest.raises(ValueError, match=r"amp must be one of off, bf16, fp16, got 'fp8'"):
        Precision(torch.device("cpu"), amp="fp8")


class FakeSaver:
    def __init__(self, out, every: int) -> None:
        self.out, self.every, self.saved = out, every, []

    def due(self, step: int) -> bool:
        return step % self.every == 0

    def save(self, point: ResumePoint, metrics: dict) -> None:
        self.saved.append((point, metrics))


def test_step_watch_saves_on_schedule_and_stops_after_saving(tmp_path):
    saver, stop = FakeSaver(tmp_path, every=2), StopRequests()
    best = {"score": 0.5, "epoch": 0}
    watch = StepWatch(saver, stop, DistInfo(), torch.device("cpu"), start=EpochProgress(1), best=best)
    watch(EpochProgress(1, 1, {"train_loss": 1.0}))
    assert saver.saved == []
    watch(EpochProgress(1, 2, {"train_loss": 2.0}))
    assert saver.saved == [(ResumePoint(1, 2, {"train_loss": 2.0}, best), {"step_in_epoch": 2})]
    stop.signal = "SIGTERM"
    with pytest.raises(Interrupted, match=r"stopped by SIGTERM at epoch 2, step 3; saved .*--resume") as info:
        watch(EpochProgress(1, 3, {"train_loss": 3.0}))
    assert info.value.exit_code == 143
    assert saver.saved[-1] == (ResumePoint(1, 3, {"train_loss": 3.0}, best), {"step_in_epoch": 3})
