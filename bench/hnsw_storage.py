"""The dense search's HNSW graph with float32 or float16 targets: recall, time, memory.

    python -m bench.hnsw_storage [--data ../shared/data] [--work DIR] [--dataset dbp15k] [--k 30] [--out bench/results]

Past ``hnsw_threshold`` targets kgalign searches the dense vectors with an HNSW graph
(kgalign/retrieval/retrieve.py, ``dense_topk``), which only picks each source's pool;
the pool's pairs are then scored with the float32 vectors. This measures what keeping
the graph's copy of the targets as float16 changes: the real MiniLM vectors of one
dataset of bench/table.py (every entity's text, as the full retrieval embeds it; the
vector cache is used), the best ``k`` of every source by an exact search, by a float32
graph and by a float16 graph (kgalign's ``hnsw_graph``, as ``dense_topk`` builds it). Reported:
recall at ``k`` against the exact search, also of float16 graphs of 2 and 4 slices of the
targets whose best are merged (``--engine ray``'s dense search, one slice an actor), the share of sources whose best target is
the exact one's, the seconds to build and search, and the bytes the graph holds per
target. Writes OUT/hnsw-storage.{md,json}.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench import table
from kgalign.retrieval.retrieve import hnsw_graph, merge_topk

ROOT = Path(__file__).resolve().parent.parent


def measure(left: np.ndarray, right: np.ndarray, k: int) -> list[dict[str, Any]]:
    import faiss

    exact = faiss.IndexFlatIP(right.shape[1])
    exact.add(right)
    _, truth = exact.search(left, k)
    rows = []
    for kind, slices in (("float32", 1), ("float16", 1), ("float16", 2), ("float16", 4)):
        # One graph a slice of the targets, the slices' best merged (--engine ray's dense search).
        cuts = np.linspace(0, right.shape[0], slices + 1).round().astype(np.int64).tolist()
        graphs = [hnsw_graph(right.shape[1], k, float16=kind == "float16") for _ in range(slices)]
        started = time.perf_counter()
        for index, lo, hi in zip(graphs, cuts, cuts[1:]):
            index.add(right[lo:hi])
        built = time.perf_counter() - started
        started = time.perf_counter()
        found = [index.search(left, k) for index in graphs]
        _, ids = merge_topk(np.hstack([s for s, _ in found]), np.hstack([np.where(i >= 0, i + lo, -1) for (_, i), lo in zip(found, cuts)]), k)
        searched = time.perf_counter() - started
        stored = sum(faiss.serialize_index(index).nbytes for index in graphs)
        rows.append(
            {
                "storage": kind,
                "slices": slices,
                "recall_at_k": round(float(np.mean([len(set(a) & set(b)) / k for a, b in zip(ids.tolist(), truth.tolist())])), 4),
                "same_best": round(float(np.mean(ids[:, 0] == truth[:, 0])), 4),
                "build_s": round(built, 2),
                "search_s": round(searched, 2),
                "bytes_per_target": round(stored / right.shape[0]),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="Folder of the public benchmarks (default: ../shared/data).")
    parser.add_argument("--work", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "kgalign-hnsw-bench", help="Working folder (converted data).")
    parser.add_argument("--dataset", default="dbp15k", help="A dataset of bench/table.py (default: dbp15k).")
    parser.add_argument("--k", type=int, default=30, help="Best targets kept per source (default: 30, kgalign's pool).")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="Where hnsw-storage.md and .json go.")
    args = parser.parse_args(argv)

    from kgalign.config import AlignConfig
    from kgalign.io.entities import load_entities
    from kgalign.retrieval.embed import configured_embedder, encode_sides
    from kgalign.selection.predicates import build_profiles, configured_selection

    dataset = {d.key: d for d in table.DATASETS}[args.dataset]
    inputs = dataset.prepare(args.data, args.work)
    config = AlignConfig(device="cpu")
    texts = []
    for side, path in (("left", inputs.left), ("right", inputs.right)):
        _, entities = load_entities(path, side)
        texts.append([p.text(False) for p in build_profiles(entities, configured_selection(entities, config))])
    left, right = encode_sides(configured_embedder(config), texts[0], texts[1])
    rows = measure(np.ascontiguousarray(left, dtype=np.float32), np.ascontiguousarray(right, dtype=np.float32), args.k)
    lines = [
        f"`python -m bench.hnsw_storage --dataset {args.dataset} --k {args.k}`: {dataset.title}, {left.shape[0]:,} sources against "
        f"{right.shape[0]:,} targets, {right.shape[1]} dimensions",
        "",
        f"| graph's targets | graphs (slices of the targets) | recall@{args.k} against exact | same best as exact | build s | search s | bytes a target |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['storage']} | {r['slices']} | {r['recall_at_k']:.4f} | {r['same_best']:.4f} | {r['build_s']:.2f} | {r['search_s']:.2f} | {r['bytes_per_target']:,} |" for r in rows
    ]
    table.publish(args.out, "hnsw-storage", "\n".join(lines), {"dataset": args.dataset, "sources": left.shape[0], "targets": right.shape[0], "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
