"""Which format an input file is in: an RDF syntax (by extension or name) or a CSV/TSV table."""

from __future__ import annotations

import logging
import os
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
#: The RDF syntaxes kgalign reads, by their rdflib names.
RDF_FORMATS = ("turtle", "nt", "nquads", "trig", "xml", "json-ld", "n3")
#: Every name ``--format`` (and a config's ``left_format``, ``right_format``) takes: the RDF
#: syntaxes, the tables, and the syntaxes' other names.
READ_FORMATS = (*RDF_FORMATS, "csv", "tsv", *FORMAT_ALIASES)
#: The formats, as help texts and errors list them.
FORMATS_TEXT = "turtle, nt, nquads, trig, xml (RDF/XML), json-ld, n3, csv or tsv (aliases: " + ", ".join(FORMAT_ALIASES) + ")"


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
    """The rdflib format name of an RDF file: ``fmt`` (an alias such as ``ttl`` resolved), else
    from the extension; a format kgalign does not read is a one-line error."""
    if not fmt:
        return guess_format(path)
    name = FORMAT_ALIASES.get(fmt, fmt)
    if name not in RDF_FORMATS:
        raise InputError(f"{path}: --format {fmt!r} is not a format kgalign reads (one of {FORMATS_TEXT})")
    return name


def is_table_path(path: str | Path) -> bool:
    """True for ``.csv``/``.tsv`` files, gzipped or not."""
    return plain_name(Path(path)).lower().endswith(TABLE_SUFFIXES)


def is_table_input(path: str | Path, fmt: str | None = None) -> bool:
    """True when ``path`` is read as a CSV/TSV table: by its extension, or ``fmt`` csv/tsv."""
    return is_table_path(path) or (fmt or "").lower() in TABLE_FORMATS


#: Extensions a folder's files are read by: the RDF ones, less ``.json`` (a folder's
#: metadata.json or an earlier run's run.json are not JSON-LD graphs).
FOLDER_SUFFIXES = frozenset(FORMAT_BY_SUFFIX) - {".json"}
#: Files that mark a folder as a kgalign output folder.
OUTPUT_MARKERS = ("run.json", "links.ttl")


def folder_files(folder: Path) -> list[Path]:
    """The RDF files of a folder input, in the order they are read: every file below it
    (subfolders, symlinked ones too, each folder once) whose extension names an RDF
    syntax (FOLDER_SUFFIXES, optionally .gz), by relative path; names starting with '.'
    skipped. A CSV/TSV table in it, a kgalign output folder in it, an unreadable
    subfolder, and a folder with no RDF file are errors."""
    found: list[tuple[str, Path]] = []
    skipped: list[Path] = []
    seen: set[tuple[int, int]] = set()

    def fail(exc: OSError) -> None:
        raise InputError(f"{exc.filename or folder}: cannot list the folder ({exc.strerror or exc})")

    for root, dirs, files in os.walk(folder, onerror=fail, followlinks=True):
        here = Path(root)
        stat = here.stat()
        if (stat.st_dev, stat.st_ino) in seen:  # a symlink loop, or a folder linked twice
            dirs[:] = []
            continue
        seen.add((stat.st_dev, stat.st_ino))
        if all(name in files for name in OUTPUT_MARKERS):
            if here == folder:
                raise InputError(f"{folder}: a kgalign output folder, not an input graph (give its fused.ttl to align the fused graph)")
            raise InputError(f"{here}: a kgalign output folder inside the input folder {folder}; move it out (its files would be read as input)")
        dirs[:] = sorted(name for name in dirs if not name.startswith("."))
        for name in files:
            path = here / name
            if name.startswith(".") or not path.is_file():
                continue
            if is_table_path(path):
                raise InputError(f"{path}: a CSV/TSV table cannot be read as part of the folder {folder}; give the table as LEFT or RIGHT itself")
            if Path(plain_name(path)).suffix.lower() in FOLDER_SUFFIXES:
                found.append((path.relative_to(folder).as_posix(), path))
            else:
                skipped.append(path)
    if not found:
        raise InputError(f"{folder}: the folder holds no RDF file (by extension: {', '.join(sorted(FOLDER_SUFFIXES))}, optionally .gz)")
    if skipped:
        log.info("%s: %d files without an RDF extension skipped (%s%s)", folder, len(skipped), skipped[0].name, ", ..." if len(skipped) > 1 else "")
    return [path for _, path in sorted(found)]
