"""Turn per-source decisions into an alignment.

Modes are found by name in :data:`RESOLVERS` (``register_resolver`` adds one):

- ``greedy``: 1:1; when several sources chose one target, the most
  confident keeps it and the others are recorded as conflicts.
- ``assignment`` (default): 1:1 by a maximum-weight bipartite matching over the retrieved
  candidate pairs (scipy), so a source that lost its first choice can take its next;
  judged decisions keep priority over retrieval scores. Only candidates within
  ``window`` of a source's best score are eligible: a source whose near-best
  candidates are all taken stays unlinked rather than take a distant leftover.
- ``many-to-one``: every match is kept.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from kgalign.model import Candidates, Decision, Link
from kgalign.registry import Registry

# Chosen on the DBP15K fr-en train split and the OAEI pairs (see README, Results).
ASSIGNMENT_WINDOW = 0.1


@dataclass
class Conflict:
    source: str
    target: str
    winner: str
    confidence: float


Resolution = tuple[list[Link], list[Conflict]]
#: A resolve mode: (decisions, candidates or None, min_score, window) -> links and conflicts.
Resolver = Callable[[Sequence[Decision], Sequence[Candidates] | None, float, float], Resolution]

RESOLVERS: Registry[Resolver] = Registry("resolve mode", "kgalign.resolvers")


def register_resolver(name: str, resolver: Resolver | str, description: str = "") -> None:
    """Add a resolve mode, usable as ``kgalign run --resolve NAME`` and ``AlignConfig(resolve=NAME)``."""
    RESOLVERS.register(name, resolver, description)


def resolve(
    decisions: Sequence[Decision],
    candidates: Sequence[Candidates] | None = None,
    strategy: str = "assignment",
    min_score: float = 0.0,
    window: float = ASSIGNMENT_WINDOW,
) -> Resolution:
    """Links and conflicts from ``decisions`` by the resolve mode ``strategy``."""
    return RESOLVERS.get(strategy)(decisions, candidates, min_score, window)


def _matches(decisions: Sequence[Decision]) -> list[Decision]:
    return [d for d in decisions if d.kind == "match" and d.target is not None]


def _many_to_one(decisions: Sequence[Decision], candidates: Sequence[Candidates] | None, min_score: float, window: float) -> Resolution:
    return [Link(d.source, d.target, d.confidence) for d in decisions if d.kind == "match" and d.target is not None], []


def _greedy_mode(decisions: Sequence[Decision], candidates: Sequence[Candidates] | None, min_score: float, window: float) -> Resolution:
    return _greedy(_matches(decisions))


def _assignment_mode(decisions: Sequence[Decision], candidates: Sequence[Candidates] | None, min_score: float, window: float) -> Resolution:
    if candidates is None:
        return _greedy(_matches(decisions))
    return _assignment(decisions, candidates, min_score, window)


def _greedy(matches: list[Decision]) -> Resolution:
    winners: dict[str, Decision] = {}
    conflicts: list[Conflict] = []
    # A person outranks everything; then the most confident decision keeps the target.
    for d in sorted(matches, key=lambda d: (not d.human, -d.confidence, d.source)):
        target = d.target
        assert target is not None
        if target in winners:
            conflicts.append(Conflict(d.source, target, winners[target].source, d.confidence))
        else:
            winners[target] = d
    links = [Link(d.source, target, d.confidence) for target, d in winners.items()]
    links.sort(key=lambda link: link.left)
    return links, conflicts


def _assignment(
    decisions: Sequence[Decision], candidates: Sequence[Candidates], min_score: float, window: float
) -> tuple[list[Link], list[Conflict]]:
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import min_weight_full_bipartite_matching

    by_source = {d.source: d for d in decisions}
    sources = [c.source for c in candidates]
    targets = sorted({item.iri for c in candidates for item in c.items})
    target_index = {iri: j for j, iri in enumerate(targets)}
    rows, cols, weights = [], [], []
    for i, cands in enumerate(candidates):
        decision = by_source.get(cands.source)
        if decision is not None and decision.kind in ("none", "uncertain"):
            continue  # the judge, a person or retrieval said no: do not link this source at all
        best = cands.items[0].score if cands.items else 0.0
        for item in cands.items:
            judged = decision is not None and decision.target == item.iri and (decision.rounds or decision.human)
            if not judged and (item.score < min_score or item.score < best - window):
                continue
            weight = item.score
            if judged and decision is not None and decision.kind == "match":
                weight += 10.0  # a judged match outranks every retrieval score
            rows.append(i)
            cols.append(target_index[item.iri])
            weights.append(weight)
    if not rows:
        return [], []
    # Dummy targets let every source stay unmatched, so a full matching always exists.
    n_sources, n_targets = len(sources), len(targets)
    rows += list(range(n_sources))
    cols += [n_targets + i for i in range(n_sources)]
    weights += [0.0] * n_sources
    values = np.asarray(weights, dtype=np.float64)
    # Minimise cost = big - weight; costs must stay strictly positive for csgraph.
    cost = csr_matrix((values.max() + 1.0 - values, (rows, cols)), shape=(n_sources, n_targets + n_sources))
    _, matched = min_weight_full_bipartite_matching(cost)
    links = []
    conflicts = []
    for i, j in enumerate(matched):
        if j < 0 or j >= n_targets:
            continue
        source, target = sources[i], targets[j]
        decision = by_source.get(source)
        score = next(item.score for item in candidates[i].items if item.iri == target)
        confidence = decision.confidence if decision and decision.target == target else score
        links.append(Link(source, target, round(float(confidence), 6)))
        if decision is not None and decision.kind == "match" and decision.target not in (None, target):
            conflicts.append(Conflict(source, decision.target, "(assignment)", decision.confidence))
    links.sort(key=lambda link: link.left)
    return links, conflicts


register_resolver("assignment", _assignment_mode, "1:1 global assignment: a source that loses its first choice can take its next")
register_resolver("greedy", _greedy_mode, "1:1 greedy by confidence; the losers are logged as conflicts")
register_resolver("many-to-one", _many_to_one, "keep every match (several sources may share a target)")
