"""Turn per-source decisions into an alignment.

Modes are found by name in :data:`RESOLVERS` (``register_resolver`` adds one):

- ``greedy``: 1:1; when several sources chose one target, the most
  confident keeps it and the others are recorded as conflicts.
- ``assignment`` (default): 1:1 by a maximum-weight bipartite matching over the retrieved
  candidate pairs (scipy), so a source that lost its first choice can take its next;
  judged decisions keep priority over retrieval scores. Only candidates within
  ``window`` of a source's best score are eligible: a source whose near-best
  candidates are all taken stays unlinked rather than take a distant leftover.
- ``many-to-one`` (``n:1``): every match is kept.
- ``1:n``: a source keeps its match and every other strong candidate whose best source
  it is (its other records on the right); each target has one source.
- ``n:m``: as ``1:n``, and several sources may share a target; then every left record
  of a connected component is linked to every right one (:func:`close_clusters`).
- ``auto`` (the run's default) is not a mode: the pipeline detects the cardinality
  (:mod:`kgalign.resolution.cardinality`) and runs ``assignment``, ``1:n``, ``n:1`` or ``n:m``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from kgalign.model import Candidates, Decision, Link
from kgalign.registry import Registry
from kgalign.runtime.hooks import hooked

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
    """The maximum-weight matching of the eligible candidate pairs, solved per connected
    component of their graph (:func:`matching_by_component`)."""
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
            judged = decision is not None and decision.target == item.iri and (decision.by_judge or decision.human)
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
    matched = matching_by_component(np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64), np.asarray(weights, dtype=np.float64), len(sources), len(targets))
    links = []
    conflicts = []
    for i, j in enumerate(matched.tolist()):
        if j < 0:
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


#: Connected components of an assignment (one, or several side by side): their edges'
#: sources, targets and weights (indices of the whole problem), each edge once.
Component = tuple[np.ndarray, np.ndarray, np.ndarray]


class ComponentSolver(Protocol):
    """Solves the connected components of an assignment elsewhere (``--engine ray``: on
    the actors). ``solve`` gets the components that need the solver, in groups, and
    gives :func:`component_matching`'s result for each group (in any order: each names
    its own sources and targets), or None to leave them to this process."""

    def solve(self, components: Sequence[Component]) -> list[tuple[np.ndarray, np.ndarray]] | None: ...


_SOLVER: ContextVar[ComponentSolver | None] = ContextVar("kgalign_component_solver", default=None)


@contextmanager
def component_solver(solver: ComponentSolver) -> Iterator[None]:
    """Every :func:`matching_by_component` in this context (of this thread) asks ``solver`` first."""
    with hooked(_SOLVER, solver):
        yield


def matching_by_component(rows: np.ndarray, cols: np.ndarray, weights: np.ndarray, n_sources: int, n_targets: int) -> np.ndarray:
    """Each source's target (-1: none) in a maximum-weight matching of the edges
    ``(rows[e], cols[e])`` of positive ``weights[e]``, where any source may stay unmatched.

    A matching's weight is the sum over the connected components of the edges' graph,
    so each component is solved alone, as the whole would be, and the solver's time
    (which grows faster than the problem) stays that of the largest component: on the
    4M-triple synthetic pair the whole problem, 392,135 sources, took minutes, and
    nearly all its components are a source or two. A component of one source or one
    target takes its heaviest edge of positive weight (ties: the first by index);
    the others go to scipy's sparse solver (:func:`component_matching`) in groups of
    GROUP_SOURCES sources, here or, in a :func:`component_solver` context, where that
    solver sends them.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    matched = np.full(n_sources, -1, dtype=np.int64)
    known = ~np.isnan(weights)  # an edge of no known weight cannot be chosen
    rows, cols, weights = rows[known], cols[known], weights[known]
    if len(rows) == 0:
        return matched
    # One edge per pair, the heaviest (a hand-written decision log may repeat a candidate;
    # the solver would add the two up).
    order = np.lexsort((-weights, cols, rows))
    first = np.ones(len(order), dtype=bool)
    first[1:] = (np.diff(rows[order]) != 0) | (np.diff(cols[order]) != 0)
    rows, cols, weights = rows[order][first], cols[order][first], weights[order][first]
    graph = coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, n_sources + cols)), shape=(n_sources + n_targets,) * 2).tocsr()
    _, labels = connected_components(graph, directed=False)
    component = labels[rows]
    # The edges by component, each component's in their order (source, then target order).
    order = np.lexsort((cols, rows, component))
    rows, cols, weights, component = rows[order], cols[order], weights[order], component[order]
    starts = np.flatnonzero(np.r_[True, component[1:] != component[:-1]])
    sizes = np.diff(np.r_[starts, len(rows)])  # edges a component
    last = starts + sizes - 1
    segment = np.repeat(np.arange(len(starts)), sizes)
    # One source (its edges are consecutive), or one target: the heaviest edge (the first
    # of equal ones), if it weighs more than staying unmatched.
    trivial = (rows[starts] == rows[last]) | (np.minimum.reduceat(cols, starts) == np.maximum.reduceat(cols, starts))
    heaviest = np.maximum.reduceat(weights, starts)
    tops = np.flatnonzero(weights == heaviest[segment])
    firsts = tops[np.r_[True, segment[tops][1:] != segment[tops][:-1]]]  # one a component, in order
    chosen = firsts[trivial & (heaviest > 0)]
    matched[rows[chosen]] = cols[chosen]
    # The others go to the solver, side by side in groups of about GROUP_SOURCES sources.
    new_source = np.r_[True, (rows[1:] != rows[:-1]) | (component[1:] != component[:-1])]
    sources = np.add.reduceat(new_source.astype(np.int64), starts)[~trivial]
    group = (np.cumsum(sources) - sources) // GROUP_SOURCES  # by the sources before each
    hard = ~trivial[segment]
    cuts = np.flatnonzero(np.diff(np.repeat(group, sizes[~trivial]))) + 1
    groups = list(zip(np.split(rows[hard], cuts), np.split(cols[hard], cuts), np.split(weights[hard], cuts))) if hard.any() else []
    for matched_sources, targets in _solved(groups):
        matched[matched_sources] = targets
    return matched


#: The components that need the solver are solved together, about this many sources in
#: one problem (a group closes at the component that reaches it). A matching of disjoint components
#: is theirs side by side, and the solver's cost per call dominates small ones: on a
#: problem of the 4M pair's shape (bench/resolve_components.py, 64,828 such components)
#: 1.3 s in problems of up to 200 sources against 14.4 s one component at a time, the
#: same matching; 5.0 s at 5,000 (the solver's time grows faster than the problem).
GROUP_SOURCES = 200
#: Edges of the components that need the solver from which a :class:`ComponentSolver`
#: is asked (fewer are solved here sooner than shipped).
SHIP_FROM_EDGES = 2_000_000


def _solved(components: list[Component]) -> list[tuple[np.ndarray, np.ndarray]]:
    solver = _SOLVER.get()
    if solver is not None and sum(len(c[0]) for c in components) >= SHIP_FROM_EDGES:
        solved = solver.solve(components)
        if solved is not None:
            return solved
    return solve_components(components)


def solve_components(components: Sequence[Component]) -> list[tuple[np.ndarray, np.ndarray]]:
    """:func:`component_matching` of each of ``components``, in their order."""
    return [component_matching(*component) for component in components]


def component_matching(sources: np.ndarray, targets: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The maximum-weight matching of the edges given (a component, or several; scipy's
    sparse solver, with a zero-weight dummy target per source so that a full matching
    exists): the matched sources and their targets, as indices of the whole problem."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import min_weight_full_bipartite_matching

    own_sources, rows = np.unique(sources, return_inverse=True)
    own_targets, cols = np.unique(targets, return_inverse=True)
    n, m = len(own_sources), len(own_targets)
    # Dummy targets let every source stay unmatched, so a full matching always exists.
    rows = np.concatenate([rows, np.arange(n)])
    cols = np.concatenate([cols, m + np.arange(n)])
    values = np.concatenate([weights, np.zeros(n)])
    # Minimise cost = big - weight; costs must stay strictly positive for csgraph.
    cost = csr_matrix((values.max() + 1.0 - values, (rows, cols)), shape=(n, m + n))
    _, chosen = min_weight_full_bipartite_matching(cost)
    real = (chosen >= 0) & (chosen < m)
    return own_sources[real], own_targets[chosen[real]]


#: 1:n and n:m: a candidate within this much of its source's best retrieval score...
SEVERAL_WINDOW = 0.4
#: ... and scoring at least this much is one more counterpart of the source, when the source is its best.
SEVERAL_FLOOR = 0.5


def strong_candidates(cands: Candidates) -> list[str]:
    """The candidates within SEVERAL_WINDOW of the source's best and at least SEVERAL_FLOOR
    (the best one first): those a 1:n or n:m run may link as other records of the source
    (:func:`several_links` also asks that the source be the target's best, or near it)."""
    if not cands.items:
        return []
    cut = _several_cut(cands.items[0].score)
    return [item.iri for item in cands.items if item.score >= cut]


def _several_cut(top: float) -> float:
    """The least score of another record of a source whose best candidate scores ``top``."""
    return max(SEVERAL_FLOOR, top - SEVERAL_WINDOW)


def _best_sources(candidates: Sequence[Candidates]) -> dict[str, tuple[float, str]]:
    """Each target's best-scoring source among the candidate lists (ties: the first source by IRI)."""
    best: dict[str, tuple[float, str]] = {}
    for cands in candidates:
        for item in cands.items:
            known = best.get(item.iri)
            if known is None or item.score > known[0] or (item.score == known[0] and cands.source < known[1]):
                best[item.iri] = (item.score, cands.source)
    return best


def _taken_elsewhere(decision: Decision, score: float, best: dict[str, tuple[float, str]]) -> bool:
    """Whether a match retrieval alone made goes to a target that another source scores far
    better with (by more than SEVERAL_WINDOW): that target is the other source's, and this
    source, a record with no counterpart, picked its nearest look-alike. A judged match stays."""
    if decision.human or decision.by_judge or decision.target not in best:
        return False
    top_score, top_source = best[decision.target]
    return top_source != decision.source and score < top_score - SEVERAL_WINDOW


def several_links(decisions: Sequence[Decision], candidates: Sequence[Candidates] | None, shared_targets: bool, floor: float | None = None) -> Resolution:
    """Each matched source keeps its decided target and every other strong candidate (within
    ``SEVERAL_WINDOW`` of its best, at least ``SEVERAL_FLOOR``) whose best source it is: the
    source's other records. With ``shared_targets`` (n:m), also the strong candidates whose
    best source scores within the window of it (the other records of the same thing on the
    left); without (1:n), a target wanted by several sources goes to the highest score.
    With ``floor``, a match that retrieval alone made must score at least that much. A
    judged set (:attr:`Decision.option_votes`) gives exactly the options it accepted."""
    if candidates is None:
        return _many_to_one(decisions, None, 0.0, 0.0) if shared_targets else _greedy(_matches(decisions))
    by_source = {d.source: d for d in decisions}
    best = _best_sources(candidates)
    wanted: list[tuple[float, str, str]] = []  # (score, source, target)
    for cands in candidates:
        decision = by_source.get(cands.source)
        if decision is None or decision.kind != "match" or decision.target is None or not cands.items:
            continue
        top = cands.items[0].score
        scores = {item.iri: item.score for item in cands.items}
        score = scores.get(decision.target, decision.confidence)
        judged = decision.human or decision.by_judge
        if _taken_elsewhere(decision, score, best):
            continue
        if not judged and floor is not None and score < floor:
            continue
        if decision.judged_set:
            # A judged set: the judge decided every option shown; its accepted ones are the links.
            wanted.extend((vote.confidence, cands.source, vote.iri) for vote in decision.accepted)
            continue
        wanted.append((decision.confidence if judged else score, cands.source, decision.target))
        for item in cands.items:
            if item.iri == decision.target or item.score < _several_cut(top):
                continue
            # 1:n: the target's best source is this one; n:m: this source is near the target's best.
            if best[item.iri][1] == cands.source or (shared_targets and item.score >= best[item.iri][0] - SEVERAL_WINDOW):
                wanted.append((item.score, cands.source, item.iri))
    links: dict[tuple[str, str], Link] = {}
    owner: dict[str, str] = {}
    conflicts: list[Conflict] = []
    for score, source, target in sorted(wanted, key=lambda w: (-w[0], w[1], w[2])):
        if not shared_targets and target in owner and owner[target] != source:
            conflicts.append(Conflict(source, target, owner[target], score))
            continue
        owner.setdefault(target, source)
        links.setdefault((source, target), Link(source, target, round(float(score), 6)))
    return sorted(links.values(), key=lambda link: (link.left, link.right)), conflicts


def _shared_targets(decisions: Sequence[Decision], candidates: Sequence[Candidates] | None, min_score: float, window: float) -> Resolution:
    """n:1: every match is kept, several sources sharing a target, as long as each scores
    within SEVERAL_WINDOW of the target's best source (or the judge or a person said so)."""
    if candidates is None:
        return _many_to_one(decisions, None, min_score, window)
    by_source = {d.source: d for d in decisions}
    best = _best_sources(candidates)
    links, conflicts = [], []
    for cands in candidates:
        decision = by_source.get(cands.source)
        if decision is None or decision.kind != "match" or decision.target is None:
            continue
        score = next((item.score for item in cands.items if item.iri == decision.target), decision.confidence)
        if _taken_elsewhere(decision, score, best):
            conflicts.append(Conflict(cands.source, decision.target, best[decision.target][1], decision.confidence))
            continue
        links.append(Link(cands.source, decision.target, decision.confidence))
    return sorted(links, key=lambda link: (link.left, link.right)), conflicts


def _one_to_many(decisions: Sequence[Decision], candidates: Sequence[Candidates] | None, min_score: float, window: float) -> Resolution:
    return several_links(decisions, candidates, shared_targets=False)


def _many_to_many(decisions: Sequence[Decision], candidates: Sequence[Candidates] | None, min_score: float, window: float) -> Resolution:
    links, conflicts = several_links(decisions, candidates, shared_targets=True)
    return close_clusters(links, judged={d.source for d in decisions if d.judged_set}), conflicts


def close_clusters(links: Sequence[Link], judged: frozenset[str] | set[str] = frozenset()) -> list[Link]:
    """Every left-right pair within each cluster of ``links``: in a many-to-many alignment
    each record of a thing is linked to each of its records on the other side. A cluster
    that grew through a weak bridge is split there first
    (:func:`kgalign.resolution.clusters.check_clusters`). A pair not linked directly gets
    the weakest confidence of its cluster.

    A cluster holding a source in ``judged`` (whose set the judge decided) keeps its
    links as they are, neither checked nor closed: the judge was shown each record's counterparts, and closing would
    turn each wrong acceptance into the merge of two clusters (bench/judging_sets.py:
    with a judge right 90% of the time, F1 0.833 closed, 0.985 not)."""
    import networkx as nx

    from kgalign.resolution.clusters import check_clusters, graph_of, is_complete_bipartite

    edges = [(("L", link.left), ("R", link.right), link.confidence) for link in links]
    direct = {(link.left, link.right): link for link in links}
    closed: list[Link] = []
    if judged:
        # The clusters holding a judged set are kept whole, unchecked: an incomplete one is
        # what the judge said, not a chain grown through weak links.
        kept = set()
        for component in nx.connected_components(graph_of(edges)):
            if any(side == "L" and iri in judged for side, iri in component):
                kept.update(component)
        closed.extend(link for link in links if ("L", link.left) in kept)
        edges = [edge for edge in edges if edge[0] not in kept]
    checked = check_clusters(edges, is_complete_bipartite(lambda node: node[0]))
    graph = graph_of(checked.edges)
    for component in nx.connected_components(graph):
        lefts = sorted(iri for side, iri in component if side == "L")
        rights = sorted(iri for side, iri in component if side == "R")
        weakest = min(data["confidence"] for _, _, data in graph.subgraph(component).edges(data=True))
        for left in lefts:
            for right in rights:
                closed.append(direct.get((left, right)) or Link(left, right, weakest))
    return sorted(closed, key=lambda link: (link.left, link.right))


register_resolver("assignment", _assignment_mode, "1:1 global assignment: a source that loses its first choice can take its next")
register_resolver("greedy", _greedy_mode, "1:1 greedy by confidence; the losers are logged as conflicts")
register_resolver("many-to-one", _many_to_one, "keep every match (several sources may share a target)")
register_resolver("1:1", _assignment_mode, "one-to-one: the global assignment (as assignment)")
register_resolver("1:n", _one_to_many, "one-to-many: a source keeps every strong candidate whose best source it is; a target has one source")
register_resolver("n:1", _shared_targets, "many-to-one: several sources may share a target, each within reach of the target's best source")
register_resolver("n:m", _many_to_many, "many-to-many: a source keeps every strong candidate whose best source it is, and targets may be shared")

#: What each mode makes of targets: those a settled source took are not offered to
#: other sources (the retrieval cascade) unless several sources may share one.
SHARED_TARGETS = frozenset({"many-to-one", "n:1", "n:m"})
#: The modes in which one source may have several counterparts: where a judge is asked,
#: it judges sets (VoteConfig.sets) instead of one winner.
SEVERAL_PER_SOURCE = frozenset({"1:n", "n:m"})
#: The modes that give each entity one counterpart at most.
ONE_TO_ONE = frozenset({"assignment", "greedy", "1:1"})
#: The concrete mode each cardinality detected by --resolve auto runs.
MODE_OF_CARDINALITY = {"1:1": "assignment", "1:n": "1:n", "n:1": "n:1", "n:m": "n:m"}
