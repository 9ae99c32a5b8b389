"""kgalign's TF-IDF against scikit-learn's TfidfVectorizer, on real texts."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

from kgalign.retrieval.retrieve import lexical_text, lexical_vectors
from kgalign.retrieval.tfidf import char_wb_ngrams, normalize_rows, tfidf, words

DATA = Path(__file__).parent / "data" / "abt_buy_mini"


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    texts = []
    for name in ("Abt.csv", "Buy.csv"):
        with (DATA / name).open(encoding="utf-8", errors="replace") as handle:
            texts += [" | ".join(v or "" for k, v in row.items() if k != "id") for row in csv.DictReader(handle)]
    return [lexical_text(t) for t in texts] + ["", "a", "ab", "  x   y\t z ", "Éléphant à Zürich 東京", "!!! --"]


@pytest.mark.parametrize(
    ("analyzer", "options"),
    [(char_wb_ngrams, {"analyzer": "char_wb", "ngram_range": (3, 3)}), (words, {"analyzer": "word", "token_pattern": r"(?u)\b\w+\b"})],
)
def test_equal_to_scikit_learn(corpus, analyzer, options) -> None:
    ours = tfidf(corpus, analyzer)
    theirs = TfidfVectorizer(lowercase=False, sublinear_tf=True, dtype=np.float32, **options).fit_transform(corpus)
    assert ours.shape == theirs.shape and ours.dtype == np.float32
    assert abs(ours - theirs).max() < 1e-6


def test_normalize_rows_matches_scikit_learn(corpus) -> None:
    scale = np.full(len(corpus), 3.0, dtype=np.float32)
    scale[5] = 0.0
    matrix = (sparse.diags(scale) @ tfidf(corpus, words)).tocsr()
    matrix.eliminate_zeros()
    ours, theirs = normalize_rows(matrix), normalize(matrix)
    assert abs(ours - theirs).max() < 1e-6
    assert ours[5].nnz == 0 or abs(ours[5]).max() == 0


def test_lexical_vectors_edge_cases() -> None:
    with pytest.raises(ValueError, match="empty vocabulary"):
        tfidf(["", "  "], words)
    # Punctuation only: no words, but character n-grams.
    left, right = lexical_vectors(["!!!", "--"], ["?"])
    assert left.shape[0] == 2 and right.shape[0] == 1 and left.nnz > 0
    left, right = lexical_vectors(["", ""], [""])
    assert left.shape == (2, 1) and right.shape == (1, 1) and left.nnz == 0
    left, right = lexical_vectors(["Sony PS-LX350H turntable", "garden hose"], ["sony pslx350h"])
    scores = (left @ right.T).toarray().ravel()
    assert scores[0] > 0.3 and scores[1] == 0
