"""Score a finished run from its output folder, against any gold file."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from rdflib.namespace import OWL

from kgalign.evaluation.metrics import Pair, read_pairs, score_alignment
from kgalign.io.parsers import load_graph
from kgalign.review.votes import read_candidates


def score_run(
    outdir: str | Path,
    gold: str | Path | Iterable[Pair],
    seed_links: Iterable[Sequence[str]] | None = None,
) -> dict[str, Any]:
    """Score the run written to ``outdir`` against ``gold`` (pairs, or a gold file in any
    format :func:`~kgalign.evaluation.metrics.read_pairs` reads), as the run scores
    itself (:func:`~kgalign.evaluation.metrics.score_alignment`): its links.ttl for
    precision, recall and F1, the candidates logged in its votes.jsonl for Hits@k and
    MRR, seed links and the gold pairs of their sources left out.

    ``seed_links`` None takes the seed links the run was given from its run.json (none
    without one). The folder does not hold the graphs' entities, so the figures lack
    ``gold_pairs_not_in_graphs``.
    """
    outdir = Path(outdir)
    if isinstance(gold, (str, Path)):
        gold = read_pairs(gold)
    if seed_links is None:
        seed_links = run_seed_links(outdir)
    return score_alignment(run_links(outdir), read_candidates(outdir / "votes.jsonl"), gold, seed_links)


def run_links(outdir: str | Path) -> list[Pair]:
    """The links (owl:sameAs pairs) of the run written to ``outdir``, seed links included;
    none when the run linked nothing."""
    graph = load_graph(Path(outdir) / "links.ttl")
    return sorted((str(s), str(o)) for s, o in graph.subject_objects(OWL.sameAs))


def run_seed_links(outdir: str | Path) -> list[Pair]:
    """The seed links the run written to ``outdir`` was given, as its run.json records
    them (the pairs, or the file they were read from); none without a run.json."""
    info = Path(outdir) / "run.json"
    if not info.is_file():
        return []
    data = json.loads(info.read_text(encoding="utf-8"))
    seeds = (data.get("config") or {}).get("seed_links") or []
    if isinstance(seeds, str):
        from kgalign.run_paths import RecordedPaths

        return read_pairs(RecordedPaths.of(outdir, data).path(seeds, "--seed-links"))
    return [(a, b) for a, b in seeds]
