"""Benchmark writing the fused graph as shards against writing fused.ttl and provenance.trig.

    python -m bench.shards [--triples 1000000] [--parts 2] [--repeat 3]

Fuses the synthetic pair of bench/make_large_pair.py (generated into
$TMPDIR/kgalign-large-<triples>-s0 unless there) along its gold links, by ``--parts``
fusion partitions in this process (the partitions ``--engine ray`` runs as actors).
Then, ``--repeat`` times each, alternately, in this process:

- **single files**: the driver's way: fetch every partition's rows into spilled files
  and merge them into fused.ttl and provenance.trig;
- **shards**: each partition writes its own fused/part-*.ttl and provenance/part-*.trig
  (one after the other here: on a cluster they write side by side, so the time per
  partition is what a partition costs).

Prints the seconds of each (median), the bytes written, and checks that the shards
concatenated hold fused.ttl's subject blocks.
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
    parser.add_argument("--parts", type=int, default=2, help="Fusion partitions (default 2).")
    parser.add_argument("--repeat", type=int, default=3, help="Times each way is timed (default 3).")
    args = parser.parse_args(argv)

    from rdflib import URIRef

    from kgalign.evaluation.metrics import read_pairs
    from kgalign.fusion.export import DROPPED_GRAPH, provenance_dataset, provenance_header, write_dataset, write_fused
    from kgalign.fusion.fuse import choose_canonical, cluster_links, same_as_pairs
    from kgalign.fusion.partitioned import FusePartition, fuse_partitioned
    from kgalign.fusion.shards import ShardFolder, write_shard
    from kgalign.fusion.spilled import spill
    from kgalign.io.partitioned import InProcess
    from kgalign.io.turtle import write_trig
    from kgalign.model import Link

    data = Path(tempfile.gettempdir()) / f"kgalign-large-{args.triples}-s0"
    large._pair(data, args.triples, 0, False)
    links = [Link(a, b, 1.0) for a, b in read_pairs(data / "gold.tsv")]
    clusters = cluster_links(links)
    mapping = choose_canonical(clusters, links, "left")
    pairs = same_as_pairs(clusters, mapping)
    partitions = [FusePartition(k, args.parts, mapping, pairs) for k in range(args.parts)]
    exchange = InProcess(args.parts, partitions=partitions)
    started = time.perf_counter()
    fusion = fuse_partitioned([("left", [(data / "left.nt", "nt")]), ("right", [(data / "right.nt", "nt")])], mapping, clusters, [], exchange, 4 << 20, 8)
    assert fusion is not None and fusion.rows is not None
    fusion.rows.close()  # timed below
    print(f"fused {len(fusion):,} triples in {args.parts} partitions in {time.perf_counter() - started:.1f}s", file=sys.stderr, flush=True)
    states = [{"rows": len(part.rendered), **_counts(part)} for part in partitions]
    run = URIRef("urn:kgalign:run/bench")

    single: list[float] = []
    shards_total: list[float] = []
    shards_part: list[float] = []
    sizes: dict[str, int] = {}
    work = Path(tempfile.mkdtemp(prefix="kgalign-bench-shards-"))
    for _ in range(args.repeat):
        out = work / "single"
        out.mkdir(exist_ok=True)
        t0 = time.perf_counter()
        rows = spill(exchange, states, 8)
        write_fused(fusion, out / "fused.ttl", rows)
        write_dataset(provenance_dataset(fusion, run, "left", "right", rows), out / "provenance.trig")
        rows.close()
        single.append(time.perf_counter() - t0)
        sizes["single"] = sum(p.stat().st_size for p in out.iterdir())

        folder = ShardFolder(work, args.parts)
        t0 = time.perf_counter()
        each = []
        for k, part in enumerate(partitions):
            t1 = time.perf_counter()
            write_shard(part.rendered, folder.path, k)
            each.append(time.perf_counter() - t1)
        default, dropped = provenance_header(fusion, run, "left", "right")
        with open(folder.path / "provenance" / "run.trig", "w", encoding="utf-8") as handle:
            write_trig(handle, default, {DROPPED_GRAPH: dropped})
        shards_total.append(time.perf_counter() - t0)
        shards_part.append(max(each))
        sizes["shards"] = sum(p.stat().st_size for d in ("fused", "provenance") for p in (folder.path / d).iterdir())
        fused_text = (out / "fused.ttl").read_text(encoding="utf-8")
        shard_text = "".join(p.read_text(encoding="utf-8") for p in sorted((folder.path / "fused").iterdir()))
        same = _blocks(fused_text) == _blocks(shard_text)
        folder.close()
    print(f"`python -m bench.shards --triples {args.triples} --parts {args.parts} --repeat {args.repeat}` on {os.cpu_count()} CPUs, {len(fusion):,} fused triples:\n")
    print(f"| way | seconds (median of {args.repeat}) | MB written |")
    print("|---|---:|---:|")
    print(f"| single files: spill, merge, write fused.ttl + provenance.trig (the driver) | {statistics.median(single):.1f} | {sizes['single'] / 1e6:,.0f} |")
    print(f"| shards, every partition in turn (one process) | {statistics.median(shards_total):.1f} | {sizes['shards'] / 1e6:,.0f} |")
    print(f"| shards, the slowest partition (the time side by side) | {statistics.median(shards_part):.1f} | |")
    print(f"\nsingle / shards side by side: {statistics.median(single) / statistics.median(shards_part):.2f}x; shards concatenated hold fused.ttl's subject blocks: {same}")
    return 0


def _counts(part) -> dict[str, int]:
    """A partition's rows by source, as its ``finish`` counts them."""
    from kgalign.fusion.export import SOURCE_BITS

    return {source: int(((part.rendered.sources & bit) != 0).sum()) for source, bit in SOURCE_BITS.items()}


def _blocks(text: str) -> list[str]:
    return sorted(block for block in text.split(" .\n") if block.strip())


if __name__ == "__main__":
    sys.exit(main())
