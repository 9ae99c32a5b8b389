"""Whether the judge is trusted on this data (kgalign.judging.check): before the contested sources, a pairwise judge
is asked about pairs the run is sure of without it (the gate's matches and their
runners-up), and a judge that ranks them worse than the bar (its training's validation
AUC, or one given) is not asked: every source is then decided as without a judge. On a
graph (the persons example) and on product tables (Abt-Buy), with judges whose ranking
is known (one that answers as the gate would, one that says yes to everything), and end
to end with the shipped pairwise adapter on the persons example."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import cli

from kgalign.config import AlignConfig
from kgalign.judging.adapters import TRAINING_RECORD, adapter_folder
from kgalign.judging.check import MIN_SOURCES, check_questions, required_auc
from kgalign.judging.testing import ScriptedJudge, pick
from kgalign.judging.vote import is_gated
from kgalign.pipeline import align, prepare

ABT_BUY = Path(__file__).parent / "data" / "abt_buy_mini"


def _config(**fields: object) -> AlignConfig:
    return AlignConfig.from_dict(fields)


def _inputs(kind: str, persons: dict[str, Path]) -> tuple[Path, Path, dict[str, object]]:
    if kind == "graph":
        return persons["left"], persons["right"], {}
    return ABT_BUY / "Abt.csv", ABT_BUY / "Buy.csv", {"id_column": "id"}


def _vote(kind: str, **fields: object) -> dict[str, object]:
    # The gate settles every product of the Abt-Buy excerpt at its default margin: a wider
    # one leaves 13 of its 30 to the judge.
    return {"question": "pairwise", **({"gate_margin": 0.2} if kind == "tables" else {}), **fields}


@pytest.fixture(scope="module")
def prepared(persons: dict[str, Path], embedder):
    return {kind: prepare(*_inputs(kind, persons)[:2], _config(judge="none", **_inputs(kind, persons)[2]), embedder) for kind in ("graph", "tables")}  # type: ignore[arg-type]


def test_the_bar_is_the_judges_training_or_the_one_given() -> None:
    shipped = json.loads((Path(adapter_folder("pairwise")) / TRAINING_RECORD).read_text())["after"]["auc"]
    pairwise = _config(judge="local", vote={"question": "pairwise"})
    assert required_auc(pairwise) == (shipped, "training") and 0.5 < shipped < 1.0
    assert required_auc(pairwise.replace(vote={"check_auc": 0.8})) == (0.8, "given")
    # No check: switched off, multiple-choice questions, no judge, a served model without a bar.
    assert required_auc(pairwise.replace(vote={"check_sources": 0})) is None
    assert required_auc(_config(judge="local")) == (shipped, "training")  # pairwise: the default question
    assert required_auc(_config(judge="local", vote={"question": "choice"})) is None
    assert required_auc(_config(judge="none", vote={"question": "pairwise"})) is None
    assert required_auc(_config(judge="openai", vote={"question": "pairwise"})) is None
    assert required_auc(_config(judge="openai", vote={"question": "pairwise", "check_auc": 0.9})) == (0.9, "given")
    # The bare model has no training record; a judge object brings none.
    assert required_auc(pairwise.replace(adapter="none")) is None
    assert required_auc(_config(judge="none", vote={"question": "pairwise"}), judge_given=True) is None
    assert required_auc(_config(judge="none", vote={"question": "pairwise", "check_auc": 0.7}), judge_given=True) == (0.7, "given")


@pytest.mark.parametrize("kind", ["graph", "tables"])
def test_the_questions_are_the_gates_matches_and_their_runners_up(prepared, kind: str) -> None:
    data = prepared[kind]
    config = _config(judge="local", vote={"question": "pairwise"})
    gated = {c.source: c for c in data.candidates if c.items and is_gated(c, config.vote)}
    examples, sources = check_questions(data.candidates, data.left_profiles, data.right_profiles, config, {}, contested=3)
    assert sources == MIN_SOURCES <= len(gated)  # as many as the contested sources, at least MIN_SOURCES
    by_source: dict[str, list] = {}
    for example in examples:
        by_source.setdefault(example.source, []).append(example)
    assert len(by_source) == sources and set(by_source) <= set(gated)
    for source, asked in by_source.items():
        top = gated[source].items[0].iri
        yes = [e for e in asked if e.answer == "A"]
        # One question a pair, in one record order: the gate's match (yes) and its runners-up (no).
        assert [e.question.options[0].iri for e in yes] == [top] and 1 <= len(asked) - 1 <= 2
        assert {e.question.options[0].iri for e in asked if e.answer == "B"} <= {item.iri for item in gated[source].items[1:3]}
        assert all(e.question.pairwise for e in asked)
    many, _ = check_questions(data.candidates, data.left_profiles, data.right_profiles, config.replace(vote={"check_sources": 12}), {}, contested=50)
    assert len({e.source for e in many}) == min(12, len(gated))


def _as_the_gate(candidates) -> ScriptedJudge:
    """Yes to each source's retrieval first, no to the rest: the run's confident pairs ranked perfectly."""
    return ScriptedJudge({c.source: pick(c.items[0].iri) for c in candidates if c.items}, default=None)


@pytest.mark.parametrize("kind", ["graph", "tables"])
def test_a_judge_that_fails_the_check_is_not_asked_and_retrieval_decides(prepared, persons: dict[str, Path], embedder, kind: str) -> None:
    left, right, options = _inputs(kind, persons)
    base = _config(judge="none", vote=_vote(kind, check_auc=0.9), **options)  # type: ignore[arg-type]
    without = align(left, right, base, embedder)
    says_yes = ScriptedJudge({}, default="yes")  # every pair the same: AUC 0.5
    result = align(left, right, base, embedder, judge=says_yes)
    check = result.judge_check
    assert check is not None and not check["passed"] and check["auc"] == 0.5 and check["required_from"] == "given"
    # Only the check's questions were asked, each about a confident source; decisions and links are --judge none's.
    contested = {d.source for d in without.decisions if not d.gated}
    assert len(says_yes.sources) == check["questions"] == result.counts["check_questions"] == result.counts["llm_questions"]
    assert not set(says_yes.sources) & set(contested)
    assert [(link.left, link.right) for link in result.links] == [(link.left, link.right) for link in without.links]
    assert not any(d.rounds for d in result.decisions) and any(w.startswith("judge check on") for w in result.warnings)


@pytest.mark.parametrize("kind", ["graph", "tables"])
def test_a_judge_that_passes_the_check_decides_the_contested_sources(prepared, persons: dict[str, Path], embedder, kind: str) -> None:
    left, right, options = _inputs(kind, persons)
    config = _config(judge="none", vote=_vote(kind, check_auc=0.9, rounds=2), **options)  # type: ignore[arg-type]
    judge = _as_the_gate(prepared[kind].candidates)
    result = align(left, right, config, embedder, judge=judge)
    check = result.judge_check
    assert check is not None and check["passed"] and check["auc"] == 1.0
    assert result.counts["llm_questions"] > check["questions"] and any(d.rounds for d in result.decisions)


def test_the_shipped_judge_checked_end_to_end(persons: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = cli(["run", persons["left"], persons["right"], "-o", out, "--gold", persons["gold"], "--judge", "local", "--question", "pairwise", "--options", "2", "--rounds", "1"])
    assert result.exit_code == 0, result.output
    info = json.loads((out / "run.json").read_text())
    check = info["judge_check"]
    # The persons are like what it was trained on: it ranks the confident pairs above its training's bar.
    assert check["required_from"] == "training" and check["passed"] and check["auc"] >= check["required"]
    assert check["sources"] >= MIN_SOURCES and info["counts"]["check_questions"] == check["questions"] > 0
    assert info["counts"]["judged"] > 0 and info["stages"]["check"]["seconds"] > 0
    assert "checked      the judge on" in result.output and "trusted" in result.output
