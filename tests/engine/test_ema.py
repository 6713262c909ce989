"""The weight average (train.ema_decay): its recurrence, what a run delivers, exact resume."""

import pytest
import torch
from run_checks import assert_same_run, cli, final_state
from safetensors.torch import load_file
from torch import nn

from ldwseg.config import Config, apply_overrides
from ldwseg.engine.ema import WeightAverage, build_weight_average
from ldwseg.errors import ConfigError
from ldwseg.io.training_state import load_training_state

TINY = [
    "--set", "model.base_width=4", "--set", "data.crop_size=32", "--set", "train.batch_size=4",
    "--set", "train.max_steps_per_epoch=3", "--device", "cpu",
]  # fmt: skip
EMA = ["--set", "train.ema_decay=0.5"]


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 2, 1))


def _floats(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items() if v.is_floating_point()}


def test_the_average_copies_the_first_step_then_follows_the_recurrence():
    model, decay = _net(), 0.75
    average = WeightAverage(model, decay)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    g = torch.Generator().manual_seed(3)
    reference: dict[str, torch.Tensor] | None = None
    for _ in range(4):
        x, y = torch.randn(2, 3, 6, 6, generator=g), torch.randn(2, 2, 6, 6, generator=g)
        optimizer.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()
        average.update()
        now = _floats(model)
        reference = now if reference is None else {k: decay * reference[k] + (1 - decay) * now[k] for k in now}
        got = _floats(average.module)
        assert got.keys() == reference.keys()  # weights and BatchNorm's running statistics
        for name in got:
            torch.testing.assert_close(got[name], reference[name], msg=name)
    assert not any(p.requires_grad for p in average.module.parameters())


def test_the_update_is_torchs_averaged_model_bit_for_bit():
    """Against torch's own ``AveragedModel.update_parameters`` with its EMA function: every
    parameter and buffer (BatchNorm's integer counter too) and the step count, exactly."""
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    model, decay = _net(), 0.9
    average = WeightAverage(model, decay)
    reference = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    g = torch.Generator().manual_seed(5)
    for _ in range(5):
        optimizer.zero_grad()
        nn.functional.mse_loss(
            model(torch.randn(2, 3, 6, 6, generator=g)), torch.randn(2, 2, 6, 6, generator=g)
        ).backward()
        optimizer.step()
        average.update()
        reference.update_parameters(model)
        got, expected = average.state_dict(), reference.state_dict()
        assert got.keys() == expected.keys()
        for name in got:
            torch.testing.assert_close(got[name], expected[name], rtol=0, atol=0, msg=name)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_an_update_never_waits_for_the_gpu():
    model = _net().cuda()
    average = WeightAverage(model, 0.9)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")  # a synchronising call raises
    try:
        for _ in range(3):
            average.update()
    finally:
        torch.cuda.set_sync_debug_mode(0)


def test_a_decay_of_zero_keeps_no_average_and_one_is_refused():
    assert build_weight_average(_net(), 0.0) is None
    for bad in ("1.0", "-0.1"):
        with pytest.raises(ConfigError, match=r"train.ema_decay must be in \[0, 1\)"):
            apply_overrides(Config(), [f"train.ema_decay={bad}"]).validate()


@pytest.mark.slow
@pytest.mark.usefixtures("private_data")
def test_a_run_delivers_its_average_and_resumes_it_exactly(tmp_path):
    whole, halves = tmp_path / "whole", tmp_path / "halves"
    assert cli("train", *TINY, *EMA, "--epochs", "2", "--out", whole).code == 0
    assert cli("train", *TINY, *EMA, "--epochs", "1", "--out", halves).code == 0
    refused = cli("train", *TINY, "--epochs", "2", "--resume", "--out", halves)  # without the average
    assert refused.code != 0 and "train.ema_decay" in refused.err and "config.yaml" in refused.err, refused.err
    assert load_training_state(halves / "last.state.pt")["epoch"] == 1  # the refused resume trained nothing
    assert cli("train", *TINY, *EMA, "--epochs", "2", "--resume", "--out", halves).code == 0
    assert_same_run(halves, final_state(whole))  # the average went on exactly where it stopped

    state = load_training_state(whole / "last.state.pt")
    delivered, raw = load_file(whole / "last.safetensors"), state["model"]
    averaged = {k.removeprefix("module."): v for k, v in state["ema"].items() if k.startswith("module.")}
    assert delivered.keys() <= averaged.keys()  # safetensors stores a tied filter bank once
    for name in delivered:
        torch.testing.assert_close(delivered[name], averaged[name], rtol=0, atol=0, msg=name)
    moved = [k for k in delivered if delivered[k].is_floating_point() and not torch.equal(delivered[k], raw[k])]
    assert moved  # the checkpoint holds the average, not the last step's weights
