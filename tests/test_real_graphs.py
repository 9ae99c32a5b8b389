"""The first stage on real graphs of many classes: which nodes are entities, which
classes correspond, which attributes can agree across the graphs, cardinality that does
not run away, and the no-counterpart cut. On small real excerpts (tests/data): OAEI
DOREMUS 4-heterogeneities (CIDOC-CRM/FRBRoo, works several hops from their values,
UUID IRIs), OAEI UOBM small (persons without labels, classes rewritten, IRIs shared
across the graphs), an open-world Abt-Buy pair, and the persons example (one class)."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
from helpers import cli

from kgalign import AlignConfig, align
from kgalign.evaluation.metrics import read_pairs
from kgalign.io.entities import IRI_VALUE, PATH_SEPARATOR, build_entity_table, load_entities
from kgalign.io.kinds import iri_pattern
from kgalign.io.parsers import read_triples
from kgalign.model import Link
from kgalign.resolution.cardinality import closed_groups
from kgalign.resolution.guard import bound_clusters, excess_warning
from kgalign.retrieval.retrieve import lexical_vectors
from kgalign.selection.alignability import Vocabulary, alignabilities, vocabulary
from kgalign.selection.classes import align_classes
from kgalign.selection.predicates import build_profiles, configured_selection, predicate_stats

DATA = Path(__file__).resolve().parent / "data"
DOREMUS, UOBM, OPEN = DATA / "doremus_mini", DATA / "uobm_mini", DATA / "open_world_mini"
WORK = "http://data.doremus.org/ontology/Self_Contained_Expression"
UB = "http://semantics.crl.ibm.com/univ-bench-dl.owl#"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _tables(folder: Path):
    return [load_entities(folder / f"{side}.nt", side)[1] for side in ("left", "right")]


def test_the_works_are_entities_and_their_parts_are_folded_into_them() -> None:
    left, right = _tables(DOREMUS)
    gold = read_pairs(DOREMUS / "gold.tsv")
    for table, works in ((left, {a for a, _ in gold}), (right, {b for _, b in gold})):
        decided = {c.key: c for c in table.kinds.classes}
        assert decided[WORK].kept and works <= set(table.entities)
        # The creation events and identifier assignments hang off the works (and their
        # other descriptions): folded, not entities.
        for pattern in ("http://data.doremus.org/Expression_Creation/F28/*", "http://data.doremus.org/Performance/F31/*"):
            assert not decided[pattern].kept and "hang off" in decided[pattern].reason
            assert not any(iri.startswith(pattern[:-1]) for iri in table.entities)
        # Blank nodes (the composer's activity, the time span) are never entities.
        assert all(iri.startswith("http") for iri in table.entities)
        # The composer, three links from the work, is folded into the works (one left work
        # of the excerpt names none; the works are read in sorted order, not a set's, whose
        # order changes with each process's string hashing).
        composers = [[p for p in table.entities[w].attributes if p.endswith("P131_is_identified_by")] for w in sorted(works)]
        assert sum(1 for paths in composers if paths) >= len(works) - 1
        assert all(PATH_SEPARATOR in path for paths in composers for path in paths)


def test_persons_without_labels_are_entities_in_a_graph_of_many_classes() -> None:
    left, right = _tables(UOBM)
    gold = read_pairs(UOBM / "gold.tsv")
    assert {a for a, _ in gold} == set(left.entities) and {b for _, b in gold} == set(right.entities)
    assert all(not e.labels for e in left.entities.values())
    # A course's name is an IRI the other graph names too: kept as an IRI value.
    course = left.entities[next(a for a, _ in gold if a.endswith("/Course0"))]
    assert [v.datatype for v in course.attributes[UB + "name"]] == [IRI_VALUE]


def test_the_entity_rule_keeps_the_one_class_graphs_as_they_were(persons) -> None:
    """Persons with their address nodes folded (the address class hangs off the persons)."""
    _, table = load_entities(persons["left"], "left")
    assert len(table) == 60
    decided = {c.key: c for c in table.kinds.classes}
    assert [key for key, c in decided.items() if c.kept] == ["http://www.okkam.org/ontology_person1.owl#Person"]
    assert any("Address" in key and not c.kept for key, c in decided.items())


def test_copies_of_a_record_sharing_a_part_still_fold_it(tmp_path) -> None:
    """An address that two copies of one person point to is still the person's part; a
    node that many point to (a city) stands on its own, and so does a friend (a peer)."""
    lines = []
    for i in range(30):
        lines.append(f'<http://ex/p{i}> <http://www.w3.org/1999/02/22-rdf-syntax-ns#type> <http://ex/Person> .\n<http://ex/p{i}> <http://ex/name> "person {i}" .')
        lines.append(f'<http://ex/q{i}> <http://www.w3.org/1999/02/22-rdf-syntax-ns#type> <http://ex/Person> .\n<http://ex/q{i}> <http://ex/name> "person {i} copy" .')
        lines.append(f'<http://ex/p{i}> <http://ex/address> <http://ex/a{i}> .\n<http://ex/q{i}> <http://ex/address> <http://ex/a{i}> .')
        lines.append(f'<http://ex/a{i}> <http://www.w3.org/1999/02/22-rdf-syntax-ns#type> <http://ex/Address> .\n<http://ex/a{i}> <http://ex/street> "{i} Main St" .')
        lines.append(f'<http://ex/a{i}> <http://ex/city> <http://ex/city{i % 2}> .')
        lines.append(f'<http://ex/p{i}> <http://ex/knows> <http://ex/p{(i + 1) % 30}> .')
    for c in range(2):
        lines.append(f'<http://ex/city{c}> <http://www.w3.org/1999/02/22-rdf-syntax-ns#type> <http://ex/City> .\n<http://ex/city{c}> <http://ex/cityName> "town {c}" .')
    path = tmp_path / "g.nt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    table = build_entity_table(read_triples(path), "g")
    decided = {c.key: c for c in table.kinds.classes}
    assert decided["http://ex/Person"].kept and not decided["http://ex/Address"].kept and decided["http://ex/City"].kept
    assert len(table) == 62
    assert [v.text for v in table.entities["http://ex/q3"].attributes["http://ex/address / http://ex/street"]] == ["3 Main St"]


def test_classes_named_to_keep_or_fold_override_the_data(tmp_path) -> None:
    left = load_entities(DOREMUS / "left.nt", "left", keep=["http://data.doremus.org/Expression_Creation/F28/*"], fold=[WORK])[1]
    assert any(iri.startswith("http://data.doremus.org/Expression_Creation/F28/") for iri in left.entities)
    assert not any(WORK == t for e in left.entities.values() for t in e.types)
    reasons = {c.key: c.reason for c in left.kinds.classes}
    assert "as asked" in reasons[WORK] and "as asked" in reasons["http://data.doremus.org/Expression_Creation/F28/*"]


def test_iri_patterns_stand_for_the_classes_of_untyped_nodes() -> None:
    assert iri_pattern("http://data.doremus.org/Expression_Creation/F28/7bd4f8af-6e54") == "http://data.doremus.org/Expression_Creation/F28/*"
    assert iri_pattern("urn:isbn:123") == "urn:isbn:*"
    assert iri_pattern("http://www.College0.University0.edu") == "http://*"


def test_class_correspondences_are_found_and_can_be_given() -> None:
    left, right = _tables(UOBM)
    found = align_classes(left, right)
    pairs = {(c.left, c.right): c.how for c in found.correspondences}
    assert pairs[(UB + "Course", UB + "Course")] == "same class"
    assert pairs[(UB + "Person", UB + "Person")] == "same class"
    # Every gold pair lies within one block but the course the right graph retyped as a
    # Work: alone of its class in this excerpt, it corresponds to nothing (on the whole
    # graph, 50 such share their names with the left courses: "shared values").
    gold = read_pairs(UOBM / "gold.tsv")
    block = {iri: b for b, (lefts, rights) in enumerate(found.blocks) for iri in (*lefts, *rights)}
    apart = [(a, b) for a, b in gold if block.get(a) != block.get(b)]
    assert len(apart) == 1 and right.entities[apart[0][1]].types == [UB + "Work"]
    assert found.unaligned["right"] == {UB + "Work": 1} and found.left_out["right"] == 1
    course = next(a for a, _ in gold if a.endswith("/Course0"))
    person = next(b for a, b in gold if "student" in a)
    assert not found.allowed(course, person)
    given = align_classes(left, right, class_map=[f"{UB}Course={UB}Person"])
    mapped = {(c.left, c.right): c.how for c in given.correspondences if c.left == UB + "Course"}
    assert mapped == {(UB + "Course", UB + "Person"): "given"}
    assert given.allowed(course, person)


def test_a_class_that_corresponds_to_nothing_is_not_aligned(caplog) -> None:
    left, right = _tables(DOREMUS)
    with caplog.at_level(logging.WARNING, logger="kgalign"):
        only_left = align_classes(left, right, class_map=[f"{WORK}=http://ex/Nothing"])
    assert only_left.left_out["left"] >= 12
    said = [r.getMessage() for r in caplog.records if "correspond to no right class" in r.getMessage()]
    assert len(said) == 1 and WORK in said[0]


def test_opaque_identifiers_never_head_a_profile_and_agreeing_values_do() -> None:
    left, right = _tables(DOREMUS)
    words = {"left": vocabulary(left), "right": vocabulary(right)}
    for _side, table, other in (("left", left, "right"), ("right", right, "left")):
        stats = {s.predicate: s for s in predicate_stats(table, words[other]) if s.kind == "attribute"}
        titles = [s for path, s in stats.items() if path.endswith("P102_has_title")]
        assert titles and max(s.alignability for s in titles) > 0.5
        # The catalogue numbers each institution assigns (R46_assigned) never agree.
        numbers = [s for path, s in stats.items() if path.endswith("R46_assigned")]
        assert numbers and all(s.alignability < 0.05 and s.importance == 0 for s in numbers)
        catalogue = {v.text for e in table.entities.values() for path, vs in e.attributes.items() if path.endswith("R46_assigned") for v in vs}
        for profile in build_profiles(table, configured_selection(table, AlignConfig(), words[other])):
            assert not UUID.search(profile.text()), profile.text()
            assert not catalogue & {value for _, value in profile.attributes}
    # Alone, a catalogue number of one institution scores as an identifier; against the
    # other graph it never agrees.
    from kgalign.model import Value

    theirs = Vocabulary(words={"messe", "adagio", "requiem", "sonate"}, values={"n° de notice"}, iris={"http://isni.org/isni/1"})
    found = alignabilities(
        {
            "id": [Value(f"083504{i}") for i in range(4)],
            "title": [Value(t) for t in ("Messe", "Adagio", "Requiem", "Sonate")],
            "type": [Value("N° de notice")] * 4,
            "agency": [Value("http://isni.org/isni/1", datatype=IRI_VALUE), Value("http://data.doremus.org/x/8e0f", datatype=IRI_VALUE)],
        },
        theirs,
    )
    assert found == {"id": 0.0, "title": 1.0, "type": 1.0, "agency": 0.5}


def test_a_graph_of_many_classes_is_aligned_class_by_class(tmp_path) -> None:
    for folder, floor in ((DOREMUS, 0.8), (UOBM, 0.8)):
        result = align(str(folder / "left.nt"), str(folder / "right.nt"), AlignConfig(gold=str(folder / "gold.tsv")))
        gold = read_pairs(folder / "gold.tsv")
        lefts = {a for a, _ in gold}
        scored = [(link.left, link.right) for link in result.links if link.left in lefts]
        right = len(set(scored) & set(gold))
        assert right / len(gold) >= floor and right / max(len(scored), 1) >= floor, (folder.name, right, len(scored))
        # No link between classes that do not correspond.
        assert all(result.prepared.classes.allowed(link.left, link.right) for link in result.links)
        # No cluster explosion.
        assert len(result.links) <= 1.5 * min(len(result.left_table), len(result.right_table))
        assert max(int(size) for size in result.run_info()["clusters"]["sizes"]) <= 10


def test_look_alikes_are_no_copies_and_a_chain_is_cut_back() -> None:
    # Three noisy copies of one record on the right, and a product line of look-alikes.
    right = ["anne smith 12 high st", "anne smith 12 high street", "ann smith 12 high st", "canon eos 5d body", "canon eos 6d body", "canon eos 7d body", "canon eos 80d body"]
    left = ["anne smith, 12 high st", "canon eos 5d"]
    _, rows = lexical_vectors(left, right)
    assert closed_groups(rows, [[0, 1, 2], [3, 4, 5]]) == [[0, 1, 2], [3]]
    chain = [Link(f"l{i}", f"r{i}", 0.9) for i in range(8)] + [Link(f"l{i + 1}", f"r{i}", 0.6) for i in range(7)]
    kept, bounded = bound_clusters(chain, bound=10)
    assert bounded.clusters == 1 and sorted((k.left, k.right) for k in kept) == [(f"l{i}", f"r{i}") for i in range(8)]
    assert bound_clusters(chain[:3], bound=10)[0] == chain[:3]
    assert "look-alikes" in excess_warning(300, 100, 120, "n:m") and excess_warning(150, 100, 120, "n:m") is None


def test_the_no_counterpart_cut_is_chosen_from_the_run_and_recorded(tmp_path) -> None:
    gold = str(OPEN / "gold.tsv")
    with_cut = cli(["run", str(OPEN / "left.csv"), str(OPEN / "right.csv"), "-o", str(tmp_path / "cut"), "--gold", gold, "--quiet"])
    assert with_cut.exit_code == 0, with_cut.output
    without = cli(["run", str(OPEN / "left.csv"), str(OPEN / "right.csv"), "-o", str(tmp_path / "all"), "--gold", gold, "--quiet", "--no-cut"])
    assert without.exit_code == 0, without.output
    run = json.loads((tmp_path / "cut" / "run.json").read_text())
    (cut,) = run["guard"]["cut"]
    assert 0 < cut["cut"] < 1 and cut["unlinked"] > 0 and cut["null_size"] >= 30 and 0.2 < cut["no_counterpart"] / cut["sources"] < 0.6
    # No label was read to choose it: the same cut without --gold.
    cli(["run", str(OPEN / "left.csv"), str(OPEN / "right.csv"), "-o", str(tmp_path / "blind"), "--quiet"])
    assert json.loads((tmp_path / "blind" / "run.json").read_text())["guard"]["cut"][0]["cut"] == cut["cut"]
    metrics = json.loads((tmp_path / "cut" / "metrics.json").read_text())
    before = json.loads((tmp_path / "all" / "metrics.json").read_text())
    assert metrics["predicted"] < before["predicted"] and metrics["precision"] > before["precision"]
    votes = [json.loads(line) for line in (tmp_path / "cut" / "votes.jsonl").read_text().splitlines()]
    unlinked = [v for v in votes if v.get("below_cut")]
    assert len(unlinked) == cut["unlinked"] and all(v["linked"] is None for v in unlinked)
    # A mutual best pair is never cut: only links to a target that prefers another source.
    assert not any(v["mutual"] and v["candidates"] and v["target"] == v["candidates"][0]["iri"] for v in unlinked)
    shown = cli(["inspect", str(tmp_path / "cut" / "votes.jsonl")])
    assert "no-counterpart cut" in shown.output


def test_the_cut_leaves_the_sources_without_counterpart_and_closed_worlds_alone(persons) -> None:
    # The persons example: 50 of its 60 left persons have a counterpart; none is cut.
    result = align(str(persons["left"]), str(persons["right"]), AlignConfig(gold=str(persons["gold"])))
    matched = {a for a, _ in read_pairs(persons["gold"])}
    unlinked = {c.source for c in result.candidates if c.below_cut}
    assert result.guard["cut"] and not unlinked & matched and result.metrics["recall"] == 1.0
    # Every source of the excerpts has a counterpart: nothing is cut.
    for folder in (DOREMUS, UOBM):
        closed = align(str(folder / "left.nt"), str(folder / "right.nt"), AlignConfig())
        assert not any(c.below_cut for c in closed.candidates if c.source in {a for a, _ in read_pairs(folder / "gold.tsv")}), folder.name


def test_profile_lists_the_classes_and_the_correspondences() -> None:
    shown = cli(["profile", str(UOBM / "left.nt"), str(UOBM / "right.nt")])
    assert shown.exit_code == 0, shown.output
    for text in ("Classes", "kept", "Course", "same class", "alignab"):
        assert text in shown.output, text
    printed = cli(["profile", str(DOREMUS / "left.nt"), str(DOREMUS / "right.nt"), "--json"]).output
    as_json = json.loads(printed[printed.index("\n{") + 1 :] if not printed.startswith("{") else printed)  # after the warning on the classes left out
    folded = [c for c in as_json["classes"]["left"]["classes"] if not c["kept"]]
    assert folded and all(c["reason"] for c in folded)
    assert any(c["left"] == WORK and c["right"] == WORK for c in as_json["classes"]["correspondences"])
    assert all("alignability" in s for s in as_json["left"])


@pytest.mark.parametrize("folder", [DOREMUS, UOBM])
def test_the_partitioned_load_decides_as_one_process(folder) -> None:
    from test_partitioned import _same_table

    for parts in (2, 3):
        _same_table(folder / "left.nt", parts, 4096)
