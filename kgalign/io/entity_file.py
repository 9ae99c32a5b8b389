"""An entity table's entities kept in a file instead of memory (``--engine ray``'s driver).

The driver of a lean run reads each entity a few times, one at a time: to rank the
predicates, to build the profiles (and the labels of their neighbours), the relations
of the structure channel (the content hashes are made as the entities are written, by
the load partitions or :func:`spill_table`). None of these needs every entity in
memory at once, and on large inputs the tables were the largest thing the driver held
from the load to the retrieval. :class:`EntityFile` keeps them in a nameless temporary
file (a :class:`kgalign.io.record_file.RecordFile`): the process keeps only a row
number per IRI and an offset per row, and an entity is made again when it is read.

Keys iterate in the table's order (IRI order, as :func:`kgalign.io.entities.build_entity_table`
and the partitioned load give it). Entities come in batches (:class:`EntitySink`): a
folder that cannot hold them (missing, full) leaves them in memory, with a warning, the
entities written so far read back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from kgalign.io.record_file import RecordFile, RecordSink
from kgalign.model import Entity, EntityTable, Value, best_label


def _values(values: list[Value]) -> list[tuple[str, str | None, str | None]]:
    return [(v.text, v.lang, v.datatype) for v in values]


class EntityFile(RecordFile[Entity]):
    """Entities by IRI in a temporary file (see the module text)."""

    def encode(self, value: Entity) -> Any:
        return (
            _values(value.labels),
            {path: _values(found) for path, found in value.attributes.items()},
            value.relations,
            value.types,
            value.outside,
        )

    def decode(self, key: str, data: Any) -> Entity:
        labels, attributes, relations, types, outside = data
        return Entity(
            iri=key,
            labels=[Value(*v) for v in labels],
            attributes={path: [Value(*v) for v in found] for path, found in attributes.items()},
            relations=relations,
            types=types,
            outside=outside,
        )

    def label(self, iri: str) -> str | None:
        """:attr:`kgalign.model.Entity.label` of ``iri`` (None where it is not here),
        read without making the entity: a profile's neighbours need only that."""
        row = self._rows.get(iri)
        if row is None:
            return None
        labels = self._record(row)[0]
        return best_label(iri, [(text, lang) for text, lang, _ in labels])


class EntitySink:
    """Where a table's entities go as they come: an :class:`EntityFile` with ``spill``,
    else a dict (:class:`kgalign.io.record_file.RecordSink`: a batch the file cannot take
    turns it to memory); with their content hashes where given (:attr:`hashes`)."""

    def __init__(self, spill: bool, name: str = "") -> None:
        self.name = name
        self.sink: RecordSink[Entity] = RecordSink(EntityFile if spill else None, "entities", name)
        self.hashes: dict[str, str] = {}

    def extend(self, entities: Iterable[Entity], hashes: Sequence[str] | None = None) -> None:
        """Take ``entities`` (and their ``hashes``, :func:`kgalign.incremental.state.entity_hash`, in the same order)."""
        entities = list(entities)
        if hashes is not None:
            self.hashes.update(zip((entity.iri for entity in entities), hashes, strict=True))
        self.sink.extend([(entity.iri, entity) for entity in entities])

    def finish(self, order: Iterable[str] | None = None) -> Mapping[str, Entity]:
        """The entities by IRI, iterating in ``order`` (every IRI once) when given, else
        as they came; :attr:`hashes` in the same order."""
        found = self.sink.finish()
        if order is None:
            return found
        order = list(order)
        if self.hashes:
            hashes = self.hashes
            self.hashes = {iri: hashes[iri] for iri in order}
        if isinstance(found, EntityFile):
            found.reorder(order)
            return found
        return {iri: found[iri] for iri in order}


def entity_map(entities: Mapping[str, Entity], spill: bool, name: str = "") -> Mapping[str, Entity]:
    """``entities`` in an :class:`EntityFile` with ``spill`` (their order kept), else as they are."""
    if not spill or isinstance(entities, EntityFile):
        return entities
    sink = EntitySink(True, name)
    sink.extend(entities.values())
    return sink.finish()


def spill_table(table: EntityTable) -> None:
    """``table``'s entities into an :class:`EntityFile`, their content hashes into
    ``table.hashes`` (what a lean run keeps of them once retrieval has read them), made
    while the entities are in memory rather than read back later."""
    from kgalign.incremental.state import entity_hash

    if isinstance(table.entities, EntityFile):
        return
    entities = list(table.entities.values())
    sink = EntitySink(True, table.name)
    sink.extend(entities, [entity_hash(entity) for entity in entities])
    del entities
    table.entities, table.hashes = sink.finish(), sink.hashes
