"""Network architectures shared by segmentation and reconstruction, one folder per concept.

* ``unet/``: the paper's UNet (``network``), its down and up blocks by kind (``blocks/``:
  ``base``, ``maxpool``, ``ldw``, ``controls``, ``designs``, ``bypass``) and the registry
  that names them (``registry``: :data:`DOWNSAMPLERS`, :data:`UPSAMPLERS`);
* ``convert/``: LDW pooling in any CNN (:func:`convert`, with the blocks it puts in place);
* ``smp``: segmentation_models_pytorch networks whose encoder is converted;
* ``layers/``: what they share: :class:`PoolOptions` and its one check (``options``), the
  2x2 splits (``splits``), blur and max filters, padding, the UNet's normalisation;
* ``build``: the one builder of every network (``model.arch``); ``sharing``:
  ``save_pretrained`` / ``push_to_hub``.
"""

from .convert import STRIDED_CONV, LDWPoolMix, LDWStridedConv, convert, converted_layers
from .layers.options import PoolOptions
from .unet import (
    DOWNSAMPLERS,
    MAX_PARAMETERS,
    UPSAMPLERS,
    UNet,
    UNetSpec,
    build_unet,
    check_unet,
    check_unet_spec,
    create_down,
    create_up,
    downs_for,
    get_down,
    get_up,
    unet_parameters,
    ups_for,
)

__all__ = [
    "DOWNSAMPLERS",
    "LDWPoolMix",
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
