"""A judge backend is built on its first question (kgalign/judging/lazy.py).

The wrapper logic runs with a scripted backend (kgalign.judging.testing) that records
when it is made and what it is asked; the pipeline test runs the real `local` backend
on a pair whose every source the gate settles, so that no model may be loaded at all.
"""

from __future__ import annotations

from pathlib import Path

from kgalign.judging.base import explainer
from kgalign.judging.cache import AnswerCache, CachedJudge
from kgalign.judging.lazy import LazyJudge
from kgalign.judging.prompt import Question
from kgalign.judging.testing import ScriptedJudge
from kgalign.model import EntityProfile
from kgalign.config import AlignConfig
from kgalign.pipeline import align


def first_option_judge() -> ScriptedJudge:
    """Answers A to every question, three questions a batch; records its batches; can explain."""
    return ScriptedJudge("A", name="first", model_id="first:v1", batch_size=3, prompt_tokens=5, explanations="The names agree.")


def _questions(n: int) -> list[Question]:
    return [Question(source=EntityProfile(f"urn:l:{i}", f"left {i}"), options=(EntityProfile(f"urn:r:{i}", f"right {i}"),)) for i in range(n)]


def test_backend_is_built_once_on_the_first_question(tmp_path: Path) -> None:
    built: list[ScriptedJudge] = []

    def build() -> ScriptedJudge:
        built.append(first_option_judge())
        return built[-1]

    lazy = LazyJudge("first", build)
    cached = CachedJudge(lazy, AnswerCache(tmp_path / "cache.sqlite"))
    assert cached.name == "first" and not cached.loaded and built == []

    answers = cached.answer(_questions(7))
    assert [a.choice for a in answers] == ["A"] * 7
    assert len(built) == 1 and cached.loaded
    # Chunks are the backend's batch size, as for a backend built eagerly.
    assert cached.chunk == 3 and built[0].batches == [3, 3, 1]
    assert cached.model_id == "first:v1" and cached.sent == 7

    again = cached.answer(_questions(7))  # all from the cache now
    assert all(a.cached for a in again) and len(built) == 1 and built[0].batches == [3, 3, 1]
    assert explainer(cached) is built[0]


def test_explaining_builds_the_backend() -> None:
    built: list[ScriptedJudge] = []
    lazy = LazyJudge("first", lambda: built.append(first_option_judge()) or built[-1])
    found = explainer(CachedJudge(lazy, None))
    assert found is built[0] and found.explain(_questions(1), ["A"]) == ["The names agree."]


def test_a_run_that_asks_nothing_loads_no_judge_model(tmp_path: Path) -> None:
    people = [
        ("Ada Lovelace", "1815-12-10", "London"),
        ("Alan Turing", "1912-06-23", "Maida Vale"),
        ("Grace Hopper", "1906-12-09", "New York"),
        ("Edsger Dijkstra", "1930-05-11", "Rotterdam"),
        ("Barbara Liskov", "1939-11-07", "Los Angeles"),
        ("Donald Knuth", "1938-01-10", "Milwaukee"),
    ]
    paths = {}
    for side, ns in (("left", "http://a.example/"), ("right", "http://b.example/")):
        lines = ["@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .", "@prefix ex: <http://ex.example/> ."]
        lines += [f'<{ns}p{i}> rdfs:label "{n}" ; ex:born "{d}" ; ex:birthPlace "{p}" .' for i, (n, d, p) in enumerate(people)]
        paths[side] = tmp_path / f"{side}.ttl"
        paths[side].write_text("\n".join(lines) + "\n", encoding="utf-8")

    result = align(paths["left"], paths["right"], AlignConfig(judge="local", cache_path=str(tmp_path / "answers.sqlite")))

    assert result.counts["gated"] == 6 and result.counts["llm_questions"] == 0
    assert sorted((link.left[-2:], link.right[-2:]) for link in result.links) == [(f"p{i}", f"p{i}") for i in range(6)]
    assert result.judge_id == "local:default model (not loaded: no question was asked)"
