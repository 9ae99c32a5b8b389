"""Write the alignment and the fused graph: links.ttl, alignment.rdf, fused.ttl, provenance.trig."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from xml.sax.saxutils import quoteattr

import numpy as np
from rdflib import Graph, Literal, URIRef
from rdflib.namespace import OWL, PROV, RDF, XSD
from rdflib.term import Node

from kgalign.fusion.fuse import FusionResult, Triple
from kgalign.io.atomic import atomic_open
from kgalign.io.inputs import input_uri
from kgalign.io.turtle import RankedRows, StreamedRows, write_trig, write_turtle
from kgalign.model import Link
from kgalign.vocab import KGA

if TYPE_CHECKING:
    from kgalign.fusion.spilled import SpilledRows

ALIGN_NS = "http://knowledgeweb.semanticweb.org/heterogeneity/alignment#"


def links_graph(links: Sequence[Link]) -> Graph:
    graph = Graph()
    graph.bind("owl", OWL)
    for link in links:
        graph.add((URIRef(link.left), OWL.sameAs, URIRef(link.right)))
    return graph


#: The bit of each source in :attr:`FusedRows.sources`.
SOURCE_BITS = {"left": 1, "right": 2, "kgalign": 4}


@dataclass
class FusedRows:
    """The fused triples rendered and sorted once, for fused.ttl and provenance.trig
    both (rendering and sorting them took a second per file on DBP15K), each row's
    sources beside it.

    Held as numbers, not as a tuple of strings per triple (about 200 bytes each, a
    gigabyte on a fusion of a few million triples): ``forms`` holds each distinct
    N-Triples form once, sorted, so that ordering the rows by their three ranks orders
    them as their strings; ``ranks`` is an ``(n, 3)`` array of ranks, rows sorted;
    ``sources`` the bits (:data:`SOURCE_BITS`) of each row's sources."""

    forms: list[str]
    ranks: np.ndarray
    sources: np.ndarray

    def __len__(self) -> int:
        return len(self.ranks)

    @classmethod
    def of(cls, fusion: FusionResult) -> FusedRows | SpilledRows:
        """The fusion's rows: rendered here, or as the partitions rendered them."""
        if fusion.rows is not None:
            return fusion.rows
        if fusion.partitioned:
            raise TypeError("a fusion by partitions past the single files' limit is in its shards alone")
        ids: dict[Node, int] = {}
        number = ids.setdefault
        # Each term gets the next number the first time it is seen (len(ids) before the insert).
        flat = np.fromiter(
            (number(term, len(ids)) for triple in fusion.provenance for term in triple), dtype=np.int32, count=3 * len(fusion)
        ).reshape(-1, 3)
        bits = np.fromiter(
            (sum(SOURCE_BITS[source] for source in sources) for sources in fusion.provenance.values()), dtype=np.uint8, count=len(fusion)
        )
        forms = [term.n3() for term in ids]
        del ids
        return cls.numbered(forms, flat, bits)

    @classmethod
    def numbered(cls, forms: list[str], triples: np.ndarray, sources: np.ndarray) -> FusedRows:
        """The rows of ``triples``, an ``(n, 3)`` array of numbers of terms (term ``i``
        renders as ``forms[i]``), each row's source bits in ``sources``; a row given twice
        is one row with the sources of both."""
        order = np.argsort(np.array(forms, dtype=object), kind="stable")
        rank = np.empty(len(forms), dtype=np.int32)
        sorted_forms: list[str] = []
        for term in order.tolist():  # terms of one form (if any) share a rank
            form = forms[term]
            if not sorted_forms or sorted_forms[-1] != form:
                sorted_forms.append(form)
            rank[term] = len(sorted_forms) - 1
        del order
        ranks = rank[triples]
        order = np.lexsort((ranks[:, 2], ranks[:, 1], ranks[:, 0]))
        ranks, bits = ranks[order], sources[order]
        del order
        first = np.ones(len(ranks), dtype=bool)
        first[1:] = np.any(ranks[1:] != ranks[:-1], axis=1)
        starts = np.flatnonzero(first)
        if len(starts) == len(ranks):
            return cls(sorted_forms, ranks, bits)
        return cls(sorted_forms, ranks[starts], np.bitwise_or.reduceat(bits, starts))

    @property
    def rows(self) -> RankedRows:
        return RankedRows(self.forms, self.ranks)

    def of_source(self, source: str) -> RankedRows:
        return RankedRows(self.forms, self.ranks[(self.sources & SOURCE_BITS[source]) != 0])


def write_fused(fusion: FusionResult, path: Path, rendered: FusedRows | SpilledRows | None = None) -> None:
    """fused.ttl (see :func:`kgalign.io.turtle.write_turtle`); ``rendered``: the fused
    triples already rendered."""
    triples = rendered.rows if rendered is not None else fusion.triples
    write_turtle(path, triples, count=len(fusion), graph=lambda: fusion.graph)


def write_links(links: Sequence[Link], path: Path) -> None:
    """links.ttl: one owl:sameAs triple per link (see :func:`kgalign.io.turtle.write_turtle`)."""
    same_as = OWL.sameAs
    triples = ((URIRef(link.left), same_as, URIRef(link.right)) for link in links)
    write_turtle(path, triples, count=len(links), graph=lambda: links_graph(links))


def alignment_xml(links: Sequence[Link], onto1: str = "null", onto2: str = "null") -> str:
    """The OAEI Alignment format (RDF/XML), as the OAEI 2010 gold files are written."""
    out = [
        "<?xml version='1.0' encoding='utf-8' standalone='no'?>",
        f"<rdf:RDF xmlns='{ALIGN_NS}'",
        "         xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#'",
        "         xmlns:xsd='http://www.w3.org/2001/XMLSchema#'>",
        "<Alignment>",
        "  <xml>yes</xml>",
        "  <level>0</level>",
        "  <type>11</type>",
        f"  <onto1><Ontology><location>{_text(onto1)}</location></Ontology></onto1>",
        f"  <onto2><Ontology><location>{_text(onto2)}</location></Ontology></onto2>",
    ]
    for link in links:
        out += [
            " <map>",
            "   <Cell>",
            f"      <entity1 rdf:resource={quoteattr(link.left)}/>",
            f"      <entity2 rdf:resource={quoteattr(link.right)}/>",
            "      <relation>=</relation>",
            f"      <measure rdf:datatype='http://www.w3.org/2001/XMLSchema#float'>{link.confidence:.6f}</measure>",
            "   </Cell>",
            " </map>",
        ]
    out += ["</Alignment>", "</rdf:RDF>", ""]
    return "\n".join(out)


def _text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def write_alignment(links: Sequence[Link], path: Path, onto1: str = "null", onto2: str = "null") -> None:
    with atomic_open(path) as handle:
        handle.write(alignment_xml(links, onto1, onto2))


SOURCE_GRAPHS = {
    "left": URIRef(str(KGA) + "source/left"),
    "right": URIRef(str(KGA) + "source/right"),
    "kgalign": URIRef(str(KGA) + "source/kgalign"),
}
DROPPED_GRAPH = URIRef(str(KGA) + "dropped")


@dataclass
class ProvenanceDocument:
    """The provenance of a fusion as TriG: the fused triples each source contributed
    (one named graph per source), the dropped ones (reified), and the run."""

    default: list[Triple]
    graphs: dict[URIRef, list[Triple] | RankedRows | StreamedRows]


def provenance_dataset(
    result: FusionResult, run_iri: URIRef, left_path: str, right_path: str, rendered: FusedRows | SpilledRows | None = None
) -> ProvenanceDocument:
    """The document of :class:`ProvenanceDocument`; ``rendered`` is the fused triples
    already rendered (:meth:`FusedRows.of`), made here when not given."""
    rendered = rendered if rendered is not None else FusedRows.of(result)
    graphs: dict[URIRef, list[Triple] | RankedRows | StreamedRows] = {iri: rendered.of_source(source) for source, iri in SOURCE_GRAPHS.items()}
    default, graphs[DROPPED_GRAPH] = provenance_header(result, run_iri, left_path, right_path)
    return ProvenanceDocument(default=default, graphs=graphs)


def provenance_header(result: FusionResult, run_iri: URIRef, left_path: str, right_path: str) -> tuple[list[Triple], list[Triple]]:
    """The provenance beside the fused triples: the default graph's triples (the sources
    and the run) and the dropped graph's (each dropped triple reified, with its source
    and reason)."""
    dropped: list[Triple] = []
    for index, (triple, source, reason) in enumerate(result.dropped):
        node = URIRef(f"{DROPPED_GRAPH}/{index}")
        dropped += [
            (node, RDF.type, KGA.DroppedTriple),
            (node, RDF.subject, triple[0]),
            (node, RDF.predicate, triple[1]),
            (node, RDF.object, triple[2]),
            (node, PROV.wasDerivedFrom, SOURCE_GRAPHS[source]),
            (node, KGA.reason, Literal(reason)),
        ]
    default: list[Triple] = [
        (SOURCE_GRAPHS["left"], PROV.wasDerivedFrom, URIRef(input_uri(left_path))),
        (SOURCE_GRAPHS["right"], PROV.wasDerivedFrom, URIRef(input_uri(right_path))),
        (SOURCE_GRAPHS["kgalign"], PROV.wasGeneratedBy, run_iri),
        (run_iri, RDF.type, KGA.Run),
        (run_iri, RDF.type, PROV.Activity),
        (run_iri, KGA.clusters, Literal(len(result.clusters), datatype=XSD.integer)),
    ]
    return default, dropped


def write_dataset(document: ProvenanceDocument, path: Path) -> None:
    with atomic_open(path) as handle:
        write_trig(handle, document.default, document.graphs)
