"""`kgalign run --adapt`: the judge fine-tuned on the run's own confident decisions before
it is asked (kgalign.finetune.adapt). The teacher labels on two kinds of input (an RDF
graph and product tables), the questions they make, a short real training in a run, the
adapter taken again by a second start and by `kgalign rerun`, an interrupted training
resumed, and the refusals. The trainings run on SmolLM2 cut to two layers (conftest's
``small_lm``): they test the mechanics, which any model shows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import cli

from kgalign.config import AlignConfig
from kgalign.finetune.adapt import MIN_MATCHES, adapt_judge, adaptation_data, confident_labels
from kgalign.judging.vote import is_gated
from kgalign.model import Decision
from kgalign.pipeline import align, prepare

ABT_BUY = Path(__file__).parent / "data" / "abt_buy_mini"


def _config(model: Path | None = None, **adapt: object) -> AlignConfig:
    return AlignConfig.from_dict({"judge": "local", "model": str(model) if model else None, "adapter": "none", "vote": {"question": "pairwise"}, "adapt": {"enabled": True, **adapt}})


@pytest.fixture(scope="module")
def persons_prepared(persons: dict[str, Path], embedder):
    return prepare(persons["left"], persons["right"], _config(), embedder)


@pytest.fixture(scope="module")
def tables_prepared(embedder):
    config = _config().replace(id_column="id")
    return prepare(ABT_BUY / "Abt.csv", ABT_BUY / "Buy.csv", config, embedder)


@pytest.mark.parametrize("which", ["persons_prepared", "tables_prepared"])
def test_the_teacher_is_the_gates_rule_and_a_reviewer_on_a_graph_and_on_tables(which: str, request: pytest.FixtureRequest) -> None:
    prepared = request.getfixturevalue(which)
    config = _config()
    labels = confident_labels(prepared.candidates, config, {}, limit=10_000)
    gated = {c.source: c.items[0].iri for c in prepared.candidates if c.items and is_gated(c, config.vote)}
    assert labels == gated and len(labels) >= MIN_MATCHES
    # --no-gate asks every source, but the gate's rule still says which are confident.
    assert confident_labels(prepared.candidates, config.replace(vote={"gate": False}), {}, limit=10_000) == labels
    # A reviewer's decision is taken whatever the gate says; the sample is fixed by the seed.
    some = next(iter(labels))
    human = {some: Decision(source=some, kind="none", target=None, confidence=1.0, human=True)}
    assert confident_labels(prepared.candidates, config, human, limit=10_000)[some] is None
    sample = confident_labels(prepared.candidates, config, {}, limit=5)
    assert len(sample) == 5 and set(sample) <= set(labels)
    assert sample == confident_labels(prepared.candidates, config, {}, limit=5)
    assert sample != confident_labels(prepared.candidates, config.replace(seed=1), {}, limit=5)


@pytest.mark.parametrize("question", ["pairwise", "choice"])
def test_the_questions_are_asked_as_the_run_asks_them(persons_prepared, question: str) -> None:
    config = _config().replace(vote={"question": question})
    data = adaptation_data(persons_prepared, config)
    confident = data.counts["confident_matches"]
    assert confident >= MIN_MATCHES
    examples = data.train + data.val
    # Validation holds whole sources, never a source also trained on.
    assert data.val and not {e.source for e in data.val} & {e.source for e in data.train}
    if question == "pairwise":
        assert all(e.question.pairwise for e in examples)
        yes = [e for e in examples if e.answer == "A"]
        no = [e for e in examples if e.answer == "B"]
        # Each pair in both record orders; at most two non-matches a match.
        assert len(yes) == 2 * confident and 0 < len(no) <= 2 * len(yes)
        orders = {(e.source, e.option_iri): set() for e in examples}
        for e in examples:
            orders[(e.source, e.option_iri)].add(e.question.candidate_first)
        assert all(seen == {True, False} for seen in orders.values())
        # Each "yes" is the gate's match, each "no" one of the source's other candidates.
        shown = {c.source: [item.iri for item in c.items] for c in persons_prepared.candidates}
        assert all(e.target == e.question.options[0].iri == shown[e.source][0] for e in yes)
        assert all(e.target is None and e.question.options[0].iri in shown[e.source][1:] for e in no)
    else:
        assert all(not e.question.pairwise and len(e.question.options) <= config.vote.options for e in examples)


def test_a_run_adapts_its_judge_records_it_and_takes_it_again(persons: dict[str, Path], small_lm: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["run", persons["left"], persons["right"], "-o", out, "--gold", persons["gold"], "--question", "pairwise", "--model", small_lm,
            "--adapt", "--adapt-steps", "2", "--adapt-sources", "10", "--adapter", "none", "--options", "2", "--rounds", "1"]  # fmt: skip
    result = cli(args)
    assert result.exit_code == 0, result.output
    info = json.loads((out / "run.json").read_text())
    adapt = info["adapt"]
    assert info["config"]["judge"] == "local"  # --adapt without --judge: the local judge
    assert adapt["steps"] == 2 and adapt["sources"] == 10 and not adapt["reused"] and adapt["started_from"] is None
    assert adapt["train_questions"] > 0 and 0 < adapt["val_questions"] <= 64 and 0.0 <= adapt["accuracy_after"] <= 1.0
    # Pairwise questions: the kept adapter ranks the held-out pairs at least as well (best F1 chose it).
    assert adapt["f1_before"] is not None and 0.0 < adapt["f1_before"] <= adapt["f1_after"] <= 1.0
    assert info["stages"]["adapt"]["seconds"] > 0 and info["adapter"] == str(out / "adapter")
    metadata = json.loads((out / "adapter" / "kgalign-finetune.json").read_text())
    assert metadata["recipe"] == "adapt" and metadata["steps"] == 2
    # Its record holds a threshold chosen on the run's easiest sources; the run asks it at one half.
    assert metadata["after"]["best_threshold"] is not None and info["effective"]["vote"]["pair_threshold"] == 0.5
    assert "adapted      on 10 confident sources" in result.output and "held-out best F1" in result.output
    asked = info["counts"]["llm_questions"]
    assert asked > 0
    # Started again: the adapter trained on the same questions is taken as it is, and so every answer is the cache's.
    again = cli([*args, "--force"])
    assert again.exit_code == 0, again.output
    info2 = json.loads((out / "run.json").read_text())
    assert info2["adapt"]["reused"] and info2["counts"]["llm_questions"] == 0 and info2["counts"]["cache_hits"] == asked
    assert "taken from an earlier start" in again.output
    # A rerun elsewhere carries the adapter over: no training, the same links.
    rerun = cli(["rerun", out, "-o", tmp_path / "rerun"])
    assert rerun.exit_code == 0, rerun.output
    info3 = json.loads((tmp_path / "rerun" / "run.json").read_text())
    assert info3["adapt"]["reused"] and info3["adapt"]["folder"] == str(tmp_path / "rerun" / "adapter")
    assert (tmp_path / "rerun" / "links.ttl").read_text() == (out / "links.ttl").read_text()


def test_an_interrupted_adaptation_resumes_from_its_checkpoint(persons_prepared, small_lm: Path, tmp_path: Path) -> None:
    config = _config(small_lm, steps=1, sources=10, folder=str(tmp_path / "adapter")).replace(device="cpu")
    first = adapt_judge(persons_prepared, config)
    assert first is not None and first.steps == 1 and (tmp_path / "adapter" / "checkpoint-1").is_dir()
    # More steps asked of the same questions: training goes on from step 1, not from the start.
    longer = adapt_judge(persons_prepared, config.replace(adapt={"steps": 2}))
    assert longer is not None and longer.steps == 2 and not longer.reused
    metadata = json.loads((tmp_path / "adapter" / "kgalign-finetune.json").read_text())
    assert metadata["resumed_from"] == 1
    # Other questions (another sample of sources): the folder's training starts over.
    other = adapt_judge(persons_prepared, config.replace(adapt={"steps": 1, "sources": 12}))
    assert other is not None and other.sources == 12
    assert json.loads((tmp_path / "adapter" / "kgalign-finetune.json").read_text())["resumed_from"] is None


def test_adaptation_starts_from_the_runs_own_adapter() -> None:
    """LoRA and full adaptation train on from the adapter the run would ask: the shipped one
    for its question unless --adapter names another (tests/test_recipe.py trains on from
    an adapter; tests/test_finetune.py merges an adapter into the weights that train)."""
    from kgalign.finetune.adapt import train_config
    from kgalign.judging.adapters import shipped_adapter

    def started_from(**config: object) -> str | None:
        return train_config(AlignConfig.from_dict({"judge": "local", "adapt": {"enabled": True}, **config})).init_adapter

    assert started_from(vote={"question": "pairwise"}) == str(shipped_adapter("pairwise"))
    assert started_from(vote={"question": "choice"}) == str(shipped_adapter("cross-domain"))
    assert started_from(vote={"question": "pairwise"}, adapter="cross-domain") == str(shipped_adapter("cross-domain"))
    assert started_from(vote={"question": "pairwise"}, adapter="none") is None  # the bare model: a fresh adapter
    full = train_config(AlignConfig.from_dict({"judge": "local", "vote": {"question": "pairwise"}, "adapt": {"enabled": True, "method": "full"}}))
    assert full.full and full.init_adapter == str(shipped_adapter("pairwise")) and full.lr == 2e-5


def test_too_few_confident_matches_leave_the_judge_as_it_is(persons: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # A gate margin no source reaches: nothing is confident, so nothing is trained and every source is asked.
    five = tuple(sorted({c.source for c in prepare(persons["left"], persons["right"], AlignConfig()).candidates})[:5])
    config = _config(steps=2).replace(vote={"gate_margin": 1.0, "rounds": 1}, only_left=five, device="cpu")
    with caplog.at_level("WARNING"):
        result = align(persons["left"], persons["right"], config)
    assert result.adaptation is None and result.effective.adapter == "none"
    assert "--adapt: 0 confident matches" in caplog.text
    assert result.counts["judged"] == len(result.decisions)


def test_adapt_is_refused_where_it_cannot_train(persons: dict[str, Path], tmp_path: Path) -> None:
    refused = cli(["run", persons["left"], persons["right"], "-o", tmp_path / "o", "--judge", "openai", "--llm-url", "http://127.0.0.1:9/v1", "--adapt"])
    assert refused.exit_code == 2 and "--adapt" in refused.output and "needs --judge local or vllm" in refused.output
    assert not (tmp_path / "o").exists()
    dedup = cli(["dedup", persons["left"], "-o", tmp_path / "d", "--adapt"])
    assert dedup.exit_code != 0 and "--adapt" in dedup.output


def test_full_adaptation_trains_every_weight_and_the_judge_loads_that_model(persons: dict[str, Path], small_lm: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["run", persons["left"], persons["right"], "-o", out, "--question", "pairwise", "--adapt", "--adapt-method", "full", "--model", small_lm, "--adapter", "none",
            "--adapt-steps", "1", "--adapt-sources", "10", "--options", "2", "--rounds", "1"]  # fmt: skip
    result = cli(args)
    assert result.exit_code == 0, result.output
    info = json.loads((out / "run.json").read_text())
    # From the bare model named (the shipped adapter is merged in where none is named: test_adaptation_starts_from_the_runs_own_adapter).
    assert info["adapt"]["method"] == "full" and info["adapt"]["started_from"] is None
    assert info["effective"]["model"] == str(out / "adapter") and info["judge"] == "local:adapter"
    assert (out / "adapter" / "model.safetensors").is_file() and "every weight" in result.output
    metadata = json.loads((out / "adapter" / "kgalign-finetune.json").read_text())
    assert metadata["full"] and metadata["train"]["lr"] == 2e-5
    # Started again: the same model, so every answer comes from the cache (its training record keys them).
    again = cli([*args, "--force"])
    assert again.exit_code == 0, again.output
    info2 = json.loads((out / "run.json").read_text())
    assert info2["adapt"]["reused"] and info2["counts"]["llm_questions"] == 0 and info2["counts"]["cache_hits"] == info["counts"]["llm_questions"]
