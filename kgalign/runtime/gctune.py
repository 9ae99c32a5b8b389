"""Fewer garbage-collector passes while the pipeline builds its big structures.

A run holds millions of small container objects (triples as tuples, term dicts,
candidate lists). Reference counting frees them; CPython's cyclic collector only adds
passes that walk them, and with its default thresholds (a young pass every 700
allocations, older generations every 10 young ones) those passes took 2 to 4 s of a
12 s DBP15K fr-en run, in loading, fusing and writing alike. Raising the thresholds
keeps the collector (a cycle is still freed, later) without the walks; peak memory on
DBP15K was 564 MB against 555 MB (bench/results/gc-thresholds.md, 1.26x faster).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

#: (young, middle, old): a young pass every 100,000 allocations instead of 700.
RELAXED_THRESHOLDS = (100_000, 50, 50)


@contextlib.contextmanager
def relaxed_gc() -> Iterator[None]:
    """Run the body under :data:`RELAXED_THRESHOLDS` (never lower than the current
    ones); the previous thresholds come back on exit. Nesting is harmless."""
    before = gc.get_threshold()
    gc.set_threshold(*(max(now, relaxed) for now, relaxed in zip(before, RELAXED_THRESHOLDS)))
    try:
        yield
    finally:
        gc.set_threshold(*before)
