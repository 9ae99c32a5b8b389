"""The dense search past ``hnsw_threshold``: one HNSW graph built on every thread, against
graphs of at most ``hnsw_slice`` targets each built on one thread (side by side).

    python -m bench.hnsw_slices [--cache DIR] [--targets 300000] [--sources 50000] [--slice 250000[,N...]] [--k 38] [--out bench/results]

Reads real MiniLM vectors from kgalign's vector cache (every shard of DIR, default the
user's cache of all-MiniLM-L6-v2; fill it with a run of ``bench.large``), takes
``--targets`` of them as the targets and ``--sources`` others as the sources, and
searches the best ``--k`` of every source (kgalign's pool of 30, plus the 8 it finds more):

- **one graph**: what ``dense_topk`` did before: one float16 HNSW graph of all the
  targets, built on all of FAISS's threads, twice;
- **graphs of a slice**: what it does now (:func:`kgalign.retrieval.retrieve.sliced_search`),
  twice for each ``--slice`` (``hnsw_slice``) given.

Reported for each: seconds to build and search, recall at ``k`` against an exact search,
and how many sources the second build finds other targets for than the first. Writes
OUT/STEM.{md,json}.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench import table
from kgalign.retrieval.retrieve import GRAPH_PART_ROWS, graph_cuts, hnsw_graph, sliced_search

ROOT = Path(__file__).resolve().parent.parent


def cached_vectors(folder: Path, rows: int) -> np.ndarray:
    """The first ``rows`` vectors of the cache's shards in name order, as one float32 array."""
    parts, held = [], 0
    for shard in sorted(folder.glob("*.vectors.npy")):
        vectors = np.load(shard, mmap_mode="r")
        if vectors.ndim != 2:
            continue
        parts.append(np.asarray(vectors[: rows - held], dtype=np.float32))
        held += len(parts[-1])
        if held >= rows:
            break
    if held < rows:
        raise SystemExit(f"{folder} holds {held:,} vectors, fewer than the {rows:,} asked for")
    return np.concatenate(parts)


def one_graph(left: np.ndarray, right: np.ndarray, k: int) -> tuple[np.ndarray, float, float]:
    """The search before: one graph of all the targets, built on every thread (in parts
    of GRAPH_PART_ROWS, as the actors built theirs)."""
    index = hnsw_graph(right.shape[1], k)
    started = time.perf_counter()
    for start in range(0, len(right), GRAPH_PART_ROWS):
        index.add(right[start : start + GRAPH_PART_ROWS])
    built = time.perf_counter() - started
    started = time.perf_counter()
    _, ids = index.search(left, k)
    return ids, built, time.perf_counter() - started


def _commit() -> str:
    import subprocess

    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False)
    return done.stdout.strip() or "an unknown commit"


def recall(ids: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / truth.shape[1] for a, b in zip(ids.tolist(), truth.tolist())]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    default_cache = Path(os.environ.get("KGALIGN_CACHE", Path.home() / ".cache" / "kgalign")) / "vectors"
    parser.add_argument("--cache", type=Path, help=f"A folder of vector cache shards (default: the only model folder under {default_cache}).")
    parser.add_argument("--targets", type=int, default=300_000, help="Targets searched (default 300,000).")
    parser.add_argument("--sources", type=int, default=50_000, help="Sources searched for (default 50,000).")
    parser.add_argument("--slice", default="250000", help="hnsw_slice: targets in a graph at most; several, comma-separated (default 250,000).")
    parser.add_argument("--k", type=int, default=38, help="Best targets found per source (default 38: the pool of 30 and 8 more).")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="Where STEM.md and .json go.")
    parser.add_argument("--stem", default="hnsw-slices", help="Name of the result files (default hnsw-slices).")
    args = parser.parse_args(argv)
    import faiss

    folder = args.cache or next(p for p in sorted(default_cache.iterdir()) if p.is_dir())
    vectors = cached_vectors(folder, args.targets + args.sources)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(vectors))
    right = np.ascontiguousarray(vectors[order[: args.targets]])
    left = np.ascontiguousarray(vectors[order[args.targets :]])
    del vectors
    exact = faiss.IndexFlatIP(right.shape[1])
    exact.add(right)
    truth = exact.search(left, args.k)[1]
    del exact
    rows: list[dict[str, Any]] = []
    runs = []
    for _ in range(2):
        ids, built, searched = one_graph(left, right, args.k)
        runs.append(ids)
        rows.append({"search": f"one graph, {faiss.omp_get_max_threads()} threads", "build_s": built, "search_s": searched, "recall": recall(ids, truth)})
    rows[-1]["other_targets_than_first"] = int((np.sort(runs[0], axis=1) != np.sort(runs[1], axis=1)).any(axis=1).sum())
    slices = [int(value) for value in args.slice.split(",")]
    for slice_targets in slices:
        cuts = graph_cuts(len(right), slice_targets)
        runs = []
        for _ in range(2):
            started = time.perf_counter()
            ids = sliced_search(left, right, args.k, cuts)[1]
            runs.append(ids)
            label = f"{len(cuts) - 1} graph{'s' if len(cuts) > 2 else ''} of at most {slice_targets:,}, one thread each"
            rows.append({"search": label, "build_s": None, "search_s": time.perf_counter() - started, "recall": recall(ids, truth)})
        rows[-1]["other_targets_than_first"] = int((np.sort(runs[0], axis=1) != np.sort(runs[1], axis=1)).any(axis=1).sum())
    lines = [
        f"`python -m bench.hnsw_slices --targets {args.targets} --sources {args.sources} --slice {args.slice} --k {args.k}` at {_commit()}: "
        f"real MiniLM vectors of the vector cache ({folder.name}), {len(left):,} sources against {len(right):,} targets, "
        f"{os.cpu_count()} CPUs",
        "",
        f"| search | build s | build + search s | recall@{args.k} against exact | sources whose targets differ from the first run's |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        build = f"{row['build_s']:.1f}" if row["build_s"] is not None else "(in the next)"
        total = (row["build_s"] or 0.0) + row["search_s"]
        differ = row.get("other_targets_than_first")
        lines.append(f"| {row['search']} | {build} | {total:.1f} | {row['recall']:.4f} | {'' if differ is None else f'{differ:,}'} |")
    text = "\n".join(lines)
    table.publish(args.out, args.stem, text, {"targets": len(right), "sources": len(left), "slices": slices, "k": args.k, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
