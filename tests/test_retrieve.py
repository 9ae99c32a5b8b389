"""Retrieval with the real shipped MiniLM, a real FAISS index and TF-IDF n-grams."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse

from kgalign.retrieval.embed import CachedEmbedder, SentenceTransformerEmbedder, encode_sides
from kgalign.errors import KgalignError
from kgalign.evaluation.metrics import ranking_metrics, read_pairs
from kgalign.io.entities import load_entities
from kgalign.config import RetrievalConfig
from kgalign.retrieval.retrieve import dense_topk, lexical_vectors, retrieve
from kgalign.selection.predicates import build_profiles, choose_predicates, predicate_stats
from helpers import CountingEmbedder


@pytest.fixture(scope="module")
def profiles(persons):
    out = []
    for side in ("left", "right"):
        _, table = load_entities(persons[side], side)
        out.append(build_profiles(table, choose_predicates(predicate_stats(table))))
    return out


def test_embedder_returns_normalised_vectors(embedder) -> None:
    vectors = embedder.encode(["luke bakes", "bakes luke", "a completely different sentence"])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]


def test_vector_cache_returns_identical_vectors(embedder, tmp_path) -> None:
    cached = CachedEmbedder(embedder, tmp_path)
    first = cached.encode(["alpha", "beta"])
    second = cached.encode(["alpha", "beta"])
    assert cached.read == 2 and cached.computed == 2
    assert np.array_equal(first, second)
    assert len(cached.store.shards()) == 1


def test_vector_cache_puts_read_new_and_repeated_texts_each_at_its_row(embedder, tmp_path, monkeypatch) -> None:
    """The cached and the new vectors are put together a slice at a time (2 rows here),
    and a first call with no text twice returns the model's vectors as they are: every
    row equals the vector of its own text, computed alone."""
    import kgalign.retrieval.embed as embed

    monkeypatch.setattr(embed, "COPY_ROWS", 2)
    texts = ["alpha", "beta", "gamma", "delta", "epsilon"]
    alone = {text: embedder.encode([text])[0] for text in texts}
    cached = CachedEmbedder(embedder, tmp_path)
    first = cached.encode(texts[:2])
    mixed = ["gamma", "alpha", "delta", "gamma", "beta", "epsilon", "delta"]
    second = cached.encode(mixed)
    assert cached.read == 2 and cached.computed == 5  # gamma, delta, epsilon computed once each
    for row, text in zip(second, mixed):
        assert np.allclose(row, alone[text], atol=1e-5), text
    assert np.array_equal(first, second[[1, 4]])


def test_encode_sides_encodes_each_distinct_text_once(embedder) -> None:
    left = ["luke bakes", "anna sings", "luke bakes"]
    right = ["anna sings", "tom runs"]
    counting = CountingEmbedder(embedder)
    lv, rv = encode_sides(counting, left, right)
    assert counting.seen == 3
    assert lv.shape == (3, 384) and rv.shape == (2, 384)
    assert np.allclose(lv, embedder.encode(left), atol=1e-5)
    assert np.allclose(rv, embedder.encode(right), atol=1e-5)
    empty_l, empty_r = encode_sides(counting, [], ["tom runs"])
    assert empty_l.shape == (0, 384) and empty_r.shape == (1, 384)


def test_bfloat16_vectors_agree_with_float32(embedder) -> None:
    texts = ["luke bakes bread", "anna sings in paris", "97 bonnie & clyde", "till i collapse"]
    fast = SentenceTransformerEmbedder(precision="bfloat16", engine="torch")
    exact = SentenceTransformerEmbedder(precision="float32", engine="torch")
    assert fast.model_id != exact.model_id  # the vector cache keeps them apart
    a, b = exact.encode(texts), fast.encode(texts)
    assert b.dtype == np.float32 and np.allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-4)
    assert float(np.min(np.sum(a * b, axis=1))) > 0.999
    assert SentenceTransformerEmbedder(precision="auto").precision in {"float32", "bfloat16"}
    with pytest.raises(KgalignError, match="precision"):
        SentenceTransformerEmbedder(precision="int4")


def test_faiss_exact_and_hnsw_agree_on_the_best_match(embedder, profiles) -> None:
    left, right = profiles
    lv = embedder.encode([p.text() for p in left])
    rv = embedder.encode([p.text() for p in right])
    _, exact = dense_topk(lv, rv, 5, hnsw_threshold=10_000, hnsw_slice=10_000)
    _, hnsw = dense_topk(lv, rv, 5, hnsw_threshold=10, hnsw_slice=10_000)
    _, sliced = dense_topk(lv, rv, 5, hnsw_threshold=10, hnsw_slice=25)  # graphs of 20 targets
    assert (exact[:, 0] == hnsw[:, 0]).mean() > 0.95
    assert (exact[:, 0] == sliced[:, 0]).mean() > 0.95


@pytest.mark.parametrize("dense_weight", [1.0, 0.5, 0.0])
def test_hybrid_retrieval_finds_the_gold_matches(embedder, profiles, persons, dense_weight) -> None:
    left, right = profiles
    left_texts, right_texts = [p.text() for p in left], [p.text() for p in right]
    lex_l, lex_r = lexical_vectors(left_texts, right_texts)
    candidates = retrieve(
        [p.iri for p in left],
        [p.iri for p in right],
        embedder.encode(left_texts),
        embedder.encode(right_texts),
        lex_l,
        lex_r,
        RetrievalConfig(k=10, dense_weight=dense_weight),
    )
    gold = read_pairs(persons["gold"])
    metrics = ranking_metrics(candidates, gold)
    assert metrics["hits@10"] == 1.0
    assert metrics["hits@1"] >= 0.96
    for c in candidates:
        assert len(c.items) == 10
        assert [i.rank for i in c.items] == list(range(1, 11))
        assert all(a.score >= b.score for a, b in zip(c.items, c.items[1:]))
        assert c.margin == pytest.approx(c.items[0].score - c.items[1].score, abs=1e-5)
    by_source = {c.source: c for c in candidates}
    # A gold match found at rank 1 from both sides is flagged mutual.
    mutual = [by_source[a].mutual for a, b in gold if by_source[a].items[0].iri == b]
    assert sum(mutual) >= 0.9 * len(mutual)


class _Refusing:
    """An embedder that must not be asked: the cascade settled everything lexically."""

    model_id = "refusing"

    def encode(self, texts):
        raise AssertionError(f"the embedder was asked for {len(texts)} texts")


def test_cascade_embeds_only_what_the_lexical_pass_leaves_open(persons, embedder, tmp_path) -> None:
    """On the persons example the cascade finds the gold matches as the full retrieval
    does, while embedding a fraction of the entities (the sources that are not mutual
    nearest neighbours by the margin, and the targets they may still take); where every
    source settles, nothing is embedded at all."""
    from kgalign.config import AlignConfig
    from kgalign.pipeline import align

    gold = read_pairs(persons["gold"])
    full = align(persons["left"], persons["right"], AlignConfig(retrieval=RetrievalConfig(mode="full")), embedder=CountingEmbedder(embedder))
    counting = CountingEmbedder(embedder)
    cascade = align(persons["left"], persons["right"], AlignConfig(retrieval=RetrievalConfig(mode="cascade", settle_margin=0.1)), embedder=counting)
    assert ranking_metrics(cascade.candidates, gold)["hits@1"] >= ranking_metrics(full.candidates, gold)["hits@1"] - 0.02
    assert 0 < cascade.counts["settled_lexically"] <= len(cascade.candidates)
    assert cascade.counts["embedded_entities"] < full.counts["embedded_entities"] == 120
    assert counting.seen <= cascade.counts["embedded_entities"]
    unsettled = sum(1 for c in cascade.candidates if not (c.mutual and c.margin >= 0.1))
    assert cascade.counts["settled_lexically"] == len(cascade.candidates) - unsettled or unsettled == 0
    # Many-to-one: taken targets stay open to the sources the lexical pass left unsettled.
    shared = align(persons["left"], persons["right"], AlignConfig(resolve="many-to-one", retrieval=RetrievalConfig(mode="cascade", settle_margin=0.1)), embedder=embedder)
    assert shared.counts["embedded_entities"] >= cascade.counts["embedded_entities"]

    names = ["Ada Lovelace", "Alan Turing", "Grace Hopper"]
    for side in ("l", "r"):
        lines = [f'<urn:{side}:{i}> <http://xmlns.com/foaf/0.1/name> "{name}" .' for i, name in enumerate(names)]
        (tmp_path / f"{side}.nt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    settled = align(tmp_path / "l.nt", tmp_path / "r.nt", AlignConfig(retrieval=RetrievalConfig(mode="cascade")), embedder=_Refusing())
    assert settled.counts["embedded_entities"] == 0 and settled.counts["settled_lexically"] == 3
    assert sorted((link.left, link.right) for link in settled.links) == [(f"urn:l:{i}", f"urn:r:{i}") for i in range(3)]


def test_cascade_contests_a_source_whose_nearest_target_was_taken_unless_spared() -> None:
    """L0 settles on R0 lexically. L1's nearest name is R0 too, and its only open
    candidate (R1) is lexically further: L1 is contested (no counterpart of its own,
    most likely). Its embedding, though, makes R1 a clear mutual best among the open
    entities, so with a spare margin it is not contested."""
    from scipy import sparse

    from kgalign.retrieval.cascade import cascade

    def rows(*vectors: list[float]) -> sparse.csr_matrix:
        return sparse.csr_matrix(np.array(vectors, dtype=np.float32))

    left_lex = rows([1, 0, 0, 0], [0.8, 0.6, 0, 0])
    right_lex = rows([1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1])
    dense = {"L1": [1.0, 0.0], "R1": [1.0, 0.0], "R2": [0.0, 1.0]}
    asked: list[tuple[list[str], list[str]]] = []

    def encode(left: list[str], right: list[str]) -> tuple[np.ndarray, np.ndarray]:
        asked.append((left, right))
        return np.array([dense[t] for t in left], dtype=np.float32), np.array([dense[t] for t in right], dtype=np.float32)

    def run(spare: float):
        config = RetrievalConfig(k=2, structure_weight=0.0, spare_margin=spare)
        return cascade(["L0", "L1"], ["R0", "R1", "R2"], ["L0", "L1"], ["R0", "R1", "R2"], left_lex, right_lex, encode, config)

    contested, stats = run(-1.0)
    assert (stats.settled, stats.embedded_sources, stats.embedded_targets) == (1, 1, 2)
    assert asked[-1] == (["L1"], ["R1", "R2"])  # only the open source and the open targets
    assert contested[0].contested_by is None and contested[0].top.iri == "R0"
    assert contested[1].contested_by == "L0" and contested[1].top.iri == "R1"
    spared, _ = run(0.1)
    assert spared[1].contested_by is None and spared[1].mutual and spared[1].margin >= 0.1
    # A margin the second pass does not reach spares nothing.
    assert run(0.9)[0][1].contested_by == "L0"


def test_a_shared_rare_code_spares_a_contested_source() -> None:
    """The setting of the test above, with texts: L1 and its open candidate R1 share a
    model number no other target has, so L1 is not contested; with spare_codes off, or
    when another target has the number too, it is."""
    from scipy import sparse

    from kgalign.retrieval.cascade import cascade
    from kgalign.retrieval.retrieve import code_tokens, lexical_text

    assert code_tokens("Panasonic KX-TG1032S, 010-10609-00, 1955 grand prix, 1080p") == {"kxtg1032s", "0101060900", "1080p"}
    # Dates are no codes: year, month and day stay words that match across formats.
    assert lexical_text("born 1990-03-07") == "born 1990-03-07" and not code_tokens("07/03/1990 or 7/3/90")
    assert lexical_text("2-1/2 inch, 3-5 days, 702/731-7547") == "2-1/2 inch, 3-5 days, 7027317547"
    left_lex = sparse.csr_matrix(np.array([[1, 0, 0, 0], [0.8, 0.6, 0, 0]], dtype=np.float32))
    right_lex = sparse.csr_matrix(np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1]], dtype=np.float32))

    def encode(left: list[str], right: list[str]) -> tuple[np.ndarray, np.ndarray]:
        return np.ones((len(left), 2), dtype=np.float32) / np.sqrt(2), np.eye(2, dtype=np.float32)[: len(right)]

    def run(right_texts: list[str], codes: bool):
        config = RetrievalConfig(k=2, structure_weight=0.0, spare_margin=-1.0, spare_codes=codes)
        left_texts = ["sony turntable", "panasonic phone KX-TG1032S"]
        return cascade(["L0", "L1"], ["R0", "R1", "R2"], left_texts, right_texts, left_lex, right_lex, encode, config)[0]

    texts = ["sony turntable", "Panasonic KX-TG1032S dual handset", "garden hose"]
    assert run(texts, codes=True)[1].contested_by is None
    assert run(texts, codes=False)[1].contested_by == "L0"
    assert run([texts[0], texts[1], "case for kxtg1032s"], codes=True)[1].contested_by == "L0"


@pytest.mark.parametrize("struct_kind", ["lexical", "dense"])
def test_the_second_pass_finds_candidates_by_their_neighbours(struct_kind: str) -> None:
    """L0 settles on R0. L1's match R3 shares no word with it (a name in another
    language), and the two name channels' pools (2) hold the decoys R1 and R2; but L1
    and R3 have the same neighbours. With neighbour search the second pass takes R3 as
    a candidate, where the neighbour channel makes it the best; without, it is never
    scored. The first pass never searches the neighbour channel. The neighbour rows are
    TF-IDF rows (sparse) or embeddings (arrays, `--structure-vectors dense`)."""
    from scipy import sparse

    from kgalign.retrieval.cascade import cascade

    def rows(*vectors: list[float]) -> sparse.csr_matrix:
        return sparse.csr_matrix(np.array(vectors, dtype=np.float32))

    left_lex = rows([1, 0, 0, 0], [0, 1, 0, 0])
    right_lex = rows([1, 0, 0, 0], [0, 0.8, 0.6, 0], [0, 0.8, 0.6, 0], [0, 0, 0, 1])
    left_struct = rows([1, 0, 0], [0, 1, 0])
    right_struct = rows([1, 0, 0], [0, 0, 1], [0, 0, 1], [0, 1, 0])
    if struct_kind == "dense":
        left_struct, right_struct = left_struct.toarray(), right_struct.toarray()
    dense = {"L1": [1.0, 0.0], "R1": [0.6, 0.8], "R2": [0.6, 0.8], "R3": [0.0, 1.0]}

    def encode(left: list[str], right: list[str]) -> tuple[np.ndarray, np.ndarray]:
        return np.array([dense[t] for t in left], dtype=np.float32), np.array([dense[t] for t in right], dtype=np.float32)

    def run(search: bool):
        config = RetrievalConfig(k=2, pool=2, structure_weight=0.5, neighbour_search=search)
        names = ["L0", "L1"], ["R0", "R1", "R2", "R3"]
        return cascade(*names, *names, left_lex, right_lex, encode, config, left_struct, right_struct)

    found, stats = run(True)
    assert (stats.settled, stats.embedded_sources, stats.embedded_targets) == (1, 1, 3)
    assert found[0].top.iri == "R0"
    assert found[1].top.iri == "R3" and found[1].top.score == pytest.approx(0.5) and found[1].contested_by is None
    missed, stats = run(False)
    assert stats.settled == 1 and found[0] == missed[0]
    assert {c.iri for c in missed[1].items} == {"R1", "R2"}


def test_cascade_embeds_only_the_open_targets_within_reach() -> None:
    """One open source facing many leftover targets: with ``embed_pool`` 2 only its two
    lexically nearest open targets are embedded and ranked; the embedding then picks
    the second of them. With 0, every open target is embedded, to the same answer."""
    from kgalign.retrieval.cascade import cascade

    texts = ["acme widget 200", "acme widget 300", "acme widget 300 pro", "plain gasket", "rubber hose", "steel bolt", "copper pipe"]
    left_lex, right_lex = lexical_vectors(["acme widget 3oo"], texts)
    dense = {t: np.eye(8, dtype=np.float32)[i] for i, t in enumerate(texts)}
    dense["acme widget 3oo"] = dense["acme widget 200"]  # lexically second (0.52 vs 0.55)
    asked: list[list[str]] = []

    def encode(left: list[str], right: list[str]) -> tuple[np.ndarray, np.ndarray]:
        asked.append(right)
        return np.array([dense[t] for t in left]), np.array([dense[t] for t in right])

    def run(reach: int):
        config = RetrievalConfig(k=3, structure_weight=0.0, embed_pool=reach, settle_margin=0.9)
        return cascade(["L"], [f"R{i}" for i in range(len(texts))], ["acme widget 3oo"], texts, left_lex, right_lex, encode, config)

    near, stats = run(2)
    assert stats.embedded_targets == 2 and sorted(asked[-1]) == ["acme widget 200", "acme widget 300"]
    assert near[0].top.iri == "R0" and {c.iri for c in near[0].items} == {"R0", "R1"}
    everything, stats = run(0)
    assert stats.embedded_targets == len(texts) and asked[-1] == texts
    assert everything[0].top.iri == "R0"


def test_lexical_search_on_large_target_sets_ignores_common_features(monkeypatch) -> None:
    """Past PRUNE_FROM_TARGETS targets the candidate search drops the n-grams and words
    most targets share (they make the sparse product dense), yet still finds each name's
    counterpart first, with its full-feature score; the blocks run on threads."""
    import kgalign.retrieval.retrieve as retrieve_module

    names = [f"{first} {last} holdings company" for first in ("north", "south", "east", "west", "upper", "lower") for last in ("quarry", "vintner", "zephyr", "juniper", "oxbow", "kestrel", "marble")]
    left, right = lexical_vectors(names, list(reversed(names)))
    monkeypatch.setattr(retrieve_module, "PRUNE_FROM_TARGETS", 10)
    monkeypatch.setattr(retrieve_module, "COMMON_FEATURE_SHARE", 0.2)  # df > 8 of 42: "holdings company"
    keep = retrieve_module.search_keep(right)
    pruned = retrieve_module.searched_targets(right, keep)
    assert keep is not None and pruned.nnz < right.nnz and pruned.shape == (right.shape[1], right.shape[0])
    assert retrieve_module.search_keep(right[:5]) is None  # small: untouched
    common = retrieve_module.searched_targets(right[:5], None)
    assert common.nnz == right[:5].nnz
    # Slices made from their own targets are the whole's columns, cell for cell and in order.
    cuts = [0, 7, 20, 42]
    slices = [retrieve_module.searched_targets(right, keep, lo, hi) for lo, hi in zip(cuts, cuts[1:])]
    whole = pruned.tocsr()
    for (lo, hi), part in zip(zip(cuts, cuts[1:]), slices):
        expected = whole[:, lo:hi].tocsr()
        assert part.shape == expected.shape and part.has_sorted_indices
        assert np.array_equal(part.indptr, expected.indptr) and np.array_equal(part.indices, expected.indices)
        assert np.array_equal(part.data, expected.data)
    scores, ids = retrieve_module.lexical_topk(left, right, k=3, block_rows=4)
    n = len(names)
    best = ids[np.arange(n), np.argmax(scores, axis=1)]
    assert list(best) == [n - 1 - i for i in range(n)]
    full = np.asarray((left @ right.T).todense())
    assert np.all(scores.max(axis=1) < full.max(axis=1))  # the shared words no longer count
    # retrieve() rescores its pool on every feature: the same ranking as without pruning.
    config = RetrievalConfig(k=3, pool=3, structure_weight=0.0, dense_weight=0.0)
    cands = retrieve(names, list(reversed(names)), None, None, left, right, config)
    assert [c.top.iri for c in cands] == names
    assert [c.top.score for c in cands] == pytest.approx(list(full.max(axis=1)), abs=1e-5)


def test_lexical_search_block_size_changes_memory_not_results(monkeypatch) -> None:
    """A block of the lexical search holds at most BLOCK_CELLS scores (fewer sources
    against many targets); its size changes neither the candidates nor their scores."""
    import kgalign.retrieval.retrieve as retrieve_module

    names = [f"{a} {b} {c}" for a in ("north", "south", "east", "west") for b in ("quarry", "vintner", "zephyr", "oxbow") for c in ("ltd", "inc", "co")]
    left, right = lexical_vectors(names, [n.replace("o", "0", 1) for n in reversed(names)])
    whole_scores, whole_ids = retrieve_module.lexical_topk(left, right, k=4, block_rows=1024)
    monkeypatch.setattr(retrieve_module, "BLOCK_CELLS", right.shape[0])  # one source a block
    seen: list[int] = []
    one_scores, one_ids = retrieve_module.lexical_topk(left, right, k=4, block_rows=1024, progress=seen.append)
    assert seen == [1] * len(names)
    assert np.array_equal(one_ids, whole_ids) and np.array_equal(one_scores, whole_scores)


@pytest.mark.parametrize("sparse_below", [0.0, 1.1])  # every block searched as dense, as sparse
@pytest.mark.parametrize("zero_below", [1, 2, 3])
@pytest.mark.parametrize("seed", [3, 4])
def test_block_topk_is_the_best_by_score_then_column_however_the_targets_are_cut(seed, zero_below, sparse_below, monkeypatch) -> None:
    """Scores with many ties (small integers, and rows with fewer positive scores than
    k): each row's k best by score, then by column, exactly as a full sort gives them;
    the best of slices of the columns, merged, are the same."""
    from kgalign.retrieval import retrieve
    from kgalign.retrieval.retrieve import block_topk, merge_topk

    monkeypatch.setattr(retrieve, "SPARSE_TOPK_BELOW", sparse_below)

    rng = np.random.default_rng(seed)
    dense = rng.integers(0, 4, size=(40, 57)).astype(np.float32)
    dense[dense < zero_below] = 0  # sparse rows: some have fewer than k positive scores
    dense[5] = 0  # a row with no score at all
    dense[6, :50] = 0  # one with a few, all in the last columns
    scores = sparse.csr_matrix(dense)
    for k in (1, 7, 20, 56, 57):
        expected = np.lexsort((np.broadcast_to(np.arange(57), dense.shape), -dense), axis=-1)[:, :k]
        top_scores, top_ids = block_topk(scores, k)
        assert np.array_equal(top_ids, expected)
        assert np.array_equal(top_scores, np.take_along_axis(dense, expected, axis=1))
        cuts = [0, 13, 14, 40, 57]
        parts = [block_topk(scores[:, lo:hi], min(k, hi - lo)) for lo, hi in zip(cuts, cuts[1:])]
        merged = merge_topk(np.hstack([s for s, _ in parts]), np.hstack([i + lo for (_, i), lo in zip(parts, cuts)]), k)
        assert np.array_equal(merged[1], top_ids) and np.array_equal(merged[0], top_scores)


@pytest.mark.parametrize("dense_weight", [0.0, 0.5, 1.0])
def test_every_candidate_carries_its_exact_combined_score(dense_weight) -> None:
    """Whatever search found a pair (the lexical one, whose scores are reused, the dense
    one, or both), its score is the exact weighted cosine, each target appears once per
    source, best first, ties broken by target order."""
    rng = np.random.default_rng(7)
    left_names = [f"{a} {b}" for a in ("acme", "zenith", "orbit", "delta", "pioneer") for b in ("drill 2000", "saw x5", "lamp", "kettle")]
    right_names = [name.replace("2000", "2000 pro") for name in reversed(left_names)] + ["unrelated entry", "acme"]
    left_lex, right_lex = lexical_vectors(left_names, right_names)
    left_dense = rng.normal(size=(len(left_names), 8)).astype(np.float32)
    right_dense = rng.normal(size=(len(right_names), 8)).astype(np.float32)
    left_dense /= np.linalg.norm(left_dense, axis=1, keepdims=True)
    right_dense /= np.linalg.norm(right_dense, axis=1, keepdims=True)
    exact = (1 - dense_weight) * np.asarray((left_lex @ right_lex.T).todense()) + dense_weight * (left_dense @ right_dense.T)
    config = RetrievalConfig(k=4, pool=6, structure_weight=0.0, dense_weight=dense_weight)
    cands = retrieve(left_names, right_names, left_dense, right_dense, left_lex, right_lex, config)
    column = {name: j for j, name in enumerate(right_names)}
    for i, c in enumerate(cands):
        iris = [item.iri for item in c.items]
        assert len(iris) == len(set(iris)) == 4
        assert [item.rank for item in c.items] == [1, 2, 3, 4]
        assert [item.score for item in c.items] == pytest.approx([exact[i, column[n]] for n in iris], abs=2e-6)
        assert [item.score for item in c.items] == sorted((item.score for item in c.items), reverse=True)
        assert c.margin == pytest.approx(c.items[0].score - c.items[1].score, abs=2e-6)
    if dense_weight == 0.0:
        assert [c.top.iri for c in cands] == [n.replace("2000", "2000 pro") for n in left_names]


def test_taking_every_row_in_order_keeps_the_matrix_itself_instead_of_a_copy() -> None:
    """Without seed links every entity takes part: its TF-IDF rows and vectors are
    passed on as they are, not copied (a second copy of both sides' rows on large pairs)."""
    from kgalign.retrieval.candidates import taken_rows

    dense = np.arange(12, dtype=np.float32).reshape(4, 3)
    rows = sparse.csr_matrix(dense)
    for matrix in (dense, rows):
        assert taken_rows(matrix, np.arange(4)) is matrix
        for index in (np.array([0, 1, 3]), np.array([1, 0, 2, 3]), np.array([0, 1, 2, 2])):
            taken = taken_rows(matrix, index)
            assert taken is not matrix
            expected = dense[index]
            assert np.array_equal(taken.toarray() if sparse.issparse(taken) else taken, expected)
    assert taken_rows(dense, np.arange(0)).shape == (0, 3)


class SlicedDenseSearch:
    """A dense search cut into slices of the targets in this process, each slice's best
    merged (as --engine ray's actors do), for :func:`dense_search`."""

    def __init__(self, slices: int) -> None:
        self.slices = slices

    def topk(self, left, right, k, graphs):
        from kgalign.retrieval.retrieve import SliceIndex, merge_topk

        assert graphs is None  # an exact search
        cuts = np.linspace(0, right.shape[0], self.slices + 1).round().astype(int).tolist()
        found = []
        for lo, hi in zip(cuts, cuts[1:]):
            index = SliceIndex(lo, hi, k, hnsw=False)
            index.add(lo, right[lo:hi])
            found.append(index.search(left, k))
        return merge_topk(np.hstack([s for s, _ in found]), np.hstack([i for _, i in found]), k)


@pytest.mark.parametrize("slices", [2, 3, 4])
def test_a_dense_search_cut_in_slices_keeps_the_targets_one_search_keeps(slices) -> None:
    """FAISS scores a pair a little differently by where its target sits in the search, so
    the slices alone can keep another of the targets tied at the k-th place (targets
    repeated here make such ties); the k chosen again by each pair's own score are the same."""
    from kgalign.retrieval.retrieve import dense_search, dense_topk

    rng = np.random.default_rng(0)
    right = rng.standard_normal((3000, 384)).astype(np.float32)
    right[1500:1600] = right[:100]  # each of the first hundred targets twice
    right /= np.linalg.norm(right, axis=1, keepdims=True)
    left = (right[rng.integers(0, 3000, 700)] + 0.05 * rng.standard_normal((700, 384))).astype(np.float32)
    left /= np.linalg.norm(left, axis=1, keepdims=True)
    _, one = dense_topk(left, right, 30, hnsw_threshold=10_000, hnsw_slice=10_000)
    with dense_search(SlicedDenseSearch(slices)):
        _, sliced = dense_topk(left, right, 30, hnsw_threshold=10_000, hnsw_slice=10_000)
    assert np.array_equal(one, sliced)
    # The exact best 30 (by each pair's own score; ties by target).
    scores = left @ right.T
    truth = np.lexsort((np.broadcast_to(np.arange(3000), scores.shape), -scores), axis=1)[:, :30]
    assert np.mean(np.sort(one, axis=1) == np.sort(truth, axis=1)) > 0.999


def _clustered(rows: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((rows // 20, 384)).astype(np.float32)
    vectors = centres[rng.integers(0, len(centres), rows)] + 0.6 * rng.standard_normal((rows, 384)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_hnsw_graphs_find_the_same_candidates_however_many_threads_build_them(monkeypatch) -> None:
    """Past hnsw_threshold the targets are cut into graphs of at most hnsw_slice, each
    built on one thread from parts of GRAPH_PART_ROWS: the same candidates from graphs
    built one after the other or side by side, run after run, each part added on one
    thread; one graph of all the targets (another graph) finds others."""
    from kgalign.retrieval import retrieve as module
    from kgalign.retrieval.retrieve import graph_cuts, sliced_search

    threads = []
    real = module.omp_threads

    def recorded(count):
        threads.append(count)
        return real(count)

    monkeypatch.setattr(module, "omp_threads", recorded)

    monkeypatch.setattr(module, "GRAPH_PART_ROWS", 1000)  # each graph in several parts
    right = _clustered(9000, 0)
    left = _clustered(600, 1)
    graphs = graph_cuts(len(right), 4000)
    assert graphs == [0, 3000, 6000, 9000]
    alone = sliced_search(left, right, 20, graphs, workers=1)
    for workers in (2, 3):
        scores, ids = sliced_search(left, right, 20, graphs, workers=workers)
        assert np.array_equal(ids, alone[1]) and np.array_equal(scores, alone[1 - 1])
    # Each slice's rows are found where they are: the whole's row numbers.
    assert ids.min() >= 0 and ids.max() < 9000 and len(np.unique(ids // 3000)) == 3
    assert threads == [1] * 9 * 3  # three runs of three graphs of three parts
    _, one_graph = sliced_search(left, right, 20, [0, 9000])
    assert not np.array_equal(np.sort(one_graph, axis=1), np.sort(alone[1], axis=1))
    # The sliced graphs find the exact best as often as one graph of all (DBP15K: more).
    truth = np.argsort(-(left @ right.T), axis=1)[:, :20]
    recall = [np.mean([len(set(a) & set(b)) / 20 for a, b in zip(found, truth)]) for found in (alone[1], one_graph)]
    assert recall[0] >= recall[1] - 0.01, recall


def test_graph_cuts_and_a_slice_index_that_gets_rows_out_of_order() -> None:
    from kgalign.retrieval.retrieve import SliceIndex, graph_cuts, graph_parts

    assert graph_cuts(488_763, 250_000) == [0, 244_382, 488_763]
    assert graph_cuts(250_000, 250_000) == [0, 250_000]
    assert graph_cuts(7, 2) == [0, 2, 4, 5, 7]
    assert graph_parts(10, 20, 4) == [(10, 14), (14, 18), (18, 20)]
    index = SliceIndex(10, 20, 3, hnsw=True, part_rows=4)
    rows = _clustered(40, 2)
    index.add(10, rows[:4])
    with pytest.raises(LookupError, match=r"rows 15:17 are not the next part of the slice 10:20 \(filled to 14\)"):
        index.add(15, rows[5:7])
    with pytest.raises(LookupError, match="rows 14:25"):
        index.add(14, rows[4:15])  # past the slice's end
    with pytest.raises(LookupError, match="rows 14:20"):
        index.add(14, rows[4:10])  # the next rows, but not the next part: another graph
    index.add(14, rows[4:8])
    index.add(18, rows[8:10])
    scores, ids = index.search(rows[:10], 3)
    assert ids[:, 0].tolist() == list(range(10, 20))  # each row finds itself, as the whole's row
    exact = SliceIndex(0, 10, 3, hnsw=False, part_rows=4)
    exact.add(0, rows[:3])  # an exact index takes any next rows
    exact.add(3, rows[3:10])
    assert exact.search(rows[:10], 1)[1][:, 0].tolist() == list(range(10))


def test_the_graphs_an_actor_holds_are_those_one_process_builds(monkeypatch) -> None:
    """--engine ray's dense search past hnsw_threshold in one process: each actor's run of
    the graphs (:func:`_dense_shards`), filled with the parts the driver sends
    (:func:`graph_parts`), searched and merged by the actor, then by the driver: the
    candidates and scores :func:`sliced_search` finds. Graphs of other parts differ (so
    this could tell), and an actor refuses such parts."""
    from kgalign.retrieval import retrieve as module
    from kgalign.retrieval.retrieve import SliceIndex, graph_cuts, graph_parts, merge_topk, sliced_search
    from kgalign.runtime import ray_engine
    from kgalign.runtime.ray_engine import DenseShard, _dense_shards

    monkeypatch.setattr(module, "GRAPH_PART_ROWS", 1000)
    monkeypatch.setattr(ray_engine, "SHARD_FROM_CELLS", 0)
    right = _clustered(9000, 0)
    left = _clustered(600, 1)
    graphs = graph_cuts(len(right), 4000)

    class Pool:
        size = 2

    shards = _dense_shards(Pool(), len(left), len(right), graphs)
    assert shards == [[(0, 3000), (3000, 6000)], [(6000, 9000)]]

    def on_actors(part_rows):
        found = []
        for bounds in shards:
            shard = DenseShard([SliceIndex(lo, hi, 20, True, part_rows) for lo, hi in bounds])
            for lo, hi in bounds:
                for start, stop in graph_parts(lo, hi, part_rows):
                    shard.add(start, right[start:stop])
            found.append(shard.search(left, 20))
        return merge_topk(np.hstack([s for s, _ in found]), np.hstack([i for _, i in found]), 20)

    scores, ids = sliced_search(left, right, 20, graphs)
    on_two = on_actors(1000)
    assert np.array_equal(on_two[1], ids) and np.array_equal(on_two[0], scores)
    other = on_actors(700)
    assert (np.sort(other[1], axis=1) != np.sort(ids, axis=1)).any(axis=1).sum() > 10
    with pytest.raises(LookupError, match="not the next part"):
        SliceIndex(0, 3000, 20, True, 1000).add(0, right[:700])
