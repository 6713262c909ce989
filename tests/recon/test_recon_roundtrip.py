"""Reconstruction: the multi-level LDW round trip, PSNR/SSIM, and whole files in and out.

The round trip of an orthogonal wavelet is exact, so every written file must equal its
input pixel for pixel (checked with Pillow, not with ldwseg's reader). PSNR and SSIM are
cross-checked against torchmetrics and the textbook PSNR formula on real photos.
"""

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from bad_files import make_bad
from PIL import Image
from skimage import data
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from ldwseg import LDWPool2d, LDWUnpool2d
from ldwseg.errors import ConfigError, DataError
from ldwseg.pooling.multilevel import max_levels, wavelet_round_trip
from ldwseg.recon import psnr, reconstruct_file, ssim, ssim_window

LOSSY = ([0.75, 0.625], [0.5, -0.75])  # not a PR bank; exact in float32 and float64
PHOTOS = {"astronaut": data.astronaut, "camera": data.camera, "coffee": data.coffee}


def noisy(image: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(image + rng.normal(0.0, sigma, image.shape), 0.0, 1.0)


def as_float(pixels: np.ndarray) -> np.ndarray:
    return pixels.reshape(*pixels.shape[:2], -1).astype(np.float64) / 255.0


# --- the round trip ------------------------------------------------------------------


@pytest.mark.parametrize("size", [(32, 32), (33, 50), (127, 127), (100, 99), (5, 7)])
@pytest.mark.parametrize("wavelet", ["haar", "db2", "db4", "sym3", ([0.8, 0.6], [0.6, -0.8])])
def test_round_trip_is_exact_for_orthogonal_banks(size, wavelet):
    x = torch.rand(2, 3, *size, dtype=torch.float64)
    levels = min(3, max_levels(*size))
    y = wavelet_round_trip(x, levels=levels, wavelet=wavelet)
    assert y.shape == x.shape and y.dtype == x.dtype
    torch.testing.assert_close(y, x, rtol=0, atol=1e-9)  # PyWavelets tabulates symN to ~1e-12


def test_round_trip_uses_every_level():
    """A non-PR pair loses information at each level, so the error must depend on ``levels``."""
    x = torch.rand(1, 1, 40, 40, dtype=torch.float64)
    errors = [(wavelet_round_trip(x, levels=k, wavelet=LOSSY) - x).abs().max().item() for k in (1, 2, 3)]
    assert errors[0] > 1e-3 and errors[0] != errors[1] != errors[2]


def test_round_trip_single_level_matches_the_pool_modules():
    x = torch.rand(1, 2, 17, 12, dtype=torch.float64)
    pool = LDWPool2d(wavelet=LOSSY, constraint="orthogonal").double()
    expected = LDWUnpool2d(pool)(pool(x), output_size=x.shape[-2:])
    torch.testing.assert_close(wavelet_round_trip(x, levels=1, wavelet=LOSSY), expected)


def test_round_trip_float32_gradients_and_max_depth():
    x = torch.rand(1, 4, 21, 9, requires_grad=True)
    y = wavelet_round_trip(x, levels=max_levels(21, 9), wavelet="db2")
    torch.testing.assert_close(y, x, rtol=0, atol=1e-5)
    y.square().sum().backward()
    torch.testing.assert_close(x.grad, 2 * x.detach(), rtol=0, atol=1e-4)


@pytest.mark.parametrize(("size", "most"), [((2, 2), 1), ((3, 9), 2), ((5, 7), 3), ((8, 8), 3), ((9, 100), 4)])
def test_max_levels_halves_the_shorter_side_down_to_one(size, most):
    assert max_levels(*size) == most
    side = min(size)
    for _ in range(most):
        assert side >= 2
        side = (side + 1) // 2
    assert side == 1


def test_levels_are_validated_with_the_maximum_in_the_message():
    x = torch.rand(1, 1, 5, 7)
    with pytest.raises(DataError, match=r"levels=4 is too many for a 5x7 image: .* at most 3 levels fit"):
        wavelet_round_trip(x, levels=4)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ConfigError, match=r"levels must be an integer >= 1"):
            wavelet_round_trip(x, levels=bad)
    with pytest.raises(ValueError, match=r"4-D tensor \(N, C, H, W\)"):
        wavelet_round_trip(x[0], levels=1)
    with pytest.raises(ValueError, match="needs fixed filters"):
        wavelet_round_trip(x, levels=1, wavelet="random")


# --- PSNR and SSIM -------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(PHOTOS))
def test_psnr_and_ssim_agree_with_torchmetrics_and_the_formula(name):
    reference = as_float(PHOTOS[name]()[100:300, 150:390])  # a 200 x 240 part of the photo: fast enough
    test = noisy(reference, 0.05)
    mse = np.mean((reference - test) ** 2)
    ours = psnr(reference, test)
    assert ours == pytest.approx(10 * math.log10(1.0 / mse), abs=1e-9)
    ref_t = torch.from_numpy(reference).permute(2, 0, 1)[None]
    test_t = torch.from_numpy(test).permute(2, 0, 1)[None]
    # torchmetrics multiplies by 10 / ln(10) computed in float32 (a relative error of ~5e-8,
    # about 1e-6 dB here) even for float64 input, so it is compared relatively.
    assert ours == pytest.approx(peak_signal_noise_ratio(test_t, ref_t, data_range=1.0).item(), rel=1e-7, abs=0)
    # torchmetrics averages the SSIM map over the whole image (reflect-padded borders
    # included); skimage drops the 5-px border where the window leaves the image. Cropped to
    # the same pixels, the two compute the same windowed sums.
    uncropped, full = structural_similarity_index_measure(
        test_t,
        ref_t,
        gaussian_kernel=True,
        sigma=1.5,
        kernel_size=11,
        data_range=1.0,
        k1=0.01,
        k2=0.03,
        return_full_image=True,
    )
    ours_ssim = ssim(reference, test)
    assert ours_ssim == pytest.approx(full[..., 5:-5, 5:-5].mean().item(), abs=1e-6)
    assert ours_ssim == pytest.approx(uncropped.item(), abs=1e-2)
    assert 0.2 < ours_ssim < 0.95


def test_metrics_of_identical_images_and_of_tensors():
    reference = as_float(data.camera()[:40, :30])
    assert psnr(reference, reference) == math.inf and ssim(reference, reference) == pytest.approx(1.0)
    test = noisy(reference, 0.1)
    t_ref = torch.from_numpy(reference).permute(2, 0, 1)
    t_test = torch.from_numpy(test).permute(2, 0, 1).float()[None]
    assert psnr(t_ref, t_test) == pytest.approx(psnr(reference, test.astype(np.float32)), abs=1e-9)
    assert ssim(t_ref, t_test) == pytest.approx(ssim(reference[..., 0], test.astype(np.float32)), abs=1e-9)
    assert psnr(reference, test, data_range=255.0) == pytest.approx(psnr(reference, test) + 20 * math.log10(255))


@pytest.mark.parametrize(("size", "window"), [((11, 40), 11), ((10, 40), 9), ((7, 5), 5), ((3, 3), 3), ((2, 9), 1)])
def test_ssim_shrinks_its_window_on_small_images(size, window):
    assert ssim_window(*size)[0] == window
    assert int(3.5 * ssim_window(*size)[1] + 0.5) * 2 + 1 == window  # the Gaussian really has that many taps
    reference = as_float(data.astronaut()[: size[0], : size[1]])
    test = noisy(reference, 0.1)
    assert ssim(reference, reference) == pytest.approx(1.0)
    assert 0.0 < ssim(reference, test) < 1.0


def test_one_tap_ssim_is_the_luminance_term():
    reference = noisy(np.full((2, 6, 1), 0.5), 0.2, seed=1)
    test = noisy(reference, 0.1, seed=2)
    c1 = 0.01**2
    expected = np.mean((2 * reference * test + c1) / (reference**2 + test**2 + c1))
    assert ssim(reference, test) == pytest.approx(expected, abs=1e-12)


def test_metrics_refuse_mismatched_shapes():
    with pytest.raises(ValueError, match=r"same shape, got \(4, 4, 3\) and \(4, 4, 1\)"):
        psnr(np.zeros((4, 4, 3)), np.zeros((4, 4)))
    with pytest.raises(ValueError, match=r"\(C, H, W\) or \(1, C, H, W\) tensor"):
        ssim(torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 4))


# --- files ---------------------------------------------------------------------------


def assert_written_equals_input(result: dict, source: Path, pixels: np.ndarray) -> None:
    written = Image.open(result["output"])
    assert written.size == Image.open(source).size
    assert result["size"] == [pixels.shape[1], pixels.shape[0]]
    np.testing.assert_array_equal(np.asarray(written), pixels)
    assert result["psnr"] == math.inf and result["ssim"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("name", "crop"), [("astronaut", None), ("camera", None), ("coffee", None), ("coffee", (333, 317))]
)
def test_reconstructed_png_equals_the_input(tmp_path, name, crop):
    pixels = PHOTOS[name]()
    if crop is not None:
        pixels = pixels[21 : 21 + crop[1], 7 : 7 + crop[0]]
    source = tmp_path / f"{name}.png"
    Image.fromarray(pixels).save(source)
    result = reconstruct_file(source, levels=3, wavelet="db2")
    assert result["output"] == str(tmp_path / f"{name}_recon.png")
    assert result["mode"] == ("L" if pixels.ndim == 2 else "RGB") and result["levels"] == 3
    assert_written_equals_input(result, source, pixels)


def test_16bit_gray_and_rgba_round_trip_bit_exactly(tmp_path):
    camera = data.camera()[:333, :317].astype(np.uint32)
    gray16 = (camera * 257 + np.arange(317) * 7 % 251).clip(0, 65535).astype(np.uint16)
    rgba = np.concatenate([data.coffee()[:317, :333], data.camera()[:317, :333, None]], axis=-1)
    rgba[:40, :40, 3] = 0  # fully transparent corner: its colour must survive too
    for name, pixels, mode in (("g16.png", gray16, "I;16"), ("g16.tif", gray16, "I;16"), ("rgba.png", rgba, "RGBA")):
        source = tmp_path / name
        Image.fromarray(pixels).save(source)
        result = reconstruct_file(source, levels=4)
        assert Path(result["output"]).suffix == source.suffix and result["mode"] == mode
        assert Image.open(result["output"]).mode == mode
        assert_written_equals_input(result, source, pixels)


def test_jpeg_input_gives_a_png_of_the_same_size(tmp_path):
    source = tmp_path / "coffee.jpg"
    Image.fromarray(data.coffee()[:201, :303]).save(source, quality=85)
    result = reconstruct_file(source)
    assert result["output"] == str(tmp_path / "coffee_recon.png") and result["mode"] == "RGB"
    assert_written_equals_input(result, source, np.asarray(Image.open(source)))


def test_model_output_is_measured_as_written(tmp_path):
    pixels = data.astronaut()[:64, :48]
    source = tmp_path / "a.png"
    Image.fromarray(pixels).save(source)
    seen = []

    def darken(x: torch.Tensor) -> torch.Tensor:
        seen.append((x.shape, x.dtype, torch.is_grad_enabled()))
        return x * 0.8 + 0.3  # values above 1 are clipped when written

    result = reconstruct_file(source, out=tmp_path / "o.tiff", model_fn=darken)
    assert seen == [(torch.Size([1, 3, 64, 48]), torch.float32, False)] and result["levels"] is None
    written = np.asarray(Image.open(tmp_path / "o.tiff"))
    x = pixels.astype(np.float32) / 255.0  # the same float32 steps as load, model and save
    np.testing.assert_array_equal(written, np.rint(np.clip(x * np.float32(0.8) + np.float32(0.3), 0, 1) * 255))
    assert result["psnr"] == pytest.approx(psnr(as_float(pixels), as_float(written)), abs=1e-9)
    assert result["ssim"] == pytest.approx(ssim(as_float(pixels), as_float(written)), abs=1e-9)
    assert 0 < result["ssim"] < 1


def test_misuse_of_the_model_path_is_refused(tmp_path):
    source = tmp_path / "g.png"
    Image.fromarray(data.camera()[:20, :20]).save(source)
    with pytest.raises(DataError, match=r"model_fn returned \(1, 3, 20, 20\) .* expected .* \(1, 1, 20, 20\)"):
        reconstruct_file(source, model_fn=lambda x: x.repeat(1, 3, 1, 1))
    with pytest.raises(ConfigError, match="drop them when model_fn is given"):
        reconstruct_file(source, levels=2, model_fn=lambda x: x)
    assert [p.name for p in tmp_path.iterdir()] == ["g.png"]


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("missing", "does not exist"),
        ("directory", "is a directory"),
        ("empty", "is empty"),
        ("text", "is not an image PIL can read"),
        ("truncated_jpeg", "truncated or corrupt"),
        ("one_pixel", "expected at least 2x2"),
    ],
)
def test_unusable_inputs_raise_and_write_nothing(tmp_path, kind, message):
    folder = tmp_path / "in"
    folder.mkdir()
    path = make_bad(kind, folder)
    before = sorted(folder.iterdir())
    with pytest.raises(DataError, match=message) as caught:
        reconstruct_file(path)
    assert str(path) in str(caught.value)
    assert sorted(folder.iterdir()) == before


def test_bad_outputs_and_levels_write_nothing(tmp_path):
    source = tmp_path / "c.png"
    Image.fromarray(data.camera()[:6, :9]).save(source)
    with pytest.raises(DataError, match=r"unknown image suffix '\.gif'"):
        reconstruct_file(source, out=tmp_path / "c.gif")
    with pytest.raises(DataError, match="would overwrite the input"):
        reconstruct_file(source, out=source)
    with pytest.raises(DataError, match="at most 3 levels fit"):
        reconstruct_file(source, levels=4)
    assert [p.name for p in tmp_path.iterdir()] == ["c.png"]


# --- the team's real images ----------------------------------------------------------


def test_round_trip_on_shared_voc_and_camvid(shared_data, tmp_path):
    voc = sorted((shared_data / "voc2012_val_crops" / "samples").glob("*_image.png"))[:3]
    camvid = sorted((shared_data / "camvid" / "val").glob("*.png"))[:1]
    assert len(voc) == 3 and len(camvid) == 1
    for source in voc + camvid:
        result = reconstruct_file(source, out=tmp_path / f"{source.stem}.png", levels=3, wavelet="db2")
        assert_written_equals_input(result, source, np.asarray(Image.open(source)))


def test_an_autoencoder_runs_on_the_image_padded_to_its_stride():
    """Every level of the UNet sees even sizes: the image is padded with its last row and column
    to a multiple of 2**depth, and the reconstruction is cropped back."""
    import torch.nn.functional as F

    from ldwseg.models import UNet
    from ldwseg.recon.autoencode import autoencode
    from ldwseg.recon.reconstruct import autoencoder_fn

    torch.manual_seed(0)
    model = UNet(3, 3, base_width=4, depth=3, down="ldw-ll", up="ldw-detail", skip=False, norm="affine").eval()
    x = torch.rand(1, 3, 21, 30)
    with torch.no_grad():
        reference = model(F.pad(x, (0, 2, 0, 3), mode="replicate"))[..., :21, :30]  # to 24 x 32
        torch.testing.assert_close(autoencode(model, x), reference)
        assert not torch.allclose(model(x), reference)  # unpadded, the pools pad the odd levels
        torch.testing.assert_close(autoencoder_fn(model, torch.device("cpu"))(x), reference.clamp(0, 1))
