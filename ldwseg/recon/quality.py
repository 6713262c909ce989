"""Reconstruction quality: PSNR and SSIM of an image against its reference.

Both are computed with scikit-image in float64; the tests cross-check them against
torchmetrics and against the textbook formulas.

Layouts: NumPy arrays are channels-last, ``(H, W, C)`` or ``(H, W)``; torch tensors are
channels-first, ``(C, H, W)`` or ``(1, C, H, W)``, as each library stores images.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

__all__ = ["psnr", "ssim", "ssim_window"]

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5

ImageLike = np.ndarray | torch.Tensor


def _as_hwc(image: ImageLike, name: str) -> np.ndarray:
    """``image`` as a float64 ``(H, W, C)`` array (see the module docstring for layouts)."""
    if isinstance(image, torch.Tensor):
        t = image.detach()
        if t.dim() == 4 and t.shape[0] == 1:
            t = t[0]
        if t.dim() != 3:
            raise ValueError(
                f"{name} must be a (C, H, W) or (1, C, H, W) tensor, got shape {tuple(image.shape)}"
            )
        return t.to(device="cpu", dtype=torch.float64).permute(1, 2, 0).numpy()
    array = np.asarray(image, dtype=np.float64)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3:
        raise ValueError(f"{name} must be an (H, W, C) or (H, W) array, got shape {array.shape}")
    return array


def _pair(reference: ImageLike, test: ImageLike) -> tuple[np.ndarray, np.ndarray]:
    ref, out = _as_hwc(reference, "reference"), _as_hwc(test, "test")
    if ref.shape != out.shape:
        raise ValueError(f"reference and test must have the same shape, got {ref.shape} and {out.shape} (H, W, C)")
    if ref.shape[0] == 0 or ref.shape[1] == 0:
        raise ValueError(f"cannot compare empty images of shape {ref.shape}")
    return ref, out


def psnr(reference: ImageLike, test: ImageLike, *, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio ``10 log10(data_range^2 / MSE)`` in dB, over all pixels and channels.

    Returns:
        ``math.inf`` when the images are identical (MSE 0).
    """
    ref, out = _pair(reference, test)
    if np.array_equal(ref, out):
        return math.inf
    return float(peak_signal_noise_ratio(ref, out, data_range=data_range))


def ssim_window(height: int, width: int) -> tuple[int, float]:
    """``(window, sigma)`` of the Gaussian SSIM window for an ``height x width`` image.

    The standard window (Wang et al. 2004) is 11 taps with ``sigma = 1.5``. When the
    shorter side ``s`` is under 11 px it is shrunk to ``2r + 1`` taps, the largest odd
    size ``<= s``, with ``sigma = 1.5 r / 5`` (so a 3.5-sigma truncation keeps exactly
    ``2r + 1`` taps). An image with a 2-px side gets a 1-tap window: no local variance,
    SSIM is then the mean luminance term ``(2xy + C1) / (x^2 + y^2 + C1)``.
    """
    side = min(height, width)
    if side >= SSIM_WINDOW:
        return SSIM_WINDOW, SSIM_SIGMA
    radius = (side - 1) // 2
    return 2 * radius + 1, SSIM_SIGMA * radius / (SSIM_WINDOW // 2)


def ssim(reference: ImageLike, test: ImageLike, *, data_range: float = 1.0) -> float:
    """Mean structural similarity (Wang et al. 2004), averaged over channels.

    Gaussian window of 11 taps and ``sigma = 1.5`` (smaller for images under 11 px, see
    :func:`ssim_window`), ``K1 = 0.01``, ``K2 = 0.03``, population covariances; the mean
    is taken over the pixels whose window lies inside the image. Gray images (``C = 1``)
    and alpha channels are treated like any other channel.
    """
    ref, out = _pair(reference, test)
    window, sigma = ssim_window(ref.shape[0], ref.shape[1])
    return float(
        structural_similarity(
            ref,
            out,
            win_size=window,
            sigma=sigma,
            gaussian_weights=True,
            use_sample_covariance=False,
            K1=0.01,
            K2=0.03,
            data_range=data_range,
            channel_axis=-1,
        )
    )
