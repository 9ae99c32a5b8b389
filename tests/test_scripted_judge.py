"""kgalign.judging.testing.ScriptedJudge: what each kind of script answers (its contract is in test_judge_contract)."""

from __future__ import annotations

import json

import pytest

from kgalign.judging.base import Answer, explainer
from kgalign.judging.cache import CachedJudge
from kgalign.judging.prompt import Question
from kgalign.judging.testing import ScriptedJudge, pick
from kgalign.model import EntityProfile


def _question(source: str, *options: str) -> Question:
    return Question(source=EntityProfile(source, source), options=tuple(EntityProfile(o, o) for o in options))


def test_replies_are_parsed_as_a_backend_parses_them() -> None:
    q = _question("urn:l:1", "urn:r:1", "urn:r:2")  # letters A, B and C (none of these)
    replies = ["B", " (A) ", None, "D", "I think it is A", pick("urn:r:2"), pick("urn:r:9")]
    got = [ScriptedJudge(reply, logprob=-0.2).answer([q])[0] for reply in replies]
    assert [(a.choice, a.raw) for a in got] == [
        ("B", "B"),
        ("A", " (A) "),
        ("C", "C"),
        (None, "D"),  # a letter this question does not allow
        (None, "I think it is A"),
        ("B", "B"),
        ("C", "C"),
    ]
    assert [a.logprob for a in got] == [-0.2, -0.2, -0.2, None, None, -0.2, -0.2]  # invalid votes have none
    error = Answer(raw="", choice=None, error="timed out", retries=3)
    assert ScriptedJudge(error).answer([q]) == [error]


def test_mappings_lists_and_callables_nest_and_record_what_was_asked() -> None:
    a, b = _question("urn:l:a", "urn:r:1", "urn:r:2"), _question("urn:l:b", "urn:r:1")
    judge = ScriptedJudge({"urn:l:a": ["A", pick("urn:r:2")], "urn:l:b": lambda q: q.none_letter}, default="A")
    first = judge.answer([a, b])
    second = judge.answer([a])
    third = judge.answer([a])  # urn:l:a's list has run out: the default
    assert [x.choice for x in first + second + third] == ["A", "B", "B", "A"]
    assert judge.sources == ["urn:l:a", "urn:l:b", "urn:l:a", "urn:l:a"] and judge.batches == [2, 1, 1] and judge.calls == 3
    strict = ScriptedJudge({"urn:l:a": "A"})
    with pytest.raises(LookupError, match="no answer scripted for source urn:l:b"):
        strict.answer([b])


def test_explain_exists_only_where_explanations_are_scripted() -> None:
    q = _question("urn:l:1", "urn:r:1")
    silent = ScriptedJudge("A")
    assert not hasattr(silent, "explain") and explainer(CachedJudge(silent, None)) is None
    talking = ScriptedJudge("A", explanations={"urn:l:1": "Same name."})
    assert explainer(CachedJudge(talking, None)) is talking
    assert talking.explain([q], ["A"]) == ["Same name."] and talking.explained == [(q, "A")]


def test_cache_params_describe_the_script_as_json() -> None:
    params = ScriptedJudge({"urn:l:1": [pick("urn:r:1"), None]}, default="A", logprob=-0.1).cache_params()
    assert json.loads(json.dumps(params)) == {"script": {"urn:l:1": [{"pick": "urn:r:1"}, None]}, "default": "A", "logprob": -0.1}
    assert ScriptedJudge("A").cache_params() != ScriptedJudge("B").cache_params()
    assert ScriptedJudge(lambda q: "A", params={"rule": "first"}).cache_params() == {"rule": "first"}
