"""Process-level CPU settings that matter for speed.

glibc's malloc hands big blocks (activations of tens of MB) back to the kernel on every free
and takes them again with mmap on the next step; the page faults that follow showed up as
80-100 % system time and 2-8x slower training steps on the 2-core machines. Raising the mmap
and trim thresholds keeps that memory in the heap for reuse.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3
_done = False


def tune_allocator() -> bool:
    """Make glibc malloc keep freed large blocks (Linux/glibc only; a no-op elsewhere)."""
    global _done
    if _done or not sys.platform.startswith("linux"):
        return _done
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl or another libc without mallopt
        return False
    ok = bool(mallopt(_M_MMAP_THRESHOLD, 32 * 1024 * 1024))  # glibc's maximum
    ok &= bool(mallopt(_M_TRIM_THRESHOLD, 1 << 30))
    ok &= bool(mallopt(_M_TOP_PAD, 256 * 1024 * 1024))
    _done = ok
    return ok
