"""The ``ldwseg`` command line: a thin typer layer over library functions.

Every command turns a known problem (:class:`~ldwseg.errors.LDWSegError`, a missing
file, a bad option) into one line on stderr and a non-zero exit. :func:`main` is the
console script; ``app`` is the typer app, for tests and embedding.
"""

from . import bench_cmd, compare_cmd, export_cmd, recon_cmd, seg_cmd, sweep_cmd, train_cmd  # noqa: F401 (importing them registers the commands)
from .app import app, main

__all__ = ["app", "main"]
