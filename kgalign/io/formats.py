"""Which format an input file is in: an RDF syntax (by extension or name) or a CSV/TSV table."""

from __future__ import annotations

import logging
from pathlib import Path

from kgalign.errors import InputError

log = logging.getLogger(__name__)

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
QUAD_FORMATS = frozenset({"nquads", "trig"})
TABLE_SUFFIXES = (".csv", ".tsv")
TABLE_FORMATS = frozenset({"csv", "tsv"})


def plain_name(path: Path) -> str:
    """The file name without a final ``.gz``."""
    name = path.name
    if name.lower().endswith(".gz"):
        name = name[:-3]
    return name


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


def rdf_format(path: Path, fmt: str | None = None) -> str:
    """The rdflib format name of an RDF file: ``fmt`` (an alias such as ``ttl`` resolved), else from the extension."""
    return FORMAT_ALIASES.get(fmt, fmt) if fmt else guess_format(path)


def is_table_path(path: str | Path) -> bool:
    """True for ``.csv``/``.tsv`` files, gzipped or not."""
    return plain_name(Path(path)).lower().endswith(TABLE_SUFFIXES)


def is_table_input(path: str | Path, fmt: str | None = None) -> bool:
    """True when ``path`` is read as a CSV/TSV table: by its extension, or ``fmt`` csv/tsv."""
    return is_table_path(path) or (fmt or "").lower() in TABLE_FORMATS


def folder_files(folder: Path, fmt: str | None = None) -> list[Path]:
    """The RDF files of a folder input, in the order they are read: every file below it
    (subfolders too) whose extension names an RDF syntax, or every file with ``fmt``; by
    relative path, names starting with '.' skipped. A CSV/TSV table in it is an error (a
    table is its own input), as is a folder with no RDF file."""
    found: list[Path] = []
    skipped: list[Path] = []
    try:
        paths = sorted(folder.rglob("*"), key=lambda p: p.relative_to(folder).as_posix())
    except OSError as exc:
        raise InputError(f"{folder}: cannot list the folder ({exc.strerror or exc})") from None
    for path in paths:
        if any(part.startswith(".") for part in path.relative_to(folder).parts) or not path.is_file():
            continue
        if is_table_path(path):
            raise InputError(f"{path}: a CSV/TSV table cannot be read as part of the folder {folder}; give the table as LEFT or RIGHT itself")
        suffixes = [s.lower() for s in Path(plain_name(path)).suffixes]
        if fmt or (suffixes and suffixes[-1] in FORMAT_BY_SUFFIX):
            found.append(path)
        else:
            skipped.append(path)
    if not found:
        raise InputError(f"{folder}: the folder holds no RDF file (by extension: {', '.join(sorted(FORMAT_BY_SUFFIX))}, optionally .gz)")
    if skipped:
        log.info("%s: %d files without an RDF extension skipped (%s%s)", folder, len(skipped), skipped[0].name, ", ..." if len(skipped) > 1 else "")
    return found
