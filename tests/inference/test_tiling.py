"""Tiled inference (ldwseg.inference.tiling): windows that cover an image, and results equal to the whole image's."""

import pytest
import torch
from torch import nn

from ldwseg.config import Config
from ldwseg.errors import ConfigError
from ldwseg.inference.tiling import apply_tiled, tile_spans
from ldwseg.models import build_unet
from ldwseg.pooling import EnergyAttention, LDWPool2d, LDWUnpool2d

PAPER_LDW = {"down": "ldw", "up": "ldw", "wavelet": "haar", "constraint": "orthogonal"}
"""The paper-literal LDW-UNet with Haar filters, whose receptive field the margins below cover."""


@pytest.fixture
def one_thread():
    """Run torch on one thread: on a small shared machine (2 cores here) OpenMP's waits for a busy
    second core make the many small per-tile operations several times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize(
    ("size", "tile", "margin", "multiple"), [(1, 64, 16, 16), (97, 32, 8, 8), (131, 48, 8, 16), (1000, 100, 10, 4)]
)
def test_tile_spans_cover_the_axis_with_interior_cores(size, tile, margin, multiple):
    spans = tile_spans(size, tile, margin, multiple)
    tile, margin = tile // multiple * multiple, -(-margin // multiple) * multiple
    assert spans[0][0] == 0 and spans[-1][1] == size
    for (core_start, core_stop, start, stop), following in zip(spans, spans[1:] + [None]):
        assert start % multiple == 0 and (stop - start <= tile or len(spans) == 1)
        assert start <= core_start < core_stop <= stop
        assert core_start - start >= margin or start == 0
        assert stop - core_stop >= margin or stop == size
        if following is not None:
            assert following[0] == core_stop


@pytest.mark.parametrize("shape", [(1, 3, 97, 131), (2, 1, 50, 33), (1, 4, 16, 300)])
def test_pointwise_fn_tiled_equals_untiled_exactly(shape):
    x = torch.rand(shape, dtype=torch.float64)

    def fn(w: torch.Tensor) -> torch.Tensor:  # two channels out, another dtype
        return torch.cat([w.sum(1, keepdim=True), w.amax(1, keepdim=True) * 7], 1).float()

    expected = torch.cat([x.sum(1, keepdim=True), x.amax(1, keepdim=True) * 7], 1).float()
    tiled = apply_tiled(fn, x, tile=32, margin=8, multiple=8)
    assert tiled.dtype == torch.float32
    torch.testing.assert_close(tiled, expected, rtol=0, atol=0)
    labels = apply_tiled(lambda w: (w[:, :1] * 255).to(torch.uint8), x, tile=24, margin=4, multiple=1)
    torch.testing.assert_close(labels, (x[:, :1] * 255).to(torch.uint8), rtol=0, atol=0)


def test_conv_net_tiled_equals_untiled_when_the_margin_covers_its_receptive_field(one_thread):
    net = nn.Sequential(*(nn.Conv2d(3, 3, 3, padding=1) for _ in range(4))).eval()  # reach: 4 px
    unet = build_unet(
        Config.from_dict({"model": {**PAPER_LDW, "base_width": 4, "depth": 2, "attention": False}}).model, 3, 3
    ).eval()
    x = torch.rand(1, 3, 203, 301)
    with torch.no_grad():
        torch.testing.assert_close(apply_tiled(net, x, tile=40, margin=4, multiple=1), net(x))
        whole = unet(x)
        torch.testing.assert_close(apply_tiled(unet, x, tile=96, margin=24, multiple=4), whole)  # reach ~22 px
        assert not torch.allclose(apply_tiled(unet, x, tile=40, margin=4, multiple=4), whole, atol=1e-4)


class _GatedPair(nn.Module):
    """conv, LDW pool, energy attention on the half-size bands, reverse pool, conv: reach 3 px."""

    def __init__(self, energy: str) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.pool = LDWPool2d(4)
        self.attention = EnergyAttention(16, energy=energy)
        self.unpool = LDWUnpool2d(self.pool)
        self.head = nn.Conv2d(4, 3, 1)
        with torch.no_grad():
            self.attention.excite[0].weight.mul_(20)  # gates that react to energy strongly
            self.attention.norm.running_var.fill_(0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.unpool(self.attention(self.pool(self.conv(x))), output_size=x.shape[-2:]))


@pytest.mark.parametrize("energy", ["mean", "sum"])
def test_tiled_attention_uses_the_whole_image_gates(energy):
    """Energy attention gates come from the whole map: given the model, the tiled result
    equals the whole image's; without it each window gates by its own energy."""
    torch.manual_seed(0)
    net = _GatedPair(energy).eval()
    x = torch.rand(1, 3, 61, 83)
    x[..., :30, :40] *= 0.1  # a dark corner, so windows see different energies
    with torch.no_grad():
        whole = net(x)
        tiled = apply_tiled(net, x, tile=24, margin=4, multiple=2, model=net)
        per_window = apply_tiled(net, x, tile=24, margin=4, multiple=2)
    torch.testing.assert_close(tiled, whole)
    assert (per_window - whole).abs().max() > 1e-2
    assert net.attention.fixed_gates is None  # the model is left as it was


@pytest.mark.parametrize("with_model", [False, True])
def test_progress_advances_once_per_model_run(with_model):
    net = _GatedPair("mean").eval()
    calls, runs = [], []
    seen = []

    def fn(window):
        calls.append(1)
        return net(window)

    def progress(items):
        runs.append(len(items))
        for item in items:
            seen.append(item)
            yield item

    x = torch.rand(1, 3, 61, 83)
    windows = len(tile_spans(61, 24, 4, 2)) * len(tile_spans(83, 24, 4, 2))
    with torch.no_grad():
        apply_tiled(fn, x, tile=24, margin=4, multiple=2, model=net if with_model else None, progress=progress)
        apply_tiled(fn, x[..., :20, :20], tile=24, margin=4, multiple=2, model=net, progress=progress)  # one window
    assert runs == [windows * (2 if with_model else 1)]
    assert seen == list(range(runs[0])) and len(calls) == runs[0] + 1


def test_attention_unet_tiled_equals_untiled(one_thread):
    torch.manual_seed(0)
    unet = build_unet(
        Config.from_dict({"model": {**PAPER_LDW, "base_width": 4, "depth": 2, "attention": True}}).model, 3, 3
    ).eval()
    x = torch.rand(1, 3, 203, 301)
    with torch.no_grad():
        torch.testing.assert_close(apply_tiled(unet, x, tile=96, margin=24, multiple=4, model=unet), unet(x))


def test_whole_image_gates_need_the_model_fn_runs():
    unet = build_unet(
        Config.from_dict({"model": {**PAPER_LDW, "base_width": 4, "depth": 1, "attention": True}}).model, 3, 3
    ).eval()
    with torch.no_grad(), pytest.raises(ValueError, match="pass the model that fn runs"):
        apply_tiled(lambda w: w, torch.rand(1, 3, 40, 40), tile=24, margin=4, multiple=2, model=unet)
    assert all(m.fixed_gates is None for m in unet.modules() if isinstance(m, EnergyAttention))


def test_bad_tiling_is_a_config_error():
    with pytest.raises(ConfigError, match=r"tile=100 .* leaves no interior with margin=64.*at least 144"):
        apply_tiled(lambda w: w, torch.zeros(1, 1, 500, 500), tile=100, margin=64, multiple=16)
    with pytest.raises(ConfigError, match="margin must be an integer >= 0"):
        tile_spans(10, 8, -1)
