"""The triples of one input graph: each triple once, in file order, as rdflib terms.

A :class:`TripleSet` is what the pipeline keeps of an input file. It holds one copy of
the triples (an insertion-ordered dict used as a set) and the prefixes the file
declared; an rdflib :class:`~rdflib.Graph` is built from it only when a caller asks
(:meth:`TripleSet.graph`). The stages that read a graph (entity table, fusion) only
iterate over it, so they accept anything that iterates over triples, has a length and
lists namespaces (:class:`TripleSource`): a ``TripleSet`` or an rdflib ``Graph``.

File order matters: the first value of an attribute is the one an entity shows, so
the same file must give the same entity text on every run (a Python ``set`` would
iterate in a different order in each process).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol

from rdflib import Graph, Literal, URIRef
from rdflib.namespace import XSD
from rdflib.term import Node

Triple = tuple[Node, Node, Node]


def known_iri(value: str) -> URIRef:
    """The ``URIRef`` of an IRI read from a parsed graph, without rdflib's re-check.

    ``URIRef(value)`` scans every character for ones an IRI cannot hold (about 5 µs an
    IRI; 0.4 s of a DBP15K fusion). Where the IRI is an entity of a parsed graph it was
    checked by the parser already; the term is the same (equal, same hash).
    """
    return str.__new__(URIRef, value)


_XSD_STRING = XSD.string  # rdflib's namespace attributes are slow lookups; hot loops use constants


def _plain(term: Node) -> Node:
    if type(term) is Literal and term.datatype == _XSD_STRING:
        return Literal(str(term))
    return term


class TripleSource(Protocol):
    """What the entity table and the fusion read of an input graph."""

    def __iter__(self) -> Iterator[Triple]: ...

    def __len__(self) -> int: ...

    def namespaces(self) -> Iterable[tuple[str, URIRef]]: ...


class TripleSet:
    """Triples of one graph, each once, in the order first seen, and its prefixes."""

    __slots__ = ("_triples", "_namespaces")

    def __init__(self, triples: Iterable[Triple] | dict[Triple, None] = (), namespaces: Iterable[tuple[str, str]] = ()) -> None:
        # A dict built by the caller is taken as it is (no copy of a large graph).
        self._triples: dict[Triple, None] = triples if isinstance(triples, dict) else dict.fromkeys(triples)
        self._namespaces = [(prefix, URIRef(str(namespace))) for prefix, namespace in namespaces]

    @classmethod
    def from_graph(cls, graph: Graph) -> TripleSet:
        """The triples and bound prefixes of an rdflib graph (the graph can be dropped afterwards).

        ``"x"^^xsd:string`` becomes the plain literal ``"x"``: RDF 1.1 makes them one term,
        and the fast parser (:func:`kgalign.io.parsers.read_triples`) reads both as the latter.
        """
        return cls(dict.fromkeys((s, p, _plain(o)) for s, p, o in graph), graph.namespaces())

    def __iter__(self) -> Iterator[Triple]:
        return iter(self._triples)

    def __len__(self) -> int:
        return len(self._triples)

    def __contains__(self, triple: object) -> bool:
        return triple in self._triples

    def namespaces(self) -> list[tuple[str, URIRef]]:
        return list(self._namespaces)

    def graph(self) -> Graph:
        """A new rdflib graph of these triples, with the prefixes bound."""
        graph = Graph(store="SimpleMemory")
        for prefix, namespace in self._namespaces:
            graph.bind(prefix, namespace, override=False)
        for triple in self._triples:
            graph.add(triple)
        return graph
