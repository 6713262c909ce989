"""The code passes the project's linter and formatter (ruff, configured in pyproject.toml)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PATHS = ["ldwseg", "tests", "bench"]


def ruff(*args: str) -> subprocess.CompletedProcess:
    pytest.importorskip("ruff", reason="ruff is not installed (pip install -e '.[test]')")
    return subprocess.run([sys.executable, "-m", "ruff", *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_ruff_check_finds_nothing():
    result = ruff("check", *PATHS)
    assert result.returncode == 0, result.stdout[-3000:]


def test_the_code_is_formatted():
    result = ruff("format", "--check", *PATHS)
    assert result.returncode == 0, result.stdout[-3000:]
