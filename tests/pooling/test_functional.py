"""The functional core against the literal reference, PyWavelets and naive loops."""

import numpy as np
import pytest
import pywt
import torch
from torch.testing import assert_close

from ldwseg import ldw_analysis, ldw_synthesis
from ldwseg.pooling.functional import subband_shape
from ldwseg.pooling.reference import ldw_analysis_reference, ldw_synthesis_reference

WAVELETS = ["haar", "db2", "db4", "sym4", "coif1"]
AUTHORS_K5 = [-0.0761025, 0.3535534, 0.8593118, 0.3535534, -0.0761025]


def filters(name: str, dtype=torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    w = pywt.Wavelet(name)
    return torch.tensor(w.rec_lo, dtype=dtype), torch.tensor(w.rec_hi, dtype=dtype)


def naive_analysis(x: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Eqs. 3-8 as loops over one (H, W) map with even sides."""
    h, w = x.shape
    out = np.zeros((4, h // 2, w // 2))
    for b, (fw, fh) in enumerate(((low, low), (low, high), (high, low), (high, high))):
        for i in range(h // 2):
            for j in range(w // 2):
                out[b, i, j] = sum(
                    fh[p] * fw[q] * x[(2 * i + p) % h, (2 * j + q) % w]
                    for p in range(len(low))
                    for q in range(len(low))
                )
    return out


@pytest.mark.parametrize("shape", [(1, 1, 4, 4), (2, 3, 7, 10), (1, 2, 333, 517), (1, 1, 1, 1), (1, 1, 1, 6)])
def test_shape_is_ceil_half(shape):
    y = ldw_analysis(torch.randn(shape), *filters("db2", torch.float32))
    assert y.shape == (shape[0], 4 * shape[1], *subband_shape(*shape[-2:]))


@pytest.mark.parametrize("name", ["haar", "db2", "sym4"])
def test_matches_naive_loop(name):
    low, high = filters(name)
    x = torch.randn(1, 1, 6, 8, dtype=torch.float64)
    expected = naive_analysis(x[0, 0].numpy(), low.numpy(), high.numpy())
    assert_close(ldw_analysis(x, low, high)[0], torch.from_numpy(expected))


@pytest.mark.parametrize("name", WAVELETS + ["db8"])
@pytest.mark.parametrize("shape", [(2, 3, 8, 10), (1, 2, 5, 7), (1, 1, 2, 2), (2, 2, 17, 4)])
def test_matches_reference(name, shape):
    low, high = filters(name)
    x = torch.randn(shape, dtype=torch.float64)
    assert_close(ldw_analysis(x, low, high), ldw_analysis_reference(x, low, high))
    y = torch.randn(shape[0], 4 * shape[1], *subband_shape(*shape[-2:]), dtype=torch.float64)
    assert_close(ldw_synthesis(y, low, high), ldw_synthesis_reference(y, low, high))


def test_matches_reference_for_odd_kernel():
    low = torch.tensor(AUTHORS_K5, dtype=torch.float64)
    high = low * torch.tensor([1.0, -1.0, 1.0, -1.0, 1.0], dtype=torch.float64)
    x = torch.randn(2, 2, 9, 6, dtype=torch.float64)
    assert_close(ldw_analysis(x, low, high), ldw_analysis_reference(x, low, high))


@pytest.mark.parametrize("name", WAVELETS)
def test_equals_pywavelets_periodization(name):
    """Blocks [LL|LH|HL|HH] == cA, cH, cV, cD of pywt.dwt2 on x rolled by K/2 - 1."""
    low, high = filters(name)
    x = np.random.default_rng(0).standard_normal((3, 16, 12))
    shift = -(low.shape[0] // 2 - 1)
    ca, (ch, cv, cd) = pywt.dwt2(np.roll(x, shift, axis=(-2, -1)), name, mode="periodization")
    y = ldw_analysis(torch.from_numpy(x)[None], low, high)[0]
    assert_close(y, torch.from_numpy(np.concatenate([ca, ch, cv, cd])))


def test_synthesis_is_adjoint():
    low, high = torch.randn(4, dtype=torch.float64), torch.randn(4, dtype=torch.float64)
    x = torch.randn(2, 3, 10, 6, dtype=torch.float64)
    y = torch.randn(2, 12, 5, 3, dtype=torch.float64)
    lhs = (ldw_analysis(x, low, high) * y).sum()
    rhs = (x * ldw_synthesis(y, low, high)).sum()
    assert_close(lhs, rhs)


@pytest.mark.parametrize("name", WAVELETS)
@pytest.mark.parametrize("shape", [(2, 3, 64, 48), (1, 3, 333, 517), (1, 1, 3, 3), (1, 2, 2, 9)])
def test_round_trip_random(name, shape):
    low, high = filters(name, torch.float32)
    x = torch.randn(shape)
    rec = ldw_synthesis(ldw_analysis(x, low, high), low, high, output_size=x.shape[-2:])
    assert (rec - x).abs().max() <= 1e-5


@pytest.mark.parametrize("name", WAVELETS)
def test_parseval_at_even_sizes(name):
    low, high = filters(name)
    x = torch.randn(2, 3, 32, 20, dtype=torch.float64)
    assert_close(ldw_analysis(x, low, high).square().sum(), x.square().sum())


def test_non_contiguous_input():
    low, high = filters("db2")
    x = torch.randn(2, 12, 10, 3, dtype=torch.float64).permute(0, 3, 1, 2)
    assert not x.is_contiguous()
    assert_close(ldw_analysis(x, low, high), ldw_analysis(x.contiguous(), low, high))


@pytest.mark.parametrize("name", ["haar", "db2", "db4"])
def test_gradcheck_input_and_filters(name):
    low, high = (f.requires_grad_() for f in filters(name))
    x = torch.randn(2, 2, 6, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(ldw_analysis, (x, low, high))
    y = torch.randn(1, 8, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b, c: ldw_synthesis(a, b, c, output_size=(5, 6)), (y, low, high))


def test_gradcheck_odd_kernel_wraps_small_maps():
    low = torch.tensor(AUTHORS_K5, dtype=torch.float64, requires_grad=True)
    high = torch.randn(5, dtype=torch.float64, requires_grad=True)
    x = torch.randn(1, 1, 2, 4, dtype=torch.float64, requires_grad=True)  # filter longer than the map
    assert torch.autograd.gradcheck(ldw_analysis, (x, low, high))
    y = torch.randn(1, 4, 1, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(ldw_synthesis, (y, low, high))


@pytest.mark.parametrize("trainable", [True, False])
@pytest.mark.parametrize("name", ["haar", "db2"])
def test_backward_keeps_no_input_sized_copy(name, trainable):
    """For the filter gradient analysis keeps a tensor that a network holds anyway: its input,
    or for K = 2 its output (whose bands are M @ planes); never a copy of its planes. With
    fixed filters it keeps nothing input-sized. Synthesis keeps its input."""
    low, high = (f.requires_grad_(trainable) for f in filters(name, torch.float32))
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    y = ldw_analysis(x, low, high)
    large = [t for t in y.grad_fn.saved_tensors if t is not None and t.numel() >= x.numel()]
    kept = (y if name == "haar" else x) if trainable else None
    assert [t.data_ptr() for t in large] == ([] if kept is None else [kept.data_ptr()])
    y = torch.randn(2, 12, 4, 4, requires_grad=True)
    saved = [t for t in ldw_synthesis(y, low, high).grad_fn.saved_tensors if t is not None]
    assert [t.data_ptr() for t in saved if t.numel() >= y.numel()] == ([y.data_ptr()] if trainable else [])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_k2_filter_gradient_from_the_output_matches_the_planes(dtype):
    """For K = 2 the filter gradient is computed from the output (g out^T M^-T); it equals the
    gram of the planes (the path taken for ill-conditioned filters, here forced by a near-singular
    high-pass) to the dtype's rounding."""
    torch.manual_seed(0)
    tol = {"rtol": 1e-5, "atol": 1e-4} if dtype == torch.float32 else {"rtol": 1e-10, "atol": 1e-10}
    x = torch.randn(2, 3, 16, 12, dtype=dtype)
    weight = torch.randn(2, 12, 8, 6, dtype=dtype)
    for low, high in (([0.6, 0.8], [0.8, -0.6]), ([0.9, 0.5], [0.3, -0.2]), ([1.0, 0.5], [1.0, 0.5 + 1e-3])):
        low, high = (torch.tensor(f, dtype=dtype, requires_grad=True) for f in (low, high))
        got = torch.autograd.grad((ldw_analysis(x, low, high) * weight).sum(), [low, high])
        expected = torch.autograd.grad((ldw_analysis_reference(x, low, high) * weight).sum(), [low, high])
        for g, e in zip(got, expected):
            assert_close(g, e, **tol)


def test_k2_output_modified_in_place_before_backward_is_reported():
    """A K = 2 pool keeps its output for the filter gradient; autograd reports an in-place change."""
    low, high = (f.requires_grad_() for f in filters("haar", torch.float32))
    y = ldw_analysis(torch.randn(1, 2, 4, 4, requires_grad=True), low, high)
    y.mul_(2)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


@pytest.mark.parametrize("name", ["haar", "db2"])
def test_filter_gradient_of_long_maps(name):
    """Long rows of planes are reduced in blocks (one sample) or per sample; a remainder of the
    blocks included, the filter gradient equals the reference's."""
    low, high = (f.requires_grad_() for f in filters(name))
    for shape in ((1, 3, 262, 202), (2, 3, 262, 202)):  # 3 * 131 * 101 values per plane: odd
        x = torch.randn(shape, dtype=torch.float64)
        weight = torch.randn(shape[0], 4 * shape[1], 131, 101, dtype=torch.float64)
        got = torch.autograd.grad((ldw_analysis(x, low, high) * weight).sum(), [low, high])
        expected = torch.autograd.grad((ldw_analysis_reference(x, low, high) * weight).sum(), [low, high])
        for g, e in zip(got, expected):
            assert_close(g, e)


def test_bfloat16_runs_and_is_close():
    low, high = filters("db2", torch.float32)
    x = torch.randn(2, 4, 16, 16)
    y = ldw_analysis(x.bfloat16(), low, high)
    assert y.dtype == torch.bfloat16
    assert_close(y.float(), ldw_analysis(x, low, high), atol=0.1, rtol=0.02)
    rec = ldw_synthesis(y, low, high)
    assert rec.dtype == torch.bfloat16


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: ldw_analysis(torch.randn(3, 8, 8), [0.7, 0.7], [0.7, -0.7]), "4-D tensor"),
        (lambda: ldw_analysis(torch.ones(1, 1, 4, 4, dtype=torch.long), [0.7, 0.7], [0.7, -0.7]), "floating-point"),
        (lambda: ldw_analysis(torch.randn(1, 1, 4, 4), [0.7, 0.7, 0.1], [0.7, -0.7]), "same length"),
        (lambda: ldw_analysis(torch.randn(1, 1, 4, 4), [1.0], [1.0]), "at least 2 taps"),
        (lambda: ldw_synthesis(torch.randn(1, 3, 4, 4), [0.7, 0.7], [0.7, -0.7]), "multiple of 4"),
        (
            lambda: ldw_synthesis(torch.randn(1, 4, 4, 4), [0.7, 0.7], [0.7, -0.7], output_size=(5, 8)),
            "expected height 8 or 7",
        ),
    ],
)
def test_error_messages(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call()
