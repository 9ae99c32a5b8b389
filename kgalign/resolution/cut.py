"""The score below which a source has no counterpart: chosen from the run's own scores.

The scores compared are the lexical channel's (TF-IDF cosine of the two texts), the one
score every source and candidate has on one scale (the cascade scores a settled source
on it alone, an open one with embeddings mixed in).

Without a judge, in a one-to-one run, a source whose best candidate is not its match
must get no link (where a source may have several counterparts its runner-up may be
one of them: no cut there). No
label says which those are, but the scores do. For a source that has a counterpart,
its *runner-up* scores as its best non-match does; for a source without one, its best
candidate *is* its best non-match. So the runner-ups of the sources whose best is a
clear match (mutual best, leading by the gate's margin) sample the distribution of a
no-counterpart source's best score: the *null*.

From it, :func:`choose_cut` estimates how many sources have no counterpart (Storey's
estimate: the sources whose best score lies below the null's median, against the half
of the null that lies there, :data:`LAMBDA`; under :data:`MIN_SHARE` of the sources the
world is taken as closed and nothing is cut), and chooses the cut that minimises the
expected errors: no-counterpart sources above it (their share of the null above it)
plus sources with a counterpart below it (the sources below it, less the
no-counterpart ones expected there). Where nearly every source has a counterpart (a
closed-world benchmark) the estimate is near zero and the cut stays at the lowest
score: nothing is cut. The cut applies to the links made, and spares a mutual best pair
(each of the two prefers the other): there a low score is as often a hard match. Below the cut, only the sources whose best candidate prefers
another source (no mutual best) are left unlinked: a source without a counterpart has
taken another record's look-alike; a mutual best below the cut is as often a hard
match, and stays. The cut, its evidence and the sources it left unlinked go into
run.json (``guard.cut``) and ``kgalign inspect`` shows them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from kgalign.model import Candidates, Link

log = logging.getLogger(__name__)

#: Storey's lambda: the estimate counts the sources whose best scores below the null's
#: (1 - LAMBDA) quantile, its median.
LAMBDA = 0.5
#: Below this estimated share of sources without a counterpart, no cut: the hard matches
#: (true counterparts that score low) weigh on the estimate as much as the sources
#: without one, and a cut would lose more of them than it saves.
MIN_SHARE = 0.25
#: Clear matches whose runner-ups make the null: fewer, and no cut is chosen.
MIN_NULL = 30
#: The margin a clear match leads its runner-up by (the gate's default).
CLEAR_MARGIN = 0.05


@dataclass(frozen=True)
class Cut:
    """The cut chosen and what it was chosen from."""

    cut: float
    sources: int
    null_size: int
    #: Estimated sources without a counterpart (Storey), and their share.
    no_counterpart: float
    #: Sources whose best candidate scores below the cut.
    below: int
    #: Links the cut took away (set once the links are made: :func:`apply_cuts`).
    unlinked: int = 0

    def to_dict(self) -> dict:
        data = asdict(self)
        data["cut"] = round(self.cut, 6)
        data["no_counterpart"] = round(self.no_counterpart, 1)
        return data

    def summary(self) -> str:
        return (
            f"no-counterpart cut {self.cut:.3f}: an estimated {self.no_counterpart:.0f} of {self.sources} sources have no counterpart "
            f"(from the runner-up scores of {self.null_size} clear matches); {self.unlinked} links below it not made"
        )


Score = Callable[[Sequence[tuple[str, str]]], np.ndarray]


def choose_cut(candidates: Sequence[Candidates], score: Score, margin: float = CLEAR_MARGIN) -> Cut | None:
    """The cut for these candidates (see the module text), on the scale of ``score``
    (the scores of (source, target) pairs); None where too few clear matches give a null."""
    with_items = [c for c in candidates if c.items]
    clear = [c for c in with_items if len(c.items) > 1 and c.mutual and c.items[0].score - c.items[1].score >= margin]
    if len(clear) < MIN_NULL or not with_items:
        return None
    tops = score([(c.source, c.items[0].iri) for c in with_items]).astype(np.float64)
    null = score([(c.source, c.items[1].iri) for c in clear]).astype(np.float64)
    null.sort()
    n = len(tops)

    def null_above(t: np.ndarray | float) -> np.ndarray:
        """Share of the null at or above each t."""
        return 1.0 - np.searchsorted(null, t, side="left") / len(null)

    low = float(np.quantile(null, 1.0 - LAMBDA))
    expected = min(float(n), float(np.sum(tops < low)) / (1.0 - LAMBDA))
    if expected < MIN_SHARE * n:
        return Cut(float(tops.min()), n, len(null), expected, 0)
    cuts = np.unique(np.concatenate([[tops.min()], tops]))
    below = np.searchsorted(np.sort(tops), cuts, side="left")
    false_links = expected * null_above(cuts)
    missed = np.maximum(0.0, below - expected * (1.0 - null_above(cuts)))
    best = int(np.argmin(false_links + missed))  # the lowest cut among equals
    return Cut(float(cuts[best]), n, len(null), expected, int(below[best]))


def lexical_scorer(lexical: tuple, left_order: Sequence[str], right_order: Sequence[str]) -> Score:
    """The TF-IDF cosine of (left IRI, right IRI) pairs, from both sides' rows in these orders."""
    from kgalign.retrieval.retrieve import _row_dot

    left_at = {iri: i for i, iri in enumerate(left_order)}
    right_at = {iri: j for j, iri in enumerate(right_order)}

    def score(pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        if not pairs:
            return np.zeros(0, dtype=np.float32)
        rows = np.array([left_at[a] for a, _ in pairs], dtype=np.int64)
        cols = np.array([right_at[b] for _, b in pairs], dtype=np.int64)
        return _row_dot(lexical[0], lexical[1], rows, cols)

    return score


def cut_by_block(candidates: Sequence[Candidates], score: Score, classes: Any = None) -> dict[str, Cut]:
    """:func:`choose_cut` within each block of corresponding classes
    (:class:`kgalign.selection.classes.ClassAlignment`; one block without it): each
    class's scores have a scale of their own. The cut of each source's block, by source
    (blocks without a cut: no entry)."""
    groups: list[list[Candidates]]
    if classes is None or classes.trivial:
        groups = [list(candidates)]
    else:
        block_of = {iri: b for b, (lefts, _) in enumerate(classes.blocks) for iri in lefts}
        grouped: dict[int, list[Candidates]] = {}
        for cands in candidates:
            grouped.setdefault(block_of.get(cands.source, -1), []).append(cands)
        groups = [grouped[b] for b in sorted(grouped)]
    by_source: dict[str, Cut] = {}
    for group in groups:
        cut = choose_cut(group, score)
        if cut is not None:
            for cands in group:
                by_source[cands.source] = cut
    return by_source


def apply_cuts(
    links: Sequence[Link], cuts: dict[str, Cut], score: Score, decided: Callable[[str], bool], mutual: set[tuple[str, str]]
) -> tuple[list[Link], list[Cut], set[str]]:
    """``links`` without those whose (lexical) score lies below their source's cut, unless
    ``decided`` (a judge or a person made it) or a ``mutual`` best pair (a source and the
    target that each prefer the other: below the cut as often a hard match as not, and
    a judge decides it); the cuts, each with the links it took away; and the sources
    left unlinked. The cut applies to the links the resolution made (after a 1:1
    assignment moved a source to its next candidate too), so that no target it frees is
    handed to another source."""
    scored = [link for link in links if link.left in cuts and not decided(link.left) and (link.left, link.right) not in mutual]
    values = dict(zip(((link.left, link.right) for link in scored), score([(link.left, link.right) for link in scored]).tolist()))
    dropped = {(link.left, link.right) for link in scored if values[(link.left, link.right)] < cuts[link.left].cut}
    taken: dict[int, int] = {}
    for left, _ in dropped:
        taken[id(cuts[left])] = taken.get(id(cuts[left]), 0) + 1
    unique = list({id(cut): cut for cut in cuts.values()}.values())
    done = [replace(cut, unlinked=taken.get(id(cut), 0)) for cut in unique]
    for cut in done:
        if cut.unlinked:
            log.info("%s", cut.summary())
    return [link for link in links if (link.left, link.right) not in dropped], done, {left for left, _ in dropped}
