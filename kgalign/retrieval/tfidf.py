"""TF-IDF rows of character 3-grams within words and of whole words, without scikit-learn.

The lexical channel used scikit-learn's ``TfidfVectorizer``; importing scikit-learn costs
about 0.7 s (it pulls in scipy.stats), a fifth of a whole run on a small pair. This is
the same computation, written for the two analyzers kgalign uses: ``char_wb`` n-grams
(each whitespace-separated word padded with one space on each side) and ``\\b\\w+\\b``
words, sublinear term frequency, smoothed idf, rows scaled to unit length, features in
sorted order. tests/test_tfidf.py checks it equal to scikit-learn's on real texts.
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Callable, Iterable, Sequence

import numpy as np
from scipy import sparse

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


def tfidf(corpus: Sequence[str], analyzer: Callable[[str], Iterable[str]], dtype: type = np.float32) -> sparse.csr_matrix:
    """Rows of sublinear-tf, smooth-idf, unit-length TF-IDF; columns are the sorted features.

    Raises ValueError when no text has a feature (as scikit-learn does: "empty vocabulary").
    """
    vocabulary: dict[str, int] = {}
    # Typed arrays, not lists: a list holds a Python int object per cell (about 36 bytes
    # against 4), which made the lists four times the size of the matrix they build.
    # 32-bit columns: a vocabulary has fewer than 2**31 features.
    indices = array("i")
    counts = array("i")
    indptr = array("q", [0])
    for text in corpus:
        row: dict[int, int] = {}
        for feature in analyzer(text):
            column = vocabulary.setdefault(feature, len(vocabulary))
            row[column] = row.get(column, 0) + 1
        indices.extend(row)
        counts.extend(row.values())
        indptr.append(len(indices))
    if not vocabulary:
        raise ValueError("empty vocabulary; no text has a feature")
    # Columns in sorted feature order, as scikit-learn numbers them.
    order = np.argsort(np.array(list(vocabulary), dtype=object), kind="stable")
    rank = np.empty(len(order), dtype=np.int32)
    rank[order] = np.arange(len(order), dtype=np.int32)
    del order
    cols = rank[np.frombuffer(indices, dtype=np.int32)]
    del indices, rank
    # Each step in place where it can be: the cells of a large graph's matrix number tens
    # of millions, and every temporary array of them costs 4 or 8 bytes a cell.
    tf = np.log(np.frombuffer(counts, dtype=np.int32).astype(np.float64))
    del counts
    tf += 1.0
    n = len(corpus)
    df = np.bincount(cols, minlength=len(vocabulary))
    idf = np.log((1.0 + n) / (1.0 + df)) + 1.0
    data = idf[cols]
    data *= tf
    del tf
    matrix = sparse.csr_matrix((data, cols, np.frombuffer(indptr, dtype=np.int64)), shape=(n, len(vocabulary)), copy=False)
    del data, cols
    matrix.sort_indices()
    matrix.data = matrix.data.astype(dtype)  # the values only: astype() would copy the indices too
    return normalize_rows(matrix)
