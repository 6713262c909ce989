"""LDW pooling in any CNN: :func:`convert` (``replace``) puts the blocks of ``blocks`` in place of a
network's max pools (and, on request, average pools and stride-2 convs)."""

from .blocks import LDWPoolMix, LDWStridedConv
from .replace import STRIDED_CONV, convert, converted_layers

__all__ = ["LDWPoolMix", "LDWStridedConv", "STRIDED_CONV", "convert", "converted_layers"]
