"""The measured predicate ranking and the profiles built from it, on the real example."""

from __future__ import annotations

import logging

import pytest
from helpers import cli

from kgalign.errors import KgalignError
from kgalign.io.entities import load_entities
from kgalign.selection.predicates import build_profiles, check_named_predicates, choose_predicates, predicate_stats, short_name, suggest_pairs


def test_identifiers_outrank_repetitive_values(persons) -> None:
    _, table = load_entities(persons["left"], "left")
    stats = {short_name(s.predicate): s for s in predicate_stats(table)}
    ssn, age = stats["soc_sec_id"], stats["age"]
    assert ssn.coverage == 1.0 and ssn.distinctiveness == 1.0
    assert age.distinctiveness < 0.8
    assert ssn.importance > age.importance
    ranked = [short_name(s.predicate) for s in predicate_stats(table)]
    assert ranked.index("soc_sec_id") < ranked.index("age")
    # Empty literals count as missing: coverage of surname is below 1 in this excerpt.
    assert 0 < stats["surname"].coverage <= 1.0


def test_profiles_follow_the_ranking_and_the_override(persons) -> None:
    _, table = load_entities(persons["left"], "left")
    selection = choose_predicates(predicate_stats(table), max_attributes=3)
    profiles = build_profiles(table, selection)
    assert len(profiles) == len(table)
    assert all(len(p.attributes) <= 3 for p in profiles)
    assert all(p.label == "" for p in profiles)  # no labels, attributes present: local names are not shown
    override = choose_predicates(predicate_stats(table), attributes=["given_name", "surname"])
    profiles = build_profiles(table, override)
    assert {key for p in profiles for key, _ in p.attributes} <= {"given_name", "surname"}
    text = profiles[0].text()
    assert profiles[0].attributes[0][1] in text


def test_corresponding_predicates_are_suggested(persons) -> None:
    _, left = load_entities(persons["left"], "left")
    _, right = load_entities(persons["right"], "right")
    pairs = {(short_name(p.left), short_name(p.right)) for p in suggest_pairs(left, right)}
    assert ("soc_sec_id", "soc_sec_id") in pairs
    assert ("date_of_birth", "date_of_birth") in pairs
    # The suburb name sits three hops away on the left and on the address node on the right.
    assert ("has_address/is_in_suburb/name", "has_address/suburb") in pairs


def test_the_counts_behind_coverage_and_distinctiveness() -> None:
    """Every value counts towards distinctiveness, each distinct one once (after
    normalising case and spaces); an entity counts towards coverage once per predicate;
    empty values are missing. The same from a table in a file (a lean run's driver)."""
    from kgalign.io.entity_file import entity_map
    from kgalign.model import Entity, EntityTable, Value

    colour, knows = "http://ex/colour", "http://ex/knows"
    entities = {
        "http://ex/a": Entity("http://ex/a", attributes={colour: [Value("Red"), Value("red  "), Value("blue")]}, relations={knows: ["http://ex/b"]}),
        "http://ex/b": Entity("http://ex/b", attributes={colour: [Value("RED")]}, relations={knows: ["http://ex/b", "http://ex/c"]}),
        "http://ex/c": Entity("http://ex/c", attributes={colour: [Value(" ")]}, relations={knows: []}),
        "http://ex/d": Entity("http://ex/d"),
    }
    for stored in (entities, entity_map(entities, spill=True)):
        stats = {s.predicate: s for s in predicate_stats(EntityTable("x", stored))}
        assert (stats[colour].entities_with, stats[colour].distinct_values) == (2, 2)
        assert stats[colour].coverage == 0.5 and stats[colour].distinctiveness == 2 / 4
        assert (stats[knows].entities_with, stats[knows].distinct_values, stats[knows].distinctiveness) == (2, 2, 2 / 3)


def test_a_named_predicate_no_graph_has_is_an_error_or_a_warning(persons, caplog) -> None:
    tables = [load_entities(persons[side], side)[1] for side in ("left", "right")]

    def selections(attributes: list[str], relations: tuple[str, ...] = ()) -> list:
        return [choose_predicates(predicate_stats(t), attributes=attributes, relations=relations) for t in tables]

    # Every name found on some side: nothing to say.
    check_named_predicates(selections(["given_name", "has_address/suburb"]), ["given_name", "has_address/suburb"], [])
    # None found: one line naming them.
    with pytest.raises(KgalignError) as error:
        check_named_predicates(selections(["http://nope/p"]), ["http://nope/p"], [])
    assert str(error.value).startswith("--attributes http://nope/p: no attribute predicate of that name in either graph")
    with pytest.raises(KgalignError, match="^--relations http://nope/r: no relation predicate"):
        check_named_predicates(selections(["given_name"], ("http://nope/r",)), ["given_name"], ["http://nope/r"])
    with pytest.raises(KgalignError, match="^--attributes nope: no attribute predicate of that name in the graph"):
        check_named_predicates(selections(["nope"])[:1], ["nope"], [])
    # Some found: a warning names the others.
    with caplog.at_level(logging.WARNING, logger="kgalign.selection.predicates"):
        check_named_predicates(selections(["surname", "http://nope/p", "nope"]), ["surname", "http://nope/p", "nope"], [])
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [
        "--attributes http://nope/p, nope: no attribute predicate of these names in either graph; only the others named are shown"
    ]


def test_runs_stop_on_an_attribute_neither_graph_has(persons, tmp_path) -> None:
    for command in (["run", persons["left"], persons["right"]], ["dedup", persons["left"]]):
        out = tmp_path / command[0]
        result = cli([*command, "-o", out, "--attributes", "http://nope/p", "--quiet"])
        assert result.exit_code == 1, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("kgalign: error: --attributes http://nope/p: no attribute predicate of that name in"), result.output
        assert not out.exists()
    # Named by short name, one that exists on one side only (the left's suburb path) is fine.
    result = cli(["run", persons["left"], persons["right"], "-o", tmp_path / "ok", "--attributes", "has_address/is_in_suburb/name", "--attributes", "surname", "--quiet"])
    assert result.exit_code == 0, result.output
