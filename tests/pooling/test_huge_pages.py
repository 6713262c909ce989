"""Huge pages for the pools' large results: which memory is advised, read back from the kernel.

The kernel's own record of a mapping (``VmFlags`` in ``/proc/self/smaps``, ``hg`` for
``MADV_HUGEPAGE``) is the reference; timings are never asserted here (docs/results.md,
"Pooling speed")."""

import sys
from pathlib import Path

import pytest
import torch

from ldwseg import LDWPool2d, LDWUnpool2d
from ldwseg.pooling import allocator, huge_pages

LINUX_THP = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not Path("/sys/kernel/mm/transparent_hugepage").is_dir(),
    reason="Linux with transparent huge pages only",
)
BIG = (8, 64, 128, 128)  # its subbands and the input gradient are 32 MiB of float32


def _vm_flags(address: int) -> set[str]:
    """The ``VmFlags`` of the mapping of this process that holds ``address``."""
    inside = False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()[0]
        if "-" in head and not head.endswith(":"):
            low, high = (int(v, 16) for v in head.split("-"))
            inside = low <= address < high
        elif inside and head == "VmFlags:":
            return set(line.split()[1:])
    raise AssertionError(f"no mapping holds {address:#x}")


def _inner_page(t: torch.Tensor) -> int:
    """An address in the first 2 MiB-aligned huge page inside ``t``'s memory."""
    return -(-t.untyped_storage().data_ptr() // 2**21) * 2**21


@pytest.fixture
def fresh_process_memory(monkeypatch):
    """As in a process that has not called keep_freed_memory(), whatever tests ran before."""
    monkeypatch.setitem(allocator._state, "kept", False)
    monkeypatch.delenv(huge_pages.ENV, raising=False)


def test_advises_the_aligned_inside_of_a_large_cpu_tensor(monkeypatch, fresh_process_memory):
    calls = []
    monkeypatch.setattr(
        huge_pages, "_madvise", lambda: lambda start, length, advice: calls.append((start, length, advice))
    )
    t = torch.empty(2**23 + 5)  # 32 MiB and 20 bytes
    assert huge_pages.advise_huge_pages(t) is t
    ((start, length, advice),) = calls
    begin = t.untyped_storage().data_ptr()
    end = begin + t.untyped_storage().nbytes()
    assert advice == 14 and start % 2**21 == 0 and length % 2**21 == 0
    assert begin <= start < begin + 2**21 and end - 2**21 < start + length <= end


@pytest.mark.parametrize("case", ["small", "kept memory", "turned off", "meta", "fake"])
def test_leaves_other_memory_alone(monkeypatch, fresh_process_memory, case):
    calls = []
    monkeypatch.setattr(huge_pages, "_madvise", lambda: lambda *args: calls.append(args))
    size, device = 2**23, "cpu"
    if case == "small":
        size = 2**23 - 1
    elif case == "kept memory":
        monkeypatch.setitem(allocator._state, "kept", True)
    elif case == "turned off":
        monkeypatch.setenv(huge_pages.ENV, "off")
    elif case == "meta":
        device = "meta"
    if case == "fake":  # what torch.compile and memory estimators trace with: no memory behind it
        from torch._subclasses.fake_tensor import FakeTensorMode

        with FakeTensorMode():
            huge_pages.advise_huge_pages(torch.empty(size))
    else:
        huge_pages.advise_huge_pages(torch.empty(size, device=device))
    assert calls == []


@LINUX_THP
def test_pool_results_are_advised_and_their_values_unchanged(monkeypatch, fresh_process_memory):
    """The output and the input gradient of a large pool are huge-page memory for the kernel; the
    same computation with the advice turned off gives the same values, bit for bit."""
    pool = LDWPool2d(BIG[1], wavelet="haar")
    x = torch.randn(BIG, requires_grad=True)
    out = pool(x)
    (grad,) = torch.autograd.grad(out, x, torch.ones_like(out))
    assert "hg" in _vm_flags(_inner_page(out)) and "hg" in _vm_flags(_inner_page(grad))

    monkeypatch.setenv(huge_pages.ENV, "off")
    plain = pool(x)
    (plain_grad,) = torch.autograd.grad(plain, x, torch.ones_like(plain))
    assert "hg" not in _vm_flags(_inner_page(plain))
    torch.testing.assert_close(out, plain, rtol=0, atol=0)
    torch.testing.assert_close(grad, plain_grad, rtol=0, atol=0)


@LINUX_THP
def test_reverse_pool_result_is_advised(fresh_process_memory):
    unpool = LDWUnpool2d(LDWPool2d(BIG[1], wavelet="haar"))
    with torch.no_grad():
        y = unpool(torch.randn(BIG[0], 4 * BIG[1], BIG[2] // 2, BIG[3] // 2))
    assert "hg" in _vm_flags(_inner_page(y))
