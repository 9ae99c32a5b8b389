"""Judging sets: where a source may have several counterparts (1:n, n:m, deduplication),
each round asks again without the options picked so far, and an option is accepted when
picked in a strict majority of rounds.

The vote logic is driven by :class:`~kgalign.judging.testing.ScriptedJudge`; the end-to-end
tests run the one-to-many excerpt of tests/test_cardinality.py (the persons example with
noisy copies of the right persons) through ``align`` and the CLI.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict

import pytest
from rdflib import Graph

from bench.make_cardinality import add_copies, write_sorted
from kgalign.config import AlignConfig, VoteConfig
from kgalign.evaluation.metrics import read_pairs
from kgalign.judging.testing import ScriptedJudge, pick
from kgalign.judging.vote import decide, set_rounds
from kgalign.model import Candidate, Candidates, EntityProfile
from kgalign.pipeline import align
from tests.helpers import cli
from tests.test_cardinality import PERSON2

LOGPROB = -0.1


def _setup(n: int = 5):
    source = EntityProfile("urn:l:1", "one")
    right = {f"urn:r:{i}": EntityProfile(f"urn:r:{i}", f"r{i}") for i in range(n)}
    items = [Candidate(f"urn:r:{i}", 0.9 - i * 0.01, i + 1) for i in range(n)]
    return [Candidates("urn:l:1", items, margin=0.01, mutual=False)], {"urn:l:1": source}, right


def first_of(wanted: set[str]):
    """A script that picks the first option shown that is in ``wanted``, else "none of these"."""

    def script(question):
        return pick(next((o.iri for o in question.options if o.iri in wanted), None))

    return script


def test_a_consistent_judge_gets_its_whole_set_accepted() -> None:
    cands, left, right = _setup()
    judge = ScriptedJudge(first_of({"urn:r:1", "urn:r:3"}), logprob=LOGPROB)
    [d] = decide(cands, left, right, judge, VoteConfig(question="choice", rounds=3, gate=False), several=True)
    assert d.kind == "match" and {v.iri for v in d.accepted} == {"urn:r:1", "urn:r:3"}
    assert d.target in {"urn:r:1", "urn:r:3"}
    # Two rounds settle it (2 of 3 picks each, every other option out of reach): three questions a round.
    assert d.early_stopped and len(set_rounds(d.rounds)) == 2 and len(d.rounds) == 6
    for group in set_rounds(d.rounds):
        assert [r.step for r in group] == [0, 1, 2]
        assert group[-1].target == "none"
        # Each step shows the options of the step before, less the one picked there.
        for before, after in zip(group, group[1:]):
            assert after.order == [iri for iri in before.order if iri != before.target]
    by_iri = {v.iri: v for v in d.option_votes}
    assert set(by_iri) == {f"urn:r:{i}" for i in range(5)}
    assert by_iri["urn:r:1"].picked == 2 and by_iri["urn:r:1"].rounds == 2
    assert by_iri["urn:r:1"].confidence == pytest.approx(0.9048, abs=1e-3)
    assert by_iri["urn:r:0"].picked == 0 and not by_iri["urn:r:0"].accepted
    assert d.option_votes[0].accepted and d.option_votes[1].accepted  # accepted ones first


def test_an_option_picked_in_a_minority_of_rounds_is_not_accepted() -> None:
    cands, left, right = _setup()
    # r:2 in every round; r:4 in the first round only.
    judge = ScriptedJudge({"urn:l:1": [pick("urn:r:2"), pick("urn:r:4"), None, pick("urn:r:2"), None, pick("urn:r:2"), None]})
    [d] = decide(cands, left, right, judge, VoteConfig(question="choice", rounds=3, gate=False, early_stop=False), several=True)
    assert [v.iri for v in d.accepted] == ["urn:r:2"]
    votes = {v.iri: v.picked for v in d.option_votes}
    assert votes["urn:r:2"] == 3 and votes["urn:r:4"] == 1
    assert [len(group) for group in set_rounds(d.rounds)] == [3, 2, 2]


def test_none_first_in_most_rounds_is_none_and_a_split_vote_is_uncertain() -> None:
    cands, left, right = _setup()
    [d] = decide(cands, left, right, ScriptedJudge(None), VoteConfig(question="choice", rounds=3, gate=False), several=True)
    assert d.kind == "none" and not d.accepted and len(d.rounds) == 2  # settled after two "none"
    # Round 1 picks r:0 then says none; rounds 2 and 3 pick r:1, then r:2: nobody has 2 of 3.
    split = ScriptedJudge({"urn:l:1": [pick("urn:r:0"), None, pick("urn:r:1"), None, pick("urn:r:2"), None]})
    [d] = decide(cands, left, right, split, VoteConfig(question="choice", rounds=3, gate=False), several=True)
    assert d.kind == "uncertain" and d.target is None and not d.accepted


def test_an_invalid_answer_ends_its_round() -> None:
    cands, left, right = _setup()
    judge = ScriptedJudge({"urn:l:1": [pick("urn:r:0"), "I think B", pick("urn:r:0"), None, pick("urn:r:0"), None]})
    [d] = decide(cands, left, right, judge, VoteConfig(question="choice", rounds=3, gate=False, early_stop=False), several=True)
    groups = set_rounds(d.rounds)
    assert [len(g) for g in groups] == [2, 2, 2] and groups[0][1].target is None
    assert [v.iri for v in d.accepted] == ["urn:r:0"]


def test_all_options_picked_ends_the_round_without_an_empty_question() -> None:
    cands, left, right = _setup(n=2)
    judge = ScriptedJudge(first_of({"urn:r:0", "urn:r:1"}))
    [d] = decide(cands, left, right, judge, VoteConfig(question="choice", rounds=3, gate=False), several=True)
    assert all(len(r.order) > 0 for r in d.rounds)
    assert {v.iri for v in d.accepted} == {"urn:r:0", "urn:r:1"} and len(d.rounds) == 4


@pytest.fixture(scope="module")
def one_to_many(persons, tmp_path_factory):
    """The persons example with one to four noisy copies of each right person, and its gold."""
    folder = tmp_path_factory.mktemp("sets")
    right, records = add_copies(Graph().parse(persons["right"]), PERSON2, random.Random(7), 4, defaultdict(int))
    write_sorted(right, folder / "right.nt")
    gold = [(a, r) for a, b in read_pairs(persons["gold"]) for r in records[b]]
    (folder / "gold.tsv").write_text("".join(f"{a}\t{b}\n" for a, b in gold))
    return {"left": persons["left"], "right": folder / "right.nt", "gold": folder / "gold.tsv", "pairs": gold}


def _oracle(pairs):
    wanted: dict[str, set[str]] = defaultdict(set)
    for a, b in pairs:
        wanted[a].add(b)

    def script(question):
        return pick(next((o.iri for o in question.options if o.iri in wanted[question.source.iri]), None))

    return script


def test_a_one_to_many_run_links_what_the_judge_accepts(one_to_many, embedder) -> None:
    """With a judge that knows the records, the judged sets give the gold links; with one that
    accepts only the first record of each person, the run links those and no retrieval extra."""
    config = AlignConfig(gold=str(one_to_many["gold"]), vote=VoteConfig(question="choice", gate=False))
    result = align(one_to_many["left"], one_to_many["right"], config, embedder=embedder, judge=ScriptedJudge(_oracle(one_to_many["pairs"])))
    assert result.effective.resolve == "1:n"
    assert result.counts["judged_sets"] == result.counts["judged"] > 0
    assert result.metrics is not None and result.metrics["f1"] == 1.0, result.metrics
    several = [d for d in result.decisions if len(d.accepted) > 1]
    assert several and all(d.rounds[1].step == 1 for d in several)

    only_first = {}
    for a, b in one_to_many["pairs"]:
        only_first.setdefault(a, b)
    strict = align(
        one_to_many["left"], one_to_many["right"], config, embedder=embedder, judge=ScriptedJudge(_oracle(list(only_first.items())))
    )
    judged = {d.source for d in strict.decisions if d.rounds}
    linked = defaultdict(set)
    for link in strict.links:
        linked[link.left].add(link.right)
    assert judged and all(linked[source] == {only_first[source]} for source in judged if source in only_first)
    # Without sets the same judge's one-winner votes are topped up from retrieval: more links.
    flat = align(
        one_to_many["left"],
        one_to_many["right"],
        config.replace(vote={"sets": False}),
        embedder=embedder,
        judge=ScriptedJudge(_oracle(list(only_first.items()))),
    )
    assert flat.counts["judged_sets"] == 0 and len(flat.links) > len(strict.links)


def test_the_votes_log_and_inspect_show_each_option(one_to_many, tmp_path) -> None:
    """The CLI with a real judge backend on a few sources: votes.jsonl keeps each option's
    count, inspect prints the set, and --no-sets asks one question a round."""
    from kgalign.evaluation.metrics import read_pairs as pairs_of

    outdir = tmp_path / "out"
    args = ["run", one_to_many["left"], one_to_many["right"], "-o", outdir, "--quiet", "--judge", "local", "--question", "choice", "--no-gate", "--rounds", "1"]
    # A handful of sources keeps the real SmolLM2 judge quick: only the first gold persons.
    gold = tmp_path / "gold.tsv"
    first = [pair for pair in pairs_of(one_to_many["gold"]) if pair[0] in {a for a, _ in pairs_of(one_to_many["gold"])[:6]}]
    gold.write_text("".join(f"{a}\t{b}\n" for a, b in first))
    result = cli([*args, "--test-gold", gold, "--only-gold-entities", "--resolve", "1:n"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (outdir / "votes.jsonl").read_text().splitlines()]
    judged = [r for r in records if r["rounds"]]
    assert judged and all(r["option_votes"] for r in judged)
    for r in judged:
        assert len(r["option_votes"]) == min(5, len(r["candidates"]))
        picked = [x["target"] for x in r["rounds"] if x["target"] not in (None, "none")]
        assert sum(v["picked"] for v in r["option_votes"]) == len(picked)
        assert [x["step"] for x in r["rounds"]] == list(range(len(r["rounds"])))
    saved = json.loads((outdir / "run.json").read_text())
    assert saved["counts"]["judged_sets"] == len(judged)
    shown = cli(["inspect", outdir / "votes.jsonl", "--entity", judged[0]["source"]])
    assert shown.exit_code == 0 and "judged set (picked in rounds" in shown.output


def test_early_stop_keeps_a_none_that_one_more_round_would_give() -> None:
    """Five rounds: A then none, B then none, none, none: the options are out of reach
    after four rounds, but "none of these" first has 2 of the 3 it needs; the fifth round
    (none again) decides it: "none", as without early stop."""
    cands, left, right = _setup()
    script = [pick("urn:r:0"), None, pick("urn:r:1"), None, None, None, None]
    stopped = decide(cands, left, right, ScriptedJudge({"urn:l:1": script}), VoteConfig(question="choice", rounds=5, gate=False), several=True)[0]
    full = decide(cands, left, right, ScriptedJudge({"urn:l:1": script}), VoteConfig(question="choice", rounds=5, gate=False, early_stop=False), several=True)[0]
    assert stopped.kind == full.kind == "none"
    assert len(set_rounds(stopped.rounds)) == 5


def test_a_cluster_holding_a_judged_set_keeps_its_weak_links() -> None:
    """L1 {R1, R2}, L2 {R2, R3}, judged, L1-R1 weak: neither split off nor closed (no L1-R3);
    the same links from retrieval alone are checked and closed."""
    from kgalign.model import Link
    from kgalign.resolution.resolve import close_clusters

    links = [Link("L1", "R1", 0.45), Link("L1", "R2", 0.9), Link("L2", "R2", 0.9), Link("L2", "R3", 0.9)]
    kept = close_clusters(links, judged={"L1", "L2"})
    assert [(x.left, x.right) for x in kept] == [(x.left, x.right) for x in links]
    closed = {(x.left, x.right) for x in close_clusters(links)}
    assert ("L1", "R1") not in closed and ("L1", "R3") in closed


def test_confident_matches_with_another_strong_candidate_are_audited_when_sets_are() -> None:
    """The gate accepts a mutual best match far ahead of the rest without asking. Where a
    source may have several counterparts and the run checks its cardinality (``audit``),
    retrieval would link a second strong candidate as another record: a sample of such
    sources (up to SET_AUDIT, by IRI hash) is judged as sets all the same, so that the
    judge's answers can refute retrieval's extras."""
    from kgalign.judging.vote import audited_sources

    source = EntityProfile("urn:l:1", "one")
    right = {f"urn:r:{i}": EntityProfile(f"urn:r:{i}", f"r{i}") for i in range(3)}
    strong_second = [Candidates("urn:l:1", [Candidate("urn:r:0", 0.95, 1), Candidate("urn:r:1", 0.6, 2), Candidate("urn:r:2", 0.2, 3)], margin=0.35, mutual=True)]
    weak_second = [Candidates("urn:l:1", [Candidate("urn:r:0", 0.95, 1), Candidate("urn:r:1", 0.45, 2)], margin=0.5, mutual=True)]
    config = VoteConfig(question="choice", rounds=3)
    cases = ((False, True, strong_second, False), (True, False, strong_second, False), (True, True, strong_second, True), (True, True, weak_second, False))
    for several, audit, cands, asked in cases:
        judge = ScriptedJudge(first_of({"urn:r:0"}))
        decision = decide(cands, {"urn:l:1": source}, right, judge, config, several=several, audit=audit)[0]
        assert decision.gated is not asked and bool(decision.rounds) is asked, (several, audit, cands)
        assert decision.target == "urn:r:0"
    # An audited set that accepts nothing leaves the gate's match, the rounds kept in the log.
    kept = decide(strong_second, {"urn:l:1": source}, right, ScriptedJudge(first_of(set())), config, several=True, audit=True)[0]
    assert kept.gated and kept.kind == "match" and kept.target == "urn:r:0" and kept.rounds and not kept.by_judge
    many = [Candidates(f"urn:l:{n}", strong_second[0].items, margin=0.35, mutual=True) for n in range(10)]
    sample = audited_sources(many, config, {}, size=4)
    assert len(sample) == 4 and sample <= {c.source for c in many}
    # Adding sources (a --since run) keeps the sample, but for the new ones that hash lower.
    grown = audited_sources(many + [Candidates(f"urn:l:new{n}", strong_second[0].items, margin=0.35, mutual=True) for n in range(5)], config, {}, size=4)
    assert {iri for iri in grown if "new" not in iri} <= sample and len(grown) == 4
    assert audited_sources(many, config, {"urn:l:0": None}, size=20) == {f"urn:l:{n}" for n in range(1, 10)}  # type: ignore[dict-item]
    assert audited_sources(many, VoteConfig(question="choice", rounds=3, gate=False), {}) == set()
