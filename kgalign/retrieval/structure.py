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
from typing import Any, TypeAlias

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


Vectors: TypeAlias = Any  # an array, a CSR matrix or sparse rows of a file (kgalign.retrieval.sparse_file)

#: Rows of the neighbour channel made at a time when the rows are in files.
BLOCK_ROWS = 16_384


def neighbour_vectors(adj: sparse.csr_matrix, vectors: Vectors, spill: bool = False) -> Vectors:
    """Normalised mean of neighbours' vectors; zero rows for entities without neighbours.

    ``vectors`` are dense name embeddings or sparse lexical (TF-IDF) rows; the result
    is of the same kind. With ``spill``, or sparse rows read from files, the rows are
    made a block at a time, each from the neighbours' rows it needs, and written to a
    file (:mod:`kgalign.retrieval.sparse_file`): the same rows as one product makes
    (a row's sums are taken in the same order), without all of them in memory.
    """
    from kgalign.retrieval.sparse_file import SparseSink, is_sparse, is_spilled
    from kgalign.retrieval.tfidf import normalize_rows

    if not is_sparse(vectors):
        mixed = np.asarray(adj @ vectors, dtype=np.float32)
        norms = np.linalg.norm(mixed, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        return mixed / norms
    if not spill and not is_spilled(vectors):
        return normalize_rows(sparse.csr_matrix(adj @ vectors, dtype=np.float32))
    adj = adj.tocsr()  # its rows' entries kept in their order: the sums' order
    sink = SparseSink(vectors.shape[1], spill)
    for start in range(0, adj.shape[0], BLOCK_ROWS):
        block = adj[start : start + BLOCK_ROWS]
        needed = np.unique(block.indices)
        # The block's neighbours renumbered in their order, so each row's terms come in the same order.
        local = sparse.csr_matrix((block.data, np.searchsorted(needed, block.indices), block.indptr), shape=(block.shape[0], len(needed)))
        sink.append(normalize_rows(sparse.csr_matrix(local @ vectors[needed], dtype=np.float32)))
    return sink.finish()


def propagate_seeds(
    left_vectors: Vectors,
    right_vectors: Vectors,
    left_order: Sequence[str],
    right_order: Sequence[str],
    seeds: Iterable[tuple[str, str]],
) -> Vectors:
    """A copy of the right vectors in which each seed target carries its left partner's
    vector (rows of files: a view that reads them so)."""
    from kgalign.retrieval.sparse_file import StackedRows, is_spilled

    left_index = {iri: i for i, iri in enumerate(left_order)}
    right_index = {iri: i for i, iri in enumerate(right_order)}
    n_right = right_vectors.shape[0]
    # Row j of the result is row source[j] of [right; left].
    source = np.arange(n_right)
    for left, right in seeds:
        i, j = left_index.get(left), right_index.get(right)
        if i is not None and j is not None:
            source[j] = n_right + i
    if is_spilled(left_vectors) or is_spilled(right_vectors):
        return StackedRows(right_vectors, left_vectors, source)
    if sparse.issparse(right_vectors):
        return sparse.vstack([right_vectors, left_vectors], format="csr")[source]
    return np.concatenate([right_vectors, left_vectors])[source]


def has_structure(table: EntityTable) -> bool:
    return any(entity.relations for entity in table.entities.values())
