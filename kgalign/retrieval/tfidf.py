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
    """Each row scaled to unit Euclidean length (empty rows stay empty)."""
    matrix = sparse.csr_matrix(matrix)
    squares = np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel()
    norms = np.sqrt(squares)
    norms[norms == 0] = 1.0
    scale = np.repeat((1.0 / norms).astype(matrix.dtype), np.diff(matrix.indptr))
    matrix.data = matrix.data * scale
    return matrix


def tfidf(corpus: Sequence[str], analyzer: Callable[[str], Iterable[str]], dtype: type = np.float32) -> sparse.csr_matrix:
    """Rows of sublinear-tf, smooth-idf, unit-length TF-IDF; columns are the sorted features.

    Raises ValueError when no text has a feature (as scikit-learn does: "empty vocabulary").
    """
    vocabulary: dict[str, int] = {}
    # Typed arrays, not lists: a list holds a Python int object per cell (about 36 bytes
    # against 8 and 4), which made the lists four times the size of the matrix they build.
    indices = array("q")
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
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    cols = rank[np.frombuffer(indices, dtype=np.int64)]
    del indices
    tf = 1.0 + np.log(np.frombuffer(counts, dtype=np.int32).astype(np.float64))
    del counts
    n = len(corpus)
    df = np.bincount(cols, minlength=len(vocabulary))
    idf = np.log((1.0 + n) / (1.0 + df)) + 1.0
    matrix = sparse.csr_matrix((tf * idf[cols], cols, np.frombuffer(indptr, dtype=np.int64)), shape=(n, len(vocabulary)))
    matrix.sort_indices()
    return normalize_rows(matrix.astype(dtype))
