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

The thresholds were chosen on the development pair of bench/make_cardinality.py (OAEI
Person1 with one to four noisy records of each person on one side) and checked to leave
the 1:1 benchmarks one-to-one (docs/cardinality.md).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

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
        return data

    def summary(self) -> str:
        return (
            f"cardinality {self.choice}: {self.left_several} of {self.left_matched} left entities ({self.left_share:.0%}) and "
            f"{self.right_several} of {self.right_matched} right entities ({self.right_share:.0%}) have several strong, "
            f"mutually consistent counterparts (threshold {self.threshold:.0%})"
            + (f"; measured on samples of {self.left_measured:,} and {self.right_measured:,} entities" if self.sampled else "")
        )


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
    left_many = left_matched and left_several / left_matched >= threshold
    right_many = right_matched and right_several / right_matched >= threshold
    choice = "n:m" if left_many and right_many else "1:n" if left_many else "n:1" if right_many else "1:1"
    sampled = len(left_rows) < left.shape[0] or len(right_rows) < right.shape[0]
    return CardinalityEvidence(
        choice, left_matched, left_several, right_matched, right_several, threshold, margin, floor, len(left_rows), len(right_rows), sampled
    )
