"""Model weights as safetensors files, read and written safely and atomically.

ldwseg never unpickles arbitrary objects. Model weights are safetensors files (a JSON
header and raw tensor bytes, no code); our metadata (config, class names, epoch, ...)
is stored as one JSON string under the header's ``"ldwseg"`` key, since safetensors
metadata maps strings to strings. The optimizer, scheduler and random-generator states
of a run are another file, :mod:`ldwseg.io.training_state`.

Every file is written with :func:`~ldwseg.io.atomic.atomic_write` (a temporary file in the
target's folder, flushed to disk, renamed over the target), so a crash leaves the
previous checkpoint intact.

Tied parameters (an :class:`~ldwseg.LDWUnpool2d` shares its :class:`~ldwseg.LDWPool2d`'s
filters, so ``state_dict()`` names the same tensor twice) are stored once and, on
loading, fill every name they are bound to.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import safetensors
import safetensors.torch
from torch import Tensor, nn

from ..errors import CheckpointError
from .atomic import atomic_write
from .file_kind import PathLike, existing_file, file_kind

__all__ = [
    "load_matching_weights",
    "load_weights",
    "read_metadata",
    "save_weights",
    "MODEL_FILE",
]

METADATA_KEY = "ldwseg"
MODEL_FILE = "model.safetensors"
"""The weights file of a shared model's folder (``save_pretrained``): a folder holding one is read as it."""
_LISTED_KEYS = 10


def _safetensors_file(path: PathLike) -> Path:
    if Path(path).is_dir() and (Path(path) / MODEL_FILE).is_file():
        path = Path(path) / MODEL_FILE
    path = existing_file(
        path, "weights file", f"give the checkpoint file itself, or a folder holding {MODEL_FILE} (save_pretrained)"
    )
    kind = file_kind(path)
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
