"""The training state of a run (optimizer, scheduler, epoch, random generators), read back safely.

It goes to a ``torch.save`` file that is only ever read with ``torch.load(weights_only=True)``,
whose unpickler accepts tensors and plain containers and refuses everything else, so a
resumed file cannot run code. Writes are atomic (:func:`~ldwseg.io.atomic.atomic_write`).
The model's weights are a separate safetensors file (:mod:`ldwseg.io.weights`).
"""

from __future__ import annotations

import pickle
import random
import warnings
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..errors import CheckpointError
from .atomic import atomic_write
from .file_kind import PathLike, existing_file, file_kind

__all__ = ["capture_rng_state", "load_training_state", "restore_rng_state", "save_training_state"]


# Leaves that torch.load(weights_only=True) reads back; containers are checked one by one.
_PLAIN_LEAVES = (Tensor, str, bytes, int, float, complex, bool, type(None), torch.dtype, torch.device)


def _plain(obj: Any, where: str) -> Any:
    """``obj`` with numpy arrays as tensors and numpy scalars as Python numbers; refuse the rest."""
    if isinstance(obj, np.ndarray):
        if obj.dtype == object:
            raise TypeError(f"{where} is a numpy array of Python objects; store numbers only")
        return torch.from_numpy(np.ascontiguousarray(obj))
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, _PLAIN_LEAVES):
        return obj
    if type(obj) in (dict, OrderedDict):
        return type(obj)((_plain(k, where), _plain(v, f"{where}[{k!r}]")) for k, v in obj.items())
    if type(obj) in (list, tuple, set):
        return type(obj)(_plain(v, f"{where}[{i}]") for i, v in enumerate(obj))
    if type(obj) is torch.Size:
        return obj
    raise TypeError(
        f"{where} is a {type(obj).__name__}, which torch.load(weights_only=True) cannot read back; store "
        "tensors, numbers, strings and lists/tuples/dicts of them (for example vars(args) for a Namespace)"
    )


def save_training_state(path: PathLike, state: Mapping[str, Any]) -> None:
    """Write the training state (optimizer, scheduler, epoch, RNG, ...) atomically with ``torch.save``.

    ``state`` may hold tensors, numbers, strings, ``None`` and lists, tuples and dicts of
    them, i.e. what ``optimizer.state_dict()`` and ``scheduler.state_dict()`` give. Numpy
    arrays and scalars are stored as tensors and Python numbers (so they come back as
    such); for the random generators use :func:`capture_rng_state`. Anything else raises
    ``TypeError`` naming where it is, since it could not be loaded safely.
    """
    plain = _plain(dict(state), "state")
    atomic_write(path, lambda tmp: torch.save(plain, tmp))


def load_training_state(path: PathLike) -> dict[str, Any]:
    """Read a file written by :func:`save_training_state`, tensors on the CPU.

    Only ``torch.load(weights_only=True)`` is used: a file that asks to build any other
    object (which could run code) is refused with :class:`CheckpointError`.
    """
    path = existing_file(path, "training state")
    kind = file_kind(path)
    if kind == "safetensors":
        raise CheckpointError(
            f"{str(path)!r} holds model weights (safetensors), not a training state; read it with load_weights"
        )
    try:
        # an open file, not the path: torch.load would hand a "*.safetensors" path to safetensors
        with path.open("rb") as f, warnings.catch_warnings():
            # a plain pickle (not torch.save's) is refused below; its protocol is no news to the user
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            state = torch.load(f, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"{str(path)!r} contains objects other than tensors and plain containers, and ldwseg refuses to "
            "unpickle arbitrary objects (that can run code); resume only from training states saved by ldwseg"
        ) from e
    except Exception as e:  # weights_only reading is safe; corrupt bytes fail in many ways (OSError, ...)
        raise CheckpointError(
            f"{str(path)!r} is not a readable training state ({type(e).__name__}{f': {e}' if str(e) else ''}): "
            "it is truncated or another "
            "kind of file. ldwseg refuses to unpickle arbitrary objects and reads only files written by "
            "save_training_state"
        ) from e
    if not isinstance(state, dict):
        raise CheckpointError(f"{str(path)!r} holds a {type(state).__name__}, not a training-state dict")
    return state


def capture_rng_state() -> dict[str, Any]:
    """The states of Python's ``random``, numpy's global generator and torch's, as plain data.

    The result can go into :func:`save_training_state`; :func:`restore_rng_state` puts it
    back. The CUDA generator of the current device is included when CUDA is in use.
    """
    version, internal, gauss_next = random.getstate()
    bit_generator, key, pos, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "random": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
        "numpy": {
            "bit_generator": bit_generator,
            "key": torch.from_numpy(key.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Set the generators from :func:`capture_rng_state`'s output (the generators it names)."""
    if "random" in state:
        r = state["random"]
        random.setstate((r["version"], tuple(r["internal"]), r["gauss_next"]))
    if "numpy" in state:
        n = state["numpy"]
        key = np.asarray(n["key"], dtype=np.int64).astype(np.uint32)
        np.random.set_state((n["bit_generator"], key, n["pos"], n["has_gauss"], n["cached_gaussian"]))
    if "torch" in state:
        torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])
