"""Process-group setup for ``torchrun`` (gloo on CPU, nccl on CUDA) and rank helpers.

Under ``torchrun --max-restarts N`` the elastic agent restarts every rank with the same
command when one dies; :attr:`DistInfo.restart` tells the restarted group (which then
resumes from its last checkpoint, see :mod:`ldwseg.engine.fit`). A rank whose peer died
sees its next collective fail; :func:`peer_lost` turns that into :class:`PeerLost`.

The agent serves one key-value store to every attempt of a run, and the keys a dead
attempt left there (its ranks' addresses) would send a restarted group to processes that
are gone (gloo: "connectFullMesh failed ... Connection refused", or a hang): each attempt
joins under keys of its own (:func:`_attempt_store`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist
from torch.distributed.constants import default_pg_timeout

from ..config import AMP_CHOICES
from ..errors import ConfigError, LDWSegError

__all__ = [
    "DistInfo", "PeerLost", "barrier", "check_precision", "cleanup_distributed", "control_group", "from_main",
    "inference_amp",
    "init_distributed", "is_main_process", "main_rank_logs", "peer_lost", "resolve_device",
]  # fmt: skip

T = TypeVar("T")

_CLOSED = ("connection closed by peer", "connection reset by peer", "broken pipe", "remote process exited",
           "ncclremoteerror")  # fmt: skip
"""How gloo and nccl word a collective that failed because another rank's process is gone (lower case)."""


_CONTROL: dict[str, dist.ProcessGroup] = {}
"""The gloo group of :func:`control_group`, made once per process group: ``new_group`` is a collective,
so every rank makes it at the same call; :func:`cleanup_distributed` forgets it with the group."""


class PeerLost(LDWSegError):
    """A collective failed because another process of the ``torchrun`` group stopped."""

    exit_code = 1


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the group; ``restart`` and ``run_id`` come from ``torchrun``'s elastic agent
    (``TORCHELASTIC_RESTART_COUNT``, ``TORCHELASTIC_RUN_ID``; 0 and ``None`` outside it)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    restart: int = 0
    run_id: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``"auto"``: the local CUDA device when there is one, else the CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} was asked for but CUDA is not available; use --device cpu")
        if device.index is None:
            device = torch.device("cuda", local_rank)
    return device


def check_precision(device: torch.device, amp: str) -> None:
    """Refuse a mixed precision that ``device`` cannot run: fp16 needs CUDA (its gradient scaler does).

    Cheap and free of side effects: call it before any data is read or file written.
    """
    if amp == "fp16" and device.type != "cuda":
        raise ConfigError(
            f"--amp fp16 needs a CUDA device, but training would run on {device.type}; use --amp bf16 or --amp off"
        )


def inference_amp(device: torch.device, run_amp: str, amp: str | None = None) -> str:
    """The autocast ``evaluate`` and ``predict`` run a checkpoint's network with: ``amp``, else the run's ``train.amp``.

    Both commands thus run the network alike, as the run validated it. The run's own
    ``fp16`` becomes ``"off"`` (float32) off CUDA, where fp16 autocast is not offered;
    an ``fp16`` asked for there is refused like training's (:func:`check_precision`).

    Raises:
        ConfigError: ``amp`` is not one of off, bf16, fp16, or is fp16 off CUDA.
    """
    if amp is None:
        return run_amp if run_amp != "fp16" or device.type == "cuda" else "off"
    if amp not in AMP_CHOICES:
        raise ConfigError(f"--amp {amp!r} is not a precision; choose one of {', '.join(AMP_CHOICES)}")
    if amp == "fp16" and device.type != "cuda":
        raise ConfigError(f"--amp fp16 needs a CUDA device, but the network would run on {device.type}; use --amp "
                          "bf16 or --amp off")  # fmt: skip
    return amp


def init_distributed(device_name: str) -> tuple[DistInfo, torch.device]:
    """Join the process group that ``torchrun`` describes in the environment, if any."""
    restart = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
    run_id = os.environ.get("TORCHELASTIC_RUN_ID")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo(restart=restart, run_id=run_id), resolve_device(device_name)
    info = DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")), restart, run_id)
    device = resolve_device(device_name, info.local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        store = _attempt_store(info)
        if store is None:
            dist.init_process_group(backend=backend)
        else:
            dist.init_process_group(backend=backend, store=store, rank=info.rank, world_size=world)
    return info, device


def _attempt_store(info: DistInfo) -> dist.Store | None:
    """The store of ``torchrun``'s agent (``TORCHELASTIC_USE_AGENT_STORE``), under keys of this attempt only.

    ``None`` when the agent serves none: then every attempt gets a store of its own anyway.
    """
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return None
    store = dist.TCPStore(
        os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), info.world_size, is_master=False,
        timeout=default_pg_timeout,
    )  # fmt: skip
    return dist.PrefixStore(f"ldwseg/attempt-{info.restart}", store)


def is_main_process() -> bool:
    """Whether this process is rank 0 of its ``torchrun`` group, or runs alone.

    Read from the environment ``torchrun`` sets (``RANK``), so it holds before the process
    group is joined and after it is gone.
    """
    return int(os.environ.get("RANK", "0")) == 0


def barrier(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.barrier()


def from_main(make: Callable[[], T], info: DistInfo) -> T:
    """``make()`` run on rank 0 only, its result (or its :class:`LDWSegError`) sent to every rank.

    Every rank then acts on rank 0's view, e.g. of files that only rank 0's machine holds.
    """
    if not info.enabled:
        return make()
    sent: list = [None]
    if info.is_main:
        try:
            sent = [(make(), None)]
        except LDWSegError as err:
            sent = [(None, err)]
            dist.broadcast_object_list(sent, src=0)
            raise
    dist.broadcast_object_list(sent, src=0)
    value, err = sent[0]
    if err is not None:
        raise err
    return value


def peer_lost(err: BaseException, info: DistInfo) -> PeerLost | None:
    """The :class:`PeerLost` to raise for ``err`` when it is a collective that lost its peer, else ``None``."""
    text = str(err)
    lost = isinstance(err, dist.DistNetworkError) or any(words in text.lower() for words in _CLOSED)
    if not (info.enabled and isinstance(err, RuntimeError) and lost):
        return None
    detail = re.sub(r"^\[[^\]]*\]\s*", "", text.strip()).split(". ")[0][:160]  # gloo starts with [file:line]
    return PeerLost(
        f"rank {info.rank} of {info.world_size}: another training process of the group stopped (connection closed: "
        f"{detail}); check the other ranks' logs for their error, and memory (an out-of-memory kill leaves no "
        "error: see dmesg); with torchrun --max-restarts N the group restarts and resumes from its last checkpoint"
    )


@contextlib.contextmanager
def main_rank_logs(info: DistInfo) -> Iterator[None]:
    """While active, ranks other than 0 log warnings and errors only: rank 0 speaks for the group."""
    logger = logging.getLogger("ldwseg")
    previous = logger.level
    if not info.is_main:
        logger.setLevel(max(logger.getEffectiveLevel(), logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(previous)


def control_group() -> dist.ProcessGroup | None:
    """The group in which the ranks agree on host values (stop, save) with CPU tensors; ``None``: the default group.

    The default group serves when its backend takes CPU tensors (gloo). Beside nccl a gloo group
    of the same ranks is made at the first call, which every rank must reach at the same point
    (as for any collective): an agreement there never waits for the GPU, where one through nccl
    would put the host's values on the device and read the result back, a host synchronisation.
    """
    if "gloo" in str(dist.get_backend()):
        return None
    if "group" not in _CONTROL:
        _CONTROL["group"] = dist.new_group(backend="gloo")
    return _CONTROL["group"]


def cleanup_distributed() -> None:
    _CONTROL.clear()
    if dist.is_initialized():
        dist.destroy_process_group()
