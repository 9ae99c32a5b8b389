"""Load an RDF file into an rdflib graph, then into an entity table.

An *entity* is an IRI subject that either has a label or is referenced by no other
subject (a root of the graph). Label-less nodes that other subjects point to (an
address node, a blank node) are not entities: their literals are folded into the
description of every entity that points to them, under an attribute path such as
``has_address / is_in_suburb / name``. ``classes`` restricts the entities to
subjects of those rdf:types instead.

A file ending in ``.csv`` or ``.tsv`` (optionally ``.gz``) is read as a table, one
entity per row (see :mod:`kgalign.importers.tables`); its id column is the first
column unless ``id_column`` (or an enclosing :func:`table_id_column` block) names one.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import logging
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from pathlib import Path

from rdflib import BNode, Dataset, Graph, Literal, URIRef
from rdflib.namespace import FOAF, OWL, RDF, RDFS, SKOS

from kgalign.errors import InputError
from kgalign.model import Entity, EntityTable, Value

log = logging.getLogger(__name__)

SCHEMA_NAME = URIRef("http://schema.org/name")
SCHEMA_NAME_HTTPS = URIRef("https://schema.org/name")
LABEL_PREDICATES: tuple[URIRef, ...] = (
    RDFS.label,
    SKOS.prefLabel,
    SKOS.altLabel,
    SCHEMA_NAME,
    SCHEMA_NAME_HTTPS,
    FOAF.name,
)
# Subjects of these types describe the vocabulary, not the data.
SCHEMA_TYPES = frozenset(
    {
        OWL.Class,
        RDFS.Class,
        OWL.ObjectProperty,
        OWL.DatatypeProperty,
        OWL.AnnotationProperty,
        RDF.Property,
        OWL.Ontology,
    }
)

FORMAT_BY_SUFFIX = {
    ".ttl": "turtle",
    ".turtle": "turtle",
    ".n3": "n3",
    ".nt": "nt",
    ".ntriples": "nt",
    ".nq": "nquads",
    ".trig": "trig",
    ".rdf": "xml",
    ".xml": "xml",
    ".owl": "xml",
    ".jsonld": "json-ld",
    ".json": "json-ld",
}
QUAD_FORMATS = {"nquads", "trig"}
FORMAT_ALIASES = {
    "ttl": "turtle",
    "ntriples": "nt",
    "n-triples": "nt",
    "nq": "nquads",
    "n-quads": "nquads",
    "rdfxml": "xml",
    "rdf/xml": "xml",
    "rdf": "xml",
    "jsonld": "json-ld",
}
PATH_SEPARATOR = " / "


def guess_format(path: Path) -> str:
    """The rdflib format name for a file, from its extension (``.gz`` looked through)."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    if not suffixes or suffixes[-1] not in FORMAT_BY_SUFFIX:
        raise InputError(
            f"{path}: cannot tell the RDF format from the extension; "
            f"pass --format (one of {', '.join(sorted(set(FORMAT_BY_SUFFIX.values())))})"
        )
    return FORMAT_BY_SUFFIX[suffixes[-1]]


def _read_bytes(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not a graph file") from None
    except PermissionError:
        raise InputError(f"{path}: permission denied") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if path.suffix.lower() == ".gz":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise InputError(f"{path}: not a valid gzip file ({exc})") from None
    return data


_LINE_PATTERNS = (
    re.compile(r"line[:\s]+(\d+)", re.IGNORECASE),
    re.compile(r":(\d+):(\d+):"),
)


def _parse_error_message(path: Path, exc: BaseException, data: bytes) -> str:
    text = " ".join(str(exc).split())
    line = getattr(exc, "lineno", None) or getattr(exc, "line", None)
    if not isinstance(line, int):
        for pattern in _LINE_PATTERNS:
            match = pattern.search(text)
            if match:
                line = int(match.group(1))
                break
    if len(text) > 200:
        text = text[:200] + "..."
    where = f"{path}:{line}" if isinstance(line, int) else str(path)
    return f"{where}: not valid RDF ({type(exc).__name__}: {text})"


def _check_utf8(path: Path, data: bytes, fmt: str) -> None:
    if fmt == "xml":
        return  # RDF/XML declares its own encoding
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(
            f"{path}:{line}: not valid UTF-8 (byte 0x{data[exc.start]:02x}); "
            "RDF text formats must be UTF-8, re-encode the file"
        ) from None


TABLE_FORMATS = frozenset({"csv", "tsv"})
_TABLE_ID_COLUMN: ContextVar[str | None] = ContextVar("kgalign_table_id_column", default=None)


@contextlib.contextmanager
def table_id_column(column: str | None) -> Iterator[None]:
    """Within this block, CSV/TSV inputs use ``column`` as their id column.

    For callers that reach :func:`load_graph` through :func:`kgalign.pipeline.align`
    (the CLI's ``--id-column``); ``None`` means the first column.
    """
    token = _TABLE_ID_COLUMN.set(column)
    try:
        yield
    finally:
        _TABLE_ID_COLUMN.reset(token)


def is_table_input(path: str | Path, fmt: str | None = None) -> bool:
    """True when ``path`` is read as a CSV/TSV table: by its extension, or ``fmt`` csv/tsv."""
    from kgalign.importers.tables import is_table_path

    return is_table_path(path) or (fmt or "").lower() in TABLE_FORMATS


def load_graph(path: str | Path, fmt: str | None = None, id_column: str | None = None) -> Graph:
    """Parse one RDF file into a graph. Quads are merged into one graph.

    CSV/TSV tables (by extension, or ``fmt`` ``csv``/``tsv``) become one entity per row;
    ``id_column`` names their id column (default: the one set by :func:`table_id_column`,
    else the first column). It is ignored for RDF files.
    """
    path = Path(path)
    if is_table_input(path, fmt):
        from kgalign.importers.tables import table_graph

        data = _read_bytes(path)
        if not data.strip():
            raise InputError(f"{path}: the file is empty")
        graph = table_graph(path, id_column or _TABLE_ID_COLUMN.get(), data=data)
        log.info("loaded %s: %d triples", path, len(graph))
        return graph
    fmt = FORMAT_ALIASES.get(fmt, fmt) if fmt else guess_format(path)
    data = _read_bytes(path)
    if not data.strip():
        raise InputError(f"{path}: the file is empty")
    _check_utf8(path, data, fmt)
    try:
        if fmt in QUAD_FORMATS:
            dataset = Dataset()
            dataset.parse(io.BytesIO(data), format=fmt)
            graph = Graph()
            for s, p, o, _ in dataset.quads((None, None, None, None)):
                graph.add((s, p, o))
        else:
            graph = Graph()
            graph.parse(io.BytesIO(data), format=fmt, publicID=path.resolve().as_uri())
    except InputError:
        raise
    except Exception as exc:  # rdflib raises many kinds; each becomes one line
        raise InputError(_parse_error_message(path, exc, data)) from None
    if len(graph) == 0:
        raise InputError(f"{path}: the graph has no triples")
    log.info("loaded %s: %d triples", path, len(graph))
    return graph


def _value(literal: Literal) -> Value:
    return Value(
        text=str(literal),
        lang=literal.language,
        datatype=str(literal.datatype) if literal.datatype else None,
    )


class _Index:
    """One pass over a graph: literals, links, types and in-degree per node."""

    def __init__(self, graph: Graph) -> None:
        self.literals: dict[object, dict[str, list[Value]]] = defaultdict(lambda: defaultdict(list))
        self.labels: dict[object, list[Value]] = defaultdict(list)
        self.links: dict[object, dict[str, list[object]]] = defaultdict(lambda: defaultdict(list))
        self.types: dict[object, list[str]] = defaultdict(list)
        self.referenced: set[object] = set()
        self.subjects: set[object] = set()
        label_set = set(LABEL_PREDICATES)
        for s, p, o in graph:
            self.subjects.add(s)
            if isinstance(o, Literal):
                if p in label_set:
                    self.labels[s].append(_value(o))
                else:
                    self.literals[s][str(p)].append(_value(o))
            elif p == RDF.type:
                self.types[s].append(str(o))
            else:
                self.links[s][str(p)].append(o)
                if o != s:
                    self.referenced.add(o)


def _is_schema_node(types: Iterable[str]) -> bool:
    return any(URIRef(t) in SCHEMA_TYPES for t in types)


def build_entity_table(
    graph: Graph,
    name: str,
    classes: Iterable[str] | None = None,
    fold_depth: int = 3,
) -> EntityTable:
    """Turn a graph into the table of entities to align, descriptions folded in."""
    index = _Index(graph)
    wanted = {str(c) for c in classes} if classes else None
    entity_nodes: list[URIRef] = []
    for node in index.subjects:
        if not isinstance(node, URIRef):
            continue
        types = index.types.get(node, ())
        if wanted is not None:
            if wanted.intersection(types):
                entity_nodes.append(node)
        elif not _is_schema_node(types) and (node in index.labels or node not in index.referenced):
            entity_nodes.append(node)
    entity_set = set(entity_nodes)
    if wanted is not None and not entity_nodes:
        raise InputError(f"{name}: no subject has rdf:type {', '.join(sorted(wanted))}")

    entities: dict[str, Entity] = {}
    for node in sorted(entity_nodes):
        entity = Entity(iri=str(node), labels=list(index.labels.get(node, ())), types=list(index.types.get(node, ())))
        _fold(index, node, entity, prefix="", depth=fold_depth, entity_set=entity_set, seen={node})
        entities[entity.iri] = entity
    log.info("%s: %d entities", name, len(entities))
    return EntityTable(name=name, entities=entities, triple_count=len(graph))


def _fold(
    index: _Index,
    node: object,
    entity: Entity,
    prefix: str,
    depth: int,
    entity_set: set,
    seen: set,
) -> None:
    """Copy ``node``'s literals into ``entity`` and follow links to non-entity nodes."""
    for predicate, values in index.literals.get(node, {}).items():
        entity.attributes.setdefault(prefix + predicate, []).extend(values)
    if prefix:
        # A folded node's own labels become attributes of the owner.
        labels = index.labels.get(node, ())
        if labels:
            entity.attributes.setdefault(prefix + str(RDFS.label), []).extend(labels)
    for predicate, targets in index.links.get(node, {}).items():
        for target in targets:
            if target in entity_set:
                if not prefix:
                    entity.relations.setdefault(predicate, []).append(str(target))
                continue
            if depth <= 0 or target in seen:
                continue
            if isinstance(target, (URIRef, BNode)) and (target in index.literals or target in index.links or target in index.labels):
                seen.add(target)
                _fold(index, target, entity, prefix + predicate + PATH_SEPARATOR, depth - 1, entity_set, seen)
                seen.discard(target)


def load_entities(
    path: str | Path,
    name: str | None = None,
    fmt: str | None = None,
    classes: Iterable[str] | None = None,
    id_column: str | None = None,
) -> tuple[Graph, EntityTable]:
    """Parse a file and build its entity table; fail clearly if there is nothing to align.

    ``id_column`` applies to CSV/TSV inputs only (see :func:`load_graph`).
    """
    path = Path(path)
    graph = load_graph(path, fmt, id_column)
    table = build_entity_table(graph, name=name or str(path), classes=classes)
    if not table.entities:
        raise InputError(f"{path}: no entities found (every subject is referenced and unlabelled)")
    if not any(entity.attributes or entity.labels for entity in table.entities.values()):
        log.warning("%s: no entity has a literal; only IRIs and relations can be compared", path)
    return graph, table
