"""The command line, run in-process with typer's CliRunner."""

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from ldwseg import __version__
from ldwseg.analysis.bench import format_table, run_pool_benchmark
from ldwseg.cli import app

pytestmark = pytest.mark.slow  # end-to-end: runs the CLI or whole trainings

runner = CliRunner()


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"ldwseg {__version__}"


def test_help_lists_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "bench" in result.output


def test_module_entry_point():
    out = subprocess.run([sys.executable, "-m", "ldwseg", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("ldwseg ")


def test_bench_rows_on_a_tiny_shape():
    """Checks the benchmark's bookkeeping only; timings are never asserted."""
    rows = run_pool_benchmark(shapes=((1, 4, 8, 8),), repeats=1)
    names = {r.name for r in rows}
    assert {"MaxPool2d(2)", "x.clone()", "LDWPool2d K=2", "LDWUnpool2d K=4", "ConvTranspose2d(2C,C,2,2)"} <= names
    pool = next(r for r in rows if r.name == "LDWPool2d K=2")
    maxpool = next(r for r in rows if r.name == "MaxPool2d(2)")
    assert pool.ratio_fwdbwd == pool.fwdbwd_ms / maxpool.fwdbwd_ms
    assert "LDWPool2d K=2" in format_table(rows)


def test_bench_command_runs():
    result = runner.invoke(app, ["bench", "--quick", "--repeats", "1"])
    assert result.exit_code == 0, result.output
    assert "MaxPool2d(2)" in result.output and "ratio" in result.output
