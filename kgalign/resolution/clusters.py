"""The cluster graph: links as a networkx graph, clusters as its connected components, checked.

A cluster is a connected component of the links. Where several records of one thing
may be linked (1:n, n:1, n:m, duplicates within a graph), a component can also grow
through a chain of weak links: A~B and B~C each look right, A and C are unlike, and the
component would merge two things. A cluster of records of one thing is *complete*: every
record linked to every other it can be linked to (every pair within one graph; every
left-right pair across two). :func:`check_clusters` removes, from a component that is
not complete, its weakest bridge (a link whose removal splits the component) weaker than
``WEAK_LINK``, again until each part is complete or has no such bridge left; a part
still incomplete is flagged.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

Node = Hashable


@dataclass
class ClusterCheck:
    """What :func:`check_clusters` kept, split and flagged."""

    #: The links kept, as (a, b, confidence).
    edges: list[tuple[Node, Node, float]]
    #: Links removed as the weak bridge of a chain, as (a, b, confidence).
    removed: list[tuple[Node, Node, float]] = field(default_factory=list)
    #: Components that a removed bridge split.
    split: int = 0
    #: Components left incomplete with no bridge to remove (each as its sorted nodes).
    flagged: list[list[Node]] = field(default_factory=list)


def graph_of(edges: Iterable[tuple[Node, Node, float]]) -> nx.Graph:
    graph = nx.Graph()
    for a, b, confidence in edges:
        if graph.has_edge(a, b):
            confidence = max(confidence, graph[a][b]["confidence"])
        graph.add_edge(a, b, confidence=confidence)
    return graph


def is_clique(graph: nx.Graph, nodes: Sequence[Node]) -> bool:
    n = len(nodes)
    return graph.subgraph(nodes).number_of_edges() == n * (n - 1) // 2


def is_complete_bipartite(side: Callable[[Any], str]) -> Callable[[nx.Graph, Sequence[Node]], bool]:
    """The completeness test of a two-graph cluster: every left node linked to every right one."""

    def complete(graph: nx.Graph, nodes: Sequence[Node]) -> bool:
        lefts = sum(1 for node in nodes if side(node) == "L")
        return graph.subgraph(nodes).number_of_edges() == lefts * (len(nodes) - lefts)

    return complete


#: A link weaker than this may be cut as the bridge of a chain; a stronger one is kept and
#: its incomplete cluster flagged.
WEAK_LINK = 0.5


def check_clusters(
    edges: Iterable[tuple[Node, Node, float]],
    complete: Callable[[nx.Graph, Sequence[Node]], bool] = is_clique,
    weak: float = WEAK_LINK,
) -> ClusterCheck:
    """Split the chains of weak links out of the components of ``edges`` (see the module text)."""
    graph = graph_of(edges)
    removed: list[tuple[Node, Node, float]] = []
    flagged: list[list[Node]] = []
    split_components: set[frozenset] = set()
    todo = [list(component) for component in nx.connected_components(graph)]
    while todo:
        nodes = todo.pop()
        if len(nodes) < 3 or complete(graph, nodes):
            continue
        sub = graph.subgraph(nodes)
        bridges = [edge for edge in nx.bridges(sub) if sub[edge[0]][edge[1]]["confidence"] < weak]
        if not bridges:
            flagged.append(sorted(nodes, key=str))
            continue
        a, b = min(bridges, key=lambda edge: (sub[edge[0]][edge[1]]["confidence"], str(edge)))
        removed.append((a, b, graph[a][b]["confidence"]))
        split_components.add(frozenset(nodes))
        graph.remove_edge(a, b)
        todo.extend(list(part) for part in nx.connected_components(graph.subgraph(nodes)))
    kept = [(a, b, data["confidence"]) for a, b, data in graph.edges(data=True)]
    return ClusterCheck(edges=kept, removed=removed, split=len(split_components), flagged=flagged)


def components(edges: Iterable[tuple[Node, Node, float]]) -> list[list[Node]]:
    """The connected components of ``edges``, each sorted, the list sorted."""
    return sorted(sorted(component, key=str) for component in nx.connected_components(graph_of(edges)))


def size_histogram(clusters: Iterable[Sequence[Node]]) -> dict[str, int]:
    """How many clusters of each size (sizes as strings, for JSON)."""
    counts: dict[int, int] = {}
    for cluster in clusters:
        counts[len(cluster)] = counts.get(len(cluster), 0) + 1
    return {str(size): counts[size] for size in sorted(counts)}
