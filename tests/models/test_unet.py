"""The UNet and its down/up variants."""

import pytest
import torch
from torch.testing import assert_close

from ldwseg import LDWPool2d, wavelet_loss
from ldwseg.analysis.complexity import count_flops, count_parameters
from ldwseg.models import UNet

VARIANTS = [
    {"down": "maxpool", "up": "deconv"},
    {"down": "ldw", "up": "ldw"},
    {"down": "ldw", "up": "ldw-detail"},
    {"down": "ldw", "up": "deconv"},
    {"down": "ldw", "up": "ldw", "efficient": True},
    {"down": "ldw", "up": "ldw-detail", "efficient": True, "attention": False},
    {"down": "ldw", "up": "ldw", "skip": False},
]


@pytest.mark.parametrize("kwargs", VARIANTS)
def test_any_size_in_same_size_out(kwargs):
    model = UNet(3, 5, base_width=4, **kwargs).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 333, 517)).shape == (1, 5, 333, 517)
        assert model(torch.randn(2, 3, 1, 7)).shape == (2, 5, 1, 7)


def test_reverse_pools_are_tied_to_the_encoder_pool_of_their_level():
    model = UNet(3, 2, base_width=4, down="ldw", up="ldw", constraint="lattice", wavelet="db2")
    for i, up in enumerate(model.ups):
        assert up.unpool.pool is model.downs[len(model.downs) - 1 - i].pool
    pools = [m for m in model.modules() if isinstance(m, LDWPool2d)]
    assert len(pools) == 4
    ids = {id(p) for p in model.parameters()}
    assert len(ids) == len(list(model.parameters()))  # named once each


def test_ldw_unet_round_trips_each_level_through_its_paired_pool():
    model = UNet(3, 2, base_width=4, down="ldw", up="ldw", constraint="orthogonal", wavelet="db2")
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
    model = UNet(3, 2, base_width=4, down="ldw", up="ldw", constraint="paper")
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
    flops = count_flops(UNet(3, 21, base_width=8, down="ldw", up="ldw"), (1, 3, 64, 64))
    assert flops > 0


def test_bad_combinations_raise():
    with pytest.raises(ValueError, match="pairs each reverse pool"):
        UNet(3, 2, down="maxpool", up="ldw")
