"""The answer cache: lookups of many keys at once, and what the cached judge counts."""

from __future__ import annotations

from kgalign.judging.base import Answer
from kgalign.judging.cache import LOOKUP_KEYS, AnswerCache, CachedJudge, Counts, question_key
from kgalign.judging.prompt import Question
from kgalign.judging.testing import ScriptedJudge, pick
from kgalign.model import EntityProfile


def test_many_keys_are_looked_up_in_order_past_one_query(tmp_path) -> None:
    cache = AnswerCache(tmp_path / "cache.sqlite")
    stored = [f"k{i}" for i in range(0, 2 * LOOKUP_KEYS + 7, 2)]
    cache.put_many([(key, "b", "m", Answer(raw=key, choice="A")) for key in stored])
    keys = [f"k{i}" for i in reversed(range(2 * LOOKUP_KEYS + 9))]
    found = cache.get_many(keys)
    assert [a.raw if a else None for a in found] == [key if key in set(stored) else None for key in keys]
    assert all(a.cached for a in found if a) and cache.get("k1") is None and cache.get("k4").raw == "k4"
    cache.close()


def _questions(n: int) -> list[Question]:
    options = tuple(EntityProfile(f"urn:r:{i}", f"r{i}") for i in range(3))
    return [Question(source=EntityProfile(f"urn:l:{i}", f"l{i}"), options=options) for i in range(n)]


def test_the_cached_judge_counts_hits_and_batches_asked(tmp_path) -> None:
    backend = ScriptedJudge(pick("urn:r:1"), prompt_tokens=10, batch_size=2)
    cache = AnswerCache(tmp_path / "cache.sqlite")
    judge = CachedJudge(backend, cache)
    progress: list[int] = []
    judge.on_answered = progress.append
    questions = _questions(5)
    first = judge.answer(questions[:3])
    assert (judge.sent, judge.hits, judge.prompt_tokens) == (3, 0, 30) and progress == [2, 1]
    second = judge.answer(questions)
    assert (judge.sent, judge.hits, judge.prompt_tokens) == (5, 3, 50) and progress == [2, 1, 3, 2]
    assert [a.choice for a in second[:3]] == [a.choice for a in first] and all(a.cached for a in second[:3])
    key = question_key(backend.name, backend.model_id, backend.cache_params(), questions[4])
    assert cache.get(key) is not None and len(cache) == 5
    cache.close()


def test_counts_add_and_subtract_field_by_field() -> None:
    total = Counts(sent=2, hits=1, prompt_tokens=20, answer_tokens=2, batches=1)
    total.add(Counts.of([Answer(raw="A", choice="A", prompt_tokens=7, answer_tokens=1)]))
    assert total == Counts(sent=3, hits=1, prompt_tokens=27, answer_tokens=3, batches=2)
    assert total.less(Counts(sent=1, batches=1)) == Counts(sent=2, hits=1, prompt_tokens=27, answer_tokens=3, batches=1)


def test_the_ray_store_reads_back_a_restarted_blocks_answers_as_not_cached(tmp_path) -> None:
    """--engine ray's store (kgalign.runtime.ray_judging): what a block answered before its
    actor died is read back, not cached and so not a hit, by that block's next start only;
    anything else is what the cache file holds, as in one process. Without a cache file
    the store keeps the answers for that replay alone."""
    from kgalign.runtime.ray_judging import AnswerStore

    for path in (tmp_path / "cache.sqlite", None):
        store = AnswerStore(str(path) if path else None)
        store.stored([("k", "b", "m", Answer(raw="A", choice="A"))], Counts(sent=1), (3, 1))
        [replayed] = store.get_many(["k"], (3, 2))
        assert replayed is not None and replayed.choice == "A" and not replayed.cached
        elsewhere, again = store.get_many(["k"], (4, 1)), store.get_many(["k"], (3, 1))
        if path:  # a hit, as a question asked twice in one process is
            assert elsewhere[0].cached and again[0].cached
        else:  # asked again, as in one process without a cache
            assert elsewhere == again == [None]
        assert store.get_many(["other"], (3, 2)) == [None] and store.totals().sent == 1
