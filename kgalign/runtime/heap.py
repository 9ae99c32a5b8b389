"""Memory the C heap holds but no longer uses, given back to the system after each stage.

glibc serves requests of 128 KiB or more with memory maps of their own, but raises that
threshold (up to 32 MiB) each time such a block is freed: after the first large numpy
temporary, blocks of up to its size come from the heap, and the heap's freed pages stay
with the process while anything above them lives. The stages build and drop many such
temporaries (TF-IDF cells, score blocks, vectors), so a process kept hundreds of
megabytes it no longer used. :func:`release_free_memory` asks glibc to give them back
(``malloc_trim``, which also returns free pages inside the heap); the stage timer calls
it as each stage ends. On the 1M synthetic pair, a process that had loaded both graphs
and built their TF-IDF rows held 1,566 MB after the cardinality detection, 1,434 MB
with a trim after each step.

Fixing the threshold instead (``mallopt``, or ``MALLOC_MMAP_THRESHOLD_``) kept 1,385 MB
there, but made every large tensor of the torch embedder a new memory map, zeroed page
by page: 8,000 texts of that pair took 52.8 s to embed instead of 32.3 s (one process,
the threshold at 1 MiB), and the whole 1M run's embedding about 1.7 times as long.
Elsewhere than glibc this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import sys
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")


@functools.lru_cache(maxsize=1)
def _libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        return libc
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
        return None


def release_free_memory() -> bool:
    """Give the heap's free pages back to the system; whether glibc was there to ask."""
    libc = _libc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


def releasing(call: Callable[P, R]) -> Callable[P, R]:
    """``call``, giving the heap's free pages back after each call (a Ray actor's methods:
    their temporaries would otherwise stay with the actor between calls)."""

    @functools.wraps(call)
    def released(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return call(*args, **kwargs)
        finally:
            release_free_memory()

    return released
