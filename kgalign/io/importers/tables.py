"""Read CSV/TSV tables as graphs: one entity per row, one attribute per column.

Used both by ``kgalign convert tables`` (writes Turtle) and by ``kgalign run`` when an
input ends in ``.csv`` or ``.tsv`` (optionally ``.gz``), so that both produce the same
triples. For a table ``Abt.csv`` with id column ``id``:

- each row is the entity ``urn:kgalign:table:Abt:<id>``, typed ``urn:kgalign:table:Abt``;
- each other column ``name`` is the predicate ``urn:kgalign:table:Abt#name``, and each
  non-empty cell (surrounding spaces stripped) one plain literal.

The table name is the file name without ``.csv``/``.tsv``/``.gz``; ids, table and column
names are percent-encoded where they hold characters that cannot stand in an IRI (or
``:``, ``/``, ``#``, ``%``), so every IRI is valid and the local names read as the original.

Reading rules: the first non-blank line is the header. The encoding is UTF-8 (a BOM is
allowed), else cp1252, else latin-1, so no byte sequence makes reading fail. ``.tsv``
is tab-separated; for ``.csv`` the delimiter is whichever of ``,`` ``;`` tab ``|`` the
header holds most (comma on a tie). Quoted cells may span lines. Every row must have as
many cells as the header. An empty or *duplicate id is an error* (a row would silently
merge into another entity otherwise): choose a unique column with ``--id-column``.
Errors are one line naming the file and line.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rdflib import Graph, Literal, URIRef
from rdflib.namespace import RDF

from kgalign.errors import InputError
from kgalign.io.atomic import atomic_open
from kgalign.io.formats import TABLE_SUFFIXES, is_table_path, plain_name
from kgalign.io.importers.common import ConversionReport, check_outdir, write_pairs, writing
from kgalign.io.importers.terms import RDF_TYPE, iri_term, literal_term, mint_iri, mint_segment, write_prefixes, write_subject
from kgalign.io.reading import read_bytes
from kgalign.runtime.progress import progress_bar

log = logging.getLogger(__name__)

DELIMITERS = (",", ";", "\t", "|")
ENCODINGS = ("utf-8", "cp1252", "latin-1")
#: The files :func:`convert_tables` writes into its output folder (gold.tsv with a mapping).
OUTPUTS = ("left.ttl", "right.ttl", "gold.tsv")


def table_name(path: str | Path) -> str:
    """The name a table's IRIs use: the file name without ``.csv``/``.tsv``/``.gz``."""
    name = plain_name(Path(path))
    for suffix in TABLE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)] or name
    return name


def decode(path: Path, data: bytes) -> tuple[str, str]:
    """The text of ``data`` and the encoding used: UTF-8 (BOM stripped), else cp1252, else latin-1."""
    for encoding in ENCODINGS:
        try:
            text = data.decode("utf-8-sig" if encoding == "utf-8" else encoding)
        except UnicodeDecodeError:
            continue
        if encoding != "utf-8":
            log.info("%s: not UTF-8, read as %s", path, encoding)
        return text, encoding
    raise AssertionError("latin-1 decodes every byte sequence")  # pragma: no cover


def _delimiter(path: Path, text: str) -> str:
    if plain_name(path).lower().endswith(".tsv"):
        return "\t"
    header = next((line for line in text.splitlines() if line.strip()), "")
    counts = {d: header.count(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: (counts[d], d == ","))
    return best if counts[best] else ","


def read_records(path: Path, data: bytes) -> tuple[list[tuple[int, list[str]]], str, str]:
    """Every non-blank CSV record as (first line number, cells), with the encoding and delimiter."""
    text, encoding = decode(path, data)
    delimiter = _delimiter(path, text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    records: list[tuple[int, list[str]]] = []
    last = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise InputError(f"{path}:{reader.line_num}: not valid CSV ({exc})") from None
        start, last = last + 1, reader.line_num
        if any(cell.strip() for cell in row):
            records.append((start, row))
    return records, encoding, delimiter


@dataclass
class TableRow:
    """One row: its line in the file, its id and its non-empty cells by column."""

    line: int
    id: str
    cells: dict[str, str]


@dataclass
class Table:
    """One CSV/TSV table, read and checked."""

    path: Path
    name: str
    columns: list[str]
    id_column: str
    encoding: str
    delimiter: str
    rows: list[TableRow] = field(default_factory=list)

    @property
    def class_iri(self) -> str:
        """The rdf:type of every row: ``urn:kgalign:table:<name>``."""
        return mint_iri("table", self.name)

    def entity_iri(self, row_id: str) -> str:
        """``urn:kgalign:table:<name>:<id>``."""
        return mint_iri("table", self.name, row_id)

    def predicate_iri(self, column: str) -> str:
        """``urn:kgalign:table:<name>#<column>``."""
        return f"{self.class_iri}#{mint_segment(column)}"

    def ids(self) -> set[str]:
        return {row.id for row in self.rows}

    def statements(self) -> Iterator[tuple[str, list[tuple[str, str]]]]:
        """Per row: the entity IRI and its (attribute predicate IRI, text) pairs, in column order."""
        predicates = {column: self.predicate_iri(column) for column in self.columns}
        for row in self.rows:
            yield self.entity_iri(row.id), [(predicates[c], v) for c, v in row.cells.items()]


def _columns(path: Path, line: int, header: list[str]) -> list[str]:
    columns: list[str] = []
    for index, raw in enumerate(header, start=1):
        name = raw.strip() or f"column{index}"
        base, n = name, 2
        while name in columns:
            name, n = f"{base}_{n}", n + 1
        if name != raw.strip():
            log.warning("%s:%d: header cell %d %r is named %r", path, line, index, raw, name)
        columns.append(name)
    return columns


def read_table(path: str | Path, id_column: str | None = None, name: str | None = None, data: bytes | None = None) -> Table:
    """Read one CSV/TSV table; ``id_column`` defaults to the first column."""
    path = Path(path)
    data = read_bytes(path) if data is None else data
    records, encoding, delimiter = read_records(path, data)
    if not records:
        raise InputError(f"{path}: the table is empty (no header line)")
    header_line, header = records[0]
    columns = _columns(path, header_line, header)
    if id_column is None:
        id_column = columns[0]
    elif id_column not in columns:
        stripped = [c.strip().lower() for c in columns]
        if id_column.strip().lower() in stripped:
            id_column = columns[stripped.index(id_column.strip().lower())]
        else:
            raise InputError(f"{path}:{header_line}: no id column {id_column!r} in the header (columns: {', '.join(columns)})")
    id_index = columns.index(id_column)
    table = Table(path, name or table_name(path), columns, id_column, encoding, delimiter)
    first_seen: dict[str, int] = {}
    for line, cells in records[1:]:
        if len(cells) != len(columns):
            raise InputError(
                f"{path}:{line}: expected {len(columns)} cells as in the header (line {header_line}), found {len(cells)}"
            )
        row_id = cells[id_index].strip()
        if not row_id:
            raise InputError(f"{path}:{line}: empty id in column {id_column!r}")
        if row_id in first_seen:
            raise InputError(
                f"{path}:{line}: duplicate id {row_id!r} in column {id_column!r} (first on line {first_seen[row_id]}); "
                "ids must be unique, choose another column with --id-column"
            )
        first_seen[row_id] = line
        values = {c: v.strip() for c, v in zip(columns, cells) if c != id_column and v.strip()}
        table.rows.append(TableRow(line, row_id, values))
    if not table.rows:
        raise InputError(f"{path}: the table has a header but no rows")
    log.info(
        "read %s: %d rows, %d columns, id column %r, %s, delimiter %r",
        path, len(table.rows), len(columns), id_column, encoding, delimiter,
    )
    return table


def table_to_graph(table: Table) -> Graph:
    """The rdflib graph of a table (the same triples :func:`write_table_turtle` writes)."""
    graph = Graph()
    graph.bind("rdf", RDF)
    table_class = URIRef(table.class_iri)
    with progress_bar(f"read {table.path.name}", len(table.rows)) as advance:
        for subject, pairs in table.statements():
            node = URIRef(subject)
            graph.add((node, RDF.type, table_class))
            for predicate, text in pairs:
                graph.add((node, URIRef(predicate), Literal(text)))
            advance(1)
    return graph


def table_graph(path: str | Path, id_column: str | None = None, data: bytes | None = None) -> Graph:
    """Read a CSV/TSV file straight into an rdflib graph (how ``kgalign run`` reads tables)."""
    return table_to_graph(read_table(path, id_column, data=data))


def write_table_turtle(table: Table, out: Path) -> int:
    """Write a table as Turtle, one block per row; returns the triples written."""
    type_pair = (iri_term(RDF_TYPE), iri_term(table.class_iri))
    written = 0
    with atomic_open(out) as handle, progress_bar(f"write {out.name}", len(table.rows)) as advance:
        write_prefixes(
            handle,
            [],
            comment=f"Converted by kgalign from the table {table.path.name} (id column {table.id_column!r}, {table.encoding}).",
        )
        for subject, pairs in table.statements():
            terms = [type_pair] + [(iri_term(p), literal_term(v)) for p, v in pairs]
            written += write_subject(handle, iri_term(subject), terms)
            advance(1)
    log.info("wrote %s: %d entities, %d triples", out, len(table.rows), written)
    return written


def read_mapping(path: Path, left: Table, right: Table) -> list[tuple[str, str]]:
    """Gold pairs from a mapping table whose first two columns are ids of ``left`` and ``right``.

    A first row whose cells are not both known ids is a header. Pairs naming unknown ids
    are skipped with a warning; none known at all is an error.
    """
    records, _, _ = read_records(path, read_bytes(path))
    left_ids, right_ids = left.ids(), right.ids()
    pairs: list[tuple[str, str]] = []
    unknown: list[int] = []
    for index, (line, cells) in enumerate(records):
        if len(cells) < 2:
            raise InputError(f"{path}:{line}: expected two columns (id in {left.path.name}, id in {right.path.name}), found {len(cells)}")
        a, b = cells[0].strip(), cells[1].strip()
        if a in left_ids and b in right_ids:
            pairs.append((left.entity_iri(a), right.entity_iri(b)))
        elif index > 0:
            unknown.append(line)
    if unknown:
        log.warning(
            "%s: %d pairs name ids not in %s/%s (first on line %d); skipped",
            path, len(unknown), left.path.name, right.path.name, unknown[0],
        )
    if not pairs:
        raise InputError(
            f"{path}: no pair names an id of {left.path.name} (column {left.id_column!r}) and one of "
            f"{right.path.name} (column {right.id_column!r}); check the column order and --id-column"
        )
    return pairs


def convert_tables(
    left_path: str | Path,
    right_path: str | Path,
    outdir: str | Path,
    mapping: str | Path | None = None,
    id_column: str | None = None,
) -> ConversionReport:
    """Convert two tables (and their id mapping) into ``left.ttl``, ``right.ttl`` and ``gold.tsv``."""
    left_path, right_path = Path(left_path), Path(right_path)
    names = table_name(left_path), table_name(right_path)
    if names[0] == names[1]:
        log.warning("both tables are named %r; their IRIs use %r and %r", names[0], names[0] + "-left", names[1] + "-right")
        names = names[0] + "-left", names[1] + "-right"
    outdir = check_outdir(outdir)
    # Every input is read and checked before anything is written.
    left = read_table(left_path, id_column, names[0])
    right = read_table(right_path, id_column, names[1])
    pairs = read_mapping(Path(mapping), left, right) if mapping is not None else None
    report = ConversionReport(outdir=outdir)
    # Without a mapping no gold.tsv is written, and an earlier conversion's is removed.
    with writing(outdir, OUTPUTS, report):
        for side, table in (("left", left), ("right", right)):
            out = outdir / f"{side}.ttl"
            report.counts[f"{side}_entities"] = len(table.rows)
            report.counts[f"{side}_triples"] = write_table_turtle(table, out)
            report.files[out.name] = out
        if pairs is not None:
            report.counts["gold_pairs"] = write_pairs(outdir / "gold.tsv", pairs)
            report.files["gold.tsv"] = outdir / "gold.tsv"
    return report


def check_table_inputs(left: str | Path, right: str | Path) -> None:
    """Fail when two table inputs would mint the same IRIs (same file name in two folders)."""
    if is_table_path(left) and is_table_path(right) and table_name(left) == table_name(right):
        raise InputError(
            f"{right}: has the same table name {table_name(right)!r} as {left}, so their rows would get the same IRIs "
            "(urn:kgalign:table:<name>:<id>); rename one file"
        )
