"""bench/make_large_pair.py at a tiny scale: valid N-Triples, a gold that names real entities, deterministic."""

from __future__ import annotations

import gzip
from pathlib import Path

from rdflib import Graph, URIRef

from bench import make_large_pair
from kgalign.io.entities import load_entities


def _gold(path: Path) -> list[tuple[str, str]]:
    rows = [line.split("\t") for line in path.read_text().splitlines() if line and not line.startswith("#")]
    return [(a, b) for a, b in rows]


def test_small_pair_parses_and_gold_names_entities_of_both_sides(tmp_path: Path) -> None:
    info = make_large_pair.generate(tmp_path, 2_000, seed=3)
    left, right = Graph().parse(info["left"], format="nt"), Graph().parse(info["right"], format="nt")
    assert len(left) == info["left_triples"] and len(right) == info["right_triples"]
    for side in ("left_triples", "right_triples"):
        assert 1_700 <= info[side] <= 2_300, info
    gold = _gold(Path(info["gold"]))
    assert len(gold) == info["gold_pairs"] > 100
    left_subjects, right_subjects = set(left.subjects()), set(right.subjects())
    assert all(URIRef(a) in left_subjects and URIRef(b) in right_subjects for a, b in gold)
    assert len({a for a, _ in gold}) == len({b for _, b in gold}) == len(gold)  # one to one
    # The gold pairs are entities of kgalign's tables, addresses folded in on the left;
    # the cities, which many addresses share, are entities of their own there.
    _, left_table = load_entities(info["left"])
    _, right_table = load_entities(info["right"])
    city = "http://www.okkam.org/ontology_person1.owl#City"
    cities = [e for e in left_table.entities.values() if city in e.types]
    assert len(left_table) - len(cities) == info["left_persons"] and cities and len(right_table) == info["right_persons"]
    assert {c.key: c.kept for c in left_table.kinds.classes}[city]
    assert {a for a, _ in gold} <= set(left_table.entities)
    assert {b for _, b in gold} <= set(right_table.entities)
    a, b = gold[0]
    assert any("has_address" in path for path in left_table.entities[a].attributes)
    assert any(path.endswith("is_in_city") and targets[0] in left_table.entities for path, targets in left_table.entities[a].relations.items())
    assert right_table.entities[b].labels


def test_same_seed_same_bytes_and_gzip(tmp_path: Path) -> None:
    one = make_large_pair.generate(tmp_path / "one", 1_500, seed=7)
    two = make_large_pair.generate(tmp_path / "two", 1_500, seed=7, compress=True)
    other = make_large_pair.generate(tmp_path / "other", 1_500, seed=8)
    for side in ("left", "right"):
        assert Path(one[side]).read_bytes() == gzip.decompress(Path(two[side]).read_bytes())
        assert Path(one[side]).read_bytes() != Path(other[side]).read_bytes()
    assert Path(one["gold"]).read_bytes() == Path(two["gold"]).read_bytes()
    graph, _ = load_entities(two["left"])  # kgalign reads the .nt.gz
    assert len(graph) == one["left_triples"]
