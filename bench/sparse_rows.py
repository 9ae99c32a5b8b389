"""Benchmark the TF-IDF rows kept in files (``--engine ray``'s driver) against rows in memory.

    python -m bench.sparse_rows [--triples 1000000] [--pairs 10] [--repeat 3]

Takes each entity's literals of the synthetic pair of bench/make_large_pair.py (generated
into $TMPDIR/kgalign-large-<triples>-s0 unless there) as its text, and times, the best
of ``--repeat``, in memory and in files
(:mod:`kgalign.retrieval.sparse_file`):

- **build**: :func:`kgalign.retrieval.retrieve.lexical_vectors` of both sides;
- **pair scores**: :func:`kgalign.retrieval.retrieve.sparse_pair_dots` of every source
  with ``--pairs`` targets drawn at random (the pooled pairs' scores read scattered rows);
- **source blocks**: every source read in the lexical search's blocks of rows.

Prints the seconds of each and whether both gave the same rows and scores.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from bench import large
from bench.timing import best_of

_LITERAL = re.compile(r'^(<[^>]*>) <[^>]*> "((?:[^"\\]|\\.)*)"')


def _texts(path: Path) -> list[str]:
    """Each subject's literals, joined (file order of first sight)."""
    by_subject: dict[str, list[str]] = defaultdict(list)
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            match = _LITERAL.match(line)
            if match:
                by_subject[match.group(1)].append(match.group(2))
    return [" ".join(values) for values in by_subject.values()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--triples", type=int, default=1_000_000, help="Triples per side (about).")
    parser.add_argument("--pairs", type=int, default=10, help="Random targets scored for each source (default 10).")
    parser.add_argument("--repeat", type=int, default=3, help="Times each is timed; the best is shown (default 3).")
    args = parser.parse_args(argv)

    from kgalign.retrieval.retrieve import BLOCK_CELLS, lexical_vectors, sparse_pair_dots

    pair = large._pair(Path(tempfile.gettempdir()) / f"kgalign-large-{args.triples}-s0", args.triples, 0, False)
    left, right = _texts(pair["left"]), _texts(pair["right"])
    print(f"{len(left):,} / {len(right):,} texts")
    rng = np.random.default_rng(0)
    rows = np.repeat(np.arange(len(left)), args.pairs)
    cols = rng.integers(0, len(right), size=len(rows))
    step = max(1, BLOCK_CELLS // len(right))
    same = True
    print("| step | in memory s | in files s |\n|---|---:|---:|")
    built = {}
    for spill in (False, True):
        built[spill] = best_of(args.repeat, lambda spill=spill: lexical_vectors(left, right, spill))
    memory, files = built[False][1], built[True][1]
    same &= all(np.array_equal(a[:].data, b.data) and np.array_equal(a[:].indices, b.indices) for a, b in zip(files, memory))
    print(f"| build ({memory[0].nnz + memory[1].nnz:,} cells) | {built[False][0]:.2f} | {built[True][0]:.2f} |")
    scored = {spill: best_of(args.repeat, lambda sides=sides: sparse_pair_dots(*sides, rows, cols)) for spill, sides in ((False, memory), (True, files))}
    same &= np.array_equal(scored[False][1], scored[True][1])
    print(f"| pair scores ({len(rows):,} pairs) | {scored[False][0]:.2f} | {scored[True][0]:.2f} |")

    def blocks(sides: Any) -> int:
        return sum(sides[0][start : start + step].nnz for start in range(0, sides[0].shape[0], step))

    read = {spill: best_of(args.repeat, lambda sides=sides: blocks(sides)) for spill, sides in ((False, memory), (True, files))}
    print(f"| source blocks ({step} rows each) | {read[False][0]:.2f} | {read[True][0]:.2f} |")
    print(f"same rows and scores: {'yes' if same else 'NO'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
