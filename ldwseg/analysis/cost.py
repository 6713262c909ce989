"""What one training step of a config costs: parameters, FLOPs, time and memory.

Measured on random inputs of the training shape (``train.batch_size`` crops of
``data.crop_size``), so the numbers depend on the model and the budget, not on the data,
and on the device and number format the config trains with (``train.device``,
``train.amp``, ``train.channels_last``): the row names them (``cost_device``,
``cost_precision``). On CUDA steps are timed with the clock of :mod:`torch.utils.benchmark`,
which waits for the GPU's queued work before it reads the time. The peak memory is measured on
CUDA (``torch.cuda.max_memory_allocated`` over the timed steps, less what was allocated
before) and estimated on the CPU, where no allocator counts it (``peak_mem_source``).
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from ..config import Config
from ..engine.build import build_model
from ..engine.distributed import check_precision, resolve_device
from ..engine.optim import build_optimizer
from ..engine.precision import Precision
from ..engine.task import Task
from ..pooling import wavelet_loss
from ..task_kinds import TASK_KINDS
from .complexity import count_flops, count_parameters

__all__ = ["device_label", "step_clock", "step_times_ms", "training_cost"]

WARMUP_STEPS = 2
TIMED_STEPS = 5
MIB = 2**20


def device_label(device: torch.device) -> str:
    """``device`` for a report: ``"cuda:0 (NVIDIA H100 80GB HBM3)"``, or ``"cpu (2 threads)"``."""
    if device.type == "cuda":
        index = torch.cuda.current_device() if device.index is None else device.index
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    threads = torch.get_num_threads()
    return f"{device.type} ({threads} thread{'s' * (threads != 1)})"


def step_clock(device: torch.device) -> Callable[[], float]:
    """The clock to time work on ``device`` with, in seconds: on CUDA :func:`torch.utils.benchmark.timer`,
    which first waits for the kernels queued on the current device (so a time covers their run, not
    just their launch); elsewhere ``time.perf_counter``, which that timer is without an accelerator."""
    if device.type != "cuda":
        return time.perf_counter
    import torch.utils.benchmark  # here: it loads torch's C++ extension tools, which warn on CPU-only machines

    return torch.utils.benchmark.timer


def step_times_ms(call: Callable[[], object], device: torch.device, *, warmup: int, repeats: int) -> list[float]:
    """Milliseconds of each of ``repeats`` calls of ``call`` on ``device``, after ``warmup`` untimed ones,
    read off :func:`step_clock` with ``device`` the current CUDA device."""
    clock = step_clock(device)
    with torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext():
        for _ in range(warmup):
            call()
        times = []
        for _ in range(repeats):
            start = clock()
            call()
            times.append(1e3 * (clock() - start))
    return times


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


def _precision_name(precision: Precision) -> str:
    name = {"off": "float32", "bf16": "bf16 autocast", "fp16": "fp16 autocast"}[precision.amp]
    return f"{name}, channels-last" if precision.channels_last else name


def training_cost(cfg: Config, task: Task, out_channels: int) -> dict[str, Any]:
    """``params``, ``flops`` (one crop), ``step_ms`` (median training step), ``peak_mem_mb``, and where
    they were measured: ``cost_device``, ``cost_precision`` and ``peak_mem_source``.

    A step is the training loop's: forward under the config's autocast, loss, backward and
    Adam's step (through the loss scaler for fp16). ``peak_mem_mb`` on CUDA is the most memory
    the steps allocated (``"measured"``); on the CPU it is estimated (``"estimated"``): the
    parameters, their gradients and Adam's two moments (4 copies of the weights), plus the
    activations autograd saves for the backward pass of one batch.
    """
    device = resolve_device(cfg.train.device)
    check_precision(device, cfg.train.amp)
    precision = Precision(device, cfg.train.amp, cfg.train.channels_last)
    on_cuda = device.type == "cuda"
    if on_cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg, out_channels).to(device)
    if precision.channels_last:
        model = model.to(memory_format=torch.channels_last)
    crop, batch = cfg.data.crop_size, cfg.train.batch_size
    images = precision.inputs(torch.randn(batch, cfg.model.in_channels, crop, crop))
    kind = TASK_KINDS[task.name]
    target = images if kind.predicts_image else torch.randint(0, out_channels, (batch, crop, crop)).to(device)
    criterion = task.criterion(cfg)
    optimizer = build_optimizer(model, cfg.optim)
    scaler = torch.amp.GradScaler("cuda") if precision.amp == "fp16" else None
    model.train()

    saved = 0

    def step(count_saved: bool = False) -> None:
        nonlocal saved
        with precision.autocast():
            if count_saved:
                out, saved = _saved_bytes(model, images)
            else:
                out = model(images)
        loss = criterion(out.float(), target) + cfg.train.wavelet_weight * wavelet_loss(model)
        optimizer.zero_grad(set_to_none=True)
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()

    if not on_cuda:
        step(count_saved=True)  # an extra, untimed step counts the activations autograd saves
    times = step_times_ms(step, device, warmup=WARMUP_STEPS, repeats=TIMED_STEPS)
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    if on_cuda:
        peak = torch.cuda.max_memory_allocated(device) - before
    else:
        peak = 4 * weights + saved
    return {
        "params": count_parameters(model),
        "flops": count_flops(build_model(cfg, out_channels).eval(), (1, cfg.model.in_channels, crop, crop)),
        "step_ms": round(statistics.median(times), 2),
        "peak_mem_mb": round(peak / MIB, 2),
        "peak_mem_source": "measured" if on_cuda else "estimated",
        "cost_device": device_label(device),
        "cost_precision": _precision_name(precision),
    }
