"""A SQLite cache of answered questions, so an interrupted run resumes where it stopped.

Each answer is written (and committed, WAL journal) as soon as its batch returns,
keyed by a hash of backend, model, adapter, sampling parameters and prompt.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, fields
from functools import partial
from pathlib import Path
from typing import Any

from kgalign.judging.base import Answer, Judge
from kgalign.judging.prompt import Question

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    key TEXT PRIMARY KEY,
    backend TEXT NOT NULL,
    model TEXT NOT NULL,
    answer TEXT NOT NULL,
    created REAL NOT NULL DEFAULT (julianday('now'))
)
"""


def question_key(backend: str, model_id: str, params: dict[str, Any], question: Question) -> str:
    payload = json.dumps(
        {"backend": backend, "model": model_id, "params": params, "messages": question.messages()},
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


#: Keys looked up in one query (SQLite allows at least 999 parameters).
LOOKUP_KEYS = 500


def _answer(stored: str) -> Answer:
    answer = Answer(**json.loads(stored))
    answer.cached = True
    return answer


def answered_since(path: Path, started: float) -> bool:
    """Whether the answer cache at ``path`` holds an answer written at or after ``started``
    (a ``time.time()``): answers copied from an earlier run keep their own times. A cache
    that cannot be read counts as holding one."""
    if not path.is_file():
        return False
    import contextlib

    try:
        with contextlib.closing(sqlite3.connect(path)) as db:
            row = db.execute("SELECT 1 FROM answers WHERE created >= ? LIMIT 1", (started / 86400.0 + 2440587.5,)).fetchone()
    except sqlite3.Error:
        return True
    return row is not None


class AnswerCache:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(SCHEMA)
        self._db.commit()

    def get(self, key: str) -> Answer | None:
        return self.get_many([key])[0]

    def get_many(self, keys: list[str]) -> list[Answer | None]:
        """The answer stored under each key, None where there is none."""
        found: dict[str, str] = {}
        with self._lock:
            for start in range(0, len(keys), LOOKUP_KEYS):
                part = keys[start : start + LOOKUP_KEYS]
                marks = ",".join("?" * len(part))
                found.update(self._db.execute(f"SELECT key, answer FROM answers WHERE key IN ({marks})", part).fetchall())
        return [_answer(found[key]) if key in found else None for key in keys]

    def put_many(self, rows: list[tuple[str, str, str, Answer]]) -> None:
        with self._lock:
            self._db.executemany(
                "INSERT OR REPLACE INTO answers (key, backend, model, answer) VALUES (?, ?, ?, ?)",
                [(key, backend, model, json.dumps(asdict(answer))) for key, backend, model, answer in rows],
            )
            self._db.commit()

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM answers").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()


@dataclass
class Counts:
    """Questions a judge answered: asked of the backend (``sent``, with their tokens) or
    found in the cache (``hits``); ``batches`` sent to the backend."""

    sent: int = 0
    hits: int = 0
    prompt_tokens: int = 0
    answer_tokens: int = 0
    batches: int = 0

    @classmethod
    def of(cls, answers: list[Answer]) -> Counts:
        """A batch of answers the backend gave."""
        return cls(
            sent=len(answers),
            prompt_tokens=sum(a.prompt_tokens for a in answers),
            answer_tokens=sum(a.answer_tokens for a in answers),
            batches=1,
        )

    def add(self, other: Counts) -> None:
        for item in fields(self):
            setattr(self, item.name, getattr(self, item.name) + getattr(other, item.name))

    def less(self, before: Counts) -> Counts:
        """What was counted since ``before``."""
        return Counts(**{item.name: getattr(self, item.name) - getattr(before, item.name) for item in fields(self)})


class CachedJudge:
    """A judge wrapped by the cache: only unanswered questions reach the backend.

    Misses go to the backend in chunks of ``chunk`` questions, and each chunk's
    answers are committed before the next is sent: a crash loses at most the chunk
    in flight. By default a chunk is what the backend handles at once: its
    ``chunk_size`` attribute, else its ``batch_size`` (so a chunk is one forward pass
    of the local judge, and a resumed run batches its questions as the first did),
    else ``DEFAULT_CHUNK``.
    """

    DEFAULT_CHUNK = 16

    def __init__(self, inner: Judge, cache: AnswerCache | None, chunk: int | None = None) -> None:
        self.inner = inner
        self.name = inner.name
        self.cache = cache
        self._chunk = chunk  # asked of the backend when first needed: it may be built lazily
        #: What was answered so far (by the backend or from the cache).
        self.counts = Counts()
        self.on_answered: Callable[[int], None] | None = None

    @property
    def sent(self) -> int:
        """Questions asked of the backend."""
        return self.counts.sent

    @property
    def hits(self) -> int:
        """Questions answered from the cache."""
        return self.counts.hits

    @property
    def prompt_tokens(self) -> int:
        return self.counts.prompt_tokens

    @property
    def answer_tokens(self) -> int:
        return self.counts.answer_tokens

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    @property
    def loaded(self) -> bool:
        """False while a lazily built backend (:class:`~kgalign.judging.lazy.LazyJudge`) is not built yet."""
        return bool(getattr(self.inner, "built", True))

    @property
    def chunk(self) -> int:
        if self._chunk is None:
            self._chunk = getattr(self.inner, "chunk_size", None) or getattr(self.inner, "batch_size", None) or self.DEFAULT_CHUNK
        return max(1, int(self._chunk))

    @property
    def source_block(self) -> int | None:
        """The backend's block of sources for :func:`~kgalign.judging.vote.decide` (its prefix cache), if any."""
        return getattr(self.inner, "source_block", None)

    @property
    def ask_blocks(self) -> Callable[[list[Any]], Iterator[tuple[int, list[Any]]]] | None:
        """The backend's own way of asking whole blocks of sources (``--engine ray``: on its
        workers, behind this cache and counting here), if it has one; see
        :func:`kgalign.judging.vote.decide`."""
        elsewhere = getattr(self.inner, "ask_blocks", None)
        return None if elsewhere is None else partial(elsewhere, answered=self)

    def cache_params(self) -> dict[str, Any]:
        return self.inner.cache_params()

    def answer(self, questions: list[Question]) -> list[Answer]:
        params = self.inner.cache_params()
        keys = [question_key(self.name, self.inner.model_id, params, q) for q in questions]
        answers: list[Answer | None] = self.cache.get_many(keys) if self.cache is not None else [None] * len(questions)
        misses = [i for i, answer in enumerate(answers) if answer is None]
        # An answer found but not ``cached`` was given in this run already, and counted then
        # (a block asked again after its actor died: kgalign.runtime.ray_judging).
        hits = sum(1 for answer in answers if answer is not None and answer.cached)
        if hits:
            self.counted(Counts(hits=hits))
        for start in range(0, len(misses), self.chunk):
            batch = misses[start : start + self.chunk]
            got = self.inner.answer([questions[i] for i in batch])
            rows = []
            for i, answer in zip(batch, got):
                answers[i] = answer
                if answer.error is None:  # transport failures are asked again next run
                    rows.append((keys[i], self.name, self.inner.model_id, answer))
            self.stored(rows, Counts.of(got))
        return [a for a in answers if a is not None]

    def stored(self, rows: list[tuple[str, str, str, Answer]], counts: Counts) -> None:
        """A batch the backend answered: its answers (``rows``, less the failed) committed
        to the cache, and counted."""
        if self.cache is not None and rows:
            self.cache.put_many(rows)
        self.counted(counts)

    def counted(self, counts: Counts) -> None:
        """Questions answered (from the cache, or asked: ``counts``) added to the run's."""
        self.counts.add(counts)
        if self.on_answered and counts.sent + counts.hits:
            self.on_answered(counts.sent + counts.hits)
