"""Benchmark the entity tables kept in a file (``--engine ray``'s driver) against tables in memory.

    python -m bench.entity_file [--triples 1000000] [--side right] [--repeat 3]

Loads one side of the synthetic pair of bench/make_large_pair.py (generated into
$TMPDIR/kgalign-large-<triples>-s0 unless there) in one process, puts its entities in an
:class:`kgalign.io.entity_file.EntityFile` and times, the best of ``--repeat``, on the
dict and on the file, what a lean run's driver does with a table:

- **one pass**: every entity read once;
- **ranking**: :func:`kgalign.selection.predicates.predicate_stats`;
- **profiles**: :func:`kgalign.selection.predicates.build_profiles` with that ranking
  (the neighbours' labels are read by IRI);
- **hashes**: each entity's content hash (:func:`kgalign.incremental.state.entity_hash`).

Prints the seconds of each, the time to write the file, and whether both gave the same
ranking, profiles and hashes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import large
from bench.timing import best_of


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--triples", type=int, default=1_000_000, help="Triples per side (about).")
    parser.add_argument("--side", choices=("left", "right"), default="right", help="Which side's table (default right, the larger).")
    parser.add_argument("--repeat", type=int, default=3, help="Times each is timed; the best is shown (default 3).")
    args = parser.parse_args(argv)

    from kgalign.incremental.state import entity_hash
    from kgalign.io.entities import load_entities
    from kgalign.io.entity_file import entity_map
    from kgalign.model import EntityTable
    from kgalign.selection.predicates import build_profiles, choose_predicates, predicate_stats

    pair = large._pair(Path(tempfile.gettempdir()) / f"kgalign-large-{args.triples}-s0", args.triples, 0, False)
    _, table = load_entities(pair[args.side], args.side, None, None)
    start = time.perf_counter()
    stored = EntityTable(table.name, entity_map(table.entities, spill=True), table.triple_count)
    written = time.perf_counter() - start
    print(f"{len(table):,} entities of the {args.side} side; the file written in {written:.2f} s")
    print("| step | in memory s | in a file s |\n|---|---:|---:|")
    results: dict[str, list[Any]] = {}
    selection = choose_predicates(predicate_stats(table))
    steps: list[tuple[str, Callable[[EntityTable], Any]]] = [
        ("one pass", lambda t: sum(1 for _ in t.entities.values())),
        ("ranking", predicate_stats),
        ("profiles", lambda t: build_profiles(t, selection)),
        ("hashes", lambda t: [entity_hash(entity) for entity in t.entities.values()]),
    ]
    for name, step in steps:
        timed = [best_of(args.repeat, lambda t=t, step=step: step(t)) for t in (table, stored)]
        results[name] = [value for _, value in timed]
        print(f"| {name} | {timed[0][0]:.2f} | {timed[1][0]:.2f} |")
    same = all(a == b for a, b in results.values())
    print(f"same ranking, profiles and hashes: {'yes' if same else 'NO'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
