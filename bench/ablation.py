"""Retrieval variants on a development split of a benchmark's *train* links: the place
where kgalign's retrieval defaults are chosen, so that no test label ever decides one.

    python -m bench.ablation [--dataset dbp15k|srprs|abt-buy] [--variants default,lexical,...] [--data ../shared/data]

Abt-Buy has no split: its development half is every other pair of the converted gold.tsv
(the 1st, 3rd, ...); links and rankings are scored on the sources of those pairs only, and
the other half is never read. A default chosen there is reported on all pairs in the
results table, so its Abt-Buy figure is partly a development figure (README says so).

The dataset's seed (train) links are split in two by their order in the file: the first
``--dev-seed-share`` become the seed links of the run, the rest its gold. Sources and
targets are restricted to that gold (the closed-world protocol of the DBP15K papers,
as `kgalign run --only-gold-entities`); the test split is never read. Each variant is
one `align` call with `--judge none`; the script prints one markdown table (Hits@1,
Hits@10, MRR, P, R, F1, seconds per stage) and writes it with the raw figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from kgalign.config import AlignConfig, RetrievalConfig
from kgalign.evaluation.metrics import read_pairs, score_alignment
from kgalign.pipeline import align

ROOT = Path(__file__).resolve().parent.parent

log = logging.getLogger("bench.ablation")

FOLDERS = {"dbp15k": "seu_dbp_fr_en", "srprs": "seu_srprs_fr_en", "abt-buy": "leipzig_abt-buy"}

# name -> RetrievalConfig fields (and AlignConfig fields under "align")
VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    # The default with the run told that every source has a counterpart (as
    # --only-gold-entities tells it): contested sources with a mutual best open candidate linked.
    "closed-world": {"align": {"vote": {"closed_world": True}}},
    "no-neighbour-search": {"neighbour_search": False},
    "closed-world-no-neighbour-search": {"neighbour_search": False, "align": {"vote": {"closed_world": True}}},
    "full": {"mode": "full"},
    "full-dense-only": {"mode": "full", "dense_weight": 1.0},
    "full-lexical-only": {"mode": "full", "dense_weight": 0.0},
    "full-lexical-structure": {"mode": "full", "structure_vectors": "lexical"},
    "full-lexical-everything": {"mode": "full", "dense_weight": 0.0, "structure_vectors": "lexical"},
    "full-no-structure": {"mode": "full", "structure_weight": 0.0},
    "full-greedy": {"mode": "full", "align": {"resolve": "greedy"}},
    "cascade-settle-0.1": {"mode": "cascade", "settle_margin": 0.1},
    "cascade-settle-0.2": {"mode": "cascade", "settle_margin": 0.2},
    "cascade-no-guard": {"mode": "cascade", "taken_window": -1.0},
    "cascade-guard-0.05": {"mode": "cascade", "taken_window": 0.05},
    "cascade-guard-0.1": {"mode": "cascade", "taken_window": 0.1},
    "cascade-no-spare": {"mode": "cascade", "spare_margin": -1.0},
    "cascade-spare-0.05": {"mode": "cascade", "spare_margin": 0.05},
    "cascade-spare-0.1": {"mode": "cascade", "spare_margin": 0.1},
    "cascade-spare-0.2": {"mode": "cascade", "spare_margin": 0.2},
    "cascade-no-spare-codes": {"mode": "cascade", "spare_codes": False},
    "cascade-embed-pool-all": {"mode": "cascade", "embed_pool": 0},
    "cascade-embed-pool-20": {"mode": "cascade", "embed_pool": 20},
    "cascade-embed-pool-50": {"mode": "cascade", "embed_pool": 50},
    "cascade-embed-pool-100": {"mode": "cascade", "embed_pool": 100},
}


def dev_split(train: list[tuple[str, str]], seed_share: float) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    cut = int(len(train) * seed_share)
    return train[:cut], train[cut:]


def open_world(gold: list[tuple[str, str]], share: float) -> tuple[list[tuple[str, str]], list[str], list[str]]:
    """Both sides get entities without a counterpart: of every 1/share gold pairs, one
    loses its target (its source stays, unmatched) and another loses its source (its
    target stays, a distractor), as in two graphs that overlap only in part.

    Returns the gold pairs that remain, the sources and the targets that take part.
    """
    if share <= 0:
        return gold, sorted({a for a, _ in gold}), sorted({b for _, b in gold})
    step = max(3, round(1 / share))
    no_target = {pair for k, pair in enumerate(gold) if k % step == step - 1}
    no_source = {pair for k, pair in enumerate(gold) if k % step == 0}
    kept = [pair for pair in gold if pair not in no_target and pair not in no_source]
    sources = sorted({a for a, b in gold if (a, b) not in no_source})
    targets = sorted({b for a, b in gold if (a, b) not in no_target})
    return kept, sources, targets


def run_variant(
    name: str,
    left: Path,
    right: Path,
    seeds: list,
    gold: list,
    unmatched_share: float = 0.0,
    all_targets: bool = False,
    whole_graphs: bool = False,
) -> dict[str, Any]:
    """One variant; ``whole_graphs``: every entity takes part (Abt-Buy's development half)."""
    spec = dict(VARIANTS[name])
    align_fields = spec.pop("align", {})
    gold, sources, targets = open_world(gold, unmatched_share)
    config = AlignConfig(
        judge="none",
        retrieval=RetrievalConfig(**spec),
        seed_links=list(seeds),
        only_left=[] if whole_graphs else sources,
        # Every right entity but the seeds' (the test split's too, unlabelled): a few
        # thousand sources facing a graph several times their number.
        only_right=[] if all_targets or whole_graphs else targets,
    ).replace(**align_fields)
    started = time.perf_counter()
    result = align(left, right, config)
    seconds = time.perf_counter() - started
    if whole_graphs:
        # Only the development half's sources are scored: a link of another source is
        # neither right nor wrong here.
        dev_sources = {a for a, _ in gold}
        metrics = score_alignment(((link.left, link.right) for link in result.links if link.left in dev_sources), result.candidates, gold)
    else:
        metrics = result.evaluate(gold)
    return {
        "variant": name,
        "config": spec | align_fields,
        "metrics": {k: metrics[k] for k in ("hits@1", "hits@10", "mrr", "precision", "recall", "f1")},
        "stages": {stage: round(info["seconds"], 2) for stage, info in result.timer.stages.items()},
        "seconds": round(seconds, 1),
        "embedded_entities": result.counts["embedded_entities"],
        "settled_lexically": result.counts["settled_lexically"],
    }


def table(rows: list[dict[str, Any]]) -> str:
    head = "| variant | Hits@1 | Hits@10 | MRR | P | R | F1 | embedded | embed s | retrieve s | total s |"
    lines = [head, "|" + "|".join(["---"] * (head.count("|") - 1)) + "|"]
    for row in rows:
        m, st = row["metrics"], row["stages"]
        lines.append(
            f"| {row['variant']} | {m['hits@1']:.4f} | {m['hits@10']:.4f} | {m['mrr']:.4f} | {m['precision']:.4f} | "
            f"{m['recall']:.4f} | {m['f1']:.4f} | {row['embedded_entities']} | {st.get('embed', 0):.1f} | {st.get('retrieve', 0):.1f} | {row['seconds']:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=sorted(FOLDERS), default="dbp15k", help="Dataset whose train split the variants are compared on (default dbp15k).")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="Folder of the public benchmark data (default ../shared/data).")
    parser.add_argument("--work", type=Path, default=Path("/tmp/kgalign-ablation"), help="Folder for the converted graphs.")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"Comma-separated, from {', '.join(VARIANTS)}.")
    parser.add_argument("--dev-seed-share", type=float, default=0.3, help="Share of the train links used as seeds; the rest is the gold.")
    parser.add_argument("--open-world", type=float, default=0.0, help="Share of the gold pairs whose target is taken out, so that their sources have no counterpart (0: closed world).")
    parser.add_argument(
        "--all-targets",
        action="store_true",
        help="Targets are every right entity but the seeds' (the test split's entities are distractors; their links are never read), not only the gold's: a small source set facing a large graph.",
    )
    parser.add_argument("--tag", default="", help="Prefix of the result files' names (e.g. 'spare-').")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="Folder for the markdown and JSON results (default bench/results).")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from kgalign.io.importers import convert_cached

    folder = args.work / args.dataset
    source = args.data / FOLDERS[args.dataset]
    tables = args.dataset == "abt-buy"
    if tables:
        conversion = convert_cached("tables", [source / "Abt.csv", source / "Buy.csv", source / "abt_buy_perfectMapping.csv"], folder)
        seeds, gold = [], read_pairs(folder / "gold.tsv")[0::2]
        print(f"{args.dataset}: development half of the mapping: {len(gold)} gold pairs, every entity taking part", file=sys.stderr)
    else:
        conversion = convert_cached("dbp15k", [source], folder)
        seeds, gold = dev_split(read_pairs(folder / "gold_train.tsv"), args.dev_seed_share)
        print(f"{args.dataset}: development split of the train links: {len(seeds)} seeds, {len(gold)} gold pairs", file=sys.stderr)
    print(f"{folder}: {'converted earlier' if conversion.cached else 'converted'}: {conversion.summary}", file=sys.stderr)
    rows = []
    for name in args.variants.split(","):
        rows.append(run_variant(name, folder / "left.ttl", folder / "right.ttl", seeds, gold, args.open_world, args.all_targets, tables))
        print(f"  {name}: {rows[-1]['metrics']} in {rows[-1]['seconds']} s", file=sys.stderr, flush=True)
    world = f", open world: one source and one target in every {max(3, round(1 / args.open_world))} without a counterpart" if args.open_world > 0 else ""
    if args.all_targets:
        world += ", targets: every right entity but the seeds'"
    split = "every other pair of gold.tsv, scored on their sources" if tables else "development split of the train links"
    text = f"Retrieval variants on {args.dataset}, {split} ({len(seeds)} seeds, {len(gold)} gold{world}):\n\n" + table(rows)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / (f"ablation-{args.tag}{args.dataset}" + ("-open" if args.open_world > 0 else "") + ("-all-targets" if args.all_targets else ""))
    stem.with_suffix(".md").write_text(text + "\n", encoding="utf-8")
    stem.with_suffix(".json").write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
