"""Keep freed memory in the process: glibc's allocator tuned for loops over large tensors.

Every training step, and every call in a user's timing loop, allocates and frees the same
large tensors. glibc serves blocks of 32 MiB and more with a fresh ``mmap`` and gives them
back with ``munmap`` when freed (smaller freed blocks at the top of the heap are trimmed
back too), so each step pays the page faults of touching them anew: writing a fresh
32 MiB tensor costs 6-10 ms on the 2-core CPU machine. :func:`keep_freed_memory`
makes glibc serve every block from its heap and keep freed memory for the next step
(``M_MMAP_MAX = 0`` and a trim threshold of 2 GiB, the largest ``mallopt`` accepts), as
``GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=...`` would; the
PyTorch CPU tuning guides reach the same effect with jemalloc or tcmalloc. The price:
the process keeps its peak memory until it ends.

This is a setting of the whole process, so the library never applies it by itself:
importing ldwseg and calling its layers leaves the allocator as it is. The ``ldwseg``
commands ``train``, ``sweep``, ``ablate``, ``compare`` and ``bench`` apply it to the
process they own; a script of your own opts in with one call at its start::

    from ldwseg.pooling import keep_freed_memory
    keep_freed_memory()

``LDWSEG_MALLOC=default`` in the environment turns :func:`keep_freed_memory` into a no-op,
as :func:`keep_default_allocator` does from within the process (``ldwseg bench
--no-keep-memory``). It does nothing where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

__all__ = ["ENV", "keep_default_allocator", "keep_freed_memory", "keeps_freed_memory"]

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_TRIM_THRESHOLD = 2**31 - 1  # mallopt takes a C int: 4 GiB would wrap to 0 (trim always)
ENV = "LDWSEG_MALLOC"
"""Set to ``default`` to leave glibc's allocator as it is."""
_state = {"kept": False}  # mirrors mallopt, itself a setting of the whole process: glibc has no getter


def keep_freed_memory() -> bool:
    """Tune glibc's malloc for the whole process as described above; returns whether it was done."""
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
    _state["kept"] = _state["kept"] or done
    log.debug("glibc malloc: mmap off, trim threshold 2 GiB (%s)", "done" if done else "refused")
    return done


def keep_default_allocator() -> bool:
    """Leave glibc's allocator as it is for the rest of the process: sets ``LDWSEG_MALLOC=default``,
    so that later :func:`keep_freed_memory` calls do nothing. Returns ``False`` (freed memory is
    not kept), like a refused :func:`keep_freed_memory`."""
    os.environ[ENV] = "default"
    return False


def keeps_freed_memory() -> bool:
    """Whether :func:`keep_freed_memory` has tuned this process."""
    return _state["kept"]
