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
        )


def _sorted_topk(a, b, k: int) -> tuple[np.ndarray, np.ndarray]:
    from kgalign.retrieval.retrieve import lexical_topk

    scores, ids = lexical_topk(a, b, k, 1024)
    order = np.argsort(-scores, axis=1, kind="stable")
    return np.take_along_axis(scores, order, axis=1), np.take_along_axis(ids, order, axis=1)


def counterparts(scores: np.ndarray, ids: np.ndarray, back_best: np.ndarray, margin: float, floor: float) -> list[list[int]]:
    """Per row: the columns that score at least ``floor`` and within ``margin`` of the row's
    best, and whose own best row (``back_best``) is this row."""
    found: list[list[int]] = []
    for row in range(scores.shape[0]):
        best = scores[row, 0] if scores.shape[1] else 0.0
        cut = max(floor, best - margin)
        found.append([int(col) for col, score in zip(ids[row], scores[row]) if score >= cut and back_best[col] == row])
    return found


def detect_cardinality(
    left_texts: Sequence[str],
    right_texts: Sequence[str],
    *,
    k: int = DETECT_K,
    margin: float = DETECT_MARGIN,
    floor: float = DETECT_FLOOR,
    threshold: float = DETECT_THRESHOLD,
) -> CardinalityEvidence:
    """Measure how many entities of each side have several counterparts, and choose the cardinality."""
    from kgalign.retrieval.retrieve import lexical_vectors

    if not left_texts or not right_texts:
        return CardinalityEvidence("1:1", 0, 0, 0, 0, threshold, margin, floor)
    left, right = lexical_vectors(left_texts, right_texts)
    k = max(1, min(k, left.shape[0], right.shape[0]))
    lr_scores, lr_ids = _sorted_topk(left, right, k)
    rl_scores, rl_ids = _sorted_topk(right, left, k)
    # A row with no feature in common with any column still gets k columns (score 0):
    # the floor keeps them out.
    left_found = counterparts(lr_scores, lr_ids, rl_ids[:, 0], margin, floor)
    right_found = counterparts(rl_scores, rl_ids, lr_ids[:, 0], margin, floor)
    left_matched = sum(1 for c in left_found if c)
    right_matched = sum(1 for c in right_found if c)
    left_several = sum(1 for c in left_found if len(c) > 1)
    right_several = sum(1 for c in right_found if len(c) > 1)
    left_many = left_matched and left_several / left_matched >= threshold
    right_many = right_matched and right_several / right_matched >= threshold
    choice = "n:m" if left_many and right_many else "1:n" if left_many else "n:1" if right_many else "1:1"
    return CardinalityEvidence(choice, left_matched, left_several, right_matched, right_several, threshold, margin, floor)
