"""Read labelled candidate-pair files: the entity-matching benchmarks' layout (Ditto, DeepMatcher).

Two layouts, told apart by the extension (``.gz`` looked through):

- **Ditto / DeepMatcher text** (any name but ``.csv``): one pair per line,
  ``LEFT<TAB>RIGHT<TAB>LABEL``, each record serialised as
  ``COL attr VAL value COL attr VAL value ...`` and the label 0 or 1 (WDC products have
  the one attribute ``title``). Blank lines are skipped.
- **DeepMatcher CSV** (``.csv``): a header with a ``label`` column and the records'
  attributes in prefixed columns, ``ltable_X`` for the left record and ``rtable_X`` for
  the right one (``left_X`` / ``right_X`` also accepted); other columns (``id``) and
  the prefixed id columns (``ltable_id``) are not attributes. The Magellan layout,
  whose pair file holds only ``ltable_id``, ``rtable_id`` and ``label``, is read with the
  records from ``tableA.csv`` (left) and ``tableB.csv`` (right) beside it (id column ``id``).

Each record becomes an :class:`~kgalign.model.EntityProfile`:

- IRI ``urn:kgalign:pairs:<side>:<sha1>`` (16 hex digits of the SHA-1 of the record's
  text ``COL a VAL v ...`` with runs of whitespace made one space), so the same record
  text on the same side is the same entity, in either layout;
- label: the value of the first ``title`` or ``name`` attribute (any case) that has one,
  else the first non-empty value; that attribute is not repeated in ``attributes``;
- attributes: the other (attribute, value) pairs in the record's order, empty values dropped.

Every failure is one :class:`~kgalign.errors.InputError` line naming the file (and line):
a line without three tab-separated fields, a label other than 0 or 1, a record not in
``COL attr VAL value`` form, a file without any pair.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from kgalign.errors import InputError
from kgalign.io.formats import plain_name
from kgalign.io.reading import read_bytes
from kgalign.model import EntityProfile

log = logging.getLogger(__name__)

IRI_PREFIX = "urn:kgalign:pairs"
#: Attributes whose value names a record (the first one with a value is its label).
LABEL_ATTRIBUTES = ("title", "name")
#: Column prefixes of DeepMatcher CSV files: (left, right).
CSV_PREFIXES = (("ltable_", "rtable_"), ("left_", "right_"))
#: The Magellan layout's tables of records, beside the pair file.
MAGELLAN_TABLES = ("tableA.csv", "tableB.csv")

# "COL <attribute> VAL": at the start of the record or after a space, the attribute
# (one or more words) up to the first " VAL" that ends a word.
_COL = re.compile(r"(?:^|(?<=\s))COL\s+(\S.*?)\s+VAL(?=\s|$)")

Attributes = list[tuple[str, str]]


@dataclass(frozen=True)
class LabelledPair:
    """One pair of the file: its 0-based ``index`` in input order, its ``line`` (1-based), the
    IRIs of its left and right records and its label (1: the records match)."""

    index: int
    line: int
    left: str
    right: str
    label: int


@dataclass
class PairFile:
    """A labelled pair file, read: the pairs in input order and the records by IRI (first seen first)."""

    path: Path
    layout: str
    pairs: list[LabelledPair]
    left: dict[str, EntityProfile] = field(default_factory=dict)
    right: dict[str, EntityProfile] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.pairs)

    @property
    def positives(self) -> int:
        return sum(p.label for p in self.pairs)


def read_pair_file(path: str | Path) -> PairFile:
    """Read a labelled pair file in either layout (see the module docstring)."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not a pair file")
    data = read_bytes(path)
    if plain_name(path).lower().endswith(".csv"):
        pairs = _read_csv(path, data)
    else:
        pairs = _read_text(path, data)
    if not pairs.pairs:
        raise InputError(f"{path}: no labelled pairs (the file is empty)")
    log.info(
        "read %s: %d pairs (%d labelled 1), %d left and %d right records",
        path, len(pairs.pairs), pairs.positives, len(pairs.left), len(pairs.right),
    )
    return pairs


def parse_record(text: str) -> Attributes | None:
    """The (attribute, value) pairs of a ``COL attr VAL value ...`` record, values with their
    whitespace collapsed (empty ones kept); None when ``text`` is not such a record."""
    text = text.strip()
    matches = list(_COL.finditer(text))
    if not matches or matches[0].start() != 0:
        return None
    attributes = []
    for match, following in zip(matches, matches[1:] + [None]):
        end = following.start() if following is not None else len(text)
        attributes.append((" ".join(match.group(1).split()), " ".join(text[match.end() : end].split())))
    return attributes


def record_text(attributes: Attributes) -> str:
    """The record serialised as Ditto does, ``COL a VAL v ...``, whitespace collapsed: what its IRI hashes."""
    return " ".join(" ".join(f"COL {name} VAL {value}".split()) for name, value in attributes)


def record_iri(side: str, attributes: Attributes) -> str:
    digest = hashlib.sha1(record_text(attributes).encode("utf-8")).hexdigest()[:16]
    return f"{IRI_PREFIX}:{side}:{digest}"


def record_profile(side: str, attributes: Attributes) -> EntityProfile:
    """The profile of one record: deterministic IRI, label, the other non-empty attributes."""
    label_at = None
    for wanted in LABEL_ATTRIBUTES:
        label_at = next((i for i, (name, value) in enumerate(attributes) if name.lower() == wanted and value), None)
        if label_at is not None:
            break
    if label_at is None:
        label_at = next((i for i, (_, value) in enumerate(attributes) if value), None)
    label = attributes[label_at][1] if label_at is not None else ""
    kept = [(name, value) for i, (name, value) in enumerate(attributes) if value and i != label_at]
    return EntityProfile(iri=record_iri(side, attributes), label=label, attributes=kept)


class _Builder:
    def __init__(self, path: Path, layout: str) -> None:
        self.file = PairFile(path, layout, [])

    def add(self, line: int, left: Attributes, right: Attributes, label: int) -> None:
        iris = []
        for side, attributes, profiles in (("left", left, self.file.left), ("right", right, self.file.right)):
            iri = record_iri(side, attributes)
            if iri not in profiles:
                profiles[iri] = record_profile(side, attributes)
            iris.append(iri)
        self.file.pairs.append(LabelledPair(len(self.file.pairs), line, iris[0], iris[1], label))


def _label(path: Path, line: int, text: str) -> int:
    value = text.strip()
    if value not in ("0", "1"):
        raise InputError(f"{path}:{line}: the label must be 0 or 1, found {value!r}")
    return int(value)


def _decode(path: Path, data: bytes) -> str:
    from kgalign.io.importers.tables import decode

    return decode(path, data)[0]


def _read_text(path: Path, data: bytes) -> PairFile:
    builder = _Builder(path, "ditto")
    for number, raw in enumerate(_decode(path, data).split("\n"), start=1):
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 3:
            raise InputError(f"{path}:{number}: expected 3 tab-separated fields (left, right, label), found {len(fields)}")
        records = []
        for side, text in (("left", fields[0]), ("right", fields[1])):
            attributes = parse_record(text)
            if attributes is None:
                shown = " ".join(text.split())[:40]
                raise InputError(f"{path}:{number}: the {side} record is not 'COL attribute VAL value ...' (it starts {shown!r})")
            records.append(attributes)
        builder.add(number, records[0], records[1], _label(path, number, fields[2]))
    return builder.file


def _read_csv(path: Path, data: bytes) -> PairFile:
    from kgalign.io.importers.tables import _columns, read_records

    records, _, _ = read_records(path, data)
    if not records:
        raise InputError(f"{path}: no labelled pairs (the file is empty)")
    header_line, header = records[0]
    columns = _columns(path, header_line, header)
    lowered = [c.lower() for c in columns]
    if "label" not in lowered:
        raise InputError(f"{path}:{header_line}: no 'label' column in the header (columns: {', '.join(columns)})")
    label_at = lowered.index("label")
    for left_prefix, right_prefix in CSV_PREFIXES:
        left_cols = [i for i, c in enumerate(lowered) if c.startswith(left_prefix)]
        right_cols = [i for i, c in enumerate(lowered) if c.startswith(right_prefix)]
        if left_cols and right_cols:
            break
    else:
        raise InputError(
            f"{path}:{header_line}: no ltable_/rtable_ columns in the header (columns: {', '.join(columns)}); "
            "a DeepMatcher CSV holds the left record's attributes as ltable_X and the right one's as rtable_X"
        )
    ids = (f"{left_prefix}id", f"{right_prefix}id")
    left_attrs = [i for i in left_cols if lowered[i] != ids[0]]
    right_attrs = [i for i in right_cols if lowered[i] != ids[1]]
    tables = None
    if not left_attrs and not right_attrs:
        if ids[0] not in lowered or ids[1] not in lowered:
            raise InputError(f"{path}:{header_line}: the header has no attribute columns ({left_prefix}X, {right_prefix}X)")
        tables = _magellan_tables(path)
    elif not left_attrs or not right_attrs:
        side = left_prefix if not left_attrs else right_prefix
        raise InputError(f"{path}:{header_line}: no {side}X attribute columns in the header (columns: {', '.join(columns)})")

    builder = _Builder(path, "deepmatcher-csv" if tables is None else "magellan-csv")
    for line, cells in records[1:]:
        if len(cells) != len(columns):
            raise InputError(f"{path}:{line}: expected {len(columns)} cells as in the header (line {header_line}), found {len(cells)}")
        label = _label(path, line, cells[label_at])
        if tables is None:
            left = [(columns[i][len(left_prefix) :], cells[i]) for i in left_attrs]
            right = [(columns[i][len(right_prefix) :], cells[i]) for i in right_attrs]
        else:
            sides = []
            for column, table in ((ids[0], tables[0]), (ids[1], tables[1])):
                key = cells[lowered.index(column)].strip()
                if key not in table[1]:
                    raise InputError(f"{path}:{line}: {column} {key!r} is not an id of {table[0]}")
                sides.append(table[1][key])
            left, right = sides
        builder.add(line, [(n, " ".join(v.split())) for n, v in left], [(n, " ".join(v.split())) for n, v in right], label)
    return builder.file


def _magellan_tables(path: Path) -> tuple[tuple[Path, dict[str, Attributes]], ...]:
    """The records of tableA.csv and tableB.csv beside ``path``, by id (column ``id``)."""
    from kgalign.io.importers.tables import read_table

    tables = []
    for name in MAGELLAN_TABLES:
        table_path = path.parent / name
        if not table_path.is_file():
            raise InputError(
                f"{path}: holds only ltable_id and rtable_id, and {table_path} is missing "
                "(the Magellan layout reads the records from tableA.csv and tableB.csv beside the pair file)"
            )
        table = read_table(table_path, id_column="id")
        attributes = [c for c in table.columns if c != table.id_column]
        tables.append((table_path, {row.id: [(c, row.cells.get(c, "")) for c in attributes] for row in table.rows}))
    return tuple(tables)
