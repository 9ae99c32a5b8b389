"""TF-IDF rows of character 3-grams within words and of whole words, without scikit-learn.

The lexical channel used scikit-learn's ``TfidfVectorizer``; importing scikit-learn costs
about 0.7 s (it pulls in scipy.stats), a fifth of a whole run on a small pair. This is
the same computation, written for the two analyzers kgalign uses: ``char_wb`` n-grams
(each whitespace-separated word padded with one space on each side) and ``\\b\\w+\\b``
words, sublinear term frequency, smoothed idf, rows scaled to unit length, features in
sorted order. tests/test_tfidf.py checks it equal to scikit-learn's on real texts.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from array import array
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
from scipy import sparse

from kgalign.io.pread import read_range, write_at

log = logging.getLogger(__name__)

_WHITESPACE = re.compile(r"\s\s+")
_WORD = re.compile(r"(?u)\b\w+\b")


def char_wb_ngrams(text: str, n: int = 3) -> list[str]:
    """n-grams of each word padded with spaces; a word shorter than n counts once, whole."""
    grams: list[str] = []
    append = grams.append
    for word in _WHITESPACE.sub(" ", text).split():
        padded = f" {word} "
        if len(padded) <= n:
            append(padded)
            continue
        for start in range(len(padded) - n + 1):
            append(padded[start : start + n])
    return grams


def words(text: str) -> list[str]:
    return _WORD.findall(text)


def normalize_rows(matrix: sparse.csr_matrix) -> sparse.csr_matrix:
    """Each row scaled to unit Euclidean length (empty rows stay empty), in place when
    ``matrix`` is a CSR matrix already (no copy of a matrix that may hold gigabytes)."""
    if not sparse.isspmatrix_csr(matrix):
        matrix = sparse.csr_matrix(matrix)
    # The squares as a matrix sharing ``matrix``'s indices: the sums are those of
    # ``matrix.multiply(matrix)``, without its copy of the indices.
    squared = sparse.csr_matrix((matrix.data * matrix.data, matrix.indices, matrix.indptr), shape=matrix.shape, copy=False)
    squares = np.asarray(squared.sum(axis=1)).ravel()
    del squared
    norms = np.sqrt(squares)
    norms[norms == 0] = 1.0
    matrix.data *= np.repeat((1.0 / norms).astype(matrix.dtype), np.diff(matrix.indptr))
    return matrix


#: Rows of TF-IDF made at a time once the features are counted (their cells in float64
#: while they are made: about 20 bytes a cell with the columns and the counts).
BLOCK_ROWS = 65_536


#: Cells an analyzer's spool holds in memory before it writes them to its file (with ``spill``).
SPOOL_CELLS = 4 * 2**20


class _Spool:
    """32-bit ints appended a row at a time, read back by position: in memory, or with
    ``spill`` written to an unlinked temporary file every :data:`SPOOL_CELLS`. A file
    that cannot be made or written (no such folder, a full disk) leaves them in memory,
    with a warning."""

    def __init__(self, spill: bool) -> None:
        self.buffer = array("i")
        self.file: Any = None
        self.written = 0
        if spill:
            try:
                # Unbuffered: a write that fails fails at once, with nothing left to flush later.
                self.file = tempfile.TemporaryFile(prefix="kgalign-spool-", suffix=".i32", buffering=0)
            except OSError as exc:
                log.warning("could not spool TF-IDF counts in %s (%s); holding them in memory", tempfile.gettempdir(), exc)

    def extend(self, values: Iterable[int]) -> None:
        self.buffer.extend(values)
        if self.file is not None and len(self.buffer) >= SPOOL_CELLS:
            self._flush()

    def _flush(self) -> None:
        try:
            write_at(self.file.fileno(), np.frombuffer(self.buffer, dtype=np.int32), self.written * 4)
        except OSError as exc:
            log.warning("could not spool more TF-IDF counts in %s (%s); holding them in memory", tempfile.gettempdir(), exc)
            held = array("i")
            held.frombytes(os.pread(self.file.fileno(), self.written * 4, 0) if self.written else b"")
            held.extend(self.buffer)
            self.file.close()
            self.file, self.buffer, self.written = None, held, 0
            return
        self.written += len(self.buffer)
        self.buffer = array("i")

    def __len__(self) -> int:
        return self.written + len(self.buffer)

    def read(self, start: int, stop: int) -> np.ndarray:
        """Cells ``start:stop`` (a view of the memory, or a copy of the file's cells)."""
        if self.file is not None and self.buffer:  # everything in the file from here on (reading starts once all is added)
            self._flush()
        if self.file is None:
            return np.frombuffer(self.buffer, dtype=np.int32)[start:stop]
        return read_range(self.file.fileno(), np.int32, start, min(stop, self.written))  # empty where stop <= start

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
        self.buffer = array("i")


class _Features:
    """One analyzer's pass over the texts: its vocabulary (in the order features are
    first seen) and each text's features and counts, as typed arrays (a list holds a
    Python int object per cell, about 36 bytes against 4) with 32-bit columns (a
    vocabulary has fewer than 2**31 features). Once :meth:`fit` has turned the
    vocabulary into sorted columns and their idf, :meth:`block` makes any rows."""

    def __init__(self, analyzer: Callable[[str], Iterable[str]], spill: bool = False) -> None:
        self.analyzer = analyzer
        self.vocabulary: dict[str, int] = {}
        self._ids = _Spool(spill)
        self._counts = _Spool(spill)
        self._indptr = array("q", [0])
        self.rank = np.zeros(0, dtype=np.int32)
        self.idf = np.zeros(0, dtype=np.float64)
        self.n_features = 0

    def add(self, text: str) -> None:
        vocabulary = self.vocabulary
        row: dict[int, int] = {}
        for feature in self.analyzer(text):
            column = vocabulary.setdefault(feature, len(vocabulary))
            row[column] = row.get(column, 0) + 1
        self._ids.extend(row)
        self._counts.extend(row.values())
        self._indptr.append(len(self._ids))

    def fit(self) -> None:
        """Columns in sorted feature order, as scikit-learn numbers them, and each one's
        smoothed idf over the texts added. Raises ValueError on an empty vocabulary."""
        if not self.vocabulary:
            raise ValueError("empty vocabulary; no text has a feature")
        order = np.argsort(np.array(list(self.vocabulary), dtype=object), kind="stable")
        self.n_features = len(order)
        self.vocabulary = {}  # the columns are all the rows need from here on
        self.rank = np.empty(len(order), dtype=np.int32)
        self.rank[order] = np.arange(len(order), dtype=np.int32)
        del order
        n = len(self._indptr) - 1
        df = np.zeros(self.n_features, dtype=np.int64)
        for start in range(0, len(self._ids), SPOOL_CELLS):
            df += np.bincount(self.rank[self._ids.read(start, start + SPOOL_CELLS)], minlength=len(df))
        self.idf = np.log((1.0 + n) / (1.0 + df)) + 1.0

    def block(self, start: int, stop: int, dtype: type = np.float32) -> sparse.csr_matrix:
        """Rows ``start:stop``: sublinear tf times idf, scaled to unit length."""
        indptr = np.frombuffer(self._indptr, dtype=np.int64)[start : stop + 1]
        lo, hi = int(indptr[0]), int(indptr[-1])
        cols = self.rank[self._ids.read(lo, hi)]
        # Each step in place where it can be: every temporary array costs 4 or 8 bytes a cell.
        tf = np.log(self._counts.read(lo, hi).astype(np.float64))
        tf += 1.0
        data = self.idf[cols]
        data *= tf
        del tf
        matrix = sparse.csr_matrix((data, cols, indptr - lo), shape=(stop - start, self.n_features), copy=False)
        matrix.sort_indices()
        matrix.data = matrix.data.astype(dtype)  # the values only: astype() would copy the indices too
        return normalize_rows(matrix)

    def close(self) -> None:
        self._ids.close()
        self._counts.close()


def tfidf(corpus: Sequence[str], analyzer: Callable[[str], Iterable[str]], dtype: type = np.float32) -> sparse.csr_matrix:
    """Rows of sublinear-tf, smooth-idf, unit-length TF-IDF; columns are the sorted features.

    Raises ValueError when no text has a feature (as scikit-learn does: "empty vocabulary").
    """
    features = _Features(analyzer)
    for text in corpus:
        features.add(text)
    features.fit()
    return features.block(0, len(corpus), dtype)


def lexical_rows(
    texts: Iterable[str], cuts: Sequence[int], analyzers: Sequence[Callable[[str], Iterable[str]]], spill: bool = False
) -> list[Any]:
    """TF-IDF rows of ``texts`` for each analyzer, side by side (each analyzer's part
    scaled to unit length, then the whole row), fitted on all the texts, and cut at
    ``cuts`` (row numbers, from 0 to the number of texts): one matrix per cut.

    The texts are read once; the rows are made :data:`BLOCK_ROWS` at a time, so that
    with ``spill`` (``--engine ray``'s driver) they go to files
    (:class:`kgalign.retrieval.sparse_file.SparseFile`) and the process never holds
    them all. An analyzer that finds no feature in any text is left out; with none
    left, every row is empty (one column)."""
    from kgalign.retrieval.sparse_file import SparseSink

    every = [_Features(analyzer, spill) for analyzer in analyzers]
    for text in texts:
        for features in every:
            features.add(text)
    fitted = []
    for features in every:
        try:
            features.fit()
        except ValueError:  # no text has such a feature (all empty, or punctuation only)
            continue
        fitted.append(features)
    n_cols = sum(features.n_features for features in fitted) if fitted else 1
    sinks = []
    for start, stop in zip(cuts, cuts[1:]):
        sink = SparseSink(n_cols, spill)
        for lo in range(start, stop, BLOCK_ROWS):
            hi = min(lo + BLOCK_ROWS, stop)
            if not fitted:
                sink.append(sparse.csr_matrix((hi - lo, 1), dtype=np.float32))
                continue
            parts = [features.block(lo, hi) for features in fitted]
            # Stacked as CSR directly (not through a COO copy of every cell).
            sink.append(normalize_rows(sparse.hstack(parts, format="csr")))
        sinks.append(sink)
    for features in every:
        features.close()  # the counts go before the blocks in memory are stacked
    del every, fitted
    return [sink.finish() for sink in sinks]
