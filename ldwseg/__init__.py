"""ldwseg: semantic segmentation and reconstruction with Learnable Discrete Wavelet Pooling."""

from importlib.metadata import PackageNotFoundError, version

from .models.convert import convert, converted_layers
from .pooling import (
    EnergyAttention,
    LDWPool2d,
    LDWUnpool2d,
    ldw_analysis,
    ldw_synthesis,
    wavelet_loss,
)

try:
    __version__ = version("ldwseg")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = [
    "EnergyAttention",
    "LDWPool2d",
    "LDWUnpool2d",
    "__version__",
    "convert",
    "converted_layers",
    "ldw_analysis",
    "ldw_synthesis",
    "wavelet_loss",
]
