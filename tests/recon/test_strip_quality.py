"""PSNR and SSIM computed a strip at a time (ldwseg.recon.quality) equal scikit-image's whole-image values."""

import math

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from ldwseg.recon import psnr, quality, ssim


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
