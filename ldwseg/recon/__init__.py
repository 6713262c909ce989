"""Image reconstruction (autoencoding) with LDW pooling: the task, image files, and their quality."""

from .quality import psnr, ssim, ssim_window
from .reconstruct import reconstruct_file, reconstruct_image

__all__ = ["psnr", "reconstruct_file", "reconstruct_image", "ssim", "ssim_window"]
