"""Does a run show the judge the same records as its training questions did?

    python -m bench.train_serve_skew OUTDIR [--sample 300] [--out FILE.md]

OUTDIR is a finished `kgalign run` on a graph pair. Training questions for a graph source
(`kgalign finetune --recipe`, kind `graphs` or `dbp15k`) are made from the graphs
prepared without seed links and over every entity (`kgalign.finetune.data.gold_align_config`);
a run prepares them with its own options (`--seed-links`, `--only-gold-entities`, ...).
Both preparations are built here from the run's inputs, and for a seeded sample of the
entities present in both the script compares what the judge would read: the record as
rendered in a pairwise question (attributes chosen, values, neighbours), and, for the
run's judged sources, whether their candidates are the same.

Prints the shares that differ and a few examples, and writes them to --out if given.
Nothing is trained or asked; no label is read but the run's own seed links.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from kgalign.config import AlignConfig
from kgalign.finetune.data import gold_align_config
from kgalign.judging.prompt import MAX_SOURCE_TOKENS, render_entity
from kgalign.model import EntityProfile
from kgalign.pipeline import prepare


def _fields(profile: EntityProfile) -> Counter[str]:
    return Counter(key for key, _ in profile.attributes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("outdir", type=Path, help="a finished kgalign run (its run.json names the inputs and options)")
    parser.add_argument("--sample", type=int, default=300, help="entities compared on each side (seeded)")
    parser.add_argument("--examples", type=int, default=3, help="differing records shown per side")
    parser.add_argument("--out", type=Path, help="also write the report here (markdown)")
    args = parser.parse_args()
    info = json.loads((args.outdir / "run.json").read_text(encoding="utf-8"))
    run_config = AlignConfig.from_dict({**info["config"], "judge": "none", "adapt": {**info["config"].get("adapt", {}), "enabled": False}}, str(args.outdir / "run.json"))
    train_config = gold_align_config(run_config.device, run_config.left_format, run_config.id_column, run_config.attributes, run_config.retrieval.k, run_config.seed)
    left, right = info["left"], info["right"]
    started = time.perf_counter()
    served = prepare(left, right, run_config)
    trained = prepare(left, right, train_config)
    lines = [
        f"`python -m bench.train_serve_skew {args.outdir}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} ({time.perf_counter() - started:.0f} s)",
        "",
        f"Run options that differ from training's preparation: seed links {bool(run_config.seed_links)}, "
        f"only gold entities {run_config.only_gold_entities}, classes {list(run_config.classes) or 'all'}.",
        "",
        "| side | entities (run / training) | compared | record text differs | fields differ | neighbours differ |",
        "|---|---|---:|---:|---:|---:|",
    ]
    examples: list[str] = []
    rng = random.Random(0)
    for side, run_profiles, train_profiles in (("left", served.left_profiles, trained.left_profiles), ("right", served.right_profiles, trained.right_profiles)):
        common = sorted(set(run_profiles) & set(train_profiles))
        sample = rng.sample(common, min(args.sample, len(common)))
        text = fields = neighbours = 0
        shown = 0
        for iri in sample:
            a, b = run_profiles[iri], train_profiles[iri]
            ra = render_entity(a, False, True, MAX_SOURCE_TOKENS)
            rb = render_entity(b, False, True, MAX_SOURCE_TOKENS)
            text += ra != rb
            fields += _fields(a) != _fields(b)
            neighbours += tuple(a.neighbours) != tuple(b.neighbours)
            if ra != rb and shown < args.examples:
                shown += 1
                examples += [f"- {side} `{iri}`", f"  - run:      `{ra}`", f"  - training: `{rb}`"]
        n = max(len(sample), 1)
        lines.append(
            f"| {side} | {len(run_profiles):,} / {len(train_profiles):,} | {len(sample)} | {text / n:.1%} | {fields / n:.1%} | {neighbours / n:.1%} |"
        )
    judged = _judged_sources(args.outdir)
    run_candidates = _candidates(served.candidates)
    train_candidates = _candidates(trained.candidates)
    both = [s for s in judged if s in run_candidates and s in train_candidates]
    same_top = sum(run_candidates[s][:1] == train_candidates[s][:1] for s in both)
    k = run_config.vote.options
    overlap = [len(set(run_candidates[s][:k]) & set(train_candidates[s][:k])) / k for s in both]
    lines += [
        "",
        f"The run's judged sources: {len(judged):,}; with candidates in both preparations: {len(both):,}; "
        f"same first candidate: {same_top / max(len(both), 1):.1%}; mean share of the first {k} shared: "
        f"{sum(overlap) / max(len(overlap), 1):.1%}.",
    ]
    if examples:
        lines += ["", "Records that differ (rendered as in a pairwise question):", "", *examples]
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report, encoding="utf-8")


def _judged_sources(outdir: Path) -> list[str]:
    sources: list[str] = []
    path = outdir / "votes.jsonl"
    if not path.exists():
        return sources
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            record: dict[str, Any] = json.loads(line)
            if record.get("rounds"):  # asked; a gated source has none
                sources.append(record["source"])
    return sources


def _candidates(candidates: Any) -> dict[str, list[str]]:
    return {c.source: [item.iri for item in sorted(c.items, key=lambda item: item.rank)] for c in candidates}


if __name__ == "__main__":
    sys.exit(main())
