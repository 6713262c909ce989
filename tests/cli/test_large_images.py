"""Huge images: tiled inference, a 12000 x 12000 image through predict and reconstruct, the pixel limit.

The tiled results are compared with the whole-image ones computed independently; the
huge image is smooth (a colour ramp), written once per module as a fast-compressed PNG.
"""

import json
import math
import resource
from pathlib import Path

import numpy as np
import pytest
import torch
from bad_files import png_bytes
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from torch import nn
from typer.testing import CliRunner

from ldwseg.cli import app
from ldwseg.config import Config
from ldwseg.engine.checkpoints import save_run_checkpoint
from ldwseg.errors import ConfigError
from ldwseg.inference.tiling import apply_tiled, tile_spans
from ldwseg.models import build_unet
from ldwseg.pooling import EnergyAttention, LDWPool2d, LDWUnpool2d
from ldwseg.recon import psnr, quality, ssim

runner = CliRunner()
HUGE = 12000
PAPER_LDW = {"down": "ldw", "up": "ldw", "wavelet": "haar", "constraint": "orthogonal"}
"""The paper-literal LDW-UNet with Haar filters, whose receptive field the margins below cover."""
PALETTE = [[0, 0, 0], [200, 30, 30], [30, 200, 30]]
# Pillow's warning would be printed for every accepted image above ~89 M px: make it fail the test instead.
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("error::PIL.Image.DecompressionBombWarning")]


def invoke(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == code, result.output
    return result.output


def checkpoint(path: Path, task: str, **model) -> Path:
    """A tiny untrained UNet checkpoint, as training writes it (weights + config + data set)."""
    train = {"task": task, "loss": "ce" if task == "seg" else "l1"}
    cfg = Config.from_dict({"model": model, "train": train})
    net = build_unet(cfg.model, 3, len(PALETTE) if task == "seg" else 3)
    dataset = {"name": "tiny", "num_classes": len(PALETTE), "palette": PALETTE, "class_names": ["a", "b", "c"]}
    save_run_checkpoint(path, net, cfg, dataset, epoch=0, metrics={})
    return path


def header(path: Path) -> tuple[str, tuple[int, int]]:
    """Mode and size of an image file; Pillow's own size check is off for this test's reads only."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Image, "MAX_IMAGE_PIXELS", None)
        with Image.open(path) as image:
            return image.mode, image.size


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux reports KiB


@pytest.fixture
def one_thread():
    """Run torch on one thread: on a small shared machine (2 cores here) OpenMP's waits for a busy
    second core make the many small per-tile operations several times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def huge_png(tmp_path_factory) -> Path:
    ramp = (np.arange(HUGE, dtype=np.uint32) * 255 // (HUGE - 1)).astype(np.uint8)
    pixels = np.empty((HUGE, HUGE, 3), np.uint8)
    pixels[..., 0], pixels[..., 1], pixels[..., 2] = ramp[None, :], ramp[:, None], 128
    path = tmp_path_factory.mktemp("huge") / "huge.png"
    Image.fromarray(pixels).save(path, compress_level=1)
    return path


@pytest.fixture(scope="module")
def seg_checkpoint(tmp_path_factory) -> Path:
    # 2 channels, one level: about the cheapest LDW UNet (on CPU even 2-channel convolutions cost ~10 ns/px each)
    return checkpoint(tmp_path_factory.mktemp("seg") / "seg.safetensors", "seg", base_width=4, depth=1, attention=False)


# --- tiling ----------------------------------------------------------------------------


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
    unet = build_unet(Config.from_dict({"model": {**PAPER_LDW, "base_width": 4, "depth": 2, "attention": False}}).model, 3, 3).eval()
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
    unet = build_unet(Config.from_dict({"model": {**PAPER_LDW, "base_width": 4, "depth": 2, "attention": True}}).model, 3, 3).eval()
    x = torch.rand(1, 3, 203, 301)
    with torch.no_grad():
        torch.testing.assert_close(apply_tiled(unet, x, tile=96, margin=24, multiple=4, model=unet), unet(x))


def test_whole_image_gates_need_the_model_fn_runs():
    unet = build_unet(Config.from_dict({"model": {**PAPER_LDW, "base_width": 4, "depth": 1, "attention": True}}).model, 3, 3).eval()
    with torch.no_grad(), pytest.raises(ValueError, match="pass the model that fn runs"):
        apply_tiled(lambda w: w, torch.rand(1, 3, 40, 40), tile=24, margin=4, multiple=2, model=unet)
    assert all(m.fixed_gates is None for m in unet.modules() if isinstance(m, EnergyAttention))


def test_bad_tiling_is_a_config_error():
    with pytest.raises(ConfigError, match=r"tile=100 .* leaves no interior with margin=64.*at least 144"):
        apply_tiled(lambda w: w, torch.zeros(1, 1, 500, 500), tile=100, margin=64, multiple=16)
    with pytest.raises(ConfigError, match="margin must be an integer >= 0"):
        tile_spans(10, 8, -1)


# --- quality in strips ------------------------------------------------------------------


def test_strip_psnr_and_ssim_equal_the_whole_image_values(monkeypatch):
    rng = np.random.default_rng(0)
    reference = rng.integers(0, 256, (203, 151, 3)).astype(np.uint8)
    test = np.clip(reference + rng.integers(-30, 31, reference.shape), 0, 255).astype(np.uint8)
    test[60:90] = reference[60:90]  # identical strips take the shortcut
    a, b = reference / 255.0, test / 255.0
    options = {"gaussian_weights": True, "use_sample_covariance": False, "data_range": 1.0, "channel_axis": -1}
    whole_ssim = structural_similarity(a, b, win_size=11, sigma=1.5, **options)
    whole_psnr = peak_signal_noise_ratio(a, b, data_range=1.0)
    monkeypatch.setattr(quality, "STRIP_PIXELS", 151 * 7)  # 7-row strips
    assert ssim(a, b) == pytest.approx(whole_ssim, abs=1e-12)
    assert ssim(reference, test, data_range=255) == pytest.approx(whole_ssim, abs=1e-12)
    assert psnr(reference, test, data_range=255) == pytest.approx(whole_psnr, abs=1e-9)
    assert ssim(reference, reference, data_range=255) == 1.0 and psnr(reference, reference) == math.inf


# --- 12000 x 12000 through the command line ----------------------------------------------


def test_huge_image_round_trip_is_exact_in_tiles(huge_png, tmp_path, one_thread):
    out = tmp_path / "huge_recon.png"
    output = invoke("reconstruct", huge_png, "--out", out)
    assert "PSNR inf (exact), SSIM 1.000000" in output
    assert header(out) == ("RGB", (HUGE, HUGE))
    assert peak_rss_gib() < 12, f"peak RSS {peak_rss_gib():.1f} GiB"


def test_huge_image_predict_writes_mask_and_overlay(huge_png, seg_checkpoint, tmp_path, one_thread):
    # 512-px tiles (961 windows): on this CPU a tiny UNet costs half as much per pixel as on 1024-px tiles
    output = invoke("predict", seg_checkpoint, huge_png, "--out", tmp_path / "p", "--device", "cpu", "--tile", 512)
    assert "wrote 2 files" in output
    assert header(tmp_path / "p" / "huge_mask.png") == ("P", (HUGE, HUGE))
    mode, (width, height) = header(tmp_path / "p" / "huge_overlay.png")
    assert mode == "RGB" and width == HUGE and height > HUGE  # the legend strip below the image
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == ["huge_mask.png", "huge_overlay.png"]
    assert peak_rss_gib() < 12, f"peak RSS {peak_rss_gib():.1f} GiB"


def test_tiled_predict_with_attention_equals_the_whole_image(tmp_path):
    ckpt = checkpoint(tmp_path / "seg.safetensors", "seg", base_width=4, depth=2, attention=True)
    source = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (333, 517, 3)).astype(np.uint8)).save(source)
    for tile in (0, 256):  # 256: 2 x 3 windows, margin 64
        invoke("predict", ckpt, source, "--out", tmp_path / str(tile), "--device", "cpu", "--tile", tile, "--no-overlay")
    whole = np.asarray(Image.open(tmp_path / "0" / "photo_mask.png"))
    tiled = np.asarray(Image.open(tmp_path / "256" / "photo_mask.png"))
    assert np.mean(whole != tiled) < 1e-3  # float rounding may flip a near tie of the untrained logits


# --- the pixel limit ----------------------------------------------------------------------


def test_images_above_the_limit_are_refused_before_decoding(tmp_path, seg_checkpoint):
    small = tmp_path / "small.png"
    Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(small)
    output = invoke("reconstruct", small, "--max-pixels", 1999, code=2)
    assert "50x40 = 2000 pixels, more than max_pixels=1999" in output and "--max-pixels 2000" in output
    assert not (tmp_path / "small_recon.png").exists()
    output = invoke("predict", seg_checkpoint, small, "--out", tmp_path / "p", "--max-pixels", 1999, code=2)
    assert "more than max_pixels=1999" in output and not (tmp_path / "p").exists()
    claims = tmp_path / "claims.png"  # a 20000 x 20000 header and no pixels: nothing can be decoded
    claims.write_bytes(png_bytes(20000, 20000, 8, 2, b""))
    output = invoke("reconstruct", claims, code=2)
    assert "20000x20000 = 400000000 pixels, more than max_pixels=268435456" in output
    assert "Pillow" not in output and "bomb" not in output and "\n" not in output.strip()
    assert not (tmp_path / "claims_recon.png").exists()
    output = invoke("reconstruct", claims, "--max-pixels", 400_000_000, code=2)  # accepted, then found empty
    assert "truncated or corrupt" in output


# --- tiled reconstruction with a checkpoint; atomic predict outputs ------------------------


@pytest.mark.parametrize("attention", [False, True])
def test_tiled_reconstruction_with_a_checkpoint_equals_the_whole_image(tmp_path, attention):
    ckpt = checkpoint(tmp_path / "recon.safetensors", "recon", base_width=4, depth=2, attention=attention, skip=False)
    rng = np.random.default_rng(1)
    source = tmp_path / "photo.png"
    Image.fromarray(rng.integers(0, 256, (333, 517, 3)).astype(np.uint8)).save(source)
    args = ("reconstruct", source, "--checkpoint", ckpt, "--device", "cpu", "--json", "--out")
    whole = invoke(*args, tmp_path / "whole.png", "--tile", 0).splitlines()[-1]
    tiled = invoke(*args, tmp_path / "tiled.png", "--tile", 256).splitlines()[-1]  # 2 x 4 windows, margin 64
    a = np.asarray(Image.open(tmp_path / "whole.png")).astype(int)
    b = np.asarray(Image.open(tmp_path / "tiled.png")).astype(int)
    assert np.abs(a - b).max() <= 1 and np.mean(a != b) < 1e-3  # float rounding may flip a quantisation step
    assert json.loads(tiled)["psnr"] == pytest.approx(json.loads(whole)["psnr"], abs=1e-3)


def test_predict_failure_while_writing_leaves_no_partial_file(tmp_path, seg_checkpoint, monkeypatch):
    source = tmp_path / "im.png"
    Image.fromarray(np.full((30, 40, 3), 90, np.uint8)).save(source)
    save = Image.Image.save

    def save_then_fail(self, fp, *args, **kwargs):
        save(self, fp, *args, **kwargs)
        if self.mode == "RGB":  # the overlay
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", save_then_fail)
    output = invoke("predict", seg_checkpoint, source, "--out", tmp_path / "p", code=1)  # the machine's problem
    assert "no space left on the device while writing" in output and "im_overlay.png" in output
    assert [p.name for p in (tmp_path / "p").iterdir()] == ["im_mask.png"]  # no partial overlay, no temporary file
