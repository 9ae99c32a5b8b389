"""Lexical first, embeddings only where they are needed.

Embedding every entity is the slowest stage of a run on a CPU, and for most sources it
changes nothing: when a source and its best candidate choose each other by a clear
margin on character n-grams and words, the sentence embedding only confirms it. The
cascade therefore works in two passes:

1. every source is ranked on the lexical channel (TF-IDF of character 3-grams and
   words), with the neighbour channel built from the same TF-IDF rows;
2. a source is *settled* when its best candidate is a mutual nearest neighbour leading
   the runner-up by at least ``settle_margin``. Only the unsettled sources, and the
   targets no settled source has taken, are embedded; they are ranked again on the full
   score (dense and lexical, and the neighbour channel), among those open targets.

Settled sources keep their lexical candidates. Nothing is embedded when every source
settles. The first pass is the retrieval of ``--dense-weight 0``; the second, the
default retrieval restricted to what is left (see :func:`kgalign.retrieve.retrieve`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy import sparse

from kgalign.model import Candidates
from kgalign.retrieve import Progress, RetrievalConfig, retrieve

log = logging.getLogger(__name__)

#: Embeds (left texts, right texts) into two arrays of normalised rows.
Encode = Callable[[list[str], list[str]], tuple[np.ndarray, np.ndarray]]
Stage = Callable[[str], object]


@dataclass
class CascadeStats:
    sources: int
    settled: int
    embedded_sources: int
    embedded_targets: int


def is_settled(cands: Candidates, margin: float) -> bool:
    return bool(cands.items) and cands.mutual and cands.margin >= margin


def cascade(
    left_iris: Sequence[str],
    right_iris: Sequence[str],
    left_texts: Sequence[str],
    right_texts: Sequence[str],
    left_lex: sparse.csr_matrix,
    right_lex: sparse.csr_matrix,
    encode: Encode,
    config: RetrievalConfig,
    left_struct: sparse.csr_matrix | None = None,
    right_struct: sparse.csr_matrix | None = None,
    stage: Stage | None = None,
    progress: Progress | None = None,
) -> tuple[list[Candidates], CascadeStats]:
    """Candidates of every source (in ``left_iris`` order) by the two passes above.

    ``stage(name)`` is a context manager factory (a :class:`kgalign.stages.StageTimer`'s
    ``stage``) so that the embedding is timed as the ``embed`` stage.
    """
    import contextlib

    stage = stage or (lambda name: contextlib.nullcontext())
    with stage("retrieve"):
        first = retrieve(
            left_iris, right_iris, None, None, left_lex, right_lex, replace(config, dense_weight=0.0), progress, left_struct, right_struct
        )
    open_rows = [i for i, cands in enumerate(first) if not is_settled(cands, config.settle_margin)]
    taken = {cands.items[0].iri for cands in first if is_settled(cands, config.settle_margin)}
    open_cols = [j for j, iri in enumerate(right_iris) if iri not in taken]
    stats = CascadeStats(len(left_iris), len(left_iris) - len(open_rows), 0, 0)
    if not open_rows or not open_cols or config.dense_weight <= 0:
        log.info("cascade: %d of %d sources settled on the lexical channel; nothing embedded", stats.settled, stats.sources)
        return first, stats
    with stage("embed"):
        left_dense, right_dense = encode([left_texts[i] for i in open_rows], [right_texts[j] for j in open_cols])
    stats.embedded_sources, stats.embedded_targets = len(open_rows), len(open_cols)
    log.info(
        "cascade: %d of %d sources settled on the lexical channel; %d sources and %d open targets embedded",
        stats.settled,
        stats.sources,
        len(open_rows),
        len(open_cols),
    )
    with stage("retrieve"):
        second = retrieve(
            [left_iris[i] for i in open_rows],
            [right_iris[j] for j in open_cols],
            left_dense,
            right_dense,
            left_lex[open_rows],
            right_lex[open_cols],
            config,
            None,
            None if left_struct is None else left_struct[open_rows],
            None if right_struct is None else right_struct[open_cols],
        )
    result = list(first)
    for i, cands in zip(open_rows, second):
        result[i] = cands
    return result, stats
