"""Turn candidates into decisions: gating, rounds of questions, majority vote.

Per source entity:
- no candidates: decision ``none``;
- no judge (``--judge none``): the retrieval top-1 is a match when its score reaches
  ``min_score`` and the source is not contested (the cascade found its nearest target
  taken by a clear match, and no open target close to it);
- gated: a mutual nearest neighbour whose margin over the runner-up reaches
  ``gate_margin`` is accepted without asking (``gated`` in the log);
- otherwise the judge is asked in rounds, each showing the candidates in another
  order (1: by score, 2: reversed, 3+: seeded shuffles). A candidate (or "none of
  these") wins with a strict majority of all rounds; otherwise the decision is
  ``uncertain`` and makes no link, unless ``plurality`` is set. Asking stops early
  once the leader has a majority or no option can reach one.
All questions of a round go to the judge as one batch. A judge with a ``source_block``
(the local judge, which keeps the prompt prefix of that many sources) is asked about
the sources in blocks of that size, every round of a block before the next block, so
that a source's later rounds come while its prefix is still cached.
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial

from kgalign.config import VoteConfig
from kgalign.judging.base import Answer, Judge, clean_explanation, explainer
from kgalign.judging.prompt import Question
from kgalign.model import Candidates, Decision, EntityProfile, Round

log = logging.getLogger(__name__)

NONE = "none"


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


def retrieval_decision(cands: Candidates, config: VoteConfig, gated: bool = False) -> Decision:
    top = cands.top
    if top is None:
        return Decision(source=cands.source, kind="none", target=None, confidence=0.0)
    if cands.contested_by is not None:
        # Its nearest target is another source's clear match; the open ones are far.
        return Decision(source=cands.source, kind="none", target=None, confidence=round(1.0 - max(top.score, 0.0), 6))
    if top.score < config.min_score:
        return Decision(source=cands.source, kind="none", target=None, confidence=round(1.0 - max(top.score, 0.0), 6), gated=gated)
    return Decision(source=cands.source, kind="match", target=top.iri, confidence=round(max(0.0, min(1.0, top.score)), 6), gated=gated)


def is_gated(cands: Candidates, config: VoteConfig) -> bool:
    return config.gate and cands.mutual and cands.margin >= config.gate_margin and cands.contested_by is None


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
    left_profiles: dict[str, EntityProfile],
    right_profiles: dict[str, EntityProfile],
    judge: Judge | None,
    config: VoteConfig,
    on_question: Callable[[int], None] | None = None,
    decided: Mapping[str, Decision] | None = None,
) -> list[Decision]:
    """One decision per source entity, in the order of ``candidates``.

    ``decided`` maps source IRIs to decisions made already (human corrections): those
    sources are taken as they are and never asked, gated or scored.
    """
    decisions: dict[str, Decision] = {}
    pending: list[_Pending] = []
    decided = decided or {}
    for cands in candidates:
        if cands.source in decided:
            decisions[cands.source] = decided[cands.source]
        elif not cands.items:
            decisions[cands.source] = Decision(source=cands.source, kind="none", target=None, confidence=0.0)
        elif judge is None:
            decisions[cands.source] = retrieval_decision(cands, config, gated=is_gated(cands, config))
        elif is_gated(cands, config):
            decisions[cands.source] = retrieval_decision(cands, config, gated=True)
        else:
            shown = [c.iri for c in cands.items[: config.options]]
            pending.append(_Pending(cands=cands, shown=shown, rounds=[]))

    if judge is not None and pending:
        block = _source_block(judge, len(pending))
        for start in range(0, len(pending), block):
            _ask(pending[start : start + block], left_profiles, right_profiles, judge, config, on_question)

    for p in pending:
        decisions[p.cands.source] = _tally(p, config)
    return [decisions[c.source] for c in candidates]


def _source_block(judge: Judge, pending: int) -> int:
    """How many sources to ask all rounds of together: the judge's ``source_block``, else all."""
    block = getattr(judge, "source_block", None)
    return block if isinstance(block, int) and not isinstance(block, bool) and block > 0 else max(pending, 1)


def _ask(
    pending: list[_Pending],
    left_profiles: dict[str, EntityProfile],
    right_profiles: dict[str, EntityProfile],
    judge: Judge,
    config: VoteConfig,
    on_question: Callable[[int], None] | None,
) -> None:
    """Every round of ``pending``, one batch a round, each source stopping early once settled."""
    for round_index in range(config.rounds):
        active = [p for p in pending if not p.done]
        if not active:
            break
        questions = []
        orders = []
        for p in active:
            order = round_order(p.shown, round_index, p.cands.source, config.seed)
            orders.append(order)
            questions.append(
                Question(
                    source=left_profiles[p.cands.source],
                    options=tuple(right_profiles[i] for i in order),
                    datamark=config.datamark,
                )
            )
        started = time.perf_counter()
        answers = judge.answer(questions)
        elapsed = (time.perf_counter() - started) / max(len(active), 1)
        if len(answers) != len(questions):
            raise RuntimeError(f"judge {judge.name} returned {len(answers)} answers for {len(questions)} questions")
        for p, order, question, answer in zip(active, orders, questions, answers):
            p.rounds.append(_round(order, question, answer))
            if p.prompt is None:
                p.prompt = question.text()
            p.latency += elapsed
            p.prompt_tokens += answer.prompt_tokens
            p.answer_tokens += answer.answer_tokens
            if config.early_stop and _settled(p.rounds, config.rounds):
                p.done = True
        if on_question:
            on_question(len(active))


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
    early = len(p.rounds) < config.rounds
    decision = partial(
        Decision,
        source=p.cands.source,
        rounds=p.rounds,
        early_stopped=early,
        prompt=p.prompt,
        prompt_tokens=p.prompt_tokens,
        answer_tokens=p.answer_tokens,
        latency_s=round(p.latency, 4),
    )
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
    left_profiles: dict[str, EntityProfile],
    right_profiles: dict[str, EntityProfile],
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
