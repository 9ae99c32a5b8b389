"""A judge backend built on its first question.

Most sources of a run are settled by retrieval's gate and never asked, and on some
pairs every one is (OAEI Person1: 500 of 500). Building a backend costs seconds before
anything is asked (the local judge imports torch and loads its model, about 10 s on
a 2-core CPU; vLLM starts an engine), so :func:`kgalign.pipeline.build_judge` wraps
it in :class:`LazyJudge`: the backend is made when the first question, its cache
parameters or its model id are wanted, and not at all by a run that asks nothing.
Errors a user can act on before the graphs load (an unknown backend, a missing
package, no model) are still raised at the start by
:func:`kgalign.judging.base.check_judge`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from kgalign.judging.base import Answer, Judge
from kgalign.judging.prompt import Question

log = logging.getLogger(__name__)


class LazyJudge:
    """The :class:`~kgalign.judging.base.Judge` that ``build()`` makes, made on first use.

    ``name`` is the backend's registered name, known without building it. The backend
    itself is ``inner`` (which :func:`kgalign.judging.base.explainer` follows, so
    ``--explain`` finds its ``explain``).
    """

    def __init__(self, name: str, build: Callable[[], Judge]) -> None:
        self.name = name
        self._build = build
        self._inner: Judge | None = None

    @property
    def built(self) -> bool:
        """Whether the backend has been made."""
        return self._inner is not None

    @property
    def inner(self) -> Judge:
        if self._inner is None:
            log.info("building the %s judge for the first question", self.name)
            self._inner = self._build()
        return self._inner

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    # The backend's batching, for CachedJudge's chunks (which of the two counts is its rule).
    @property
    def chunk_size(self) -> int | None:
        return getattr(self.inner, "chunk_size", None)

    @property
    def batch_size(self) -> int | None:
        return getattr(self.inner, "batch_size", None)

    @property
    def source_block(self) -> int | None:
        return getattr(self.inner, "source_block", None)

    def answer(self, questions: list[Question]) -> list[Answer]:
        return self.inner.answer(questions)

    def cache_params(self) -> dict[str, Any]:
        return self.inner.cache_params()
