"""Reconstruction quality: PSNR and SSIM of an image against its reference.

PSNR is the textbook formula (:func:`psnr_from_mse`, the one place it is written) and
SSIM scikit-image's, both in float64 for images; the tests cross-check them against
torchmetrics and against the formulas.

An exact reconstruction (MSE 0) has PSNR ``inf``, and every function here reports it so;
only the training score caps each image at :data:`PSNR_CAP` (see there for why).

Layouts: NumPy arrays are channels-last, ``(H, W, C)`` or ``(H, W)``; torch tensors are
channels-first, ``(C, H, W)`` or ``(1, C, H, W)``, as each library stores images.

Memory: NumPy arrays are used as given (integer stored values of a huge image stay
integers) and converted to float64 one strip of rows at a time (one channel at a time for
SSIM), so a 12000 x 12000 RGB image needs a few hundred MB on top of its two arrays; the
result equals the whole-image computation up to float64 rounding.
"""

from __future__ import annotations

import numpy as np
import torch
from skimage.metrics import structural_similarity

__all__ = ["PSNR_CAP", "psnr", "psnr_from_mse", "ssim", "ssim_window"]

PSNR_CAP = 200.0
"""The most dB one image adds to a mean PSNR that is used as a score (the reconstruction
task's validation PSNR). A mean with one exact image in it would be ``inf`` and, as the
best score, could never be beaten; 200 dB (MSE 1e-20 for data range 1) is far above any
float32 reconstruction error (float32 rounding alone gives about 140 dB), so the cap only
ever replaces ``inf``."""

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5

STRIP_PIXELS = 1 << 21
"""Pixels of one channel per strip of rows converted to float64 (each full-size SSIM
temporary of a strip is then 16 MB)."""

ImageLike = np.ndarray | torch.Tensor


def _as_hwc(image: ImageLike, name: str) -> np.ndarray:
    """``image`` as a real ``(H, W, C)`` array (see the module docstring for layouts).

    Tensors are copied to float64; integer and floating NumPy arrays are kept as they are.
    """
    if isinstance(image, torch.Tensor):
        t = image.detach()
        if t.dim() == 4 and t.shape[0] == 1:
            t = t[0]
        if t.dim() != 3:
            raise ValueError(f"{name} must be a (C, H, W) or (1, C, H, W) tensor, got shape {tuple(image.shape)}")
        return t.to(device="cpu", dtype=torch.float64).permute(1, 2, 0).numpy()
    array = np.asarray(image)
    if array.dtype.kind not in "iuf":
        array = array.astype(np.float64)
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


def _strips(height: int, width: int, start: int = 0, stop: int | None = None) -> list[tuple[int, int]]:
    """Row ranges of about :data:`STRIP_PIXELS` pixels covering ``[start, stop)`` (default all rows)."""
    stop = height if stop is None else stop
    rows = max(1, STRIP_PIXELS // max(width, 1))
    return [(top, min(top + rows, stop)) for top in range(start, stop, rows)]


def psnr_from_mse(mse: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio ``10 log10(data_range^2 / MSE)`` in dB, elementwise.

    Args:
        mse: mean squared errors, e.g. one per image ``(N,)``; any shape, dtype kept.
        data_range: the largest minus the smallest value an image can take.

    Returns:
        A tensor of ``mse``'s shape: ``inf`` where ``mse`` is 0 (an exact reconstruction).

    Example:
        >>> psnr_from_mse(torch.tensor([1e-2, 0.0]))
        tensor([20., inf])
    """
    return 10.0 * torch.log10(data_range**2 / mse)


def psnr(reference: ImageLike, test: ImageLike, *, data_range: float = 1.0) -> float:
    """PSNR (:func:`psnr_from_mse`) of ``test`` against ``reference`` in dB, over all pixels and channels.

    The MSE is summed in float64 a strip of rows at a time (see the module docstring).

    Returns:
        ``math.inf`` when the images are identical (MSE 0).
    """
    ref, out = _pair(reference, test)
    squared = 0.0
    for top, bottom in _strips(ref.shape[0], ref.shape[1] * ref.shape[2]):
        diff = ref[top:bottom].astype(np.float64).ravel()
        diff -= out[top:bottom].astype(np.float64).ravel()
        squared += float(np.dot(diff, diff))
    mse = torch.tensor(squared / ref.size, dtype=torch.float64)
    return float(psnr_from_mse(mse, data_range))


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

    scikit-image computes the SSIM map of one channel and one strip of rows at a time,
    each strip with the ``window // 2`` rows above and below it that its Gaussian reads,
    so the map equals the whole image's (see the module docstring). Strips that are
    identical in both images are not computed: their map is exactly 1.
    """
    ref, out = _pair(reference, test)
    height, width, channels = ref.shape
    window, sigma = ssim_window(height, width)
    pad = (window - 1) // 2
    total = 0.0
    for channel in range(channels):
        for top, bottom in _strips(height, width, pad, height - pad):
            rows = slice(top - pad, bottom + pad)
            first, second = ref[rows, :, channel], out[rows, :, channel]
            if np.array_equal(first, second):  # the map is exactly 1 there (A1 = B1, A2 = B2 in floats too)
                total += float((bottom - top) * (width - 2 * pad))
                continue
            _, ssim_map = structural_similarity(
                first.astype(np.float64),
                second.astype(np.float64),
                win_size=window,
                sigma=sigma,
                gaussian_weights=True,
                use_sample_covariance=False,
                K1=0.01,
                K2=0.03,
                data_range=data_range,
                full=True,
            )
            total += float(ssim_map[pad : pad + bottom - top, pad : width - pad].sum(dtype=np.float64))
    return total / (channels * (height - 2 * pad) * (width - 2 * pad))
