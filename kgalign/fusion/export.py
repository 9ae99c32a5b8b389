"""Write the alignment and the fused graph: links.ttl, alignment.rdf, fused.ttl, provenance.trig."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import quoteattr

from rdflib import Graph, Literal, URIRef
from rdflib.namespace import OWL, PROV, RDF, XSD

from kgalign.fusion.fuse import FusionResult, Triple
from kgalign.io.atomic import atomic_open
from kgalign.io.inputs import input_uri
from kgalign.io.turtle import N3, Rendered, write_trig, write_turtle
from kgalign.model import Link
from kgalign.vocab import KGA

ALIGN_NS = "http://knowledgeweb.semanticweb.org/heterogeneity/alignment#"


def links_graph(links: Sequence[Link]) -> Graph:
    graph = Graph()
    graph.bind("owl", OWL)
    for link in links:
        graph.add((URIRef(link.left), OWL.sameAs, URIRef(link.right)))
    return graph


@dataclass
class FusedRows:
    """The fused triples rendered and sorted once, for fused.ttl and provenance.trig
    both (rendering and sorting them took a second per file on DBP15K), each row's
    sources beside it."""

    rows: Rendered
    sources: list[frozenset[str]]

    @classmethod
    def of(cls, fusion: FusionResult) -> FusedRows:
        n3 = N3()
        keyed = sorted(((n3(s), n3(p), n3(o)), sources) for (s, p, o), sources in fusion.provenance.items())
        return cls(Rendered(row for row, _ in keyed), [sources for _, sources in keyed])

    def of_source(self, source: str) -> Rendered:
        return Rendered(row for row, sources in zip(self.rows, self.sources) if source in sources)


def write_fused(fusion: FusionResult, path: Path, rendered: FusedRows | None = None) -> None:
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
    graphs: dict[URIRef, list[Triple] | Rendered]


def provenance_dataset(
    result: FusionResult, run_iri: URIRef, left_path: str, right_path: str, rendered: FusedRows | None = None
) -> ProvenanceDocument:
    """The document of :class:`ProvenanceDocument`; ``rendered`` is the fused triples
    already rendered (:meth:`FusedRows.of`), made here when not given."""
    rendered = rendered if rendered is not None else FusedRows.of(result)
    graphs: dict[URIRef, list[Triple] | Rendered] = {iri: rendered.of_source(source) for source, iri in SOURCE_GRAPHS.items()}
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
    graphs[DROPPED_GRAPH] = dropped
    default: list[Triple] = [
        (SOURCE_GRAPHS["left"], PROV.wasDerivedFrom, URIRef(input_uri(left_path))),
        (SOURCE_GRAPHS["right"], PROV.wasDerivedFrom, URIRef(input_uri(right_path))),
        (SOURCE_GRAPHS["kgalign"], PROV.wasGeneratedBy, run_iri),
        (run_iri, RDF.type, KGA.Run),
        (run_iri, RDF.type, PROV.Activity),
        (run_iri, KGA.clusters, Literal(len(result.clusters), datatype=XSD.integer)),
    ]
    return ProvenanceDocument(default=default, graphs=graphs)


def write_dataset(document: ProvenanceDocument, path: Path) -> None:
    with atomic_open(path) as handle:
        write_trig(handle, document.default, document.graphs)
