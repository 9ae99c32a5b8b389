"""Time and peak memory per pipeline stage, for run.json and the benchmarks."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import resource
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import psutil

from kgalign.runtime.heap import release_free_memory

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=1)
def _process(pid: int) -> psutil.Process:
    return psutil.Process(pid)


def _rss_mb() -> float:
    # One Process object per process: creating one reads /proc every time, and the
    # sampler below asks 50 times a second (0.5 s of a 15 s run went there).
    return _process(os.getpid()).memory_info().rss / 2**20


@dataclass
class StageTimer:
    """Records wall time and peak resident memory (sampled every 20 ms) per stage.

    A stage entered more than once accumulates its time and keeps its highest peak. A
    stage an exception leaves is logged as failed, with the time it took.
    """

    stages: dict[str, dict[str, float]] = field(default_factory=dict)

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        peak = [_rss_mb()]
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(0.02):
                peak[0] = max(peak[0], _rss_mb())

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.perf_counter()
        log.debug("stage %s ...", name)
        failed = False
        try:
            yield
        except BaseException:
            failed = True  # an error or an interrupt passes through the stage
            raise
        finally:
            stop.set()
            sampler.join()
            peak[0] = max(peak[0], _rss_mb())
            release_free_memory()  # what the stage freed, back to the system before the next
            elapsed = time.perf_counter() - started
            # A stage entered again (the cascade retrieves, embeds, retrieves) adds up.
            earlier = self.stages.get(name, {"seconds": 0.0, "peak_rss_mb": 0.0})
            self.stages[name] = {
                "seconds": round(earlier["seconds"] + elapsed, 3),
                "peak_rss_mb": round(max(earlier["peak_rss_mb"], peak[0]), 1),
            }
            log.info("stage %s %s %.2fs (peak %.0f MB)", name, "failed after" if failed else "done in", elapsed, peak[0])

    @property
    def total_seconds(self) -> float:
        return round(sum(s["seconds"] for s in self.stages.values()), 3)

    @staticmethod
    def current_mb() -> float:
        return round(_rss_mb(), 1)

    @staticmethod
    def process_peak_mb() -> float:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)
