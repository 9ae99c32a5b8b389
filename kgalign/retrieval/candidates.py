"""Stage 3's wiring: which entities take part, their channels, and the candidates of each source.

:func:`find_candidates` is what a run calls: the cascade (lexical first, embeddings
only for what stays open) or full retrieval (every entity embedded), with the
neighbour channel when both graphs relate their entities, seed links left out and
propagated, and the closed-world restriction (``only_left``/``only_right``) applied.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from kgalign.config import AlignConfig, RetrievalConfig
from kgalign.evaluation.metrics import unknown_hint
from kgalign.model import Candidates, EntityTable
from kgalign.retrieval.cascade import CascadeStats, cascade
from kgalign.retrieval.embed import Embedder, encode_sides
from kgalign.retrieval.retrieve import lexical_vectors, retrieve
from kgalign.retrieval.sparse_file import SparseRows
from kgalign.retrieval.structure import adjacency, has_structure, neighbour_vectors, propagate_seeds
from kgalign.retrieval.vector_file import Vectors, subset
from kgalign.runtime.progress import progress_bar
from kgalign.runtime.stages import StageTimer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Side:
    """One side as retrieval reads it: its entity table, and its entities' IRIs and the
    texts embedded for them, in one order."""

    table: EntityTable
    iris: Sequence[str]
    texts: list[str]


def find_candidates(
    config: AlignConfig,
    seeds: list[tuple[str, str]],
    left: Side,
    right: Side,
    embedder: Embedder,
    timer: StageTimer,
    lexical: tuple[SparseRows, SparseRows] | None = None,
    tables_read: Callable[[], None] | None = None,
    spill: bool = False,
    blocks: Sequence[tuple[Sequence[str], Sequence[str]]] | None = None,
) -> tuple[list[Candidates], CascadeStats | None]:
    """Candidates of every taking-part source, by ``config.retrieval.mode``; the cascade's figures with them.

    ``lexical``: :func:`lexical_vectors` of both sides' texts, when the
    caller made them already (the cardinality detection), so they are not fitted twice.
    ``tables_read`` is called once nothing here reads the tables any more (the neighbour
    channel is built), before the search. With ``spill`` the vectors are kept in a file,
    not in memory (:mod:`kgalign.retrieval.vector_file`; ``--engine ray``'s driver).
    ``blocks``: the IRIs of each block of entities whose classes correspond
    (:mod:`kgalign.selection.classes`): each source's candidates are searched in its
    block only; entities of no block take no part. None: one block of every entity."""
    if blocks is not None and config.retrieval.mode == "cascade":
        return _blocked(config, seeds, left, right, embedder, timer, lexical, tables_read, spill, blocks)
    if config.retrieval.mode == "cascade":
        return _cascade_candidates(config, seeds, left, right, embedder, timer, lexical, tables_read, spill)
    left_vectors = right_vectors = None
    with timer.stage("embed"):
        if config.retrieval.needs_embeddings:
            left_vectors, right_vectors = encode_sides(embedder, left.texts, right.texts, spill)
        else:
            log.info("no embeddings: candidates from the lexical channel alone (--dense-weight 0)")
    with timer.stage("retrieve"):
        candidates = _retrieve_candidates(config, seeds, left, right, left_vectors, right_vectors, lexical, tables_read, spill)
    return candidates, None


def _blocked(
    config: AlignConfig,
    seeds: list[tuple[str, str]],
    left: Side,
    right: Side,
    embedder: Embedder,
    timer: StageTimer,
    lexical: tuple[SparseRows, SparseRows] | None,
    tables_read: Callable[[], None] | None,
    spill: bool,
    blocks: Sequence[tuple[Sequence[str], Sequence[str]]],
) -> tuple[list[Candidates], CascadeStats]:
    """The cascade run in each block, the TF-IDF fitted once on every entity; the
    candidates in the sources' order."""
    if lexical is None:
        lexical = lexical_vectors(left.texts, right.texts, spill)
    found: list[Candidates] = []
    total = CascadeStats(0, 0, 0, 0)
    for block_left, block_right in blocks:
        restrict = (set(block_left), set(block_right))
        candidates, stats = _cascade_candidates(config, seeds, left, right, embedder, timer, lexical, None, spill, restrict)
        found.extend(candidates)
        total.sources += stats.sources
        total.settled += stats.settled
        total.embedded_sources += stats.embedded_sources
        total.embedded_targets += stats.embedded_targets
    if tables_read is not None:
        tables_read()
    order = {iri: i for i, iri in enumerate(left.iris)}
    found.sort(key=lambda c: order[c.source])
    return found, total


#: Confident lexical matches the neighbour channel is checked on (a sample, evenly spaced).
AGREEMENT_SAMPLE = 2000
#: Share of those whose partner the neighbour channel alone must rank first to be used.
MIN_AGREEMENT = 0.5


def structure_agrees(left_lex: Any, right_lex: Any, left_struct: Any, right_struct: Any) -> bool:
    """Whether the neighbour channel agrees with the lexical channel's confident matches
    (mutual best, leading by the cascade's margin): it ranks their partner first for at
    least MIN_AGREEMENT of them. Where entities relate to things of other classes that
    say little (an identifier assignment, an event with nothing of its own), their
    neighbours look alike across every entity of a block, and the channel would drown
    the names: a block of classes is checked before it is used (logged)."""
    from kgalign.resolution.cardinality import _sorted_topk, sample_rows

    n, m = left_lex.shape[0], right_lex.shape[0]
    if n == 0 or m < 2:
        return True
    rows = sample_rows(n, AGREEMENT_SAMPLE)
    scores, ids = _sorted_topk(left_lex[rows], right_lex, 2)
    _, back = _sorted_topk(right_lex, left_lex, 1)
    confident = [(i, int(ids[r, 0])) for r, i in enumerate(rows) if scores[r, 0] - scores[r, 1] >= 0.05 and int(back[ids[r, 0], 0]) == i]
    if len(confident) < 10:
        return True  # too few to tell: as configured
    sources = np.array([i for i, _ in confident])
    partners = np.array([j for _, j in confident])
    _, best = _sorted_topk(left_struct[sources], right_struct, 1)
    agreement = float(np.mean(best[:, 0] == partners))
    if agreement < MIN_AGREEMENT:
        log.info("neighbour channel off in a block of %d x %d entities: it ranks first %.0f%% of the %d confident lexical matches' partners", n, m, 100 * agreement, len(confident))
        return False
    return True


def known_seeds(seeds: list[tuple[str, str]], left: EntityTable, right: EntityTable) -> list[tuple[str, str]]:
    """The seed links whose both IRIs are entities of the inputs (the others are logged and ignored)."""
    known = [(a, b) for a, b in seeds if a in left.entities and b in right.entities]
    if len(known) < len(seeds):
        log.warning(
            "%d of %d seed links name IRIs that are not entities of the inputs; ignored%s",
            len(seeds) - len(known), len(seeds), unknown_hint(seeds, left.entities, right.entities),
        )
    return known


def _cascade_candidates(
    config: AlignConfig,
    seeds: list[tuple[str, str]],
    left: Side,
    right: Side,
    embedder: Embedder,
    timer: StageTimer,
    lexical: tuple[SparseRows, SparseRows] | None = None,
    tables_read: Callable[[], None] | None = None,
    spill: bool = False,
    restrict: tuple[set[str], set[str]] | None = None,
) -> tuple[list[Candidates], CascadeStats]:
    """Candidates by :func:`kgalign.retrieval.cascade.cascade`: TF-IDF rows of every entity (the
    neighbour channel averages them), embeddings only for what the lexical pass leaves open.
    ``restrict``: the only sources and targets that take part (a block's)."""
    from kgalign.resolution.resolve import SHARED_TARGETS

    retrieval = replace(config.retrieval, exclusive=config.retrieval.exclusive and config.resolve not in SHARED_TARGETS)
    left_iris, right_iris, rows, cols = _participants(config, seeds, left.iris, right.iris, restrict)
    if restrict is not None and (not len(rows) or not len(cols)):
        return [Candidates(left_iris[i], [], 0.0, False) for i in rows], CascadeStats(len(rows), 0, 0, 0)
    left_texts, right_texts = left.texts, right.texts
    with timer.stage("retrieve"):
        left_lex, right_lex = lexical if lexical is not None else lexical_vectors(left_texts, right_texts, spill)
        left_struct = right_struct = None
        if _uses_structure(retrieval, left.table, right.table):
            left_struct, right_struct = _neighbour_channel(left.table, right.table, left_iris, right_iris, left_lex, right_lex, seeds, rows, cols, spill)
            if restrict is not None and not structure_agrees(taken_rows(left_lex, rows), taken_rows(right_lex, cols), left_struct, right_struct):
                left_struct = right_struct = None
                retrieval = replace(retrieval, structure_weight=0.0)
        if tables_read is not None:
            tables_read()

    def encode(left: list[str], right: list[str]) -> tuple[Vectors, Vectors]:
        return encode_sides(embedder, left, right, spill)

    with progress_bar("retrieve", len(rows)) as advance:
        candidates, stats = cascade(
            [left_iris[i] for i in rows],
            [right_iris[j] for j in cols],
            [left_texts[i] for i in rows],
            [right_texts[j] for j in cols],
            taken_rows(left_lex, rows),
            taken_rows(right_lex, cols),
            encode,
            retrieval,
            left_struct,
            right_struct,
            timer.stage,
            advance,
        )
    if "embed" not in timer.stages:
        timer.stages["embed"] = {"seconds": 0.0, "peak_rss_mb": StageTimer.current_mb()}
    return candidates, stats


def _retrieve_candidates(
    config: AlignConfig,
    seeds: list[tuple[str, str]],
    left: Side,
    right: Side,
    left_vectors: Vectors | None,
    right_vectors: Vectors | None,
    lexical: tuple[SparseRows, SparseRows] | None = None,
    tables_read: Callable[[], None] | None = None,
    spill: bool = False,
) -> list[Candidates]:
    """Candidates for the sources that take part, among the targets that take part.

    Seed-linked entities take no part (their match is known); ``only_left`` and
    ``only_right`` restrict both sides further (the closed-world protocol of the
    DBP15K papers). Neighbourhood vectors are built over all entities: from the
    embeddings, or from the TF-IDF rows of every entity's text
    (``structure_vectors="lexical"``).
    """
    retrieval = replace(config.retrieval, neighbour_search=False)  # the cascade's second pass alone
    left_iris, right_iris, rows, cols = _participants(config, seeds, left.iris, right.iris)
    left_texts, right_texts = left.texts, right.texts
    structure = _uses_structure(retrieval, left.table, right.table)
    lexical_structure = structure and retrieval.structure_vectors == "lexical"
    lex: tuple = (None, None)
    if lexical_structure:
        # Neighbours may be any entity: fit and keep the TF-IDF rows of all of them.
        everyone = lexical if lexical is not None else lexical_vectors(left_texts, right_texts, spill)
        name_vectors = everyone
        if retrieval.dense_weight < 1.0 or left_vectors is None:
            lex = (taken_rows(everyone[0], rows), taken_rows(everyone[1], cols))
    else:
        if structure and left_vectors is not None and right_vectors is not None:
            # The neighbour channel averages every entity's vectors: read into memory, even
            # when spilled, and the search then reads these arrays (no second copy).
            left_vectors, right_vectors = np.asarray(left_vectors), np.asarray(right_vectors)
        name_vectors = (left_vectors, right_vectors)
        if retrieval.dense_weight < 1.0 or left_vectors is None:
            lex = lexical_vectors([left_texts[i] for i in rows], [right_texts[j] for j in cols], spill)
    left_struct = right_struct = None
    if structure:
        left_struct, right_struct = _neighbour_channel(left.table, right.table, left_iris, right_iris, *name_vectors, seeds, rows, cols, spill)
    if tables_read is not None:
        tables_read()
    with progress_bar("retrieve", len(rows)) as advance:
        return retrieve(
            [left_iris[i] for i in rows],
            [right_iris[j] for j in cols],
            None if left_vectors is None else taken_rows(left_vectors, rows),
            None if right_vectors is None else taken_rows(right_vectors, cols),
            lex[0],
            lex[1],
            retrieval,
            advance,
            left_struct,
            right_struct,
        )


def _participants(
    config: AlignConfig, seeds: list[tuple[str, str]], left: Sequence[str], right: Sequence[str], restrict: tuple[set[str], set[str]] | None = None
) -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
    """Both sides' IRIs (as lists), and the rows (sources) and columns (targets) that take
    part (within ``restrict``'s sources and targets where given)."""
    left_iris = left if isinstance(left, list) else list(left)
    right_iris = right if isinstance(right, list) else list(right)
    rows = _taking_part(left_iris, {a for a, _ in seeds}, set(config.only_left), restrict[0] if restrict else None)
    cols = _taking_part(right_iris, {b for _, b in seeds}, set(config.only_right), restrict[1] if restrict else None)
    return left_iris, right_iris, rows, cols


def _uses_structure(retrieval: RetrievalConfig, left_table: EntityTable, right_table: EntityTable) -> bool:
    return retrieval.resolved_structure_weight > 0 and has_structure(left_table) and has_structure(right_table)


def _neighbour_channel(
    left_table: EntityTable,
    right_table: EntityTable,
    left_iris: list[str],
    right_iris: list[str],
    left_names: Any,
    right_names: Any,
    seeds: list[tuple[str, str]],
    rows: np.ndarray,
    cols: np.ndarray,
    spill: bool = False,
) -> tuple[Any, Any]:
    """Neighbour vectors of the taking-part sources and targets: the mean of each entity's
    neighbours' name vectors (dense or TF-IDF rows, of every entity), seed targets
    carrying their left partner's names. With ``spill`` (or names in files) the rows
    are made into files (:func:`kgalign.retrieval.structure.neighbour_vectors`)."""
    propagated = propagate_seeds(left_names, right_names, left_iris, right_iris, seeds)
    left_struct = taken_rows(neighbour_vectors(adjacency(left_table, left_iris), left_names, spill), rows)
    right_struct = taken_rows(neighbour_vectors(adjacency(right_table, right_iris), propagated, spill), cols)
    return left_struct, right_struct


def taken_rows(matrix: Any, index: np.ndarray) -> Any:
    """``matrix[index]`` (an array or a sparse matrix), or ``matrix`` itself when
    ``index`` takes every row in order: indexing by an array copies, and without seed
    links or ``--only`` every entity takes part. On the 4M synthetic pair that copy was
    the TF-IDF rows of both sides held twice from the lexical pass to the end of the
    retrieval."""
    if len(index) == matrix.shape[0] and np.array_equal(index, np.arange(len(index))):
        return matrix
    return subset(matrix, index)  # an array's or a sparse matrix's rows copied, a file's viewed


def _taking_part(iris: list[str], excluded: set[str], only: set[str], within: set[str] | None = None) -> np.ndarray:
    return np.array(
        [i for i, iri in enumerate(iris) if iri not in excluded and (not only or iri in only) and (within is None or iri in within)], dtype=np.int64
    )
