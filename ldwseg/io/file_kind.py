"""What a checkpoint file is, read from its first bytes, before anything is loaded from it.

Both checkpoint readers (:mod:`ldwseg.io.weights`, :mod:`ldwseg.io.training_state`) check
the kind first, so that a file of the other kind, or a pickle, is refused with a message
that says what it is instead of an error from deep inside the reader.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

from ..errors import CheckpointError

__all__ = ["MAX_HEADER_BYTES", "PathLike", "existing_file", "file_kind"]

PathLike = str | os.PathLike

MAX_HEADER_BYTES = 100_000_000
"""safetensors refuses headers above 100 MB; anything larger is not one of its files."""


def existing_file(path: PathLike, what: str, hint: str = "give the checkpoint file itself") -> Path:
    """``path`` as a :class:`~pathlib.Path`; :class:`CheckpointError` naming ``what`` when it is not a file."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{what} {str(path)!r} does not exist; check the path")
    if not path.is_file():
        raise CheckpointError(f"{what} {str(path)!r} is not a file; {hint}")
    return path


def file_kind(path: Path) -> str:
    """``"safetensors"``, ``"torch"`` (a ``torch.save`` zip), ``"pickle"`` or ``"unknown"``, from the first bytes.

    A safetensors file starts with the little-endian length of its JSON header, then ``{``."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(9)
    if len(head) == 9:
        (header_bytes,) = struct.unpack("<Q", head[:8])
        if 2 <= header_bytes <= min(size - 8, MAX_HEADER_BYTES) and head[8:9] == b"{":
            return "safetensors"
    if head.startswith(b"PK\x03\x04"):
        return "torch"
    if head.startswith(b"\x80"):  # pickle protocol 2 and later
        return "pickle"
    return "unknown"
