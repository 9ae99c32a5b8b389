"""Corrections files: parsing and its errors, and `kgalign run --corrections` with real retrieval (the judge scripted where one is asked)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from click.testing import CliRunner
from rdflib import Graph
from rdflib.namespace import OWL

from kgalign.cli.main import main
from kgalign.review.corrections import (
    CORRECTIONS_VERSION,
    Correction,
    check_corrections,
    corrections_to_labels,
    read_corrections,
    write_corrections,
)
from kgalign.errors import InputError
from kgalign.evaluation.metrics import read_pairs
from kgalign.judging.base import clean_explanation
from kgalign.judging.testing import ScriptedJudge
from kgalign.config import AlignConfig
from kgalign.pipeline import align
from kgalign.config import RetrievalConfig
from kgalign.config import VoteConfig

L = "http://www.okkam.org/oaie/person1-Person"
R = "http://www.okkam.org/oaie/person2-Person"


def _write(tmp_path: Path, text: str, name: str = "corrections.jsonl") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _line(**fields) -> str:
    return json.dumps({"version": CORRECTIONS_VERSION, **fields})


def test_reads_every_action_and_turns_them_into_labels(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "# reviewed by hand\n\n"
        + _line(source="urn:l:1", action="accept", target="urn:r:1", judge_decision="match", reviewer="ann") + "\n"
        + _line(source="urn:l:2", action="reject", target="urn:r:9", note="  different\n birth   dates ") + "\n"
        + _line(source="urn:l:3", action="pick", target="urn:r:3") + "\n"
        + _line(source="urn:l:4", action="accept", target=None) + "\n",
    )
    corrections = read_corrections(path)
    assert [c.action for c in corrections] == ["accept", "reject", "pick", "accept"]
    assert [c.line for c in corrections] == [3, 4, 5, 6]
    assert corrections[1].note == "different birth dates"
    assert corrections_to_labels(path) == [("urn:l:1", "urn:r:1"), ("urn:l:2", None), ("urn:l:3", "urn:r:3"), ("urn:l:4", None)]
    decisions = [c.decision() for c in corrections]
    assert [(d.kind, d.target, d.confidence, d.human) for d in decisions] == [
        ("match", "urn:r:1", 1.0, True),
        ("none", None, 1.0, True),
        ("match", "urn:r:3", 1.0, True),
        ("none", None, 1.0, True),
    ]
    assert decisions[1].explanation == "different birth dates"
    copy = tmp_path / "copy.jsonl"
    write_corrections(corrections, copy)
    assert [(c.source, c.action, c.target, c.note) for c in read_corrections(copy)] == [
        (c.source, c.action, c.target, c.note) for c in corrections
    ]


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("{not json\n", 1, "not valid JSON"),
        ("[1, 2]\n", 1, "expected a JSON object, found list"),
        ('{"source": "urn:l:1", "action": "accept"}\n', 1, 'missing "version"'),
        ('\n{"version": 2, "source": "urn:l:1", "action": "accept"}\n', 2, "unsupported corrections version 2"),
        ('{"version": true, "source": "urn:l:1", "action": "accept"}\n', 1, "unsupported corrections version True"),
        ('{"version": 1, "action": "accept"}\n', 1, '"source" must be a non-empty IRI string'),
        ('{"version": 1, "source": "urn:l:1", "action": "maybe"}\n', 1, "\"action\" must be one of accept, reject, pick, found 'maybe'"),
        ('{"version": 1, "source": "urn:l:1", "action": "pick"}\n', 1, 'action "pick" needs a "target" IRI'),
        ('{"version": 1, "source": "urn:l:1", "action": "pick", "target": 5}\n', 1, '"target" must be an IRI string or null'),
        ('{"version": 1, "source": "urn:l:1", "action": "reject", "note": []}\n', 1, '"note" must be a string'),
        (
            '{"version": 1, "source": "urn:l:1", "action": "reject"}\n# again\n{"version": 1, "source": "urn:l:1", "action": "accept"}\n',
            3,
            "second correction for urn:l:1 (first on line 1)",
        ),
    ],
)
def test_parse_errors_are_one_line_naming_file_and_line(tmp_path: Path, text: str, line: int, message: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(InputError) as caught:
        read_corrections(path)
    error = str(caught.value)
    assert error.startswith(f"{path}:{line}: ")
    assert message in error
    assert "\n" not in error


def test_unreadable_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="missing.jsonl: cannot read the corrections file"):
        read_corrections(tmp_path / "missing.jsonl")
    binary = tmp_path / "binary.jsonl"
    binary.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(InputError, match="binary.jsonl: the corrections file is not UTF-8 text"):
        read_corrections(binary)


def test_check_names_the_line_of_an_unknown_iri(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    good = Correction("urn:l:1", "pick", "urn:r:2", line=1)
    check_corrections([good, Correction("urn:l:2", "reject", "urn:r:nowhere", line=2)], path, {"urn:l:1", "urn:l:2"}, {"urn:r:2"})
    with pytest.raises(InputError, match=r"c.jsonl:4: source urn:l:9 is not an entity of the left graph"):
        check_corrections([good, Correction("urn:l:9", "reject", line=4)], path, {"urn:l:1"}, {"urn:r:2"})
    with pytest.raises(InputError, match=r'c.jsonl:7: target urn:r:x of action "pick" is not an entity of the right graph'):
        check_corrections([Correction("urn:l:1", "pick", "urn:r:x", line=7)], path, {"urn:l:1"}, {"urn:r:2"})


@pytest.fixture(scope="module")
def mini(mini_persons, tmp_path_factory) -> dict[str, Path]:
    return mini_persons(tmp_path_factory.mktemp("mini"), 6)


@pytest.mark.parametrize("strategy", ["greedy", "assignment"])
def test_corrections_override_the_judge_which_never_sees_them(mini, embedder, tmp_path: Path, strategy: str, caplog) -> None:
    gold = read_pairs(mini["gold"])
    (a0, b0), (a1, b1), (a2, b2), (a3, b3) = gold[:4]
    path = _write(
        tmp_path,
        "\n".join(
            [
                _line(source=a0, action="reject", target=b0),
                # b3 is not a1's candidate (k=1): a person knows best
                _line(source=a1, action="pick", target=b3, note="checked the phone book"),
                _line(source=a2, action="accept", target=b2),
                _line(source=a3, action="accept", target=None),
            ]
        )
        + "\n",
    )
    # Takes the one candidate shown (k=1) for every source asked; scripts no explanations, so it has no 'explain'.
    judge = ScriptedJudge("A")
    config = AlignConfig(
        corrections=str(path),
        explain=True,
        resolve=strategy,
        retrieval=RetrievalConfig(k=1),
        vote=VoteConfig(rounds=1, options=1, gate=False),
    )
    with caplog.at_level(logging.WARNING, logger="kgalign.judging.vote"):
        result = align(mini["left"], mini["right"], config, embedder=embedder, judge=judge)
    corrected = {a0, a1, a2, a3}
    assert judge.sources and not corrected & set(judge.sources)
    assert set(judge.sources) == {a for a, _ in gold} - corrected
    by_source = {d.source: d for d in result.decisions}
    assert [by_source[a].human for a in (a0, a1, a2, a3)] == [True] * 4
    assert (by_source[a0].kind, by_source[a0].target) == ("none", None)
    assert (by_source[a1].kind, by_source[a1].target, by_source[a1].explanation) == ("match", b3, "checked the phone book")
    assert all(by_source[a].confidence == 1.0 and not by_source[a].rounds for a in corrected)
    assert b3 not in {c.iri for c in next(c for c in result.candidates if c.source == a1).items}
    links = {(link.left, link.right) for link in result.links}
    assert (a1, b3) in links and (a2, b2) in links
    assert not any(left in (a0, a3) for left, _ in links)
    assert result.counts["human"] == 4 and result.counts["judged"] == len(gold) - 4
    # the scripted judge has no 'explain': skipped with a warning, not an error
    assert "cannot explain" in caplog.text and result.counts["explained"] == 0
    records = {r["source"]: r for r in result.vote_records()}
    assert records[a1]["human"] is True and records[a1]["decision"] == "match" and records[a1]["rounds"] == []
    # votes.jsonl, written a record at a time, holds the same records in decision order.
    result.save(tmp_path / "out")
    written = [json.loads(line) for line in (tmp_path / "out" / "votes.jsonl").read_text(encoding="utf-8").splitlines()]
    assert written == json.loads(json.dumps(result.vote_records())) and [r["source"] for r in written] == [d.source for d in result.decisions]


def test_cli_applies_corrections_and_reports_bad_files(mini, tmp_path: Path) -> None:
    gold = read_pairs(mini["gold"])
    (a0, b0), (a1, b1) = gold[:2]
    runner = CliRunner()
    base = ["--log-level", "warning", "run", str(mini["left"]), str(mini["right"]), "--judge", "none", "--quiet"]
    path = _write(tmp_path, _line(source=a0, action="reject", target=b0, note="twins") + "\n" + _line(source=a1, action="pick", target=b0) + "\n")
    out = tmp_path / "out"
    result = runner.invoke(main, [*base, "-o", str(out), "--corrections", str(path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    links = {(str(s), str(o)) for s, o in Graph().parse(out / "links.ttl").subject_objects(OWL.sameAs)}
    assert (a0, b0) not in links and (a1, b0) in links and (a1, b1) not in links
    run = json.loads((out / "run.json").read_text())
    assert run["config"]["corrections"] == str(path) and run["counts"]["human"] == 2
    shown = runner.invoke(main, ["inspect", str(out / "votes.jsonl"), "--entity", a0]).output
    assert "flags: human" in shown and "reviewer note: twins" in shown and "decision: none" in shown

    bad = _write(tmp_path, _line(source=a0, action="reject") + "\n" + '{"version": 1, "source": "x", "action": "pick"}\n', "bad.jsonl")
    failed = runner.invoke(main, [*base, "-o", str(tmp_path / "o2"), "--corrections", str(bad)])
    assert failed.exit_code == 1
    assert failed.output.strip() == f'kgalign: error: {bad}:2: action "pick" needs a "target" IRI'

    foreign = _write(tmp_path, _line(source=a0, action="pick", target="http://example.org/not-there") + "\n", "foreign.jsonl")
    failed = runner.invoke(main, [*base, "-o", str(tmp_path / "o3"), "--corrections", str(foreign)])
    assert failed.exit_code == 1
    assert f"{foreign}:1: target http://example.org/not-there of action \"pick\" is not an entity of the right graph" in failed.output
    assert not (tmp_path / "o3" / "links.ttl").exists()


def test_clean_explanation_keeps_one_short_printable_line() -> None:
    assert clean_explanation("  The names and phone numbers agree. Also the street.\nB") == "The names and phone numbers agree."
    assert clean_explanation("\n\nsame\u202e soc\x00 sec id\n") == "same soc sec id\u2026"
    assert clean_explanation("The records differ in name, cut") == "The records differ in name, cut\u2026"
    long = clean_explanation("word " * 100)
    assert len(long) <= 200 and long.endswith("\u2026")
    assert clean_explanation("") == ""
