"""Entity profiles kept in a file instead of memory (``--engine ray``'s driver).

Once the select stage has made the texts to embed, a run needs an entity's profile
only when it asks the judge about it, writes its decision (votes.jsonl) or looks for
duplicates: a few at a time. :class:`ProfileFile` writes each profile to a nameless
temporary file (``tempfile.TemporaryFile`` in ``TMPDIR``, gone with the last reference
to it, or when the process ends) and reads it back by IRI: the process keeps only a
row number per IRI and an offset per row. On a 4M-triple pair the profiles were about
a gigabyte of the driver's memory from the select stage to the end of the run.

The file is a :class:`kgalign.io.record_file.RecordFile` (marshal, ``os.pread``).
:func:`profile_map` takes the profiles as they are made, a batch at a time, so the
select stage never holds a side's profiles at once. Where the file cannot be written
(a folder that is missing or full) the profiles stay in memory, with a warning, those
written so far read back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from itertools import islice
from typing import Any

from kgalign.io.record_file import RecordFile, RecordSink
from kgalign.model import EntityProfile

#: The profiles :func:`profile_map` takes from its iterable before each write.
BATCH_PROFILES = 16_384


class ProfileFile(RecordFile[EntityProfile]):
    """The profiles given, by IRI, in a temporary file (see the module text)."""

    def __init__(self, profiles: Iterable[EntityProfile] = (), directory: str | None = None) -> None:
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


def profile_map(profiles: Iterable[EntityProfile], spill: bool) -> Mapping[str, EntityProfile]:
    """``profiles`` by IRI, in the order given: in a :class:`ProfileFile` with ``spill``,
    else a dict. They are taken from ``profiles`` :data:`BATCH_PROFILES` at a time (a
    generator's profiles are made as the file takes them); where the file cannot be made
    or cannot take a batch (a full disk), that batch and the rest stay in a dict, with a
    warning, the profiles written before it read back (:class:`RecordSink`)."""
    sink: RecordSink[EntityProfile] = RecordSink(ProfileFile if spill else None, "entity profiles")
    profiles = iter(profiles)
    while batch := [(profile.iri, profile) for profile in islice(profiles, BATCH_PROFILES)]:
        sink.extend(batch)
    return sink.finish()
