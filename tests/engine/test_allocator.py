"""The allocator tuning that train/sweep/ablate/bench apply (timings are never asserted)."""

import platform

import pytest

from ldwseg.engine.allocator import ENV, keep_freed_memory


def test_can_be_turned_off(monkeypatch):
    monkeypatch.setenv(ENV, "default")
    assert keep_freed_memory() is False


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_glibc_accepts_the_settings(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    assert keep_freed_memory() is True


_REFAULTS = """
import resource, sys, torch
from ldwseg.engine.allocator import keep_freed_memory
if sys.argv[1] == "keep":
    keep_freed_memory()
x = torch.ones(2**23)  # 32 MiB of float32: above glibc's largest dynamic mmap threshold
faults = []
for _ in range(12):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    y = x.clone()
    del y
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(*faults)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")
@pytest.mark.parametrize("mode", ["keep", "default"])
def test_freed_block_is_reused_without_page_faults(mode, monkeypatch):
    """A training loop's freed 32 MiB blocks come back without page faults once the heap
    has grown, and only with the tuning: glibc unmaps them otherwise (8192 faults of 4 KiB
    per block). The first few rounds may grow the heap, as small allocations land between
    the big ones."""
    import subprocess
    import sys

    monkeypatch.delenv(ENV, raising=False)
    out = subprocess.run([sys.executable, "-c", _REFAULTS, mode], capture_output=True, text=True, check=True)
    last = [int(f) for f in out.stdout.split()][-4:]
    if mode == "keep":
        assert sum(last) < 1000, out.stdout
    else:
        assert min(last) > 4000, out.stdout
