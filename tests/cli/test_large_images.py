"""Huge images: tiled inference, a 12000 x 12000 image through predict and reconstruct, the pixel limit.

The tiled results are compared with the whole-image ones computed independently; the
huge image is smooth (a colour ramp), written once per module as a fast-compressed PNG.
"""

import json
import resource
from pathlib import Path

import numpy as np
import pytest
import torch
from bad_files import png_bytes
from PIL import Image
from typer.testing import CliRunner

from ldwseg.cli import app
from ldwseg.config import Config
from ldwseg.engine.checkpoints import save_run_checkpoint
from ldwseg.models import build_unet

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
        invoke(
            "predict", ckpt, source, "--out", tmp_path / str(tile), "--device", "cpu", "--tile", tile, "--no-overlay"
        )
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
