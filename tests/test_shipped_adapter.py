"""The adapters shipped in the package (``--adapter cross-domain``, ``--adapter pairwise``).

``--judge local`` on its default model loads the one trained on the question it asks
(pairwise, the default: ``pairwise``; ``--question choice``: ``cross-domain``) unless
``--adapter`` names another (``none``: the bare model). Each is found by name (a folder
of that name in the working directory wins), loads offline with the bundled SmolLM2 and
answers questions of the kind it was trained on; an unknown name stops before any work
with one line; the model card and training record travel with the weights.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import cli

from kgalign.errors import KgalignError
from kgalign.judging.adapters import SHIPPED, adapter_folder, adapter_name, judge_adapter, shipped_adapter, trained_pair_threshold, trained_question
from kgalign.judging.prompt import Question
from kgalign.model import EntityProfile

pytestmark = pytest.mark.timeout(600)


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_the_shipped_adapter_is_found_by_name_with_its_card(name: str, tmp_path: Path, monkeypatch) -> None:
    folder = Path(adapter_folder(name))
    assert folder == shipped_adapter(name) and folder.parent.name == "adapters"
    for file in ("adapter_config.json", "adapter_model.safetensors", "kgalign-finetune.json", "README.md"):
        assert (folder / file).is_file(), file
    record = json.loads((folder / "kgalign-finetune.json").read_text())
    card = (folder / "README.md").read_text()
    assert str(record["steps"]) in card and "test" in card
    if record["after"].get("auc") is not None:  # pairwise: ranked, its own threshold recorded
        assert record["after"]["auc"] > record["before"]["auc"] + 0.2 and f"{record['after']['best_threshold']:.3f}" in card
        assert record["extracted"]["rank"] == json.loads((folder / "adapter_config.json").read_text())["r"]
    else:
        assert record["after"]["accuracy"] > record["before"]["accuracy"]
    # A folder of the same name where the user works is theirs, and wins.
    monkeypatch.chdir(tmp_path)
    (tmp_path / name).mkdir()
    assert adapter_folder(name) == name
    with pytest.raises(KgalignError, match=f"not a shipped adapter: {', '.join(SHIPPED)}"):
        adapter_folder("no-such-adapter")


def _person(iri: str, name: str, born: str, town: str) -> EntityProfile:
    return EntityProfile(iri, name, [("birth date", born), ("town", town)])


def test_the_shipped_adapter_answers_offline() -> None:
    from kgalign.judging.local import LocalJudge

    judge = LocalJudge(adapter="cross-domain", batch_size=4)
    source = _person("l:1", "Margaret Holloway", "1961-03-14", "Wollongong")
    match = _person("r:7", "Margaret Holloway", "1961-03-14", "Wollongong")
    others = [
        _person("r:2", "Marcus Holland", "1975-09-02", "Perth"),
        _person("r:3", "Margot Galloway", "1988-11-30", "Cairns"),
        _person("r:4", "Peter Hollis", "1961-07-01", "Hobart"),
    ]
    questions = [
        Question(source, (match, *others)),  # A
        Question(source, (*others, match)),  # D
        Question(source, tuple(others)),  # none of these: D
    ]
    answers = judge.answer(questions)
    assert [a.choice for a in answers] == ["A", "D", "D"]
    assert judge.model_id.startswith("local:") and judge.adapter and judge.adapter.endswith("cross_domain")


def test_the_shipped_pairwise_adapter_scores_pairs_offline() -> None:
    from kgalign.judging.local import LocalJudge
    from kgalign.judging.pairwise import CANDIDATE_FIRST, SOURCE_FIRST, pair_question
    from kgalign.judging.vote import yes_probability

    judge = LocalJudge(adapter="pairwise", batch_size=4)
    source = _person("l:1", "Margaret Holloway", "1961-03-14", "Wollongong")
    match = _person("r:7", "Margaret Holloway", "1961-03-14", "Wollongong")
    other = _person("r:2", "Marcus Holland", "1975-09-02", "Perth")
    questions = [pair_question(source, candidate, first, None) for candidate in (match, other) for first in (SOURCE_FIRST, CANDIDATE_FIRST)]
    p = [yes_probability(a, q) for a, q in zip(judge.answer(questions), questions, strict=True)]
    assert all(x is not None for x in p), p
    threshold = trained_pair_threshold("local", None, None)  # the default model's pairwise adapter
    assert threshold is not None and min(p[:2]) > threshold > max(p[2:]), (p, threshold)
    assert judge.adapter and judge.adapter.endswith("pairwise")


def test_an_unknown_adapter_stops_the_run_before_any_work(persons, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = cli(["run", persons["left"], persons["right"], "-o", out, "--judge", "local", "--adapter", "no-such-adapter"])
    assert result.exit_code == 1
    assert "no-such-adapter: adapter folder not found (and not a shipped adapter: cross-domain, pairwise)" in result.output
    assert not out.exists()


def test_the_local_judge_loads_it_unless_told_otherwise() -> None:
    assert adapter_name("local", None, None) == "pairwise"  # the default question's
    assert judge_adapter("local", None, None) == str(shipped_adapter("pairwise"))
    assert adapter_name("local", None, None, "choice") == "cross-domain"  # the adapter trained on the question asked
    assert judge_adapter("local", None, None, "choice") == str(shipped_adapter("cross-domain"))
    assert adapter_name("local", None, "cross-domain", "pairwise") == "cross-domain"  # named: as given
    assert adapter_name("local", None, "none") is None and judge_adapter("local", None, "none") is None
    assert adapter_name("local", "/my/model", None) is None  # another base model: no SmolLM2 adapter
    assert adapter_name("vllm", None, None) is None and adapter_name("openai", None, None) is None
    assert adapter_name("none", None, "cross-domain") is None
    # The question each learnt, read from records older than its data.question.
    assert trained_question(shipped_adapter("pairwise")) == "pairwise" and trained_question(shipped_adapter("cross-domain")) == "choice"


def test_a_run_with_the_local_judge_uses_the_shipped_adapter(mini_persons, tmp_path: Path) -> None:
    (tmp_path / "mini").mkdir()
    pair = mini_persons(tmp_path / "mini", 6)
    base = ["run", pair["left"], pair["right"], "--gold", pair["gold"], "--judge", "local", "--no-gate", "--quiet", "--options", "2"]
    # Pairwise questions (the default): the pairwise adapter, and the threshold its training chose.
    default = cli([*base, "-o", tmp_path / "default", "--rounds", "2"])
    assert default.exit_code == 0, default.output
    run = json.loads((tmp_path / "default" / "run.json").read_text())
    assert run["adapter"] == "pairwise" and run["counts"]["llm_questions"] > 0
    assert run["effective"]["vote"]["pair_threshold"] == trained_pair_threshold("local", None, None)
    assert json.loads((tmp_path / "default" / "metrics.json").read_text())["f1"] == 1.0
    bare = cli([*base, "-o", tmp_path / "bare", "--adapter", "none", "--rounds", "1"])
    assert bare.exit_code == 0, bare.output
    assert json.loads((tmp_path / "bare" / "run.json").read_text())["adapter"] is None
    # Multiple-choice questions: the cross-domain adapter.
    choice = cli([*base, "-o", tmp_path / "choice", "--question", "choice"])
    assert choice.exit_code == 0, choice.output
    run = json.loads((tmp_path / "choice" / "run.json").read_text())
    assert run["adapter"] == "cross-domain" and run["counts"]["llm_questions"] > 0
    assert json.loads((tmp_path / "choice" / "metrics.json").read_text())["f1"] == 1.0
    # An adapter asked the other question than it learnt: one warning that names the option.
    other = cli([*base, "-o", tmp_path / "other", "--adapter", "cross-domain", "--rounds", "1"])
    assert other.exit_code == 0, other.output
    said = " ".join(other.output.split())
    assert "was trained on multiple-choice questions and this run asks pairwise ones: add --question choice" in said
    assert said.count("was trained on") == 1 and "was trained on" not in " ".join(default.output.split())


@pytest.mark.parametrize("name", SHIPPED)
def test_an_adapters_cache_identity_is_its_weights_not_its_card(name: str, tmp_path: Path) -> None:
    """Cached answers are keyed by the adapter's files: a new model card keeps them, new
    weights or settings do not (a README edit once made a rerun ask every question again)."""
    import shutil

    from kgalign.judging.local import _adapter_id

    copy = tmp_path / name
    shutil.copytree(shipped_adapter(name), copy)
    before = _adapter_id(str(copy))
    assert before is not None and before.startswith(f"{name}:")
    (copy / "README.md").write_text("# another card\n")
    (copy / "NOTES.txt").write_text("a note\n")
    assert _adapter_id(str(copy)) == before
    config = json.loads((copy / "adapter_config.json").read_text())
    (copy / "adapter_config.json").write_text(json.dumps({**config, "lora_alpha": config["lora_alpha"] * 2}))
    assert _adapter_id(str(copy)) != before
