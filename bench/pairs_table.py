"""Tabulate `kgalign pairs` runs: F1 of the match class and the accuracy of each question.

    python -m bench.pairs_table RUN [RUN ...] --data ../shared/data [--out bench/results --stem NAME]

Each RUN is a `kgalign pairs -o` folder named VARIANT-DATASET (DATASET a folder of
--data, such as ditto_wdc_shoes), as the GPU measurements of the cross-domain judge
wrote them (docs/judge.md). Per run it prints precision, recall and F1 from its
metrics.json and computes the **question accuracy** from its predictions.tsv and the
test file's labels: the pairs of one left record form one question, and the question
is right when the record's predicted pair is labelled 1, or when no pair is predicted
and none is labelled 1 (one pick per question, as `kgalign pairs` asks). Rows of the
same dataset are printed together, `none` first, with the difference in F1 to it.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.table import publish
from kgalign.io.pairs import read_pair_file

ROOT = Path(__file__).resolve().parent.parent


def question_accuracy(run: Path, test: Path) -> tuple[float, int]:
    """The share of left records decided right, and how many there are."""
    pairs = read_pair_file(test).pairs
    predicted = {}
    for line in (run / "predictions.tsv").read_text().splitlines():
        index, prediction, _ = line.split("\t")
        predicted[int(index)] = int(prediction)
    if len(predicted) != len(pairs):
        raise SystemExit(f"{run}: {len(predicted)} predictions for {len(pairs)} pairs of {test}")
    by_left: dict[str, list[int]] = defaultdict(list)
    for pair in pairs:
        by_left[pair.left].append(pair.index)
    right = 0
    for indices in by_left.values():
        picks = [i for i in indices if predicted[i]]
        gold = {i for i in indices if pairs[i].label}
        right += (picks[0] in gold) if picks else not gold
    return right / len(by_left), len(by_left)


def rows(runs: list[Path], data: Path) -> list[dict[str, Any]]:
    found = []
    for run in runs:
        variant, _, dataset = run.name.partition("-")
        metrics = json.loads((run / "metrics.json").read_text())
        accuracy, questions = question_accuracy(run, data / dataset / "test.txt")
        found.append({
            "dataset": dataset, "variant": variant, "run": str(run),
            "precision": metrics["precision"], "recall": metrics["recall"], "f1": metrics["f1"],
            "question_accuracy": round(accuracy, 4), "questions": questions,
            "llm_questions": metrics.get("llm_questions", 0), "threshold": metrics.get("threshold"),
        })
    found.sort(key=lambda r: (r["dataset"], r["variant"] != "none", r["variant"]))
    return found


def render(found: list[dict[str, Any]]) -> str:
    base = {r["dataset"]: r["f1"] for r in found if r["variant"] == "none"}
    lines = [
        "| dataset | judge | P | R | F1 | F1 - none | question accuracy | questions | LLM questions |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in found:
        delta = "" if r["variant"] == "none" or r["dataset"] not in base else f"{r['f1'] - base[r['dataset']]:+.3f}"
        lines.append(
            f"| {r['dataset']} | {r['variant']} | {r['precision']:.3f} | {r['recall']:.3f} | {r['f1']:.3f} | {delta} "
            f"| {r['question_accuracy']:.3f} | {r['questions']} | {r['llm_questions']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="`kgalign pairs -o` folders named VARIANT-DATASET")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="folder of the benchmark data")
    parser.add_argument("--out", type=Path, help="write OUT/STEM.md and OUT/STEM.json too")
    parser.add_argument("--stem", default="pairs-table", help="name of the written files")
    args = parser.parse_args(argv)
    found = rows(args.runs, args.data)
    text = render(found)
    print(text)
    if args.out:
        publish(args.out, args.stem, text, found)
    return found


if __name__ == "__main__":
    main()
