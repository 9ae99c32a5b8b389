"""Load an RDF file into an rdflib graph, then into an entity table.

An *entity* is an IRI subject that either has a label or is referenced by no other
subject (a root of the graph). Label-less nodes that other subjects point to (an
address node, a blank node) are not entities: their literals are folded into the
description of every entity that points to them, under an attribute path such as
``has_address / is_in_suburb / name``. ``classes`` restricts the entities to
subjects of those rdf:types instead. A graph without any literal has nothing to
fold: there every IRI subject (schema nodes aside) is an entity, compared by its IRI
and its relations alone (a warning says so).

RDF files are parsed straight from the file (or the gzip stream), never held in memory
as bytes, into a :class:`~kgalign.io.triples.TripleSet`: one copy of the graph, triples in
file order (pyoxigraph parses N-Triples, Turtle, N-Quads and TriG; rdflib the rest and
whatever pyoxigraph rejects). Before parsing, one streaming pass checks that the file is not blank and is UTF-8
(RDF/XML declares its own encoding). After parsing, every IRI is checked against the
characters RDF forbids in IRIs (spaces, controls, ``<>"{}|^`\\``): such IRIs would make
the written Turtle invalid, so they fail here, naming the file, line and IRI. So do
``\\uD800``-style escapes of UTF-16 surrogates, which no UTF-8 output can hold. Literals
that do not fit their datatype (``"abc"^^xsd:integer``) are kept as text, with one
warning per file instead of rdflib's warning with a traceback per literal.

A file ending in ``.csv`` or ``.tsv`` (optionally ``.gz``) is read as a table, one
entity per row (see :mod:`kgalign.io.importers.tables`); its id column is the first
column unless ``id_column`` (or an enclosing :func:`table_id_column` block) names one.
"""

from __future__ import annotations

import ast
import codecs
import contextlib
import gzip
import io
import logging
import re
import zlib
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from rdflib import BNode, Dataset, Graph, Literal, URIRef
from rdflib.namespace import FOAF, OWL, RDF, RDFS, SKOS

from rdflib.term import Node

from kgalign.errors import InputError
from kgalign.model import Entity, EntityTable, Value
from kgalign.io.triples import Triple, TripleSet, TripleSource, known_iri

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
_SCHEMA_TYPE_NAMES = frozenset(str(t) for t in SCHEMA_TYPES)

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
# Formats rdflib parses into its lean, context-free store (triples kept in file order);
# the others need a context-aware store.
SIMPLE_STORE_FORMATS = frozenset({"nt", "turtle", "xml"})
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
    """The whole file (decompressed when it ends in ``.gz``), with the errors of :func:`_open_input`."""
    with _open_input(path) as handle:
        return b"".join(_chunks(path, handle))


READ_CHUNK = 1 << 20
_GZIP_ERRORS = (OSError, EOFError, zlib.error)


@contextlib.contextmanager
def _open_input(path: Path) -> Iterator[IO[bytes]]:
    """The file as a binary stream, decompressed when it ends in ``.gz``; one-line errors."""
    try:
        handle: IO[bytes] = path.open("rb")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not a graph file") from None
    except PermissionError:
        raise InputError(f"{path}: permission denied") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    with handle:
        if path.suffix.lower() == ".gz":
            with gzip.GzipFile(fileobj=handle, mode="rb") as unzipped:
                yield unzipped
        else:
            yield handle


def _chunks(path: Path, handle: IO[bytes]) -> Iterator[bytes]:
    while True:
        try:
            chunk = handle.read(READ_CHUNK)
        except _GZIP_ERRORS as exc:
            if path.suffix.lower() == ".gz":
                raise InputError(f"{path}: not a valid gzip file ({exc})") from None
            raise InputError(f"{path}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None
        if not chunk:
            return
        yield chunk


# \uD800-\uDFFF written as an escape: Turtle, N-Triples and JSON all allow the syntax.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}|\\U0000[dD][89a-fA-F][0-9a-fA-F]{2}")
_SURROGATE = re.compile("[\ud800-\udfff]")
_UTF16_BOMS = {b"\xff\xfe": "UTF-16 little-endian", b"\xfe\xff": "UTF-16 big-endian"}


@dataclass
class _Scan:
    """What the streaming pass before parsing found."""

    blank: bool = True
    surrogate_line: int | None = None


def _scan(path: Path, fmt: str) -> _Scan:
    """One streaming pass: is the file blank, is it UTF-8, does it escape surrogates.

    A UTF-8 error names its line and byte; a UTF-16 byte-order mark is named as such.
    RDF/XML is exempt from the UTF-8 rule (its XML declaration names the encoding).
    """
    text_format = fmt != "xml"
    decoder = codecs.getincrementaldecoder("utf-8")() if text_format else None
    result = _Scan()
    lines_before = 0
    tail = b""
    first = True
    with _open_input(path) as handle:
        for chunk in _chunks(path, handle):
            if first and text_format:
                _check_not_utf16(path, chunk)
            elif first:
                _check_entity_expansion(path, chunk)
            first = False
            if result.blank and chunk.strip():
                result.blank = False
            if decoder is not None:
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError as exc:
                    _utf8_error(path, exc, lines_before)
            if text_format and result.surrogate_line is None:
                window = tail + chunk
                match = _SURROGATE_ESCAPE.search(window)
                if match:
                    result.surrogate_line = lines_before - tail.count(b"\n") + window[: match.start()].count(b"\n") + 1
                tail = window[-9:]
            lines_before += chunk.count(b"\n")
        if decoder is not None:
            try:
                decoder.decode(b"", final=True)
            except UnicodeDecodeError as exc:
                _utf8_error(path, exc, lines_before)
    return result


def _check_not_utf16(path: Path, head: bytes) -> None:
    """Name UTF-16 for what it is: by its byte-order mark, or by NUL bytes in every other place."""
    if head[:2] in _UTF16_BOMS:
        raise InputError(
            f"{path}:1: not valid UTF-8 ({_UTF16_BOMS[head[:2]]} byte-order mark); "
            "RDF text formats must be UTF-8, re-encode the file"
        )
    sample = head[:4096]
    if sample.count(b"\x00") * 4 > len(sample):
        raise InputError(
            f"{path}:1: not UTF-8 text (NUL bytes: UTF-16 without a byte-order mark?); "
            "RDF text formats must be UTF-8, re-encode the file"
        )


MAX_ENTITY_EXPANSION = 1_000_000
_ENTITY_DECLARATION = re.compile(rb"""<!ENTITY\s+(?:%\s+)?([^\s%"'>]+)\s+(?:"([^"]*)"|'([^']*)')""")
_ENTITY_REFERENCE = re.compile(rb"[&%]([^\s;&%<>\"']+);")


def _check_entity_expansion(path: Path, head: bytes) -> None:
    """Refuse an XML DTD whose entities expand to more than ``MAX_ENTITY_EXPANSION`` bytes.

    RDF/XML files declare entities for namespace IRIs (``&rdf;``), a few dozen bytes
    each. Entities built from other entities, ten times per level ("billion laughs"),
    expand to gigabytes from a small file; expat stops them only after megabytes of
    expansion, which rdflib's RDF/XML handler takes minutes to collect. The internal
    subset sits before the root element, so the first chunk of the file holds it.
    """
    declarations = {m.group(1): (m.group(2) if m.group(2) is not None else m.group(3), m.start()) for m in _ENTITY_DECLARATION.finditer(head)}
    if not declarations:
        return
    sizes: dict[bytes, int] = {}

    def size(name: bytes, depth: int = 0) -> int:
        if name in sizes:
            return sizes[name]
        if name not in declarations or depth > 50:
            return len(name) + 2
        sizes[name] = 0  # a cycle counts as empty here; expat rejects it
        value = declarations[name][0]
        total = len(_ENTITY_REFERENCE.sub(b"", value))
        for ref in _ENTITY_REFERENCE.finditer(value):
            total += size(ref.group(1), depth + 1)
            if total > MAX_ENTITY_EXPANSION:
                break
        sizes[name] = total
        return total

    for name, (_, offset) in declarations.items():
        if size(name) > MAX_ENTITY_EXPANSION:
            line = head[:offset].count(b"\n") + 1
            raise InputError(
                f"{path}:{line}: XML entity {name.decode('utf-8', 'replace')} expands to over "
                f"{MAX_ENTITY_EXPANSION:,} bytes (an entity expansion attack?); refusing to parse"
            )


def _utf8_error(path: Path, exc: UnicodeDecodeError, lines_before: int) -> None:
    line = lines_before + exc.object[: exc.start].count(b"\n") + 1
    raise InputError(
        f"{path}:{line}: not valid UTF-8 (byte 0x{exc.object[exc.start]:02x}); "
        "RDF text formats must be UTF-8, re-encode the file"
    ) from None


def _find_line(path: Path, needle: bytes, shift: int = 0) -> int | None:
    """The line of the first occurrence of ``needle`` (plus ``shift`` bytes) in the file."""
    if not needle:
        return None
    lines_before = 0
    tail = b""
    with contextlib.suppress(InputError), _open_input(path) as handle:
        for chunk in _chunks(path, handle):
            window = tail + chunk
            at = window.find(needle)
            if at >= 0:
                return lines_before - tail.count(b"\n") + window[: at + shift].count(b"\n") + 1
            keep = len(needle) - 1
            tail = window[-keep:] if keep else b""
            lines_before += chunk.count(b"\n")
    return None


_LINE_PATTERNS = (
    re.compile(r"line[:\s]+(\d+)", re.IGNORECASE),
    re.compile(r":(\d+):(\d+):"),
)
_NT_INVALID = re.compile(r"^Invalid line: (.+)$", re.DOTALL)
_NQ_INVALID = re.compile(r"^Invalid line \(.*\):\n('.*'|\".*\")$", re.DOTALL)
_CARET_CONTEXT = re.compile(r" at \^ in:? (.+)$", re.DOTALL)


def _line_of_bad_statement(path: Path, fmt: str, text: str) -> int | None:
    """The line of the statement a parser rejected without saying where.

    rdflib's N-Triples parser reports the unparsed rest of the bad line, its N-Quads
    parser the whole line, and its Turtle parser (for some errors) the text around
    the position as ``before^after``; each is looked up in the file.
    """
    if fmt in ("nt", "nquads"):
        match = _NQ_INVALID.match(text)
        if match:
            with contextlib.suppress(ValueError, SyntaxError):
                wanted = str(ast.literal_eval(match.group(1))).strip()
                return _first_line(path, lambda line: line.strip() == wanted and bool(wanted))
        match = _NT_INVALID.match(text)
        if match:
            rest = match.group(1).strip()
            return _first_line(path, lambda line: bool(rest) and line.rstrip().endswith(rest) and not _parses(line, fmt))
        return None
    match = _CARET_CONTEXT.search(text)
    if match:
        context = match.group(1)
        for at in [i for i, ch in enumerate(context) if ch == "^"]:
            before, after = context[:at], context[at + 1 :]
            line = _find_line(path, (before + after).encode("utf-8", "replace"), len(before.encode("utf-8", "replace")))
            if line is not None:
                return line
    return None


def _first_line(path: Path, test: object) -> int | None:
    """The number of the first line of the (UTF-8) file for which ``test(line)`` holds."""
    with contextlib.suppress(InputError), _open_input(path) as handle:
        reader = io.TextIOWrapper(handle, encoding="utf-8", errors="replace", newline="")
        for number, line in enumerate(reader, start=1):
            if test(line):  # type: ignore[operator]
                return number
    return None


def _parses(line: str, fmt: str) -> bool:
    try:
        Dataset().parse(data=line, format=fmt) if fmt == "nquads" else Graph().parse(data=line, format=fmt)
    except Exception:  # noqa: BLE001 - any parser error means "does not parse"
        return False
    return True


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def one_line(text: str) -> str:
    """``text`` with runs of whitespace made one space and control characters escaped."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group(0)):02x}", " ".join(text.split()))


def _syntax_detail(exc: BaseException) -> str:
    """rdflib's Turtle/N3 ``BadSyntax`` as "why at ^ in 'before^after'" (it prints bytes reprs)."""
    data, at, why = getattr(exc, "_str", None), getattr(exc, "_i", None), getattr(exc, "_why", None)
    if not isinstance(data, bytes) or not isinstance(at, int) or why is None:
        return str(exc)
    if not 0 <= at <= len(data):
        at = len(data)  # -1: at the end of the input
    before = data[max(0, at - 30) : at].decode("utf-8", "replace")
    after = data[at : at + 30].decode("utf-8", "replace")
    return f'{why} at ^ in "{before}^{after}"'


def _parse_error_message(path: Path, exc: BaseException, fmt: str) -> str:
    raw = str(exc)
    text = one_line(_syntax_detail(exc))
    line = getattr(exc, "lineno", None) or getattr(exc, "line", None)
    if not isinstance(line, int) and isinstance(getattr(exc, "lines", None), int):
        line = exc.lines + 1  # type: ignore[attr-defined]  # BadSyntax counts from 0
    if not isinstance(line, int):
        line = None
        for pattern in _LINE_PATTERNS:
            match = pattern.search(text)
            if match:
                line = int(match.group(1))
                break
    if line is None:
        line = _line_of_bad_statement(path, fmt, raw)
    if len(text) > 200:
        text = text[:200] + "..."
    where = f"{path}:{line}" if isinstance(line, int) else str(path)
    return f"{where}: not valid RDF ({type(exc).__name__}: {text})"


# Characters the IRIREF production of Turtle / N-Triples excludes, and UTF-16 surrogates.
_BAD_IRI_CHAR = re.compile('[\x00-\x20<>"{}|^`\\\\\ud800-\udfff]')
_IRI_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")


def _describe_char(char: str) -> str:
    if char == " ":
        return "a space (write it as %20)"
    if ord(char) < 0x20 or 0xD800 <= ord(char) <= 0xDFFF:
        return f"the character U+{ord(char):04X}"
    return f"'{char}' (percent-encode it as %{ord(char):02X})"


def _shown(text: str, limit: int = 80) -> str:
    """``text`` (an rdflib term, say) for a one-line message: escaped, clipped."""
    text = str(text)
    shown = text.encode("unicode_escape").decode("ascii") if _SURROGATE.search(text) else repr(text)[1:-1]
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def _check_terms(path: Path, graph: TripleSource, surrogate_line: int | None) -> None:
    """Fail on the first IRI that RDF forbids, and on surrogates in literals.

    Literals are searched only when the file escapes a surrogate somewhere
    (``surrogate_line``, found by :func:`_scan`), which keeps the common case fast.
    """
    last_subject = None
    predicates: set[object] = set()
    for s, p, o in graph:
        if s is not last_subject:
            last_subject = s
            if isinstance(s, URIRef):
                _check_iri(path, s)
        if p not in predicates:
            predicates.add(p)
            _check_iri(path, p)
        if isinstance(o, URIRef):
            _check_iri(path, o)
        elif surrogate_line is not None and isinstance(o, Literal) and _SURROGATE.search(o):
            where = f"{path}:{surrogate_line}"
            raise InputError(
                f'{where}: literal "{_shown(o)}" of <{_shown(s)}> holds a UTF-16 surrogate escape, not a character; '
                "write the character itself (or as one \\U00XXXXXX escape)"
            )


def _check_iri(path: Path, iri: URIRef) -> None:
    bad = _BAD_IRI_CHAR.search(iri)
    if bad is None and _IRI_SCHEME.match(iri):
        return
    problem = f"contains {_describe_char(bad.group(0))}" if bad else "has no scheme (such as http:)"
    line = None
    if bad is None or not _SURROGATE.match(bad.group(0)):
        # As written, else the part before the bad character (it may be escaped).
        line = _find_line(path, f"<{iri}>".encode("utf-8", "replace"))
        if line is None and bad is not None and bad.start() > 0:
            line = _find_line(path, f"<{iri[: bad.start()]}".encode("utf-8", "replace"))
    where = f"{path}:{line}" if line else str(path)
    raise InputError(f"{where}: invalid IRI <{_shown(iri)}>: {problem}")


class _TermWarnings(logging.Filter):
    """Swallows rdflib's per-term warnings while a file is parsed, counting them.

    rdflib logs a warning with a traceback for every literal that does not fit its
    datatype, and one for every IRI it finds suspicious (which :func:`_check_terms`
    then rejects with a clearer message).
    """

    def __init__(self) -> None:
        super().__init__()
        self.ill_typed = 0
        self.datatypes: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith("Failed to convert Literal lexical form"):
            self.ill_typed += 1
            found = re.search(r"Datatype=(\S+?),", message)
            if found:
                self.datatypes.add(found.group(1).rsplit("#", 1)[-1].rsplit("/", 1)[-1])
            return False
        return "does not look like a valid URI" not in message


@contextlib.contextmanager
def _quiet_term_warnings() -> Iterator[_TermWarnings]:
    """Within this block rdflib's per-term warnings are counted, not shown (see :func:`_report_term_warnings`)."""
    logger = logging.getLogger("rdflib.term")
    counter = _TermWarnings()
    logger.addFilter(counter)
    try:
        yield counter
    finally:
        logger.removeFilter(counter)


def _report_term_warnings(path: Path, counter: _TermWarnings) -> None:
    if counter.ill_typed:
        log.warning(
            "%s: %d literals do not fit their datatype (%s); kept as text",
            path,
            counter.ill_typed,
            ", ".join(sorted(counter.datatypes)) or "?",
        )


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
    from kgalign.io.importers.tables import is_table_path

    return is_table_path(path) or (fmt or "").lower() in TABLE_FORMATS


def load_graph(path: str | Path, fmt: str | None = None, id_column: str | None = None) -> Graph:
    """Parse one RDF file (or CSV/TSV table) into an rdflib graph; see :func:`read_triples`."""
    return read_triples(path, fmt, id_column).graph()


def read_triples(path: str | Path, fmt: str | None = None, id_column: str | None = None) -> TripleSet:
    """Parse one RDF file into its triples, each once, in file order. Quads are merged into one graph.

    N-Triples, Turtle, N-Quads and TriG are parsed by pyoxigraph (a streaming parser in
    Rust, several times faster than rdflib's); a file it rejects, and every other
    format, is parsed by rdflib, whose errors this module turns into one line naming
    the file and line. CSV/TSV tables (by extension, or ``fmt`` ``csv``/``tsv``) become
    one entity per row; ``id_column`` names their id column (default: the one set by
    :func:`table_id_column`, else the first column). It is ignored for RDF files.
    """
    path = Path(path)
    if is_table_input(path, fmt):
        from kgalign.io.importers.tables import table_graph

        data = _read_bytes(path)
        if not data.strip():
            raise InputError(f"{path}: the file is empty")
        triples = TripleSet.from_graph(table_graph(path, id_column or _TABLE_ID_COLUMN.get(), data=data))
        log.info("loaded %s: %d triples", path, len(triples))
        return triples
    fmt = FORMAT_ALIASES.get(fmt, fmt) if fmt else guess_format(path)
    scan = _scan(path, fmt)
    if scan.blank:
        raise InputError(f"{path}: the file is empty")
    triples = None
    if fmt in OXIGRAPH_FORMATS:
        with _quiet_term_warnings() as counter:
            triples = _parse_oxigraph(path, fmt)
    if triples is None:
        with _quiet_term_warnings() as counter:
            triples = TripleSet.from_graph(_parse_rdflib(path, fmt))
    _report_term_warnings(path, counter)
    if len(triples) == 0:
        raise InputError(f"{path}: the graph has no triples")
    _check_terms(path, triples, scan.surrogate_line)
    log.info("loaded %s: %d triples", path, len(triples))
    return triples


def _parse_rdflib(path: Path, fmt: str) -> Graph:
    """rdflib's parse of ``path``; any parser error becomes one :class:`InputError` line."""
    graph = Graph(store="SimpleMemory") if fmt in SIMPLE_STORE_FORMATS else Graph()
    try:
        with _open_input(path) as handle:
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
        raise InputError(_parse_error_message(path, exc, fmt)) from None
    return graph


OXIGRAPH_FORMATS = frozenset({"nt", "turtle", "nquads", "trig"})
_XSD_STRING = "http://www.w3.org/2001/XMLSchema#string"


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
    formats = {"nt": ox.RdfFormat.N_TRIPLES, "turtle": ox.RdfFormat.TURTLE, "nquads": ox.RdfFormat.N_QUADS, "trig": ox.RdfFormat.TRIG}
    named_node, blank_node, literal_type = ox.NamedNode, ox.BlankNode, ox.Literal
    iris: dict[str, URIRef] = {}
    blanks: dict[str, BNode] = {}
    datatypes: dict[str, URIRef | None] = {_XSD_STRING: None}

    def term(node: object) -> Node:
        kind = type(node)
        if kind is named_node:
            value = node.value  # type: ignore[attr-defined]
            iri = iris.get(value)
            if iri is None:
                iri = iris[value] = known_iri(value)  # pyoxigraph checked it
            return iri
        if kind is literal_type:
            language = node.language  # type: ignore[attr-defined]
            if language:
                return Literal(node.value, lang=language)  # type: ignore[attr-defined]
            datatype = node.datatype.value  # type: ignore[attr-defined]
            if datatype not in datatypes:
                datatypes[datatype] = URIRef(datatype)
            return Literal(node.value, datatype=datatypes[datatype])  # type: ignore[attr-defined]
        if kind is blank_node:
            label = node.value  # type: ignore[attr-defined]
            blank = blanks.get(label)
            if blank is None:
                blank = blanks[label] = BNode()
            return blank
        raise ValueError(f"unsupported term {node!r}")  # an RDF 1.2 triple term: rdflib decides

    triples: dict[Triple, None] = {}
    try:
        with _open_input(path) as handle:
            parser = ox.parse(handle, format=formats[fmt], base_iri=path.resolve().as_uri())
            for quad in parser:
                triples[(term(quad.subject), term(quad.predicate), term(quad.object))] = None
            prefixes = dict(parser.prefixes)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure: rdflib parses and names the error
        log.debug("%s: pyoxigraph could not parse it (%s); parsing with rdflib", path, one_line(str(exc)))
        return None
    return TripleSet(triples, prefixes.items())


class _Index:
    """One pass over a graph: literals, links, types and in-degree per node.

    Predicate, class and datatype IRIs repeat on every triple; each is turned into a
    ``str`` once and shared, instead of once per triple.
    """

    def __init__(self, graph: TripleSource) -> None:
        self.literals: dict[object, dict[str, list[Value]]] = defaultdict(lambda: defaultdict(list))
        self.labels: dict[object, list[Value]] = defaultdict(list)
        self.links: dict[object, dict[str, list[object]]] = defaultdict(lambda: defaultdict(list))
        self.types: dict[object, list[str]] = defaultdict(list)
        self.referenced: set[object] = set()
        self.subjects: set[object] = set()
        label_set = set(LABEL_PREDICATES)
        rdf_type = RDF.type  # a namespace attribute is a slow lookup: once, not per triple
        names: dict[object, str] = {}
        name = names.get
        for s, p, o in graph:
            self.subjects.add(s)
            if isinstance(o, Literal):
                datatype = o.datatype
                value = Value(
                    text=str(o),
                    lang=o.language,
                    datatype=(name(datatype) or names.setdefault(datatype, str(datatype))) if datatype else None,
                )
                if p in label_set:
                    self.labels[s].append(value)
                else:
                    self.literals[s][name(p) or names.setdefault(p, str(p))].append(value)
            elif p == rdf_type:
                self.types[s].append(name(o) or names.setdefault(o, str(o)))
            else:
                self.links[s][name(p) or names.setdefault(p, str(p))].append(o)
                if o != s:
                    self.referenced.add(o)


def _is_schema_node(types: Iterable[str]) -> bool:
    return any(t in _SCHEMA_TYPE_NAMES for t in types)


def build_entity_table(
    graph: TripleSource,
    name: str,
    classes: Iterable[str] | None = None,
    fold_depth: int = 3,
    origin: str | None = None,
) -> EntityTable:
    """Turn a graph into the table of entities to align, descriptions folded in.

    ``origin`` (the file, by default ``name``) is what error messages name.
    """
    index = _Index(graph)
    wanted = {str(c) for c in classes} if classes else None
    # Without any literal there is nothing to fold: every IRI subject is an entity.
    literal_free = not index.literals and not index.labels
    entity_nodes: list[URIRef] = []
    for node in index.subjects:
        if not isinstance(node, URIRef):
            continue
        types = index.types.get(node, ())
        if wanted is not None:
            if wanted.intersection(types):
                entity_nodes.append(node)
        elif not _is_schema_node(types) and (literal_free or node in index.labels or node not in index.referenced):
            entity_nodes.append(node)
    entity_set = set(entity_nodes)
    if wanted is not None and not entity_nodes:
        raise InputError(f"{origin or name}: no subject has rdf:type {', '.join(sorted(wanted))}")

    entities: dict[str, Entity] = {}
    for node in sorted(entity_nodes):
        entity = Entity(iri=str(node), labels=list(index.labels.get(node, ())), types=list(index.types.get(node, ())))
        _fold(index, node, entity, prefix="", depth=fold_depth, entity_set=entity_set, seen={node})
        entities[entity.iri] = entity
    log.info("%s: %d entities", name, len(entities))
    return EntityTable(name=name, entities=entities, triple_count=len(graph))


_RDFS_LABEL = str(RDFS.label)


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
            entity.attributes.setdefault(prefix + _RDFS_LABEL, []).extend(labels)
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
) -> tuple[TripleSet, EntityTable]:
    """Parse a file and build its entity table; fail clearly if there is nothing to align.

    ``id_column`` applies to CSV/TSV inputs only (see :func:`load_graph`).
    """
    path = Path(path)
    graph = read_triples(path, fmt, id_column)
    table = build_entity_table(graph, name=name or str(path), classes=classes, origin=str(path))
    if not table.entities:
        raise InputError(
            f"{path}: no entities found (every IRI subject is referenced by another and has no label); "
            "choose the entities' type with --class"
        )
    if not any(entity.attributes or entity.labels for entity in table.entities.values()):
        log.warning("%s: no entity has a literal; only IRIs and relations can be compared", path)
    return graph, table
