"""Network architectures shared by segmentation and reconstruction.

``blocks`` holds the UNet's blocks and :class:`PoolOptions`, ``factory`` names the down
and up blocks (:data:`DOWNSAMPLERS`, :data:`UPSAMPLERS`), ``unet`` builds and checks the UNet.
"""

from .blocks import PoolOptions
from .factory import DOWNSAMPLERS, UPSAMPLERS, create_down, create_up, get_down, get_up
from .unet import MAX_PARAMETERS, UNet, UNetSpec, build_unet, check_unet, check_unet_spec, unet_parameters

__all__ = [
    "DOWNSAMPLERS",
    "MAX_PARAMETERS",
    "UPSAMPLERS",
    "PoolOptions",
    "UNet",
    "UNetSpec",
    "build_unet",
    "check_unet",
    "check_unet_spec",
    "create_down",
    "create_up",
    "get_down",
    "get_up",
    "unet_parameters",
]
