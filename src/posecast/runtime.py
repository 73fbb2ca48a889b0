"""Process-level CPU settings that matter for speed.

glibc's malloc serves every block above its mmap threshold (at most 32 MiB, and the activations
of a ``lab`` training step are 40-400 MiB each) with a fresh ``mmap`` and returns it with
``munmap`` on free, so every training step faults its whole working set in again: the kernel
zeroes each 4 KiB page on first touch. That showed up as 80-100 % system time, millions of minor
page faults per step and 2-8x slower steps on the 2-core machines. ``tune_allocator`` turns
mmap off for heap blocks (``M_MMAP_MAX = 0``) and never trims the heap, so the memory of one step
is reused by the next one without a page fault (measured: 4-6 million faults per ``lab`` step
down to 0 after the first step; see benchmarks/speed.py).

The price: the process keeps its peak heap (RSS does not shrink after a big step).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3
_M_MMAP_MAX = -4
_done = False


def tune_allocator() -> bool:
    """Make glibc malloc keep freed large blocks (Linux/glibc only; a no-op elsewhere).

    Set ``POSECAST_MALLOC=default`` to leave malloc alone. Idempotent; returns whether the
    settings are in effect."""
    global _done
    if _done or not sys.platform.startswith("linux") or os.environ.get("POSECAST_MALLOC") == "default":
        return _done
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl or another libc without mallopt
        return False
    ok = bool(mallopt(_M_MMAP_MAX, 0))  # big blocks from the heap, never mmap/munmap per tensor
    ok &= bool(mallopt(_M_MMAP_THRESHOLD, 32 * 1024 * 1024))  # glibc's maximum (if mmap is used)
    # -1 is SIZE_MAX inside glibc: never give the top of the heap back to the kernel
    ok &= bool(mallopt(_M_TRIM_THRESHOLD, -1))
    ok &= bool(mallopt(_M_TOP_PAD, 64 * 1024 * 1024))  # grow the heap in 64 MiB steps
    _done = ok
    return ok


def malloc_stats() -> dict[str, int]:
    """Page faults and CPU times of this process so far (for the speed benchmark)."""
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return {"minflt": r.ru_minflt, "majflt": r.ru_majflt, "utime": r.ru_utime, "stime": r.ru_stime,
            "maxrss_kb": r.ru_maxrss}
