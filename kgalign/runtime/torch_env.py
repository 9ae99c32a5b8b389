"""Process settings for torch's CPU kernels, made before kgalign's first torch call.

oneDNN, which runs torch's bfloat16 matrix products on CPUs that support them, keeps
the kernels it has built in a cache of 1,024 by default, and each kernel holds its
own copy of the weights laid out for one input shape. The embedder's batches are
sorted by length, so many batches have a new width and a new set of kernels:
embedding 100,000 entity texts of the 1M synthetic pair with MiniLM under bfloat16 took
a process to 1,150 MB with the default, 964 MB with 16 kernels, the same vectors
(``python -m bench.embed_memory --texts 100000 --triples 1000000``,
bench/results/embed-memory.md). A smaller cache saves a little more, but below the
kernels one batch uses (ONEDNN_VERBOSE=2 shows them) oneDNN builds them again and
again. oneDNN reads the setting once per process, when it builds its first kernel, so
it is made before kgalign's embedder, judge or Ray actor runs anything; a value set by
the user (or by torch code that ran first) stays.
"""

from __future__ import annotations

import os

ONEDNN_CACHE_VARIABLE = "ONEDNN_PRIMITIVE_CACHE_CAPACITY"
#: Kernels oneDNN keeps: as many as a batch of the embedder or a step of the judge uses.
ONEDNN_CACHE_CAPACITY = 16


def limit_kernel_cache() -> None:
    """Cap oneDNN's kernel cache at :data:`ONEDNN_CACHE_CAPACITY`, unless already set."""
    os.environ.setdefault(ONEDNN_CACHE_VARIABLE, str(ONEDNN_CACHE_CAPACITY))


def actor_process(threads: int) -> None:
    """A Ray actor's process set up for torch: the kernel cache capped, and torch's threads
    the CPUs the actor reserved (at least one)."""
    limit_kernel_cache()
    try:
        import torch

        torch.set_num_threads(max(1, threads))
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
