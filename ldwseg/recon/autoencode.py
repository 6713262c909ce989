"""How every reconstruction in ldwseg runs an autoencoder: on the image padded to the UNet's stride.

The training crops (64 px by default) are multiples of ``2**depth``, so every level of the
UNet sees even sizes. An image of odd height or width is padded by the LDW pools
themselves at each level where a size is odd, a case the network never trained on, so
its last rows and columns come back wrong. Padding the image once, at the bottom and
right by repeating its last row and column, up to a multiple of ``2**depth``, and
cropping the output back keeps every level even (``docs/results.md`` measures both).
Validation, ``ldwseg reconstruct --checkpoint`` and ``bench/recon_photos.py`` all go
through :func:`autoencode`; the network itself (and its ONNX export) takes any size
unpadded.
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from ..models.build import input_multiple
from ..models.layers.padding import run_padded

__all__ = ["autoencode"]


def autoencode(model: nn.Module, x: Tensor) -> Tensor:
    """``model`` on ``x (N, 3, H, W)`` padded with its last row and column to a multiple of the
    UNet's ``2**depth``, the output cropped back to ``H x W``; ``model`` may be DDP-wrapped."""
    net = model.module if isinstance(model, DistributedDataParallel) else model
    return run_padded(model, x, input_multiple(net), mode="replicate")
