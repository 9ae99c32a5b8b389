"""bench.pair_threshold_sweep: a pairwise run's links at other thresholds, from its votes."""

from __future__ import annotations

import pytest

from bench.pair_threshold_sweep import sweep


def _record(source: str, rounds: dict[str, list[float]], first: str) -> dict:
    answers = [{"order": [iri], "p_yes": p} for iri, ps in rounds.items() for p in ps]
    return {"source": source, "rounds": answers, "candidates": [{"iri": first}], "decision": "uncertain", "target": None}


def test_the_sweep_links_each_judged_sources_best_candidate_that_clears_the_threshold() -> None:
    records = [
        {"source": "a", "rounds": [], "decision": "match", "target": "A", "candidates": [{"iri": "A"}]},  # gated: kept
        _record("b", {"B": [0.9, 0.6], "X": [0.2]}, first="X"),  # the judge is right, retrieval wrong
        _record("c", {"Y": [0.7, 0.8], "C": [0.1]}, first="C"),  # the judge is wrong, retrieval right
        {**_record("d", {"Z": [0.99]}, first="D"), "gated": True, "decision": "match", "target": "D"},  # an audited gate
    ]
    gold = [("a", "A"), ("b", "B"), ("c", "C"), ("d", "D")]
    rows = {(r["threshold"], r["agreement"]): r for r in sweep(records, gold, [0.5, 0.75, 0.95])}
    assert rows[(0.5, True)]["links"] == 4 and rows[(0.5, True)]["precision"] == 0.75
    # At 0.75 b's mean (0.75) clears it but its rounds disagree; c's mean (0.75) too, same.
    assert rows[(0.75, True)]["links"] == 2 and rows[(0.75, False)]["links"] == 4
    assert rows[(0.95, False)]["links"] == 2 and rows[(0.95, False)]["recall"] == 0.5
    assert rows[("retrieval's first", None)]["links"] == 4 and rows[("retrieval's first", None)]["f1"] == 0.75
    assert rows[("unlinked", None)]["links"] == 2
    with pytest.raises(SystemExit, match="pairwise"):  # a multiple-choice run's rounds have no probability of yes
        sweep([{**records[1], "rounds": [{"order": ["B"], "p_yes": None}]}], gold, [0.5])
