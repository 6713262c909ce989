"""ldwseg: semantic segmentation and reconstruction with Learnable Discrete Wavelet Pooling."""

from .models import PoolOptions, convert, converted_layers
from .pooling import (
    EnergyAttention,
    LDWPool2d,
    LDWUnpool2d,
    ldw_analysis,
    ldw_synthesis,
    wavelet_loss,
)
from .version import __version__

_HUB = ("create_model", "from_pretrained", "list_models")
"""Loaded on first use (:mod:`ldwseg.hub` reads the config and checkpoint code, which ``import ldwseg`` does not need)."""


def __getattr__(name: str):
    if name in _HUB:
        from . import hub

        return getattr(hub, name)
    raise AttributeError(f"module 'ldwseg' has no attribute {name!r}")


__all__ = [
    "EnergyAttention",
    "LDWPool2d",
    "LDWUnpool2d",
    "PoolOptions",
    "__version__",
    "convert",
    "converted_layers",
    "create_model",
    "from_pretrained",
    "ldw_analysis",
    "ldw_synthesis",
    "list_models",
    "wavelet_loss",
]
