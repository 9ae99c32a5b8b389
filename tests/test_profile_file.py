"""Entity profiles kept in a temporary file (``--engine ray``'s driver): the same
profiles by IRI as a dict holds, read from threads at once, and a dict again where no
file can be written."""

from __future__ import annotations

import logging
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor

import pytest

from kgalign.config import AlignConfig
from kgalign.model import EntityProfile
from kgalign.pipeline import prepare
from kgalign.selection import profile_file
from kgalign.selection.predicates import build_profiles, configured_selection
from kgalign.selection.profile_file import ProfileFile, profile_map
from tests.helpers import python_script


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


def test_profiles_made_as_the_file_takes_them(persons_profiles, monkeypatch) -> None:
    """A generator's profiles are taken a batch at a time: when the first batch is
    written, the generator has made that batch and no more."""
    monkeypatch.setattr(profile_file, "BATCH_PROFILES", 7)
    made: list[int] = []
    written: list[int] = []
    real_extend = ProfileFile.extend

    def extend(self, items) -> None:  # type: ignore[no-untyped-def]
        items = list(items)
        if items:  # the constructor extends by nothing
            written.append(len(made))
        real_extend(self, items)

    monkeypatch.setattr(ProfileFile, "extend", extend)

    def profiles():  # type: ignore[no-untyped-def]
        for profile in persons_profiles:
            made.append(1)
            yield profile

    stored = profile_map(profiles(), spill=True)
    assert isinstance(stored, ProfileFile) and list(stored.values()) == persons_profiles
    assert written[:3] == [7, 14, 21] and len(written) == -(-len(persons_profiles) // 7)


FILLED_DISK = """
import logging, resource, signal, sys
from kgalign.config import AlignConfig
from kgalign.io.entities import load_entities
from kgalign.selection import profile_file
from kgalign.selection.predicates import build_profiles, configured_selection
profile_file.BATCH_PROFILES = 5
logging.basicConfig(level=logging.WARNING, format="%(message)s")
table = load_entities(sys.argv[1], "x", None, None)[1]
expected = build_profiles(table, configured_selection(table, AlignConfig()))
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead of killing the process
resource.setrlimit(resource.RLIMIT_FSIZE, (3_000, resource.RLIM_INFINITY))
got = profile_file.profile_map(iter(expected), spill=True)
assert type(got) is dict and list(got) == [p.iri for p in expected], "not the same order"
assert list(got.values()) == expected, "not the same profiles"
print("same profiles", len(expected))
"""


@pytest.mark.skipif(not hasattr(os, "pwrite"), reason="a file size limit of the process (POSIX)")
def test_writes_that_fail_midway_keep_every_profile(persons, tmp_path) -> None:
    """A file that may not grow past 3 kB: a batch fails at its write; the profiles
    written before it are read back, that batch and the rest kept in memory, in order."""
    done = python_script(FILLED_DISK, str(persons["left"]), tmpdir=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "same profiles 60"
    assert "cannot keep more entity profiles in" in done.stderr and "stay in memory" in done.stderr


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
