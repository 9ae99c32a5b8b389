"""Fuse two graphs along accepted links into one graph.

- Clusters are the connected components of the links (networkx).
- Each cluster gets one canonical IRI (``left``, ``right`` or ``mint``); the other
  members stay reachable: ``canonical owl:sameAs member``.
- Every triple of both graphs is rewritten onto canonical IRIs; duplicates collapse.
- A *functional* predicate (at most one value per subject in each input graph) that
  ends up with two different literal values on one canonical subject is a conflict,
  settled by a policy: ``prefer-left``, ``prefer-right``, ``keep-all`` or
  ``most-specific`` (a language tag or datatype beats a plain literal, then the longer
  text); a side's values reach the policy once each, in the order of their N-Triples
  forms (:func:`settled`). Dropped triples are recorded (sorted by triple, then
  source), never silently lost.
- Provenance: for each fused triple, the input graphs it came from.
Invariant (property-tested): each input triple, rewritten, is in the fused graph or
in the dropped record.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from rdflib import Graph, Literal, URIRef
from rdflib.namespace import OWL
from rdflib.term import Node

from kgalign.io.triples import Triple, TripleSource, known_iri
from kgalign.model import Link
from kgalign.registry import Registry

#: A canonical policy: (a cluster's members, the left IRIs, the right IRIs) -> its canonical IRI.
CanonicalPolicy = Callable[[list[str], set[str], set[str]], str]
#: A conflict policy: (left values, right values) of a functional attribute on one merged
#: subject, each side's distinct values in the order of their N-Triples forms -> the
#: value kept; None keeps them all.
ConflictPolicy = Callable[[list[Node], list[Node]], Node] | None

CANONICAL_POLICIES: Registry[CanonicalPolicy] = Registry("canonical policy", "kgalign.canonical_policies")
CONFLICT_POLICIES: Registry[ConflictPolicy] = Registry("conflict policy", "kgalign.conflict_policies")
MINT_BASE = "urn:kgalign:entity:"


@dataclass
class FusionResult:
    """The fused triples are the keys of ``provenance``; ``graph`` builds an rdflib
    graph of them on first use (building one costs seconds on big pairs, and the
    writers do not need it). A fusion by partitions (:mod:`kgalign.fusion.partitioned`)
    holds them as rendered ``rows`` instead (a :class:`kgalign.fusion.spilled.SpilledRows`,
    on disk), ``provenance`` empty: only the writers read them; and may hold them as
    ``shards`` too (a :class:`kgalign.fusion.shards.ShardFolder`), or there only (``rows``
    None: fused.ttl and provenance.trig are not written)."""

    canonical: dict[str, str]
    clusters: list[list[str]]
    provenance: dict[Triple, frozenset[str]] = field(default_factory=dict)
    dropped: list[tuple[Triple, str, str]] = field(default_factory=list)  # (triple, source, reason)
    namespaces: list[tuple[str, URIRef]] = field(default_factory=list)
    rows: Any = None
    shards: Any = None

    @property
    def partitioned(self) -> bool:
        """Fused by partitions: the triples are rows on disk or in shards, not objects."""
        return self.rows is not None or self.shards is not None

    @property
    def single_files(self) -> bool:
        """Whether fused.ttl and provenance.trig are written (not the shards alone)."""
        return self.rows is not None or self.shards is None

    @property
    def triples(self) -> Iterable[Triple]:
        if self.partitioned:
            raise TypeError("a fusion by partitions holds rendered rows, not triples")
        return self.provenance.keys()

    def __len__(self) -> int:
        if self.rows is not None:
            return len(self.rows)
        return len(self.shards) if self.shards is not None else len(self.provenance)

    @cached_property
    def graph(self) -> Graph:
        if self.partitioned:
            raise TypeError("a fusion by partitions holds rendered rows, not triples")
        fused = Graph()
        for prefix, namespace in self.namespaces:
            fused.bind(prefix, namespace, override=False)
        for triple in self.provenance:
            fused.add(triple)
        return fused


def cluster_links(links: Iterable[Link], same_side: Mapping[str, Sequence[Link]] | None = None) -> list[list[str]]:
    """Connected components of the links (networkx), each a sorted list of its IRIs (left
    ones before right ones), the clusters sorted. A left and a right IRI that are the
    same string are still two nodes. ``same_side`` adds links between two entities of
    one graph (``{"left": [...], "right": [...]}``: duplicates)."""
    import networkx as nx

    graph = nx.Graph()
    graph.add_edges_from((("L", link.left), ("R", link.right)) for link in links)
    for side, pairs in (same_side or {}).items():
        tag = "L" if side == "left" else "R"
        graph.add_edges_from(((tag, pair.left), (tag, pair.right)) for pair in pairs)
    return sorted([iri for _, iri in sorted(component)] for component in nx.connected_components(graph))


def choose_canonical(clusters: Sequence[list[str]], links: Iterable[Link], policy: str, same_side: Mapping[str, Sequence[Link]] | None = None) -> dict[str, str]:
    """Map every clustered IRI to its cluster's canonical IRI."""
    choose = CANONICAL_POLICIES.get(policy)
    links = list(links)
    lefts = {link.left for link in links}
    rights = {link.right for link in links}
    for side, pairs in (same_side or {}).items():
        (lefts if side == "left" else rights).update(iri for pair in pairs for iri in (pair.left, pair.right))
    mapping: dict[str, str] = {}
    for members in clusters:
        canonical = choose(members, lefts, rights)
        for member in members:
            mapping[member] = canonical
    return mapping


def _first_of(members: list[str], side: set[str]) -> str:
    preferred = sorted(m for m in members if m in side)
    return preferred[0] if preferred else sorted(members)[0]


def _mint(members: list[str], lefts: set[str], rights: set[str]) -> str:
    return MINT_BASE + hashlib.sha256("\n".join(sorted(members)).encode()).hexdigest()[:16]


CANONICAL_POLICIES.register("left", lambda members, lefts, rights: _first_of(members, lefts), "the left graph's IRI")
CANONICAL_POLICIES.register("right", lambda members, lefts, rights: _first_of(members, rights), "the right graph's IRI")
CANONICAL_POLICIES.register("mint", _mint, "a new IRI minted from the members (urn:kgalign:entity:...)")


def _functional_predicates(graph: TripleSource) -> set[Node]:
    counts: dict[tuple[Node, Node], int] = defaultdict(int)
    for s, p, o in graph:
        if isinstance(o, Literal):
            counts[(s, p)] += 1
    predicates = {p for (_, p) in counts}
    multi = {p for (s, p), n in counts.items() if n > 1}
    return predicates - multi


def _specificity(value: Node) -> tuple[int, int, str]:
    # Conflicting values are literals (fuse compares only those); anything else counts as plain.
    tagged = isinstance(value, Literal) and bool(value.language or value.datatype)
    return (1 if tagged else 0, len(str(value)), str(value))


def fuse(
    left: TripleSource,
    right: TripleSource,
    links: Sequence[Link],
    canonical: str = "left",
    conflicts: str = "keep-all",
    same_side: Mapping[str, Sequence[Link]] | None = None,
) -> FusionResult:
    policy = CONFLICT_POLICIES.get(conflicts)
    clusters = cluster_links(links, same_side)
    mapping = choose_canonical(clusters, links, canonical, same_side)
    functional = _functional_predicates(left) & _functional_predicates(right) if policy is not None else set()

    # Clustered IRIs to their canonical IRI, as terms: a literal or blank node never matches.
    rewrite: dict[Node, Node] = {known_iri(member): known_iri(target) for member, target in mapping.items()}
    # Each triple's sources, as shared frozensets: one set object per triple would cost
    # more memory than the triple itself on a large pair.
    provenance: dict[Triple, frozenset[str]] = {}
    get = provenance.get
    # Values of functional predicates on merged subjects, per source, to settle conflicts.
    functional_values: dict[tuple[Node, Node], dict[str, list[Triple]]] = defaultdict(lambda: defaultdict(list))
    for name, graph in (("left", left), ("right", right)):
        alone = _SOURCES[name]
        for triple in graph:
            s, p, o = triple
            if s in rewrite or (type(o) is URIRef and o in rewrite):
                triple = (rewrite.get(s, s), p, rewrite.get(o, o) if type(o) is URIRef else o)
            # else the input's own tuple is kept: a new one per triple would cost 64 bytes each
            known = get(triple)
            provenance[triple] = alone if known is None or known is alone else _SOURCES["both"]
            if p in functional and isinstance(o, Literal) and s in rewrite:
                functional_values[(triple[0], p)][name].append(triple)

    dropped: list[tuple[Triple, str, str]] = []
    for by_source in functional_values.values():
        values = {t[2] for triples in by_source.values() for t in triples}
        if len(values) < 2:
            continue
        assert policy is not None  # functional is empty under keep-all
        keep = settled({name: [t[2] for t in triples] for name, triples in by_source.items()}, policy)
        for triples in by_source.values():
            for triple in triples:
                if triple[2] != keep and triple in provenance:
                    for source in sorted(provenance.pop(triple)):
                        dropped.append((triple, source, conflict_reason(conflicts)))
    dropped.sort(key=dropped_order)

    namespaces = list(left.namespaces()) + list(right.namespaces()) + [("owl", URIRef(str(OWL)))]
    same_as = OWL.sameAs
    for target, member in same_as_pairs(clusters, mapping):
        link = (known_iri(target), same_as, known_iri(member))
        provenance[link] = provenance.get(link, frozenset()) | _SOURCES["kgalign"]
    return FusionResult(canonical=mapping, clusters=clusters, provenance=provenance, dropped=dropped, namespaces=namespaces)


def same_as_pairs(clusters: Sequence[list[str]], mapping: Mapping[str, str]) -> list[tuple[str, str]]:
    """``(canonical, member)`` of each ``owl:sameAs`` triple the fused graph gets: each
    member of a cluster but the canonical IRI (an IRI of both graphs may be in two
    clusters, and holds the canonical IRI of the last one)."""
    pairs: list[tuple[str, str]] = []
    for members in clusters:
        target = mapping[members[0]]
        pairs.extend((target, member) for member in members if member != target)
    return pairs


_SOURCES = {
    "left": frozenset({"left"}),
    "right": frozenset({"right"}),
    "both": frozenset({"left", "right"}),
    "kgalign": frozenset({"kgalign"}),
}


def settled(values: Mapping[str, Iterable[Node]], policy: Callable[[list[Node], list[Node]], Node]) -> Node:
    """The value ``policy`` keeps of a functional attribute's values on one merged subject
    (``values``: those of each side). Each side's values come once each and in the order
    of their N-Triples forms: the order the input files list them in is not a fact of the
    graphs, and a fusion by partitions (:mod:`kgalign.fusion.partitioned`) does not see it."""

    def ordered(side: str) -> list[Node]:
        return sorted(set(values.get(side, ())), key=lambda node: node.n3())

    return policy(ordered("left"), ordered("right"))


def conflict_reason(conflicts: str) -> str:
    """The reason recorded with a triple a conflict policy dropped."""
    return f"functional-conflict:{conflicts}"


def dropped_order(entry: tuple[Triple, str, str]) -> tuple[str, str, str, str]:
    """The order of the dropped record (by triple, then source), the same however it was fused."""
    (s, p, o), source, _ = entry
    return s.n3(), p.n3(), o.n3(), source


CONFLICT_POLICIES.register("keep-all", None, "keep every value")
CONFLICT_POLICIES.register("prefer-left", lambda left, right: (left or right)[0], "keep the left graph's value")
CONFLICT_POLICIES.register("prefer-right", lambda left, right: (right or left)[0], "keep the right graph's value")
CONFLICT_POLICIES.register(
    "most-specific", lambda left, right: max(left + right, key=_specificity), "a language tag or datatype beats a plain literal, then the longer value"
)
