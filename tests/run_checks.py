"""Helpers of the CLI, multi-process and resume tests: the console script with its streams apart, a free
local port, and comparing two finished runs."""

import csv
import socket
import sys
from pathlib import Path
from typing import NamedTuple

import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from ldwseg.cli import main


class Run(NamedTuple):
    code: int
    out: str
    err: str


def cli(*args: object) -> Run:
    """``ldwseg ARGS`` through the console script's main(), stdout and stderr apart."""
    with CliRunner().isolation() as (out, err, _):
        code = main([str(a) for a in args])
        sys.stdout.flush()
        sys.stderr.flush()
        return Run(code, out.getvalue().decode(), err.getvalue().decode())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def final_state(out: Path) -> tuple[dict[str, torch.Tensor], list[dict]]:
    """The last weights and the metrics.csv rows (without the timing column) of the run in ``out``."""
    with (out / "metrics.csv").open() as f:
        rows = [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]
    return load_file(out / "last.safetensors"), rows


def assert_same_run(out: Path, reference: tuple[dict, list]) -> None:
    weights, rows = final_state(out)
    ref_weights, ref_rows = reference
    assert rows == ref_rows  # losses, val mIoU, lr of every epoch, as text
    assert weights.keys() == ref_weights.keys()
    for name in weights:
        torch.testing.assert_close(weights[name], ref_weights[name], rtol=0, atol=0, msg=name)
