"""How many counterparts an entity has: detecting a run's cardinality from the data.

Real data is not always one-to-one: one graph may hold several records of one thing
(noisy copies, versions, offers of one product from many shops). :func:`detect_cardinality`
measures it before retrieval, on the lexical channel alone (TF-IDF of both sides'
entity texts, cheap), in both directions:

- an entity's *counterparts* are the entities of the other side that (a) score at least
  ``floor`` and within ``margin`` of its best match, and (b) have it as their own best
  match: several strong, mutually consistent counterparts, not a crowd of look-alikes;
- the *share* of a side is how many of its entities with a counterpart have two or more.

A side whose share reaches ``threshold`` is a "many" side's partner: left entities with
several right counterparts make the run one-to-many (1:n), right entities with several
left ones many-to-one (n:1), both many-to-many (n:m); else it stays 1:1. The evidence
and the choice go into run.json (``cardinality``) and one log line.

Where a judge is asked, its answers are evidence too (:func:`judge_evidence`,
:func:`with_judge`): a side retrieval found "many" stays so only if the judge, where its
answers measured that side, also linked several counterparts to at least ``threshold``
of the entities it linked. Look-alikes that are not the same thing (namesakes at one
address, a series of one model) pass the lexical test but not the judge's. The judge
only confirms or refutes: a one-winner question cannot show that a source has several
counterparts, and two sources picking one target in a one-to-one run is as often a
wrong answer as a real duplicate, so its answers never turn a side "many".

The thresholds were chosen on the development pair of bench/make_cardinality.py (OAEI
Person1 with one to four noisy records of each person on one side) and checked to leave
the 1:1 benchmarks one-to-one (docs/cardinality.md).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np

from kgalign.model import Decision

log = logging.getLogger(__name__)

CARDINALITIES = ("1:1", "1:n", "n:1", "n:m")
#: Candidates per entity the detection looks at, in each direction.
DETECT_K = 5
#: An entity's counterpart scores within this much of its best (TF-IDF cosine).
DETECT_MARGIN = 0.25
#: ... and at least this much.
DETECT_FLOOR = 0.5
#: Share of a side's matched entities with several counterparts that makes it "many".
DETECT_THRESHOLD = 0.15
#: Entities of a side the shares are measured on: a side with more is sampled, evenly
#: spaced in its order (the same rows every run). A share measured on 4,000 entities is
#: within about one point of the whole side's (binomial standard error), far from the
#: 15% threshold on every benchmark (docs/cardinality.md).
DETECT_SAMPLE = 4000
#: Entities of a side the judge must have linked before its share counts.
JUDGE_MIN_LINKED = 20


@dataclass(frozen=True)
class JudgeEvidence:
    """What the judge's answers say about several counterparts (:func:`judge_evidence`).

    Left: the judged sets (1:n and n:m runs) that accepted at least one option, and those
    that accepted several; measured only where sets were asked. Right: the targets the
    judge linked, and those linked from several sources."""

    left_linked: int
    left_several: int
    right_linked: int
    right_several: int
    sets: bool

    @property
    def left_share(self) -> float | None:
        return self.left_several / self.left_linked if self.sets and self.left_linked >= JUDGE_MIN_LINKED else None

    @property
    def right_share(self) -> float | None:
        return self.right_several / self.right_linked if self.right_linked >= JUDGE_MIN_LINKED else None

    def to_dict(self) -> dict:
        data = asdict(self)
        for side in ("left", "right"):
            share = getattr(self, f"{side}_share")
            data[f"{side}_share"] = None if share is None else round(share, 4)
        return data


@dataclass(frozen=True)
class CardinalityEvidence:
    """What :func:`detect_cardinality` measured, and what it chose."""

    choice: str
    left_matched: int
    left_several: int
    right_matched: int
    right_several: int
    threshold: float = DETECT_THRESHOLD
    margin: float = DETECT_MARGIN
    floor: float = DETECT_FLOOR
    #: Entities of each side the shares were measured on (all of them, or a sample).
    left_measured: int = 0
    right_measured: int = 0
    sampled: bool = False
    #: Where a judge was asked: its evidence, and the choice retrieval alone made.
    judge: JudgeEvidence | None = None
    retrieval_choice: str | None = None

    @property
    def left_share(self) -> float:
        return self.left_several / self.left_matched if self.left_matched else 0.0

    @property
    def right_share(self) -> float:
        return self.right_several / self.right_matched if self.right_matched else 0.0

    def to_dict(self) -> dict:
        data = asdict(self)
        data["left_share"] = round(self.left_share, 4)
        data["right_share"] = round(self.right_share, 4)
        data["judge"] = self.judge.to_dict() if self.judge is not None else None
        return data

    def summary(self) -> str:
        choice = self.retrieval_choice or self.choice
        return (
            f"cardinality {choice}: {self.left_several} of {self.left_matched} left entities ({self.left_share:.0%}) and "
            f"{self.right_several} of {self.right_matched} right entities ({self.right_share:.0%}) have several strong, "
            f"mutually consistent counterparts (threshold {self.threshold:.0%})"
            + (f"; measured on samples of {self.left_measured:,} and {self.right_measured:,} entities" if self.sampled else "")
        )

    def judge_summary(self) -> str:
        """One line on what the judge's answers showed and what became of the choice."""
        judged = self.judge
        if judged is None:
            return ""
        parts = []
        if judged.left_share is not None:
            parts.append(f"{judged.left_several} of {judged.left_linked} judged left entities ({judged.left_share:.0%}) have several counterparts accepted")
        if judged.right_share is not None:
            parts.append(f"{judged.right_several} of {judged.right_linked} right entities the judge linked ({judged.right_share:.0%}) were linked from several sources")
        said = "; ".join(parts) if parts else f"too few judged links to measure (fewer than {JUDGE_MIN_LINKED} a side)"
        verdict = f"cardinality revised from {self.retrieval_choice} to {self.choice}" if self.retrieval_choice != self.choice else f"cardinality {self.choice} kept"
        return f"the judge: {said}; {verdict}"


def _sorted_topk(a, b, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The best ``k`` rows of ``b`` for each row of ``a``, by TF-IDF cosine, best first.

    Past PRUNE_FROM_TARGETS rows of ``b`` the search ignores the most common features
    (kgalign.retrieval.retrieve): the candidates it finds are then scored again on every
    feature, as retrieval scores them, so the floor means the same at any size."""
    from kgalign.retrieval.retrieve import _prunes, _row_dot, lexical_topk

    scores, ids = lexical_topk(a, b, k, 1024)
    if _prunes(b.shape[0]):
        rows = np.repeat(np.arange(a.shape[0]), ids.shape[1])
        scores = _row_dot(a, b, rows, ids.ravel()).reshape(ids.shape)
    order = np.argsort(-scores, axis=1, kind="stable")
    return np.take_along_axis(scores, order, axis=1), np.take_along_axis(ids, order, axis=1)


def sample_rows(n: int, size: int) -> np.ndarray:
    """``size`` rows of ``n`` evenly spaced (all of them when ``n <= size``)."""
    if n <= size:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, size).round().astype(np.int64))


def _found(sources, targets, rows: np.ndarray, k: int, margin: float, floor: float) -> list[list[int]]:
    """The counterparts of each source row in ``rows`` among all targets: the targets
    that score at least ``floor`` and within ``margin`` of the row's best, and whose own
    best source (among all sources) is that row."""
    scores, ids = _sorted_topk(sources[rows], targets, k)
    strong = np.unique(ids[scores >= floor])
    back_best = np.full(targets.shape[0], -1, dtype=np.int64)
    if len(strong):
        from kgalign.retrieval.retrieve import _prunes

        # Past PRUNE_FROM_TARGETS the best by every feature is among the search's k, not its 1.
        _, best = _sorted_topk(targets[strong], sources, k if _prunes(sources.shape[0]) else 1)
        back_best[strong] = best[:, 0]
    found: list[list[int]] = []
    for i, row in enumerate(rows):
        best_score = scores[i, 0] if scores.shape[1] else 0.0
        cut = max(floor, best_score - margin)
        found.append([int(col) for col, score in zip(ids[i], scores[i]) if score >= cut and back_best[col] == row])
    return found


def detect_cardinality(
    left_texts: Sequence[str],
    right_texts: Sequence[str],
    *,
    k: int = DETECT_K,
    margin: float = DETECT_MARGIN,
    floor: float = DETECT_FLOOR,
    threshold: float = DETECT_THRESHOLD,
    sample: int = DETECT_SAMPLE,
    vectors: tuple | None = None,
) -> CardinalityEvidence:
    """Measure how many entities of each side have several counterparts, and choose the cardinality.

    ``vectors``: the sides' TF-IDF rows (:func:`kgalign.retrieval.retrieve.lexical_vectors`
    of the same texts), when the caller has them. A side of more than ``sample`` entities
    is measured on ``sample`` of them, each against the whole other side."""
    from kgalign.retrieval.retrieve import lexical_vectors

    if not left_texts or not right_texts:
        return CardinalityEvidence("1:1", 0, 0, 0, 0, threshold, margin, floor)
    left, right = vectors if vectors is not None else lexical_vectors(left_texts, right_texts)
    k = max(1, min(k, left.shape[0], right.shape[0]))
    left_rows, right_rows = sample_rows(left.shape[0], sample), sample_rows(right.shape[0], sample)
    # A row with no feature in common with any column still gets k columns (score 0):
    # the floor keeps them out.
    left_found = _found(left, right, left_rows, k, margin, floor)
    right_found = _found(right, left, right_rows, k, margin, floor)
    left_matched = sum(1 for c in left_found if c)
    right_matched = sum(1 for c in right_found if c)
    left_several = sum(1 for c in left_found if len(c) > 1)
    right_several = sum(1 for c in right_found if len(c) > 1)
    choice = _choice(bool(left_matched and left_several / left_matched >= threshold), bool(right_matched and right_several / right_matched >= threshold))
    sampled = len(left_rows) < left.shape[0] or len(right_rows) < right.shape[0]
    return CardinalityEvidence(
        choice, left_matched, left_several, right_matched, right_several, threshold, margin, floor, len(left_rows), len(right_rows), sampled
    )


def _choice(left_many: bool, right_many: bool) -> str:
    return "n:m" if left_many and right_many else "1:n" if left_many else "n:1" if right_many else "1:1"


def judge_evidence(decisions: Sequence[Decision], sets: bool) -> JudgeEvidence:
    """Count what the judge linked.

    Left: per judged source, the options its set accepted (``sets``; one-winner answers
    say nothing about several). Right: the targets a judged source linked, each counted
    with every source that linked it, the gate's confident matches included: a gated
    source is a mutual best match, so of several records of one thing at most one is
    gated and the others are judged; leaving it out would hide that the target has
    several. A person's decisions never count."""
    judged_targets: set[str] = set()
    sources_of: Counter[str] = Counter()
    left_linked = left_several = 0
    for decision in decisions:
        if decision.human or decision.kind != "match" or decision.target is None:
            continue
        if decision.gated or not decision.rounds:
            sources_of[decision.target] += 1
            continue
        linked = [vote.iri for vote in decision.accepted] if sets and decision.option_votes else [decision.target]
        left_linked += 1
        left_several += len(linked) > 1
        sources_of.update(linked)
        judged_targets.update(linked)
    right_several = sum(1 for target in judged_targets if sources_of[target] > 1)
    return JudgeEvidence(left_linked, left_several, len(judged_targets), right_several, sets)


def with_judge(evidence: CardinalityEvidence, judged: JudgeEvidence) -> CardinalityEvidence:
    """``evidence`` with the judge's, and the choice it leaves: a side retrieval found "many"
    stays so unless the judge measured that side (at least JUDGE_MIN_LINKED links) and found
    a share under the threshold. Never turns a side "many" (see the module text)."""
    left_many = evidence.choice in ("1:n", "n:m")
    right_many = evidence.choice in ("n:1", "n:m")
    if judged.left_share is not None:
        left_many = left_many and judged.left_share >= evidence.threshold
    if judged.right_share is not None:
        right_many = right_many and judged.right_share >= evidence.threshold
    return replace(evidence, choice=_choice(left_many, right_many), judge=judged, retrieval_choice=evidence.retrieval_choice or evidence.choice)
