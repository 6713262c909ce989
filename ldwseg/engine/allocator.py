"""Keep freed memory in the process: glibc's allocator tuned for training loops.

Every training step allocates and frees the same large tensors. glibc serves blocks of
32 MiB and more with a fresh ``mmap`` and gives them back with ``munmap`` when freed, so
each step pays the page faults of touching them anew: writing a fresh 32 MiB tensor
costs about 9.5 ms on the 2-core CPU machine, as much as the LDW pool's whole forward
pass at (8, 64, 128, 128). :func:`keep_freed_memory` makes glibc serve every block
from its heap and keep freed memory for the next step (``M_MMAP_MAX = 0`` and a trim
threshold of 2 GiB, the largest ``mallopt`` accepts), as
``GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=...`` would; the
PyTorch CPU tuning guides reach the same effect with jemalloc or tcmalloc. The price:
the process keeps its peak memory until it ends.

``ldwseg train``, ``sweep``, ``ablate`` and ``bench`` call it; ``predict`` and
``reconstruct`` (one-shot, possibly huge images) do not. ``LDWSEG_MALLOC=default`` turns
it off. It does nothing where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

__all__ = ["keep_freed_memory"]

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_TRIM_THRESHOLD = 2**31 - 1  # mallopt takes a C int: 4 GiB would wrap to 0 (trim always)
ENV = "LDWSEG_MALLOC"


def keep_freed_memory() -> bool:
    """Tune glibc's malloc as described above; returns whether it was done."""
    if os.environ.get(ENV, "").strip().lower() == "default":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
        libc.gnu_get_libc_version.restype = ctypes.c_char_p  # only glibc has this function
    except (OSError, AttributeError):
        log.debug("not glibc: the allocator is left as it is")
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    done = mallopt(_M_MMAP_MAX, 0) == 1 and mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD) == 1
    log.debug("glibc malloc: mmap off, trim threshold 2 GiB (%s)", "done" if done else "refused")
    return done
