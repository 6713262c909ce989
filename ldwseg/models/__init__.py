"""Network architectures shared by segmentation and reconstruction.

``splits`` holds the 2x2 splits (LDW pool, space-to-depth) and :class:`PoolOptions`,
``blocks`` the double conv, max pooling, LDW and the decoders, ``controls`` the
downsamplers without a learnable wavelet, ``designs`` the equal-parameter LDW designs and
their twins, ``blur`` Zhang's anti-aliasing blur, ``norm`` the UNet's normalisation (BatchNorm or a
per-channel affine); ``factory`` names the blocks
(:data:`DOWNSAMPLERS`, :data:`UPSAMPLERS`), ``unet`` builds and checks the UNet; ``convert`` puts LDW pooling into any CNN, with the
blocks of ``ldw_downsample``.
"""

from .convert import STRIDED_CONV, convert, converted_layers
from .factory import DOWNSAMPLERS, UPSAMPLERS, create_down, create_up, downs_for, get_down, get_up, ups_for
from .ldw_downsample import LDWDownsample, LDWStridedConv
from .splits import PoolOptions
from .unet import MAX_PARAMETERS, UNet, UNetSpec, build_unet, check_unet, check_unet_spec, unet_parameters

__all__ = [
    "DOWNSAMPLERS",
    "LDWDownsample",
    "LDWStridedConv",
    "MAX_PARAMETERS",
    "STRIDED_CONV",
    "UPSAMPLERS",
    "PoolOptions",
    "UNet",
    "UNetSpec",
    "build_unet",
    "check_unet",
    "check_unet_spec",
    "convert",
    "converted_layers",
    "create_down",
    "create_up",
    "downs_for",
    "get_down",
    "get_up",
    "ups_for",
    "unet_parameters",
]
