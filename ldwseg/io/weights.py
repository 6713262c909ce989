"""Safe, atomic checkpoints: safetensors for weights, ``weights_only`` torch files for training state.

ldwseg never unpickles arbitrary objects. Model weights are safetensors files (a JSON
header and raw tensor bytes, no code); our metadata (config, class names, epoch, ...)
is stored as one JSON string under the header's ``"ldwseg"`` key, since safetensors
metadata maps strings to strings. The optimizer, scheduler, epoch and random-generator
states go to a ``torch.save`` file that is only ever read with
``torch.load(weights_only=True)``, whose unpickler accepts tensors and plain containers
and refuses everything else.

Every file is written with :func:`~ldwseg.io.atomic.atomic_write` (a temporary file in the
target's folder, flushed to disk, renamed over the target), so a crash leaves the
previous checkpoint intact.

Tied parameters (an :class:`~ldwseg.LDWUnpool2d` shares its :class:`~ldwseg.LDWPool2d`'s
filters, so ``state_dict()`` names the same tensor twice) are stored once and, on
loading, fill every name they are bound to.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import struct
import warnings
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import safetensors
import safetensors.torch
import torch
from torch import Tensor, nn

from ..errors import CheckpointError
from .atomic import atomic_write

__all__ = [
    "capture_rng_state",
    "load_matching_weights",
    "load_training_state",
    "load_weights",
    "read_metadata",
    "restore_rng_state",
    "save_training_state",
    "save_weights",
    "MODEL_FILE",
]

METADATA_KEY = "ldwseg"
MODEL_FILE = "model.safetensors"
"""The weights file of a shared model's folder (``save_pretrained``): a folder holding one is read as it."""
# safetensors refuses headers above 100 MB; anything larger is not one of its files
_MAX_HEADER_BYTES = 100_000_000
_LISTED_KEYS = 10

PathLike = str | os.PathLike


def _existing_file(path: PathLike, what: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{what} {str(path)!r} does not exist; check the path")
    if not path.is_file():
        raise CheckpointError(
            f"{what} {str(path)!r} is not a file; give the checkpoint file itself, or a folder holding {MODEL_FILE} (save_pretrained)"
        )
    return path


def _file_kind(path: Path) -> str:
    """``"safetensors"``, ``"torch"`` (a ``torch.save`` zip), ``"pickle"`` or ``"unknown"``, from the first bytes."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(9)
    if len(head) == 9:
        (header_bytes,) = struct.unpack("<Q", head[:8])
        if 2 <= header_bytes <= min(size - 8, _MAX_HEADER_BYTES) and head[8:9] == b"{":
            return "safetensors"
    if head.startswith(b"PK\x03\x04"):
        return "torch"
    if head.startswith(b"\x80"):  # pickle protocol 2 and later
        return "pickle"
    return "unknown"


def _safetensors_file(path: PathLike) -> Path:
    if Path(path).is_dir() and (Path(path) / MODEL_FILE).is_file():
        path = Path(path) / MODEL_FILE
    path = _existing_file(path, "weights file")
    kind = _file_kind(path)
    if kind != "safetensors":
        found = {
            "torch": "a torch.save (pickle) archive",
            "pickle": "a Python pickle",
            "unknown": "of an unknown format (no safetensors header)",
        }[kind]
        raise CheckpointError(
            f"{str(path)!r} is not a safetensors checkpoint: it is {found}. ldwseg never unpickles files, "
            "since unpickling can run arbitrary code; load weights saved by ldwseg (*.safetensors), or convert "
            "a trusted file with safetensors.torch.save_model"
        )
    return path


def _read_header(path: Path) -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
    """The tensors' shapes and the string metadata of a safetensors file; no tensor is read."""
    try:
        with safetensors.safe_open(str(path), framework="pt") as f:
            shapes = {name: tuple(f.get_slice(name).get_shape()) for name in f.keys()}
            return shapes, f.metadata() or {}
    except safetensors.SafetensorError as e:
        raise CheckpointError(
            f"{str(path)!r} is a damaged safetensors file ({e}); it may be truncated: save it again"
        ) from e


def _decode_metadata(path: Path, raw: Mapping[str, str]) -> dict[str, Any]:
    if METADATA_KEY not in raw:
        return {}
    try:
        metadata = json.loads(raw[METADATA_KEY])
    except json.JSONDecodeError as e:
        raise CheckpointError(f"the {METADATA_KEY!r} metadata of {str(path)!r} is not valid JSON ({e})") from e
    if not isinstance(metadata, dict):
        raise CheckpointError(
            f"the {METADATA_KEY!r} metadata of {str(path)!r} must be a JSON object, got {type(metadata).__name__}"
        )
    return metadata


def save_weights(path: PathLike, model: nn.Module, *, metadata: Mapping[str, Any]) -> None:
    """Write ``model.state_dict()`` to a safetensors file, tied tensors once, with JSON ``metadata``.

    Args:
        path: the file to create or replace (atomically).
        model: the model; its tensors are copied to the CPU as they are written.
        metadata: JSON-serialisable facts to keep with the weights (config, classes, ...);
            :func:`read_metadata` returns it.
    """
    try:
        text = json.dumps(dict(metadata), allow_nan=False)
    except (TypeError, ValueError) as e:
        raise TypeError(
            f"checkpoint metadata must be JSON-serialisable (str, int, float, bool, None, lists, dicts): {e}"
        ) from e
    atomic_write(
        path, lambda tmp: safetensors.torch.save_model(model, str(tmp), metadata={METADATA_KEY: text, "format": "pt"})
    )


def read_metadata(path: PathLike) -> dict[str, Any]:
    """The metadata given to :func:`save_weights`, read from the header alone ({} if there is none)."""
    path = _safetensors_file(path)
    _, raw = _read_header(path)
    return _decode_metadata(path, raw)


def _tied_names(state: Mapping[str, Tensor]) -> dict[str, list[str]]:
    """For each state_dict name, every name bound to the same tensor (itself included)."""
    groups: dict[tuple, list[str]] = {}
    for name, t in state.items():
        if t.numel() == 0:
            groups[("empty", name)] = [name]
            continue
        key = (t.device, t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), t.stride(), t.dtype)
        groups.setdefault(key, []).append(name)
    return {name: group for group in groups.values() for name in group}


def _listed(names: list[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:_LISTED_KEYS])
    more = len(names) - _LISTED_KEYS
    return shown + (f" and {more} more" if more > 0 else "")


def load_weights(path: PathLike, model: nn.Module) -> dict[str, Any]:
    """Load a file written by :func:`save_weights` into ``model``, in place.

    The file's names and shapes are checked against ``model.state_dict()`` before any
    tensor is read: every model tensor must be in the file, under its name or any name
    tied to the same tensor in ``model``, with its shape, and the file must hold nothing else.

    Args:
        path: a safetensors file.
        model: the model to fill; tensors are copied to its devices and dtypes.

    Returns:
        The metadata given to :func:`save_weights`.

    Raises:
        CheckpointError: the file is absent, not a safetensors file, damaged, or does not
            fit the model (the message names the first mismatched tensor and both shapes,
            or the missing and unexpected names).
    """
    path = _safetensors_file(path)
    file_shapes, raw = _read_header(path)
    metadata = _decode_metadata(path, raw)
    model_state = model.state_dict()
    tied = _tied_names(model_state)

    mismatched = [
        name for name, t in model_state.items() if name in file_shapes and file_shapes[name] != tuple(t.shape)
    ]
    missing = [name for name in model_state if not any(alias in file_shapes for alias in tied[name])]
    unexpected = [name for name in file_shapes if name not in model_state]
    problems = []
    if mismatched:
        first = mismatched[0]
        problems.append(
            f"{first!r} has shape {file_shapes[first]} in the checkpoint but {tuple(model_state[first].shape)} in "
            f"the model ({len(mismatched)} tensor(s) differ in shape)"
        )
    if missing:
        problems.append(f"the model's {_listed(missing)} are missing from the checkpoint")
    if unexpected:
        problems.append(f"the checkpoint's {_listed(unexpected)} do not exist in the model")
    if problems:
        raise CheckpointError(
            f"{str(path)!r} does not fit {type(model).__name__}: "
            + "; ".join(problems)
            + ". Build the model with the configuration the checkpoint was trained with (see its metadata)"
        )
    # a tied tensor is stored under one of its names; loading it fills every name bound to it
    model.load_state_dict(safetensors.torch.load_file(str(path), device="cpu"), strict=False)
    return metadata


def load_matching_weights(path: PathLike, model: nn.Module) -> dict[str, list[str]]:
    """Load the tensors of a :func:`save_weights` file that fit ``model`` (same name, same shape); keep the rest.

    For fine-tuning: a checkpoint of another class count loads everything but the head.
    Tied tensors count under any of their names, as in :func:`load_weights`.

    Returns:
        ``{"loaded": [...], "kept": [...], "unused": [...]}``: the model's names filled from
        the file, the model's names left as they were (absent from the file or of another
        shape, each ``"name (why)"``), and the file's names the model has no place for.
    """
    path = _safetensors_file(path)
    file_shapes, _ = _read_header(path)
    model_state = model.state_dict()
    tied = _tied_names(model_state)
    loaded, kept = [], []
    for name, tensor in model_state.items():
        source = next((alias for alias in tied[name] if alias in file_shapes), None)
        if source is None:
            kept.append(f"{name} (not in the checkpoint)")
        elif file_shapes[source] != tuple(tensor.shape):
            kept.append(f"{name} (shape {file_shapes[source]} in the checkpoint, {tuple(tensor.shape)} here)")
        else:
            loaded.append(name)
    fits = {alias for name in loaded for alias in tied[name] if alias in file_shapes}
    with safetensors.safe_open(str(path), framework="pt", device="cpu") as f:
        model.load_state_dict({name: f.get_tensor(name) for name in fits}, strict=False)
    unused = [name for name in file_shapes if name not in model_state]
    return {"loaded": loaded, "kept": kept, "unused": unused}


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
    path = _existing_file(path, "training state")
    kind = _file_kind(path)
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
