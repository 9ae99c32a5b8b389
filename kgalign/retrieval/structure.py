"""Neighbour-aware similarity: what an entity's neighbours are called.

Names miss what relations carry: two "Saint-Joseph" are told apart by the region they
are in. Each entity gets a *neighbourhood vector*: the normalised mean of the name
vectors of the entities it is related to (both directions). Two entities whose
neighbours have similar names score high. Known matches (seed links) are propagated:
a right seed entity takes the vector of its left partner, so seeds on both sides
count as the very same neighbour.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypeAlias

import numpy as np
from scipy import sparse

from kgalign.model import EntityTable


def adjacency(table: EntityTable, order: Sequence[str]) -> sparse.csr_matrix:
    """Row-normalised, symmetric entity-to-entity relation matrix in ``order``."""
    index = {iri: i for i, iri in enumerate(order)}
    rows: list[int] = []
    cols: list[int] = []
    for iri, entity in table.entities.items():
        i = index.get(iri)
        if i is None:
            continue
        for targets in entity.relations.values():
            for target in targets:
                j = index.get(target)
                if j is not None and j != i:
                    rows += [i, j]
                    cols += [j, i]
    n = len(order)
    matrix = sparse.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(n, n))
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    degree = np.asarray(matrix.sum(axis=1)).ravel()
    degree[degree == 0] = 1.0
    return sparse.diags(1.0 / degree) @ matrix


Vectors: TypeAlias = np.ndarray | sparse.csr_matrix


def neighbour_vectors(adj: sparse.csr_matrix, vectors: Vectors) -> Vectors:
    """Normalised mean of neighbours' vectors; zero rows for entities without neighbours.

    ``vectors`` are dense name embeddings or sparse lexical (TF-IDF) rows; the result
    is of the same kind.
    """
    if sparse.issparse(vectors):
        from kgalign.retrieval.tfidf import normalize_rows

        return normalize_rows(sparse.csr_matrix(adj @ vectors, dtype=np.float32))
    mixed = np.asarray(adj @ vectors, dtype=np.float32)
    norms = np.linalg.norm(mixed, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return mixed / norms


def propagate_seeds(
    left_vectors: Vectors,
    right_vectors: Vectors,
    left_order: Sequence[str],
    right_order: Sequence[str],
    seeds: Iterable[tuple[str, str]],
) -> Vectors:
    """A copy of the right vectors in which each seed target carries its left partner's vector."""
    left_index = {iri: i for i, iri in enumerate(left_order)}
    right_index = {iri: i for i, iri in enumerate(right_order)}
    n_right = right_vectors.shape[0]
    # Row j of the result is row source[j] of [right; left].
    source = np.arange(n_right)
    for left, right in seeds:
        i, j = left_index.get(left), right_index.get(right)
        if i is not None and j is not None:
            source[j] = n_right + i
    if sparse.issparse(right_vectors):
        return sparse.vstack([right_vectors, left_vectors], format="csr")[source]
    return np.concatenate([right_vectors, left_vectors])[source]


def has_structure(table: EntityTable) -> bool:
    return any(entity.relations for entity in table.entities.values())
