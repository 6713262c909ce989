"""Transparent huge pages for the large results of the pooling ops on Linux.

glibc serves a block of 32 MiB or more with a fresh ``mmap`` and unmaps it when freed, so
in a loop every new large tensor is faulted in again, one 4 KiB page at a time: writing a
fresh 32 MiB output costs 6-10 ms of page faults on a 2-core VM, about as much as the pool
itself. :func:`advise_huge_pages` asks the kernel (``madvise(MADV_HUGEPAGE)``) to back the
2 MiB-aligned part of such a tensor with huge pages, one fault per 2 MiB instead of 512.

Unlike :func:`~ldwseg.pooling.keep_freed_memory` this is no setting of the process: the
advice covers only the pages of a result that the op has just allocated, blocks that glibc
maps for that tensor alone (:data:`MIN_BYTES` and more) and unmaps when it is freed, so the
advice ends with them. It is not given once the process keeps freed memory (its blocks
then come from the heap, already faulted in), off Linux, on other devices, to tensor
subclasses (fake tensors hold no memory) and while ``torch.compile`` traces; where
transparent huge pages are off (``/sys/kernel/mm/transparent_hugepage/enabled`` is
``never``) the kernel ignores it.
``LDWSEG_HUGE_PAGES=off`` in the environment turns it off (a kernel whose huge-page
compaction stalls, for example).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys

import torch
from torch import Tensor

from .allocator import keeps_freed_memory

__all__ = ["ENV", "MIN_BYTES", "advise_huge_pages"]

ENV = "LDWSEG_HUGE_PAGES"
"""Set to ``off`` (or ``0``) to leave the pages of the results as the allocator gives them."""

MIN_BYTES = 2**25
"""The smallest result advised: glibc's largest mmap threshold (32 MiB on 64-bit), above which
every block is a mapping of its own, faulted in anew at each allocation."""

_HUGE_PAGE = 2**21
_MADV_HUGEPAGE = 14  # <linux/mman.h>


@functools.cache
def _madvise():
    """libc's ``madvise`` on Linux, else ``None``."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        madvise = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).madvise
    except (OSError, AttributeError):
        return None
    madvise.argtypes, madvise.restype = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int], ctypes.c_int
    return madvise


def advise_huge_pages(t: Tensor) -> Tensor:
    """Advise huge pages for the 2 MiB-aligned part of a new, not yet written CPU tensor; returns ``t``.

    Pages already in memory are left as they are, so the advice only speeds up the first
    write of fresh memory. A refusal of the kernel (``EINVAL`` without huge-page support)
    is ignored: the tensor is then faulted in as usual.
    """
    # first: while torch.compile traces, the storage may not be asked for (dynamo breaks the graph there)
    if torch.compiler.is_compiling():
        return t
    if type(t) is not Tensor or t.device.type != "cpu":  # subclasses: fake and functional tensors hold no memory
        return t
    nbytes = t.untyped_storage().nbytes()
    if nbytes < MIN_BYTES or keeps_freed_memory():
        return t
    if os.environ.get(ENV, "").strip().lower() in ("off", "0", "false", "no"):
        return t
    madvise = _madvise()
    if madvise is None:
        return t
    start = t.untyped_storage().data_ptr()
    first = -(-start // _HUGE_PAGE) * _HUGE_PAGE
    last = (start + nbytes) // _HUGE_PAGE * _HUGE_PAGE
    if last > first:
        madvise(first, last - first, _MADV_HUGEPAGE)
    return t
