"""Entity profiles kept in a file instead of memory (``--engine ray``'s driver).

Once the select stage has made the texts to embed, a run needs an entity's profile
only when it asks the judge about it, writes its decision (votes.jsonl) or looks for
duplicates: a few at a time. :class:`ProfileFile` writes each profile to a nameless
temporary file (``tempfile.TemporaryFile`` in ``TMPDIR``, gone with the last reference
to it, or when the process ends) and reads it back by IRI: the process keeps only a
row number per IRI and an offset per row. On a 4M-triple pair the profiles were about
a gigabyte of the driver's memory from the select stage to the end of the run.

The file is a :class:`kgalign.io.record_file.RecordFile` (marshal, ``os.pread``).
Where it cannot be written (a full disk), :func:`profile_map` keeps the profiles in
memory, with a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from kgalign.io.record_file import RecordFile
from kgalign.model import EntityProfile

log = logging.getLogger(__name__)


class ProfileFile(RecordFile[EntityProfile]):
    """The profiles given, by IRI, in a temporary file (see the module text)."""

    def __init__(self, profiles: Sequence[EntityProfile], directory: str | None = None) -> None:
        super().__init__(directory)
        try:
            self.extend((profile.iri, profile) for profile in profiles)
        except BaseException:
            self.close()
            raise

    def encode(self, value: EntityProfile) -> Any:
        return (value.label, value.attributes, value.neighbours)

    def decode(self, key: str, data: Any) -> EntityProfile:
        label, attributes, neighbours = data
        return EntityProfile(iri=key, label=label, attributes=attributes, neighbours=neighbours)


def profile_map(profiles: Sequence[EntityProfile], spill: bool) -> Mapping[str, EntityProfile]:
    """``profiles`` by IRI: in a :class:`ProfileFile` with ``spill``, else (or where the
    file cannot be written, with a warning) a dict."""
    if spill:
        try:
            return ProfileFile(profiles)
        except (OSError, ValueError) as exc:  # ValueError: a value marshal cannot write
            log.warning("cannot keep the entity profiles in a temporary file (%s); they stay in memory", exc)
    return {profile.iri: profile for profile in profiles}
