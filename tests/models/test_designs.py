"""Every down block: shapes, pairing with the decoders, filters that learn or stay fixed, parameter counts."""

import re

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from ldwseg import EnergyAttention, LDWPool2d, wavelet_loss
from ldwseg.analysis.complexity import count_parameters
from ldwseg.errors import ConfigError
from ldwseg.models import DOWNSAMPLERS, UPSAMPLERS, PoolOptions, UNet, check_unet, create_down, downs_for, ups_for
from ldwseg.models.layers.blur import max_filter2d

NEW_DOWNS = [name for name in DOWNSAMPLERS if name not in ("maxpool", "ldw")]
PAIRS = [(down, up) for down, block in DOWNSAMPLERS.items() for up in ups_for(block)]
BAD_PAIRS = [(down, up) for down, block in DOWNSAMPLERS.items() for up in UPSAMPLERS if up not in ups_for(block)]
LDW_DOWNS = [name for name, block in DOWNSAMPLERS.items() if block.ldw_pool]
LEARNABLE = PoolOptions(wavelet="db2", constraint="lattice")  # K = 4: something to learn
SENSIBLE_UP = {name: "ldw-detail" if block.ldw_pool else "deconv" for name, block in DOWNSAMPLERS.items()}


def encoder_parameters(model: UNet) -> int:
    """Parameters of the down blocks, the LDW filters left out."""
    return sum(
        p.numel() for block in model.downs for name, p in block.named_parameters() if not name.startswith("pool.")
    )


@pytest.mark.parametrize("size", [(16, 16), (33, 47), (1, 1)])
@pytest.mark.parametrize("name", list(DOWNSAMPLERS))
def test_every_down_block_halves_the_size_with_ceil(name, size):
    block = DOWNSAMPLERS[name]
    h, w = size
    y, bands = create_down(name, 8, 12)(torch.randn(2, 8, h, w))
    assert y.shape == (2, 12, (h + 1) // 2, (w + 1) // 2)
    if block.stores_bands and block.band_kind == "residual":
        assert bands.shape == (2, 8, h, w)
    elif block.stores_bands:
        pooled = 8 // 4 if block.reduces else 8
        assert bands.shape == (2, 4 * pooled, (h + 1) // 2, (w + 1) // 2)
    else:
        assert bands is None


@pytest.mark.parametrize(("down", "up"), PAIRS)
def test_unet_logits_have_the_input_size_for_every_valid_pair(down, up):
    model = UNet(3, 5, base_width=4, depth=3, down=down, up=up, pool=LEARNABLE).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 33, 47)).shape == (1, 5, 33, 47)
        assert model(torch.randn(2, 3, 1, 7)).shape == (2, 5, 1, 7)


def test_the_pairing_table():
    assert ups_for(DOWNSAMPLERS["spd"]) == ["deconv", "shuffle"]
    assert ups_for(DOWNSAMPLERS["ldw-ll"]) == ["deconv", "ldw", "ldw-detail", "shuffle"]
    assert downs_for(UPSAMPLERS["ldw-detail"]) == LDW_DOWNS
    assert set(LDW_DOWNS) == {"ldw", "ldw-ll", "ldw-maxblur", "ldw-hwd", "ldw-grouped", "ldw-efficient", "ldw-shortcut"}


@pytest.mark.parametrize(("down", "up"), BAD_PAIRS)
def test_bad_pairs_are_refused_in_one_line_listing_the_valid_ones(down, up):
    valid = ", ".join(ups_for(DOWNSAMPLERS[down]))
    with pytest.raises(ConfigError, match=re.escape(f"with model.down={down} choose model.up from {valid}, or")) as err:
        check_unet(base_width=4, depth=2, down=down, up=up, efficient=False, pool=PoolOptions(), prefix="model.")
    downs = ", ".join(downs_for(UPSAMPLERS[up]))
    assert "\n" not in str(err.value) and f"choose model.down from {downs}" in str(err.value)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"down": "ldw-grouped", "base_width": 3}, "down='ldw-grouped' needs output channels divisible by 4, but"),
        ({"down": "spd-grouped", "base_width": 1}, "2 * base_width = 2; use a base_width divisible by 2"),
        ({"down": "blurpool", "efficient": True}, "efficient=true reduces the channels before the 2x2 split of down="),
        ({"down": "ldw-ll", "efficient": True}, "down='ldw-ll' has no such split, set efficient=false"),
        (
            {"down": "ldw-efficient", "efficient": True},
            "down='ldw-efficient' reduces the channels before its split already",
        ),
        ({"down": "spd-efficient", "base_width": 6}, "down='spd-efficient' needs input channels divisible by 4, but"),
        ({"down": "ldw-hwd", "pool": PoolOptions(wavelet="nosuch")}, "wavelet='nosuch' cannot be used"),
    ],
)
def test_bad_options_name_the_fix(change, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        check_unet(**{"base_width": 4, "depth": 2, "up": "deconv", "efficient": False, "pool": PoolOptions(), **change})


def test_efficient_applies_to_every_block_with_a_split():
    for name in ("spd", "ldw-hwd", "spd-hwd", "ldw-grouped", "spd-grouped"):
        y, _ = create_down(name, 8, 12, efficient=True)(torch.randn(1, 8, 9, 9))
        assert y.shape == (1, 12, 5, 5)
    check_unet(base_width=4, depth=2, down="spd", up="shuffle", efficient=True, pool=PoolOptions())


@pytest.mark.parametrize("name", LDW_DOWNS)
def test_gradients_reach_the_filters_only_when_they_learn(name):
    for learn in (True, False):
        pool = PoolOptions(wavelet="db2", constraint="lattice", learn_filters=learn)
        model = UNet(3, 2, base_width=4, depth=2, down=name, up="ldw", pool=pool)
        (model(torch.randn(2, 3, 17, 20)).square().mean() + wavelet_loss(model)).backward()
        angles = [m.angles for m in model.modules() if isinstance(m, LDWPool2d)]
        assert len(angles) == 2 and all(a.requires_grad is learn for a in angles)
        if learn:
            assert all(a.grad is not None and a.grad.abs().sum() > 0 for a in angles)
        else:
            assert all(a.grad is None for a in angles)
        missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
        assert not missing


@pytest.mark.parametrize("constraint", ["orthogonal", "lattice", "paper"])
def test_fixed_filters_stay_the_initial_wavelet_through_optimizer_steps(constraint):
    def train_steps(learn: bool) -> tuple[list[LDWPool2d], list[dict[str, torch.Tensor]]]:
        torch.manual_seed(0)
        pool = PoolOptions(wavelet="db2", constraint=constraint, learn_filters=learn)
        model = UNet(3, 2, base_width=4, depth=2, down="ldw-ll", up="ldw-detail", pool=pool)
        pools = [m for m in model.modules() if isinstance(m, LDWPool2d)]
        start = [{k: v.detach().clone() for k, v in p.named_parameters()} for p in pools]
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2, weight_decay=1e-4)  # as the engine builds it
        for _ in range(3):
            optimizer.zero_grad()
            (model(torch.randn(2, 3, 16, 16)).square().mean() + wavelet_loss(model)).backward()
            optimizer.step()
        return pools, start

    for learn in (False, True):
        pools, start = train_steps(learn)
        same = [all(torch.equal(v, dict(p.named_parameters())[k]) for k, v in s.items()) for p, s in zip(pools, start)]
        assert same == [not learn] * 2
        if not learn:  # the db2 bank itself (the lattice rebuilds it from its angles, to rounding)
            tolerance = {"atol": 1e-6, "rtol": 0} if constraint == "lattice" else {"atol": 0, "rtol": 0}
            for p in pools:
                assert_close(torch.stack(p.filters()), torch.stack((p.initial_low, p.initial_high)), **tolerance)
    names = {k for k, _ in train_steps(False)[0][0].named_parameters()}
    assert names == {k for k, _ in train_steps(True)[0][0].named_parameters()}  # the same checkpoint keys


@pytest.mark.parametrize("name", ["avgpool", "blurpool", "spd-grouped"])
def test_fixed_designs_have_exactly_the_max_pool_unet_parameters(name):
    maxpool = UNet(3, 21, base_width=16, down="maxpool", up="deconv")
    other = UNet(3, 21, base_width=16, down=name, up="deconv", pool=PoolOptions(attention=False))
    assert count_parameters(other) == count_parameters(maxpool)


@pytest.mark.parametrize("name", ["ldw-ll", "ldw-maxblur", "ldw-grouped"])
@pytest.mark.parametrize("pool", [PoolOptions(attention=False), PoolOptions(wavelet="db2", constraint="lattice")])
def test_ldw_designs_have_the_max_pool_convs_plus_the_filters(name, pool):
    maxpool = UNet(3, 21, base_width=16, down="maxpool", up="deconv")
    if name == "ldw-grouped":
        pool = PoolOptions(wavelet=pool.wavelet, constraint=pool.constraint, attention=False)
    model = UNet(3, 21, base_width=16, down=name, up="deconv", pool=pool)
    filters = sum(p.numel() for m in model.modules() if isinstance(m, LDWPool2d) for p in m.parameters())
    assert filters == 4 * (1 if pool.constraint == "lattice" else 2 * 2)  # per level: 2K Haar taps, or one db2 angle
    assert encoder_parameters(model) == encoder_parameters(maxpool)
    assert count_parameters(model) == count_parameters(maxpool) + filters


def test_where_energy_attention_applies():
    channels = {name: [m.norm.num_features for m in create_down(name, 4, 8).modules() if isinstance(m, EnergyAttention)]
                for name in NEW_DOWNS}  # fmt: skip
    assert channels == {
        "avgpool": [], "conv": [], "blurpool": [], "ldw-ll": [], "ldw-maxblur": [],
        "spd": [16], "ldw-hwd": [16], "spd-hwd": [16], "ldw-grouped": [16], "spd-grouped": [16],
        "ldw-efficient": [4], "spd-efficient": [4], "ldw-shortcut": [16], "spd-shortcut": [16], "maxpool-detail": [],
    }  # fmt: skip


def test_the_low_band_design_convolves_ll_and_stores_all_bands():
    fixed = PoolOptions(learn_filters=False)
    block = create_down("ldw-ll", 3, 6, pool=fixed).eval()
    x = torch.randn(2, 3, 33, 47)
    with torch.no_grad():
        y, bands = block(x)
        assert_close(bands, block.pool(x))
        assert_close(y, block.conv(2 * F.avg_pool2d(x, 2, ceil_mode=True)))  # Haar LL = 2 x the mean
    maxblur = create_down("ldw-maxblur", 3, 6, pool=fixed).eval()
    maxblur.load_state_dict(block.state_dict())
    with torch.no_grad():
        y, bands = maxblur(x)
        assert_close(bands, block.pool(max_filter2d(x)))
        assert_close(y, block.conv(2 * F.avg_pool2d(max_filter2d(x), 2, ceil_mode=True)))  # Zhang's Rect-2


def test_the_grouped_design_sees_one_subband_per_group():
    block = create_down("ldw-grouped", 4, 8, pool=PoolOptions(attention=False))
    assert block.conv[0].groups == 4 and block.conv[0].weight.shape == (8, 4, 3, 3)  # 9 * C * out weights
    x = torch.randn(1, 4, 10, 10, requires_grad=True)
    bands = block.pool(x).detach().requires_grad_()
    block.conv[0](bands)[:, :2].sum().backward()  # the first group of outputs
    per_band = bands.grad.abs().sum((0, 2, 3)).view(4, 4).sum(1)
    assert per_band[0] > 0 and torch.all(per_band[1:] == 0)


@pytest.mark.parametrize(("name", "base"), [("ldw-efficient", "ldw"), ("spd-efficient", "spd")])
def test_the_efficient_designs_are_their_base_block_with_efficient_on(name, base):
    pool = PoolOptions(wavelet="db2", constraint="lattice", attention=False)
    block = create_down(name, 8, 12, pool=pool).eval()
    reference = create_down(base, 8, 12, pool=pool, efficient=True).eval()
    reference.load_state_dict(block.state_dict())  # the same modules: the keys and shapes match
    x = torch.randn(2, 8, 15, 12)
    with torch.no_grad():
        y, bands = block(x)
        assert_close(y, reference(x)[0])
        reduced = torch.einsum("oc,nchw->nohw", block.reduce.weight[:, :, 0, 0], x)  # the 1x1 conv C -> C/4
        split = block.pool(reduced)
        assert_close(y, block.conv(split))
        if block.stores_bands:
            assert_close(bands, split)
    assert block.reduce.weight.shape == (2, 8, 1, 1)


def test_the_efficient_design_adds_the_1x1_convs_to_the_max_pool_unet():
    maxpool = UNet(3, 21, base_width=16, down="maxpool", up="deconv")
    pool = PoolOptions(wavelet="db2", constraint="lattice", attention=False)
    model = UNet(3, 21, base_width=16, down="ldw-efficient", up="deconv", pool=pool)
    reductions = sum(c * c // 4 for c in (16, 32, 64, 128))  # a bias-free 1x1 conv C -> C/4 per level
    assert count_parameters(model) == count_parameters(maxpool) + reductions + 4  # + one db2 angle per level
    assert abs(count_parameters(model) / count_parameters(maxpool) - 1) < 0.005


def test_the_shortcut_design_is_the_max_pool_block_plus_a_shortcut():
    block = create_down("ldw-shortcut", 4, 8, pool=PoolOptions(attention=False)).eval()
    plain = create_down("maxpool", 4, 8).eval()
    plain.conv.load_state_dict(block.conv.state_dict())
    x = torch.randn(2, 4, 15, 12)
    with torch.no_grad():
        y, bands = block(x)
        shortcut = block.shortcut(block.pool(x))
        assert_close(y, F.relu(plain.conv.pre_activation(plain.pool(x)) + shortcut))
        assert shortcut.abs().sum() > 0 and bands.shape == (2, 16, 8, 6)
        block.shortcut[0].weight.zero_()
        assert_close(block(x)[0], plain(x)[0])


@pytest.mark.slow
@pytest.mark.parametrize("name", NEW_DOWNS)
def test_each_new_design_trains_through_the_library(name, private_data, tmp_path):
    from ldwseg.seg.evaluate import evaluate_checkpoint
    from ldwseg.tasks import load_config, train

    overrides = {
        "model.down": name, "model.up": SENSIBLE_UP[name], "model.base_width": 4, "model.depth": 2,
        "model.wavelet": "db2", "model.constraint": "lattice", "data.crop_size": 32, "train.epochs": 1,
        "train.max_steps_per_epoch": 2, "train.batch_size": 2, "train.val_batch_size": 8,
    }  # fmt: skip
    result = train(load_config(None, overrides), tmp_path / "run")
    evaluated = evaluate_checkpoint(tmp_path / "run" / "last.safetensors", device="cpu")  # the last epoch's network
    assert result.epochs_run == 1 and result.last_score == pytest.approx(evaluated["miou"], abs=1e-12)
