"""Gold formats and metrics."""

from __future__ import annotations

from pathlib import Path

import pytest

from kgalign.errors import InputError
from kgalign.evaluation.metrics import link_metrics, ranking_metrics, read_pairs
from kgalign.fusion.export import alignment_xml
from kgalign.model import Candidate, Candidates, Link


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
