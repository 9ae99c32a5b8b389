"""Duplicates within one graph (`kgalign dedup`), and clusters checked for chains of weak links."""

from __future__ import annotations

import json
import random
from collections import defaultdict
from itertools import combinations
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rdflib import Graph, Literal, URIRef
from rdflib.namespace import OWL

from bench.make_cardinality import add_copies, write_sorted
from kgalign.config import AlignConfig
from kgalign.dedup import deduplicate
from kgalign.fusion.fuse import fuse
from kgalign.io.triples import TripleSet
from kgalign.model import Link
from kgalign.resolution.clusters import check_clusters, components
from tests.helpers import cli

PERSON2 = URIRef("http://www.okkam.org/ontology_person2.owl#Person")


@pytest.fixture(scope="module")
def duplicates(persons, tmp_path_factory) -> dict[str, Path]:
    """The persons example's right graph with one to four records of each person, and the duplicate pairs."""
    folder = tmp_path_factory.mktemp("dedup")
    graph, records = add_copies(Graph().parse(persons["right"]), PERSON2, random.Random(3), 4, defaultdict(int))
    write_sorted(graph, folder / "persons.nt")
    pairs = sorted(pair for names in records.values() for pair in combinations(sorted(names), 2))
    (folder / "gold.tsv").write_text("".join(f"{a}\t{b}\n" for a, b in pairs))
    assert len(pairs) > 40
    return {"graph": folder / "persons.nt", "gold": folder / "gold.tsv"}


def test_dedup_finds_the_records_of_each_person(duplicates, embedder):
    result = deduplicate(duplicates["graph"], AlignConfig(gold=str(duplicates["gold"])), embedder=embedder)
    assert result.metrics is not None and result.metrics["f1"] >= 0.95, result.metrics
    # Pairs once each, the smaller IRI first, no entity paired with itself.
    assert all(link.left < link.right for link in result.links)
    # Every input triple is in fused.ttl, rewritten onto its cluster's IRI; sameAs to the others.
    graph = Graph().parse(duplicates["graph"])
    fused = result.fusion.graph
    mapping = result.fusion.canonical
    for s, p, o in graph:
        rewritten = (URIRef(mapping.get(str(s), str(s))), p, URIRef(mapping.get(str(o), str(o))) if isinstance(o, URIRef) else o)
        assert rewritten in fused, (s, p, o)
    for members in result.fusion.clusters:
        canonical = mapping[members[0]]
        assert canonical == min(members)
        assert all((URIRef(canonical), OWL.sameAs, URIRef(m)) in fused for m in members if m != canonical)


def test_dedup_command_writes_the_outputs(duplicates, tmp_path):
    outdir = tmp_path / "out"
    result = cli(["dedup", duplicates["graph"], "-o", outdir, "--gold", duplicates["gold"], "--quiet"])
    assert result.exit_code == 0, result.output
    assert "duplicate pairs in" in result.output and "f1=" in result.output
    for name in ("fused.ttl", "links.ttl", "votes.jsonl", "run.json", "metrics.json"):
        assert (outdir / name).is_file(), name
    info = json.loads((outdir / "run.json").read_text())
    assert info["clusters"]["command"] == "dedup" and sum(info["clusters"]["sizes"].values()) == info["counts"]["clusters"]
    links = Graph().parse(outdir / "links.ttl")
    assert len(links) == info["counts"]["links"]
    again = tmp_path / "again"
    assert cli(["rerun", outdir, "-o", again, "--quiet"]).exit_code == 0
    assert (again / "links.ttl").read_text() == (outdir / "links.ttl").read_text()
    refused = cli(["dedup", duplicates["graph"], "-o", tmp_path / "refused", "--resolve", "1:1"])
    assert refused.exit_code == 1 and "kgalign dedup finds its own clusters" in refused.output
    assert not (tmp_path / "refused").exists()


def test_a_chain_of_weak_links_is_split_and_a_strong_one_flagged():
    # A~B strong, B~C weak, A and C never linked: C is cut off.
    check = check_clusters([("A", "B", 0.9), ("B", "C", 0.3)])
    assert [sorted(map(str, c)) for c in components(check.edges)] == [["A", "B"]]
    assert check.removed == [("B", "C", 0.3)] and check.split == 1 and not check.flagged
    # Two triangles joined by one weak bridge: split there, each triangle kept whole.
    edges = [("a1", "a2", 0.9), ("a2", "a3", 0.8), ("a1", "a3", 0.85), ("b1", "b2", 0.9), ("b2", "b3", 0.9), ("b1", "b3", 0.7), ("a3", "b1", 0.4)]
    check = check_clusters(edges)
    assert sorted(sorted(map(str, c)) for c in components(check.edges)) == [["a1", "a2", "a3"], ["b1", "b2", "b3"]]
    # The same chain with a strong middle link is kept and flagged for a person to look at.
    check = check_clusters([("A", "B", 0.9), ("B", "C", 0.8)])
    assert len(check.edges) == 2 and check.flagged == [["A", "B", "C"]]
    # Complete clusters are left alone.
    assert check_clusters([("x", "y", 0.2), ("y", "z", 0.2), ("x", "z", 0.2)]).removed == []


ids = st.integers(0, 7)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([URIRef(f"http://example.org/e{i}") for i in range(8)]), st.sampled_from([URIRef("http://example.org/p")]), st.one_of(st.integers(0, 3).map(Literal), st.sampled_from([URIRef(f"http://example.org/e{i}") for i in range(8)]))), max_size=20), st.lists(st.tuples(ids, ids), max_size=8))
def test_dedup_fusion_keeps_every_triple(triples, pairs):
    """Clusters of several entities of one graph (the dedup case): every input triple kept, rewritten."""
    edges = [(f"http://example.org/e{min(a, b)}", f"http://example.org/e{max(a, b)}", 1.0) for a, b in pairs if a != b]
    clusters = [[str(n) for n in c] for c in components(edges)]
    stars = [Link(members[0], member, 1.0) for members in clusters for member in members[1:]]
    result = fuse(TripleSet(triples), TripleSet(), stars, "left")
    for s, p, o in triples:
        rewritten = (URIRef(result.canonical.get(str(s), str(s))), p, URIRef(result.canonical.get(str(o), str(o))) if isinstance(o, URIRef) else o)
        assert rewritten in result.graph
    for members in clusters:
        assert {result.canonical[m] for m in members} == {members[0]}


def test_run_with_dedup_merges_records_without_a_counterpart(persons, duplicates, tmp_path):
    """--dedup right: right records of a person missing on the left are merged with each other in fused.ttl."""
    from kgalign.evaluation.metrics import read_pairs

    left_graph = Graph().parse(persons["left"])
    removed = [URIRef(a) for a, _ in read_pairs(persons["gold"])[:10]]
    for person in removed:
        left_graph.remove((person, None, None))
    write_sorted(left_graph, tmp_path / "left.nt")
    outdir = tmp_path / "out"
    result = cli(["run", tmp_path / "left.nt", duplicates["graph"], "-o", outdir, "--dedup", "right", "--quiet"])
    assert result.exit_code == 0, result.output
    info = json.loads((outdir / "run.json").read_text())
    pairs = {(str(s), str(o)) for s, _, o in Graph().parse(outdir / "duplicates.ttl")}
    gold = {tuple(line.split("\t")) for line in duplicates["gold"].read_text().splitlines()}
    assert info["clusters"]["duplicates"]["right"]["pairs"] == len(pairs) and len(pairs & gold) >= 0.95 * len(gold)
    # Clusters of right records alone (their person was removed from the left) are merged too.
    lefts = {str(s) for s in left_graph.subjects()}
    fused = Graph().parse(outdir / "fused.ttl")
    right_only = [
        (s, o) for s, _, o in fused.triples((None, OWL.sameAs, None)) if str(s) not in lefts and (str(min(s, o)), str(max(s, o))) in gold
    ]
    assert right_only, "no cluster of right records without a left counterpart was merged"
    # Without --dedup there is no duplicates.ttl (and a stale one is removed).
    assert cli(["run", tmp_path / "left.nt", duplicates["graph"], "-o", outdir, "--quiet"]).exit_code == 0
    assert not (outdir / "duplicates.ttl").exists() and "duplicates" not in json.loads((outdir / "run.json").read_text())["clusters"]


def test_dedup_auto_follows_the_detected_cardinality():
    from kgalign.dedup import dedup_sides
    from kgalign.resolution.cardinality import CardinalityEvidence

    def evidence(choice: str) -> CardinalityEvidence:
        return CardinalityEvidence(choice, 10, 5, 10, 0)

    assert dedup_sides("auto", evidence("1:n")) == ["right"]
    assert dedup_sides("auto", evidence("n:1")) == ["left"]
    assert dedup_sides("auto", evidence("n:m")) == ["left", "right"]
    assert dedup_sides("auto", evidence("1:1")) == [] and dedup_sides("auto", None) == []
    assert dedup_sides("both", None) == ["left", "right"] and dedup_sides("none", evidence("1:n")) == []


@pytest.mark.parametrize(
    "flags",
    [
        ["--since", "."], ["--dedup", "both"], ["--explain"], ["--engine", "ray"], ["--push", "http://127.0.0.1:9/update"], ["--graph", "urn:g"],
        ["--seed-links", "gold.tsv"], ["--only-gold-entities"], ["--push-fused", "urn:f"], ["--no-ray-shards"], ["--ray-partitions", "2"],
    ],
)  # fmt: skip
def test_dedup_refuses_the_options_of_a_run_in_one_line(duplicates, tmp_path, flags):
    out = tmp_path / "out"
    result = cli(["dedup", duplicates["graph"], "-o", out, "--quiet", *flags])
    assert result.exit_code != 0
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and flags[0].replace("--no-", "--") in lines[0] and "kgalign run" in lines[0], result.output
    assert not out.exists()


def _listed_flags(help_text: str) -> set[str]:
    """The flags a --help lists (at the start of an option's line)."""
    import re

    return {flag for line in help_text.splitlines() if line.lstrip().startswith("-") for flag in re.findall(r"(?<![\w-])--?[\w-]+", line.split("  ")[1 if line.startswith("  ") else 0])}


def test_dedup_help_lists_no_option_it_refuses() -> None:
    from kgalign.cli.run import DEDUP_REFUSES

    hidden = {*DEDUP_REFUSES, "--resolve", "--no-explain", "--no-ray-shards", "--all-entities"}
    for flag in ("--help", "--help-all"):
        result = cli(["dedup", flag])
        assert result.exit_code == 0, result.output
        listed = _listed_flags(result.output)
        assert listed & hidden == set(), (flag, sorted(listed & hidden))
        assert {"--gold", "--judge", "--rounds", "-o"} <= listed, (flag, sorted(listed))
    # `kgalign run` still lists them all.
    assert hidden <= _listed_flags(cli(["run", "--help-all"]).output)
