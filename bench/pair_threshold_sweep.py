"""What a pairwise run's links would score at other thresholds, from its votes.jsonl alone.

    python -m bench.pair_threshold_sweep RUN_DIR --gold GOLD [--thresholds 0.3,0.5,...]

A diagnosis, not a way to choose a threshold (it reads the gold links): does any
threshold on the judge's mean probability of yes beat the run without a judge, or is
the judge's ranking of the contested sources' candidates what falls short? Each judged
source's best candidate (highest mean of its rounds) is linked when the mean reaches
the threshold, and, with round agreement, when every round does; the other sources keep
the run's links. Approximate where the run's own threshold stopped a candidate's
rounds early (its mean then has fewer rounds) and where 1:1 resolution would have
undone a link (conflicts are not replayed). Prints one table row per threshold, then
the two references: the judged sources linked to retrieval's first candidate, and left
unlinked.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from kgalign.evaluation.metrics import link_metrics, read_pairs
from kgalign.review.votes import read_votes

DEFAULT_THRESHOLDS = (0.1, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.97, 0.98, 0.99, 0.995)


def judged_means(record: dict) -> dict[str, list[float]]:
    """Each asked candidate's probabilities of yes over the rounds of a decision record."""
    votes: dict[str, list[float]] = defaultdict(list)
    for answer in record["rounds"]:
        if answer.get("p_yes") is not None and answer.get("order"):
            votes[answer["order"][0]].append(float(answer["p_yes"]))
    return dict(votes)


def sweep(records: Iterable[dict], gold: list[tuple[str, str]], thresholds: Iterable[float]) -> list[dict]:
    """Rows of threshold, agreement, links and link metrics (see the module text)."""
    fixed: set[tuple[str, str]] = set()
    # Per judged source: its best candidate, that candidate's mean and lowest round, retrieval's first.
    judged: list[tuple[str, str, float, float, str | None]] = []
    for record in records:
        # A gated source's rounds (an audit of the gate) do not decide it: it keeps its link.
        votes = judged_means(record) if record.get("rounds") and not record.get("gated") else {}
        if votes:
            means = {iri: sum(p) / len(p) for iri, p in votes.items()}
            best = max(means, key=lambda iri: means[iri])
            first = record["candidates"][0]["iri"] if record.get("candidates") else None
            judged.append((record["source"], best, means[best], min(votes[best]), first))
        elif record.get("decision") == "match" and record.get("target"):
            fixed.add((record["source"], record["target"]))
    if not judged:
        raise SystemExit("no judged source has a probability of yes: not a run with --question pairwise")
    rows = []
    for agreement in (True, False):
        for threshold in thresholds:
            chosen = {(source, best) for source, best, mean, lowest, _ in judged if mean >= threshold and (not agreement or lowest >= threshold)}
            rows.append({"threshold": threshold, "agreement": agreement, **_scored(fixed | chosen, gold)})
    first_links = fixed | {(source, first) for source, *_, first in judged if first}
    rows.append({"threshold": "retrieval's first", "agreement": None, **_scored(first_links, gold)})
    rows.append({"threshold": "unlinked", "agreement": None, **_scored(fixed, gold)})
    return rows


def _scored(links: set[tuple[str, str]], gold: list[tuple[str, str]]) -> dict:
    metrics = link_metrics(links, gold)
    return {"links": len(links), "precision": metrics.precision, "recall": metrics.recall, "f1": metrics.f1}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="output folder of a kgalign run with --question pairwise (its votes.jsonl)")
    parser.add_argument("--gold", type=Path, required=True, help="gold links of the run's two inputs")
    parser.add_argument("--thresholds", default=",".join(map(str, DEFAULT_THRESHOLDS)), help="comma-separated thresholds on the mean probability of yes")
    args = parser.parse_args(argv)
    thresholds = [float(t) for t in args.thresholds.split(",")]
    gold = [(str(a), str(b)) for a, b in read_pairs(args.gold)]
    rows = sweep(read_votes(args.run / "votes.jsonl"), gold, thresholds)
    print("| threshold | rounds agree | links | precision | recall | F1 |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        agree = "" if row["agreement"] is None else "yes" if row["agreement"] else "no"
        print(f"| {row['threshold']} | {agree} | {row['links']} | {row['precision']:.4f} | {row['recall']:.4f} | {row['f1']:.4f} |")


if __name__ == "__main__":
    main()
