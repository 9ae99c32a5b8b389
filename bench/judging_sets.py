"""Benchmark judged sets against one-winner votes, and the judge's part in the cardinality.

    python -m bench.judging_sets [--data ../shared/data] [--work DIR] [--seeds 0,1]
                                 [--accuracy 1.0,0.9,0.8,0.7] [--out bench/results]

On the development pairs of bench/make_cardinality.py (one-to-many and many-to-many, one
per seed), each run with default options (``--resolve auto``, gate on) and a judge, twice:
``--sets`` (the default: each round asks again without the options picked until "none of
these", an option accepted with a strict majority of rounds) and ``--no-sets`` (one
winner a question; the extra records from retrieval scores, as before sets existed).

On the namesakes pair (one-to-one, with a same-named relative at the same address for
half of the persons, which the lexical detection takes for one-to-many), runs with no
judge, with the judge and ``--resolve auto`` (the judge's answers may revise the
cardinality retrieval chose) and with the judge and ``--resolve 1:n`` forced (the same
judged sets, no revision).

The judge is simulated, because no judge kgalign ships decides these questions better
than chance yet (issue 19): it knows the gold and answers each question rightly (the
first gold record shown, or "none of these" when none is left) with probability
ACCURACY, and otherwise gives one of the other letters at random; the draw is seeded by
the question's text, so a question asked twice gets the same answer. What this measures
is the voting scheme under a judge of known accuracy, not an LLM.

Prints the table (cardinality retrieval chose and the run's, P, R, F1, sources judged,
questions asked) and writes OUT/judging-sets.{md,json}.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench import table
from bench.make_cardinality import build

ROOT = Path(__file__).resolve().parent.parent


class NoisyOracle:
    """A judge that answers rightly with probability ``accuracy``, else a random wrong letter."""

    def __init__(self, gold: list[tuple[str, str]], accuracy: float, seed: int = 0) -> None:
        self.wanted: dict[str, set[str]] = defaultdict(set)
        for a, b in gold:
            self.wanted[a].add(b)
        self.accuracy = accuracy
        self.seed = seed
        self.name = "noisy-oracle"
        self.model_id = f"noisy-oracle-{accuracy}"

    def cache_params(self) -> dict[str, Any]:
        return {"accuracy": self.accuracy, "seed": self.seed}

    def answer(self, questions: list) -> list:
        from kgalign.judging.base import Answer

        answers = []
        for question in questions:
            wanted = self.wanted.get(question.source.iri, set())
            right = next((letter for letter, o in zip(question.letters, question.options) if o.iri in wanted), question.none_letter)
            digest = hashlib.sha256(f"{self.seed}:{question.text()}".encode()).digest()
            draw = int.from_bytes(digest[:8], "big") / 2**64
            letter = right
            if draw >= self.accuracy:
                others = [x for x in (*question.letters, question.none_letter) if x != right]
                letter = others[int.from_bytes(digest[8:16], "big") % len(others)] if others else right
            answers.append(Answer(raw=letter, choice=letter, logprob=None, prompt_tokens=0, answer_tokens=1))
        return answers


def measure(name: str, folder: Path, accuracy: float | None, sets: bool, embedder: Any, resolve: str = "auto") -> dict[str, Any]:
    """One run; ``accuracy`` None: no judge."""
    from kgalign.config import AlignConfig, VoteConfig
    from kgalign.evaluation.metrics import read_pairs
    from kgalign.pipeline import align

    gold = read_pairs(folder / "gold.tsv")
    judge = NoisyOracle(gold, accuracy) if accuracy is not None else None
    config = AlignConfig(gold=str(folder / "gold.tsv"), vote=VoteConfig(question="choice", sets=sets), resolve=resolve, judge="none" if judge is None else "local")
    started = time.perf_counter()
    result = align(folder / "left.nt", folder / "right.nt", config, embedder=embedder, judge=judge)
    metrics = result.metrics or {}
    card = result.prepared.cardinality
    return {
        "data": name,
        "accuracy": accuracy,
        "sets": sets,
        "resolve_given": resolve,
        "retrieval_chose": (card.retrieval_choice or card.choice) if card is not None else None,
        "judge_evidence": card.judge.to_dict() if card is not None and card.judge is not None else None,
        "resolve": result.effective.resolve,
        "precision": metrics.get("precision"),
        "recall": metrics.get("recall"),
        "f1": metrics.get("f1"),
        "links": len(result.links),
        "judged": result.counts["judged"],
        "questions": result.counts["llm_questions"],
        "seconds": round(time.perf_counter() - started, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="Folder of the public benchmarks (default: ../shared/data).")
    parser.add_argument("--work", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "kgalign-sets-bench", help="Working folder.")
    parser.add_argument("--seeds", default="0,1", help="Seeds of the development pairs (default: 0,1).")
    parser.add_argument("--accuracy", default="1.0,0.9,0.8,0.7", help="Accuracies of the simulated judge (default: 1.0,0.9,0.8,0.7).")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="Where judging-sets.md and .json go.")
    args = parser.parse_args(argv)

    from kgalign.retrieval.embed import SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder()
    rows = []
    accuracies = [float(a) for a in args.accuracy.split(",") if a]
    for seed in [int(s) for s in args.seeds.split(",") if s]:
        dev = args.work / f"dev-seed{seed}"
        build(args.data, dev, seed, 4)
        for kind, folder in (("1:n", dev / "one-to-many"), ("n:m", dev / "many-to-many")):
            for accuracy in accuracies:
                for sets in (True, False):
                    rows.append(measure(f"{kind} (seed {seed})", folder, accuracy, sets, embedder))
                    print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
        runs = [(None, "auto")] + [(accuracy, resolve) for accuracy in accuracies for resolve in ("auto", "1:n")]
        for accuracy, resolve in runs:
            rows.append(measure(f"namesakes (seed {seed})", dev / "namesakes", accuracy, True, embedder, resolve))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)

    lines = [
        f"`python -m bench.judging_sets --seeds {args.seeds} --accuracy {args.accuracy}` (simulated judge; default options otherwise)",
        "",
        "| data | judge accuracy | vote | --resolve | retrieval chose | run chose | P | R | F1 | links | sources judged | questions |",
        "|---|---:|---|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        vote = "no judge" if row["accuracy"] is None else "sets" if row["sets"] else "one winner"
        accuracy = "-" if row["accuracy"] is None else f"{row['accuracy']:.2f}"
        lines.append(
            f"| {row['data']} | {accuracy} | {vote} | {row['resolve_given']} | {row['retrieval_chose'] or '-'} | {row['resolve']} | "
            f"{row['precision']:.4f} | {row['recall']:.4f} | **{row['f1']:.4f}** | {row['links']} | {row['judged']} | {row['questions']} |"
        )
    table.publish(args.out, "judging-sets", "\n".join(lines), rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
