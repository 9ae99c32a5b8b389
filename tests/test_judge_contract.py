"""Every judge backend keeps the same contract (kgalign.judging.base.Judge), tested once for all.

In the spirit of PyKEEN's generic test cases per base class: one parametrised test runs
each backend registered in ``JUDGES``, and the library's ScriptedJudge, through the
same checks on real questions from examples/persons. Each backend is built as its own
tests build it, for real: ``local`` is the bundled SmolLM2 on the CPU, ``openai`` talks
to the local HTTP server of tests/openai_server.py, ``vllm`` runs the engine on the tiny
random-weight Llama of tests/test_vllm.py (marked ``vllm``).

A new backend needs a case here: :func:`test_every_registered_backend_has_a_contract_case`
fails until ``BACKENDS`` has a builder for each name in ``JUDGES``.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from openai_server import FakeOpenAIServer, source_line
from test_vllm import MAX_MODEL_LEN, tiny_model, vllm_module  # noqa: F401 (fixtures of the vllm case)

from kgalign.io.entities import load_entities
from kgalign.judging.base import JUDGES, MAX_EXPLANATION_CHARS, Answer, Judge, make_judge
from kgalign.judging.cache import question_key
from kgalign.judging.prompt import Question
from kgalign.judging.testing import ScriptedJudge
from kgalign.selection.predicates import build_profiles, choose_predicates, predicate_stats

SCRIPTED = "ScriptedJudge"  # the case of kgalign.judging.testing.ScriptedJudge (not a registered name)
INVALID_REPLY = "Neither, I would say."


@pytest.fixture(scope="module")
def questions(persons: dict[str, Path]) -> list[Question]:
    """Five questions from examples/persons, of 1 to 5 options (so of different lengths), one datamarked."""
    profiles = []
    for side in ("left", "right"):
        _, table = load_entities(persons[side], side)
        profiles.append(build_profiles(table, choose_predicates(predicate_stats(table))))
    left, right = profiles
    return [
        Question(source=left[i], options=tuple(right[(i + shift) % len(right)] for shift in range(1 + i)), datamark=i == 3)
        for i in range(5)
    ]


@pytest.fixture(scope="module")
def openai_server(questions: list[Question]) -> Iterator[FakeOpenAIServer]:
    """The local OpenAI-compatible server; it answers the third question with no letter at all."""
    with FakeOpenAIServer(replies={source_line(questions[2].messages()): INVALID_REPLY}) as server:
        yield server


def _local(request: pytest.FixtureRequest) -> Judge:
    return request.getfixturevalue("local_judge")  # LocalJudge(batch_size=8), loaded once per session


def _openai(request: pytest.FixtureRequest) -> Judge:
    server: FakeOpenAIServer = request.getfixturevalue("openai_server")
    return make_judge("openai", base_url=server.url, llm_model=server.model, timeout=5.0, retries=1, backoff=0.01)


def _vllm(request: pytest.FixtureRequest) -> Judge:
    model = request.getfixturevalue("tiny_model")  # skips where vllm cannot be imported
    return make_judge("vllm", model=str(model), max_model_len=MAX_MODEL_LEN, dtype="float32")


def _scripted(request: pytest.FixtureRequest) -> Judge:
    def script(question: Question) -> str | None:
        if question.datamark:
            return "maybe B?"  # an invalid vote
        return None if len(question.options) == 1 else question.letters[len(question.options) // 2]

    return ScriptedJudge(script, logprob=-0.5, explanations=lambda question, letter: f"Option {letter} was chosen.")


# One builder per registered backend: a backend added to JUDGES must be added here.
BACKENDS: dict[str, Callable[[pytest.FixtureRequest], Judge]] = {"local": _local, "openai": _openai, "vllm": _vllm}
MARKS = {"vllm": (pytest.mark.vllm, pytest.mark.timeout(900))}
CASES = [pytest.param(name, marks=MARKS.get(name, ()), id=name) for name in sorted(set(JUDGES) | set(BACKENDS))]
CASES.append(pytest.param(SCRIPTED, id=SCRIPTED))


def test_every_registered_backend_has_a_contract_case() -> None:
    missing = sorted(set(JUDGES) - set(BACKENDS))
    assert not missing, (
        f"judge backend(s) {', '.join(missing)} registered in kgalign.judging.base.JUDGES have no contract case: "
        "add a builder to BACKENDS in tests/test_judge_contract.py (a test that registers a backend for itself "
        "should undo it: monkeypatch.setitem(JUDGES, ...))"
    )
    stale = sorted(set(BACKENDS) - set(JUDGES))
    assert not stale, f"BACKENDS builds {', '.join(stale)}, which no longer is in JUDGES"


@pytest.mark.parametrize("case", CASES)
def test_judge_keeps_the_contract(case: str, request: pytest.FixtureRequest, questions: list[Question]) -> None:
    if case == SCRIPTED:
        judge = _scripted(request)
    else:
        assert case in BACKENDS, f"no contract case for the judge backend {case!r}: add a builder to BACKENDS"
        judge = BACKENDS[case](request)
        # The registry builds this very class, and names it as the backend names itself
        # (the answer cache keys on the name; run.json reports the model id).
        spec = JUDGES[case]
        factory = getattr(importlib.import_module(spec.module), spec.attribute)
        if isinstance(factory, type):
            assert isinstance(judge, factory)
        assert judge.name == case

    assert isinstance(judge.name, str) and judge.name.strip()
    assert isinstance(judge.model_id, str) and judge.model_id.strip()

    params = judge.cache_params()
    assert isinstance(params, dict)
    json.dumps(params, sort_keys=True)  # JSON-serialisable, as the answer cache's key needs
    assert judge.cache_params() == params  # and the same every time it is asked
    keys = {question_key(judge.name, judge.model_id, params, q) for q in questions}
    assert len(keys) == len(questions)

    answers = judge.answer(questions)
    assert isinstance(answers, list) and len(answers) == len(questions)
    for question, answer in zip(questions, answers):
        assert isinstance(answer, Answer)
        assert isinstance(answer.raw, str)
        assert answer.choice is None or answer.choice in question.letters, (answer, question.letters)
        if answer.logprob is not None:
            assert isinstance(answer.logprob, float) and answer.logprob <= 0.0
        assert isinstance(answer.prompt_tokens, int) and answer.prompt_tokens >= 0
        assert isinstance(answer.answer_tokens, int) and answer.answer_tokens >= 0
        assert answer.error is None and not answer.cached

    # In order: the answers to the questions reversed are the answers reversed. Prompt
    # lengths tell the questions apart (a model's choice may shift with the batch).
    lengths = [a.prompt_tokens for a in answers]
    if any(lengths):
        assert len(set(lengths)) == len(lengths)
        assert [a.prompt_tokens for a in judge.answer(questions[::-1])] == lengths[::-1]
    assert judge.answer([]) == []

    explain = getattr(judge, "explain", None)  # optional: kgalign run --explain
    if explain is not None:
        chosen = [a.choice or q.none_letter for q, a in zip(questions, answers)]
        reasons = explain(questions, chosen)
        assert isinstance(reasons, list) and len(reasons) == len(questions)
        for reason in reasons:
            assert isinstance(reason, str) and "\n" not in reason and len(reason) <= MAX_EXPLANATION_CHARS


def test_the_contract_cases_see_valid_and_invalid_answers(request: pytest.FixtureRequest, questions: list[Question]) -> None:
    """The checks above are not vacuous: the scripted case answers with letters and with
    none, and the server case's third answer is no letter (its raw text is kept)."""
    scripted = _scripted(request)
    assert [a.choice for a in scripted.answer(questions)] == ["B", "B", "B", None, "C"]
    assert scripted.sources == [q.source.iri for q in questions] and scripted.batches == [len(questions)]
    server_answers = _openai(request).answer(questions)
    assert server_answers[2].choice is None and server_answers[2].raw == INVALID_REPLY
    assert all(a.choice is not None for i, a in enumerate(server_answers) if i != 2)
