"""The 1:1 assignment of the whole problem against the same solved per connected component.

    python -m bench.resolve_components [--sources 392135] [--targets 751880] [--seed 0]

A problem shaped like the 4M-triple synthetic pair's (bench/large.py; its resolve stage
took 248 s, bench/results/ray-engine-4m-lean.md): every source has one to three
eligible candidates (those within the assignment's window of its best), mostly targets
near its own counterpart, a fifth of them anywhere, with distinct random weights (so
the optimum is unique and both must find it). Prints the time of each way, the
component sizes and whether the matchings are equal; the whole problem is solved as
kgalign solved it before (scipy's sparse solver over all sources at once, a dummy
target per source).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import numpy as np


def problem(n_sources: int, n_targets: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    per = rng.integers(1, 4, size=n_sources)
    rows = np.repeat(np.arange(n_sources), per)
    home = (rows * (n_targets / n_sources)).astype(np.int64)
    near = home + rng.integers(-2, 3, size=len(rows))
    anywhere = rng.integers(0, n_targets, size=len(rows))
    cols = np.clip(np.where(rng.random(len(rows)) < 0.2, anywhere, near), 0, n_targets - 1)
    keys = np.unique(rows * n_targets + cols)
    rows, cols = keys // n_targets, keys % n_targets
    return rows, cols, rng.random(len(rows)) + 0.01


def whole(rows: np.ndarray, cols: np.ndarray, weights: np.ndarray, n_sources: int, n_targets: int) -> np.ndarray:
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import min_weight_full_bipartite_matching

    all_rows = np.concatenate([rows, np.arange(n_sources)])
    all_cols = np.concatenate([cols, n_targets + np.arange(n_sources)])
    values = np.concatenate([weights, np.zeros(n_sources)])
    cost = csr_matrix((values.max() + 1.0 - values, (all_rows, all_cols)), shape=(n_sources, n_targets + n_sources))
    _, chosen = min_weight_full_bipartite_matching(cost)
    return np.where(chosen < n_targets, chosen, -1)


def main(argv: Sequence[str] | None = None) -> int:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    from kgalign.resolution.resolve import matching_by_component

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=392_135, help="Sources (left entities with candidates).")
    parser.add_argument("--targets", type=int, default=751_880, help="Targets (right entities).")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the problem.")
    args = parser.parse_args(argv)
    rows, cols, weights = problem(args.sources, args.targets, args.seed)
    n, m = args.sources, args.targets
    graph = coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, n + cols)), shape=(n + m,) * 2).tocsr()
    _, labels = connected_components(graph, directed=False)
    sizes = np.bincount(labels[rows])
    sizes = sizes[sizes > 0]
    print(f"{n:,} sources, {m:,} targets, {len(rows):,} eligible pairs; {len(sizes):,} components, the largest {sizes.max():,} pairs")
    started = time.perf_counter()
    by_component = matching_by_component(rows, cols, weights, n, m)
    split_s = time.perf_counter() - started
    print(f"by component: {split_s:.1f} s")
    started = time.perf_counter()
    at_once = whole(rows, cols, weights, n, m)
    whole_s = time.perf_counter() - started
    print(f"whole problem: {whole_s:.1f} s ({whole_s / split_s:.1f}x the time by component)")
    print(f"same matching: {bool(np.array_equal(by_component, at_once))} ({int((by_component >= 0).sum()):,} sources matched)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
