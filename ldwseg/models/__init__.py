"""Network architectures shared by segmentation and reconstruction."""

from .unet import UNet, build_unet

__all__ = ["UNet", "build_unet"]
