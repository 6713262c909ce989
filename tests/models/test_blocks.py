"""The UNet's blocks and the name tables that build them."""

import re

import pytest
import torch

from ldwseg import LDWPool2d
from ldwseg.errors import ConfigError
from ldwseg.models import DOWNSAMPLERS, UPSAMPLERS, PoolOptions, create_down, create_up, get_down, get_up
from ldwseg.models.unet.blocks.base import DownBlock
from ldwseg.models.unet.blocks.bypass import MaxPoolDetailDown, ResidualUp
from ldwseg.models.unet.blocks.controls import ShuffleUp
from ldwseg.models.unet.blocks.ldw import LDWAllBandsDown, LDWDetailUp, LDWUp
from ldwseg.models.unet.blocks.maxpool import DeconvUp, MaxPoolDown


def test_tables_name_the_blocks():
    assert list(DOWNSAMPLERS)[:2] == ["maxpool", "ldw"] and DOWNSAMPLERS["maxpool"] is MaxPoolDown
    assert {"avgpool", "conv", "blurpool", "spd", "ldw-ll", "ldw-maxblur", "ldw-hwd", "spd-hwd"} < set(DOWNSAMPLERS)
    assert {"ldw-grouped", "spd-grouped", "ldw-shortcut", "spd-shortcut"} < set(DOWNSAMPLERS)
    assert UPSAMPLERS == {
        "deconv": DeconvUp, "ldw": LDWUp, "ldw-detail": LDWDetailUp, "shuffle": ShuffleUp, "unpool-detail": ResidualUp
    }  # fmt: skip
    assert DOWNSAMPLERS["maxpool-detail"] is MaxPoolDetailDown
    assert get_down("ldw") is LDWAllBandsDown and get_up("ldw-detail") is LDWDetailUp
    assert all(issubclass(block, DownBlock) for block in DOWNSAMPLERS.values())


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: create_down("avg", 4, 8), "down='avg' is not valid; choose one of maxpool, ldw, avgpool, conv"),
        (lambda: create_up("bilinear", 8, 4, 4, paired=None), "choose one of deconv, ldw, ldw-detail, shuffle"),
        (lambda: get_down("avg", label="model.down"), "model.down='avg' is not valid"),
    ],
)
def test_unknown_names_list_the_valid_ones(make, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        make()


def test_ldw_up_blocks_need_an_ldw_down_block():
    message = "the down block of this level is MaxPoolDown; choose up from deconv, shuffle, or down from ldw, ldw-ll"
    with pytest.raises(ConfigError, match=re.escape(message)):
        create_up("ldw", 8, 4, 4, paired=MaxPoolDown(4, 8))
    with pytest.raises(ConfigError, match="the down block of this level is SpaceToDepthDown"):
        create_up("ldw-detail", 8, 4, 4, paired=create_down("spd", 4, 8))
    with pytest.raises(ConfigError, match=re.escape("efficient=true reduces the channels before the 2x2 split")):
        create_down("maxpool", 4, 8, efficient=True)


@pytest.mark.parametrize("size", [(16, 16), (17, 9), (1, 1)])
@pytest.mark.parametrize("efficient", [False, True])
def test_down_blocks_halve_the_size(size, efficient):
    h, w = size
    x = torch.randn(2, 8, h, w)
    y, none = create_down("maxpool", 8, 12)(x)
    assert y.shape == (2, 12, (h + 1) // 2, (w + 1) // 2) and none is None
    y, bands = create_down("ldw", 8, 12, efficient=efficient)(x)
    pooled = 2 if efficient else 8
    assert y.shape == (2, 12, (h + 1) // 2, (w + 1) // 2)
    assert bands.shape == (2, 4 * pooled, (h + 1) // 2, (w + 1) // 2)


def test_ldw_down_passes_the_pool_options_on():
    block = create_down("ldw", 4, 8, pool=PoolOptions(wavelet="db2", constraint="lattice", attention=False))
    assert (block.pool.wavelet_name, block.pool.kernel_size, block.pool.constraint) == ("db2", 4, "lattice")
    assert isinstance(block.attention, torch.nn.Identity)
    with pytest.raises(ValueError, match="pools in_channels / 4 channels; got in_channels=6"):
        create_down("ldw", 6, 8, efficient=True)


@pytest.mark.parametrize("name", ["deconv", "ldw", "ldw-detail", "shuffle"])
@pytest.mark.parametrize("skip_size", [(20, 14), (19, 13)])
@pytest.mark.parametrize("skip", [True, False])
def test_up_blocks_restore_the_skip_size(name, skip_size, skip):
    down = create_down("ldw", 4, 8)
    features = torch.randn(2, 4, *skip_size)
    x, bands = down(features)
    up = create_up(name, 8, 4, 6, paired=down, skip=skip)
    assert up(x, features, bands).shape == (2, 6, *skip_size)


def test_ldw_up_reuses_the_paired_pool_and_detail_needs_its_bands():
    down = create_down("ldw", 4, 8)
    for name in ("ldw", "ldw-detail"):
        up = create_up(name, 8, 4, 4, paired=down)
        assert up.unpool.pool is down.pool
    with pytest.raises(ValueError, match="LDWDetailUp needs the encoder's subbands"):
        up(torch.randn(1, 8, 4, 4), torch.randn(1, 4, 8, 8))
    with pytest.raises(ValueError, match="pool built for a known number of channels"):
        LDWDetailUp(8, 4, 4, pool=LDWPool2d())
