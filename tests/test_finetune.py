"""Fine-tuning the judge: real SmolLM2, real LoRA training, on the bundled persons example.

Kept small (short prompts: two attributes, three options; a few steps on a few
questions) so that the whole module runs in a few CPU minutes. One CLI training run is
shared: its last checkpoint must have lowered the loss on the questions it trained on,
its adapter must load in the local judge and in `kgalign run --adapter`, and resuming
it must continue the step count.
"""

from __future__ import annotations

import json
import math
import random
import shutil
from pathlib import Path

import pytest
from helpers import cli as _cli
from helpers import relative_run, require

from kgalign.cli.main import main
from kgalign.config import AlignConfig, RetrievalConfig
from kgalign.finetune import DataConfig, gold_data, teacher_data
from kgalign.finetune.train import METADATA_FILE, batch_loss, load_base
from kgalign.judging.adapters import trained_pair_threshold, trained_question
from kgalign.judging.cache import question_key
from kgalign.judging.local import LocalJudge
from kgalign.review.votes import read_votes

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """torch on one thread in this module: where other processes load the cores, two
    OpenMP threads spin against each other and run several times slower than one."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


ATTRIBUTES = ["given_name", "surname"]
DATA_ARGS = ["--question", "choice", "--options", "3", "--permutations", "2", *(arg for a in ATTRIBUTES for arg in ("--attributes", a))]
# Adapters in the top 4 layers only: faster, and vLLM must load an adapter that skips layers.
TRAIN_ARGS = ["--batch-size", "2", "--max-train", "4", "--max-val", "2", "--eval-every", "0", "--lr", "5e-4", "--warmup-steps", "0", "--lora-layers", "4", "--threads", "1"]
STEPS = 6


def _gold_args(persons: dict[str, Path]) -> list:
    return ["finetune", persons["left"], persons["right"], "--links", persons["gold"]]


@pytest.fixture(scope="module")
def tuned(persons, tmp_path_factory) -> tuple[Path, str]:
    """An adapter from the gold recipe: 6 steps on 4 questions, checkpoints every 3 steps."""
    out = tmp_path_factory.mktemp("finetune") / "adapter"
    result = _cli([*_gold_args(persons), "-o", out, "--max-steps", STEPS, "--save-every", "3", *DATA_ARGS, *TRAIN_ARGS])
    assert result.exit_code == 0, result.output
    return out, result.output


@pytest.fixture(scope="module")
def tuned_judge(tuned) -> LocalJudge:
    return LocalJudge(adapter=str(tuned[0]), batch_size=4)


@pytest.fixture(scope="module")
def gold_questions(persons, embedder):
    """The questions the CLI run built, rebuilt through the library with the same settings."""
    align_config = AlignConfig(judge="none", attributes=list(ATTRIBUTES), retrieval=RetrievalConfig(k=10))
    return gold_data(persons["left"], persons["right"], persons["gold"], DataConfig(question="choice", options=3, permutations=2), align_config, embedder=embedder)


def test_cli_prints_accuracy_and_position_bias_and_writes_them(tuned, gold_questions) -> None:
    out, output = tuned
    assert "validation accuracy: before" in output and "wins before" in output and "wins after" in output
    meta = json.loads((out / METADATA_FILE).read_text())
    assert meta["recipe"] == "gold" and meta["steps"] == STEPS and meta["seed"] == 0
    assert meta["data"]["question"] == "choice" == trained_question(out)
    assert meta["base_model"]["name"] == "SmolLM2-135M-Instruct"
    assert meta["data"]["train"]["questions"] == 4 and meta["data"]["options"] == 3
    for when in ("before", "after"):
        figures = meta[when]
        assert figures["questions"] == 2 and 0.0 <= figures["accuracy"] <= 1.0
        assert sum(figures["position_wins"].values()) == 2
        assert set(figures["position_wins"]) <= {"A", "B", "C", "none"}
    # Questions of the gold recipe: real candidates, the answer at several positions, 'none' examples.
    examples = gold_questions.train + gold_questions.val
    positions = {e.position for e in examples}
    assert "none" in positions and len(positions - {"none"}) >= 2
    for e in examples:
        assert len(e.question.options) <= 3
        if e.target is None:
            assert e.answer == e.question.none_letter
        else:
            assert e.order[e.question.letters.index(e.answer)] == e.target
    assert not {e.source for e in gold_questions.train} & {e.source for e in gold_questions.val}
    assert (out / "checkpoint-3").is_dir() and (out / f"checkpoint-{STEPS}").is_dir()


def test_training_lowers_the_loss_on_its_questions(tuned, gold_questions, local_judge) -> None:
    out, _ = tuned
    meta = json.loads((out / METADATA_FILE).read_text())
    trained_on = gold_questions.train[:4]
    from dataclasses import replace

    assert replace(gold_questions, train=trained_on).fingerprint() == meta["data"]["fingerprint"]
    before = batch_loss(local_judge.model, local_judge.tokenizer, trained_on)
    last = LocalJudge(adapter=str(out / f"checkpoint-{STEPS}"))
    after = batch_loss(last.model, last.tokenizer, trained_on)
    assert after < before - 0.05, (before, after)


def test_lora_layers_puts_adapters_in_the_top_layers_only(tuned) -> None:
    from safetensors import safe_open

    out, _ = tuned
    with safe_open(str(out / "adapter_model.safetensors"), "pt") as weights:
        layers = {int(name.split(".layers.")[1].split(".")[0]) for name in weights.keys()}
    assert layers == {26, 27, 28, 29}  # SmolLM2-135M has 30 layers


def test_adapter_loads_in_the_local_judge_and_answers(tuned_judge, gold_questions, local_judge) -> None:
    questions = [e.question for e in gold_questions.val[:3]]
    answers = tuned_judge.answer(questions)
    assert [a.choice in q.letters for a, q in zip(answers, questions)] == [True] * len(questions)
    assert all(a.logprob is not None and a.logprob <= 0 for a in answers)
    # The answer cache tells the tuned judge from the untuned one.
    assert tuned_judge.cache_params()["adapter"].startswith("adapter:")
    key = lambda judge: question_key(judge.name, judge.model_id, judge.cache_params(), questions[0])  # noqa: E731
    assert key(tuned_judge) != key(local_judge)


def _excerpt(path: Path, keep: list[str], target: Path) -> Path:
    """The triples describing ``keep`` and the nodes they lead to (addresses, suburbs), as N-Triples."""
    from rdflib import Graph, URIRef

    graph, out = Graph().parse(path), Graph()
    frontier, seen = [URIRef(iri) for iri in keep], set()
    while frontier:
        node = frontier.pop()
        if node in seen:
            continue
        seen.add(node)
        for predicate, value in graph.predicate_objects(node):
            out.add((node, predicate, value))
            if isinstance(value, URIRef):
                frontier.append(value)
    out.serialize(target, format="nt", encoding="utf-8")
    return target


def test_run_with_the_adapter_records_it(tuned, persons, tmp_path) -> None:
    out, _ = tuned
    pairs = [line.split("\t") for line in persons["gold"].read_text().splitlines()[1:4]]
    left = _excerpt(persons["left"], [a for a, _ in pairs], tmp_path / "left.nt")
    right = _excerpt(persons["right"], [b.strip() for _, b in pairs], tmp_path / "right.nt")
    run_dir = tmp_path / "run"
    result = _cli([
        "run", left, right, "-o", run_dir, "--judge", "local", "--adapter", out, "--question", "choice", "--no-gate", "--rounds", "1",
        "--options", "3", "--attributes", "given_name", "--attributes", "surname", "--quiet",
    ])
    assert result.exit_code == 0, result.output
    run = json.loads((run_dir / "run.json").read_text())
    assert run["adapter"] == str(out) and run["config"]["adapter"] == str(out)
    assert run["judge"].startswith("local:") and run["counts"]["llm_questions"] == 3
    votes = list(read_votes(run_dir / "votes.jsonl"))
    assert len(votes) == 3 and all(r["rounds"][0]["choice"] in "ABCD" for r in votes)


def test_checkpointing_runs_the_backward_pass_down_to_the_lowest_adapter_only(small_lm) -> None:
    """With adapters in the top layer of SmolLM2 cut to two, and activations recomputed:
    the layer below the adapters gives an output that needs no gradient (transformers'
    checkpointing made the embeddings' output need one, and the backward pass ran through
    every layer), the top layer's does, and the adapters' gradients equal those of a
    run without checkpointing."""
    import torch

    from kgalign.finetune.train import TrainConfig, add_lora, enable_checkpointing

    base, tokenizer, _ = load_base(str(small_lm), "cpu")
    model = add_lora(base, TrainConfig(lora_layers=1, lora_dropout=0.0))
    model.train()
    batch = tokenizer(["Are these the same person? " * 8] * 2, return_tensors="pt")
    needs: dict[int, bool] = {}
    layers = model.base_model.model.model.layers
    hooks = [layer.register_forward_hook(lambda _m, _i, out, k=k: needs.__setitem__(k, out[0].requires_grad if isinstance(out, tuple) else out.requires_grad)) for k, layer in enumerate(layers)]

    def gradients() -> dict[str, torch.Tensor]:
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], logits_to_keep=1).logits
        logits[:, -1].float().logsumexp(-1).mean().backward()
        grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.requires_grad}
        model.zero_grad()
        return grads

    plain = gradients()
    enable_checkpointing(model)
    checkpointed = gradients()
    for hook in hooks:
        hook.remove()
    assert needs == {0: False, 1: True}
    assert plain.keys() == checkpointed.keys() and all(name.split(".layers.")[1].startswith("1.") for name in plain)
    assert all(torch.allclose(plain[name], checkpointed[name], atol=1e-6) for name in plain)


def test_resume_continues_the_step_count(tuned, persons, tmp_path) -> None:
    out, _ = tuned
    copy = tmp_path / "adapter"
    shutil.copytree(out, copy)
    refused = _cli([*_gold_args(persons), "-o", copy, "--max-steps", STEPS + 2, *DATA_ARGS, *TRAIN_ARGS])
    assert refused.exit_code == 1 and "--resume" in refused.output
    result = _cli([*_gold_args(persons), "-o", copy, "--max-steps", STEPS + 2, "--save-every", "3", "--resume", *DATA_ARGS, *TRAIN_ARGS])
    assert result.exit_code == 0, result.output
    assert f"resumed from step {STEPS}" in result.output
    meta = json.loads((copy / METADATA_FILE).read_text())
    assert meta["resumed_from"] == STEPS and meta["steps"] == STEPS + 2
    assert (copy / f"checkpoint-{STEPS + 2}" / "optimizer.pt").is_file()
    state = json.loads((copy / f"checkpoint-{STEPS + 2}" / "trainer_state.json").read_text())
    assert state["step"] == STEPS + 2
    # The 'before' figures are the original run's, not re-measured on the resumed model.
    assert meta["before"] == json.loads((out / METADATA_FILE).read_text())["before"]


@pytest.fixture(scope="module")
def teacher_run(persons, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("teacher")
    result = _cli([
        "run", persons["left"], persons["right"], "-o", out, "--judge", "none", "--options", "3", "--min-score", "0.8",
        "--attributes", "given_name", "--attributes", "surname", "--quiet",
    ])
    assert result.exit_code == 0, result.output
    return out


def test_teacher_recipe_builds_questions_from_a_real_log(teacher_run) -> None:
    votes = teacher_run / "votes.jsonl"
    records = {r["source"]: r for r in read_votes(votes)}
    matches = {s for s, r in records.items() if r["decision"] == "match"}
    nones = {s for s, r in records.items() if r["decision"] == "none" and r["candidates"]}
    assert matches and nones
    data = teacher_data(votes, DataConfig(question="choice", options=0, permutations=2, none_share=0.0), min_confidence=0.0)
    assert data.config.options == 3  # the run's, from its run.json
    examples = data.train + data.val
    assert {e.source for e in examples} == matches
    for e in examples:
        record = records[e.source]
        assert e.target == record["target"]
        assert e.order[e.question.letters.index(e.answer)] == record["target"]
        assert set(e.order) <= {c["iri"] for c in record["candidates"]}
        assert [list(a) for a in e.question.source.attributes] == record["source_attributes"]
    assert data.counts.get("records_profile_differs", 0) == 0
    assert not any(e.question.datamark for e in examples)

    # finetune --datamark trains on the questions `kgalign run --datamark` asks.
    marked = teacher_data(votes, DataConfig(question="choice", options=0, permutations=2, none_share=0.0, datamark=True), min_confidence=0.0)
    marked_examples = marked.train + marked.val
    assert [(e.source, e.order, e.answer) for e in marked_examples] == [(e.source, e.order, e.answer) for e in examples]
    assert all(e.question.datamark and "^" in e.question.messages()[0]["content"] for e in marked_examples)

    # 'none' decisions (top score under --min-score) have confidence 1 - score > 0.2.
    confident = teacher_data(votes, DataConfig(question="choice", options=0, permutations=1, none_share=0.0), min_confidence=0.2, include_none=True)
    taught = confident.train + confident.val
    assert {e.source for e in taught} == {s for s, r in records.items() if r["confidence"] >= 0.2 and r["candidates"] and r["decision"] in ("match", "none")}
    assert {e.source for e in taught if e.target is None} == nones
    assert all(e.answer == e.question.none_letter for e in taught if e.target is None)


def test_teacher_recipe_finds_the_graphs_of_a_run_from_any_folder(persons, tmp_path, monkeypatch) -> None:
    """--from-votes reads the graphs run.json names relative to the folder the run started in."""
    from kgalign.errors import KgalignError

    project = tmp_path / "project"
    out = relative_run(persons, project, monkeypatch)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    config = DataConfig(question="choice", options=0, permutations=1, none_share=0.0)
    data = teacher_data(out / "votes.jsonl", config, min_confidence=0.0)
    assert data.inputs["left"] == str(project / persons["left"].name) and data.inputs["right"] == str(project / persons["right"].name)
    assert data.train
    (project / persons["right"].name).unlink()
    with pytest.raises(KgalignError) as error:
        teacher_data(out / "votes.jsonl", config, min_confidence=0.0)
    assert str(error.value) == f"{project / persons['right'].name}: no such file or folder (RIGHT of the run that {out / 'run.json'} records)"


def test_teacher_recipe_on_the_command_line(teacher_run, tmp_path) -> None:
    out = tmp_path / "adapter"
    result = _cli([
        "finetune", "--from-votes", teacher_run / "votes.jsonl", "-o", out, "--question", "choice", "--min-confidence", "0", "--permutations", "2",
        "--max-steps", "0", "--max-val", "2", "--quiet",
    ])
    assert result.exit_code == 0, result.output
    meta = json.loads((out / METADATA_FILE).read_text())
    assert meta["recipe"] == "teacher" and meta["data"]["options"] == 3 and meta["steps"] == 0
    assert (out / "adapter_model.safetensors").is_file() and (out / "adapter_config.json").is_file()


def test_teacher_recipe_errors_are_one_line_before_any_work(teacher_run, tmp_path) -> None:
    """A votes log that is not UTF-8 text (gzipped), and an output under a file, stop in
    one line (exit 1, no traceback) before any question is built."""
    import gzip

    def failed(result, *names: object) -> None:
        assert result.exit_code == 1, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("kgalign: error: "), result.output
        assert all(str(name) in lines[0] for name in names), lines[0]

    packed = tmp_path / "votes.jsonl.gz"
    packed.write_bytes(gzip.compress((teacher_run / "votes.jsonl").read_bytes()))
    failed(_cli(["finetune", "--from-votes", packed, "-o", tmp_path / "adapter", "--quiet"]), f"{packed}:1: not UTF-8 text")
    run_json = teacher_run / "run.json"
    votes = teacher_run / "votes.jsonl"
    failed(_cli(["finetune", "--from-votes", votes, "--save-questions", run_json / "q.jsonl.gz", "--quiet"]), run_json, "--save-questions")
    failed(_cli(["finetune", "--from-votes", votes, "-o", run_json / "adapter", "--quiet"]), run_json)
    assert not (tmp_path / "adapter").exists()


def test_every_finetune_option_has_help() -> None:
    command = main.get_command(None, "finetune")
    missing = [p.name for p in command.params if getattr(p, "help", "x") in (None, "") and p.param_type_name == "option"]
    assert not missing
    usage = _cli(["finetune", "-o", "/nonexistent/never-created"])
    assert usage.exit_code == 2 and "--from-votes" in usage.output


@pytest.mark.vllm
def test_vllm_loads_the_adapter_and_answers_as_the_local_judge(tuned, gold_questions) -> None:
    """The same adapter in vLLM (float32, greedy, structured choice) and in the local judge (uncalibrated)."""
    import os

    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    require("vllm")
    from kgalign.judging.local import default_model_path
    from kgalign.judging.vllm_engine import VLLMJudge

    out, _ = tuned
    questions = [e.question for e in (gold_questions.val + gold_questions.train)[:6]]
    local = LocalJudge(adapter=str(out), calibrate=False, dtype="float32")
    engine = VLLMJudge(model=str(default_model_path()), adapter=str(out), dtype="float32", max_model_len=2048, enforce_eager=True)
    local_answers = [a.choice for a in local.answer(questions)]
    vllm_answers = [a.choice for a in engine.answer(questions)]
    assert all(choice in q.letters for choice, q in zip(vllm_answers, questions))
    # Greedy over the allowed letters is the local judge's argmax; allow one near-tie to flip.
    assert sum(a == b for a, b in zip(local_answers, vllm_answers)) >= len(questions) - 1, (local_answers, vllm_answers)


def test_base_model_keeps_float32_weights_and_takes_an_attention_implementation() -> None:
    """auto keeps float32 weights (bfloat16 is autocast arithmetic only); training under
    bfloat16 asks for eager attention, as SDPA's backward gave NaN on padded batches (H100)."""
    import torch

    base, tokenizer, path = load_base(None, "cpu", "auto", "eager")
    assert next(base.parameters()).dtype == torch.float32
    assert base.config._attn_implementation == "eager"
    assert tokenizer.padding_side == "left" and path.is_dir()
    half, _, _ = load_base(None, "cpu", "bfloat16")
    assert next(half.parameters()).dtype == torch.bfloat16
    assert half.config._attn_implementation != "eager"


def test_the_adapter_records_how_the_judge_decodes(tuned, tuned_judge, tmp_path) -> None:
    meta = json.loads((tuned[0] / METADATA_FILE).read_text())
    best = next(e for e in meta["history"] if e["step"] == meta["best_step"])
    assert meta["calibrate"] == (best["accuracy"] >= best["accuracy_raw"])
    assert tuned_judge.calibrate == meta["calibrate"]
    assert "the judge decodes" in tuned[1]
    # A recorded choice of no calibration is followed, unless the caller says otherwise.
    copy = tmp_path / "adapter"
    shutil.copytree(tuned[0], copy)
    (copy / METADATA_FILE).write_text(json.dumps({**meta, "calibrate": False}))
    assert LocalJudge(adapter=str(copy)).calibrate is False
    assert LocalJudge(adapter=str(copy), calibrate=True).calibrate is True


def test_full_fine_tuning_writes_a_model_the_judge_loads_and_resumes(persons, small_lm, tmp_path) -> None:
    """The training on SmolLM2 cut to two layers (conftest's ``small_lm``: mechanics only);
    the merge of an adapter into the weights on the whole model the adapter was made for."""
    from safetensors.numpy import load_file

    from kgalign.judging.local import default_model_path

    out = tmp_path / "full"
    common = ["finetune", persons["left"], persons["right"], "--links", persons["gold"], "-o", out, "--question", "pairwise", "--full",
              "--lr", "2e-5", "--batch-size", "2", "--max-val", "6", "--eval-every", "0", "--save-every", "2", "--threads", "1",
              "--attributes", "given_name", "--attributes", "surname"]  # fmt: skip
    args = [*common, "--model", small_lm]
    result = _cli([*args, "--max-steps", "2"])
    assert result.exit_code == 0, result.output
    assert f"kgalign run --model {out}" in result.output
    meta = json.loads((out / METADATA_FILE).read_text())
    assert meta["full"] is True and meta["lora"] is None and meta["steps"] == 2
    # Pairwise validation ranks: best F1 and ROC AUC recorded, printed, and what chose the model kept.
    best = next(e for e in meta["history"] if e["step"] == meta["best_step"])
    assert all(0.0 < e["best_f1"] <= 1.0 and 0.0 <= e["auc"] <= 1.0 for e in meta["history"])
    assert best["best_f1"] == max(e["best_f1"] for e in meta["history"])
    assert "pairwise ranking: best F1 before" in result.output
    # A whole model with its tokenizer, no adapter; every layer moved from the base model's weights.
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file() and not (out / "adapter_model.safetensors").exists()
    # The step-2 checkpoint's weights moved in every layer (the model kept is the best on validation, maybe step 0's).
    trained, small = load_file(str(out / "checkpoint-2" / "model.safetensors")), load_file(str(small_lm / "model.safetensors"))
    changed = {key.split(".")[2] for key in trained if key.startswith("model.layers.") and (trained[key] != small[key]).any()}
    assert changed == {"0", "1"}
    # Resumed from its checkpoint: the step count goes on.
    resumed = _cli([*args, "--max-steps", "3", "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert json.loads((out / METADATA_FILE).read_text())["resumed_from"] == 2
    # The folder is a model the local judge loads (--model alone means --judge local).
    run = _cli(["run", persons["left"], persons["right"], "-o", tmp_path / "run", "--model", out, "--question", "pairwise", "--options", "2"])
    assert run.exit_code == 0, run.output
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["judge"] == "local:full" and info["counts"]["llm_questions"] > 0
    # A judge trained on pairwise questions brings the threshold its validation chose, unless one is given.
    recorded = json.loads((out / METADATA_FILE).read_text())["after"]["best_threshold"]
    assert trained_pair_threshold("local", str(out), None) == recorded
    assert trained_pair_threshold("openai", str(out), None) is None  # a served model: no folder of kgalign's
    assert trained_pair_threshold("local", None, "cross-domain") is None  # an adapter trained on multiple-choice questions
    # Its record names the question it learnt; a run asking the other one is warned.
    assert json.loads((out / METADATA_FILE).read_text())["data"]["question"] == "pairwise" == trained_question(out)
    assert "add --question choice" not in " ".join(run.output.split())
    # Settled where the run builds its judge (the library's align(), not the CLI): the
    # config keeps "not given", the effective config has the threshold the vote used.
    assert info["config"]["vote"]["pair_threshold"] is None and info["effective"]["vote"]["pair_threshold"] == recorded
    beer = Path(__file__).resolve().parent / "data" / "pairs" / "beer_tiny.txt"
    # (A given --pair-threshold wins over it: tests/test_extract_adapter.py.)
    pairs = _cli(["pairs", beer, "--model", out, "--question", "pairwise", "--rounds", "1", "-o", tmp_path / "pairs"])
    assert pairs.exit_code == 0, pairs.output
    metrics = json.loads((tmp_path / "pairs" / "metrics.json").read_text())
    assert metrics["pair_threshold_from"] == "training" and metrics["trained_pair_threshold"] == recorded
    assert metrics["pair_threshold"] == recorded
    # From an adapter: its update is merged into the weights, which then all train.
    merged = _cli([*common, "--max-steps", "0", "--force", "--init-adapter", "cross-domain"])
    assert merged.exit_code == 0, merged.output
    from kgalign.judging.adapters import shipped_adapter

    lora = load_file(str(shipped_adapter("cross-domain") / "adapter_model.safetensors"))
    settings = json.loads((shipped_adapter("cross-domain") / "adapter_config.json").read_text())
    key, prefix = "model.layers.0.self_attn.q_proj.weight", "base_model.model.model.layers.0.self_attn.q_proj"
    update = (settings["lora_alpha"] / settings["r"]) * (lora[f"{prefix}.lora_B.weight"].astype("float32") @ lora[f"{prefix}.lora_A.weight"].astype("float32"))
    base = load_file(str(default_model_path() / "model.safetensors"))
    saved = load_file(str(out / "model.safetensors"))[key]
    assert abs(update).max() > 1e-3 and abs(saved - (base[key] + update)).max() < 1e-5


def test_pairwise_ranking_matches_scikit_learn() -> None:
    from sklearn.metrics import precision_recall_curve, roc_auc_score

    from kgalign.finetune.train import ranking

    rng = random.Random(7)
    for trial in range(40):
        n = rng.randint(2, 60)
        labels = [rng.random() < 0.35 for _ in range(n)]
        # Coarse probabilities: ties across labels, which neither metric may split.
        probabilities = [round(rng.random() * (0.6 if not label else 1.0), 1 if trial % 2 else 3) for label in labels]
        best_f1, threshold, auc = ranking(probabilities, labels)
        if all(labels) or not any(labels):
            assert (best_f1, threshold, auc) == (None, None, None)
            continue
        assert auc == pytest.approx(roc_auc_score(labels, probabilities), abs=1e-4)
        precision, recall, cuts = precision_recall_curve(labels, probabilities)
        f1s = [2 * p * r / (p + r) if p + r else 0.0 for p, r in zip(precision[:-1], recall[:-1])]
        assert best_f1 == pytest.approx(max(f1s), abs=1e-4)
        # The threshold reproduces that F1: pairs at or above it are the matches.
        chosen = [p >= threshold for p in probabilities]
        tp = sum(c and y for c, y in zip(chosen, labels))
        assert 2 * tp / (sum(chosen) + sum(labels)) == pytest.approx(best_f1, abs=1e-4)


def test_pairwise_validation_ranks_overall_and_per_source() -> None:
    from kgalign.finetune.data import Example
    from kgalign.finetune.train import _pairwise_ranking
    from kgalign.judging.pairwise import SOURCE_FIRST, pair_question
    from kgalign.model import EntityProfile

    source = EntityProfile("urn:l:1", "Ada Lovelace")
    examples, scores = [], []
    # Source "a" ranked perfectly, source "b" backwards; log-probabilities of yes (A) and no (B).
    for group, p_match, p_other in (("a", 0.9, 0.2), ("b", 0.3, 0.6)):
        for k, (answer, p) in enumerate((("A", p_match), ("B", p_other), ("B", p_other - 0.1))):
            question = pair_question(source, EntityProfile(f"urn:r:{group}{k}", f"R {group}{k}"), SOURCE_FIRST, None)
            examples.append(Example(question, answer, source.iri, question.options[0].iri if answer == "A" else None, group))
            scores.append({"A": math.log(p), "B": math.log(1 - p)})
    ranked = _pairwise_ranking(examples, scores)
    assert ranked["auc_by_source"] == {"a": 1.0, "b": 0.0}
    assert ranked["auc"] == 0.75 and ranked["best_f1"] == pytest.approx(2 / 3, abs=1e-4)
    # The best cut keeps 0.9 and leaves out 0.6: the threshold halfway between, in log-odds.
    assert ranked["best_threshold"] == pytest.approx(1 / (1 + math.sqrt((0.1 / 0.9) * (0.4 / 0.6))), abs=1e-6)


def test_the_threshold_lies_in_the_middle_of_the_best_gap_in_log_odds() -> None:
    from kgalign.finetune.train import ranking

    # Matches crowd near 1, non-matches near 0: the threshold sits between 0.98 and 0.2, not on 0.98.
    best_f1, threshold, _ = ranking([0.99, 0.98, 0.2, 0.1], [True, True, False, False])
    assert best_f1 == 1.0 and threshold == pytest.approx(1 / (1 + math.sqrt((0.02 / 0.98) * (0.8 / 0.2))), abs=1e-6)
    assert 0.2 < threshold < 0.98
    # The best cut keeps every pair (F1 0.8): nothing below it, so its lowest probability.
    assert ranking([0.9, 0.8, 0.1], [True, False, True])[:2] == (0.8, 0.1)
    # A gap too narrow for six decimals keeps the upper edge.
    assert ranking([0.5000004, 0.5000001], [True, False])[1] == 0.5000004


def test_the_summary_says_n_a_for_a_source_without_an_earlier_auc() -> None:
    from kgalign.finetune.train import Evaluation, FinetuneResult, summary_lines

    def evaluation(step: int, auc_by_source: dict[str, float]) -> Evaluation:
        return Evaluation(step, 0.8, 0.8, 10, {"A": 5, "none": 5}, {"A": 3, "none": 7}, {"A": 1.0, "none": 0.7},
                          {"a": 0.8, "b": 0.8}, 0.7, 0.4, 0.9, auc_by_source)  # fmt: skip

    data = {"recipe": "multi-dataset", "train": {"questions": 20, "sources": 4}, "val": {"sources": 2}}
    # Resumed from a checkpoint whose step-0 evaluation predates the per-source AUC: only "b" has one.
    result = FinetuneResult(Path("out"), evaluation(0, {"b": 0.55}), evaluation(9, {"a": 0.9, "b": 0.8}), 9, 9, "max_steps", 5, [], {"data": data, "full": True})
    lines = summary_lines(result)
    assert "source a: validation accuracy before 0.8000  after 0.8000; ROC AUC before n/a  after 0.9000" in lines
    assert "source b: validation accuracy before 0.8000  after 0.8000; ROC AUC before 0.5500  after 0.8000" in lines
