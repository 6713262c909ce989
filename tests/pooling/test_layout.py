"""Memory layouts: channels-last maps in, channels-last results out, equal to the NCHW path."""

import pytest
import pywt
import torch
from torch import nn
from torch.testing import assert_close

from ldwseg import LDWPool2d, LDWUnpool2d, ldw_analysis, ldw_synthesis
from ldwseg.pooling import pieces

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
CL = torch.channels_last


def filters(name: str, device: str) -> list[torch.Tensor]:
    w = pywt.Wavelet(name)
    return [torch.tensor(f, dtype=torch.float64, device=device, requires_grad=True) for f in (w.rec_lo, w.rec_hi)]


def grads(fn, inp: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``fn(inp, low, high)`` and the gradients of a fixed random projection of it."""
    out = fn(inp, low, high)
    weight = torch.randn(out.shape, dtype=out.dtype, generator=torch.Generator().manual_seed(0)).to(out.device)
    return (out, *torch.autograd.grad((out * weight).sum(), [inp, low, high]))


def both_layouts(fn, t: torch.Tensor, name: str, device: str) -> tuple[tuple, tuple]:
    low, high = filters(name, device)
    nchw = t.detach().contiguous().requires_grad_()
    cl = t.detach().contiguous(memory_format=CL).requires_grad_()
    assert not cl.is_contiguous()
    return grads(fn, nchw, low, high), grads(fn, cl, low, high)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", ["haar", "db2", "db4"])
@pytest.mark.parametrize("shape", [(2, 6, 16, 12), (1, 5, 9, 7), (2, 3, 2, 4)])
def test_channels_last_analysis_equals_nchw(device, name, shape):
    x = torch.randn(shape, dtype=torch.float64, device=device)
    expected, got = both_layouts(ldw_analysis, x, name, device)
    for g, e in zip(got, expected):
        assert_close(g, e)
    out, grad_x = got[0], got[1]
    assert out.is_contiguous(memory_format=CL) and not out.is_contiguous()
    if shape[-2] % 2 == 0 and shape[-1] % 2 == 0:  # odd maps are padded by a copy first
        assert grad_x.is_contiguous(memory_format=CL)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", ["haar", "db2", "db4"])
@pytest.mark.parametrize("shape", [(2, 24, 8, 6), (1, 8, 1, 3), (2, 12, 5, 4)])
def test_channels_last_synthesis_equals_nchw(device, name, shape):
    y = torch.randn(shape, dtype=torch.float64, device=device)
    expected, got = both_layouts(ldw_synthesis, y, name, device)
    for g, e in zip(got, expected):
        assert_close(g, e)
    out, grad_y = got[0], got[1]
    assert out.is_contiguous(memory_format=CL) and not out.is_contiguous()
    if shape[-2] * shape[-1] > 1:
        assert grad_y.is_contiguous(memory_format=CL)


@pytest.mark.parametrize("layout", [torch.contiguous_format, CL])
@pytest.mark.parametrize("name", ["haar", "db2"])
def test_pieces_over_samples_and_channel_blocks_agree(monkeypatch, layout, name):
    """The CPU path splits a map into pieces of samples, or of channel blocks of one sample;
    any split gives the one-piece result, values and gradients."""
    x = torch.randn(3, 10, 12, 8, dtype=torch.float64).contiguous(memory_format=layout)
    low, high = filters(name, "cpu")
    whole = grads(ldw_analysis, x.detach().requires_grad_(), low, high)
    whole_syn = grads(ldw_synthesis, whole[0].detach().requires_grad_(), low, high)
    per_channel = 4 * 6 * 4 * 8  # bytes of one channel's planes
    for chunk in (2 * 10 * per_channel, 3 * per_channel, 1):  # two samples, 3 channels, 1 channel
        monkeypatch.setattr(pieces, "CHUNK_BYTES", chunk)
        for g, e in zip(grads(ldw_analysis, x.detach().requires_grad_(), low, high), whole):
            assert_close(g, e)
        for g, e in zip(grads(ldw_synthesis, whole[0].detach().requires_grad_(), low, high), whole_syn):
            assert_close(g, e)


@pytest.mark.parametrize("device", DEVICES)
def test_channels_last_model_stays_channels_last(device):
    """conv -> pool -> conv -> reverse pool: every map, and the input gradient, stays channels-last."""
    pool = LDWPool2d(8, wavelet="db2").to(device)
    unpool = LDWUnpool2d(pool)
    conv_in, conv_mid = nn.Conv2d(3, 8, 3, padding=1).to(device), nn.Conv2d(32, 32, 3, padding=1).to(device)
    model = nn.Sequential(conv_in, pool, conv_mid, unpool).to(memory_format=CL)
    x = torch.randn(2, 3, 32, 24, device=device).contiguous(memory_format=CL).requires_grad_()
    maps = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: maps.append(out)) for m in model]
    out = model(x)
    for h in hooks:
        h.remove()
    out.square().sum().backward()
    for t in maps + [x.grad]:
        assert t.is_contiguous(memory_format=CL) and not t.is_contiguous(), t.shape
    reference = nn.Sequential(conv_in, pool, conv_mid, unpool)
    assert_close(out, reference(x.detach().contiguous()), rtol=1e-4, atol=1e-5)


def test_other_strides_are_computed_as_nchw():
    low, high = filters("db2", "cpu")
    x = torch.randn(2, 3, 10, 16, dtype=torch.float64)[..., ::2]  # neither NCHW- nor channels-last-contiguous
    assert_close(ldw_analysis(x, low, high), ldw_analysis(x.contiguous(), low, high))
    y = torch.randn(2, 8, 5, 12, dtype=torch.float64).transpose(-1, -2)
    assert_close(ldw_synthesis(y, low, high), ldw_synthesis(y.contiguous(), low, high))
