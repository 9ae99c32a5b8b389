"""Process settings for torch's CPU kernels, made before kgalign's first torch call.

oneDNN, which runs torch's bfloat16 matrix products on CPUs that support them, keeps
the kernels it has built in a cache of 1,024 by default, and each kernel holds its
own copy of the weights laid out for one input shape. The embedder's batches are
sorted by length, so nearly every batch has a new width and a new set of kernels:
embedding 6,000 texts with MiniLM under bfloat16 grew a process to 1.4 GB with the
default, 0.67 GB with 4 kernels, in the same time (``python -m bench.embed_memory``,
bench/results/embed-memory.md); the local judge answered as fast either way. oneDNN
reads the setting once per process, when it builds its first kernel, so it is made
before kgalign's embedder, judge or Ray actor runs anything; a value set by the user
(or by torch code that ran first) stays.
"""

from __future__ import annotations

import os

ONEDNN_CACHE_VARIABLE = "ONEDNN_PRIMITIVE_CACHE_CAPACITY"
#: Kernels oneDNN keeps: those of the batch at hand and the one before it.
ONEDNN_CACHE_CAPACITY = 4


def limit_kernel_cache() -> None:
    """Cap oneDNN's kernel cache at :data:`ONEDNN_CACHE_CAPACITY`, unless already set."""
    os.environ.setdefault(ONEDNN_CACHE_VARIABLE, str(ONEDNN_CACHE_CAPACITY))
