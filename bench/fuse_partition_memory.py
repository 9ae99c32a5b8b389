"""The memory of one fusion partition: triples held as numbers against rdflib terms.

    python -m bench.fuse_partition_memory [--triples 4000000] [--parts 2] [--part 0]

Takes the synthetic pair of bench/large.py (generated when missing), the canonical map
of its gold links, and runs partition ``--part`` of ``--parts`` of the fusion by
partitions (kgalign.fusion.partitioned) on it in a fresh process per way: the blocks of
both files routed as ``--engine ray`` routes them, the partition's lines rewritten and
kept, then its rows rendered (``rows()``). Prints each way's peak resident memory
(ru_maxrss of its process, the input's blocks and the interpreter included), its time
and whether the rows are the same. The baseline holds each fused triple as rdflib terms
in a provenance dict and renders it with FusedRows.of, as kgalign's partitions did before 2026-11-25
(the 4M run's two partitions took 2.5 GB each: bench/results/ray-engine-4m-partitioned.md).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kgalign.fusion.export import FusedRows
from kgalign.fusion.fuse import _SOURCES, FusionResult
from kgalign.fusion.partitioned import FusePartition

WAYS = ("terms", "numbers")


class TermPartition(FusePartition):
    """The baseline: each fused triple as rdflib terms, its sources in a dict."""

    def __init__(self, number: int, parts: int, canonical: Any, same_as: Any) -> None:
        from rdflib import BNode

        from kgalign.io.parsers import oxigraph_terms
        from kgalign.io.partitioned import blank_id
        from kgalign.io.triples import known_iri

        super().__init__(number, parts, canonical, same_as)
        self._term_rewrite = {known_iri(member): known_iri(target) for member, target in canonical.items()}
        self._tag = 0
        self._term = oxigraph_terms(lambda label: BNode(blank_id(self._tag, label)))
        self.provenance: dict[Any, frozenset[str]] = {}

    def take(self, lines: bytes, tag: int, fmt: str, side: str) -> None:
        import pyoxigraph as ox

        from kgalign.io.diagnostics import quiet_term_warnings
        from kgalign.io.parsers import oxigraph_format

        self._tag = tag
        term, rewrite, provenance = self._term, self._term_rewrite, self.provenance
        alone, both = _SOURCES[side], _SOURCES["both"]
        with quiet_term_warnings():
            self._keep(ox.parse(lines, format=oxigraph_format(fmt)), term, rewrite, provenance, alone, both)

    @staticmethod
    def _keep(quads: Any, term: Any, rewrite: Any, provenance: Any, alone: Any, both: Any) -> None:
        from rdflib import URIRef

        for quad in quads:
            s, p, o = term(quad.subject), term(quad.predicate), term(quad.object)
            triple = (rewrite.get(s, s), p, rewrite.get(o, o) if type(o) is URIRef else o)
            known = provenance.get(triple)
            provenance[triple] = alone if known is None or known is alone else both

    def finish(self) -> dict[str, int] | str:
        from rdflib.namespace import OWL

        from kgalign.io.triples import known_iri

        for target, member in self._same_as:
            link = (known_iri(target), OWL.sameAs, known_iri(member))
            self.provenance[link] = self.provenance.get(link, frozenset()) | _SOURCES["kgalign"]
        rows = FusedRows.of(FusionResult(canonical={}, clusters=[], provenance=self.provenance))
        assert isinstance(rows, FusedRows)
        self.rendered = rows
        return {"rows": len(rows)}


def _digest(rows: FusedRows) -> str:
    digest = hashlib.sha256()
    for form in rows.forms:
        digest.update(form.encode("utf-8", "surrogatepass") + b"\n")
    digest.update(rows.ranks.tobytes())
    digest.update(rows.sources.tobytes())
    return digest.hexdigest()


def one_way(way: str, folder: Path, parts: int, part: int) -> dict[str, Any]:
    """Partition ``part`` of ``parts`` fusing the pair in ``folder`` (in this process)."""
    from kgalign.evaluation.metrics import read_pairs
    from kgalign.fusion.fuse import choose_canonical, cluster_links, same_as_pairs
    from kgalign.io.partitioned import read_blocks
    from kgalign.model import Link
    from kgalign.runtime.ray_load import BLOCK_BYTES

    links = [Link(a, b, 1.0) for a, b in read_pairs(folder / "gold.tsv")]
    clusters = cluster_links(links)
    mapping = choose_canonical(clusters, links, "left")
    pairs = same_as_pairs(clusters, mapping)
    del links, clusters
    partition = (TermPartition if way == "terms" else FusePartition)(part, parts, mapping, pairs)
    start = time.perf_counter()
    for tag, (side, name) in enumerate((("left", "left.nt"), ("right", "right.nt"))):
        for data in read_blocks(folder / name, "nt", BLOCK_BYTES, {}):
            partition.take(partition.route(data, tag)[part], tag, "nt", side)
    state = partition.finish()
    rows = partition.rendered
    assert isinstance(rows, FusedRows), state
    return {
        "way": way,
        "seconds": time.perf_counter() - start,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rows": len(rows),
        "digest": _digest(rows),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--triples", type=int, default=4_000_000, help="Triples per side of the synthetic pair (bench/large.py).")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the synthetic pair.")
    parser.add_argument("--parts", type=int, default=2, help="Partitions of the fusion (--engine ray: one per CPU).")
    parser.add_argument("--part", type=int, default=0, help="The partition measured.")
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()), help="Where the synthetic pair is kept.")
    parser.add_argument("--way", choices=WAYS, help=argparse.SUPPRESS)  # one way, in a child process
    args = parser.parse_args(argv)
    folder = args.data / f"kgalign-large-{args.triples}-s{args.seed}"
    if args.way:
        print(json.dumps(one_way(args.way, folder, args.parts, args.part)))
        return 0
    from bench.large import _pair

    _pair(folder, args.triples, args.seed, False)
    print(f"synthetic pair {folder}: partition {args.part} of {args.parts}")
    for name in ("left.nt", "right.nt"):  # into the page cache, for both ways alike
        with open(folder / name, "rb") as handle:
            while handle.read(1 << 24):
                pass
    results = []
    for way in WAYS:
        command = [sys.executable, "-m", "bench.fuse_partition_memory", "--triples", str(args.triples), "--seed", str(args.seed)]
        command += ["--parts", str(args.parts), "--part", str(args.part), "--data", str(args.data), "--way", way]
        done = subprocess.run(command, check=True, capture_output=True, text=True)
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print("| way | seconds | peak RSS MB | rows |")
    print("|---|---:|---:|---:|")
    for result in results:
        print(f"| {result['way']} | {result['seconds']:.1f} | {result['peak_mb']:,.0f} | {result['rows']:,} |")
    base, lean = results
    print(f"peak memory {lean['peak_mb'] / base['peak_mb']:.2f}x of the baseline's, time {lean['seconds'] / base['seconds']:.2f}x")
    print("the same rows" if base["digest"] == lean["digest"] else "THE ROWS DIFFER")
    return 0 if base["digest"] == lean["digest"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
