"""The measured predicate ranking and the profiles built from it, on the real example."""

from __future__ import annotations

from kgalign.io.entities import load_entities
from kgalign.selection.predicates import build_profiles, choose_predicates, predicate_stats, short_name, suggest_pairs


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
