"""Benchmark ``--engine ray``'s load: partitions reading byte ranges against the driver sending blocks.

    python -m bench.ray_load_ranges [--triples 1000000] [--parts 2] [--repeat 2]

Loads the left graph of the synthetic pair of bench/make_large_pair.py (generated into
$TMPDIR/kgalign-large-<triples>-s0 unless there) by ``--parts`` partition actors of a
local Ray instance, ``--repeat`` times each way, alternately:

- **ranges**: the partitions read their 4 MB byte ranges of the file themselves;
- **blocks**: the driver reads the file in 4 MB blocks and sends them (as before).

Prints the seconds of each (median), the driver's CPU seconds, and whether both built
the same entity table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench import large


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--triples", type=int, default=1_000_000, help="Triples per side (about).")
    parser.add_argument("--parts", type=int, default=2, help="Load partitions (default 2).")
    parser.add_argument("--repeat", type=int, default=2, help="Times each way is timed (default 2).")
    args = parser.parse_args(argv)

    import ray

    from kgalign.runtime.ray_load import RayLoader

    path = large._pair(Path(tempfile.gettempdir()) / f"kgalign-large-{args.triples}-s0", args.triples, 0, False)["left"]
    ray.init(num_cpus=args.parts, include_dashboard=False, log_to_driver=False)
    seconds: dict[str, list[float]] = {"ranges": [], "blocks": []}
    cpu: dict[str, list[float]] = {"ranges": [], "blocks": []}
    tables = {}
    try:
        for _ in range(args.repeat):
            for way in ("ranges", "blocks"):
                loader = RayLoader(ray, args.parts, by_ranges=way == "ranges")
                wall, used = time.perf_counter(), time.process_time()
                loaded = loader(path, "left", "nt", None)
                seconds[way].append(time.perf_counter() - wall)
                cpu[way].append(time.process_time() - used)
                assert loaded is not None
                tables[way] = loaded[1]
                del loaded
    finally:
        ray.shutdown()
    same = list(tables["ranges"].entities.items()) == list(tables["blocks"].entities.items())
    size = path.stat().st_size
    print(f"`python -m bench.ray_load_ranges --triples {args.triples} --parts {args.parts} --repeat {args.repeat}` on {os.cpu_count()} CPUs, {size / 1e6:,.0f} MB, {tables['ranges'].triple_count:,} triples:\n")
    print(f"| way | seconds (median of {args.repeat}) | the driver's CPU seconds |")
    print("|---|---:|---:|")
    for way, what in (("blocks", "the driver reads 4 MB blocks and sends them"), ("ranges", "the partitions read their 4 MB byte ranges")):
        print(f"| {what} | {statistics.median(seconds[way]):.1f} | {statistics.median(cpu[way]):.1f} |")
    print(f"\nblocks / ranges: {statistics.median(seconds['blocks']) / statistics.median(seconds['ranges']):.2f}x; the same entity table: {same}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
