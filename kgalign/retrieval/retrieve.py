"""Retrieve the top-k candidates of every source entity.

Two signals are combined:
- dense: cosine similarity of sentence embeddings, searched with FAISS (inner
  product on normalised vectors; exact below ``hnsw_threshold`` targets, HNSW above);
- lexical: cosine similarity of TF-IDF vectors of character n-grams, which catches
  what a small embedder misses (model codes, misspelt names, numbers).
Each source's pool is the union of both signals' best ``pool`` targets; pooled
targets are scored ``dense_weight * dense + (1 - dense_weight) * lexical`` and the
best ``k`` kept. When neighbourhood vectors are given (:mod:`kgalign.retrieval.structure`), the
final score is ``(1 - structure_weight) * that + structure_weight * neighbour cosine``,
and with ``neighbour_search`` (the cascade's second pass) the neighbour channel's own
best ``pool`` targets join the pool.
Nothing quadratic is held in memory: the lexical search runs in
row blocks.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from typing import Any, Protocol

import numpy as np
from scipy import sparse

from kgalign.config import RetrievalConfig
from kgalign.model import Candidate, Candidates
from kgalign.retrieval.sparse_file import SparseRows, column_counts, is_sparse
from kgalign.retrieval.vector_file import Vectors
from kgalign.runtime.hooks import hooked

log = logging.getLogger(__name__)

Progress = Callable[[int], None]


AUTO_STRUCTURE_WEIGHT = 0.5


STRUCTURE_VECTORS = ("dense", "lexical")
MODES = ("full", "cascade")


#: Targets a dense search finds beyond its ``k``: the ``k`` are then chosen among them by
#: scores computed again pair by pair (:func:`dense_topk`).
DENSE_MARGIN = 8


#: Rows added to an index at a time. An HNSW graph depends on how its rows were added
#: (FAISS inserts each call's rows highest level first), so both engines add the same parts.
GRAPH_PART_ROWS = 16_384


def dense_topk(left: Vectors, right: Vectors, k: int, hnsw_threshold: int, hnsw_slice: int) -> tuple[np.ndarray, np.ndarray]:
    """Best ``k`` right rows for each left row by inner product (FAISS), best first,
    equal scores by row; -1 where fewer were found.

    FAISS finds ``k + DENSE_MARGIN`` and the ``k`` are the best of those by the pairs'
    scores computed again one by one (:func:`_pair_dots`). FAISS's own score of a pair
    depends on where the target sits in the search (its blocking of the product), so
    searches of the same vectors cut otherwise (``--engine ray``'s slices) could keep
    another of two targets whose scores tie at the ``k``-th place; the pair's own score
    does not, so both keep the same ones (unless more than ``DENSE_MARGIN`` targets tie
    there).

    Past ``hnsw_threshold`` targets the search is approximate: the targets are cut into
    equal slices of at most ``hnsw_slice`` (:func:`graph_cuts`), each searched on its own
    HNSW graph, and the slices' best merged. The slices depend on the data alone, and
    each graph is built on one thread from the same parts (:class:`SliceIndex`), so a
    run finds the same candidates every time and on either engine (a graph built on
    several threads depends on their timing). The graphs are built side by side, one a
    thread. A graph keeps its copy of the targets as float16: 1,040 bytes a target
    instead of 1,808 (384 dimensions), and no slower. It only chooses the pool: the
    scores that rank it are computed afterwards from the float32 vectors
    (:func:`retrieve`). On DBP15K fr-en's MiniLM vectors its best 30 have the recall of
    a float32 graph against an exact search (0.9777 and 0.9779; bench/hnsw_storage.py).
    A :class:`DenseSearch` in context (:func:`dense_search`) is asked first.
    """
    n = right.shape[0]
    k = min(k, n)
    if k == 0:
        return np.zeros((left.shape[0], 0), dtype=np.float32), np.zeros((left.shape[0], 0), dtype=np.int64)
    wide = min(k + DENSE_MARGIN, n)
    graphs = graph_cuts(n, hnsw_slice) if n > hnsw_threshold else None
    search = _DENSE.get()
    found = search.topk(left, right, wide, graphs) if search is not None else None
    if found is None:
        found = sliced_search(left, right, wide, graphs)
    return rescored_topk(left, right, found[1], k)


def rescored_topk(left: Vectors, right: Vectors, ids: np.ndarray, k: int, rows_a_step: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """The best ``k`` of each row's ``ids`` (right rows; -1: none) by the pairs' inner
    products, each computed on its own (:func:`_pair_dots`), best first, equal scores
    by row."""
    scores = np.full(ids.shape, -np.inf, dtype=np.float32)
    for start in range(0, len(ids), rows_a_step):
        block = ids[start : start + rows_a_step]
        found = block >= 0
        rows, places = np.nonzero(found)
        scores[start + rows, places] = _pair_dots(left, right, rows + start, block[found])
    return merge_topk(scores, ids, k)


def graph_cuts(targets: int, slice_targets: int) -> list[int]:
    """Where ``targets`` are cut into the HNSW graphs of a dense search: equal slices of
    at most ``slice_targets`` (first rows, then the end)."""
    return even_cuts(targets, max(1, -(-targets // max(1, slice_targets))))


def even_cuts(total: int, parts: int) -> list[int]:
    """Where ``total`` rows are cut into ``parts`` runs of sizes as equal as may be (first
    row, then each run's end)."""
    return [int(cut) for cut in np.linspace(0, total, parts + 1).round()]


#: Sources searched at a time in one process (:func:`sliced_search`): a block's
#: vectors and each graph's results for it are what the search holds beside its output.
SEARCH_BLOCK_ROWS = 65_536


def graph_parts(lo: int, hi: int, part_rows: int) -> list[tuple[int, int]]:
    """The parts, ``(start, stop)``, that the index of the targets' rows ``lo:hi`` is
    filled with (in one process as on an actor: the parts make an HNSW graph)."""
    return [(start, min(start + part_rows, hi)) for start in range(lo, hi, part_rows)]


def sliced_search(left: Vectors, right: Vectors, k: int, graphs: Sequence[int] | None, workers: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """FAISS's best ``k`` right rows for each left row: one exact index of all the targets
    (``graphs`` None), or an HNSW graph of each slice ``graphs`` cut, built ``workers``
    at a time (default: one per thread FAISS uses; the graphs are the same however many),
    then searched on every thread a block of sources at a time, their best merged
    (:func:`merge_topk`). It holds the indexes (those of all the targets, as one index
    would), a block of sources and its results, and the output."""
    from concurrent.futures import ThreadPoolExecutor

    import faiss

    bounds = list(zip(graphs, graphs[1:])) if graphs is not None else [(0, right.shape[0])]
    workers = max(1, min(len(bounds), faiss.omp_get_max_threads() if workers is None else workers))

    def filled(bound: tuple[int, int]) -> SliceIndex:
        index = SliceIndex(*bound, k, graphs is not None)
        index.fill(right)
        return index

    if workers == 1:
        indexes = [filled(bound) for bound in bounds]
    else:
        with ThreadPoolExecutor(workers) as pool:
            indexes = list(pool.map(filled, bounds))
    rows = left.shape[0]
    scores = np.empty((rows, k), dtype=np.float32)
    ids = np.empty((rows, k), dtype=np.int64)
    for start in range(0, rows, SEARCH_BLOCK_ROWS):
        stop = min(start + SEARCH_BLOCK_ROWS, rows)
        sources = np.ascontiguousarray(left[start:stop], dtype=np.float32)
        scores[start:stop], ids[start:stop] = merged_topk([index.search(sources, k) for index in indexes], k)
    return scores, ids


@contextmanager
def omp_threads(threads: int) -> Iterator[None]:
    """FAISS's OpenMP threads for the calls of this thread in the context (the setting is
    each thread's own)."""
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(threads)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


class SliceIndex:
    """The index of the targets' rows ``lo:hi`` for a search of the best ``k``: exact, or
    an HNSW graph (:func:`hnsw_graph`) built on one thread from the parts
    :func:`graph_parts` cuts (``part_rows`` each), so that it is the same graph in any
    process. Filled in order, a part at a time (``add``, which refuses any other part)
    or from the whole (``fill``); ``search`` gives the whole's rows."""

    def __init__(self, lo: int, hi: int, k: int, hnsw: bool, part_rows: int | None = None) -> None:
        self.lo, self.hi, self.k, self.hnsw = lo, hi, k, hnsw
        self.part_rows = GRAPH_PART_ROWS if part_rows is None else part_rows
        self.index: Any = None

    @property
    def filled(self) -> int:
        """The next row of the whole this index takes."""
        return self.lo + (0 if self.index is None else self.index.ntotal)

    def add(self, start: int, rows: Vectors) -> None:
        stop = start + rows.shape[0]
        # A graph takes the next part and no other (an exact index any next rows): Ray
        # retries the calls of a restarted actor in no set order, and other parts would
        # make another graph.
        expected = min(start + self.part_rows, self.hi) if self.hnsw else self.hi
        if start != self.filled or stop > self.hi or (self.hnsw and stop != expected):
            raise LookupError(f"rows {start}:{stop} are not the next part of the slice {self.lo}:{self.hi} (filled to {self.filled})")
        rows = np.ascontiguousarray(rows, dtype=np.float32)
        if self.index is None:
            self.index = dense_index(rows.shape[1], self.k, self.hnsw)
        with omp_threads(1) if self.hnsw else nullcontext():
            self.index.add(rows)

    def fill(self, right: Vectors) -> None:
        """Add this slice's rows of ``right``: a graph's parts, an exact index's at once."""
        for start, stop in graph_parts(self.lo, self.hi, self.part_rows) if self.hnsw else [(self.lo, self.hi)]:
            self.add(start, right[start:stop])

    def search(self, sources: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        scores, ids = self.index.search(np.ascontiguousarray(sources, dtype=np.float32), min(k, self.index.ntotal))
        return scores, np.where(ids >= 0, ids + self.lo, -1)


def dense_index(dim: int, k: int, hnsw: bool) -> Any:
    """An empty FAISS index of ``dim`` dimensions searched for the best ``k`` by inner
    product: exact, or an HNSW graph (:func:`hnsw_graph`)."""
    import faiss

    return hnsw_graph(dim, k) if hnsw else faiss.IndexFlatIP(dim)


class DenseSearch(Protocol):
    """A dense search spread elsewhere (``--engine ray``: over the actors, each holding
    the indexes of a run of slices of the targets). ``topk`` gets the sources' and the targets'
    vectors, ``k`` and the cuts of the HNSW graphs (:func:`graph_cuts`; None: an exact
    search), and gives :func:`sliced_search`'s result, or None to leave the search to this
    process."""

    def topk(self, left: Vectors, right: Vectors, k: int, graphs: Sequence[int] | None) -> tuple[np.ndarray, np.ndarray] | None: ...


def hnsw_graph(dim: int, k: int, float16: bool = True) -> Any:
    """The empty HNSW graph :func:`dense_topk` searches for the best ``k`` (inner product,
    32 links a node), its targets held as float16 (or float32: bench/hnsw_storage.py)."""
    import faiss

    index: Any
    if float16:
        # The quantizer type is an int in FAISS; its stubs name the class.
        index = faiss.IndexHNSWSQ(dim, faiss.ScalarQuantizer.QT_fp16, 32, faiss.METRIC_INNER_PRODUCT)  # type: ignore[arg-type]
    else:
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efSearch = max(64, 2 * k)
    return index


# A run of letters and digits split by hyphens or slashes: "PS-LX350H", "KDL-40/V41".
_SPLIT_CODE = re.compile(r"\b\w+(?:[-/]\w+)+\b")


#: A run of digits alone is a code (part number, phone number) rather than a range or
#: a fraction ("3-5", "2-1/2") when it has at least this many digits in three groups.
DIGIT_CODE_MIN_DIGITS = 6


# Dates are written year first or last, with dashes or slashes, from one graph to the
# next ("1990-03-07", "07/03/1990"): kept apart, their year, month and day still match.
_DATE = re.compile(r"\d{4}[-/]\d{1,2}[-/]\d{1,2}|\d{1,2}[-/]\d{1,2}[-/]\d{2}(?:\d{2})?")


def _join_code(match: re.Match[str]) -> str:
    token = match.group(0)
    joined = token.replace("-", "").replace("/", "")
    if any(c.isalpha() for c in token):
        return joined if any(c.isdigit() for c in token) else token
    if _DATE.fullmatch(token):
        return token
    if len(token) - len(joined) >= 2 and len(joined) >= DIGIT_CODE_MIN_DIGITS:
        return joined  # "010-10609-00" is also written "0101060900"
    return token


def lexical_text(text: str) -> str:
    """Lower case, with the separators inside codes removed ("PS-LX350H" -> "pslx350h",
    "010-10609-00" -> "0101060900").

    Model and part numbers are written with and without hyphens from one catalogue to
    the next; joined, they are one rare word, the strongest lexical evidence there is.
    Words without a digit ("belt-drive"), short numbers without a letter ("3-5",
    "2-1/2") and dates ("1990-03-07", "07/03/1990") are kept. On a development half of Abt-Buy joining digits-only codes
    raised F1 from 0.941 to 0.944 (bench/ablation.py), whether the hyphenated spelling
    was kept beside the joined one or not; it is not, as for letter codes.
    """
    return _SPLIT_CODE.sub(_join_code, text.lower())


# After lexical_text: a word of letters and digits ("pslx350h", "s210"), or of six digits
# or more ("0101060900"): a model, part or phone number rather than a word or a year.
_CODE = re.compile(r"\b(?:(?=\w*\d)(?=\w*[^\W\d_])\w{4,}|\d{6,})\b")


def code_tokens(text: str) -> set[str]:
    """The identifier-like words of ``text`` (model, part and phone numbers), as
    :func:`lexical_text` writes them."""
    return set(_CODE.findall(lexical_text(text)))


def lexical_vectors(left_texts: Sequence[str], right_texts: Sequence[str], spill: bool = False) -> tuple[SparseRows, SparseRows]:
    """TF-IDF of character 3-grams within words plus whole words, fitted on both sides.

    With ``spill`` the rows are made a block at a time into files
    (:mod:`kgalign.retrieval.sparse_file`: ``--engine ray``'s driver), the same rows."""
    from itertools import chain

    from kgalign.retrieval.tfidf import char_wb_ngrams, lexical_rows, words

    texts = (lexical_text(t) for t in chain(left_texts, right_texts))
    n = len(left_texts)
    left, right = lexical_rows(texts, [0, n, n + len(right_texts)], [char_wb_ngrams, words], spill)
    return left, right


#: Above this many targets the lexical candidate search ignores the n-grams and words
#: that more than ``COMMON_FEATURE_SHARE`` of the targets share: on large graphs they make
#: every block of the sparse product dense (every name shares " th" with every other)
#: while adding nothing to the ranking of the best candidates. Candidates are still
#: scored on every feature. Below it (every benchmark pair) nothing changes.
PRUNE_FROM_TARGETS = 50_000
COMMON_FEATURE_SHARE = 0.01
#: And those more than this many targets share, whatever the share (None: no such
#: bound). A bound makes the search's work per source constant, the whole search linear
#: in the number of targets instead of quadratic.
COMMON_FEATURE_TARGETS: int | None = None


def _prunes(n_targets: int) -> bool:
    return n_targets >= PRUNE_FROM_TARGETS


def search_keep(right: SparseRows) -> np.ndarray | None:
    """The features the lexical search keeps for the targets ``right`` (a mask over its
    columns), or None for all of them: when ``right`` is large its common features go
    (see PRUNE_FROM_TARGETS)."""
    n = right.shape[0]
    if not _prunes(n):
        return None
    df = column_counts(right)
    limit = _common_from(n)
    keep = df <= limit
    log.info("lexical search: %d of %d features shared by more than %d of %d targets ignored", int((~keep).sum()), len(keep), limit, n)
    return keep


def searched_targets(right: SparseRows, keep: np.ndarray | None, start: int = 0, stop: int | None = None) -> sparse.csr_matrix:
    """The targets ``start:stop`` of ``right`` as the search reads them: their ``keep``
    features (:func:`search_keep`), transposed to row-major CSR (features as rows, those
    targets as columns from 0). A slice is made from its own rows alone, so a search
    cut into slices never holds the whole transposed set."""
    part: sparse.csr_matrix = right if start == 0 and stop is None and sparse.issparse(right) else right[start:stop]
    if keep is not None:
        part = (part @ sparse.diags(keep.astype(part.dtype))).tocsr()
        part.eliminate_zeros()
    # Row-major once: a product with a column-major matrix converts it on every call
    # (every block), which cost more than the product itself on large target sets.
    return part.T.tocsr()


def _common_from(n_targets: int) -> int:
    """The most targets a feature the lexical search keeps may be shared by."""
    share = max(1, int(COMMON_FEATURE_SHARE * n_targets))
    return share if COMMON_FEATURE_TARGETS is None else min(share, COMMON_FEATURE_TARGETS)


#: Scores one thread of the lexical search holds at a time (about 200 MB with the
#: product and the partition's indices). At 188,000 targets (bench/large.py, 1M triples a
#: side) this is 85 sources a block instead of 512: 2.3 GB less at the peak, and no
#: slower (3.7 s against 5.3 s for 8,192 sources; docs/scale.md).
BLOCK_CELLS = 16_000_000


class LexicalSearch(Protocol):
    """A lexical search spread elsewhere (``--engine ray``: over the actors, each
    scoring a slice of the targets). ``topk`` gets the sources' rows, the targets' rows
    and the features to search (:func:`search_keep`; :func:`searched_targets` makes a
    slice of the targets as the search reads them) and gives :func:`lexical_topk`'s
    result, or None to leave a search to this process (one too small to be worth
    shipping)."""

    def topk(self, left: SparseRows, right: SparseRows, keep: np.ndarray | None, k: int, progress: Progress | None) -> tuple[np.ndarray, np.ndarray] | None: ...


_SEARCH: ContextVar[LexicalSearch | None] = ContextVar("kgalign_lexical_search", default=None)
_DENSE: ContextVar[DenseSearch | None] = ContextVar("kgalign_dense_search", default=None)


@contextmanager
def lexical_search(search: LexicalSearch) -> Iterator[None]:
    """Every :func:`lexical_topk` in this context (of this thread) asks ``search`` first."""
    with hooked(_SEARCH, search):
        yield


@contextmanager
def dense_search(search: DenseSearch) -> Iterator[None]:
    """Every :func:`dense_topk` in this context (of this thread) asks ``search`` first."""
    with hooked(_DENSE, search):
        yield


def lexical_topk(left: SparseRows, right: SparseRows, k: int, block_rows: int, progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Best ``k`` right rows per left row by sparse cosine, computed block by block; each
    row's best first, equal scores by target order (:func:`block_topk`).

    Blocks run on a thread per core (scipy's sparse product and numpy's partition
    release the GIL); each thread takes half a block so that memory stays as for one.
    A thread's block also holds at most BLOCK_CELLS scores (fewer rows against many
    targets): a block's product, its dense scores and their partition's indices take
    about 12 bytes a cell. The block size does not change the result; nor does a
    :class:`LexicalSearch` that cuts the targets into slices and merges their best.
    """
    import os
    from concurrent.futures import ThreadPoolExecutor

    k = min(k, right.shape[0])
    keep = search_keep(right)
    search = _SEARCH.get()
    if search is not None and k > 0:
        found = search.topk(left, right, keep, k, progress)
        if found is not None:
            return found
    right_t = searched_targets(right, keep)
    all_ids = np.empty((left.shape[0], k), dtype=np.int64)
    all_scores = np.empty((left.shape[0], k), dtype=np.float32)
    workers = max(1, min(os.cpu_count() or 1, 4))
    step = max(1, min(block_rows // workers, BLOCK_CELLS // max(1, right.shape[0])))

    def one(start: int) -> int:
        scores, ids = block_topk(left[start : start + step] @ right_t, k)
        all_ids[start : start + len(ids)] = ids
        all_scores[start : start + len(ids)] = scores
        return len(ids)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for done in pool.map(one, range(0, left.shape[0], step)):
            if progress:
                progress(done)
    return all_scores, all_ids


#: Below this share of positive scores in a block, :func:`block_topk` searches only
#: those; above, every column (laying the scores out costs about four times as much per
#: score as partitioning costs per column: bench/large.py's 250,000-triple pair).
SPARSE_TOPK_BELOW = 0.2


def block_topk(product: sparse.csr_matrix, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best columns of each row of a block of scores (non-negative), best
    first, equal scores by column: the same columns whichever partition of the columns
    is searched (a slice's best, merged by :func:`merge_topk`, are the whole's best).

    A row with fewer than ``k`` positive scores is filled with its first columns of
    score 0; another tie across the k-th place keeps the first columns.

    In a sparse block (see SPARSE_TOPK_BELOW) only the positive scores are searched:
    each row's are laid side by side, padded to the block's longest row, and
    partitioned there. On a large target set with its common features dropped a row
    scores a few percent of the targets: on bench/large.py's 250,000-triple pair this
    takes a third to a half of the time of partitioning every column, with the same
    result.
    """
    n_rows, n_cols = product.shape
    width = min(k, n_cols)
    if width <= 0:
        return np.empty((n_rows, 0), dtype=np.float32), np.empty((n_rows, 0), dtype=np.int64)
    product = product.tocsr()
    product.eliminate_zeros()
    counts = np.diff(product.indptr)
    laid: np.ndarray
    columns: np.ndarray | None = None  # None: places are columns
    if product.nnz > SPARSE_TOPK_BELOW * n_rows * n_cols:
        laid = product.toarray()  # dense rows: every column searched
    else:
        # Row r's positive scores at places 0..counts[r]-1 (in the product's order), then zeros.
        rows = np.repeat(np.arange(n_rows), counts)
        places = np.arange(product.nnz) - np.repeat(product.indptr[:-1], counts)
        longest = max(int(counts.max(initial=0)), width)
        laid = np.zeros((n_rows, longest), dtype=product.dtype)
        laid[rows, places] = product.data
        columns = np.zeros((n_rows, longest), dtype=np.int64)
        columns[rows, places] = product.indices
    short = np.flatnonzero(counts < width)
    scores, ids = _top_places(laid, columns, width, short)
    # A row with fewer positive scores than width: those, then its first columns of score 0.
    if len(short):
        head = np.ones((len(short), min(2 * width, n_cols)), dtype=bool)  # holds enough zero columns
        of_short = np.repeat(np.arange(len(short)), counts[short])
        entries = np.concatenate([np.arange(product.indptr[r], product.indptr[r + 1]) for r in short.tolist()])
        in_head = product.indices[entries] < head.shape[1]
        head[of_short[in_head], product.indices[entries[in_head]]] = False
        head &= np.cumsum(head, axis=1) <= (width - counts[short])[:, None]
        kept = np.hstack([np.arange(width) < counts[short][:, None], head])
        spread = np.hstack([ids[short], np.broadcast_to(np.arange(head.shape[1]), head.shape)])
        ids[short] = spread[kept].reshape(len(short), width)
    return scores, ids


def _top_places(laid: np.ndarray, columns: np.ndarray | None, k: int, short: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best scores of each row of ``laid`` (``k`` at most its width) and their
    ``columns`` (None: the places are the columns), by score then column; ``laid`` is
    negated in place.

    The partition takes one place more than it keeps: where that place ties with the
    k-th, the row's tied scores are taken by column (about 0.05% of the rows on
    bench/large.py's pair). The ``short`` rows (fewer than k positive scores) are left
    out of that: their padding ties at 0, and the caller replaces it."""
    np.negative(laid, out=laid)
    if laid.shape[1] <= k:
        places = np.broadcast_to(np.arange(laid.shape[1]), laid.shape).copy()
        values = laid
    else:
        part = np.argpartition(laid, k, axis=1)[:, : k + 1]
        places, values = part[:, :k], np.take_along_axis(laid, part[:, :k], axis=1)
        kth = values.max(axis=1)
        # The (k+1)-th best is at place k; no better than the k-th, and equal when tied.
        crowded = np.take_along_axis(laid, part[:, k:], axis=1)[:, 0] == kth
        crowded[short] = False
        for r in np.flatnonzero(crowded).tolist():
            better = np.flatnonzero(laid[r] < kth[r])
            tied = np.flatnonzero(laid[r] == kth[r])
            if columns is not None:
                tied = tied[np.argsort(columns[r, tied], kind="stable")]
            places[r] = np.concatenate([better, tied[: k - len(better)]])
            values[r] = laid[r, places[r]]
    ids = places if columns is None else np.take_along_axis(columns, places, axis=1)
    order = np.lexsort((ids, values), axis=-1)
    return -np.take_along_axis(values, order, axis=1), np.take_along_axis(ids, order, axis=1)


def merged_topk(found: Sequence[tuple[np.ndarray, np.ndarray]], k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best of each row of several searches' ``(scores, ids)`` (their ids already
    the whole's, :func:`merge_topk`); one search's as it is."""
    if len(found) == 1:
        return found[0]
    return merge_topk(np.hstack([s for s, _ in found]), np.hstack([i for _, i in found]), k)


def merge_topk(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best of each row of several slices' :func:`block_topk` side by side (their
    ids already the whole's), in :func:`block_topk`'s order."""
    order = np.lexsort((ids, -scores), axis=-1)[:, :k]
    return np.take_along_axis(scores, order, axis=1), np.take_along_axis(ids, order, axis=1)


def _pair_dots(a: Vectors, b: Vectors, rows: np.ndarray, cols: np.ndarray, step: int = 8192) -> np.ndarray:
    """Dot products a[rows[i]] . b[cols[i]], in slices so no big gathered copy is held
    (each slice's rows read from the file of a spilled side)."""
    out = np.empty(len(rows), dtype=np.float32)
    for start in range(0, len(rows), step):
        r, c = rows[start : start + step], cols[start : start + step]
        out[start : start + step] = np.einsum("ij,ij->i", a[r], b[c])
    return out


def _row_dot(a: SparseRows, b: SparseRows, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Sparse dot products a[rows[i]] . b[cols[i]] without forming a full product."""
    product = a[rows].multiply(b[cols])
    return np.asarray(product.sum(axis=1)).ravel().astype(np.float32)


def retrieve(
    left_iris: Sequence[str],
    right_iris: Sequence[str],
    left_dense: Vectors | None,
    right_dense: Vectors | None,
    left_lex: SparseRows | None,
    right_lex: SparseRows | None,
    config: RetrievalConfig,
    progress: Progress | None = None,
    left_struct: np.ndarray | SparseRows | None = None,
    right_struct: np.ndarray | SparseRows | None = None,
) -> list[Candidates]:
    """Candidates for every left entity, combining dense, lexical and neighbour scores.

    Without dense vectors (``dense_weight`` 0) the lexical channel alone finds and scores
    the candidates; without lexical vectors, the dense one.
    """
    n_left, n_right = len(left_iris), len(right_iris)
    if n_left == 0 or n_right == 0:
        return [Candidates(source=iri, items=[], margin=0.0, mutual=False) for iri in left_iris]
    pool = min(max(config.pool, config.k), n_right)
    # The channels in use, as (left, right) pairs of vectors; None: off.
    dense_sides = (left_dense, right_dense) if left_dense is not None and right_dense is not None and config.dense_weight > 0 else None
    lex_sides = (left_lex, right_lex) if left_lex is not None and right_lex is not None and (config.dense_weight < 1.0 or dense_sides is None) else None
    if dense_sides is None and lex_sides is None:
        raise ValueError("retrieve needs dense vectors, lexical vectors or both")
    found: list[np.ndarray] = []
    lex = None
    if dense_sides is not None:
        found.append(dense_topk(*dense_sides, pool, config.hnsw_threshold, config.hnsw_slice)[1])
    if lex_sides is not None:
        lex_scores, lex_ids = lexical_topk(*lex_sides, pool, config.block_rows, progress)
        found.append(lex_ids)
    elif progress:
        progress(n_left)
    structure_weight = config.resolved_structure_weight
    struct_sides = (left_struct, right_struct) if left_struct is not None and right_struct is not None and structure_weight > 0 else None
    if struct_sides is not None and config.neighbour_search:
        found.append(_neighbour_topk(*struct_sides, pool, config))
    rows, cols, order, kept = _pooled(np.hstack(found) if len(found) > 1 else found[0])
    if lex_sides is not None and dense_sides is None and len(found) == 1 and not _prunes(lex_sides[1].shape[0]):
        # The search scored every pooled pair on every feature already.
        lex = np.take_along_axis(lex_scores, order, axis=1)[kept]
    if config.self_join:
        # One graph against itself: an entity is not its own candidate.
        other = np.asarray(left_iris, dtype=object)[rows] != np.asarray(right_iris, dtype=object)[cols]
        rows, cols = rows[other], cols[other]
        lex = None if lex is None else lex[other]
    dense = _pair_dots(*dense_sides, rows, cols) if dense_sides is not None else None
    if lex_sides is not None and lex is None:
        lex = sparse_pair_dots(*lex_sides, rows, cols)
    if dense is not None and lex is not None:
        scores = config.dense_weight * dense + (1.0 - config.dense_weight) * lex
    else:
        scores = dense if dense is not None else lex
    if struct_sides is not None:
        if is_sparse(left_struct):
            struct = sparse_pair_dots(left_struct, right_struct, rows, cols)
        else:
            assert isinstance(left_struct, np.ndarray) and isinstance(right_struct, np.ndarray)  # dense neighbour vectors are arrays
            struct = _pair_dots(left_struct, right_struct, rows, cols)
        scores = (1.0 - structure_weight) * scores + structure_weight * struct
    return _assemble(left_iris, right_iris, rows, cols, scores, config.k)


def _neighbour_topk(left_struct: np.ndarray | SparseRows, right_struct: np.ndarray | SparseRows, k: int, config: RetrievalConfig) -> np.ndarray:
    """Ids of each source's best ``k`` targets on the neighbour channel alone; -1 where
    the score is not positive (an entity without neighbours finds nothing)."""
    if is_sparse(left_struct):
        scores, ids = lexical_topk(left_struct, right_struct, k, config.block_rows)
    else:
        assert isinstance(left_struct, np.ndarray) and isinstance(right_struct, np.ndarray)  # dense neighbour vectors are arrays
        scores, ids = dense_topk(left_struct, right_struct, k, config.hnsw_threshold, config.hnsw_slice)
    return np.where(scores > 0, ids, -1)


def _pooled(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The pairs (row, column) of the searches' best ids per row (one row of ``ids`` per
    source, the searches' ids side by side), each once and columns ascending within a
    row; FAISS's -1 padding is dropped. Also the argsort that ordered each row and the
    mask of the kept entries, to carry a search's scores along."""
    order = np.argsort(ids, axis=1, kind="stable")
    ordered = np.take_along_axis(ids, order, axis=1)
    kept = ordered >= 0
    kept[:, 1:] &= ordered[:, 1:] != ordered[:, :-1]
    return np.nonzero(kept)[0], ordered[kept].astype(np.int64), order, kept


def sparse_pair_dots(a: SparseRows, b: SparseRows, rows: np.ndarray, cols: np.ndarray, step: int = 8192) -> np.ndarray:
    """Sparse dot products a[rows[i]] . b[cols[i]], slice by slice."""
    # Small slices: the gathered rows of a large slice are fresh memory every time, and
    # its page faults cost more than the products (1.7 s against 0.7 s on DBP15K).
    out = np.empty(len(rows), dtype=np.float32)
    for start in range(0, len(rows), step):
        out[start : start + step] = _row_dot(a, b, rows[start : start + step], cols[start : start + step])
    return out


def _assemble(
    left_iris: Sequence[str],
    right_iris: Sequence[str],
    rows: np.ndarray,
    cols: np.ndarray,
    scores: np.ndarray,
    k: int,
) -> list[Candidates]:
    # Best source of every target among all pooled pairs, for the mutual-NN flag.
    best_source = np.full(len(right_iris), -1, dtype=np.int64)
    order = np.lexsort((-scores, cols))
    first = np.ones(len(order), dtype=bool)
    first[1:] = cols[order][1:] != cols[order][:-1]
    winners = order[first]
    best_source[cols[winners]] = rows[winners]

    # Every row's best k: by row, then score (best first), then column.
    order = np.lexsort((cols, -scores, rows))
    bounds = np.searchsorted(rows[order], np.arange(len(left_iris) + 1))
    rank = np.arange(len(order)) - np.repeat(bounds[:-1], np.diff(bounds))
    top = order[rank < k]
    top_rows, top_cols = rows[top], cols[top]
    ends = np.searchsorted(top_rows, np.arange(len(left_iris) + 1)).tolist()
    names = [right_iris[c] for c in top_cols.tolist()]
    rounded = [round(score, 6) for score in scores[top].astype(np.float64).tolist()]
    mutual = (best_source[top_cols] == top_rows).tolist()
    result: list[Candidates] = []
    for i, iri in enumerate(left_iris):
        lo, hi = ends[i], ends[i + 1]
        items = [Candidate(iri=names[j], score=rounded[j], rank=j - lo + 1) for j in range(lo, hi)]
        margin = items[0].score - items[1].score if len(items) > 1 else items[0].score if items else 0.0
        result.append(Candidates(source=iri, items=items, margin=round(float(margin), 6), mutual=bool(items) and mutual[lo]))
    return result
