"""The ``openai`` judge against a real HTTP server on 127.0.0.1 that fails by script."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import read_rounds, round_letters, run_persons
from openai_server import FAKE_LOGPROB, FakeOpenAIServer, expected_letter, pair_probability, source_line

from kgalign.errors import KgalignError
from kgalign.judging.base import make_judge
from kgalign.judging.cache import AnswerCache, CachedJudge
from kgalign.judging.openai_api import OpenAIJudge
from kgalign.judging.prompt import Question
from kgalign.io.entities import load_entities
from kgalign.selection.predicates import build_profiles, choose_predicates, predicate_stats

SECRET = "sk-kgalign-test-secret-0123456789"
KEY_ENV = "KGALIGN_TEST_OPENAI_KEY"

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def questions(persons: dict[str, Path]) -> list[Question]:
    """Twelve questions from examples/persons: each source with four right entities."""
    profiles = []
    for side in ("left", "right"):
        _, table = load_entities(persons[side], side)
        profiles.append(build_profiles(table, choose_predicates(predicate_stats(table))))
    left, right = profiles
    result = []
    for i in range(12):
        options = tuple(right[(i + shift) % len(right)] for shift in (3, 0, 7, 1))
        result.append(Question(source=left[i], options=options))
    return result


def judge_for(server: FakeOpenAIServer, **options) -> OpenAIJudge:
    defaults = dict(base_url=server.url, llm_model=server.model, key_env=KEY_ENV, timeout=1.0, backoff=0.01, retries=5)
    defaults.update(options)
    return OpenAIJudge(**defaults)


def key_of(question: Question) -> str:
    """A text of the question's SOURCE line that no other question's line contains."""
    return source_line(question.messages())


def test_answers_follow_the_server_and_requests_are_well_formed(questions, monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    with FakeOpenAIServer() as server:
        judge = make_judge("openai", base_url=server.url, model=server.model, key_env=KEY_ENV)
        answers = judge.answer(questions)
        params = judge.cache_params()
    assert [a.choice for a in answers] == [expected_letter(q.messages()) for q in questions]
    assert all(a.logprob == FAKE_LOGPROB and a.error is None and a.retries == 0 for a in answers)
    assert all(a.prompt_tokens > 0 and a.answer_tokens == 1 for a in answers)
    assert len(server.requests) == len(questions)
    for request in server.requests:
        body = request["body"]
        assert request["authorization"] == f"Bearer {SECRET}"
        assert body["max_tokens"] == 1 and body["temperature"] == 0
        assert body["logprobs"] is True and body["top_logprobs"] == 5
        assert body["structured_outputs"] == {"choice": ["A", "B", "C", "D", "E"]}
    assert params["model"] == "fake-judge" and params["server"].startswith("127.0.0.1:")
    assert SECRET not in json.dumps(params)


def test_transient_faults_are_retried_and_counted(questions, monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    script = {
        key_of(questions[0]): ["429", "429"],
        key_of(questions[1]): ["500"],
        key_of(questions[2]): ["hang"],
        key_of(questions[3]): ["drop"],
        key_of(questions[4]): ["503", "502", "drop"],
    }
    with FakeOpenAIServer(faults_for=script, hang_seconds=4.0) as server:
        started = time.monotonic()
        answers = judge_for(server, concurrency=4).answer(questions)
        elapsed = time.monotonic() - started
    assert [a.choice for a in answers] == [expected_letter(q.messages()) for q in questions]
    assert [a.retries for a in answers] == [2, 1, 1, 1, 3] + [0] * (len(questions) - 5)
    assert all(a.error is None for a in answers)
    assert elapsed < 10  # one 1 s timeout plus short backoffs


def test_exhausted_retries_give_an_error_answer_that_is_not_cached(questions, monkeypatch, tmp_path):
    monkeypatch.delenv(KEY_ENV, raising=False)
    failing = questions[5]
    with FakeOpenAIServer(faults_for={key_of(failing): ["500"] * 3}) as server:
        cache = AnswerCache(tmp_path / "cache.sqlite")
        judge = CachedJudge(judge_for(server, retries=2), cache)
        first = judge.answer(questions)
        assert first[5].choice is None and first[5].retries == 2
        assert "500" in first[5].error
        assert len(cache) == len(questions) - 1
        # The next run asks only the failed question again, and this time it is answered.
        again = CachedJudge(judge_for(server, retries=2), cache)
        second = again.answer(questions)
        assert again.sent == 1 and again.hits == len(questions) - 1
        assert second[5].choice == expected_letter(failing.messages()) and second[5].error is None
        assert len(cache) == len(questions)
        cache.close()
    assert server.requests[0]["authorization"] == "Bearer EMPTY"


def test_anything_but_one_letter_is_an_invalid_vote(questions):
    chatty, outside = questions[0], questions[1]
    replies = {key_of(chatty): "The answer is A", key_of(outside): "F"}
    with FakeOpenAIServer(replies=replies) as server:
        answers = judge_for(server, structured=False).answer(questions[:3])
    assert answers[0].choice is None and answers[0].raw == "The answer is A" and answers[0].error is None
    assert answers[1].choice is None and answers[1].raw == "F"  # not an option of a 5-option question
    assert answers[2].choice == expected_letter(questions[2].messages())
    assert all("structured_outputs" not in r["body"] for r in server.requests)


def test_invalid_votes_are_logged_as_rounds_without_a_target(questions):
    from kgalign.model import Candidate, Candidates
    from kgalign.config import VoteConfig
    from kgalign.judging.vote import decide

    question = questions[0]
    replies = {key_of(question): "The answer is A"}
    cands = Candidates(
        source=question.source.iri,
        items=[Candidate(iri=p.iri, score=0.5, rank=i + 1) for i, p in enumerate(question.options)],
        margin=0.0,
        mutual=False,
    )
    with FakeOpenAIServer(replies=replies) as server:
        judge = CachedJudge(judge_for(server, structured=False), None)
        [decision] = decide(
            [cands],
            {question.source.iri: question.source},
            {p.iri: p for p in question.options},
            judge,
            VoteConfig(question="choice", rounds=3, gate=False),
        )
    assert decision.kind == "uncertain" and decision.target is None
    # No option can win once two of three votes are invalid: asking stops early.
    assert len(decision.rounds) == 2 and decision.early_stopped
    assert all(r.target is None and r.raw == "The answer is A" for r in decision.rounds)


def test_structured_outputs_and_logprobs_fall_back_once_rejected(questions):
    with FakeOpenAIServer(reject_structured=True, reject_logprobs=True) as server:
        judge = judge_for(server, concurrency=1)
        answers = judge.answer(questions[:4])
        params = judge.cache_params()
    assert [a.choice for a in answers] == [expected_letter(q.messages()) for q in questions[:4]]
    assert all(a.retries == 0 and a.logprob is None for a in answers)
    bodies = [r["body"] for r in server.requests]
    # First question: rejected twice (logprobs named in the error, then structured), then
    # answered; every later question is asked once, without either field.
    assert len(bodies) == 3 + 3
    assert all("structured_outputs" not in b and not b.get("logprobs") for b in bodies[3:])
    assert params["structured"] == "auto"


def test_forced_structured_outputs_are_not_dropped(questions):
    with FakeOpenAIServer(reject_structured=True) as server:
        answers = judge_for(server, structured=True, logprobs=False).answer(questions[:2])
    assert all(a.choice is None and a.error and "400" in a.error for a in answers)
    assert all("structured_outputs" in r["body"] for r in server.requests)


def test_wrong_model_or_key_stops_with_one_line(questions, monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    with FakeOpenAIServer() as server:
        with pytest.raises(KgalignError, match="--llm-model") as caught:
            judge_for(server, llm_model="no-such-model").answer(questions[:1])
        assert SECRET not in str(caught.value)
        with FakeOpenAIServer(faults=["401"]) as other:
            with pytest.raises(KgalignError, match="refused"):
                judge_for(other).answer(questions[:1])


def test_a_stopping_error_does_not_wait_for_slow_or_retried_requests(questions):
    script = {key_of(questions[0]): ["401"], key_of(questions[1]): ["500"] * 5}
    with FakeOpenAIServer(faults_for=script) as server:
        judge = judge_for(server, backoff=5.0, backoff_max=5.0, concurrency=2)
        started = time.monotonic()
        with pytest.raises(KgalignError):
            judge.answer(questions[:2])
        assert time.monotonic() - started < 4.0  # the retry of question 2 is not waited for


def test_model_name_comes_from_the_server_when_not_given():
    with FakeOpenAIServer(model="only-model") as server:
        judge = OpenAIJudge(base_url=server.url)
    assert judge.model == "only-model" and judge.model_id == "openai:only-model"


def test_unreachable_server_gives_error_answers_after_bounded_retries(questions):
    with FakeOpenAIServer() as server:
        url = server.url
    judge = OpenAIJudge(base_url=url, llm_model="fake-judge", timeout=0.5, retries=2, backoff=0.01)
    answers = judge.answer(questions[:2])
    assert all(a.choice is None and a.retries == 2 and "Connection" in a.error for a in answers)


def test_a_run_asks_a_served_judge_pairwise_questions_by_default(persons, tmp_path):
    """The default question through an OpenAI-compatible server: one request a pair and
    round, in both record orders, each asking for the log-probabilities; a round's
    probability of yes is read from both words the server lists, not from the chosen
    word alone; and the links follow the server's answers."""
    outdir = tmp_path / "out"
    with FakeOpenAIServer() as server:
        result = run_persons(persons, outdir, "--judge", "openai", "--llm-url", server.url, "--llm-model", server.model, "--gold", str(persons["gold"]), "--quiet")
        bodies = [r["body"] for r in server.requests]
    assert result.exit_code == 0, result.output
    assert bodies and all("RECORD 1: " in body["messages"][-1]["content"] and "SOURCE: " not in body["messages"][-1]["content"] for body in bodies)
    assert all(body.get("logprobs") and body.get("top_logprobs", 0) >= 2 for body in bodies)
    records, rounds = read_rounds(outdir)
    run = json.loads((outdir / "run.json").read_text())
    assert run["config"]["vote"]["question"] == "pairwise" and run["counts"]["llm_questions"] == len(bodies) == len(rounds)
    assert {r["first"] for r in rounds} == {"source", "candidate"}
    # The server's probability for each pair, as listed: FAKE_LOGPROB (the chosen word's) would give 0.78 or 0.22.
    assert sorted(r["p_yes"] for r in rounds) == pytest.approx(sorted(pair_probability(body["messages"]) for body in bodies), abs=1e-6)
    # A source is linked to its candidate of the highest mean probability where it reaches one half.
    for record in records:
        means: dict[str, list[float]] = {}
        for r in record["rounds"]:
            means.setdefault(r["order"][0], []).append(r["p_yes"])
        best = max(means, key=lambda iri: sum(means[iri]) / len(means[iri]))
        if record["decision"] == "match":
            assert record["target"] == best and sum(means[best]) / len(means[best]) >= 0.5
        elif record["decision"] == "none":
            assert all(p < 0.5 for p in means[best])
    assert json.loads((outdir / "metrics.json").read_text())["f1"] > 0.9


def test_cli_run_through_the_server(persons, tmp_path):
    faults = ["429", "500", "drop", "hang"]
    outdir = tmp_path / "out"
    options = ["--judge", "openai", "--question", "choice", "--llm-key-env", KEY_ENV, "--llm-timeout", "1", "--llm-concurrency", "8"]
    with FakeOpenAIServer(faults=faults, hang_seconds=4.0) as server:
        options += ["--llm-url", server.url, "--llm-model", server.model]
        result = run_persons(persons, outdir, *options, env={KEY_ENV: SECRET})
        assert result.exit_code == 0, result.output
        asked = len(server.requests)
        first_counts = json.loads((outdir / "run.json").read_text())["counts"]
        # Rerunning the same command reads every answer from the cache.
        again = run_persons(persons, outdir, *options, env={KEY_ENV: SECRET})
        assert again.exit_code == 0, again.output
        assert len(server.requests) == asked
    for name in ("fused.ttl", "links.ttl", "alignment.rdf", "votes.jsonl", "run.json"):
        assert (outdir / name).stat().st_size > 0, name
    records, rounds = read_rounds(outdir)
    assert len(records) == 60 and all(record["rounds"] for record in records)
    for r in rounds:
        assert r["choice"] in round_letters(r) and r["error"] is None
    assert sum(r["retries"] for r in rounds) == len(faults)
    assert server.injected == faults
    run_info = json.loads((outdir / "run.json").read_text())
    assert run_info["judge"] == "openai:fake-judge"
    assert run_info["counts"]["cache_hits"] == len(rounds)  # second run
    assert run_info["config"]["judge_options"]["key_env"] == KEY_ENV
    for name in ("run.json", "votes.jsonl"):
        assert SECRET not in (outdir / name).read_text()
    # Every question went to the server once, plus once more per fault.
    assert first_counts["llm_questions"] + first_counts["cache_hits"] == len(rounds)
    assert asked == first_counts["llm_questions"] + len(faults)


def test_cli_needs_llm_url(persons, tmp_path):
    from kgalign.cli.main import main

    result = CliRunner().invoke(main, ["run", str(persons["left"]), str(persons["right"]), "-o", str(tmp_path / "o"), "--judge", "openai"])
    assert result.exit_code == 1
    assert "--judge openai needs --llm-url" in result.output
    assert not os.path.exists(tmp_path / "o")


def test_a_run_whose_judge_answered_nothing_stops_and_one_that_missed_some_warns(persons, tmp_path, monkeypatch):
    """A server that is down: every round would be an invalid vote and no source linked by
    the judge, so the run stops in one line and leaves no folder. A server that fails some
    questions for good: the run goes on, and a warning counts them."""
    monkeypatch.delenv(KEY_ENV, raising=False)
    with FakeOpenAIServer() as server:
        url, model = server.url, server.model
    down = run_persons(persons, tmp_path / "down", "--judge", "openai", "--question", "choice", "--llm-url", url, "--llm-model", model, "--llm-retries", "0", "--llm-timeout", "1")
    assert down.exit_code == 1 and "no answer to any of its 120 questions" in down.output
    assert len([line for line in down.output.splitlines() if line.startswith("kgalign: error")]) == 1
    assert not (tmp_path / "down").exists()
    # One left person's social security number: in its questions' SOURCE line only.
    number = next(line for line in Path(persons["left"]).read_text().splitlines() if "soc_sec_id" in line).split('"')[1]
    with FakeOpenAIServer(faults_for={number: ["500"] * 50}) as server:
        some = run_persons(persons, tmp_path / "some", "--judge", "openai", "--question", "choice", "--llm-url", server.url, "--llm-model", server.model, "--llm-retries", "0")
    assert some.exit_code == 0, some.output
    assert "questions got no answer" in " ".join(some.output.split())
