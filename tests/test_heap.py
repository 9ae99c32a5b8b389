"""The C heap's large blocks go back to the system when freed (kgalign/runtime/heap.py).

Each check runs in a fresh process: the setting is process-wide. glibc's mallinfo2
tells how many bytes are in memory maps of their own (``hblkhd``).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import ctypes, os, sys
class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
if sys.argv[1] == "fixed":
    from kgalign.runtime.heap import return_freed_memory
    print("set", return_freed_memory())
big = bytearray(16 << 20)
del big  # glibc's default raises its threshold to 16 MiB here (it does so up to 32 MiB)
block = bytearray(8 << 20)
print("mapped", libc.mallinfo2().hblkhd >= (8 << 20))
"""


def _probe(mode: str, **env: str) -> str:
    import os

    return subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True, env={**os.environ, **env}).stdout


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_a_large_block_stays_a_map_of_its_own_after_a_larger_one_was_freed() -> None:
    assert "mapped False" in _probe("default")  # glibc's default: the 8 MiB block came from the heap
    fixed = _probe("fixed")
    assert "set True" in fixed and "mapped True" in fixed


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_a_threshold_the_user_set_is_kept() -> None:
    assert "set False" in _probe("fixed", MALLOC_MMAP_THRESHOLD_="131072")
