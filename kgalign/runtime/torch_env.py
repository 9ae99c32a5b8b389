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

OpenMP's threads, which run torch's and faiss's kernels, wait passively
(``OMP_WAIT_POLICY=PASSIVE``): by default a thread that has done its share of a kernel
spins for a while, ready for the next one. Alone that gains nothing measurable; beside
another process that uses every core (a second run, a server, a test worker) the
spinning takes the cores the other needs. Two local judges at once on 2 cores took 3.16
times as long as one alone with the default, 1.66 times passively, and one alone the same
(14.7 s and 14.1 s; ``python -m bench.openmp_wait``, bench/results/openmp-wait.txt).
OpenMP reads the policy once, when torch is loaded, so the same rule holds: it is set
before kgalign loads torch, and a value the user set stays.
"""

from __future__ import annotations

import os

ONEDNN_CACHE_VARIABLE = "ONEDNN_PRIMITIVE_CACHE_CAPACITY"
#: Kernels oneDNN keeps: as many as a batch of the embedder or a step of the judge uses.
ONEDNN_CACHE_CAPACITY = 16
OPENMP_WAIT_VARIABLE = "OMP_WAIT_POLICY"


def cpu_kernel_defaults() -> None:
    """Cap oneDNN's kernel cache at :data:`ONEDNN_CACHE_CAPACITY` and let OpenMP's idle
    threads sleep rather than spin, each unless already set."""
    os.environ.setdefault(ONEDNN_CACHE_VARIABLE, str(ONEDNN_CACHE_CAPACITY))
    os.environ.setdefault(OPENMP_WAIT_VARIABLE, "PASSIVE")


def actor_process(threads: int) -> None:
    """A Ray actor's process set up for torch: the defaults of :func:`cpu_kernel_defaults`,
    and torch's threads the CPUs the actor reserved (at least one)."""
    cpu_kernel_defaults()
    try:
        import torch

        torch.set_num_threads(max(1, threads))
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
