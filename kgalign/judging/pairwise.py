"""The pairwise vote: each candidate is asked on its own, "are these two records the same
real-world entity?", in several rounds, and the rounds' probabilities of "yes" are averaged.

Small models transfer when they score pairs, not when they choose among candidates
(AnyMatch, Zhang et al. 2024; "Match, Compare, or Select?", Wang et al. 2025): a 135M
judge that picks one of five misreads data it never saw, one that scores a pair at a
time keeps much of what it learnt. Against position bias and hallucination the rounds
differ: round 1 shows the source record first, round 2 the candidate first, later rounds
alternate with the attributes of both records shown in another order
(:func:`pair_question`). A round is a :class:`~kgalign.model.Round` whose ``order``
holds the one candidate, with ``first`` (which record was shown first) and ``p_yes``.

A candidate's vote is the mean of its rounds' probabilities; its rounds *agree* when all
fall on the same side of the threshold. A source's decision (:func:`tally_pairwise`):
the candidate of the highest mean wins when it clears the threshold and its rounds
agree; a winner whose rounds disagree makes the decision uncertain; below the threshold
with agreeing rounds the decision is "none". Early stop (:func:`pair_settled`): a
candidate whose first round is far from the threshold (by :data:`CLEAR`) is not asked
again, nor one whose rounds already agree; a source stops when its every candidate has.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from statistics import fmean
from typing import TYPE_CHECKING

from kgalign.model import Round

if TYPE_CHECKING:
    from kgalign.judging.prompt import Question
    from kgalign.model import EntityProfile

#: How far from the threshold a first round's probability must be for the candidate not to be asked again.
CLEAR = 0.4
#: Which record a round shows first.
SOURCE_FIRST, CANDIDATE_FIRST = "source", "candidate"


def round_layout(round_index: int, candidate: str, source: str, seed: int) -> tuple[str, int | None]:
    """Which record round ``round_index`` shows first, and the seed its attributes are
    shuffled with (None: in their ranked order): rounds 0 and 1 show both orders with the
    ranked attributes; later rounds alternate the orders with shuffled attributes."""
    first = SOURCE_FIRST if round_index % 2 == 0 else CANDIDATE_FIRST
    if round_index < 2:
        return first, None
    return first, hash_seed(source, candidate, round_index, seed)


def hash_seed(*parts: object) -> int:
    """A seed from ``parts`` that is the same in every process (unlike ``hash``)."""
    import hashlib

    return int.from_bytes(hashlib.sha256("\x1f".join(map(str, parts)).encode("utf-8")).digest()[:8], "big")


def pair_question(source: EntityProfile, candidate: EntityProfile, first: str, shuffle: int | None, datamark: bool = False) -> Question:
    """The pairwise question of one round (see :func:`round_layout`)."""
    from kgalign.judging.prompt import Question

    return Question(source=source, options=(candidate,), datamark=datamark, pairwise=True, candidate_first=first == CANDIDATE_FIRST, shuffle=shuffle)


def candidate_votes(rounds: Sequence[Round]) -> dict[str, list[float]]:
    """Each candidate's rounds' probabilities of "yes" (invalid rounds left out), in the order first asked."""
    votes: dict[str, list[float]] = {}
    for round_ in rounds:
        if round_.order and round_.p_yes is not None:
            votes.setdefault(round_.order[0], []).append(round_.p_yes)
    return votes


def agree(probabilities: Sequence[float], threshold: float) -> bool:
    return all(p >= threshold for p in probabilities) or all(p < threshold for p in probabilities)


def candidate_settled(probabilities: Sequence[float], threshold: float, total: int) -> bool:
    """Whether a candidate needs no more rounds: all asked, or a first round far from the
    threshold, or two or more rounds that agree."""
    if len(probabilities) >= total:
        return True
    if len(probabilities) == 1:
        return abs(probabilities[0] - threshold) >= CLEAR
    return len(probabilities) >= 2 and agree(probabilities, threshold)


def order_bias(rounds_by_source: Mapping[str, Sequence[Round]]) -> float | None:
    """Mean probability of "yes" with the source shown first, less with it shown second, over
    the (source, candidate) pairs asked in both orders (None where none was)."""
    both: list[float] = []
    for rounds in rounds_by_source.values():
        firsts: dict[str, list[float]] = {}
        seconds: dict[str, list[float]] = {}
        for round_ in rounds:
            if round_.p_yes is None or not round_.order or not round_.first:
                continue
            (firsts if round_.first == SOURCE_FIRST else seconds).setdefault(round_.order[0], []).append(round_.p_yes)
        both.extend(fmean(firsts[c]) - fmean(seconds[c]) for c in firsts if c in seconds)
    return fmean(both) if both else None
