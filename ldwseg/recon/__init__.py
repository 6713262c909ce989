"""Image reconstruction (autoencoding) with LDW pooling: the wavelet round trip and its quality."""

from .quality import psnr, ssim, ssim_window
from .roundtrip import max_levels, reconstruct_file, wavelet_round_trip

__all__ = ["max_levels", "psnr", "reconstruct_file", "ssim", "ssim_window", "wavelet_round_trip"]
