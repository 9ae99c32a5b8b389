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
from collections.abc import Callable
from dataclasses import asdict
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
        with self._lock:
            row = self._db.execute("SELECT answer FROM answers WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        data = json.loads(row[0])
        answer = Answer(**data)
        answer.cached = True
        return answer

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
        self.sent = 0
        self.hits = 0
        self.prompt_tokens = 0
        self.answer_tokens = 0
        self.on_answered: Callable[[int], None] | None = None
        # Several blocks of sources may be asked at once (a judge with ``parallel``).
        self._count = threading.Lock()

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
    def parallel(self) -> int | None:
        """How many blocks of sources the backend answers at once (``--engine ray``), if more than one."""
        return getattr(self.inner, "parallel", None)

    def cache_params(self) -> dict[str, Any]:
        return self.inner.cache_params()

    def answer(self, questions: list[Question]) -> list[Answer]:
        params = self.inner.cache_params()
        keys = [question_key(self.inner.name, self.inner.model_id, params, q) for q in questions]
        answers: list[Answer | None] = [None] * len(questions)
        misses: list[int] = []
        for i, key in enumerate(keys):
            hit = self.cache.get(key) if self.cache is not None else None
            if hit is not None:
                answers[i] = hit
            else:
                misses.append(i)
        with self._count:
            self.hits += len(questions) - len(misses)
        if len(questions) - len(misses) and self.on_answered:
            self.on_answered(len(questions) - len(misses))
        for start in range(0, len(misses), self.chunk):
            batch = misses[start : start + self.chunk]
            got = self.inner.answer([questions[i] for i in batch])
            with self._count:
                self.sent += len(batch)
                self.prompt_tokens += sum(answer.prompt_tokens for answer in got)
                self.answer_tokens += sum(answer.answer_tokens for answer in got)
            rows = []
            for i, answer in zip(batch, got):
                answers[i] = answer
                if answer.error is None:  # transport failures are asked again next run
                    rows.append((keys[i], self.inner.name, self.inner.model_id, answer))
            if self.cache is not None and rows:
                self.cache.put_many(rows)
            if self.on_answered:
                self.on_answered(len(batch))
        return [a for a in answers if a is not None]
