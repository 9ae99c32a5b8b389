"""How the process's C heap gives memory back: large blocks returned to the system when freed.

glibc serves a request of 128 KiB or more with a memory map of its own, unmapped when
freed, but raises that threshold (up to 32 MiB) each time such a block is freed: after
the first large numpy temporary, blocks of up to its size come from the heap, whose
freed pages stay with the process while anything above them lives. The stages build
and drop many such temporaries (TF-IDF cells, score blocks, vectors), so a run kept
hundreds of megabytes it no longer used: on the 1M synthetic pair, a process that had
loaded both graphs and built their TF-IDF rows held 1,566 MB after the cardinality
detection with glibc's default, 1,385 MB with the threshold fixed (/tmp probe, the same
steps). :func:`return_freed_memory` fixes it at :data:`MMAP_THRESHOLD` (which also stops
the heap's trim threshold from growing). It is made when a run starts (the driver and
each Ray actor), is process-wide, and keeps a value the user set through glibc's
``MALLOC_MMAP_THRESHOLD_`` variable. Elsewhere than glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import os
import sys

log = logging.getLogger(__name__)

#: Requests of this many bytes or more get a memory map of their own, unmapped when freed.
MMAP_THRESHOLD = 1 << 20
_M_MMAP_THRESHOLD = -3  # mallopt's parameter number, from glibc's malloc.h
USER_VARIABLE = "MALLOC_MMAP_THRESHOLD_"


@functools.lru_cache(maxsize=1)
def return_freed_memory() -> bool:
    """Fix glibc's mmap threshold (see the module text); whether it was set here."""
    if not sys.platform.startswith("linux") or USER_VARIABLE in os.environ:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    done = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    log.debug("glibc mmap threshold fixed at %d bytes: %s", MMAP_THRESHOLD, done)
    return done
