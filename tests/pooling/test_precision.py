"""Mixed precision: LDW pooling exact under autocast, energy attention finite in half models.

Values are checked, not only dtypes: run in bf16, a db2 pool and its reverse pool
reconstruct U(0, 1) data to about 48 dB (fp16: 66 dB), in float32 to about 145 dB.
"""

import math
import warnings

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from ldwseg import EnergyAttention, LDWPool2d, LDWUnpool2d, ldw_analysis, ldw_synthesis
from ldwseg.pooling.polyphase import _Analysis, _mixing_matrices, _Synthesis

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
HALF = [torch.bfloat16, torch.float16]


def autocast_or_skip(device: str, dtype: torch.dtype) -> torch.autocast:
    """``torch.autocast(device, dtype)``, or a skip where this build does not autocast to ``dtype``
    there (torch then warns and leaves autocast off)."""
    if device == "cuda" and dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    conv = nn.Conv2d(1, 1, 1).to(device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch warns when it leaves autocast off
        with torch.autocast(device, dtype=dtype):
            supported = torch.is_autocast_enabled(device) and conv(torch.ones(1, 1, 1, 1, device=device)).dtype == dtype
    if not supported:
        pytest.skip(f"autocast to {dtype} is not supported on {device} by torch {torch.__version__}")
    return torch.autocast(device, dtype=dtype)


def psnr(x: torch.Tensor, ref: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB for data in [0, 1]."""
    mse = (x.double() - ref.double()).square().mean().item()
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


def pair(device: str) -> tuple[LDWPool2d, LDWUnpool2d]:
    pool = LDWPool2d(8, wavelet="db2").to(device)
    return pool, LDWUnpool2d(pool)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", HALF)
def test_round_trip_under_autocast_keeps_float32_accuracy(device, dtype):
    """The maps a layer hands over under autocast are half precision; the round trip of those
    maps is exact to float32 rounding (>= 100 dB), and both pools return float32."""
    torch.manual_seed(0)
    pool, unpool = pair(device)
    x = torch.rand(2, 8, 64, 48, device=device).to(dtype)
    with autocast_or_skip(device, dtype):
        y = pool(x)
        back = unpool(y, output_size=x.shape[-2:])
    assert y.dtype == back.dtype == torch.float32
    assert psnr(back, x.float()) >= 100
    assert_close(y, pool(x.float()))  # the float32 result, not merely close to it


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", HALF)
def test_autocast_model_round_trip_from_a_conv(device, dtype):
    """A conv under autocast returns half-precision maps; pool and reverse pool then add only
    float32 rounding to them, odd sizes included."""
    torch.manual_seed(1)
    pool, unpool = pair(device)
    conv = nn.Conv2d(3, 8, 3, padding=1).to(device)
    x = torch.rand(2, 3, 33, 50, device=device)
    with autocast_or_skip(device, dtype):
        h = conv(x)
        back = unpool(pool(h), output_size=h.shape[-2:])
    assert h.dtype == dtype
    scale = h.float().abs().max().item()
    assert psnr(back / scale, h.float() / scale) >= 100


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", HALF)
def test_gradients_under_autocast_match_float32(device, dtype):
    """Input and filter gradients of a forward pass under autocast equal the float32 ones of the
    same (half) input: the filter gradient to float32 rounding, the input gradient to its dtype's."""
    torch.manual_seed(2)
    pool, unpool = pair(device)
    x = torch.rand(2, 8, 32, 30, device=device).to(dtype)
    weight = torch.randn(2, 32, 16, 15, device=device)
    target = torch.randn(2, 8, 32, 30, device=device)
    params = [pool.low, pool.high]

    def loss(inp: torch.Tensor) -> torch.Tensor:
        y = pool(inp)
        return (y * weight).sum() + (unpool(y * weight) * target).sum()

    leaf = x.detach().requires_grad_()
    with autocast_or_skip(device, dtype):
        value = loss(leaf)
    got = torch.autograd.grad(value, [leaf, *params])  # backward outside autocast, as torch advises
    ref_leaf = x.float().requires_grad_()
    expected = torch.autograd.grad(loss(ref_leaf), [ref_leaf, *params])
    assert got[0].dtype == dtype
    assert_close(got[0].float(), expected[0].to(dtype).float())
    for g, e in zip(got[1:], expected[1:]):
        assert g.dtype == torch.float32
        assert_close(g, e, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("device", DEVICES)
def test_functions_under_autocast_return_float32_and_keep_float64(device):
    low, high = [0.5**0.5, 0.5**0.5], [0.5**0.5, -(0.5**0.5)]
    with autocast_or_skip(device, torch.bfloat16):
        y = ldw_analysis(torch.rand(1, 2, 4, 4, device=device, dtype=torch.bfloat16), low, high)
        assert y.dtype == torch.float32
        assert ldw_synthesis(y.bfloat16(), low, high).dtype == torch.float32
        wide = torch.rand(1, 2, 4, 4, device=device, dtype=torch.float64)
        assert ldw_analysis(wide, low, high).dtype == torch.float64


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("energy", ["mean", "sum"])
def test_energy_attention_in_a_half_model_is_finite_on_large_maps(device, energy):
    """In a model cast with .half(), the energy of a 256x256 map (a sum of 65536 squares)
    overflows float16; computed in float32 the gates stay finite and match float32."""
    torch.manual_seed(3)
    att = EnergyAttention(16, energy=energy).to(device)
    half = EnergyAttention(16, energy=energy).to(device)
    half.load_state_dict(att.state_dict())
    half = half.half()
    x = (torch.randn(2, 16, 256, 256, device=device) * 2 + 1).half()
    expected = att(x.float())
    leaf = x.detach().requires_grad_()
    out = half(leaf)
    assert out.dtype == torch.float16
    assert torch.isfinite(out).all()
    assert_close(out.float(), expected, rtol=2e-3, atol=2e-3)
    out.float().square().mean().backward()
    assert torch.isfinite(leaf.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in half.parameters())


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("function", [_Analysis, _Synthesis])
def test_backward_run_inside_autocast_stays_float32(device, function):
    """torch advises running backward outside autocast; run inside, the hand-written backward
    passes still compute the input gradient and the 4x4 gram of the mixing matrices in float32."""
    torch.manual_seed(4)
    mix = _mixing_matrices(*(torch.randn(2, 4, device=device))).requires_grad_()
    x = torch.rand(2, 8, 32, 32, device=device, requires_grad=True)
    out = function.apply(x, mix)
    weight = torch.randn_like(out)
    expected = torch.autograd.grad(out, [x, mix], weight, retain_graph=True)
    with autocast_or_skip(device, torch.bfloat16):
        got = torch.autograd.grad(out, [x, mix], weight)
    for g, e in zip(got, expected):
        assert g.dtype == torch.float32
        assert_close(g, e)
