"""The 1:1 assignment of the whole problem against the same solved per connected component.

    python -m bench.resolve_components [--sources 392135] [--targets 751880] [--seed 0] [--ray] [--no-whole]

A problem shaped like the 4M-triple synthetic pair's (bench/large.py; its resolve stage
took 248 s, bench/results/ray-engine-4m-lean.md): every source has one to three
eligible candidates (those within the assignment's window of its best), mostly targets
near its own counterpart, a fifth of them anywhere, with distinct random weights (so
the optimum is unique and both must find it). Prints the time of each way, the
component sizes and whether the matchings are equal; the whole problem is solved as
kgalign solved it before (scipy's sparse solver over all sources at once, a dummy
target per source). With ``--ray``, the components that need the solver are also solved
on the actors of a local Ray instance (one per CPU, started before the clock, as a run's
are), as ``--engine ray`` solves them past ``SHIP_FROM_EDGES`` edges
(:class:`kgalign.runtime.ray_engine.RayComponentSolver`), here whatever their size.
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
    parser.add_argument("--ray", action="store_true", help="Also solve the components on the actors of a local Ray instance.")
    parser.add_argument("--no-whole", action="store_true", help="Skip the whole problem solved at once (minutes at the default size).")
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
    if args.ray:
        on_actors, actors, ray_s = _on_ray(rows, cols, weights, n, m)
        print(f"by component, solved on {actors} ray actors: {ray_s:.1f} s ({split_s / ray_s:.2f}x the speed in one process)")
        print(f"same matching as in one process: {bool(np.array_equal(on_actors, by_component))}")
    if args.no_whole:
        return 0
    started = time.perf_counter()
    at_once = whole(rows, cols, weights, n, m)
    whole_s = time.perf_counter() - started
    print(f"whole problem: {whole_s:.1f} s ({whole_s / split_s:.1f}x the time by component)")
    print(f"same matching: {bool(np.array_equal(by_component, at_once))} ({int((by_component >= 0).sum()):,} sources matched)")
    return 0


def _on_ray(rows: np.ndarray, cols: np.ndarray, weights: np.ndarray, n: int, m: int) -> tuple[np.ndarray, int, float]:
    """The matching by component with :class:`RayComponentSolver`, its actors and seconds
    (every group shipped, whatever their size: SHIP_FROM_EDGES is set to 0)."""
    import kgalign.resolution.resolve as resolve
    from kgalign.config import AlignConfig
    from kgalign.resolution.resolve import component_solver, matching_by_component
    from kgalign.runtime.ray_engine import RayComponentSolver, WorkerPool, ray_cluster

    config = AlignConfig()
    with ray_cluster(config.ray) as cluster:
        pool = WorkerPool(cluster, config)
        try:
            cluster["ray"].get([actor.solve_components.remote([]) for actor in pool.actors])  # started, as in a run
            shipped_from, resolve.SHIP_FROM_EDGES = resolve.SHIP_FROM_EDGES, 0
            started = time.perf_counter()
            try:
                with component_solver(RayComponentSolver(pool)):
                    matched = matching_by_component(rows, cols, weights, n, m)
            finally:
                resolve.SHIP_FROM_EDGES = shipped_from
            return matched, pool.size, time.perf_counter() - started
        finally:
            pool.close()


if __name__ == "__main__":
    raise SystemExit(main())
