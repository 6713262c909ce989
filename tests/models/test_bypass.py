"""The max-pool detail bypass (maxpool-detail / unpool-detail), against loop references."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from ldwseg.errors import ConfigError
from ldwseg.models import PoolOptions, UNet
from ldwseg.models.unet.blocks.bypass import MaxPoolDetailDown, ResidualUp, repeat_windows


def _reference_pool_and_residual(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Window by window: the max of each (ceil-mode) 2x2 window and ``x`` minus its window's max."""
    n, c, h, w = x.shape
    m = torch.empty(n, c, (h + 1) // 2, (w + 1) // 2)
    r = torch.empty_like(x)
    for i in range(0, h, 2):
        for j in range(0, w, 2):
            window = x[:, :, i : i + 2, j : j + 2]
            top = window.amax(dim=(2, 3))
            m[:, :, i // 2, j // 2] = top
            r[:, :, i : i + 2, j : j + 2] = window - top[..., None, None]
    return m, r


@pytest.mark.parametrize("size", [(6, 8), (7, 5)])
def test_down_stores_the_residual_to_the_window_max(size):
    torch.manual_seed(0)
    x = torch.randn(2, 3, *size)
    block = MaxPoolDetailDown(3, 4).eval()
    _, residual = block(x)
    m, expected = _reference_pool_and_residual(x)
    assert_close(residual, expected)
    assert_close(repeat_windows(m, x.shape[-2:]) + residual, x)
    zeros = (residual == 0).float().unfold(2, 2, 2).unfold(3, 2, 2).sum((-1, -2))
    assert bool((zeros >= 1).all()), "each full 2x2 window has its maximum's residual at 0"


@pytest.mark.parametrize("size", [(6, 8), (7, 5)])
def test_up_with_the_true_max_gives_the_input_back(size):
    """x_hat = up(m) + r: with the 1x1 conv the identity and no double conv, the level is rebuilt exactly."""
    torch.manual_seed(1)
    x = torch.randn(2, 3, *size)
    m, residual = _reference_pool_and_residual(x)
    up = ResidualUp(3, 3, 3, skip=False)
    with torch.no_grad():
        up.project.weight.copy_(torch.eye(3)[..., None, None])
        up.project.bias.zero_()
    up.conv = nn.Identity()
    assert_close(up(m, x, residual), x)


def test_pair_has_the_parameters_of_ldw_ll_with_ldw_detail():
    wavelet = UNet(
        3, 3, base_width=8, depth=3, down="ldw-ll", up="ldw-detail", skip=False, pool=PoolOptions(wavelet="db2")
    )
    bypass = UNet(3, 3, base_width=8, depth=3, down="maxpool-detail", up="unpool-detail", skip=False)
    taps = sum(p.numel() for name, p in wavelet.named_parameters() if name.endswith((".low", ".high")))
    assert sum(p.numel() for p in bypass.parameters()) == sum(p.numel() for p in wavelet.parameters()) - taps
    out = bypass(torch.randn(1, 3, 21, 30))
    assert out.shape == (1, 3, 21, 30)


def test_residual_up_only_follows_maxpool_detail():
    with pytest.raises(ConfigError, match="down='ldw-ll' stores no residual"):
        UNet(3, 3, base_width=8, depth=2, down="ldw-ll", up="unpool-detail")
    with pytest.raises(ConfigError, match="down='maxpool-detail' has no LDW pool"):
        UNet(3, 3, base_width=8, depth=2, down="maxpool-detail", up="ldw-detail")
