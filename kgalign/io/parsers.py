"""Parse one input file into its triples: RDF with pyoxigraph or rdflib, CSV/TSV as a table.

RDF files are parsed straight from the file (or the gzip stream), never held in memory
as bytes, into a :class:`~kgalign.io.triples.TripleSet`: one copy of the graph, triples
in file order. pyoxigraph parses N-Triples, Turtle, N-Quads and TriG; rdflib the rest
and whatever pyoxigraph rejects, so that every syntax error is named the same way
(:func:`kgalign.io.diagnostics.parse_error_message`). The file is checked before
parsing (:func:`kgalign.io.reading.scan`) and its terms after
(:func:`kgalign.io.diagnostics.check_terms`).

A file ending in ``.csv`` or ``.tsv`` (optionally ``.gz``) is read as a table, one
entity per row (see :mod:`kgalign.io.importers.tables`); its id column is the first
column unless ``id_column`` names one. A folder is read as one graph: its RDF files,
subfolders included, in order of their paths.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from itertools import repeat
from pathlib import Path
from typing import Any

from rdflib import BNode, Dataset, Graph, Literal, URIRef
from rdflib.term import Node

from kgalign.errors import InputError, one_line
from kgalign.io.diagnostics import check_terms, parse_error_message, quiet_term_warnings, report_term_warnings
from kgalign.io.formats import QUAD_FORMATS, folder_files, is_table_input, rdf_format
from kgalign.io.importers.tables import table_graph
from kgalign.io.reading import open_input, read_bytes, scan
from kgalign.io.triples import Triple, TripleSet, known_iri

log = logging.getLogger(__name__)

# Formats rdflib parses into its lean, context-free store (triples kept in file order);
# the others need a context-aware store.
SIMPLE_STORE_FORMATS = frozenset({"nt", "turtle", "xml"})
OXIGRAPH_FORMATS = frozenset({"nt", "turtle", "nquads", "trig"})
_XSD_STRING = "http://www.w3.org/2001/XMLSchema#string"


def load_graph(path: str | Path, fmt: str | None = None, *, id_column: str | None = None) -> Graph:
    """Parse one RDF file (or CSV/TSV table) into an rdflib graph; see :func:`read_triples`."""
    return read_triples(path, fmt, id_column=id_column).graph()


def read_triples(path: str | Path, fmt: str | None = None, *, id_column: str | None = None) -> TripleSet:
    """Parse one RDF file into its triples, each once, in file order. Quads are merged into one graph.

    N-Triples, Turtle, N-Quads and TriG are parsed by pyoxigraph (a streaming parser in
    Rust, several times faster than rdflib's); a file it rejects, and every other
    format, is parsed by rdflib, whose errors become one line naming the file and line.
    CSV/TSV tables (by extension, or ``fmt`` ``csv``/``tsv``) become one entity per row;
    ``id_column`` names their id column (default: the first column). It is ignored for
    RDF files.
    """
    path = Path(path)
    if path.is_dir():
        return _read_folder(path, fmt)
    return _read_file(path, fmt, id_column)


def _read_file(path: Path, fmt: str | None, id_column: str | None, in_folder: bool = False) -> TripleSet:
    """One file's triples (see :func:`read_triples`); ``in_folder``: an empty file gives no
    triples instead of an error, and the file is logged at debug level."""
    if is_table_input(path, fmt):
        data = read_bytes(path)
        if not data.strip():
            raise InputError(f"{path}: the file is empty")
        table = TripleSet.from_graph(table_graph(path, id_column, data=data))
        log.info("loaded %s: %d triples", path, len(table))
        return table

    def nothing(what: str) -> None:
        """A file with nothing in it: an error, or in a folder a warning."""
        if not in_folder:
            raise InputError(f"{path}: {what}")
        log.warning("%s: %s", path, what)

    fmt = rdf_format(path, fmt)
    found = scan(path, fmt)
    if found.blank:
        nothing("the file is empty")
        return TripleSet()
    triples: TripleSet | None = None
    if fmt in OXIGRAPH_FORMATS:
        with quiet_term_warnings() as counter:
            triples = _parse_oxigraph(path, fmt)
    if triples is None:
        with quiet_term_warnings() as counter:
            triples = TripleSet.from_graph(_parse_rdflib(path, fmt))
    report_term_warnings(path, counter)
    if len(triples) == 0:
        nothing("the graph has no triples")
    check_terms(path, triples, found.surrogate_line)
    log.log(logging.DEBUG if in_folder else logging.INFO, "loaded %s: %d triples", path, len(triples))
    return triples


def _read_folder(folder: Path, fmt: str | None) -> TripleSet:
    """The RDF files of ``folder`` (:func:`kgalign.io.formats.folder_files`) as one graph: the
    triples of each file in turn, each triple once; an entity may be described across
    files. Each file is read by its extension (``fmt`` is for single files). Blank nodes
    stay apart between files, as RDF merges graphs; a relative IRI is resolved against
    its own file; a prefix keeps the first file's namespace. An empty file is skipped
    with a warning; a folder with no triples at all is an error."""
    if fmt:
        log.warning("%s: --format is not used for a folder; its files are read by their extensions", folder)
    merged: dict[Triple, None] = {}
    prefixes: dict[str, URIRef] = {}
    files = folder_files(folder)
    for path in files:
        part = _read_file(path, None, None, in_folder=True)
        merged.update(zip(part, repeat(None)))  # no second dict of the file's triples
        for prefix, namespace in part.namespaces():
            prefixes.setdefault(prefix, namespace)
        del part
    if not merged:
        raise InputError(f"{folder}: the folder's {len(files)} RDF files hold no triples")
    log.info("loaded %s: %d files, %d triples", folder, len(files), len(merged))
    return TripleSet(merged, prefixes.items())


def _parse_rdflib(path: Path, fmt: str) -> Graph:
    """rdflib's parse of ``path``; any parser error becomes one :class:`InputError` line."""
    graph = Graph(store="SimpleMemory") if fmt in SIMPLE_STORE_FORMATS else Graph()
    try:
        with open_input(path) as handle:
            if fmt in QUAD_FORMATS:
                dataset = Dataset()
                dataset.parse(handle, format=fmt)
                for s, p, o, _ in dataset.quads((None, None, None, None)):
                    graph.add((s, p, o))
                del dataset
            else:
                graph.parse(handle, format=fmt, publicID=path.resolve().as_uri())
    except InputError:
        raise
    except Exception as exc:  # rdflib raises many kinds; each becomes one line
        raise InputError(parse_error_message(path, exc, fmt)) from None
    return graph


def oxigraph_format(fmt: str) -> Any:
    """pyoxigraph's name of one of OXIGRAPH_FORMATS."""
    import pyoxigraph as ox

    return {"nt": ox.RdfFormat.N_TRIPLES, "turtle": ox.RdfFormat.TURTLE, "nquads": ox.RdfFormat.N_QUADS, "trig": ox.RdfFormat.TRIG}[fmt]


def oxigraph_terms(blank_node: Callable[[str], BNode]) -> Callable[[Any], Node]:
    """The converter of pyoxigraph's terms into rdflib's used by every oxigraph parse.

    Each IRI becomes one shared ``URIRef`` (pyoxigraph checked it); each distinct literal
    one ``Literal``: values repeat (a city, a year, a genre; 18% of the 627,640 literals
    of bench/large.py's 1M-triple graph are distinct), and an rdflib Literal with its
    converted value takes about 200 bytes; ``"x"^^xsd:string`` is the plain ``"x"``. A
    blank node's label goes to ``blank_node``, which decides its identity. A triple term
    (RDF 1.2) raises ValueError. The converter keeps its caches between calls: one
    parse's terms are shared by the next (:mod:`kgalign.io.partitioned`).
    """
    import pyoxigraph as ox

    named_node, blank_node_type, literal_type = ox.NamedNode, ox.BlankNode, ox.Literal
    iris: dict[str, URIRef] = {}
    datatypes = oxigraph_datatypes()
    literals: dict[tuple[str, str | None, str | None], Literal] = {}

    # ``node`` is a pyoxigraph term, told apart by its exact type (faster than isinstance
    # in this per-term loop), which mypy does not narrow on: hence Any.
    def term(node: Any) -> Node:
        kind = type(node)
        if kind is named_node:
            value = node.value
            iri = iris.get(value)
            if iri is None:
                iri = iris[value] = known_iri(value)
            return iri
        if kind is literal_type:
            language = node.language
            key = (node.value, language, None if language else node.datatype.value)
            literal = literals.get(key)
            if literal is None:
                literal = literals[key] = oxigraph_literal(node, datatypes)
            return literal
        if kind is blank_node_type:
            return blank_node(node.value)
        raise ValueError(f"unsupported term {node!r}")  # an RDF 1.2 triple term: rdflib decides

    return term


def oxigraph_literal(node: Any, datatypes: dict[str, URIRef | None]) -> Literal:
    """rdflib's ``Literal`` of a pyoxigraph literal, ``"x"^^xsd:string`` the plain ``"x"``;
    ``datatypes`` holds each datatype's ``URIRef`` once (``{XSD string: None}`` at first)."""
    language = node.language
    if language:
        return Literal(node.value, lang=language)
    datatype = node.datatype.value
    if datatype not in datatypes:
        datatypes[datatype] = URIRef(datatype)
    return Literal(node.value, datatype=datatypes[datatype])


def oxigraph_datatypes() -> dict[str, URIRef | None]:
    """The start of :func:`oxigraph_literal`'s ``datatypes``."""
    return {_XSD_STRING: None}


def _parse_oxigraph(path: Path, fmt: str) -> TripleSet | None:
    """pyoxigraph's streaming parse of ``path`` as rdflib terms; None if it cannot parse it.

    None (pyoxigraph missing, a syntax error, an RDF 1.2 triple term, an unreadable
    stream) sends the file to rdflib, which either parses it or names the error the way
    every other input error is named. Each IRI becomes one shared ``URIRef``; blank node
    labels are renamed apart, so two files' ``_:b1`` stay two nodes.
    """
    try:
        import pyoxigraph as ox
    except ImportError:  # pragma: no cover - a declared dependency
        return None
    blanks: dict[str, BNode] = {}

    def fresh(label: str) -> BNode:
        blank = blanks.get(label)
        if blank is None:
            blank = blanks[label] = BNode()
        return blank

    term = oxigraph_terms(fresh)
    triples: dict[Triple, None] = {}
    try:
        with open_input(path) as handle:
            parser = ox.parse(handle, format=oxigraph_format(fmt), base_iri=path.resolve().as_uri())
            for quad in parser:
                triples[(term(quad.subject), term(quad.predicate), term(quad.object))] = None
            prefixes = dict(parser.prefixes)
    except InputError:
        raise
    except Exception as exc:
        log.debug("%s: pyoxigraph could not parse it (%s); parsing with rdflib", path, one_line(str(exc)))
        return None
    return TripleSet(triples, prefixes.items())
