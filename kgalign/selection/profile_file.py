"""Entity profiles kept in a file instead of memory (``--engine ray``'s driver).

Once the select stage has made the texts to embed, a run needs an entity's profile
only when it asks the judge about it, writes its decision (votes.jsonl) or looks for
duplicates: a few at a time. :class:`ProfileFile` writes each profile to a nameless
temporary file (``tempfile.TemporaryFile`` in ``TMPDIR``, gone with the last reference
to it, or when the process ends) and reads it back by IRI: the process keeps only a
row number per IRI and an offset per row. On a 4M-triple pair the profiles were about
a gigabyte of the driver's memory from the select stage to the end of the run.

A profile is stored with :mod:`marshal` (the file is this process's own, never read
from elsewhere), read with ``os.pread`` (no shared file position: threads may read at
once). Where the file cannot be written (a full disk), :func:`profile_map` keeps the
profiles in memory, with a warning.
"""

from __future__ import annotations

import logging
import marshal
import os
import tempfile
from array import array
from collections.abc import Iterator, Mapping, Sequence

from kgalign.model import EntityProfile

log = logging.getLogger(__name__)


class ProfileFile(Mapping[str, EntityProfile]):
    """The profiles given, by IRI, in a temporary file (see the module text)."""

    def __init__(self, profiles: Sequence[EntityProfile], directory: str | None = None) -> None:
        self._file = tempfile.TemporaryFile(dir=directory)
        try:
            self._rows: dict[str, int] = {}
            self._ends = array("q", [0])
            write, end = self._file.write, 0
            for profile in profiles:
                record = marshal.dumps((profile.label, profile.attributes, profile.neighbours))
                write(record)
                end += len(record)
                self._rows[profile.iri] = len(self._ends) - 1
                self._ends.append(end)
            self._file.flush()
        except BaseException:
            self._file.close()
            raise

    def __getitem__(self, iri: str) -> EntityProfile:
        row = self._rows[iri]
        start = self._ends[row]
        label, attributes, neighbours = marshal.loads(os.pread(self._file.fileno(), self._ends[row + 1] - start, start))
        return EntityProfile(iri=iri, label=label, attributes=attributes, neighbours=neighbours)

    def __contains__(self, iri: object) -> bool:
        return iri in self._rows

    def __iter__(self) -> Iterator[str]:
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)


def profile_map(profiles: Sequence[EntityProfile], spill: bool) -> Mapping[str, EntityProfile]:
    """``profiles`` by IRI: in a :class:`ProfileFile` with ``spill``, else (or where the
    file cannot be written, with a warning) a dict."""
    if spill:
        try:
            return ProfileFile(profiles)
        except (OSError, ValueError) as exc:  # ValueError: a value marshal cannot write
            log.warning("cannot keep the entity profiles in a temporary file (%s); they stay in memory", exc)
    return {profile.iri: profile for profile in profiles}
