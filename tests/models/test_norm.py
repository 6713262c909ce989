"""model.norm: BatchNorm, or a learned per-channel scale and shift in its place."""

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from ldwseg import EnergyAttention
from ldwseg.errors import ConfigError
from ldwseg.models import PoolOptions, UNet, check_unet
from ldwseg.models.layers.norm import ChannelAffine, replace_batchnorm


def test_channel_affine_scales_and_shifts_each_channel():
    layer = ChannelAffine(3)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([2.0, -1.0, 0.5]))
        layer.bias.copy_(torch.tensor([0.0, 1.0, -3.0]))
    x = torch.randn(2, 3, 4, 5)
    expected = torch.stack([2.0 * x[:, 0], -x[:, 1] + 1.0, 0.5 * x[:, 2] - 3.0], 1)
    assert_close(layer(x), expected)
    assert_close(ChannelAffine(3)(x), x)  # fresh: the identity


def test_only_batchnorm_with_a_learned_affine_is_replaced():
    attention = EnergyAttention(4)  # its normalisation has no affine: part of the attention
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Sequential(nn.BatchNorm2d(4), attention))
    replace_batchnorm(model)
    assert [type(m).__name__ for m in (model[1], model[2][0])] == ["ChannelAffine", "ChannelAffine"]
    assert type(attention.norm) is nn.BatchNorm2d
    assert type(replace_batchnorm(nn.BatchNorm2d(2))) is ChannelAffine


def _unets(down, up):
    torch.manual_seed(0)
    batch = UNet(3, 3, base_width=4, depth=2, down=down, up=up, skip=False, pool=PoolOptions(attention=False))
    torch.manual_seed(0)
    affine = UNet(3, 3, base_width=4, depth=2, down=down, up=up, skip=False, norm="affine",
                  pool=PoolOptions(attention=False))  # fmt: skip
    return batch, affine


@pytest.mark.parametrize(("down", "up"), [("ldw-ll", "ldw-detail"), ("maxpool", "deconv"), ("ldw-efficient", "ldw")])
def test_the_affine_unet_is_the_batchnorm_unet_with_identity_statistics(down, up):
    """BatchNorm in eval mode with mean 0 and variance 1 - eps computes w x + b: the reference."""
    batch, affine = _unets(down, up)
    for m in batch.modules():
        if isinstance(m, nn.BatchNorm2d):
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.2, 0.2)
            m.running_mean.zero_()
            m.running_var.fill_(1 - m.eps)
    kept = {k: v for k, v in batch.state_dict().items() if "running" not in k and "num_batches" not in k}
    affine.load_state_dict(kept)  # the same names: weight and bias where BatchNorm had them
    assert not any(isinstance(m, nn.BatchNorm2d) for m in affine.modules())
    assert sum(p.numel() for p in affine.parameters()) == sum(p.numel() for p in batch.parameters())
    x = torch.rand(2, 3, 19, 22)
    with torch.no_grad():
        assert_close(affine.eval()(x), batch.eval()(x), rtol=1e-5, atol=1e-6)


def test_the_affine_unet_computes_the_same_in_training_and_evaluation():
    batch, affine = _unets("ldw-ll", "ldw-detail")
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        assert_close(affine.train()(x), affine.eval()(x))
        assert not torch.allclose(batch.train()(x), batch.eval()(x))  # batch statistics differ from running ones


def test_a_norm_that_does_not_exist_lists_the_choices():
    with pytest.raises(ConfigError, match="model.norm='group' is not valid; choose one of batch, affine"):
        check_unet(base_width=4, depth=2, down="maxpool", up="deconv", efficient=False, pool=PoolOptions(),
                   norm="group", prefix="model.")  # fmt: skip
