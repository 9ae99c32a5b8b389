"""Entity profiles kept in a temporary file (``--engine ray``'s driver): the same
profiles by IRI as a dict holds, read from threads at once, and a dict again where no
file can be written."""

from __future__ import annotations

import logging
import tempfile
from concurrent.futures import ThreadPoolExecutor

import pytest

from kgalign.config import AlignConfig
from kgalign.model import EntityProfile
from kgalign.pipeline import prepare
from kgalign.selection.predicates import build_profiles, configured_selection
from kgalign.selection.profile_file import ProfileFile, profile_map


@pytest.fixture(scope="module")
def persons_profiles(persons) -> list[EntityProfile]:
    prepared = prepare(persons["left"], persons["right"], AlignConfig(judge="none"), retrieve_candidates=False)
    tables = (prepared.left_table, prepared.right_table)
    return [profile for table in tables for profile in build_profiles(table, configured_selection(table, AlignConfig()))]


def test_the_file_gives_the_profiles_a_dict_gives(persons_profiles, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    odd = EntityProfile("http://ex/odd\udc80é", "name \"quoted\"\n| pipe", [("a", "\u2026"), ("b", "")], [("knows", "x")])
    profiles = [*persons_profiles, odd, EntityProfile("http://ex/bare", "")]
    stored = profile_map(profiles, spill=True)
    expected = {p.iri: p for p in profiles}
    assert isinstance(stored, ProfileFile) and list(tmp_path.iterdir()) == []  # no name in the folder
    assert list(stored) == list(expected) and len(stored) == len(expected) > 100
    assert all(stored[iri] == profile for iri, profile in expected.items())
    assert stored.get("http://ex/absent") is None and "http://ex/absent" not in stored and odd.iri in stored
    with pytest.raises(KeyError):
        stored["http://ex/absent"]
    # The attributes come back as lists of pairs: the judge's prompts and votes.jsonl read them so.
    assert stored[odd.iri].attributes == [("a", "\u2026"), ("b", "")] and isinstance(stored[odd.iri].attributes[0], tuple)


def test_threads_read_the_file_at_once(persons_profiles) -> None:
    stored = ProfileFile(persons_profiles)
    iris = [p.iri for p in persons_profiles] * 4
    with ThreadPoolExecutor(8) as pool:
        read = list(pool.map(lambda iri: stored[iri], iris))
    assert read == persons_profiles * 4


def test_without_a_usable_folder_the_profiles_stay_in_memory(persons_profiles, tmp_path, monkeypatch, caplog) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "absent"))
    with caplog.at_level(logging.WARNING):
        stored = profile_map(persons_profiles, spill=True)
    assert type(stored) is dict and stored == {p.iri: p for p in persons_profiles}
    assert "cannot keep the entity profiles in a temporary file" in caplog.text
    assert type(profile_map(persons_profiles, spill=False)) is dict
