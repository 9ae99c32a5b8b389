"""``--engine ray``: the pipeline with its model stages on the actors of a Ray cluster.

The stages run as :func:`kgalign.pipeline.run_local` runs them, with two of them spread
over a pool of Ray actors (each holds the models it needs, built on first use):

- **embedding**: the embedder's batches (:meth:`SentenceTransformerEmbedder.plan`) go to
  the actors several at a time, and the vectors come back in order. A batch's vectors
  depend on that batch alone, so they are the vectors one process computes; the vector
  cache stays in the driver;
- **lexical search**: the targets' TF-IDF rows are cut into one slice per actor; every
  block of sources goes to each slice, and each slice's best (by score, then target
  order: :func:`kgalign.retrieval.retrieve.block_topk`) are merged in the driver into
  the best of all, the candidates one process finds (searches below SHARD_FROM_CELLS
  stay in the driver);
- **dense search**: the targets' vectors are sent to the actors in parts and indexed
  there: cut into one slice per actor for an exact index, or past ``hnsw_threshold``
  targets into the HNSW graphs one process builds (of at most ``hnsw_slice`` targets
  each, built on one thread from the same parts: :func:`kgalign.retrieval.retrieve.dense_topk`),
  a run of whole graphs per actor. Every block of sources goes to each actor, and the
  slices' best are merged in the driver as the lexical ones are: the candidates one
  process finds, either way (a small search stays in the driver, and so does one an
  actor lost);
- **judging**: the blocks of sources (the judge's ``source_block``) as a Ray dataset,
  each block asked on an actor of Ray Data in the batches one process would send, so the
  answers are the same (:mod:`kgalign.runtime.ray_judging`). The answer cache stays on the
  driver's node and is written as each batch is answered: an actor killed mid-run is
  restarted by Ray Data and its block asked again, and every answer already given is kept.

- **loading** of an N-Triples, N-Quads, Turtle or TriG input: by partitions on actors,
  grouped by subject (:mod:`kgalign.runtime.ray_load`); the driver receives the entity
  table a page at a time into a file (:mod:`kgalign.io.entity_file`), with each
  entity's content hash made by the partitions, never all of its triples.

- **fusion** (of inputs loaded by partitions, under every conflict policy):
  the triples rewritten onto canonical IRIs by partitions grouped by canonical subject
  (:mod:`kgalign.runtime.ray_fuse`); the driver spills their sorted rows to local disk
  a chunk at a time, and the writers merge them.

The TF-IDF fit and resolution run in the driver, as with ``local``, and so do the load
of other formats and the fusion the partitions do not take (docs/scale.md). The
TF-IDF and neighbour rows are kept in files (:mod:`kgalign.retrieval.sparse_file`), as
are the vectors, and each block of sources of the lexical search is read from them as
it is sent. The driver keeps no
input triples between loading and fusion: an input file is read again when fused
(:mod:`kgalign.io.reloaded`). The actors are let go before fusion, which needs no
model; each gives its heap's free pages back after every call.

Without ``--ray-address`` a local Ray instance is started for the run (``ray.init``) and
stopped after it; with one, the run joins that cluster and leaves it running.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import zip_longest
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from kgalign.config import AlignConfig, RayConfig
from kgalign.errors import KgalignError, first_line
from kgalign.judging.base import Answer, Judge
from kgalign.judging.cache import CachedJudge, Counts
from kgalign.judging.prompt import Question
from kgalign.judging.vote import BlockAsk
from kgalign.result import AlignmentResult
from kgalign.retrieval.vector_file import VectorFile, Vectors
from kgalign.runtime.heap import releasing
from kgalign.runtime.ray_load import kill_all
from kgalign.runtime.torch_env import actor_process

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Embedder batches sent to an actor in one call.
EMBED_BATCHES_PER_CALL = 8
#: Embedding calls in flight per actor: results are read in order as they come, so the
#: object store holds a window of vectors, not all of them.
EMBED_WINDOW = 4
#: Times Ray restarts an actor whose process died, and asks its call again.
RESTARTS = 3
#: A lexical search of fewer scores than this (sources x targets) runs in the driver:
#: shipping it would cost more than it saves.
SHARD_FROM_CELLS = 200_000_000
#: Blocks of sources in flight at once in the sliced lexical and dense searches.
SEARCH_WINDOW = 4
#: Sources a block of the sliced dense search (FAISS searches a block at once).
DENSE_BLOCK_ROWS = 4096
#: Edges of the assignment's components in one call of :class:`RayComponentSolver`.
COMPONENT_CALL_EDGES = 200_000


def run_ray(left: str | Path, right: str | Path, config: AlignConfig, embedder: Any, judge: Judge | None, old: Any) -> AlignmentResult:
    """The ``ray`` engine (see the module text)."""
    from kgalign.pipeline import _align
    from kgalign.resolution.resolve import component_solver
    from kgalign.retrieval.embed import CachedEmbedder
    from kgalign.retrieval.retrieve import dense_search, lexical_search
    from kgalign.runtime.gctune import relaxed_gc
    from kgalign.runtime.ray_fuse import RayFuser
    from kgalign.runtime.ray_load import RayLoader

    if judge is not None or config.judge != "none":
        try:
            import ray.data  # noqa: F401  (the questions are asked as a Ray dataset)
        except ImportError:
            raise KgalignError("--engine ray asks the judge through Ray Data, which is missing: pip install 'kgalign[ray]'") from None
    with ray_cluster(config.ray) as cluster:
        pool = WorkerPool(cluster, config)
        loader = RayLoader(cluster["ray"], config.ray.partitions or pool.size)
        # The partitions hold their share of the fused triples as numbers (866 MB each on
        # the 4M pair, bench/results/fuse-partition-memory.md); the driver never holds
        # them as rdflib terms.
        fuser = RayFuser(cluster["ray"], config.ray.partitions or pool.size, config.ray)
        try:
            own = embedder if embedder is not None else CachedEmbedder(RayEmbedder(pool, config))
            with (
                relaxed_gc(),
                lexical_search(RayLexicalSearch(pool)),
                dense_search(RayDenseSearch(pool)),
                component_solver(RayComponentSolver(pool)),
            ):
                # The actors go once the judge is done: fusion runs in the driver alone.
                result = _align(
                    left,
                    right,
                    config,
                    own,
                    judge,
                    old,
                    serve=pool.serve,
                    judge_device=pool.device,
                    lean=True,
                    models_done=pool.close,
                    loader=loader,
                    fuser=fuser,
                )
            result.engine = pool.describe()
            result.engine["partitions"] = loader.parts
            result.engine["partitioned_inputs"] = loader.used
            result.engine["partitioned_fusion"] = fuser.used
            result.engine["shards"] = fuser.shards
            return result
        finally:
            pool.close()


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise KgalignError("--engine ray needs Ray: pip install 'kgalign[ray]'") from None
    return ray


@contextmanager
def ray_cluster(settings: RayConfig) -> Iterator[dict[str, Any]]:
    """Connected to the cluster at ``settings.address``, or to a local instance started
    here (and stopped on leaving); yields what the run needs to know of it."""
    ray = import_ray()
    started = False
    if not ray.is_initialized():
        try:
            if settings.address:
                ray.init(address=settings.address, log_to_driver=False, logging_level=logging.WARNING)
            else:
                # A local instance for this run alone, on 127.0.0.1: no token to set up.
                os.environ.setdefault("RAY_AUTH_MODE", "disabled")
                ray.init(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = settings.address or "a local instance"
            raise KgalignError(f"--engine ray: cannot connect to {where} ({first_line(exc)})") from None
        started = True
    try:
        resources = ray.cluster_resources()
        yield {
            "ray": ray,
            "cpus": float(resources.get("CPU", 1.0)),
            "gpus": float(resources.get("GPU", 0.0)),
            "nodes": len(ray.nodes()),
            "address": settings.address or "local",
        }
    finally:
        if started:
            ray.shutdown()


def in_order(ray: Any, submitted: Iterable[tuple[T, Any]], window: int) -> Iterator[tuple[T, Any]]:
    """``(tag, refs)`` pairs drawn from ``submitted`` (a generator that makes the remote
    calls as it is drawn), at most ``window`` awaited at once; yields ``(tag, ray.get(refs))``
    in the order submitted, so the calls run ahead while the results are used."""
    pending: deque[tuple[T, Any]] = deque()
    for item in submitted:
        pending.append(item)
        if len(pending) >= window:
            tag, refs = pending.popleft()
            yield tag, ray.get(refs)
    while pending:
        tag, refs = pending.popleft()
        yield tag, ray.get(refs)


@dataclass
class DenseShard:
    """An actor's share of a dense search: the indexes of its slices of the targets
    (:class:`kgalign.retrieval.retrieve.SliceIndex`), filled in order."""

    slices: list[Any]

    def add(self, start: int, targets: np.ndarray) -> None:
        for part in self.slices:
            if part.filled < part.hi:
                part.add(start, targets)  # raises unless these rows come next
                return
        raise LookupError(f"rows from {start} are past this actor's slices")

    def search(self, sources: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        from kgalign.retrieval.retrieve import merged_topk

        return merged_topk([part.search(sources, k) for part in self.slices], k)


class KgalignWorker:
    """What each Ray actor holds: the embedder and the judge, each built on first use.

    An actor gives its heap's free pages back after each call (:mod:`kgalign.runtime.heap`):
    the temporaries of an embedding call (activations, tokenised batches) or of a block
    of the lexical search otherwise stay with it between calls. Measured in one process
    embedding calls of 8 batches of 128 texts of the 1M synthetic pair (torch, one
    thread): 560 MB held between calls instead of 770 to 800 MB, and 83.7 s against
    82.9 s for 32 batches (the best of three).
    """

    def __init__(self, threads: int) -> None:
        self._embedders: dict[tuple, Any] = {}
        self._judge: Judge | None = None
        self._threads = max(1, threads)
        self._dense: dict[int, DenseShard] = {}  # a dense search's key -> this actor's slices of it
        actor_process(threads)

    @releasing
    def embed(self, spec: dict[str, Any], engine: str, batches: list[list[str]]) -> list[np.ndarray]:
        embedder = self._embedder(spec)
        return [embedder.encode_batch(engine, texts) for texts in batches]

    def embedder_id(self, spec: dict[str, Any]) -> str:
        return str(self._embedder(spec).model_id)

    def _embedder(self, spec: dict[str, Any]) -> Any:
        from kgalign.retrieval.embed import SentenceTransformerEmbedder

        key = tuple(sorted(spec.items()))
        if key not in self._embedders:
            self._embedders[key] = SentenceTransformerEmbedder(**spec)
        return self._embedders[key]

    @releasing
    def lexical_block(self, left: Any, start: int, stop: int, targets: Any, offset: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The best ``k`` of one slice of the targets (``targets``: their features
        transposed, the whole's columns from ``offset``) for sources ``start:stop``."""
        from kgalign.retrieval.retrieve import block_topk

        scores, ids = block_topk(left[start:stop] @ targets, min(k, targets.shape[1]))
        return scores, ids + offset

    def dense_build(self, key: int, bounds: list[tuple[int, int]], k: int, hnsw: bool, part_rows: int) -> None:
        """Start the indexes of this actor's slices of the targets' vectors (the whole's
        rows ``lo:hi`` each; exact, or HNSW graphs filled by parts of ``part_rows``) for
        the dense search ``key``; :meth:`dense_add` fills them."""
        import faiss

        from kgalign.retrieval.retrieve import SliceIndex

        faiss.omp_set_num_threads(self._threads)
        self._dense[key] = DenseShard([SliceIndex(lo, hi, k, hnsw, part_rows) for lo, hi in bounds])

    @releasing
    def dense_add(self, key: int, start: int, targets: np.ndarray) -> None:
        """Add the next rows of this actor's slices, the whole's from ``start``, to the
        index of their slice (an HNSW graph on one thread: the graph one process builds)."""
        self._slice(key).add(start, targets)

    @releasing
    def dense_block(self, key: int, sources: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The best ``k`` of this actor's slices for ``sources``, as the whole's rows."""
        return self._slice(key).search(sources, k)

    def _slice(self, key: int) -> DenseShard:
        if key not in self._dense:  # the actor was restarted since it started its slices
            raise LookupError(f"dense search {key}: this actor holds no slice of it")
        return self._dense[key]

    @releasing
    def dense_drop(self, key: int) -> None:
        self._dense.pop(key, None)

    @releasing
    def solve_components(self, components: list[Any]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Each component's maximum-weight matching (:func:`kgalign.resolution.resolve.solve_components`)."""
        from kgalign.resolution.resolve import solve_components

        return solve_components(components)

    def build_judge(self, build: Callable[[], Judge]) -> dict[str, Any]:
        from kgalign.judging.base import explainer

        judge = self._built(build)
        return {
            "model_id": judge.model_id,
            "params": judge.cache_params(),
            "chunk_size": getattr(judge, "chunk_size", None),
            "batch_size": getattr(judge, "batch_size", None),
            "source_block": getattr(judge, "source_block", None),
            "explains": explainer(judge) is not None,
        }

    def _built(self, build: Callable[[], Judge]) -> Judge:
        if self._judge is None:
            self._judge = build()
        return self._judge

    @releasing
    def answer(self, build: Callable[[], Judge], questions: list[Question]) -> list[Answer]:
        return self._built(build).answer(questions)

    def explain(self, build: Callable[[], Judge], questions: list[Question], chosen: list[str]) -> list[str]:
        from kgalign.judging.base import explainer

        explaining = explainer(self._built(build))
        assert explaining is not None  # asked only of a judge that said it explains
        return explaining.explain(questions, chosen)


class WorkerPool:
    """The actors of a run, started when first needed; each thread that asks keeps its actor."""

    def __init__(self, cluster: dict[str, Any], config: AlignConfig) -> None:
        self.ray = cluster["ray"]
        self.cluster = cluster
        settings = config.ray
        self.cpus = settings.cpus_per_actor
        self.gpus = settings.gpus_per_actor
        self.block_attempts = settings.block_attempts
        #: Where the actors' models run: their own GPU (Ray shows each actor the GPUs it reserved) or the CPU.
        self.device = "cuda" if self.gpus > 0 else "cpu"
        if self.gpus > 0 and cluster["gpus"] < self.gpus:
            raise KgalignError(f"--ray-gpus {self.gpus:g}: the Ray cluster at {cluster['address']} has {cluster['gpus']:g} GPUs")
        if self.gpus == 0 and config.device.startswith(("cuda", "mps")):
            raise KgalignError(f"--engine ray --device {config.device}: give the actors GPUs with --ray-gpus N (they run on the CPU otherwise)")
        room = int(cluster["cpus"] // self.cpus)
        if self.gpus > 0:
            room = min(room, int(cluster["gpus"] // self.gpus))
        room = max(1, room)
        self.size = settings.actors or room
        if self.size > room:
            # Actors beyond what the cluster holds would wait for resources, and the run with them.
            log.warning("--ray-actors %d: the cluster holds %d actors of %g CPU (and %g GPU); using %d", self.size, room, self.cpus, self.gpus, room)
            self.size = room
        self._actors: list[Any] = []
        #: The most actors the run had at once (they are let go before fusion).
        self.started = 0
        self._taken = 0  # threads given an actor so far, round robin
        self._lock = threading.Lock()
        self._local = threading.local()
        self.embed_calls = 0
        self.judge_batches = 0
        self.judge_blocks = 0
        self.search_calls = 0
        self.dense_calls = 0
        self.resolve_calls = 0

    @property
    def actors(self) -> list[Any]:
        with self._lock:
            if not self._actors:
                remote = self.ray.remote(num_cpus=self.cpus, num_gpus=self.gpus, max_restarts=RESTARTS, max_task_retries=RESTARTS)(KgalignWorker)
                self._actors = [remote.remote(max(1, int(self.cpus))) for _ in range(self.size)]
                self.started = max(self.started, len(self._actors))
                log.info("ray: %d actors of %g CPU each", self.size, self.cpus)
            return self._actors

    def mine(self) -> Any:
        """The actor of the calling thread (a block of sources stays on one actor)."""
        actor = getattr(self._local, "actor", None)
        if actor is None:
            self.actors  # noqa: B018 - starts them
            with self._lock:
                actor = self._actors[self._taken % len(self._actors)]
                self._taken += 1
            self._local.actor = actor
        return actor

    def map_embed(self, spec: dict[str, Any], engine: str, batches: list[list[str]]) -> Iterator[np.ndarray]:
        """Vectors of each batch, yielded in order as they come, the batches spread over
        the actors (the caller puts each in place: no list of them all is kept)."""
        actors = self.actors
        calls = [batches[start : start + EMBED_BATCHES_PER_CALL] for start in range(0, len(batches), EMBED_BATCHES_PER_CALL)]
        with self._lock:
            self.embed_calls += len(calls)
        submitted = ((None, actors[i % len(actors)].embed.remote(spec, engine, part)) for i, part in enumerate(calls))
        for _, part in in_order(self.ray, submitted, EMBED_WINDOW * len(actors)):
            # Each call's vectors are read out of the object store and put in place by
            # the caller before the next is read: the store holds a window of them.
            yield from part

    def serve(self, name: str, build: Callable[[], Judge]) -> Judge:
        """The judge ``build`` makes, served from the actors (see :class:`RayJudge`); the
        run builds a registered backend for the actors' device (``_align(judge_device=)``)."""
        return RayJudge(self, name, build)

    def count_judged(self, batches: int = 0, blocks: int = 0) -> None:
        with self._lock:
            self.judge_batches += batches
            self.judge_blocks += blocks

    def count_search(self, calls: int, dense: bool = False) -> None:
        with self._lock:
            if dense:
                self.dense_calls += calls
            else:
                self.search_calls += calls

    def count_resolve(self, calls: int) -> None:
        with self._lock:
            self.resolve_calls += calls

    def describe(self) -> dict[str, Any]:
        return {
            "name": "ray",
            "address": self.cluster["address"],
            "nodes": self.cluster["nodes"],
            "cluster_cpus": self.cluster["cpus"],
            "cluster_gpus": self.cluster["gpus"],
            "actors": self.started,
            "cpus_per_actor": self.cpus,
            "gpus_per_actor": self.gpus,
            "device": self.device,
            "embed_calls": self.embed_calls,
            "judge_batches": self.judge_batches,
            "judge_blocks": self.judge_blocks,
            "search_calls": self.search_calls,
            "dense_calls": self.dense_calls,
            "resolve_calls": self.resolve_calls,
        }

    def close(self) -> None:
        """Let the actors go (a later call starts new ones)."""
        with self._lock:
            actors, self._actors = self._actors, []
            self._local = threading.local()  # no thread keeps a released actor
        kill_all(self.ray, actors)


class RayJudge:
    """The run's judge on the cluster: :func:`~kgalign.judging.vote.decide` gives it the
    blocks of sources to ask, and they are asked as a Ray dataset (:meth:`ask_blocks`);
    a batch asked directly (:meth:`answer`) and ``--explain`` go to an actor of the pool.
    The backend is built on one actor first, for what the cache keys and the blocks need
    (its model id, parameters and ``source_block``)."""

    def __init__(self, pool: WorkerPool, name: str, build: Callable[[], Judge]) -> None:
        self.pool = pool
        self.name = name
        self._build = build
        self._info: dict[str, Any] | None = None
        self._lock = threading.Lock()

    @property
    def built(self) -> bool:
        return self._info is not None

    def _about(self) -> dict[str, Any]:
        with self._lock:
            if self._info is None:
                log.info("building the %s judge on the ray actors", self.name)
                # One actor builds it now, for what the cache keys need; the others on their first batch.
                self._info = self.pool.ray.get(self.pool.mine().build_judge.remote(self._build))
                if self._info.get("explains"):
                    self.explain = self._explain  # as the backend: only a judge that explains has it
            return self._info

    @property
    def model_id(self) -> str:
        return str(self._about()["model_id"])

    @property
    def chunk_size(self) -> int | None:
        return self._about()["chunk_size"]

    @property
    def batch_size(self) -> int | None:
        return self._about()["batch_size"]

    @property
    def source_block(self) -> int | None:
        return self._about()["source_block"]

    def cache_params(self) -> dict[str, Any]:
        return dict(self._about()["params"])

    def answer(self, questions: list[Question]) -> list[Answer]:
        self._about()
        actor = self.pool.mine()
        started = time.perf_counter()
        answers = self.pool.ray.get(actor.answer.remote(self._build, questions))
        self.pool.count_judged(batches=1)
        log.debug("ray: %d questions answered in %.2f s", len(questions), time.perf_counter() - started)
        return answers

    def ask_blocks(self, blocks: list[BlockAsk], answered: CachedJudge) -> Iterator[tuple[int, list[Any]]]:
        """The blocks of sources asked as a Ray dataset (:mod:`kgalign.runtime.ray_judging`),
        behind ``answered``'s cache and counted there; the pool's actors are let go first."""
        from kgalign.runtime.ray_judging import ask_blocks

        pool = self.pool
        self._about()
        pool.close()

        def counted(counts: Counts) -> None:
            answered.counted(counts)
            pool.count_judged(batches=counts.batches)

        cache = str(answered.cache.path.absolute()) if answered.cache is not None else None
        for index, asked in ask_blocks(pool.ray, self._build, answered.name, blocks, cache, counted, pool.size, pool.cpus, pool.gpus, pool.block_attempts):
            pool.count_judged(blocks=1)
            yield index, asked

    def _explain(self, questions: list[Question], chosen: list[str]) -> list[str]:
        return list(self.pool.ray.get(self.pool.mine().explain.remote(self._build, questions, chosen)))


class RayEmbedder:
    """The run's embedder, its batches computed on the actors (see the module text)."""

    def __init__(self, pool: WorkerPool, config: AlignConfig) -> None:
        from kgalign.retrieval.embed import SentenceTransformerEmbedder

        self.pool = pool
        engine = config.embed_engine
        if pool.device != "cpu" and engine == "auto":
            engine = "torch"  # what auto picks on a GPU
        self.spec = {
            "path": config.embedder,
            "device": pool.device,
            "precision": config.embed_precision,
            "max_tokens": config.embed_max_tokens,
            "engine": engine,
        }
        # The plan (engine, batches) is made here, without the model (word pieces or lengths only).
        self.local = SentenceTransformerEmbedder(config.embedder, precision="float32", max_tokens=config.embed_max_tokens, engine=engine)
        # The actors' embedder's id (its precision is the actors' device's): the vector cache's key.
        self.model_id = str(self.pool.ray.get(self.pool.actors[0].embedder_id.remote(self.spec)))

    def encode(self, texts: list[str]) -> np.ndarray:
        vectors = self._encode(texts, False)
        assert isinstance(vectors, np.ndarray)  # not spilled
        return vectors

    def encode_spilled(self, texts: list[str]) -> np.ndarray | VectorFile:
        """:meth:`encode`, each batch's vectors written to a :class:`VectorFile` as they come."""
        return self._encode(texts, True)

    def _encode(self, texts: list[str], spill: bool) -> np.ndarray | VectorFile:
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        engine, batches = self.local.plan(texts)
        log.info("embedding %d texts with the %s engine on %d ray actors", len(texts), engine, self.pool.size)
        from kgalign.retrieval.embed import place

        return place(batches, self.pool.map_embed(self.spec, engine, [[texts[i] for i in rows] for rows in batches]), len(texts), spill)


class RayLexicalSearch:
    """The lexical search on the actors (see the module text); a
    :class:`kgalign.retrieval.retrieve.LexicalSearch`."""

    def __init__(self, pool: WorkerPool) -> None:
        self.pool = pool

    def topk(self, left: Any, right: Any, keep: Any, k: int, progress: Callable[[int], None] | None) -> tuple[np.ndarray, np.ndarray] | None:
        from kgalign.retrieval.retrieve import BLOCK_CELLS, searched_targets

        n = right.shape[0]
        cuts = _cuts(self.pool, left.shape[0], n)
        if cuts is None:
            return None
        slices = len(cuts) - 1
        ray, actors = self.pool.ray, self.pool.actors[:slices]
        bounds = list(zip(cuts, cuts[1:]))
        # Each slice is made from its own targets and goes to the object store once (the
        # driver never holds the whole transposed set); its actor reads it from there on
        # every call.
        targets = [ray.put(searched_targets(right, keep, lo, hi)) for lo, hi in bounds]
        step = max(1, BLOCK_CELLS // max(hi - lo for lo, hi in bounds))
        started = time.perf_counter()
        blocks = range(0, left.shape[0], step)

        def block(start: int) -> list[Any]:
            # Each block of sources is read (from the driver's memory or its file) as it is
            # sent, and goes to the object store once for all the slices.
            sources = ray.put(left[start : start + step])
            return [actor.lexical_block.remote(sources, 0, step, part, lo, k) for actor, part, lo in zip(actors, targets, cuts)]

        submitted = ((start, block(start)) for start in blocks)
        found = _merged(ray, submitted, left.shape[0], k, progress)
        self.pool.count_search(len(blocks) * slices)
        log.info("lexical search of %d sources against %d targets on %d ray actors: %.1f s", left.shape[0], n, slices, time.perf_counter() - started)
        return found


class RayDenseSearch:
    """The dense search on the actors (see the module text); a
    :class:`kgalign.retrieval.retrieve.DenseSearch`."""

    def __init__(self, pool: WorkerPool) -> None:
        self.pool = pool
        self._searches = 0

    def topk(self, left: Vectors, right: Vectors, k: int, graphs: Sequence[int] | None) -> tuple[np.ndarray, np.ndarray] | None:
        from kgalign.retrieval.retrieve import GRAPH_PART_ROWS, graph_parts

        n = right.shape[0]
        shards = _dense_shards(self.pool, left.shape[0], n, graphs)
        if shards is None:
            return None
        ray, actors = self.pool.ray, self.pool.actors[: len(shards)]
        self._searches += 1
        key = self._searches
        started = time.perf_counter()
        # The latest calls (those that may be in flight), to read after a failure.
        sent: deque[Any] = deque(maxlen=(SEARCH_WINDOW + 1) * len(actors))
        try:
            # Each actor indexes its slices, sent in parts of GRAPH_PART_ROWS from each
            # slice's first row (the parts one process adds): the object store holds a
            # window of parts, and the driver no index.
            ray.get([actor.dense_build.remote(key, bounds, k, graphs is not None, GRAPH_PART_ROWS) for actor, bounds in zip(actors, shards)])
            # The actors' parts in turn, so that they index at once.
            own = [[part for lo, hi in bounds for part in graph_parts(lo, hi, GRAPH_PART_ROWS)] for bounds in shards]

            def parts() -> Iterator[tuple[int, list[Any]]]:
                for turn in zip_longest(*own):
                    for actor, part in zip(actors, turn):
                        if part is not None:
                            start, stop = part
                            yield start, [actor.dense_add.remote(key, start, right[start:stop])]

            for _ in in_order(ray, _sending(parts(), sent), SEARCH_WINDOW * len(actors)):
                pass
            blocks = range(0, left.shape[0], DENSE_BLOCK_ROWS)

            def block(start: int) -> list[Any]:
                sources = ray.put(left[start : start + DENSE_BLOCK_ROWS])  # once for all the actors
                return [actor.dense_block.remote(key, sources, k) for actor in actors]

            found = _merged(ray, _sending(((start, block(start)) for start in blocks), sent), left.shape[0], k)
        except ray.exceptions.RayError as exc:  # an actor lost its slices (restarted) or died
            log.warning("the dense search on the actors failed (%s); searching in the driver", first_line(exc))
            _settle(ray, sent)
            return None
        finally:
            _settle(ray, [actor.dense_drop.remote(key) for actor in actors])  # an actor gone holds nothing
        self.pool.count_search(len(blocks) * len(actors), dense=True)
        kind = f"{len(graphs) - 1} HNSW graphs" if graphs is not None else f"{len(actors)} exact indexes"
        log.info("dense search of %d sources against %d targets in %s on %d ray actors: %.1f s", left.shape[0], n, kind, len(actors), time.perf_counter() - started)
        return found


class RayComponentSolver:
    """The assignment's connected components solved on the actors; a
    :class:`kgalign.resolution.resolve.ComponentSolver`. Their groups go in calls of
    about COMPONENT_CALL_EDGES edges, spread over the actors in turn, at most
    SEARCH_WINDOW per actor in flight: the matching one process finds (the solver is
    deterministic, and the groups are the same)."""

    def __init__(self, pool: WorkerPool) -> None:
        self.pool = pool

    def solve(self, components: Any) -> list[tuple[np.ndarray, np.ndarray]] | None:
        if self.pool.size < 2:
            return None  # one actor solves no faster than the driver
        if not components:
            return []
        ray, actors = self.pool.ray, self.pool.actors
        calls: list[list[Any]] = [[]]
        edges = 0
        for component in components:
            if edges >= COMPONENT_CALL_EDGES:
                calls.append([])
                edges = 0
            calls[-1].append(component)
            edges += len(component[0])
        started = time.perf_counter()
        sent: deque[Any] = deque(maxlen=SEARCH_WINDOW * len(actors) + 1)
        solved: list[tuple[np.ndarray, np.ndarray]] = []
        try:
            submitted = ((i, [actors[i % len(actors)].solve_components.remote(part)]) for i, part in enumerate(calls))
            for _, (part,) in in_order(ray, _sending(submitted, sent), SEARCH_WINDOW * len(actors)):
                solved.extend(part)
        except ray.exceptions.RayError as exc:  # an actor died
            log.warning("solving the assignment's components on the actors failed (%s); solving them in the driver", first_line(exc))
            _settle(ray, sent)
            return None
        self.pool.count_resolve(len(calls))
        log.info("%d groups of the assignment's components solved in %d calls on %d ray actors: %.1f s", len(solved), len(calls), len(actors), time.perf_counter() - started)
        return solved


def _cuts(pool: WorkerPool, sources: int, targets: int) -> list[int] | None:
    """Where the targets are cut into one slice per actor (first rows, then the end), or
    None where the search (sources x targets) is too small to ship, or one actor has all."""
    slices = min(pool.size, targets)
    if slices < 2 or sources * targets < SHARD_FROM_CELLS:
        return None
    from kgalign.retrieval.retrieve import even_cuts

    return even_cuts(targets, slices)


def _dense_shards(pool: WorkerPool, sources: int, targets: int, graphs: Sequence[int] | None) -> list[list[tuple[int, int]]] | None:
    """Each actor's slices of a dense search's targets: for an exact search one slice per
    actor (:func:`_cuts`; any cut finds the same), for HNSW graphs (cut by ``graphs``, as
    in one process) a run of whole graphs per actor; None where the search stays in the
    driver."""
    if graphs is None:
        cuts = _cuts(pool, sources, targets)
        return None if cuts is None else [[bound] for bound in zip(cuts, cuts[1:])]
    if pool.size < 2 or sources * targets < SHARD_FROM_CELLS:
        return None
    from kgalign.retrieval.retrieve import even_cuts

    bounds = list(zip(graphs, graphs[1:]))
    runs = even_cuts(len(bounds), min(pool.size, len(bounds)))
    return [bounds[a:b] for a, b in zip(runs, runs[1:])]


def _merged(ray: Any, submitted: Iterable[tuple[int, list[Any]]], rows: int, k: int, progress: Callable[[int], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The best ``k`` of ``rows`` sources: each block's best on each actor (``submitted``:
    its first source and its calls, one per actor) merged into the best of all, the blocks
    read in order, at most SEARCH_WINDOW in flight; ``progress`` gets the sources done."""
    from kgalign.retrieval.retrieve import merged_topk

    scores = np.empty((rows, k), dtype=np.float32)
    ids = np.empty((rows, k), dtype=np.int64)
    for start, parts in in_order(ray, submitted, SEARCH_WINDOW):
        best = merged_topk(parts, k)
        scores[start : start + len(best[0])], ids[start : start + len(best[0])] = best
        if progress:
            progress(len(best[0]))
    return scores, ids


def _sending(calls: Iterable[tuple[T, list[Any]]], sent: deque[Any]) -> Iterator[tuple[T, list[Any]]]:
    """``calls`` as they are made, each call's futures also kept in ``sent``."""
    for tag, futures in calls:
        sent.extend(futures)
        yield tag, futures


def _settle(ray: Any, futures: Iterable[Any]) -> None:
    """Wait for the calls still in flight and read their results, errors included, so that
    Ray does not report them later as unhandled."""
    for future in futures:
        try:
            ray.get(future)
        except Exception:  # the error the caller has already reported, or another of the same
            pass
