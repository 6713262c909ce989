"""The optimizer's parameter groups and the three learning-rate schedules."""

from __future__ import annotations

import math

import pytest
import torch

from ldwseg.config import Config, ConfigError, OptimConfig
from ldwseg.engine.optim import build_optimizer, build_scheduler, filter_parameters
from ldwseg.models import PoolOptions, UNet
from ldwseg.pooling import LDWPool2d


def _unet(**pool) -> UNet:
    torch.manual_seed(0)
    return UNet(3, 2, base_width=4, depth=2, down="ldw", up="ldw", pool=PoolOptions(**pool))


def test_filter_parameters_are_the_pools_own():
    model = _unet(wavelet="db2", constraint="lattice")
    pools = [m for m in model.modules() if isinstance(m, LDWPool2d)]
    expected = {id(m.angles) for m in pools}
    assert {id(p) for p in filter_parameters(model)} == expected
    assert len(filter_parameters(model)) == len(pools) == 2


def test_filters_get_no_weight_decay():
    """With zero gradients Adam's L2 term alone moves the weights: it must move the convs, not the filters."""
    model = _unet(wavelet="db2", constraint="orthogonal")
    optim = OptimConfig(lr=1e-2, weight_decay=0.5)
    optimizer = build_optimizer(model, optim)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    moved = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    filters = {name for name, _ in model.named_parameters() if name.endswith((".low", ".high"))}
    assert filters and not (moved & filters)
    assert any(name.endswith("weight") for name in moved)


def test_filter_lr_sets_the_filters_group():
    model = _unet(wavelet="db2", constraint="lattice")
    optimizer = build_optimizer(model, OptimConfig(lr=1e-3, filter_lr=5e-2))
    weights, norms, filters = optimizer.param_groups
    assert (weights["lr"], filters["lr"], filters["weight_decay"]) == (1e-3, 5e-2, 0.0)
    assert weights["weight_decay"] == OptimConfig().weight_decay and norms["weight_decay"] == 0.0
    only = build_optimizer(torch.nn.Conv2d(1, 1, 1, bias=False), OptimConfig())
    assert len(only.param_groups) == 1


def test_biases_and_norms_get_no_weight_decay_unless_asked():
    model = _unet(wavelet="db2", constraint="lattice")
    names = {id(p): n for n, p in model.named_parameters()}
    groups = build_optimizer(model, OptimConfig()).param_groups
    decayed = {names[id(p)] for p in groups[0]["params"]}
    plain = {names[id(p)] for p in groups[1]["params"]}
    norms = {
        f"{m}.{p}"
        for m, mod in model.named_modules()
        if isinstance(mod, torch.nn.BatchNorm2d)
        for p, _ in mod.named_parameters(recurse=False)
    }
    biases = {n for n, _ in model.named_parameters() if n.endswith(".bias")}
    assert plain == norms | biases
    assert decayed and all(model.get_parameter(n).ndim > 1 for n in decayed)
    everything = build_optimizer(model, OptimConfig(norm_bias_decay=True)).param_groups
    assert len(everything) == 2 and {names[id(p)] for p in everything[0]["params"]} == decayed | plain


@pytest.mark.parametrize(
    "name, cls, extra",
    [("adam", torch.optim.Adam, {}), ("adamw", torch.optim.AdamW, {}),
     ("sgd", torch.optim.SGD, {"momentum": 0.8, "nesterov": True})],
)  # fmt: skip
def test_the_optimizer_by_name_takes_its_options(name, cls, extra):
    optimizer = build_optimizer(_unet(), OptimConfig(name=name, lr=0.01, **extra))
    assert type(optimizer) is cls
    if name == "sgd":
        assert optimizer.param_groups[0]["momentum"] == 0.8 and optimizer.param_groups[0]["nesterov"] is True


def test_adamw_decays_decoupled_from_the_gradient():
    """With zero gradients AdamW shrinks a decayed weight by exactly lr * wd * w; Adam's L2 moves it by lr."""
    conv = torch.nn.Conv2d(1, 1, 3, bias=False)
    before = conv.weight.detach().clone()
    optimizer = build_optimizer(conv, OptimConfig(name="adamw", lr=0.1, weight_decay=0.5))
    conv.weight.grad = torch.zeros_like(conv.weight)
    optimizer.step()
    torch.testing.assert_close(conv.weight.detach(), before * (1 - 0.1 * 0.5))


def _lrs(optim: OptimConfig, epochs: int, steps: int = 1) -> list[float]:
    """The lr of every optimizer step of ``epochs`` epochs of ``steps`` steps, stepping the schedule as training does."""
    optimizer = build_optimizer(torch.nn.Conv2d(1, 1, 1), optim)
    scheduler = build_scheduler(optimizer, optim, epochs, steps)
    lrs = []
    for _ in range(epochs * steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


def test_poly_schedule_follows_its_formula():
    optim = OptimConfig(lr=0.1, schedule="poly", power=0.9)
    expected = [0.1 * (1 - e / 5) ** 0.9 for e in range(5)]
    torch.testing.assert_close(torch.tensor(_lrs(optim, 5)), torch.tensor(expected))


def test_cosine_schedule_follows_its_formula():
    optim = OptimConfig(lr=0.1, schedule="cosine")
    expected = [0.05 * (1 + math.cos(math.pi * e / 6)) for e in range(6)]
    torch.testing.assert_close(torch.tensor(_lrs(optim, 6)), torch.tensor(expected))


def test_step_schedule_follows_its_formula():
    optim = OptimConfig(lr=0.1, step_size=2, gamma=0.5)
    torch.testing.assert_close(torch.tensor(_lrs(optim, 5)), torch.tensor([0.1, 0.1, 0.05, 0.05, 0.025]))


def test_by_epoch_schedules_hold_the_rate_through_each_epoch():
    optim = OptimConfig(lr=0.1, schedule="poly", power=0.9)
    expected = [0.1 * (1 - e / 4) ** 0.9 for e in range(4) for _ in range(3)]
    torch.testing.assert_close(torch.tensor(_lrs(optim, 4, steps=3)), torch.tensor(expected))


@pytest.mark.parametrize("schedule", ["poly", "cosine"])
def test_per_step_schedules_follow_their_formula_at_every_step(schedule):
    optim = OptimConfig(lr=0.1, schedule=schedule, power=0.9, by_epoch=False)
    total = 4 * 3
    if schedule == "poly":
        expected = [0.1 * (1 - i / total) ** 0.9 for i in range(total)]
    else:
        expected = [0.05 * (1 + math.cos(math.pi * i / total)) for i in range(total)]
    torch.testing.assert_close(torch.tensor(_lrs(optim, 4, steps=3)), torch.tensor(expected))


def test_warmup_ramps_linearly_then_hands_over_to_the_schedule():
    optim = OptimConfig(lr=0.1, schedule="poly", power=1.0, by_epoch=False, warmup_steps=4)
    lrs = _lrs(optim, 2, steps=5)
    decay = [1 - i / 10 for i in range(10)]
    expected = [0.1 * decay[i] * min(1.0, (i + 1) / 4) for i in range(10)]
    torch.testing.assert_close(torch.tensor(lrs), torch.tensor(expected))
    assert lrs[0] == pytest.approx(0.1 * 0.25) and lrs[4] == pytest.approx(0.1 * decay[4])


def test_the_schedule_resumes_from_its_state_dict():
    """A run stopped mid-epoch goes on with the lr it would have had."""
    optim = OptimConfig(lr=0.1, schedule="cosine", by_epoch=False, warmup_steps=3)
    whole = _lrs(optim, 3, steps=4)
    optimizer = build_optimizer(torch.nn.Conv2d(1, 1, 1), optim)
    scheduler = build_scheduler(optimizer, optim, 3, 4)
    for _ in range(5):
        optimizer.step()
        scheduler.step()
    state = scheduler.state_dict()
    optimizer2 = build_optimizer(torch.nn.Conv2d(1, 1, 1), optim)
    scheduler2 = build_scheduler(optimizer2, optim, 3, 4)
    scheduler2.load_state_dict(state)
    assert scheduler2.get_last_lr()[0] == pytest.approx(whole[5])


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("schedule", "onecycle", "optim.schedule"),
        ("power", 0.0, "optim.power"),
        ("filter_lr", -1.0, "optim.filter_lr"),
        ("warmup_steps", -1, "optim.warmup_steps"),
        ("name", "lamb", "optim.name"),
        ("momentum", 1.0, "optim.momentum"),
        ("nesterov", True, "optim.nesterov"),
    ],
)
def test_bad_optim_values_are_named(field, value, message):
    cfg = Config()
    setattr(cfg.optim, field, value)
    with pytest.raises(ConfigError, match=message):
        cfg.validate()


@pytest.mark.parametrize("device", ["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
def test_the_optimizer_is_fused_on_cuda_only(device):
    model = torch.nn.Conv2d(1, 2, 3).to(device)
    for name in ("adam", "adamw", "sgd"):
        group = build_optimizer(model, OptimConfig(name=name)).param_groups[0]
        assert bool(group.get("fused")) == (device == "cuda")
