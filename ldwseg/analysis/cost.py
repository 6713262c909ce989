"""What one training step of a config costs: parameters, FLOPs, time and memory.

Measured on random inputs of the training shape (``train.batch_size`` crops of
``data.crop_size``), so the numbers depend on the model and the budget, not on the data.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch

from ..config import Config
from ..engine.build import build_model
from ..engine.optim import build_optimizer
from ..engine.task import Task
from ..pooling import wavelet_loss
from .complexity import count_flops, count_parameters

__all__ = ["training_cost"]

WARMUP_STEPS = 2
TIMED_STEPS = 5
MIB = 2**20


def _saved_bytes(model: torch.nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, int]:
    """The output of ``model(images)`` and the bytes of the tensors autograd keeps for backward.

    Each storage counts once (views of one buffer share it), parameters not at all: they
    are counted apart.
    """
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(images)
    return out, sum(seen.values())


def training_cost(cfg: Config, task: Task, out_channels: int) -> dict[str, Any]:
    """``params``, ``flops`` (one crop), ``step_ms`` (median training step) and ``peak_mem_mb``.

    ``peak_mem_mb`` estimates the training memory of one step: parameters, their
    gradients and Adam's two moments (4 copies of the weights), plus the activations
    autograd saves for the backward pass of one batch.
    """
    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg, out_channels)
    crop, batch = cfg.data.crop_size, cfg.train.batch_size
    images = torch.randn(batch, 3, crop, crop)
    target = images if task.name == "recon" else torch.randint(0, out_channels, (batch, crop, crop))
    criterion = task.criterion(cfg)
    optimizer = build_optimizer(model, cfg.optim)
    model.train()
    times = []
    saved = 0
    for step in range(WARMUP_STEPS + TIMED_STEPS):
        start = time.perf_counter()
        out, saved = _saved_bytes(model, images)
        loss = criterion(out.float(), target) + cfg.train.wavelet_weight * wavelet_loss(model)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step >= WARMUP_STEPS:
            times.append(time.perf_counter() - start)
    params = count_parameters(model)
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    return {
        "params": params,
        "flops": count_flops(build_model(cfg, out_channels).eval(), (1, 3, crop, crop)),
        "step_ms": round(1e3 * statistics.median(times), 2),
        "peak_mem_mb": round((4 * weights + saved) / MIB, 2),
    }
