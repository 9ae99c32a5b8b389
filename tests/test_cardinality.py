"""--resolve auto: the cardinality detected on small real excerpts, and the links of each mode.

The excerpts are the bundled persons example (OAEI Person1, 60 against 60) and the same
with noisy copies of its persons added on one side or both, by bench/make_cardinality.py's
own noise (typos, a blanked field, swapped name fields).
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from pathlib import Path

import pytest
from rdflib import Graph, URIRef

from bench.make_cardinality import add_copies, write_sorted
from kgalign.config import AlignConfig
from kgalign.model import Candidate, Candidates, Decision, Link
from kgalign.pipeline import align
from kgalign.resolution.resolve import close_clusters, resolve
from tests.helpers import cli

PERSON1 = URIRef("http://www.okkam.org/ontology_person1.owl#Person")
PERSON2 = URIRef("http://www.okkam.org/ontology_person2.owl#Person")


@pytest.fixture(scope="module")
def pairs(persons, tmp_path_factory) -> dict[str, dict[str, Path]]:
    """The example 1:1, and with copies: right side (1:n), swapped (n:1), both sides (n:m); gold of each."""
    from kgalign.evaluation.metrics import read_pairs

    folder = tmp_path_factory.mktemp("cardinality")
    gold = read_pairs(persons["gold"])
    rng = random.Random(7)
    right, right_records = add_copies(Graph().parse(persons["right"]), PERSON2, rng, 4, defaultdict(int))
    left, left_records = add_copies(Graph().parse(persons["left"]), PERSON1, rng, 3, defaultdict(int))
    write_sorted(right, folder / "right-copies.nt")
    write_sorted(left, folder / "left-copies.nt")

    def gold_file(name: str, rows: list[tuple[str, str]]) -> Path:
        (folder / name).write_text("".join(f"{a}\t{b}\n" for a, b in rows))
        return folder / name

    one_to_many = [(a, r) for a, b in gold for r in right_records[b]]
    return {
        "1:1": {"left": persons["left"], "right": persons["right"], "gold": persons["gold"]},
        "1:n": {"left": persons["left"], "right": folder / "right-copies.nt", "gold": gold_file("1n.tsv", one_to_many)},
        "n:1": {"left": folder / "right-copies.nt", "right": persons["left"], "gold": gold_file("n1.tsv", [(b, a) for a, b in one_to_many])},
        "n:m": {
            "left": folder / "left-copies.nt",
            "right": folder / "right-copies.nt",
            "gold": gold_file("nm.tsv", [(x, y) for a, b in gold for x in left_records[a] for y in right_records[b]]),
        },
    }


@pytest.mark.parametrize("kind", ["1:1", "1:n", "n:1", "n:m"])
def test_auto_detects_the_cardinality_and_links_every_record(pairs, embedder, kind):
    pair = pairs[kind]
    result = align(pair["left"], pair["right"], AlignConfig(gold=str(pair["gold"])), embedder=embedder)
    evidence = result.prepared.cardinality
    assert evidence is not None and evidence.choice == kind, evidence
    assert result.effective.resolve == {"1:1": "assignment", "1:n": "1:n", "n:1": "n:1", "n:m": "n:m"}[kind]
    assert result.metrics is not None and result.metrics["f1"] >= 0.98, result.metrics
    info = result.run_info()["cardinality"]
    assert info["detected"] and info["choice"] == kind and info["resolve"] == result.effective.resolve


def test_one_to_one_forced_is_the_former_default(pairs, embedder):
    """--resolve 1:1 on one-to-many data links each left person once (what the former default did)."""
    pair = pairs["1:n"]
    forced = align(pair["left"], pair["right"], AlignConfig(gold=str(pair["gold"]), resolve="1:1"), embedder=embedder)
    assert forced.prepared.cardinality is None and forced.run_info()["cardinality"] == {"resolve": "1:1", "detected": False}
    assert len({link.left for link in forced.links}) == len(forced.links)
    assert forced.metrics is not None and forced.metrics["recall"] < 0.6


def test_the_cli_logs_and_saves_the_choice(pairs, tmp_path):
    pair = pairs["1:n"]
    outdir = tmp_path / "out"
    result = cli(["--log-level", "info", "run", pair["left"], pair["right"], "-o", outdir, "--quiet"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "cardinality 1:n:" in text and "--resolve 1:n" in text
    saved = json.loads((outdir / "run.json").read_text())
    assert saved["cardinality"]["choice"] == "1:n" and saved["config"]["resolve"] == "auto" and saved["effective"]["resolve"] == "1:n"
    assert sum(saved["clusters"]["sizes"].values()) == saved["counts"]["clusters"] and max(map(int, saved["clusters"]["sizes"])) > 2
    shown = cli(["inspect", outdir / "votes.jsonl"]).output
    assert "cardinality: 1:n (detected;" in shown and "clusters: " in shown and " of size 3" in shown
    assert cli(["report", outdir]).exit_code == 0
    page = (outdir / "report.html").read_text()
    assert '"choice":"1:n"' in page.replace(" ", "") and "Largest cluster" in page


def _candidates(source: str, *scored: tuple[str, float]) -> Candidates:
    items = [Candidate(iri=iri, score=score, rank=rank + 1) for rank, (iri, score) in enumerate(scored)]
    return Candidates(source=source, items=items, margin=items[0].score - (items[1].score if len(items) > 1 else 0.0), mutual=False)


def test_one_to_many_gives_a_target_to_its_best_source():
    """1:n: a source keeps its strong candidates whose best source it is; a target wanted twice goes to the higher score."""
    candidates = [
        _candidates("a", ("x1", 0.9), ("x2", 0.8), ("y", 0.55)),
        _candidates("b", ("y", 0.7), ("x2", 0.3)),
        _candidates("c", ("y", 0.65)),
    ]
    decisions = [Decision(c.source, "match", c.items[0].iri, c.items[0].score) for c in candidates]
    links, conflicts = resolve(decisions, candidates, "1:n")
    assert {(link.left, link.right) for link in links} == {("a", "x1"), ("a", "x2"), ("b", "y")}
    assert [(c.source, c.target, c.winner) for c in conflicts] == [("c", "y", "b")]


def test_close_clusters_links_every_record_of_a_component():
    links = [Link("l1", "r1", 0.9), Link("l2", "r1", 0.8), Link("l2", "r2", 0.7), Link("l3", "r3", 0.95)]
    closed = close_clusters(links)
    assert {(link.left, link.right) for link in closed} == {("l1", "r1"), ("l1", "r2"), ("l2", "r1"), ("l2", "r2"), ("l3", "r3")}
    assert next(link for link in closed if (link.left, link.right) == ("l1", "r2")).confidence == 0.7


def test_resolve_choices_are_checked():
    with pytest.raises(Exception, match="resolve: 'n:n' is not one of auto, "):
        AlignConfig(resolve="n:n")


@pytest.mark.parametrize("kind", ["1:1", "1:n", "n:1", "n:m"])
def test_a_sample_of_each_side_finds_what_all_of_it_finds(pairs, kind):
    """Detection on 30 evenly spaced entities of each side (as a large graph is measured)
    chooses what the whole sides give, with shares near the whole sides'."""
    from kgalign.io.entities import load_entities
    from kgalign.resolution.cardinality import detect_cardinality, sample_rows
    from kgalign.selection.predicates import build_profiles, configured_selection

    texts = []
    for side in ("left", "right"):
        _, table = load_entities(pairs[kind][side], side)
        texts.append([p.text(True) for p in build_profiles(table, configured_selection(table, AlignConfig()))])
    whole = detect_cardinality(*texts)
    part = detect_cardinality(*texts, sample=30)
    assert not whole.sampled and whole.left_measured == len(texts[0])
    assert part.sampled and part.left_measured == 30 and part.right_measured == 30
    assert part.choice == whole.choice == kind
    assert abs(part.left_share - whole.left_share) < 0.25 and abs(part.right_share - whole.right_share) < 0.25
    assert "measured on samples of 30 and 30 entities" in part.summary()
    assert list(sample_rows(5, 10)) == [0, 1, 2, 3, 4] and list(sample_rows(10, 3)) == [0, 4, 9]


@pytest.mark.parametrize("kind", ["1:n", "n:m"])
def test_detection_scores_on_every_feature_when_the_search_prunes(pairs, kind, monkeypatch):
    """Past PRUNE_FROM_TARGETS targets the lexical search ignores common features; the
    detection scores what it finds on every feature, so it sees the same counterparts."""
    import kgalign.retrieval.retrieve as retrieve
    from kgalign.io.entities import load_entities
    from kgalign.resolution.cardinality import detect_cardinality
    from kgalign.selection.predicates import build_profiles, configured_selection

    texts = []
    for side in ("left", "right"):
        _, table = load_entities(pairs[kind][side], side)
        texts.append([p.text(True) for p in build_profiles(table, configured_selection(table, AlignConfig()))])
    whole = detect_cardinality(*texts)
    # At this scale, as on a large graph: the features of more than 3% of the targets ignored
    # in the search (scored on those alone, a third of the several counterparts fell below the floor).
    monkeypatch.setattr(retrieve, "PRUNE_FROM_TARGETS", 10)
    monkeypatch.setattr(retrieve, "COMMON_FEATURE_SHARE", 0.03)
    pruned = detect_cardinality(*texts)
    assert pruned.choice == whole.choice == kind
    assert abs(pruned.left_share - whole.left_share) < 0.05 and abs(pruned.right_share - whole.right_share) < 0.05
