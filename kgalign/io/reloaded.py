"""An input graph read again from its file when iterated, instead of kept in memory.

``--engine ray`` keeps no triples in its driver between loading and fusion: the entity
table is built from the parse, the parse is dropped, and fusion reads the file again
(:class:`ReloadedTriples`), one side at a time. On the 1M synthetic pair the two parses
held about 360 MB through every stage in between (docs/scale.md).

The file must not change meanwhile: its size and modification time are taken before
it is first parsed (:func:`fingerprint`) and checked at each later read, and a changed
file stops the run in one line (the outputs would otherwise mix two versions of the
graph). Blank nodes get new labels at each read, as they do in each run.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

from rdflib import URIRef

from kgalign.errors import InputError
from kgalign.io.triples import Triple, TripleSource

log = logging.getLogger(__name__)


def fingerprint(path: Path) -> tuple[int, int]:
    """The sizes and modification times of ``path`` (a folder: of every file in it)."""
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    size = mtime = 0
    for file in files:
        stat = file.stat()
        size += stat.st_size
        mtime = max(mtime, stat.st_mtime_ns)
    return size, mtime


class ReloadedTriples:
    """The triples of ``path`` (as :func:`kgalign.io.parsers.read_triples` reads them),
    parsed again on each iteration; a :class:`kgalign.io.triples.TripleSource`."""

    def __init__(self, path: Path, fmt: str | None, id_column: str | None, first: TripleSource, taken: tuple[int, int] | None = None) -> None:
        """``first``: the triples of the first read (or what partitions kept of them:
        :class:`kgalign.io.partitioned.Counted`), whose size and prefixes are kept;
        ``taken``: :func:`fingerprint` of ``path`` before that read (None: now), so that a
        change during the first parse is caught too."""
        self.path = Path(path)
        self.fmt = fmt
        self.id_column = id_column
        self._count = len(first)
        self._namespaces = list(first.namespaces())
        #: The file's :func:`fingerprint` when first read.
        self.taken = taken if taken is not None else fingerprint(self.path)

    def __len__(self) -> int:
        return self._count

    def namespaces(self) -> list[tuple[str, URIRef]]:
        return list(self._namespaces)

    def __iter__(self) -> Iterator[Triple]:
        from kgalign.io.parsers import read_triples

        if fingerprint(self.path) != self.taken:
            raise InputError(f"{self.path}: the file changed while kgalign was running; run again")
        log.info("reading %s again", self.path)
        triples = read_triples(self.path, self.fmt, id_column=self.id_column)
        if len(triples) != self._count:
            raise InputError(f"{self.path}: read again, it holds {len(triples)} triples instead of {self._count}; run again")
        yield from triples
