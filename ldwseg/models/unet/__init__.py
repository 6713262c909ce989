"""The paper's UNet: the network and its checks (``network``), its blocks by kind (``blocks``) and the
registry that names them (``registry``: ``model.down`` and ``model.up`` are its keys)."""

from .network import MAX_PARAMETERS, PoolSpec, UNet, UNetSpec, build_unet, check_unet, check_unet_spec, unet_parameters
from .registry import DOWNSAMPLERS, UPSAMPLERS, create_down, create_up, downs_for, get_down, get_up, ups_for

__all__ = [
    "DOWNSAMPLERS", "MAX_PARAMETERS", "UPSAMPLERS", "PoolSpec", "UNet", "UNetSpec", "build_unet", "check_unet",
    "check_unet_spec", "create_down", "create_up", "downs_for", "get_down", "get_up", "ups_for", "unet_parameters",
]  # fmt: skip
