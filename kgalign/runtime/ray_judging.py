"""``--engine ray``'s judging: the blocks of sources as a Ray dataset, asked on actors.

:func:`kgalign.judging.vote.decide` cuts the sources to ask into blocks (the judge's
``source_block``). Here they become the rows of a Ray dataset (``ray.data.from_items``,
a row a block), mapped by a pool of Ray Data actors (``map_batches`` with
:class:`BlockAsker`), each of which builds the run's backend once and asks every round of
its block as one process asks it (:meth:`kgalign.judging.vote.BlockAsk.run`): the same
batches, so the same answers. The rows come back as they are done, in any order; the
driver puts each block's votes in place.

The answer cache stays the source of truth. An :class:`AnswerStore` actor, on the
driver's node, holds the run's cache file; an actor reads its block's cached answers from
it and writes each batch's answers there as soon as the backend gives them. Ray Data
restarts an actor killed mid-block and asks the block again (a block is asked at most
``ray.block_attempts`` times): the batches that block answered before the kill are read back from the
store (with ``--no-cache`` too: it keeps what this run was given), counted neither as
asked again nor as cache hits, and only the batch in flight is asked twice. The store also counts what was
asked, so the run's counts include the killed actor's questions. A run stopped outright
resumes from the cache file like any other.

The engine's own actors are let go first: the dataset's actors take their CPUs (and
GPUs).
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Callable, Generator, Iterator
from dataclasses import replace
from typing import Any

import numpy as np

from kgalign.errors import KgalignError, first_line
from kgalign.judging.base import Answer, Judge
from kgalign.judging.cache import AnswerCache, CachedJudge, Counts
from kgalign.judging.vote import BlockAsk
from kgalign.runtime.heap import releasing
from kgalign.runtime.torch_env import actor_process

log = logging.getLogger(__name__)


class AnswerStore:
    """The run's answer cache (None: ``--no-cache``) and the counts of what was asked, for
    the actors of the dataset (a Ray actor on the driver's node)."""

    def __init__(self, path: str | None) -> None:
        self._cache = AnswerCache(path) if path else None
        #: The keys answered in this run: the block and the start of it that asked each, and
        #: its answer where there is no cache file.
        self._given: dict[str, tuple[int, int, Answer | None]] = {}
        self._counts = Counts()
        self._attempts: dict[int, int] = {}
        self._failure: str | None = None

    def fail(self, reason: str) -> None:
        """Why a block could not be asked (the first reason given is kept)."""
        self._failure = self._failure or reason

    def failure(self) -> str | None:
        return self._failure

    def attempt(self, block: int) -> int:
        """How many times block ``block`` has been started, this time included."""
        self._attempts[block] = self._attempts.get(block, 0) + 1
        return self._attempts[block]

    def get_many(self, keys: list[str], start: tuple[int, int]) -> list[Answer | None]:
        """The answer to each key for ``start`` (a block and its start), None where there is
        none. One given to an earlier start of the same block is that block's replay after
        its actor died: read back (with ``--no-cache`` too) but not ``cached``, since it
        was counted when it was given. Any other is what the cache file holds, as in one
        process (a question asked twice in a run is a cache hit the second time)."""
        found: list[Answer | None] = self._cache.get_many(keys) if self._cache is not None else [None] * len(keys)
        for i, key in enumerate(keys):
            block, began, kept = self._given.get(key, (-1, 0, None))
            if block == start[0] and began < start[1]:
                answer = kept or found[i]
                found[i] = None if answer is None else replace(answer, cached=False)
        return found

    def stored(self, rows: list[tuple[str, str, str, Answer]], counts: Counts, start: tuple[int, int]) -> None:
        """One batch's answers (asked by ``start``) committed and counted, in one call: an
        actor killed after it returns has lost neither."""
        if self._cache is not None and rows:
            self._cache.put_many(rows)
        for key, _backend, _model, answer in rows:
            self._given[key] = (*start, None if self._cache is not None else answer)
        self._counts.add(counts)

    def counted(self, counts: Counts) -> None:
        self._counts.add(counts)

    def totals(self) -> Counts:
        return self._counts


class _StoreCache:
    """The store, seen from an actor of the dataset as the cache :class:`CachedJudge` reads."""

    def __init__(self, ray: Any, store: Any) -> None:
        self._ray = ray
        self._store = store
        self.start = (-1, 0)  # the block being asked, and its start (see AnswerStore.get_many)

    def get_many(self, keys: list[str]) -> list[Answer | None]:
        return list(self._ray.get(self._store.get_many.remote(keys, self.start)))


class StoredJudge(CachedJudge):
    """The backend behind the run's store: cached answers read from it, each batch's new
    answers written and counted there. ``name``: the driver's name of the backend, that
    its cache keys are the driver's."""

    def __init__(self, inner: Judge, name: str, ray: Any, store: Any) -> None:
        self._reads = _StoreCache(ray, store)
        super().__init__(inner, self._reads)  # type: ignore[arg-type]
        self.name = name
        self._ray = ray
        self._store = store

    def asking(self, block: int, began: int) -> None:
        """What follows is asked for block ``block``, started for the ``began``-th time."""
        self._reads.start = (block, began)

    def stored(self, rows: list[tuple[str, str, str, Answer]], counts: Counts) -> None:
        self._ray.get(self._store.stored.remote(rows, counts, self._reads.start))

    def counted(self, counts: Counts) -> None:
        self._ray.get(self._store.counted.remote(counts))


class BlockAsker:
    """The map of the dataset, one per actor: the backend ``build`` makes, behind the store;
    each row's block asked, its votes given back (both pickled)."""

    def __init__(self, build: Callable[[], Judge], name: str, store: Any, threads: int, attempts: int) -> None:
        import ray

        actor_process(threads)  # as the engine's actors: torch on the CPUs reserved
        self._ray = ray
        self._store = store
        self._attempts = attempts  # Ray Data asks a dead actor's block again without limit
        self._judge = StoredJudge(build(), name, ray, store)

    @releasing
    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        asked = []
        for index, block in zip(batch["index"], batch["block"]):
            try:
                tries = self._ray.get(self._store.attempt.remote(int(index)))
                if tries > self._attempts:
                    raise RuntimeError(f"block {index} of the sources was started {tries} times; its actors died each time")
                self._judge.asking(int(index), tries)
                asked.append(pickle.dumps(pickle.loads(block).run(self._judge)))
            except Exception as exc:  # the driver reads it from the store: Ray wraps it deep
                self._ray.get(self._store.fail.remote(first_line(exc, named=True)))
                raise
        return {"index": batch["index"], "block": np.array(asked, dtype=object)}


def ask_blocks(
    ray: Any,
    build: Callable[[], Judge],
    name: str,
    blocks: list[BlockAsk],
    cache: str | None,
    counted: Callable[[Counts], None],
    actors: int,
    cpus: float,
    gpus: float,
    attempts: int,
) -> Iterator[tuple[int, list[Any]]]:
    """Each block's index and its votes, asked as a Ray dataset on ``actors`` actors of
    ``cpus`` CPUs and ``gpus`` GPUs each, as they are done, behind the answer cache file
    ``cache`` (an absolute path: the actors' working folder is not the driver's); ``name``
    is the backend's in the cache keys; ``counted`` is given what was asked as it is (see
    the module text); a block is asked at most ``attempts`` times."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    store = ray.remote(num_cpus=0, scheduling_strategy=here)(AnswerStore).remote(cache)
    rows: Generator[dict[str, Any]] | None = None
    context = ray.data.DataContext.get_current()
    quiet = {"enable_progress_bars": False, "print_on_execution_start": False}  # the run has its own bar
    was = {key: getattr(context, key) for key in quiet}
    # Ray Data logs each execution (its start, that its bars are off, its end) on the
    # console; the run's own log says what it asks.
    data_log = logging.getLogger("ray.data")
    data_level = data_log.level
    try:
        items = [{"index": index, "block": pickle.dumps(block)} for index, block in enumerate(blocks)]
        for key, value in quiet.items():
            setattr(context, key, value)
        data_log.setLevel(logging.ERROR)
        dataset = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            BlockAsker,
            fn_constructor_args=(build, name, store, max(1, int(cpus)), attempts),
            batch_size=1,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=max(1, min(actors, len(items)))),
            num_cpus=cpus,
            num_gpus=gpus,
        )
        del items
        log.info("ray: %d blocks of sources to ask, as a dataset on %d actors", len(blocks), min(actors, len(blocks)))
        before = Counts()
        rows = _rows(ray, dataset, store)
        for row in rows:
            counts = ray.get(store.totals.remote())
            counted(counts.less(before))
            before = counts
            yield int(row["index"]), pickle.loads(row["block"])
    except ray.exceptions.RayError as exc:  # the store itself lost, or the dataset not made
        raise KgalignError(f"--engine ray: judging stopped: {first_line(exc, named=True)}") from exc
    finally:
        if rows is not None:
            rows.close()  # the dataset's actors stopped before the store they write to
        ray.kill(store)
        for key, value in was.items():
            setattr(context, key, value)
        data_log.setLevel(data_level)


def _rows(ray: Any, dataset: Any, store: Any) -> Generator[dict[str, Any]]:
    """The dataset's rows; a failure stops the run in one line: the map's error as the
    store has it, else Ray's."""
    try:
        yield from dataset.iter_rows()
    except Exception as exc:
        try:
            reason = ray.get(store.failure.remote())
        except ray.exceptions.RayError:
            reason = None
        raise KgalignError(f"--engine ray: judging stopped: {reason or first_line(exc, named=True)}") from exc
