"""What the driver of a run holds as the cascade's second pass starts (its vectors made),
by the line of kgalign that allocated it.

    python -m bench.driver_heap --data DIR [--engine ray] [--frames 8] [--top 25]

DIR holds a pair made by bench/make_large_pair.py (left.nt, right.nt). Runs the whole
pipeline in this process (``--judge none``) under ``tracemalloc`` and, when the cascade
has embedded the entities its lexical pass left open (the point where the driver holds
the most), takes a snapshot and stops the run: the memory still held, grouped by the innermost frame in
kgalign that allocated it (numpy's buffers, scipy's sparse arrays and Python objects
alike; FAISS's C++ memory is not traced). Prints a table in MB, largest first, with the
process's resident memory then. Tracing makes the run a few times slower and its
bookkeeping takes memory of its own (not counted in the table): use a 1M pair or less.
"""

from __future__ import annotations

import argparse
import os
import sys
import tracemalloc
from collections import Counter
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = str(ROOT / "kgalign")


def _site(trace: tracemalloc.Trace) -> str:
    """The innermost frame of the allocation inside kgalign (file:line), else the innermost."""
    for frame in trace.traceback:  # innermost first
        if frame.filename.startswith(PACKAGE):
            return f"{os.path.relpath(frame.filename, ROOT)}:{frame.lineno}"
    frame = trace.traceback[0]
    return f"(outside kgalign) {Path(frame.filename).name}:{frame.lineno}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="Folder of the pair (left.nt, right.nt).")
    parser.add_argument("--engine", default="ray", choices=("local", "ray"), help="Engine of the run (default ray: its driver).")
    parser.add_argument("--frames", type=int, default=8, help="Frames kept per allocation (default 8).")
    parser.add_argument("--top", type=int, default=25, help="Lines of kgalign printed (default 25).")
    args = parser.parse_args(argv)

    from kgalign import pipeline
    from kgalign.config import AlignConfig
    from kgalign.retrieval import candidates

    taken: dict[str, object] = {}
    real = candidates.encode_sides

    class Taken(Exception):
        """Raised once the snapshot is taken: the rest of the run is not needed."""

    def encode_sides(*a, **k):  # type: ignore[no-untyped-def]
        taken["vectors"] = real(*a, **k)  # held while the snapshot is taken, as the run holds them
        taken["snapshot"] = tracemalloc.take_snapshot()
        taken["rss_mb"] = psutil.Process().memory_info().rss / 2**20
        raise Taken

    candidates.encode_sides = encode_sides  # type: ignore[assignment]
    tracemalloc.start(args.frames)
    config = AlignConfig(engine=args.engine, judge="none")
    try:
        pipeline.align(args.data / "left.nt", args.data / "right.nt", config)
    except Taken:
        pass
    tracemalloc.stop()
    if "snapshot" not in taken:
        print("the cascade embedded nothing: no snapshot", file=sys.stderr)
        return 1
    snapshot = taken["snapshot"]
    assert isinstance(snapshot, tracemalloc.Snapshot)
    held: Counter[str] = Counter()
    for trace in snapshot.traces:
        held[_site(trace)] += trace.size
    total = sum(held.values())
    print(f"`python -m bench.driver_heap --data {args.data} --engine {args.engine}`: as the second pass starts, the process")
    print(f"held {total / 2**20:,.0f} MB traced, {taken['rss_mb']:,.0f} MB resident (tracemalloc's own bookkeeping included)\n")
    print("| allocated at | MB |\n|---|---:|")
    for site, size in held.most_common(args.top):
        print(f"| {site} | {size / 2**20:,.1f} |")
    rest = total - sum(size for _, size in held.most_common(args.top))
    print(f"| (the rest) | {rest / 2**20:,.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
