"""How many counterparts an entity has: detecting a run's cardinality from the data.

Real data is not always one-to-one: one graph may hold several records of one thing
(noisy copies, versions, offers of one product from many shops). :func:`detect_cardinality`
measures it before retrieval, on the lexical channel alone (TF-IDF of both sides'
entity texts, cheap), in both directions:

- an entity's *counterparts* are the entities of the other side that (a) score at least
  ``floor`` and within ``margin`` of its best match, and (b) have it as their own best
  match: several strong, mutually consistent counterparts, not a crowd of look-alikes;
- the *share* of a side is how many of its entities with a counterpart have two or more.

Look-alikes are not records of one thing: a catalogue lists the variants of a product
(colours, sizes) that all resemble one offer of the other side. A claim of several
counterparts therefore counts only where they are duplicates of each other within
their own graph too (:func:`closed_groups`): each one's nearest neighbour in its own
graph is another of them. Noisy copies of one record pass; a product line does not,
as its variants' nearest neighbours are other variants, not the ones the source chose.

A side whose share reaches ``threshold`` is a "many" side's partner: left entities with
several right counterparts make the run one-to-many (1:n), right entities with several
left ones many-to-one (n:1), both many-to-many (n:m); else it stays 1:1. The evidence
and the choice go into run.json (``cardinality``) and one log line.

Where a judge is asked, its answers are evidence too (:func:`judge_evidence`,
:func:`with_judge`): of the sources (targets) that retrieval gives several strong
counterparts and that the judge was asked about, the share where the judge linked
several too is its *confirmation rate*; a side stays "many" only if its share times that
rate still reaches ``threshold``. Look-alikes that are not the same thing (namesakes at
one address, a series of one model) pass the lexical test but not the judge's. The judge
only confirms or refutes: a one-winner question cannot show that a source has several
counterparts, and two sources picking one target in a one-to-one run is as often a
wrong answer as a real duplicate, so its answers never turn a side "many".
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np

from kgalign.model import Candidates, Decision

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
#: Claims of several counterparts on a side the judge must have checked before its rate counts.
JUDGE_MIN_CHECKED = 20
#: Share of the sources it was asked about that the judge must link before its one-winner
#: answers count against several sources sharing a target (see :func:`judge_evidence`).
JUDGE_MIN_LINKED_SHARE = 0.5


@dataclass(frozen=True)
class JudgeEvidence:
    """How often the judge confirmed retrieval's claims of several counterparts (:func:`judge_evidence`).

    Left (judged sets only): the judged sources with another strong candidate whose set
    accepted an option, and those whose set accepted several. Right: the targets strong
    for two or more sources, one of them judged at least, and those that two or more
    sources link; counted only when the judge linked at least JUDGE_MIN_LINKED_SHARE of
    the sources it was asked about (``judged``, ``judged_linked``)."""

    left_checked: int
    left_confirmed: int
    right_checked: int
    right_confirmed: int
    sets: bool
    judged: int = 0
    judged_linked: int = 0

    @property
    def left_rate(self) -> float | None:
        return self.left_confirmed / self.left_checked if self.sets and self.left_checked >= JUDGE_MIN_CHECKED else None

    @property
    def right_rate(self) -> float | None:
        links_enough = self.judged_linked >= JUDGE_MIN_LINKED_SHARE * self.judged
        return self.right_confirmed / self.right_checked if self.right_checked >= JUDGE_MIN_CHECKED and links_enough else None

    def to_dict(self) -> dict:
        data = asdict(self)
        for side in ("left", "right"):
            rate = getattr(self, f"{side}_rate")
            data[f"{side}_rate"] = None if rate is None else round(rate, 4)
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

    def judged_shares(self) -> tuple[float | None, float | None]:
        """Each side's share times the judge's confirmation rate (None: not measured)."""
        if self.judge is None:
            return None, None
        left, right = self.judge.left_rate, self.judge.right_rate
        return (None if left is None else self.left_share * left, None if right is None else self.right_share * right)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["left_share"] = round(self.left_share, 4)
        data["right_share"] = round(self.right_share, 4)
        if self.judge is not None:
            left, right = self.judged_shares()
            data["judge"] = {
                **self.judge.to_dict(),
                "left_judged_share": None if left is None else round(left, 4),
                "right_judged_share": None if right is None else round(right, 4),
            }
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
        left, right = self.judged_shares()
        parts = []
        if judged.left_rate is not None and left is not None:
            parts.append(
                f"it accepted several counterparts for {judged.left_confirmed} of {judged.left_checked} left entities retrieval gives several "
                f"({judged.left_rate:.0%}; left share {self.left_share:.0%} -> {left:.0%})"
            )
        if judged.right_rate is not None and right is not None:
            parts.append(
                f"{judged.right_confirmed} of {judged.right_checked} right entities strong for several sources were linked from several "
                f"({judged.right_rate:.0%}; right share {self.right_share:.0%} -> {right:.0%})"
            )
        said = "; ".join(parts) if parts else f"too few of retrieval's claims of several counterparts checked to measure (fewer than {JUDGE_MIN_CHECKED} a side)"
        verdict = f"cardinality revised from {self.retrieval_choice} to {self.choice}" if self.retrieval_choice != self.choice else f"cardinality {self.choice} kept"
        return f"the judge: {said}; {verdict}"


def _sorted_topk(a, b, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The best ``k`` rows of ``b`` for each row of ``a``, by TF-IDF cosine, best first.

    Past PRUNE_FROM_TARGETS rows of ``b`` the search ignores the most common features
    (kgalign.retrieval.retrieve): the candidates it finds are then scored again on every
    feature, as retrieval scores them, so the floor means the same at any size."""
    from kgalign.retrieval.retrieve import _prunes, _row_dot, lexical_topk

    scores, ids = lexical_topk(a, b, k, 1024)  # best first already
    if not _prunes(b.shape[0]):
        return scores, ids
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


#: A group of duplicates stands apart from its graph: the next record scores this much
#: below the group's weakest member (TF-IDF cosine).
CLOSED_MARGIN = 0.05


def closed_groups(targets, found: list[list[int]]) -> list[list[int]]:
    """``found`` (each source's counterparts, best first) where a claim of several is kept
    only if the counterparts are duplicates of each other within their own graph and of
    nothing else there: each one's nearest other rows of ``targets`` are the claim's
    others, and the next row scores CLOSED_MARGIN below them. (Records with no
    identifying content, alike to all their class, and the variants of a product line
    fail it; noisy copies of one record pass.) Another claim keeps its best counterpart alone."""
    claims = [cols for cols in found if len(cols) > 1]
    if not claims:
        return found
    claimed = sorted({col for cols in claims for col in cols})
    rows = np.asarray(claimed, dtype=np.int64)
    k = min(max(len(cols) for cols in claims) + 2, targets.shape[0])
    scores, ids = _sorted_topk(targets[rows], targets, k)
    nearest: dict[int, list[tuple[int, float]]] = {}
    for row, neighbours, found_scores in zip(claimed, ids, scores):
        nearest[row] = [(int(j), float(x)) for j, x in zip(neighbours, found_scores) if int(j) != row]

    def closed(cols: list[int]) -> bool:
        group = set(cols)
        for col in cols:
            others = nearest[col]
            inside = others[: len(cols) - 1]
            if {j for j, _ in inside} != group - {col}:
                return False
            if len(others) >= len(cols) and others[len(cols) - 1][1] > inside[-1][1] - CLOSED_MARGIN:
                return False
        return True

    return [cols if len(cols) < 2 or closed(cols) else cols[:1] for cols in found]


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
    left_found = closed_groups(right, _found(left, right, left_rows, k, margin, floor))
    right_found = closed_groups(left, _found(right, left, right_rows, k, margin, floor))
    left_matched = sum(1 for c in left_found if c)
    right_matched = sum(1 for c in right_found if c)
    left_several = sum(1 for c in left_found if len(c) > 1)
    right_several = sum(1 for c in right_found if len(c) > 1)
    choice = _choice(bool(left_matched and left_several / left_matched >= threshold), bool(right_matched and right_several / right_matched >= threshold))
    sampled = len(left_rows) < left.shape[0] or len(right_rows) < right.shape[0]
    return CardinalityEvidence(
        choice, left_matched, left_several, right_matched, right_several, threshold, margin, floor, len(left_rows), len(right_rows), sampled
    )


def detect_in_blocks(
    left_texts: Sequence[str],
    right_texts: Sequence[str],
    blocks: Sequence[tuple[np.ndarray, np.ndarray]],
    vectors: tuple | None = None,
    **options: float,
) -> CardinalityEvidence:
    """:func:`detect_cardinality` within each block of entities whose classes correspond
    (rows of each side), the counts added up: an entity's counterparts are looked for
    where its links may go."""
    from kgalign.retrieval.retrieve import lexical_vectors

    left, right = vectors if vectors is not None else lexical_vectors(left_texts, right_texts)
    found = [
        detect_cardinality([left_texts[i] for i in rows], [right_texts[j] for j in cols], vectors=(left[rows], right[cols]), **options)  # type: ignore[arg-type]
        for rows, cols in blocks
        if len(rows) and len(cols)
    ]
    if not found:
        return detect_cardinality([], [], **options)  # type: ignore[arg-type]
    first = found[0]
    total = {name: sum(getattr(e, name) for e in found) for name in ("left_matched", "left_several", "right_matched", "right_several", "left_measured", "right_measured")}
    left_many = bool(total["left_matched"] and total["left_several"] / total["left_matched"] >= first.threshold)
    right_many = bool(total["right_matched"] and total["right_several"] / total["right_matched"] >= first.threshold)
    return replace(first, choice=_choice(left_many, right_many), sampled=any(e.sampled for e in found), **total)


def _choice(left_many: bool, right_many: bool) -> str:
    return "n:m" if left_many and right_many else "1:n" if left_many else "n:1" if right_many else "1:1"


def judge_evidence(decisions: Sequence[Decision], candidates: Sequence[Candidates], sets: bool) -> JudgeEvidence:
    """Check retrieval's claims of several counterparts against the judge's answers.

    Left (``sets``): a judged source with another strong candidate
    (:func:`kgalign.resolution.resolve.strong_candidates`) whose set accepted an option
    is a claim checked; confirmed when it accepted several. (A set with nothing accepted
    says nothing about how many counterparts the source has.) Right: a target strong for
    two or more sources, one of them judged, is a claim checked; confirmed when two or
    more sources link it (the judge's answers, and the gate's matches: of several records
    of one thing at most one is a mutual best match, so the gate takes one and the judge
    sees the others). A judge that links fewer than JUDGE_MIN_LINKED_SHARE of the sources
    it is asked about (as an untuned model answering "none of these" to everything) is
    not taken as evidence on the right. A person's decisions never count."""
    from kgalign.resolution.resolve import strong_candidates

    by_source = {d.source: d for d in decisions if not d.human}
    claimed: dict[str, list[str]] = {}
    left_checked = left_confirmed = 0
    for cands in candidates:
        decision = by_source.get(cands.source)
        if decision is None:
            continue
        strong = strong_candidates(cands)
        for iri in strong:
            claimed.setdefault(iri, []).append(cands.source)
        if sets and decision.by_judge and decision.accepted and len(strong) > 1:
            left_checked += 1
            left_confirmed += len(decision.accepted) > 1
    linked: Counter[str] = Counter()
    for decision in by_source.values():
        if decision.kind != "match" or decision.target is None:
            continue
        targets = [vote.iri for vote in decision.accepted] if decision.judged_set else [decision.target]
        linked.update(targets)
    right_checked = right_confirmed = 0
    for target, sources in claimed.items():
        if len(sources) > 1 and any(by_source[source].by_judge for source in sources):
            right_checked += 1
            right_confirmed += linked[target] > 1
    asked = [d for d in by_source.values() if d.by_judge]
    answered = sum(1 for d in asked if d.kind == "match")
    return JudgeEvidence(left_checked, left_confirmed, right_checked, right_confirmed, sets, len(asked), answered)


def with_judge(evidence: CardinalityEvidence, judged: JudgeEvidence) -> CardinalityEvidence:
    """``evidence`` with the judge's, and the choice it leaves: a side retrieval found "many"
    stays so unless the judge checked enough of its claims (JUDGE_MIN_CHECKED) and the
    side's share times the judge's confirmation rate falls under the threshold. Never
    turns a side "many" (see the module text)."""
    revised = replace(evidence, judge=judged, retrieval_choice=evidence.retrieval_choice or evidence.choice)
    left, right = revised.judged_shares()
    left_many = evidence.choice in ("1:n", "n:m") and (left is None or left >= evidence.threshold)
    right_many = evidence.choice in ("n:1", "n:m") and (right is None or right >= evidence.threshold)
    return replace(revised, choice=_choice(left_many, right_many))
