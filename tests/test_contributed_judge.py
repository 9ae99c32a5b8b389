"""A contributor adds a judge backend in one file plus one registration line, and
`kgalign run` uses it: choice, flags, config and votes come from the registry."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import cli

from kgalign import JudgeOption, register_judge
from kgalign.judging.base import JUDGES


@pytest.fixture
def contributed() -> Iterator[None]:
    # The one registration line (tests/contributed_judge.py is the one file):
    register_judge("word-overlap", "contributed_judge", "WordOverlapJudge", "labels' shared words", options=(JudgeOption("min_shared", int, "Words an option must share with the source.", 0, 100),))
    yield
    JUDGES.pop("word-overlap")


def test_registered_backend_runs_from_the_command_line(contributed: None, persons: dict[str, Path], tmp_path: Path) -> None:
    shown = cli(["run", "--help-all"]).output
    assert "word-overlap" in shown and "--min-shared" in shown

    out = tmp_path / "out"
    args = ["run", persons["left"], persons["right"], "-o", out, "--judge", "word-overlap", "--min-shared", "2", "--no-gate", "--quiet"]
    result = cli([*args, "--gold", persons["gold"]])
    assert result.exit_code == 0, result.output

    run = json.loads((out / "run.json").read_text())
    assert run["judge"] == "word-overlap:min2"
    assert run["config"]["judge"] == "word-overlap" and run["config"]["judge_options"] == {"min_shared": 2}
    records = [json.loads(line) for line in (out / "votes.jsonl").read_text().splitlines()]
    rounds = [r for record in records for r in record["rounds"]]
    assert len(rounds) >= 2 * 60 and all(r["raw"] in "ABCDEF" for r in rounds)
    assert {r["choice"] for r in rounds} - {"F"}, "the backend's answers reached the vote"
    assert run["counts"]["llm_questions"] == len(rounds)
    # A person shares its id number, suburb and postcode with its counterpart only.
    assert run["metrics"]["f1"] > 0.9


def test_flags_of_another_backend_are_refused(contributed: None, persons: dict[str, Path], tmp_path: Path) -> None:
    result = cli(["run", persons["left"], persons["right"], "-o", tmp_path / "out", "--judge", "local", "--min-shared", "2"])
    assert result.exit_code == 1
    assert "--min-shared is not an option of --judge local" in result.output
    assert not (tmp_path / "out").exists()
