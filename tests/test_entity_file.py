"""Entity tables kept in a temporary file (``--engine ray``'s driver): the same entities
by IRI, in the same order, as the dict of a one-process load; a dict again where no
file can be written, or where the disk fills midway."""

from __future__ import annotations

import logging
import os
import tempfile

import pytest

from kgalign.incremental.state import table_hashes
from kgalign.io import record_file
from kgalign.io.entities import load_entities
from kgalign.io.entity_file import EntityFile, EntitySink, entity_map, spill_table
from kgalign.model import Entity, EntityTable, Value
from tests.helpers import python_script

ODD = Entity(
    iri="http://ex/odd\udc80é",
    labels=[Value("Ève \"quoted\"\n| pipe", "fr"), Value("", None, None)],
    attributes={"http://ex/born / http://ex/year": [Value("1901", None, "http://www.w3.org/2001/XMLSchema#gYear")], "http://ex/empty": []},
    relations={"http://ex/knows": ["http://ex/a", "http://ex/b"]},
    types=["http://ex/Person"],
)


TYPED = """\
<http://ex/r1> <http://www.w3.org/2000/01/rdf-schema#label> "Chez Ève"@fr .
<http://ex/r1> <http://www.w3.org/2000/01/rdf-schema#label> "At Eve's"@en .
<http://ex/r1> <http://ex/stars> "4"^^<http://www.w3.org/2001/XMLSchema#integer> .
<http://ex/r1> <http://ex/near> <http://ex/r2> .
<http://ex/r2> <http://www.w3.org/2000/01/rdf-schema#label> "Le Coin" .
<http://ex/r2> <http://ex/opened> "1999-05-01"^^<http://www.w3.org/2001/XMLSchema#date> .
<http://ex/r2> <http://www.w3.org/1999/02/22-rdf-syntax-ns#type> <http://ex/Restaurant> .
"""


@pytest.fixture(scope="module")
def entities(persons, tmp_path_factory) -> dict[str, Entity]:
    """Real tables (the persons' folded addresses), typed and tagged values, and an odd entity."""
    typed = tmp_path_factory.mktemp("typed") / "typed.nt"
    typed.write_text(TYPED, encoding="utf-8")
    found: dict[str, Entity] = {}
    for path in (persons["left"], persons["right"], typed):
        found.update(load_entities(path, "x", None, None)[1].entities)
    found[ODD.iri] = ODD
    return found


def test_the_file_gives_the_entities_a_dict_gives(entities, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(record_file, "BATCH_BYTES", 500)  # many writes
    stored = entity_map(entities, spill=True)
    assert isinstance(stored, EntityFile) and list(tmp_path.iterdir()) == []  # no name in the folder
    assert list(stored) == list(entities) and len(stored) == len(entities) > 100
    assert all(stored[iri] == entity for iri, entity in entities.items())
    # Attribute paths keep their order (a profile lists them in this order).
    assert all(list(stored[iri].attributes) == list(entity.attributes) for iri, entity in entities.items())
    assert stored.get("http://ex/absent") is None and "http://ex/absent" not in stored and ODD.iri in stored
    with pytest.raises(KeyError):
        stored["http://ex/absent"]
    assert any(v.lang for e in stored.values() for v in e.labels) and stored[ODD.iri].attributes["http://ex/born / http://ex/year"][0].datatype
    assert stored["http://ex/r1"].relations == {"http://ex/near": ["http://ex/r2"]} and stored["http://ex/r1"].label == "At Eve's"
    assert stored["http://ex/r2"].types == ["http://ex/Restaurant"] and any(v.datatype for vs in stored["http://ex/r2"].attributes.values() for v in vs)
    assert entity_map(entities, spill=False) is entities and entity_map(stored, spill=True) is stored
    # A label read alone (a profile's neighbours) is the entity's.
    assert all(stored.label(iri) == entity.label for iri, entity in entities.items()) and stored.label("http://ex/absent") is None
    assert stored.label(ODD.iri) == "Ève \"quoted\"\n| pipe"


def test_a_table_spilled_keeps_its_content_hashes(entities) -> None:
    table = EntityTable("left", dict(entities))
    expected = table_hashes(table)
    spill_table(table)
    assert isinstance(table.entities, EntityFile) and list(table.entities) == list(entities)
    assert table.hashes == expected and list(table.hashes) == list(entities)
    assert table_hashes(table) is table.hashes  # not read back from the file


def test_a_sink_orders_its_entities_as_told(entities) -> None:
    sink = EntitySink(True)
    values = list(entities.values())
    sink.extend(values[1::2], [f"h{i}" for i in range(1, len(values), 2)])
    sink.extend(values[::2], [f"h{i}" for i in range(0, len(values), 2)])
    stored = sink.finish(sorted(entities))
    assert list(stored) == sorted(entities) and all(stored[iri] == entities[iri] for iri in stored)
    position = {iri: i for i, iri in enumerate(entities)}
    assert sink.hashes == {iri: f"h{position[iri]}" for iri in sorted(entities)} and list(sink.hashes) == sorted(entities)
    with pytest.raises(ValueError, match="keys given"):
        stored.reorder(sorted(entities)[1:])
    with pytest.raises(ValueError, match="is not a key of the file"):
        stored.reorder([*sorted(entities), "http://ex/absent"])
    assert list(stored) == sorted(entities)  # as it was


def test_without_a_usable_folder_the_entities_stay_in_memory(entities, tmp_path, monkeypatch, caplog) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "absent"))
    with caplog.at_level(logging.WARNING):
        stored = entity_map(entities, spill=True, name="left")
    assert type(stored) is dict and stored == entities and list(stored) == list(entities)
    assert "left: cannot keep the entities in a temporary file" in caplog.text


FILLED_DISK = """
import logging, resource, signal, sys
from kgalign.io import record_file
from kgalign.io.entities import load_entities
from kgalign.io.entity_file import EntityFile, EntitySink
record_file.BATCH_BYTES = 2_000
logging.basicConfig(level=logging.WARNING, format="%(message)s")
table = load_entities(sys.argv[1], "x", None, None)[1]
expected = list(table.entities.values())
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead of killing the process
resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, resource.RLIM_INFINITY))
sink = EntitySink(True, "left")
for start in range(0, len(expected), 10):
    sink.extend(expected[start:start + 10])
got = sink.finish([e.iri for e in expected])
assert not isinstance(got, EntityFile) and list(got.values()) == expected, "not the same entities"
print("same entities", len(expected))
"""


@pytest.mark.skipif(not hasattr(os, "pwrite"), reason="a file size limit of the process (POSIX)")
def test_writes_that_fail_midway_keep_every_entity(persons, tmp_path) -> None:
    """A file that may not grow past 20 kB: a batch fails at its write; the entities
    written before it are read back and the rest kept in memory, all of them the same."""
    done = python_script(FILLED_DISK, str(persons["left"]), tmpdir=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "same entities 60"
    assert "left: cannot keep more entities in" in done.stderr and "stay in memory" in done.stderr
