"""Benchmark kgalign on the OAEI 2010 pairs: retrieval alone vs the LLM judge, side by side.

    python -m bench.oaei [--data ../shared/data] [--judges none,local,local-nogate] [--out bench/results]

Prints one markdown table (time and peak memory per stage, P/R/F1, Hits@1/10, LLM
questions and tokens per source entity) and writes it with the raw figures as JSON.
Nothing is tuned here: every run uses the defaults of `kgalign run` except the judge.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from kgalign.config import AlignConfig, VoteConfig
from kgalign.evaluation.metrics import read_pairs
from kgalign.pipeline import align
from kgalign.retrieval.embed import SentenceTransformerEmbedder

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Dataset:
    name: str
    left: str
    right: str
    golds: dict[str, str]


def datasets(data: Path) -> list[Dataset]:
    p, r = data / "oaei2010_persons1", data / "oaei2010_restaurants"
    return [
        Dataset("OAEI Person1", str(p / "person11.nt"), str(p / "person12.nt"), {"official": str(p / "dataset11_dataset12_goldstandard_person.xml")}),
        Dataset(
            "OAEI Restaurants",
            str(r / "restaurant1.nt"),
            str(r / "restaurant2.nt"),
            {"repaired": str(r / "goldstandard_repaired.tsv"), "official": str(r / "restaurant1_restaurant2_goldstandard.rdf")},
        ),
    ]


JUDGES = {
    "none": dict(judge="none"),
    # The multiple-choice judge (`--question choice`: the `cross-domain` adapter), as the
    # tables of bench/results named "local" measured it before pairwise became the default.
    "local": dict(judge="local", question="choice"),
    "local-nogate": dict(judge="local", question="choice", gate=False),
    # The shipped pairwise judge (`--question pairwise`: the `pairwise` adapter and its threshold).
    "pairwise": dict(judge="local", question="pairwise"),
    "pairwise-nogate": dict(judge="local", question="pairwise", gate=False),
}


def run_one(ds: Dataset, judge_name: str, embedder) -> dict:
    spec = dict(JUDGES[judge_name])
    gate = spec.pop("gate", True)
    question = spec.pop("question", "pairwise")
    config = AlignConfig(vote=VoteConfig(gate=gate, question=question), cache_path=None, **spec)
    started = time.perf_counter()
    result = align(ds.left, ds.right, config, embedder=embedder)
    wall = time.perf_counter() - started
    row = {"dataset": ds.name, "judge": judge_name, "wall_s": round(wall, 2), "stages": result.timer.stages, "counts": result.counts}
    for gold_name, gold_path in ds.golds.items():
        row[gold_name] = result.evaluate(read_pairs(gold_path), gold_path)
    n = max(result.counts["entities_left"], 1)
    row["questions_per_entity"] = round(result.counts["llm_questions"] / n, 3)
    row["prompt_tokens_per_entity"] = round(result.counts["prompt_tokens"] / n, 1)
    return row


def table(rows: list[dict]) -> str:
    head = "| dataset | judge | gold | P | R | F1 | Hits@1 | Hits@10 | LLM q/entity | prompt tok/entity | load s | embed s | retrieve s | judge s | fuse s | total s | peak MB |"
    lines = [head, "|" + "|".join(["---"] * (head.count("|") - 1)) + "|"]
    for row in rows:
        stages = row["stages"]
        peak = max(s["peak_rss_mb"] for s in stages.values())
        for gold_name in ("repaired", "official"):
            if gold_name not in row:
                continue
            m = row[gold_name]
            lines.append(
                f"| {row['dataset']} | {row['judge']} | {gold_name} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | "
                f"{m['hits@1']:.3f} | {m['hits@10']:.3f} | {row['questions_per_entity']:.2f} | {row['prompt_tokens_per_entity']:.0f} | "
                f"{stages['load']['seconds']:.2f} | {stages['embed']['seconds']:.2f} | {stages['retrieve']['seconds']:.2f} | "
                f"{stages['judge']['seconds']:.2f} | {stages['fuse']['seconds']:.2f} | {row['wall_s']:.2f} | {peak:.0f} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="Folder of the public benchmark data (default ../shared/data).")
    parser.add_argument("--judges", default="none,local", help=f"comma-separated, from {', '.join(JUDGES)}")
    parser.add_argument("--datasets", default="person1,restaurants", help="comma-separated: person1, restaurants")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="Folder for the markdown and JSON results (default bench/results).")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    # One embedder for all runs, so the model loads once; no vector cache, so every
    # run pays for its embeddings and the stage times compare.
    embedder = SentenceTransformerEmbedder()
    rows = []
    wanted = args.datasets.split(",")
    for ds in datasets(args.data):
        if not any(w in ds.name.lower().replace(" ", "") for w in wanted):
            continue
        for judge in args.judges.split(","):
            print(f"running {ds.name} with judge {judge} ...", file=sys.stderr, flush=True)
            rows.append(run_one(ds, judge, embedder))
    text = table(rows)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = "" if args.judges == "none,local" and len(wanted) == 2 else "-" + "-".join(wanted + args.judges.split(","))
    (args.out / f"oaei{suffix}.md").write_text(text + "\n")
    (args.out / f"oaei{suffix}.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
