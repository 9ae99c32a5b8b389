"""An input read again by fusion instead of kept (--engine ray's driver: kgalign/io/reloaded.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kgalign.config import AlignConfig
from kgalign.errors import InputError
from kgalign.incremental.state import RELEASED, table_hashes
from kgalign.io.entity_file import EntityFile
from kgalign.io.parsers import read_triples
from kgalign.io.reloaded import ReloadedTriples, fingerprint
from kgalign.model import EntityTable
from kgalign.pipeline import _align


def test_a_reloaded_graph_gives_the_triples_and_prefixes_of_the_first_read(persons: dict[str, Path]) -> None:
    first = read_triples(persons["left"])
    again = ReloadedTriples(persons["left"], None, None, first)
    assert len(again) == len(first) and again.namespaces() == first.namespaces()
    assert list(again) == list(first)  # file order, each triple once
    assert list(again) == list(first)  # and on every read


def test_a_file_changed_after_loading_stops_the_read_in_one_line(persons: dict[str, Path], tmp_path: Path) -> None:
    path = tmp_path / "left.ttl"
    path.write_bytes(persons["left"].read_bytes())
    again = ReloadedTriples(path, None, None, read_triples(path))
    path.write_bytes(path.read_bytes() + b'\n<http://example.org/x> <http://example.org/p> "added" .\n')
    with pytest.raises(InputError) as error:
        list(again)
    assert str(error.value) == f"{path}: the file changed while kgalign was running; run again"
    # Put back as it was but with another time: still a change, as far as kgalign can tell.
    path.write_bytes(persons["left"].read_bytes())
    os.utime(path, ns=(1, 1))
    with pytest.raises(InputError):
        list(again)


def test_a_change_during_the_first_read_is_caught_too(persons: dict[str, Path], tmp_path: Path) -> None:
    path = tmp_path / "left.ttl"
    path.write_bytes(persons["left"].read_bytes())
    taken = fingerprint(path)  # as the pipeline takes it, before the first parse
    first = read_triples(path)
    path.write_bytes(path.read_bytes() + b'\n<http://example.org/x> <http://example.org/p> "added" .\n')  # meanwhile
    with pytest.raises(InputError, match="the file changed while kgalign was running"):
        list(ReloadedTriples(path, None, None, first, taken))


def test_a_run_that_reads_its_graphs_again_fuses_the_same_graph(persons: dict[str, Path], embedder, tmp_path: Path) -> None:
    config = AlignConfig(judge="none")
    kept = _align(persons["left"], persons["right"], config, embedder, None)
    reloaded = _align(persons["left"], persons["right"], config, embedder, None, lean=True)
    assert isinstance(reloaded.left_graph, ReloadedTriples) and isinstance(reloaded.right_graph, ReloadedTriples)
    assert reloaded.fusion.provenance == kept.fusion.provenance and reloaded.links == kept.links
    assert reloaded.counts == kept.counts
    for name, result in (("kept", kept), ("reloaded", reloaded)):
        result.save(tmp_path / name)
    for file in ("fused.ttl", "links.ttl", "votes.jsonl", "entities.json.gz", "alignment.rdf"):
        assert (tmp_path / "kept" / file).read_bytes() == (tmp_path / "reloaded" / file).read_bytes(), file
    # The lean run let the entity contents go after retrieval, keeping the IRIs and hashes.
    assert kept.left_table.hashes is None
    assert reloaded.left_table.hashes == table_hashes(kept.left_table) and reloaded.right_table.hashes == table_hashes(kept.right_table)
    assert set(reloaded.left_table.entities) == set(kept.left_table.entities)
    assert all(entity is RELEASED for entity in reloaded.left_table.entities.values())


def test_a_lean_run_that_searches_duplicates_keeps_the_entity_contents(persons: dict[str, Path], embedder) -> None:
    result = _align(persons["left"], persons["right"], AlignConfig(judge="none", dedup="left"), embedder, None, lean=True)
    # In a file (a lean run's tables are), with the content hashes made as they were written.
    assert isinstance(result.left_table.entities, EntityFile) and result.left_table.hashes is not None
    assert any(entity.attributes for entity in result.left_table.entities.values())
    assert result.left_table.hashes == table_hashes(EntityTable("left", dict(result.left_table.entities)))
