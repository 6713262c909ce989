"""LDWPool2d, LDWUnpool2d, EnergyAttention and wavelet_loss as modules."""

import numpy as np
import pytest
import torch
from torch import nn
from torch.testing import assert_close

from ldwseg import EnergyAttention, LDWPool2d, LDWUnpool2d, ldw_analysis, ldw_synthesis, wavelet_loss
from ldwseg.pooling.functional import pad_to_even

ROUND_TRIP = ["haar", "db2", "db4", "sym4", "coif1"]


def photos() -> list[np.ndarray]:
    """Real photos shipped with scikit-image (not made by this team), as float arrays."""
    from skimage import data

    return [data.astronaut(), data.coffee(), data.chelsea(), data.camera()]


def as_batch(img: np.ndarray) -> torch.Tensor:
    t = torch.from_numpy(img.astype(np.float32) / 255.0)
    return (t[None, None] if t.dim() == 2 else t.permute(2, 0, 1)[None]).contiguous()


@pytest.mark.parametrize("wavelet", ROUND_TRIP)
def test_round_trip_on_real_photos_with_odd_crops(wavelet):
    pool = LDWPool2d(wavelet=wavelet, constraint="orthogonal")
    unpool = LDWUnpool2d(pool)
    for img in photos():
        x = as_batch(img)[..., :333, :317]
        with torch.no_grad():
            rec = unpool(pool(x), output_size=x.shape[-2:])
        assert rec.shape == x.shape
        assert (rec - x).abs().max() <= 1e-5


def test_round_trip_on_shared_voc_photos(shared_data):
    from PIL import Image

    files = sorted((shared_data / "voc2012_val_crops" / "samples").glob("*_image.png"))[:4]
    assert files, "expected VOC val crops in the shared data folder"
    pool = LDWPool2d(wavelet="db4", constraint="orthogonal")
    unpool = LDWUnpool2d(pool)
    for f in files:
        x = as_batch(np.asarray(Image.open(f).convert("RGB")))  # 513 x 513: odd
        with torch.no_grad():
            assert (unpool(pool(x), output_size=x.shape[-2:]) - x).abs().max() <= 1e-5


def test_lattice_with_random_parameters_round_trips_333x517():
    pool = LDWPool2d(wavelet="random", kernel_size=8, constraint="lattice", seed=3)
    with torch.no_grad():
        pool.angles.uniform_(-3.0, 3.0)
    unpool = LDWUnpool2d(pool)
    x = torch.randn(2, 3, 333, 517)
    with torch.no_grad():
        assert (unpool(pool(x), output_size=x.shape[-2:]) - x).abs().max() <= 1e-5
    assert pool.wavelet_loss().item() == 0.0
    assert pool.pr_error() <= 1e-6


def test_authors_k5_pair_does_not_round_trip():
    low = [-0.0761025, 0.3535534, 0.8593118, 0.3535534, -0.0761025]
    high = [v * (-1) ** n for n, v in enumerate(low)]
    pool = LDWPool2d(wavelet=(low, high), constraint="paper")
    assert pool.wavelet_loss().item() <= 1e-10
    x = as_batch(photos()[0])
    with torch.no_grad():
        err = (LDWUnpool2d(pool)(pool(x), output_size=x.shape[-2:]) - x).abs().max().item()
    assert err > 0.05


def test_module_equals_function():
    pool = LDWPool2d(4, wavelet="db2")
    x = torch.randn(2, 4, 9, 12)
    assert_close(pool(x), ldw_analysis(x, pool.low, pool.high))
    y = pool(x)
    assert_close(LDWUnpool2d(pool)(y, output_size=(9, 12)), ldw_synthesis(y, pool.low, pool.high, output_size=(9, 12)))


def test_output_layout_is_ll_lh_hl_hh_blocks():
    pool = LDWPool2d(wavelet="haar")
    x = torch.zeros(1, 2, 4, 4)
    x[0, 1] = torch.arange(4.0).view(1, 4).expand(4, 4)  # varies along the width only
    y = pool(x).detach()
    assert y.shape == (1, 8, 2, 2)
    # channel 0 is all zero; channel 1 has energy in LL and in HL (high-pass along width)
    assert y[0, [0, 2, 4, 6]].abs().max() == 0
    assert y[0, 1].abs().min() > 0 and y[0, 5].abs().min() > 0  # LL and HL of channel 1
    assert y[0, 3].abs().max() < 1e-6 and y[0, 7].abs().max() < 1e-6  # LH and HH of channel 1


def test_unpool_shares_the_pool_filters():
    pool = LDWPool2d(wavelet="db2", constraint="orthogonal")
    unpool = LDWUnpool2d(pool)
    assert unpool.pool is pool
    params = dict(nn.ModuleList([pool, unpool]).named_parameters())
    assert set(params) == {"0.low", "0.high"}  # tied: one set of parameters
    x = torch.randn(1, 2, 8, 8)
    before = unpool(pool(x)).detach()
    with torch.no_grad():
        pool.low.mul_(0.5)
    assert (unpool(pool(x)).detach() - before).abs().max() > 0.1  # the unpool really uses the filters


def test_gradients_flow_to_tied_filters_from_both_sides():
    pool = LDWPool2d(wavelet="db2", constraint="orthogonal")
    unpool = LDWUnpool2d(pool)
    unpool(torch.randn(1, 8, 4, 4)).square().sum().backward()
    assert pool.low.grad is not None and pool.low.grad.abs().sum() > 0


def test_wavelet_loss_sums_each_pool_once():
    a, b = LDWPool2d(wavelet="haar", constraint="paper"), LDWPool2d(wavelet="haar", constraint="paper")
    model = nn.Sequential(a, nn.Identity(), b, LDWUnpool2d(b))
    assert_close(wavelet_loss(model), a.wavelet_loss() + b.wavelet_loss())
    assert_close(wavelet_loss(model), torch.tensor(4.0), atol=1e-6, rtol=0)  # 2.0 per Haar pool (Eq. 12)
    assert wavelet_loss(nn.Linear(2, 2)).item() == 0.0


def test_constraint_terms_are_named():
    assert set(LDWPool2d(constraint="paper").constraint_terms()) == {"low", "high", "reverse", "sym"}
    assert set(LDWPool2d().constraint_terms()) == {"low_orthonormal", "high_orthonormal", "cross_orthogonal", "low_dc"}
    assert set(LDWPool2d(constraint="orthogonal").constraint_terms()) == {
        "low_orthonormal",
        "high_orthonormal",
        "cross_orthogonal",
        "low_dc",
    }
    assert LDWPool2d(constraint="lattice").constraint_terms() == {}
    assert set(LDWPool2d(constraint="lattice").paper_terms()) == {"low", "high", "reverse", "sym"}


def test_training_the_orthogonal_loss_restores_pr():
    torch.manual_seed(1)
    pool = LDWPool2d(wavelet="db2", constraint="orthogonal")
    with torch.no_grad():
        pool.low.add_(0.1 * torch.randn(4))
        pool.high.add_(0.1 * torch.randn(4))
    start = pool.pr_error()
    opt = torch.optim.Adam(pool.parameters(), lr=1e-2)
    for _ in range(500):
        opt.zero_grad()
        pool.wavelet_loss().backward()
        opt.step()
    assert start > 0.05 and pool.pr_error() < 1e-3


def test_fixed_filters_and_channel_check():
    pool = LDWPool2d(3, trainable=False)
    assert not any(p.requires_grad for p in pool.parameters())
    with pytest.raises(ValueError, match="built for 3 channels"):
        pool(torch.randn(1, 4, 8, 8))
    with pytest.raises(TypeError, match="needs the LDWPool2d"):
        LDWUnpool2d(nn.MaxPool2d(2))


def test_state_dict_round_trip_restores_filters():
    pool = LDWPool2d(wavelet="random", kernel_size=6, constraint="lattice", seed=5)
    other = LDWPool2d(wavelet="random", kernel_size=6, constraint="lattice", seed=9)
    other.load_state_dict(pool.state_dict())
    assert_close(other.filters()[0], pool.filters()[0])


def test_energy_attention_matches_eq16_17_by_hand():
    att = EnergyAttention(8, reduction=2, energy="sum").eval()
    x = torch.randn(2, 8, 5, 7)
    z = (x - att.norm.running_mean[None, :, None, None]) / torch.sqrt(att.norm.running_var + att.norm.eps)[
        None, :, None, None
    ]
    energy = z.square().sum((-2, -1))  # Eq. 16
    gate = att.excite(energy)  # Eq. 17
    assert_close(att(x), x * gate[:, :, None, None])
    mean_att = EnergyAttention(8, reduction=2).eval()
    mean_att.load_state_dict(att.state_dict())
    assert_close(mean_att(x), x * att.excite(energy / 35)[:, :, None, None])


def test_energy_attention_trains_and_validates():
    att = EnergyAttention(16)
    x = torch.randn(4, 16, 6, 6, requires_grad=True)
    att(x).sum().backward()
    assert x.grad is not None and att.excite[0].weight.grad is not None
    with pytest.raises(ValueError, match="unknown energy mode"):
        EnergyAttention(4, energy="max")


def test_pad_to_even_repeats_last_row_and_column():
    x = torch.arange(6.0).view(1, 1, 2, 3)
    assert_close(pad_to_even(x)[0, 0, :, -1], x[0, 0, :, -1])


def test_torch_compile_equals_eager():
    """Dynamo's capture and AOT autograd of the pools (what ldwseg must get right for the compiler) on the
    ``aot_eager`` backend: inductor's code generation of the same graph takes minutes of C++ compiling
    on a small CPU with a cold cache; tests/engine/test_compile.py runs inductor on a whole UNet."""
    pool = LDWPool2d(wavelet="db2", constraint="orthogonal")
    unpool = LDWUnpool2d(pool)

    def model(t):
        return unpool(pool(t) * 2.0, output_size=t.shape[-2:])

    x = torch.randn(2, 3, 16, 12, requires_grad=True)
    torch._dynamo.reset()
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    eager = model(x)
    out = compiled(x)
    assert_close(out, eager)
    g_eager = torch.autograd.grad(eager.sum(), [x, pool.low])
    g_comp = torch.autograd.grad(compiled(x).sum(), [x, pool.low])
    assert_close(g_comp[0], g_eager[0])
    assert_close(g_comp[1], g_eager[1])


@pytest.mark.parametrize("wavelet", ["haar", "db2"])
@pytest.mark.parametrize("grad", [False, True])
def test_bfloat16_maps_with_float32_filters(wavelet, grad):
    """Autocast hands bf16 maps to pools whose filters stay float32 parameters (validation runs without grad)."""
    pool = LDWPool2d(4, wavelet=wavelet)
    unpool = LDWUnpool2d(pool)
    x = torch.randn(2, 4, 18, 14)
    with torch.set_grad_enabled(grad):
        y = pool(x.bfloat16())
        back = unpool(y, output_size=x.shape[-2:])
    assert y.dtype == back.dtype == torch.bfloat16
    assert_close(y.float(), pool(x).detach(), atol=0.05, rtol=0.02)
    assert_close(back.float(), x, atol=0.08, rtol=0.02)


@pytest.mark.parametrize("constraint", ["paper", "orthogonal", "lattice"])
def test_fixed_filters_survive_optimizer_steps_and_keep_the_state_dict_keys(constraint):
    fixed = LDWPool2d(2, wavelet="db2", constraint=constraint, trainable=False)
    learned = LDWPool2d(2, wavelet="db2", constraint=constraint)
    assert fixed.state_dict().keys() == learned.state_dict().keys()
    assert "trainable=False" in repr(fixed) and "trainable" not in repr(learned)
    for pool in (fixed, learned):
        start = [p.detach().clone() for p in pool.parameters()]
        opt = torch.optim.Adam(pool.parameters(), lr=1e-2, weight_decay=1e-4)
        for _ in range(3):
            opt.zero_grad()
            x = torch.randn(1, 2, 8, 8, requires_grad=True)  # a graph even when the filters are fixed
            (pool(x).square().mean() + pool.wavelet_loss()).backward()
            opt.step()
        same = all(torch.equal(a, b) for a, b in zip(start, pool.parameters()))
        assert same is (pool is fixed)
