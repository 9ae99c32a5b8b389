"""Benchmark the lexical candidate search alone on the large synthetic pairs: time and recall.

    python -m bench.lexical_search [--triples 1000000,2000000] [--bounds none,2000,1000] [--out bench/results]

For each size of bench/make_large_pair.py's pair (generated unless present, as
bench/large.py does), the texts a run embeds and searches are built as a run builds them
(load, select; without the neighbours' names), their TF-IDF rows fitted on both sides,
then every source is searched against every target for its best ``pool`` (30, the
cascade's first pass), in this process, on this machine's cores:

- ``dense``: every block's scores laid out over every target and partitioned (the
  search before kgalign 0.x searched this way);
- ``sparse``: only each row's positive scores partitioned (the same result, checked);
- ``sparse, bound N``: as sparse, with the features more than N targets share left out
  of the search too (``COMMON_FEATURE_TARGETS``), which changes the result.

For each: seconds, the scores searched per source (the product's non-zeros), and the
share of gold pairs whose target is among the source's best ``pool`` and first (recall
at pool and at 1 on the lexical channel alone). Prints the table and writes
OUT/lexical-search.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench import large, table

ROOT = Path(__file__).resolve().parent.parent


def texts_of(files: dict[str, Path]) -> tuple[list[list[str]], list[list[str]]]:
    """Each side's entity IRIs and texts, as a run builds them (without neighbours)."""
    from kgalign.config import AlignConfig
    from kgalign.io.entities import load_entities
    from kgalign.selection.predicates import build_profiles, configured_selection

    iris, texts = [], []
    for side in ("left", "right"):
        _, entity_table = load_entities(files[side], side)
        profiles = build_profiles(entity_table, configured_selection(entity_table, AlignConfig()))
        iris.append([p.iri for p in profiles])
        texts.append([p.text(False) for p in profiles])
    return iris, texts


def search(left: Any, right: Any, pool: int, variant: str, bound: int | None) -> dict[str, Any]:
    from kgalign.retrieval import retrieve

    saved = retrieve.SPARSE_TOPK_BELOW, retrieve.COMMON_FEATURE_TARGETS
    retrieve.SPARSE_TOPK_BELOW = 0.0 if variant == "dense" else saved[0]
    retrieve.COMMON_FEATURE_TARGETS = bound
    try:
        searched = retrieve.searched_targets(right, retrieve.search_keep(right))
        sample = left[: min(2000, left.shape[0])] @ searched
        started = time.perf_counter()
        scores, ids = retrieve.lexical_topk(left, right, pool, 1024)
        seconds = time.perf_counter() - started
    finally:
        retrieve.SPARSE_TOPK_BELOW, retrieve.COMMON_FEATURE_TARGETS = saved
    return {"seconds": round(seconds, 1), "scores_per_source": round(sample.nnz / max(1, sample.shape[0])), "ids": ids}


def recall(ids: np.ndarray, left_iris: list[str], right_iris: list[str], gold: list[tuple[str, str]]) -> tuple[float, float]:
    row = {iri: i for i, iri in enumerate(left_iris)}
    col = {iri: j for j, iri in enumerate(right_iris)}
    pairs = [(row[a], col[b]) for a, b in gold if a in row and b in col]
    at_pool = sum(1 for i, j in pairs if j in ids[i])
    at_one = sum(1 for i, j in pairs if ids[i, 0] == j)
    return round(at_pool / len(pairs), 4), round(at_one / len(pairs), 4)


def bench_size(triples: int, bounds: list[int | None], pool: int) -> list[dict[str, Any]]:
    from kgalign.evaluation.metrics import read_pairs
    from kgalign.retrieval.retrieve import lexical_vectors

    files = large._pair(Path(tempfile.gettempdir()) / f"kgalign-large-{triples}-s0", triples, 0, False)
    started = time.perf_counter()
    (left_iris, right_iris), (left_texts, right_texts) = texts_of(files)
    left, right = lexical_vectors(left_texts, right_texts)
    print(f"{triples:,} triples: {len(left_iris):,} sources, {len(right_iris):,} targets, texts and TF-IDF in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    gold = read_pairs(files["gold"])
    rows, reference = [], None
    for variant, bound in [("dense", None), *[("sparse", b) for b in bounds]]:
        found = search(left, right, pool, variant, bound)
        ids = found.pop("ids")
        if bound is None:
            if reference is None:
                reference = ids
            found["same_as_dense"] = bool(np.array_equal(ids, reference))
        found["recall_at_pool"], found["recall_at_1"] = recall(ids, left_iris, right_iris, gold)
        rows.append({"triples": triples, "sources": len(left_iris), "targets": len(right_iris), "variant": variant, "bound": bound, **found})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--triples", default="1000000,2000000", help="Sizes of the synthetic pair, triples per side (comma-separated).")
    parser.add_argument("--bounds", default="none,2000,1000", help="COMMON_FEATURE_TARGETS values of the sparse search (none: no bound).")
    parser.add_argument("--pool", type=int, default=30, help="Candidates kept per source (default: 30, the cascade's first pass).")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="Where lexical-search.md and .json go.")
    args = parser.parse_args(argv)
    bounds = [None if b == "none" else int(b) for b in args.bounds.split(",") if b]
    rows = [row for n in args.triples.split(",") if n for row in bench_size(int(n), bounds, args.pool)]
    lines = [
        f"`python -m bench.lexical_search --triples {args.triples} --bounds {args.bounds} --pool {args.pool}`",
        "",
        "| triples a side | sources x targets | search | seconds | scores per source | recall at pool | recall at 1 | same as dense |",
        "|---:|---|---|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        name = row["variant"] + ("" if row["bound"] is None else f", bound {row['bound']:,}")
        same = {True: "yes", False: "no"}.get(row.get("same_as_dense"), "")
        lines.append(
            f"| {row['triples']:,} | {row['sources']:,} x {row['targets']:,} | {name} | {row['seconds']:.1f} | {row['scores_per_source']:,} "
            f"| {row['recall_at_pool']:.4f} | {row['recall_at_1']:.4f} | {same} |"
        )
    table.publish(args.out, "lexical-search", "\n".join(lines), rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
