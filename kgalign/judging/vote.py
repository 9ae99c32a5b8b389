"""Turn candidates into decisions: gating, rounds of questions, majority vote.

Per source entity:
- no candidates: decision ``none``;
- no judge (``--judge none``): the retrieval top-1 is a match when its score reaches
  ``min_score`` and the source is not contested (the cascade found its nearest target
  taken by a clear match, and no open target close to it);
- gated: a mutual nearest neighbour whose margin over the runner-up reaches
  ``gate_margin`` is accepted without asking (``gated`` in the log); with ``several``
  and ``audit`` (below), such a source with another candidate as strong as another
  record would be (:func:`kgalign.resolution.resolve.strong_candidates`) is gated too,
  except for a sample of up to SET_AUDIT of them (by IRI hash), whose sets are judged:
  the judge's answers there say whether retrieval's extra records are right, and a
  "many" side the judge does not confirm is revised
  (:func:`kgalign.resolution.cardinality.with_judge`);
- otherwise the judge is asked in rounds, each showing the candidates in another
  order (1: by score, 2: reversed, 3+: seeded shuffles). A candidate (or "none of
  these") wins with a strict majority of all rounds; otherwise the decision is
  ``uncertain`` and makes no link, unless ``plurality`` is set. Asking stops early
  once the leader has a majority or no option can reach one.
With ``several`` (the source may have several counterparts: ``--resolve 1:n`` or
``n:m``, deduplication), sets are judged instead of one winner: a round goes on after
the judge picks an option, asking again without the options picked so far, until it
answers "none of these" (or nothing is left, or the answer is not a valid letter). Each
option is accepted when it was picked in a strict majority of all rounds, that is, it
won against "not this one" in most orders; every option's count is logged. Early stop
ends the rounds once every option is accepted or out of reach.
All questions of a round (of a step of a round, for sets) go to the judge as one batch. A judge with a ``source_block``
(the local judge, which keeps the prompt prefix of that many sources) is asked about
the sources in blocks of that size, every round of a block before the next block, so
that a source's later rounds come while its prefix is still cached. A judge with an
``ask_blocks`` (``--engine ray``) asks the blocks on its workers, each as here
(:class:`BlockAsk`), and gives them back with their rounds.
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial

from kgalign.config import VoteConfig
from kgalign.errors import KgalignError
from kgalign.judging import pairwise
from kgalign.judging.base import Answer, Judge, clean_explanation, explainer
from kgalign.judging.prompt import Question
from kgalign.model import Candidates, Decision, EntityProfile, OptionVote, Round
from kgalign.resolution.resolve import strong_candidates

log = logging.getLogger(__name__)

NONE = "none"
#: Sources asked together under a judge budget: small blocks, so that the time measured
#: after each says early whether the next fits.
BUDGET_BLOCK = 8


def round_order(items: Sequence[str], round_index: int, source: str, seed: int) -> list[str]:
    """The candidate order shown in a round: by score, reversed, then seeded shuffles."""
    items = list(items)
    if round_index == 0:
        return items
    if round_index == 1:
        return items[::-1]
    digest = hashlib.sha256(f"{seed}:{source}:{round_index}".encode()).digest()
    rng = random.Random(int.from_bytes(digest[:8], "big"))
    rng.shuffle(items)
    return items


def questions_estimate(config: VoteConfig, sources: int) -> int:
    """Questions a vote asks about ``sources`` at most (a progress bar's total): a round
    each, or with pairwise questions a round per candidate shown."""
    return config.rounds * sources * (config.options if config.question == "pairwise" else 1)


def retrieval_decision(cands: Candidates, config: VoteConfig, gated: bool = False) -> Decision:
    top = cands.top
    if top is None:
        return Decision(source=cands.source, kind="none", target=None, confidence=0.0)
    if cands.contested_by is not None and not (config.closed_world and cands.mutual):
        # Its nearest target is another source's clear match; the open ones are far. In a
        # closed world the source has a counterpart: its best open target is taken where
        # that target's own best source is this one.
        return Decision(source=cands.source, kind="none", target=None, confidence=round(1.0 - max(top.score, 0.0), 6))
    if top.score < config.min_score:
        return Decision(source=cands.source, kind="none", target=None, confidence=round(1.0 - max(top.score, 0.0), 6), gated=gated)
    return Decision(source=cands.source, kind="match", target=top.iri, confidence=round(max(0.0, min(1.0, top.score)), 6), gated=gated)


#: Gated sources with another strong candidate whose sets are judged all the same (see the module text).
SET_AUDIT = 50


def is_gated(cands: Candidates, config: VoteConfig) -> bool:
    return config.gate and cands.mutual and cands.margin >= config.gate_margin and cands.contested_by is None


def audited_sources(candidates: Sequence[Candidates], config: VoteConfig, decided: Mapping[str, Decision], size: int = SET_AUDIT) -> set[str]:
    """The gated sources with another strong candidate whose sets are judged: the ``size``
    of them whose IRIs hash lowest, so that the sample does not depend on the order of
    the sources (``--since``: it changes only where entities come, go, or change which
    sources are gated with a strong second candidate). A set that accepts nothing leaves
    the source its gated match (``gated``, with the audit's rounds in the log)."""
    gated = [c.source for c in candidates if c.source not in decided and is_gated(c, config) and len(strong_candidates(c)) > 1]
    return set(sorted(gated, key=lambda iri: hashlib.sha256(iri.encode("utf-8")).digest())[:size])


@dataclass
class _Pending:
    cands: Candidates
    shown: list[str]
    rounds: list[Round]
    prompt: str | None = None
    latency: float = 0.0
    prompt_tokens: int = 0
    answer_tokens: int = 0
    done: bool = False


def decide(
    candidates: Sequence[Candidates],
    left_profiles: Mapping[str, EntityProfile],
    right_profiles: Mapping[str, EntityProfile],
    judge: Judge | None,
    config: VoteConfig,
    on_question: Callable[[int], None] | None = None,
    decided: Mapping[str, Decision] | None = None,
    several: bool = False,
    audit: bool = False,
) -> list[Decision]:
    """One decision per source entity, in the order of ``candidates``.

    ``decided`` maps source IRIs to decisions made already (human corrections): those
    sources are taken as they are and never asked, gated or scored. ``several``: judge
    sets; ``audit``: and a sample of the gated sources' sets (see the module text).
    """
    decisions: dict[str, Decision] = {}
    pending: list[_Pending] = []
    decided = decided or {}
    audited = audited_sources(candidates, config, decided) if several and audit and judge is not None else set()
    for cands in candidates:
        if cands.source in decided:
            decisions[cands.source] = decided[cands.source]
        elif not cands.items:
            decisions[cands.source] = Decision(source=cands.source, kind="none", target=None, confidence=0.0)
        elif judge is None:
            decisions[cands.source] = retrieval_decision(cands, config, gated=is_gated(cands, config))
        elif is_gated(cands, config) and cands.source not in audited:
            decisions[cands.source] = retrieval_decision(cands, config, gated=True)
        else:
            shown = [c.iri for c in cands.items[: config.options]]
            pending.append(_Pending(cands=cands, shown=shown, rounds=[]))

    if judge is not None and pending:
        block = _source_block(judge, len(pending))
        elsewhere = getattr(judge, "ask_blocks", None)
        if config.budget and elsewhere is not None:
            log.warning("--judge-budget applies to the local engine: an engine's workers ask every source")
        elif config.budget:
            # Most uncertain first: the budget goes where retrieval is least sure.
            pending.sort(key=lambda p: (p.cands.margin, -(p.cands.items[0].score if p.cands.items else 0.0)))
            block = min(block, BUDGET_BLOCK)
        ask = _Asking(left_profiles, right_profiles, judge, config, on_question, several)
        starts = range(0, len(pending), block)
        if elsewhere is None:
            started = time.perf_counter()
            for start in starts:
                spent = time.perf_counter() - started
                if config.budget and start and spent + spent / start * min(block, len(pending) - start) > config.budget:
                    for p in pending[start:]:
                        over = retrieval_decision(p.cands, config, gated=p.cands.source in audited and is_gated(p.cands, config))
                        decisions[p.cands.source] = replace(over, over_budget=True)
                    log.warning(
                        "judge budget of %.0f s: %d of %d sources asked in %.0f s; the other %d are decided by retrieval's scores",
                        config.budget, start, len(pending), spent, len(pending) - start,
                    )
                    pending = pending[:start]
                    break
                ask(pending[start : start + block])
        else:
            # An engine asks the blocks on its workers (--engine ray), each as it is asked here,
            # and gives each back with its rounds.
            left = set(range(len(starts)))
            for index, asked in elsewhere([ask.block(pending[start : start + block]) for start in starts]):
                if index not in left:
                    raise RuntimeError(f"the judge's engine gave back block {index} twice, or a block it was not given")
                expected = min(block, len(pending) - starts[index])
                if len(asked) != expected:
                    raise RuntimeError(f"the judge's engine gave back block {index} with {len(asked)} sources of {expected}")
                left.discard(index)
                pending[starts[index] : starts[index] + len(asked)] = asked
                if on_question:
                    on_question(sum(len(p.rounds) for p in asked))
            if left:
                raise RuntimeError(f"the judge's engine gave back no votes for {len(left)} of {len(starts)} blocks of sources")

    for p in pending:
        if config.question == "pairwise":
            decision = _tally_pairwise(p, config, several)
        else:
            decision = _tally_set(p, config) if several else _tally(p, config)
        if p.cands.source in audited and not decision.accepted:
            # The audit asks for evidence; it does not take back the gate's confident match.
            kept = retrieval_decision(p.cands, config, gated=True)
            decision = replace(kept, rounds=decision.rounds, option_votes=decision.option_votes, prompt=decision.prompt)
        elif config.closed_world and decision.kind in ("none", "uncertain"):
            # The source has a counterpart: the judge's "no" cannot be right, its rounds stay as evidence.
            kept = retrieval_decision(p.cands, config)
            decision = replace(decision, kind=kept.kind, target=kept.target, confidence=kept.confidence, to_retrieval=True)
        decisions[p.cands.source] = decision
    return [decisions[c.source] for c in candidates]


def check_answered(decisions: Sequence[Decision], judge: str) -> None:
    """Stop where the judge answered none of the questions this run asked it (a server
    down, a model missing): every round would be an invalid vote and no source linked by
    the judge, a result that only looks like one. Warn where some went unanswered. The
    answers given are in the answer cache either way."""
    asked = [r for d in decisions if not d.kept for r in d.rounds]
    failed = [r for r in asked if r.error]
    if not failed:
        return
    if len(failed) == len(asked):
        raise KgalignError(f"judge {judge}: no answer to any of its {len(asked)} questions ({failed[0].error}); nothing was written")
    log.warning("judge %s: %d of %d questions got no answer (%s); those rounds count as invalid votes", judge, len(failed), len(asked), failed[0].error)


def _source_block(judge: Judge, pending: int) -> int:
    """How many sources to ask all rounds of together: the judge's ``source_block``, else all."""
    block = getattr(judge, "source_block", None)
    return block if isinstance(block, int) and not isinstance(block, bool) and block > 0 else max(pending, 1)


@dataclass(frozen=True)
class _Asking:
    """What asking the judge needs: the entities shown, the judge, the vote's settings and
    the progress callback; ``several``: judged sets. Called on a block of sources, it asks
    every round of them (:meth:`__call__`)."""

    left_profiles: Mapping[str, EntityProfile]
    right_profiles: Mapping[str, EntityProfile]
    judge: Judge
    config: VoteConfig
    on_question: Callable[[int], None] | None
    several: bool = False

    def block(self, pending: list[_Pending]) -> BlockAsk:
        """``pending`` with just the entities its questions show, to be asked elsewhere."""
        right = {iri: self.right_profiles[iri] for p in pending for iri in p.shown}
        return BlockAsk(pending, {p.cands.source: self.left_profiles[p.cands.source] for p in pending}, right, self.config, self.several)

    def __call__(self, pending: list[_Pending]) -> None:
        """Every round of ``pending``, each source stopping early once settled: one batch a
        round, or with ``several`` (judged sets) one batch a step of the round."""
        config = self.config
        if config.question == "pairwise":
            self._pairwise(pending)
            return
        for round_index in range(config.rounds):
            active = [p for p in pending if not p.done]
            if not active:
                break
            orders = [round_order(p.shown, round_index, p.cands.source, config.seed) for p in active]
            if self.several:
                self._steps(active, orders)
            else:
                self._batch(active, orders)
                if self.on_question:
                    self.on_question(len(active))
            for p in active:
                if config.early_stop and (_set_settled(p, config.rounds) if self.several else _settled(p.rounds, config.rounds)):
                    p.done = True

    def _batch(self, asking: list[_Pending], orders: list[list[str]], step: int = 0) -> list[Round]:
        """One question to the judge for each of ``asking`` (its options in ``orders``), in one
        batch; each answer recorded as a round of its source (``step`` of a judged set's round)."""
        questions = [
            Question(source=self.left_profiles[p.cands.source], options=tuple(self.right_profiles[i] for i in order), datamark=self.config.datamark)
            for p, order in zip(asking, orders)
        ]
        started = time.perf_counter()
        answers = self.judge.answer(questions)
        elapsed = (time.perf_counter() - started) / max(len(asking), 1)
        if len(answers) != len(questions):
            raise RuntimeError(f"judge {self.judge.name} returned {len(answers)} answers for {len(questions)} questions")
        rounds = []
        for p, order, question, answer in zip(asking, orders, questions, answers):
            round_ = _round(order, question, with_none_bias(answer, question, self.config.none_bias))
            round_.step = step
            p.rounds.append(round_)
            if p.prompt is None:
                p.prompt = question.text()
            p.latency += elapsed
            p.prompt_tokens += answer.prompt_tokens
            p.answer_tokens += answer.answer_tokens
            rounds.append(round_)
        return rounds

    def _pairwise(self, pending: list[_Pending]) -> None:
        """Every round of a pairwise vote (:mod:`kgalign.judging.pairwise`): a round asks,
        in one batch, about each candidate of each source that is not settled yet."""
        config = self.config
        for round_index in range(config.rounds):
            asks = [(p, iri) for p in pending if not p.done for iri in self._open(p)]
            if not asks:
                break
            questions = []
            layouts = []
            for p, iri in asks:
                first, shuffle = pairwise.round_layout(round_index, iri, p.cands.source, config.seed)
                layouts.append(first)
                source, candidate = self.left_profiles[p.cands.source], self.right_profiles[iri]
                questions.append(pairwise.pair_question(source, candidate, first, shuffle, config.datamark))
            started = time.perf_counter()
            answers = self.judge.answer(questions)
            elapsed = time.perf_counter() - started
            if len(answers) != len(questions):
                raise RuntimeError(f"judge {self.judge.name} returned {len(answers)} answers for {len(questions)} questions")
            for (p, iri), first, question, answer in zip(asks, layouts, questions, answers):
                round_ = _round([iri], question, answer)
                round_.first = first
                round_.p_yes = yes_probability(answer, question)
                p.rounds.append(round_)
                if p.prompt is None:
                    p.prompt = question.text()
                p.latency += elapsed / len(asks)
                p.prompt_tokens += answer.prompt_tokens
                p.answer_tokens += answer.answer_tokens
            if self.on_question:
                self.on_question(len(asks))
            for p in pending:
                p.done = not self._open(p)

    def _open(self, p: _Pending) -> list[str]:
        """The candidates of ``p`` a pairwise vote still asks about: asked in fewer than
        every round, and (with early stop) not settled by the rounds asked."""
        config = self.config
        votes = pairwise.candidate_votes(p.rounds)
        asked = Counter(r.order[0] for r in p.rounds if r.order)
        return [
            iri
            for iri in p.shown
            if asked[iri] < config.rounds and not (config.early_stop and pairwise.candidate_settled(votes.get(iri, []), config.resolved_pair_threshold, config.rounds))
        ]

    def _steps(self, active: list[_Pending], orders: list[list[str]]) -> None:
        """One round of a judged set: a batch a step, each step without the options picked
        at the steps before, until a source's answer is "none of these" (or no option is left)."""
        remaining = {id(p): order for p, order in zip(active, orders)}
        asking = active
        step = 0
        while asking:
            rounds = self._batch(asking, [remaining[id(p)] for p in asking], step)
            going_on = []
            for p, round_ in zip(asking, rounds):
                if round_.target not in (None, NONE):
                    left = [iri for iri in remaining[id(p)] if iri != round_.target]
                    if left:
                        remaining[id(p)] = left
                        going_on.append(p)
            if self.on_question:
                self.on_question(len(asking))
            asking = going_on
            step += 1


@dataclass
class BlockAsk:
    """A block of sources to ask on an engine's worker (:meth:`_Asking.block`): their votes
    so far and the entities their questions show; :meth:`run` asks every round of them as
    :func:`decide` does in one process."""

    pending: list[_Pending]
    left_profiles: dict[str, EntityProfile]
    right_profiles: dict[str, EntityProfile]
    config: VoteConfig
    several: bool

    def run(self, judge: Judge) -> list[_Pending]:
        _Asking(self.left_profiles, self.right_profiles, judge, self.config, None, self.several)(self.pending)
        return self.pending


def set_rounds(rounds: Sequence[Round]) -> list[list[Round]]:
    """The questions of a judged set grouped by round (a round starts at step 0)."""
    grouped: list[list[Round]] = []
    for round_ in rounds:
        if round_.step == 0 or not grouped:
            grouped.append([])
        grouped[-1].append(round_)
    return grouped


def _picks(shown: Sequence[str], rounds: Sequence[Round]) -> dict[str, list[Round]]:
    """For each option shown, the questions (at most one a round) at which it was picked."""
    picks: dict[str, list[Round]] = {iri: [] for iri in shown}
    for round_ in rounds:
        if round_.target in picks:
            picks[round_.target].append(round_)
    return picks


def _set_settled(p: _Pending, total: int) -> bool:
    """True when every option shown is accepted already or can no longer be, and (for a
    set with nothing accepted) whether "none of these" wins is decided too."""
    grouped = set_rounds(p.rounds)
    done = len(grouped)
    need = total // 2 + 1

    def decided(count: int) -> bool:
        return count >= need or count + total - done < need

    picks = _picks(p.shown, p.rounds).values()
    if not all(decided(len(won)) for won in picks):
        return False
    if any(len(won) >= need for won in picks):
        return True
    return decided(sum(1 for group in grouped if group[0].target == NONE))


def _tally_set(p: _Pending, config: VoteConfig) -> Decision:
    """The judged set: every option picked in a strict majority of the configured rounds.

    An option's confidence is its share of the rounds asked times the mean probability of
    its picks (as a one-winner vote's). The decision's target is the strongest accepted
    option (most picks, then earliest steps, then retrieval rank); with none accepted it
    is "none" when "none of these" was the first answer in a majority of rounds, else
    "uncertain"."""
    grouped = set_rounds(p.rounds)
    asked = len(grouped)
    need = config.rounds // 2 + 1
    votes = []
    for rank, (iri, won) in enumerate(_picks(p.shown, p.rounds).items()):
        probs = [math.exp(r.logprob) for r in won if r.logprob is not None]
        share = len(won) / asked if asked else 0.0
        confidence = share * (sum(probs) / len(probs) if probs else 1.0)
        steps = sum(r.step for r in won) / len(won) if won else math.inf
        vote = OptionVote(iri=iri, picked=len(won), rounds=asked, accepted=len(won) >= need, confidence=round(confidence, 6))
        votes.append((not vote.accepted, -vote.picked, steps, rank, vote))
    votes.sort(key=lambda item: item[:4])
    option_votes = [item[-1] for item in votes]
    decision = _decision(p, early_stopped=asked < config.rounds, option_votes=option_votes)
    accepted = [vote for vote in option_votes if vote.accepted]
    if accepted:
        return decision(kind="match", target=accepted[0].iri, confidence=accepted[0].confidence)
    nothing = [group for group in grouped if group[0].target == NONE]
    if len(nothing) >= need:
        probs = [math.exp(group[0].logprob) for group in nothing if group[0].logprob is not None]
        confidence = len(nothing) / asked * (sum(probs) / len(probs) if probs else 1.0)
        return decision(kind="none", target=None, confidence=round(confidence, 6))
    best = max((vote.picked for vote in option_votes), default=0)
    return decision(kind="uncertain", target=None, confidence=round(max(best, len(nothing)) / asked if asked else 0.0, 6))


class NoLetterScores(KgalignError):
    """A bias on "none of these" met an answer without the score of every letter."""


def with_none_bias(answer: Answer, question: Question, bias: float) -> Answer:
    """``answer``, chosen again with ``bias`` added to the score of "none of these" (the
    vote's ``none_bias``); as it is where the bias is 0 or the answer is invalid. Its
    ``raw`` stays what the model produced."""
    if not bias or answer.choice is None:
        return answer
    scores, logprobs = answer.scores, answer.logprobs
    if scores is None or logprobs is None or not set(question.letters) <= scores.keys() & logprobs.keys():
        raise NoLetterScores(
            "none_bias needs the judge's score of every letter: the local judge gives them (an answer from an "
            "earlier kgalign's cache does not: give another output folder or --no-cache)"
        )
    none = question.none_letter
    best = max(question.letters, key=lambda letter: scores[letter] + (bias if letter == none else 0.0))
    return replace(answer, choice=best, logprob=logprobs[best])


def _round(order: list[str], question: Question, answer: Answer) -> Round:
    target = None
    if answer.choice is not None:
        index = question.letters.index(answer.choice)
        target = NONE if answer.choice == question.none_letter else order[index]
    return Round(
        order=order,
        raw=answer.raw,
        choice=answer.choice,
        target=target,
        logprob=answer.logprob,
        cached=answer.cached,
        error=answer.error,
        retries=answer.retries,
    )


def two_way_yes(yes: float, no: float) -> float:
    """The probability of yes between the two answers, from their log-probabilities."""
    top = max(yes, no)
    a, b = math.exp(yes - top), math.exp(no - top)
    return a / (a + b)


def yes_probability(answer: Answer, question: Question) -> float | None:
    """A pairwise answer's probability of yes: from the log-probabilities of both answers
    where the judge gives them (the local judge; a served one that lists both), else from
    the chosen answer's (1 - p where it is no), else 1 or 0; None for an invalid answer."""
    if not question.pairwise or answer.choice is None:
        return None
    yes, no = question.letters
    logprobs = answer.logprobs or {}
    if yes in logprobs and no in logprobs:
        return round(two_way_yes(logprobs[yes], logprobs[no]), 6)
    if answer.logprob is not None:
        p = min(1.0, math.exp(answer.logprob))
        return round(p if answer.choice == yes else 1.0 - p, 6)
    return 1.0 if answer.choice == yes else 0.0


def _tally_pairwise(p: _Pending, config: VoteConfig, several: bool) -> Decision:
    """A source's decision from its candidates' pairwise votes (:mod:`kgalign.judging.pairwise`):
    the highest mean probability of yes wins when it clears the threshold and its rounds
    agree; rounds that disagree make the decision uncertain. With ``several`` every
    candidate that clears the threshold with agreeing rounds is accepted (a judged set)."""
    threshold = config.resolved_pair_threshold
    votes = pairwise.candidate_votes(p.rounds)
    means = {iri: sum(v) / len(v) for iri, v in votes.items()}
    ranked = sorted(votes, key=lambda iri: (-means[iri], p.shown.index(iri) if iri in p.shown else len(p.shown)))
    option_votes = []
    if several:
        for iri in ranked:
            probabilities = votes[iri]
            accepted = means[iri] >= threshold and pairwise.agree(probabilities, threshold)
            picked = sum(1 for x in probabilities if x >= threshold)
            option_votes.append(OptionVote(iri=iri, picked=picked, rounds=len(probabilities), accepted=accepted, confidence=round(means[iri], 6)))
        option_votes.sort(key=lambda vote: not vote.accepted)
    decision = _decision(p, early_stopped=any(len(votes.get(iri, [])) < config.rounds for iri in p.shown), option_votes=option_votes)
    taken = [vote for vote in option_votes if vote.accepted]
    if taken:  # a judged set: its accepted candidates are its links
        return decision(kind="match", target=taken[0].iri, confidence=taken[0].confidence)
    if not ranked:
        return decision(kind="uncertain", target=None, confidence=0.0)
    best = ranked[0]
    mean = means[best]
    if not pairwise.agree(votes[best], threshold):
        return decision(kind="uncertain", target=None, confidence=round(mean, 6))
    if mean >= threshold:
        return decision(kind="match", target=best, confidence=round(mean, 6))
    if any(iri not in votes for iri in p.shown):
        # A candidate every answer about was invalid: "none" would be a guess.
        return decision(kind="uncertain", target=None, confidence=round(1.0 - mean, 6))
    return decision(kind="none", target=None, confidence=round(1.0 - mean, 6))


def _decision(p: _Pending, early_stopped: bool, option_votes: list[OptionVote] | None = None) -> partial[Decision]:
    """A judged source's Decision, all but its outcome (kind, target, confidence): its
    rounds, prompt, tokens and latency, as every tally records them."""
    return partial(
        Decision,
        source=p.cands.source,
        rounds=p.rounds,
        early_stopped=early_stopped,
        prompt=p.prompt,
        prompt_tokens=p.prompt_tokens,
        answer_tokens=p.answer_tokens,
        latency_s=round(p.latency, 4),
        option_votes=option_votes or [],
    )


def _settled(rounds: list[Round], total: int) -> bool:
    """True when the leader already has a strict majority, or nobody can reach one."""
    counts = Counter(r.target for r in rounds if r.target is not None)
    remaining = total - len(rounds)
    need = total // 2 + 1
    leader = counts.most_common(1)[0][1] if counts else 0
    if leader >= need:
        return True
    return leader + remaining < need


def _tally(p: _Pending, config: VoteConfig) -> Decision:
    counts = Counter(r.target for r in p.rounds if r.target is not None)
    need = config.rounds // 2 + 1
    ranked = counts.most_common()
    winner = None
    if ranked and ranked[0][1] >= need:
        winner = ranked[0][0]
    elif config.plurality and ranked and (len(ranked) == 1 or ranked[0][1] > ranked[1][1]):
        winner = ranked[0][0]
    decision = _decision(p, early_stopped=len(p.rounds) < config.rounds)
    if winner is None:
        share = ranked[0][1] / len(p.rounds) if ranked and p.rounds else 0.0
        return decision(kind="uncertain", target=None, confidence=round(share, 6))
    votes = [r for r in p.rounds if r.target == winner]
    share = len(votes) / len(p.rounds)
    probs = [math.exp(r.logprob) for r in votes if r.logprob is not None]
    confidence = share * (sum(probs) / len(probs) if probs else 1.0)
    if winner == NONE:
        return decision(kind="none", target=None, confidence=round(confidence, 6))
    return decision(kind="match", target=winner, confidence=round(confidence, 6))


def explain_decisions(
    decisions: Sequence[Decision],
    left_profiles: Mapping[str, EntityProfile],
    right_profiles: Mapping[str, EntityProfile],
    judge: object | None,
    datamark: bool = False,
) -> int:
    """Ask the judge for one sentence of reason for each judged decision; return how many it gave.

    Only decisions the judge voted on are explained (not gated, human or retrieval-only
    ones), and only those with a winner (``match`` or ``none``): the reason is asked
    for on the first round's question, with the winning option as the answer. The
    reason is stored in ``Decision.explanation``. A backend without ``explain`` is
    skipped with a warning.
    """
    explaining = explainer(judge)
    if explaining is None:
        name = getattr(judge, "name", None) or "none"
        log.warning("judge %s cannot explain its decisions (no 'explain' method); --explain skipped", name)
        return 0
    wanted = [d for d in decisions if d.rounds and not d.gated and not d.human and d.kind in ("match", "none")]
    if not wanted:
        return 0
    questions: list[Question] = []
    letters: list[str] = []
    for d in wanted:
        if d.rounds[0].first:  # a pairwise vote: the reason the target is the same, or the best candidate is not
            target = d.target if d.kind == "match" and d.target else d.rounds[0].order[0]
            pair = pairwise.pair_question(left_profiles[d.source], right_profiles[target], pairwise.SOURCE_FIRST, None, datamark)
            questions.append(pair)
            letters.append("A" if d.kind == "match" else "B")
            continue
        order = d.rounds[0].order
        question = Question(
            source=left_profiles[d.source], options=tuple(right_profiles[i] for i in order), datamark=datamark
        )
        if d.kind == "match" and d.target in order:
            letter = question.letters[order.index(d.target)]
        else:
            letter = question.none_letter
        questions.append(question)
        letters.append(letter)
    reasons = explaining.explain(questions, letters)
    if len(reasons) != len(wanted):
        raise RuntimeError(f"judge {explaining.name} returned {len(reasons)} explanations for {len(wanted)} decisions")
    given = 0
    for d, reason in zip(wanted, reasons):
        d.explanation = clean_explanation(reason) or None
        given += d.explanation is not None
    log.info("explained %d of %d judged decisions", given, len(wanted))
    return given
