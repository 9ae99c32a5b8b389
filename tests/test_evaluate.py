"""Gold formats and metrics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kgalign.errors import InputError
from kgalign.evaluation.metrics import link_metrics, ranking_metrics, read_pairs, score_alignment
from kgalign.evaluation.runs import score_run
from kgalign.fusion.export import alignment_xml, write_links
from kgalign.model import Candidate, Candidates, Decision, EntityProfile, Link
from kgalign.review.votes import decision_record, read_candidates, record_candidates, write_votes


def test_official_oaei_gold_is_read(shared_data: Path) -> None:
    pairs = read_pairs(shared_data / "oaei2010_persons1" / "dataset11_dataset12_goldstandard_person.xml")
    assert len(pairs) == 500
    assert ("http://www.okkam.org/oaie/person1-Person00", "http://www.okkam.org/oaie/person2-Person01") in pairs
    restaurants = read_pairs(shared_data / "oaei2010_restaurants" / "restaurant1_restaurant2_goldstandard.rdf")
    assert len(restaurants) == 112
    repaired = read_pairs(shared_data / "oaei2010_restaurants" / "goldstandard_repaired.tsv")
    assert len(repaired) == 112 and len(set(repaired) - set(restaurants)) == 23


def test_written_alignment_round_trips(tmp_path: Path) -> None:
    links = [Link("http://a.org/x?a=1&b=2", "http://b.org/y", 0.75), Link("http://a.org/z", "http://b.org/'w'", 1.0)]
    path = tmp_path / "alignment.rdf"
    path.write_text(alignment_xml(links))
    assert sorted(read_pairs(path)) == sorted((l.left, l.right) for l in links)


def test_sameas_and_csv_formats(tmp_path: Path) -> None:
    ttl = tmp_path / "links.ttl"
    ttl.write_text("<http://a/1> <http://www.w3.org/2002/07/owl#sameAs> <http://b/1> .\n")
    assert read_pairs(ttl) == [("http://a/1", "http://b/1")]
    csv_file = tmp_path / "gold.csv"
    csv_file.write_text("left,right\nhttp://a/1,http://b/1\nhttp://a/2,http://b/2\n")
    assert read_pairs(csv_file) == [("http://a/1", "http://b/1"), ("http://a/2", "http://b/2")]
    bad = tmp_path / "bad.tsv"
    bad.write_text("http://a/1\thttp://b/1\nhttp://a/2\n")
    with pytest.raises(InputError, match=r"bad\.tsv:2: expected two columns"):
        read_pairs(bad)


def test_metrics() -> None:
    m = link_metrics([("a", "x"), ("b", "y"), ("c", "q")], [("a", "x"), ("b", "y"), ("d", "z"), ("e", "w")])
    assert (m.precision, m.recall) == (pytest.approx(2 / 3, abs=1e-5), 0.5)
    assert m.f1 == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5), abs=1e-5)
    cands = [
        Candidates("a", [Candidate("x", 0.9, 1), Candidate("y", 0.8, 2)], 0.1, True),
        Candidates("b", [Candidate("x", 0.9, 1), Candidate("y", 0.8, 2)], 0.1, False),
    ]
    r = ranking_metrics(cands, [("a", "x"), ("b", "y"), ("c", "z")])
    assert r == {"hits@1": pytest.approx(1 / 3, abs=1e-5), "hits@10": pytest.approx(2 / 3, abs=1e-5), "mrr": pytest.approx(0.5, abs=1e-5)}


def test_score_alignment_leaves_seed_links_out() -> None:
    cands = [
        Candidates("a", [Candidate("x", 0.9, 1)], 0.9, True),
        Candidates("b", [Candidate("z", 0.8, 1), Candidate("y", 0.7, 2)], 0.1, False),
    ]
    links = [("s", "t"), ("a", "x"), ("b", "z")]
    gold = [("s", "t"), ("a", "x"), ("b", "y"), ("c", "q")]
    m = score_alignment(links, cands, gold, seed_links=[["s", "t"]], entities=({"s", "a", "b"}, {"t", "x", "y", "z"}))
    # The seed link and the gold pair of its source are in no figure.
    assert (m["true_positives"], m["predicted"], m["gold"]) == (1, 2, 3)
    assert (m["hits@1"], m["hits@10"], m["mrr"]) == (pytest.approx(1 / 3, abs=1e-5), pytest.approx(2 / 3, abs=1e-5), pytest.approx(0.5, abs=1e-5))
    assert m["gold_pairs_not_in_graphs"] == 1  # ("c", "q")
    plain = score_alignment(links, cands, gold)
    assert (plain["true_positives"], plain["predicted"], plain["gold"]) == (2, 3, 4) and "gold_pairs_not_in_graphs" not in plain


def test_candidates_read_back_from_the_decision_log(tmp_path: Path) -> None:
    cands = [
        Candidates("urn:l:1", [Candidate("urn:r:1", 0.91, 1), Candidate("urn:r:2", 0.5, 2)], 0.41, True),
        Candidates("urn:l:2", [Candidate("urn:r:2", 0.7, 1)], 0.7, False, contested_by="urn:l:1"),
        Candidates("urn:l:3", [], 0.0, False),
    ]
    decisions = [Decision(c.source, "match" if c.items else "none", c.top.iri if c.top else None, 0.9) for c in cands]
    profiles = {f"urn:r:{i}": EntityProfile(f"urn:r:{i}", f"R{i}") for i in (1, 2)}
    records = [decision_record(d, c, EntityProfile(c.source, "L"), profiles) for d, c in zip(decisions, cands)]
    write_votes(records, tmp_path / "votes.jsonl")
    assert read_candidates(tmp_path / "votes.jsonl") == cands
    assert record_candidates({"source": "urn:l:9", "candidates": [{"iri": "urn:r:1"}, {"iri": "urn:r:2"}]}) == Candidates(
        "urn:l:9", [Candidate("urn:r:1", 0.0, 1), Candidate("urn:r:2", 0.0, 2)], 0.0, False
    )


def test_score_run_reads_links_votes_and_seed_links_of_a_run_folder(tmp_path: Path) -> None:
    cands = [
        Candidates("urn:l:1", [Candidate("urn:r:1", 0.9, 1), Candidate("urn:r:2", 0.5, 2)], 0.4, True),
        Candidates("urn:l:2", [Candidate("urn:r:1", 0.6, 1), Candidate("urn:r:2", 0.5, 2)], 0.1, False),
    ]
    decisions = [Decision(c.source, "match", c.top.iri, 0.9) for c in cands]
    records = [decision_record(d, c, EntityProfile(c.source, "L"), {}) for d, c in zip(decisions, cands)]
    write_votes(records, tmp_path / "votes.jsonl")
    write_links([Link("urn:l:0", "urn:r:0", 1.0), Link("urn:l:1", "urn:r:1", 0.9), Link("urn:l:2", "urn:r:1", 0.6)], tmp_path / "links.ttl")
    (tmp_path / "run.json").write_text(json.dumps({"config": {"seed_links": [["urn:l:0", "urn:r:0"]]}}))
    gold_file = tmp_path / "gold.tsv"
    gold_file.write_text("urn:l:0\turn:r:0\nurn:l:1\turn:r:1\nurn:l:2\turn:r:2\n")
    gold = read_pairs(gold_file)
    links = [("urn:l:0", "urn:r:0"), ("urn:l:1", "urn:r:1"), ("urn:l:2", "urn:r:1")]
    scored = score_run(tmp_path, gold_file)
    assert scored == score_alignment(links, cands, gold, [("urn:l:0", "urn:r:0")])
    assert (scored["true_positives"], scored["predicted"], scored["gold"], scored["mrr"]) == (1, 2, 2, 0.75)
    assert score_run(tmp_path, gold, seed_links=[]) == score_alignment(links, cands, gold)
    # A seed links file named relative to the folder the run started in, read from anywhere.
    project = tmp_path / "project"
    project.mkdir()
    (project / "seeds.tsv").write_text("urn:l:0\turn:r:0\n")
    (tmp_path / "run.json").write_text(json.dumps({"config": {"seed_links": "seeds.tsv"}, "working_directory": str(project)}))
    assert score_run(tmp_path, gold_file) == scored
    (project / "seeds.tsv").unlink()
    with pytest.raises(InputError, match=r"seeds.tsv: no such file or folder \(--seed-links of the run that .*run.json records\)"):
        score_run(tmp_path, gold_file)
    (tmp_path / "run.json").unlink()  # no run.json: no seed links
    assert score_run(tmp_path, gold)["predicted"] == 3


def test_pairs_naming_no_entity_say_which_or_that_the_columns_look_swapped(persons, tmp_path: Path) -> None:
    from helpers import cli

    from kgalign.evaluation.metrics import unknown_hint

    left, right = {"l1", "l2", "l3"}, {"r1", "r2", "r3"}
    assert unknown_hint([("l1", "r1")], left, right) == ""
    assert unknown_hint([("l1", "r1"), ("l2", "x9")], left, right) == "; the first: x9"
    swapped = unknown_hint([("r1", "l1"), ("r2", "l2"), ("l3", "x9")], left, right)
    assert swapped == "; 2 of them name a RIGHT entity first and a LEFT entity second: are the two columns swapped?"
    # Through a run: a gold file with its columns swapped.
    gold = tmp_path / "swapped.tsv"
    gold.write_text("".join(f"{b}\t{a}\n" for a, b in read_pairs(persons["gold"])))
    result = cli(["run", persons["left"], persons["right"], "-o", tmp_path / "out", "--gold", gold, "--quiet"])
    assert result.exit_code == 0, result.output
    assert "are the two columns swapped?" in " ".join(result.output.split())
