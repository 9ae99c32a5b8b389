"""Voting: rounds in different orders, strict majority, early stop, gating, uncertain.

The logic tests drive :func:`decide` with :class:`~kgalign.judging.testing.ScriptedJudge`,
whose scripts read the question (``pick`` finds a candidate wherever a round shows it,
rather than replaying canned letters); one test runs the real SmolLM2 judge through the
same interface.
"""

from __future__ import annotations

import pytest

from kgalign.config import VoteConfig
from kgalign.judging.prompt import Question
from kgalign.judging.testing import ScriptedJudge, pick
from kgalign.judging.vote import decide, round_order
from kgalign.model import Candidate, Candidates, EntityProfile

LOGPROB = -0.1  # every valid vote's log-probability: a share of 1.0 has confidence exp(-0.1)


def scripted(script) -> ScriptedJudge:
    return ScriptedJudge(script, logprob=LOGPROB, prompt_tokens=10)


def _setup(n: int = 4, margin: float = 0.01, mutual: bool = False):
    source = EntityProfile("urn:l:1", "one")
    right = {f"urn:r:{i}": EntityProfile(f"urn:r:{i}", f"r{i}") for i in range(n)}
    items = [Candidate(f"urn:r:{i}", 0.9 - i * margin, i + 1) for i in range(n)]
    cands = Candidates("urn:l:1", items, margin=margin, mutual=mutual)
    return [cands], {"urn:l:1": source}, right


def test_round_orders_differ_and_are_seeded() -> None:
    items = [f"c{i}" for i in range(5)]
    assert round_order(items, 0, "s", 0) == items
    assert round_order(items, 1, "s", 0) == items[::-1]
    assert round_order(items, 2, "s", 0) == round_order(items, 2, "s", 0)
    assert sorted(round_order(items, 2, "s", 0)) == items
    assert {tuple(round_order(items, 2, "s", seed)) for seed in range(10)} != {tuple(items)}


def test_consistent_judge_wins_and_stops_early() -> None:
    cands, left, right = _setup()
    judge = scripted(pick("urn:r:2"))
    [d] = decide(cands, left, right, judge, VoteConfig(question="choice", rounds=3, gate=False))
    assert d.kind == "match" and d.target == "urn:r:2"
    assert len(d.rounds) == 2 and d.early_stopped
    assert d.confidence == pytest.approx(0.9048, abs=1e-3)  # share 1.0 x exp(-0.1)
    assert d.rounds[0].order != d.rounds[1].order


def test_position_biased_judge_is_uncertain() -> None:
    cands, left, right = _setup()
    [d] = decide(cands, left, right, scripted("A"), VoteConfig(question="choice", rounds=3, gate=False, early_stop=False))
    # 'A' is a different candidate in rounds 1 and 2, so no strict majority unless round 3 repeats one.
    targets = [r.target for r in d.rounds]
    assert targets[0] != targets[1]
    expected = "match" if targets[2] in targets[:2] else "uncertain"
    assert d.kind == expected


def test_none_of_these_and_invalid_answers() -> None:
    cands, left, right = _setup()
    [d] = decide(cands, left, right, scripted(None), VoteConfig(question="choice", gate=False))
    assert d.kind == "none" and d.target is None
    [d] = decide(cands, left, right, scripted("I think it is A"), VoteConfig(question="choice", gate=False))
    assert d.kind == "uncertain"
    assert all(r.choice is None and r.target is None for r in d.rounds)
    assert len(d.rounds) == 2  # after two invalid rounds nobody can reach a majority of three


def test_clear_mutual_match_is_gated_without_asking() -> None:
    cands, left, right = _setup(margin=0.2, mutual=True)
    judge = scripted(None)
    [d] = decide(cands, left, right, judge, VoteConfig(question="choice", gate=True, gate_margin=0.1))
    assert d.gated and d.kind == "match" and d.target == "urn:r:0"
    assert judge.asked == []


def test_plurality_option_accepts_a_unique_leader() -> None:
    cands, left, right = _setup()
    # One source: the i-th item of a list script answers its i-th round.
    votes = [pick("urn:r:1"), pick("urn:r:1"), pick("urn:r:2"), pick("urn:r:3")]
    [strict] = decide(cands, left, right, scripted(votes), VoteConfig(question="choice", rounds=4, gate=False))
    assert strict.kind == "uncertain" and len(strict.rounds) == 4  # 2 of 4 is no strict majority
    [plural] = decide(cands, left, right, scripted(votes), VoteConfig(question="choice", rounds=4, gate=False, plurality=True))
    assert plural.kind == "match" and plural.target == "urn:r:1"
    assert plural.confidence == pytest.approx(0.5 * 0.9048, abs=1e-3)
    tie = [pick("urn:r:1"), pick("urn:r:2"), pick("urn:r:1"), pick("urn:r:2")]
    [tied] = decide(cands, left, right, scripted(tie), VoteConfig(question="choice", rounds=4, gate=False, plurality=True))
    assert tied.kind == "uncertain"


def test_real_local_judge_answers_every_round_with_a_valid_option(local_judge, persons) -> None:
    from kgalign.io.entities import load_entities
    from kgalign.selection.predicates import build_profiles, choose_predicates, predicate_stats

    profiles = []
    for side in ("left", "right"):
        _, table = load_entities(persons[side], side)
        profiles.append({p.iri: p for p in build_profiles(table, choose_predicates(predicate_stats(table)))})
    left, right = profiles
    sources = sorted(left)[:3]
    targets = sorted(right)[:4]
    cands = [
        Candidates(s, [Candidate(t, 0.5, i + 1) for i, t in enumerate(targets)], margin=0.0, mutual=False)
        for s in sources
    ]
    decisions = decide(cands, left, right, local_judge, VoteConfig(question="choice", rounds=3, gate=False, early_stop=False))
    for d in decisions:
        assert len(d.rounds) == 3
        for r in d.rounds:
            assert r.choice in ("A", "B", "C", "D", "E")
            assert r.logprob is not None and r.logprob <= 0.0
            assert r.target == "none" or r.target in targets
        assert d.prompt_tokens > 100


def test_datamark_reaches_every_question_asked() -> None:
    cands, left, right = _setup(n=3)
    for datamark in (False, True):
        judge = scripted(pick("urn:r:1"))
        decisions = decide(cands, left, right, judge, VoteConfig(question="choice", rounds=3, gate=False, early_stop=False, datamark=datamark))
        assert len(judge.asked) == 3 and all(q.datamark is datamark for q in judge.asked)
        assert decisions[0].kind == "match" and decisions[0].target == "urn:r:1"


def test_local_judge_calibrates_datamarked_questions_on_a_datamarked_blank(local_judge) -> None:
    plain, marked = local_judge.prior(3), local_judge.prior(3, datamark=True)
    assert set(plain) == set(marked) == {"A", "B", "C", "D"} and plain != marked
    options = tuple(EntityProfile(f"urn:r:{i}", f"Option {i}") for i in range(3))
    flat = dict.fromkeys("ABCD", -1.0)  # equal raw scores: the prior alone decides
    for datamark, prior in ((False, plain), (True, marked)):
        question = Question(source=EntityProfile("urn:s", "Some One"), options=options, datamark=datamark)
        assert local_judge.choose(question, flat) == min(prior, key=prior.get)


class _Elsewhere(ScriptedJudge):
    """Asks decide's blocks "on another worker": each block pickled, asked there by
    :meth:`BlockAsk.run`, and given back pickled, the last block first (an engine's blocks
    come back as they finish)."""

    def __init__(self, script, block: int) -> None:
        super().__init__(script, logprob=LOGPROB, prompt_tokens=10, batch_size=3)
        self.source_block = block
        self.shipped: list[int] = []

    def ask_blocks(self, blocks):
        import pickle

        for index in reversed(range(len(blocks))):
            block = pickle.loads(pickle.dumps(blocks[index]))
            self.shipped.append(len(block.right_profiles))
            yield index, pickle.loads(pickle.dumps(block.run(self)))


@pytest.mark.parametrize("several", [False, True])
def test_blocks_asked_elsewhere_decide_as_in_one_process(several) -> None:
    n_sources, n_right = 7, 12
    left = {f"urn:l:{s}": EntityProfile(f"urn:l:{s}", f"l{s}") for s in range(n_sources)}
    right = {f"urn:r:{i}": EntityProfile(f"urn:r:{i}", f"r{i}") for i in range(n_right)}
    cands = [
        Candidates(f"urn:l:{s}", [Candidate(f"urn:r:{(s + j) % n_right}", 0.9 - j * 0.01, j + 1) for j in range(4)], margin=0.01, mutual=False)
        for s in range(n_sources)
    ]

    def script(q: Question) -> str:  # a source picks a candidate by its number, or none
        s = int(q.source.iri.rsplit(":", 1)[1])
        return pick(f"urn:r:{(s + s % 4) % n_right}")(q) if s % 3 else q.none_letter

    config = VoteConfig(question="choice", rounds=3, gate=False)
    here = decide(cands, left, right, ScriptedJudge(script, logprob=LOGPROB, prompt_tokens=10, batch_size=3), config, several=several)
    judge = _Elsewhere(script, block=3)
    asked: list[int] = []
    elsewhere = decide(cands, left, right, judge, config, on_question=asked.append, several=several)
    assert [(d.source, d.kind, d.target, d.confidence, d.rounds) for d in elsewhere] == [
        (d.source, d.kind, d.target, d.confidence, d.rounds) for d in here
    ]
    assert any(d.kind == "match" for d in here) and any(d.kind == "none" for d in here)
    # Three blocks (3, 3 and 1 sources), each shipped with the targets its questions show only.
    assert judge.shipped == [4, 6, 6] and sum(asked) == sum(len(d.rounds) for d in here)


class _Losing(_Elsewhere):
    """An engine that gives back every block but the first."""

    def ask_blocks(self, blocks):
        return ((index, asked) for index, asked in super().ask_blocks(blocks) if index != 0)


def test_a_block_the_engine_does_not_give_back_stops_the_vote() -> None:
    """No source is left without its rounds as if the judge had been unsure."""
    left = {f"urn:l:{s}": EntityProfile(f"urn:l:{s}", f"l{s}") for s in range(5)}
    right = {f"urn:r:{i}": EntityProfile(f"urn:r:{i}", f"r{i}") for i in range(5)}
    cands = [Candidates(f"urn:l:{s}", [Candidate(f"urn:r:{s}", 0.9, 1), Candidate(f"urn:r:{(s + 1) % 5}", 0.8, 2)], margin=0.1, mutual=False) for s in range(5)]
    config = VoteConfig(question="choice", gate=False, rounds=3)
    with pytest.raises(RuntimeError, match="no votes for 1 of 3 blocks of sources"):
        decide(cands, left, right, _Losing(lambda q: "A", block=2), config)


def test_a_bias_on_none_of_these_chooses_the_answer_again_from_the_judge_s_scores():
    from kgalign.judging.base import Answer
    from kgalign.judging.vote import NoLetterScores, with_none_bias

    question = Question(source=EntityProfile(iri="s", label="s"), options=(EntityProfile(iri="a", label="a"), EntityProfile(iri="b", label="b")))
    assert question.letters == ["A", "B", "C"] and question.none_letter == "C"
    answer = Answer(raw="A", choice="A", logprob=-0.5, scores={"A": -1.0, "B": -2.0, "C": -1.5}, logprobs={"A": -0.5, "B": -2.5, "C": -1.2})
    assert with_none_bias(answer, question, 0.0) is answer
    assert with_none_bias(answer, question, 0.4) == answer  # -1.1 is still below -1.0
    none = with_none_bias(answer, question, 0.6)
    assert (none.choice, none.logprob, none.raw) == ("C", -1.2, "A")  # raw: what the model answered
    unbiased = Answer(raw="C", choice="C", logprob=-1.2, scores={"A": -1.0, "B": -2.0, "C": -0.9}, logprobs={"A": -0.5, "B": -2.5, "C": -1.2})
    assert with_none_bias(unbiased, question, -0.2).choice == "A"
    invalid = Answer(raw="?", choice=None)
    assert with_none_bias(invalid, question, 1.0) is invalid
    with pytest.raises(NoLetterScores, match="score of every letter"):
        with_none_bias(Answer(raw="A", choice="A", logprob=-0.5), question, 1.0)
