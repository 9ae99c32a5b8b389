"""Keep the links of a run from running away: a bound on cluster size, and a loud
warning when the links far outnumber the entities.

A run that links every record of a thing (``1:n``, ``n:1``, ``n:m``) turns a chain of
look-alikes into one cluster: the variants of a product line, the persons of one
address. Records of one thing are few (a handful of copies); a cluster of dozens is a
chain, not a thing. :func:`bound_clusters` gives every cluster of more than
:data:`CLUSTER_BOUND` entities its one-to-one assignment instead (the heaviest links
that share no entity), unless ``--resolve n:m`` was asked for. :func:`excess_warning`
says, in the log and in run.json, when a run still makes more than twice as many links
as the smaller side has entities, and why.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from kgalign.model import Link

log = logging.getLogger(__name__)

#: Entities (both sides) a cluster may hold unless --resolve n:m is given.
CLUSTER_BOUND = 10
#: Links past this many times the smaller side's entities make a run warn.
EXCESS_RATIO = 2.0


@dataclass(frozen=True)
class Bounded:
    """What :func:`bound_clusters` did: clusters cut back to one-to-one, and their links."""

    clusters: int
    links_before: int
    links_after: int

    def to_dict(self) -> dict:
        return {"bound": CLUSTER_BOUND, "clusters_cut": self.clusters, "links_before": self.links_before, "links_after": self.links_after}


def bound_clusters(links: Sequence[Link], bound: int = CLUSTER_BOUND) -> tuple[list[Link], Bounded]:
    """``links`` where every cluster (connected component) of more than ``bound`` entities
    keeps only its one-to-one assignment by confidence (a maximum-weight matching)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    from kgalign.resolution.resolve import matching_by_component

    if not links:
        return list(links), Bounded(0, 0, 0)
    lefts = sorted({link.left for link in links})
    rights = sorted({link.right for link in links})
    li = {iri: i for i, iri in enumerate(lefts)}
    ri = {iri: j for j, iri in enumerate(rights)}
    rows = np.array([li[link.left] for link in links], dtype=np.int64)
    cols = np.array([ri[link.right] for link in links], dtype=np.int64)
    n = len(lefts) + len(rights)
    graph = coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, len(lefts) + cols)), shape=(n, n)).tocsr()
    _, labels = connected_components(graph, directed=False)
    sizes = np.bincount(labels)
    big = sizes[labels[rows]] > bound
    if not big.any():
        return list(links), Bounded(0, len(links), len(links))
    kept = [link for link, cut in zip(links, big) if not cut]
    index = np.flatnonzero(big)
    weights = np.array([links[e].confidence for e in index], dtype=np.float64) + 1.0  # every link beats none
    matched = matching_by_component(rows[index], cols[index], weights, len(lefts), len(rights))
    chosen = {(lefts[i], rights[j]) for i, j in enumerate(matched.tolist()) if j >= 0}
    kept += [links[e] for e in index if (links[e].left, links[e].right) in chosen]
    kept.sort(key=lambda link: (link.left, link.right))
    clusters = int(np.sum(sizes > bound))
    log.warning(
        "%d clusters held more than %d entities (chains of look-alikes, not records of one thing): each keeps its one-to-one links only (%d links -> %d; --resolve n:m keeps them whole)",
        clusters, bound, len(links), len(kept),
    )
    return kept, Bounded(clusters, len(links), len(kept))


def excess_warning(links: int, left: int, right: int, cardinality: str) -> str | None:
    """A one-line warning when ``links`` exceed EXCESS_RATIO times the smaller side's
    entity count, naming the likely cause; None otherwise."""
    smaller = min(left, right)
    if not smaller or links <= EXCESS_RATIO * smaller:
        return None
    cause = (
        f"the run linked several records per entity ({cardinality}); look-alikes may have been taken for copies: try --resolve 1:1"
        if cardinality in ("1:n", "n:1", "n:m")
        else "several classes or sources link to one entity"
    )
    return f"{links:,} links for {smaller:,} entities on the smaller side ({links / smaller:.1f} per entity): {cause}"
