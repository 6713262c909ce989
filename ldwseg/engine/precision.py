"""Where and in which number format a model runs: device, mixed precision, memory layout, cuDNN tuning."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from ..config import AMP_CHOICES

__all__ = ["Precision", "cudnn_autotuner"]


@dataclass(frozen=True)
class Precision:
    """The device a model runs on, its autocast mode and whether its inputs are channels-last.

    Args:
        device: where the model and its batches live.
        amp: ``"off"`` (float32), ``"bf16"`` or ``"fp16"`` autocast of the forward pass.
        channels_last: give the model NHWC-strided inputs (the values are the same).

    Example:
        >>> p = Precision(torch.device("cpu"), amp="bf16")
        >>> with p.autocast():
        ...     y = torch.nn.Conv2d(3, 4, 3)(p.inputs(torch.rand(1, 3, 8, 8)))
        >>> y.dtype
        torch.bfloat16
    """

    device: torch.device
    amp: str = "off"
    channels_last: bool = False

    def __post_init__(self) -> None:
        if self.amp not in AMP_CHOICES:
            raise ValueError(f"amp must be one of {', '.join(AMP_CHOICES)}, got {self.amp!r}")

    def inputs(self, images: Tensor) -> Tensor:
        """``images`` on :attr:`device`, in the memory layout the model is run with."""
        images = images.to(self.device, non_blocking=True)
        return images.contiguous(memory_format=torch.channels_last) if self.channels_last else images

    def autocast(self) -> contextlib.AbstractContextManager:
        """``torch.autocast`` to bfloat16 or float16 on :attr:`device`, or nothing for ``amp="off"``."""
        if self.amp == "off":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16 if self.amp == "bf16" else torch.float16)


@contextlib.contextmanager
def cudnn_autotuner(device: torch.device) -> Iterator[None]:
    """cuDNN's autotuner (``torch.backends.cudnn.benchmark``) on while a model trains on CUDA, as it was after.

    The autotuner times the convolution algorithms at the first call of each input shape and
    keeps the fastest, so the fixed-size crops of training run faster; their results are then
    not bitwise reproducible across runs. Off the GPU nothing changes: the CPU path stays
    deterministic.
    """
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = before or device.type == "cuda"
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before
