"""The allocator tuning is an opt-in: importing or calling ldwseg leaves the process's allocator alone.

Page faults and resident memory are measured in subprocesses, timings never asserted."""

import os
import platform
import subprocess
import sys

import pytest

from ldwseg.pooling.allocator import ENV, keep_default_allocator, keep_freed_memory

GLIBC = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")


def test_can_be_turned_off(monkeypatch):
    monkeypatch.setenv(ENV, "default")
    assert keep_freed_memory() is False


def test_keep_default_allocator_turns_later_calls_off(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    assert keep_default_allocator() is False
    assert os.environ[ENV] == "default" and keep_freed_memory() is False


@GLIBC
def test_glibc_accepts_the_settings(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    assert keep_freed_memory() is True


def test_one_documented_call():
    from ldwseg.pooling import keep_freed_memory as exported

    assert exported is keep_freed_memory


# A user's own script: imports torch and ldwseg, maybe opts in (argv[1] == "keep"), runs LDW
# pooling and reverse pooling forward and backward on large CPU maps, then prints the page
# faults of 12 rounds of writing and freeing a 32 MiB tensor, and the resident memory (from
# /proc/self/statm) before, with and after a 256 MiB tensor.
_SCRIPT = """
import resource, sys, torch
import ldwseg
if sys.argv[1] == "keep":
    ldwseg.pooling.keep_freed_memory()
pool = ldwseg.LDWPool2d(16, wavelet="db2")
unpool = ldwseg.LDWUnpool2d(pool)
for _ in range(2):
    x = torch.randn(2, 16, 256, 256, requires_grad=True)  # 8 MiB; its subbands, gradients alike
    unpool(pool(x)).square().sum().backward()
del x
x = torch.ones(2**23)  # 32 MiB of float32: above glibc's largest dynamic mmap threshold
faults = []
for _ in range(12):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    y = x.clone()
    del y
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
def resident():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()
base = resident()
big = torch.ones(2**26)  # 256 MiB
peak = resident()
del big
print(*faults[-4:])
print(base, peak, resident())
"""


def _run(mode: str) -> tuple[list[int], tuple[int, int, int]]:
    env = {k: v for k, v in os.environ.items() if k != ENV}
    out = subprocess.run(
        [sys.executable, "-c", _SCRIPT, mode], capture_output=True, text=True, check=True, env=env, timeout=120
    ).stdout.splitlines()
    faults = [int(f) for f in out[-2].split()]
    base, peak, after = (int(v) for v in out[-1].split())
    return faults, (base, peak, after)


@GLIBC
@pytest.mark.parametrize("mode", ["library", "keep"])
def test_ldw_pooling_leaves_the_allocator_alone(mode):
    """After LDW pooling forward and backward, glibc still returns freed large blocks to the
    system: a freed 256 MiB tensor leaves the resident memory (``/proc/self/statm``), and a freed 32 MiB block is
    mapped afresh (8192 faults of 4 KiB) at every round. With keep_freed_memory(), the opt-in,
    both stay in the process, which shows that the measurement can tell the two apart."""
    faults, (base, peak, after) = _run(mode)
    block = 256 * 2**20
    if mode == "library":
        assert peak - base > 0.9 * block and peak - after > 0.9 * block, (base, peak, after)
        assert min(faults) > 4000, faults
    else:
        assert peak - after < 0.1 * block, (base, peak, after)
        assert sum(faults) < 1000, faults
