"""The controls: space-to-depth, average and strided-conv downsampling, BlurPool, the sub-pixel decoder."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.testing import assert_close

from ldwseg import LDWPool2d
from ldwseg.models import PoolOptions, create_down, create_up
from ldwseg.models.layers.blur import BlurPool2d, blur_pool2d, max_filter2d
from ldwseg.models.layers.splits import depth_to_space, space_to_depth
from ldwseg.models.unet.blocks.base import DoubleConv

FIXED_HAAR = PoolOptions(attention=False, learn_filters=False)


def haar_mix() -> torch.Tensor:
    """``M[band, 2p + q]``: the Haar subbands of one 2x2 block from its four pixels, found by pooling impulses."""
    pool = LDWPool2d(1)
    impulses = torch.eye(4).view(4, 1, 2, 2)
    with torch.no_grad():
        return pool(impulses).view(4, 4).T  # rows: bands, columns: pixels 2p + q


def to_unshuffle_order(weight: torch.Tensor) -> torch.Tensor:
    """A conv weight on phase-major channels ``k C + c`` rearranged for pixel_unshuffle's ``4c + k``."""
    out, c4 = weight.shape[:2]
    return weight.view(out, 4, c4 // 4, *weight.shape[2:]).transpose(1, 2).reshape(weight.shape)


def test_space_to_depth_is_pixel_unshuffle_after_replicate_padding():
    x = torch.randn(2, 3, 33, 47)
    padded = F.pad(x, (0, 1, 0, 1), mode="replicate")
    assert_close(space_to_depth(x), nn.PixelUnshuffle(2)(padded), atol=0, rtol=0)
    y = space_to_depth(x, phase_major=True)
    assert_close(y[:, 3:6], padded[:, :, 0::2, 1::2], atol=0, rtol=0)  # phase 2p + q = 1
    assert_close(depth_to_space(y), padded, atol=0, rtol=0)


@pytest.mark.parametrize("size", [(16, 20), (33, 47)])
def test_spd_equals_pixel_unshuffle_then_the_double_conv(size):
    block = create_down("spd", 3, 8, pool=PoolOptions(attention=False)).eval()
    reference = DoubleConv(12, 8).eval()
    reference.load_state_dict(block.conv.state_dict())
    with torch.no_grad():
        reference[0].weight.copy_(to_unshuffle_order(block.conv[0].weight))
    x = torch.randn(2, 3, *size)
    padded = F.pad(x, (0, size[1] % 2, 0, size[0] % 2), mode="replicate")
    with torch.no_grad():
        y, bands = block(x)
        assert_close(y, reference(nn.PixelUnshuffle(2)(padded)))
    assert bands is None


def test_fixed_haar_ldw_is_spd_with_mixed_weights():
    """With Haar filters the subbands are an orthogonal mix of the phases, which the conv absorbs."""
    ldw = create_down("ldw", 3, 8, pool=FIXED_HAAR).eval()
    spd = create_down("spd", 3, 8, pool=FIXED_HAAR).eval()
    spd.load_state_dict(ldw.state_dict(), strict=False)  # the convs; spd has no filters
    weight = ldw.conv[0].weight.view(8, 4, 3, 3, 3)  # (out, band, c, kh, kw)
    with torch.no_grad():
        spd.conv[0].weight.copy_(torch.einsum("obchw,bk->okchw", weight, haar_mix()).reshape(8, 12, 3, 3))
    x = torch.randn(2, 3, 33, 46)
    with torch.no_grad():
        assert_close(spd(x)[0], ldw(x)[0], atol=1e-5, rtol=1e-5)


def test_shuffle_up_is_the_fixed_haar_ldw_up_with_mixed_weights():
    down = create_down("ldw", 4, 8, pool=FIXED_HAAR)
    ldw_up = create_up("ldw", 8, 4, 6, paired=down).eval()
    shuffle = create_up("shuffle", 8, 4, 6, paired=down).eval()
    shuffle.load_state_dict(ldw_up.state_dict(), strict=False)
    mix = haar_mix()  # synthesis of one block: pixels = M^T bands
    with torch.no_grad():
        weight = ldw_up.project.weight.view(4, 4, 8)
        shuffle.project.weight.copy_(torch.einsum("bco,bk->kco", weight, mix).reshape(16, 8, 1, 1))
        shuffle.project.bias.copy_(torch.einsum("bc,bk->kc", ldw_up.project.bias.view(4, 4), mix).reshape(16))
        x, skip = torch.randn(2, 8, 7, 5), torch.randn(2, 4, 13, 10)
        assert_close(shuffle(x, skip), ldw_up(x, skip), atol=1e-5, rtol=1e-5)
    own = [p for name, p in ldw_up.named_parameters() if not name.startswith("unpool.")]  # not the tied filters
    assert sum(p.numel() for p in shuffle.parameters()) == sum(p.numel() for p in own)


def test_avgpool_is_half_the_haar_low_band_at_odd_sizes_too():
    x = torch.randn(2, 3, 33, 47)
    low = LDWPool2d(3)(x)[:, :3]
    assert_close(create_down("avgpool", 3, 4).pool(x), low / 2)


def naive_max_blur(x: np.ndarray) -> np.ndarray:
    """Dense 2x2 max then ``[1, 2, 1] / 4`` at stride 2, edges repeated, by loops."""
    h, w = x.shape
    dense = np.empty_like(x)
    for i in range(h):
        for j in range(w):
            dense[i, j] = x[min(i, h - 1) : min(i + 2, h), min(j, w - 1) : min(j + 2, w)].max()
    taps = np.array([1.0, 2.0, 1.0]) / 4
    out = np.zeros(((h + 1) // 2, (w + 1) // 2))
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            for a in range(3):
                for b in range(3):
                    row = min(max(2 * i + a - 1, 0), h - 1)
                    col = min(max(2 * j + b - 1, 0), w - 1)
                    out[i, j] += taps[a] * taps[b] * dense[row, col]
    return out


@pytest.mark.parametrize("size", [(6, 4), (5, 7), (1, 1)])
def test_blurpool_matches_a_hand_computed_reference(size):
    x = torch.randn(1, 2, *size, dtype=torch.float64)
    y = create_down("blurpool", 2, 4).double().pool(x)
    expected = np.stack([naive_max_blur(x[0, c].numpy()) for c in range(2)])
    assert_close(y[0], torch.from_numpy(expected))


def test_blur_of_a_constant_and_an_impulse():
    assert_close(blur_pool2d(torch.full((1, 1, 6, 6), 3.0)), torch.full((1, 1, 3, 3), 3.0))
    impulse = torch.zeros(1, 1, 5, 5)
    impulse[0, 0, 2, 2] = 1.0
    expected = torch.zeros(1, 1, 3, 3)
    expected[0, 0, 1, 1] = 0.25  # the centre tap of [1, 2, 1]/4 squared
    assert_close(blur_pool2d(impulse), expected)
    assert_close(max_filter2d(torch.tensor([[[[1.0, 3.0, 2.0]]]])), torch.tensor([[[[3.0, 3.0, 2.0]]]]))


def test_blur_kernel_is_a_non_persistent_buffer_refilled_by_reset():
    blur = BlurPool2d(3)
    assert "kernel" not in blur.state_dict() and not list(blur.parameters())
    with torch.no_grad():
        blur.kernel.zero_()
    blur.reset_parameters()
    assert_close(blur.kernel.sum((1, 2, 3)), torch.ones(3))
    assert list(create_down("blurpool", 3, 4).state_dict()) == list(create_down("maxpool", 3, 4).state_dict())


def test_blur_pool_gradcheck_and_non_contiguous_input():
    x = torch.randn(1, 2, 5, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(blur_pool2d, (x,))
    wide = torch.randn(1, 6, 2, 5).transpose(1, 3)  # (1, 5, 2, 6), not contiguous
    assert_close(blur_pool2d(wide), blur_pool2d(wide.contiguous()))


def test_strided_conv_learns_its_downsampling():
    block = create_down("conv", 4, 8)
    assert block.pool[0].stride == (2, 2) and block.pool[0].weight.shape == (4, 4, 3, 3)
    y, bands = block(torch.randn(2, 4, 33, 47))
    assert y.shape == (2, 8, 17, 24) and bands is None
