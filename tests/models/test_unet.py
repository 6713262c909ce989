"""The UNet and its down/up variants."""

import dataclasses
import re
import types

import pytest
import torch
from torch.testing import assert_close

from ldwseg import LDWPool2d, wavelet_loss
from ldwseg.analysis.complexity import count_flops, count_parameters
from ldwseg.errors import ConfigError
from ldwseg.models import MAX_PARAMETERS, PoolOptions, UNet, build_unet, check_unet, unet_parameters

VARIANTS = [
    {"down": "maxpool", "up": "deconv"},
    {"down": "ldw", "up": "ldw"},
    {"down": "ldw", "up": "ldw-detail"},
    {"down": "ldw", "up": "deconv"},
    {"down": "ldw", "up": "ldw", "efficient": True},
    {"down": "ldw", "up": "ldw-detail", "efficient": True, "pool": PoolOptions(attention=False)},
    {"down": "ldw", "up": "ldw", "skip": False},
]


@pytest.mark.parametrize("kwargs", VARIANTS)
def test_any_size_in_same_size_out(kwargs):
    model = UNet(3, 5, base_width=4, **kwargs).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 333, 517)).shape == (1, 5, 333, 517)
        assert model(torch.randn(2, 3, 1, 7)).shape == (2, 5, 1, 7)


def test_reverse_pools_are_tied_to_the_encoder_pool_of_their_level():
    model = UNet(3, 2, base_width=4, down="ldw", up="ldw", pool=PoolOptions(wavelet="db2", constraint="lattice"))
    for i, up in enumerate(model.ups):
        assert up.unpool.pool is model.downs[len(model.downs) - 1 - i].pool
    pools = [m for m in model.modules() if isinstance(m, LDWPool2d)]
    assert len(pools) == 4
    ids = {id(p) for p in model.parameters()}
    assert len(ids) == len(list(model.parameters()))  # named once each


def test_ldw_unet_round_trips_each_level_through_its_paired_pool():
    model = UNet(3, 2, base_width=4, down="ldw", up="ldw", pool=PoolOptions(wavelet="db2", constraint="orthogonal"))
    for level in range(4):
        pool, unpool = model.downs[level].pool, model.ups[3 - level].unpool
        x = torch.randn(1, pool.channels, 21, 30)
        with torch.no_grad():
            assert_close(unpool(pool(x), output_size=x.shape[-2:]), x, atol=1e-5, rtol=0)


def test_detail_mode_uses_the_encoder_detail_bands():
    torch.manual_seed(0)
    model = UNet(3, 2, base_width=4, depth=1, down="ldw", up="ldw-detail").eval()
    x = torch.randn(1, 3, 16, 16)
    up = model.ups[0]
    seen = {}
    up.unpool.register_forward_pre_hook(lambda m, args: seen.setdefault("y", args[0].detach().clone()))
    with torch.no_grad():
        model(x)
        bands = model.downs[0].pool(model.stem(x))
    c = up.bands
    assert_close(seen["y"][:, c:], bands[:, c:])


def test_gradients_reach_every_parameter_and_the_filters():
    model = UNet(3, 4, base_width=4, down="ldw", up="ldw")
    loss = model(torch.randn(2, 3, 32, 32)).square().mean() + wavelet_loss(model)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing
    assert model.downs[0].pool.low.grad.abs().sum() > 0


def test_wavelet_loss_of_the_model_counts_each_pool_once():
    model = UNet(3, 2, base_width=4, down="ldw", up="ldw", pool=PoolOptions(constraint="paper"))
    assert_close(wavelet_loss(model), torch.tensor(8.0), atol=1e-5, rtol=0)  # 4 Haar pools, 2.0 each


def test_efficient_variant_keeps_the_parameter_count_down():
    counts = {
        name: count_parameters(UNet(3, 21, base_width=16, **kw))
        for name, kw in {
            "maxpool": {"down": "maxpool", "up": "deconv"},
            "ldw": {"down": "ldw", "up": "ldw"},
            "ldw_efficient": {"down": "ldw", "up": "ldw", "efficient": True},
        }.items()
    }
    assert counts["ldw"] > counts["maxpool"]
    assert abs(counts["ldw_efficient"] - counts["maxpool"]) < 0.1 * counts["maxpool"]
    unet = UNet(3, 21, base_width=8, down="ldw", up="ldw")
    assert count_flops(unet, (2, 3, 64, 64)) == 2 * count_flops(unet, (1, 3, 64, 64))  # per image, no hidden term


def test_state_dict_keys_are_those_of_the_checkpoints():
    model = UNet(3, 2, base_width=4, depth=1, down="ldw", up="ldw-detail", efficient=True)
    conv = [f"{i}.weight" for i in (0, 3)] + [
        f"{i}.{n}" for i in (1, 4) for n in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    ]
    pool = ["low", "high", "initial_low", "initial_high"]
    attention = ["running_mean", "running_var", "num_batches_tracked"]
    expected = (
        [f"stem.{k}" for k in sorted(conv)]
        + ["downs.0.reduce.weight"]
        + [f"downs.0.pool.{k}" for k in pool]
        + [f"downs.0.attention.norm.{k}" for k in attention]
        + [f"downs.0.attention.excite.{i}.{n}" for i in (0, 2) for n in ("weight", "bias")]
        + [f"downs.0.conv.{k}" for k in sorted(conv)]
        + ["ups.0.project.weight", "ups.0.project.bias"]
        + [f"ups.0.unpool.pool.{k}" for k in pool]
        + [f"ups.0.conv.{k}" for k in sorted(conv)]
        + ["head.weight", "head.bias"]
    )
    assert sorted(model.state_dict()) == sorted(expected)


def test_build_unet_reads_any_flat_spec():
    spec = types.SimpleNamespace(
        down="ldw",
        up="ldw-detail",
        base_width=4,
        depth=2,
        skip=False,
        efficient=True,
        norm="affine",
        wavelet="db2",
        kernel_size=4,
        constraint="lattice",
        attention=False,
        learn_filters=False,
    )
    torch.manual_seed(0)
    built = build_unet(spec, 3, 2)
    torch.manual_seed(0)
    direct = UNet(
        3,
        2,
        base_width=4,
        depth=2,
        down="ldw",
        up="ldw-detail",
        skip=False,
        efficient=True,
        norm="affine",
        pool=PoolOptions(wavelet="db2", kernel_size=4, constraint="lattice", attention=False, learn_filters=False),
    )
    assert built.state_dict().keys() == direct.state_dict().keys()
    for name, value in direct.state_dict().items():
        assert_close(built.state_dict()[name], value, atol=0, rtol=0)
    assert not built.downs[0].pool.angles.requires_grad


def test_pool_options_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        PoolOptions().wavelet = "db2"


def test_parameter_estimate_is_within_a_third_of_the_count():
    for kw in ({"down": "maxpool", "up": "deconv"}, {"down": "ldw", "up": "ldw"}):
        count = count_parameters(UNet(3, 21, base_width=16, **kw))
        assert 0.7 * count < unet_parameters(16, 4) < 1.3 * count


OK = {"base_width": 4, "depth": 4, "down": "ldw", "up": "ldw", "efficient": False, "pool": PoolOptions()}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"down": "avg"}, "down='avg' is not valid; choose one of maxpool, ldw, avgpool"),
        ({"up": "bilinear"}, "up='bilinear' is not valid; choose one of deconv, ldw, ldw-detail, shuffle"),
        (
            {"pool": PoolOptions(constraint="strict")},
            "constraint='strict' is not valid; choose one of paper, orthogonal",
        ),
        ({"base_width": 0}, "base_width must be >= 1, got 0"),
        ({"depth": 0}, "depth must be >= 1, got 0"),
        (
            {"down": "maxpool", "up": "ldw-detail"},
            "up='ldw-detail' reverses the LDW pool of the down block of its "
            "level with the subbands that block stores, but down='maxpool' has no LDW pool; with down=maxpool choose "
            "up from deconv, shuffle, or with up=ldw-detail choose down from ldw, ldw-ll, ldw-maxblur",
        ),
        ({"efficient": True, "base_width": 6}, "efficient needs base_width divisible by 4, got 6"),
        ({"pool": PoolOptions(kernel_size=1)}, "kernel_size must be >= 2"),
        ({"depth": 30}, "makes a UNet of about"),
        ({"pool": PoolOptions(wavelet="nosuch")}, "wavelet='nosuch' cannot be used: unknown wavelet"),
        ({"pool": PoolOptions(kernel_size=3)}, "wavelet='haar' cannot be used: kernel_size=3 does not match"),
    ],
)
def test_bad_arguments_raise_a_config_error_that_names_them(change, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        check_unet(**{**OK, **change})
    with pytest.raises(ConfigError, match=re.escape(message)):
        UNet(3, 2, **{**OK, **change})


def test_checks_name_the_fields_with_the_prefix():
    with pytest.raises(ConfigError, match=re.escape("with model.down=maxpool choose model.up from deconv, shuffle")):
        check_unet(**{**OK, "down": "maxpool"}, prefix="model.")
    with pytest.raises(ConfigError, match=re.escape(f"more than the {MAX_PARAMETERS:.0e}")):
        check_unet(**{**OK, "base_width": 10**9}, prefix="model.")


def test_filters_are_not_checked_without_ldw_pools():
    check_unet(**{**OK, "down": "maxpool", "up": "deconv", "pool": PoolOptions(wavelet="nosuch")})
