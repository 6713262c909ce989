"""The allocator tuning: applied by train/sweep/ablate/bench, and by the first LDW pool on the CPU.

Page faults are counted, timings never asserted."""

import platform
import subprocess
import sys

import pytest

from ldwseg.pooling.allocator import ENV, keep_freed_memory

GLIBC = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")


def test_can_be_turned_off(monkeypatch):
    monkeypatch.setenv(ENV, "default")
    assert keep_freed_memory() is False


@GLIBC
def test_glibc_accepts_the_settings(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    assert keep_freed_memory() is True


# Prints the page faults of 12 rounds of writing and freeing a 32 MiB tensor, after a set-up
# chosen by argv[1]. It imports only torch and ldwseg, as a user's own script would.
_REFAULTS = """
import logging, resource, sys, torch
import ldwseg
from ldwseg.pooling import allocator
mode = sys.argv[1]
logging.basicConfig(level=logging.DEBUG, format="LOG %(message)s", stream=sys.stdout)
if mode == "keep":
    allocator.keep_freed_memory()
if mode == "opted-out":
    allocator.keep_default_allocator()
if mode in ("pool", "opted-out"):
    pool = ldwseg.LDWPool2d(8)
    for _ in range(3):
        x = torch.randn(2, 8, 64, 64, requires_grad=True)
        pool(x).square().sum().backward()
x = torch.ones(2**23)  # 32 MiB of float32: above glibc's largest dynamic mmap threshold
faults = []
for _ in range(12):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    y = x.clone()
    del y
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(*faults)
"""


def _refaults(mode: str, env: dict) -> tuple[list[int], list[str]]:
    """The faults of the last 4 rounds, and the DEBUG lines of ldwseg.pooling.allocator."""
    out = subprocess.run(
        [sys.executable, "-c", _REFAULTS, mode], capture_output=True, text=True, check=True, env=env, timeout=120
    ).stdout.splitlines()
    logs = [line for line in out if line.startswith("LOG ") and "glibc" in line]
    return [int(f) for f in out[-1].split()][-4:], logs


@GLIBC
@pytest.mark.parametrize(
    "mode, env_value, kept",
    [
        ("keep", None, True),  # keep_freed_memory(), as the CLI calls it
        ("plain", None, False),  # nothing ran: glibc's default
        ("pool", None, True),  # a few LDWPool2d calls, no set-up: the pool tuned it
        ("pool", "default", False),  # ... unless LDWSEG_MALLOC=default
        ("opted-out", None, False),  # ... or keep_default_allocator() ran first
    ],
)
def test_freed_block_is_reused_without_page_faults(mode, env_value, kept):
    """Freed 32 MiB blocks come back without page faults once the heap has grown, and only
    with the tuning: glibc unmaps them otherwise (8192 faults of 4 KiB per block). The first
    few rounds may grow the heap, as small allocations land between the big ones."""
    import os

    env = {k: v for k, v in os.environ.items() if k != ENV}
    if env_value is not None:
        env[ENV] = env_value
    last, logs = _refaults(mode, env)
    if kept:
        assert sum(last) < 1000, last
    else:
        assert min(last) > 4000, last
    if mode == "pool":
        assert len(logs) == 1 + (env_value is None), logs  # the lazy tuning logs once, and mallopt's own line
        assert "first LDW pooling on the CPU" in logs[-1] and ("done" if kept else "not done") in logs[-1]
