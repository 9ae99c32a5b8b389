"""The per-text vector cache (kgalign/retrieval/vector_cache.py), with the real MiniLM embedder."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from kgalign.errors import KgalignError
from kgalign.retrieval import vector_cache
from kgalign.retrieval.embed import CachedEmbedder
from kgalign.retrieval.vector_cache import VectorStore, text_key
from helpers import CountingEmbedder


def test_only_texts_the_cache_lacks_are_embedded(embedder, tmp_path) -> None:
    counting = CountingEmbedder(embedder)
    first = CachedEmbedder(counting, tmp_path)
    before = first.encode(["luke bakes", "anna sings", "tom runs"])
    assert first.read == 0 and first.computed == 3
    # A later run (a new embedder object): one new text, one repeated within the call.
    later = CachedEmbedder(counting, tmp_path)
    after = later.encode(["tom runs", "new text here", "luke bakes", "new text here"])
    assert counting.asked[-1] == ["new text here"]
    assert later.read == 2 and later.computed == 1
    # Cached texts get exactly the bits stored; the new one what the embedder gives.
    assert np.array_equal(after[0], before[2]) and np.array_equal(after[2], before[0])
    assert np.array_equal(after[1], after[3])
    assert np.allclose(after[1], embedder.encode(["new text here"])[0], atol=1e-5)
    # Everything cached: the embedder is not asked at all.
    again = CachedEmbedder(counting, tmp_path)
    calls = len(counting.asked)
    assert np.array_equal(again.encode(["luke bakes", "new text here"]), np.stack([before[0], after[1]]))
    assert len(counting.asked) == calls and again.read == 2 and again.computed == 0


def test_models_are_kept_apart(embedder, tmp_path) -> None:
    CachedEmbedder(embedder, tmp_path).encode(["luke bakes"])
    other = CountingEmbedder(embedder)
    other.model_id = "another model"
    CachedEmbedder(other, tmp_path).encode(["luke bakes"])
    assert other.asked == [["luke bakes"]]
    assert len(list(tmp_path.iterdir())) == 2


def test_oldest_copy_wins_and_shards_are_merged(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(vector_cache, "MAX_SHARDS", 3)
    store = VectorStore(tmp_path, "m")
    keys = [text_key(f"text {i}") for i in range(10)]
    store.put(keys[:5], np.full((5, 4), 1.0, dtype=np.float32))
    store.put(keys[3:8], np.full((5, 4), 2.0, dtype=np.float32))  # keys 3 and 4 twice: the first shard's copy counts
    store.put(keys[8:9], np.full((1, 4), 3.0, dtype=np.float32))
    found, vectors = store.get(keys)
    assert found.tolist() == [True] * 9 + [False]
    assert vectors is not None and vectors[:, 0].tolist() == [1, 1, 1, 1, 1, 2, 2, 2, 3]
    store.put(keys[9:], np.full((1, 4), 4.0, dtype=np.float32))  # a fourth shard: all merged into one
    assert len(store.shards()) == 1
    found, vectors = store.get(list(reversed(keys)))
    assert found.all() and vectors is not None and vectors[:, 0].tolist() == [4, 3, 2, 2, 2, 1, 1, 1, 1, 1]
    # A second merge takes the first one's shard in: one shard again, the oldest copies kept.
    more = [text_key(f"more {i}") for i in range(3)]
    for i, key in enumerate(more):
        store.put([key, keys[0]], np.full((2, 4), 5.0 + i, dtype=np.float32))
    assert len(store.shards()) == 1
    found, vectors = store.get(keys + more)
    assert found.all() and vectors is not None and vectors[:, 0].tolist() == [1, 1, 1, 1, 1, 2, 2, 2, 3, 4, 5, 6, 7]


def test_a_merge_removes_what_killed_runs_left(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(vector_cache, "MAX_SHARDS", 1)
    store = VectorStore(tmp_path, "m")
    store.put([text_key("a")], np.ones((1, 4), dtype=np.float32))
    old_orphan = store.folder / "00000000000000000001-99.vectors.npy"  # killed between its two renames
    old_tmp = store.folder / ".00000000000000000002-99.keys.npy.99.tmp"
    young_orphan = store.folder / "00000000000000000003-98.vectors.npy"  # maybe a running write's
    for path in (old_orphan, old_tmp, young_orphan):
        path.write_bytes(b"x")
    stale = time.time() - vector_cache.ORPHAN_AGE_S - 10
    os.utime(old_orphan, (stale, stale))
    os.utime(old_tmp, (stale, stale))
    complete = store.shards()[0]
    for path in (complete, complete.with_name(complete.name.replace(".keys.", ".vectors."))):
        os.utime(path, (stale, stale))  # a complete shard, however old, is no orphan
    broken = store.folder / "00000000000000000004-97.keys.npy"  # keys an hour old, vectors never written
    broken.write_bytes(b"not numpy")
    os.utime(broken, (stale, stale))
    store.put([text_key("b")], np.ones((1, 4), dtype=np.float32))  # a second shard: merged
    assert not old_orphan.exists() and not old_tmp.exists() and young_orphan.exists() and not broken.exists()
    assert len(store.shards()) == 1 and store.get([text_key("a"), text_key("b")])[0].all()


def test_a_merge_killed_midway_or_a_shard_whose_files_disagree_serves_no_wrong_vector(tmp_path, monkeypatch) -> None:
    """A merge writes a shard of its own name, keys last: killed after its vectors, it
    leaves the cache as it was. A shard whose keys and vectors differ in length (another
    process's files mixed) is passed over by the reader and by the next merge alike."""
    monkeypatch.setattr(vector_cache, "MAX_SHARDS", 2)
    store = VectorStore(tmp_path, "m")
    keys = [text_key(f"k{i}") for i in range(4)]
    for i, key in enumerate(keys[:2]):
        store.put([key], np.full((1, 4), float(i), dtype=np.float32))

    real_write = store._write

    def killed_after_the_vectors(name, words, vectors, rows):
        if vector_cache.MERGED not in name:
            return real_write(name, words, vectors, rows)  # the new shard is written whole
        np.save(store.folder / f"{name}{vector_cache.VECTORS}", vectors[rows])
        raise KeyboardInterrupt

    monkeypatch.setattr(store, "_write", killed_after_the_vectors)
    with pytest.raises(KeyboardInterrupt):
        store.put([keys[2]], np.full((1, 4), 2.0, dtype=np.float32))  # the third shard: a merge, killed
    monkeypatch.setattr(store, "_write", real_write)
    found, vectors = store.get(keys[:3])
    assert found.tolist() == [True, True, True] and vectors is not None and vectors[:, 0].tolist() == [0, 1, 2]

    # One shard's vectors swapped for a longer array: its keys no longer say which row is whose.
    first = store.shards()[0]
    np.save(first.with_name(first.name.replace(".keys.", ".vectors.")), np.full((3, 4), 9.0, dtype=np.float32))
    store.put([keys[3]], np.full((1, 4), 3.0, dtype=np.float32))  # a merge
    found, vectors = store.get(keys)
    assert found.tolist() == [False, True, True, True] and vectors is not None and vectors[:, 0].tolist() == [1, 2, 3]


def test_a_broken_or_half_written_shard_is_passed_over(tmp_path) -> None:
    store = VectorStore(tmp_path, "m")
    keys = [text_key("a"), text_key("b")]
    store.put(keys[:1], np.ones((1, 4), dtype=np.float32))
    store.put(keys[1:], np.ones((1, 4), dtype=np.float32))
    first, second = store.shards()
    second.write_bytes(b"not numpy")
    (tmp_path / store.folder.name / ".left-by-a-killed-run.vectors.npy.123.tmp").write_bytes(b"partial")
    found, vectors = store.get(keys)
    assert found.tolist() == [True, False] and vectors is not None and vectors.shape == (1, 4)


def test_vectors_of_another_width_stop_the_run(embedder, tmp_path) -> None:
    cached = CachedEmbedder(embedder, tmp_path)
    cached.store.put([text_key("luke bakes")], np.ones((1, 8), dtype=np.float32))
    with pytest.raises(KgalignError, match="not as wide"):
        cached.encode(["luke bakes", "anna sings"])


def test_a_shard_is_written_a_slice_at_a_time_in_key_order(tmp_path, monkeypatch) -> None:
    """put() gathers and writes its vectors in slices (no second copy of them all): with
    slices of 3 rows, 10 vectors given in any order are read back each under its key."""
    monkeypatch.setattr(vector_cache, "WRITE_ROWS", 3)
    store = VectorStore(tmp_path, "m")
    keys = [text_key(f"t{i}") for i in range(10)]
    vectors = np.arange(40, dtype=np.float64).reshape(10, 4)  # float64 given: stored as float32
    store.put(keys, vectors)
    (shard,) = store.shards()
    stored = np.load(shard.with_name(shard.name.replace(".keys.", ".vectors.")))
    assert stored.dtype == np.float32 and stored.shape == (10, 4)
    found, back = store.get(list(reversed(keys)))
    assert found.all() and back is not None and back.tolist() == vectors[::-1].tolist()


def test_a_merge_reads_and_writes_the_vectors_a_slice_at_a_time(tmp_path, monkeypatch) -> None:
    """Merging 6 MB of vectors in 17 shards, 250 rows a slice, allocates under 2 MB: the
    keys and a slice, never the vectors of all the shards; every key keeps its vector."""
    import tracemalloc

    monkeypatch.setattr(vector_cache, "WRITE_ROWS", 250)
    store = VectorStore(tmp_path, "m")
    rng = np.random.default_rng(0)
    keys = [text_key(f"text {i}") for i in range(17 * 240)]
    vectors = rng.standard_normal((len(keys), 384)).astype(np.float32)
    monkeypatch.setattr(vector_cache, "MAX_SHARDS", 100)
    for shard in range(17):
        part = slice(shard * 240, (shard + 1) * 240)
        store.put(keys[part], vectors[part])
    assert len(store.shards()) == 17
    tracemalloc.start()
    try:
        store.compact()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(store.shards()) == 1 and vectors.nbytes > 6_000_000
    assert peak < 2_000_000, peak
    order = rng.permutation(len(keys))
    found, back = store.get([keys[i] for i in order])
    assert found.all() and back is not None and np.array_equal(back, vectors[order])


def test_a_merge_whose_shard_goes_away_leaves_no_temporary_file(tmp_path, monkeypatch, caplog) -> None:
    """Another run's merge may remove a shard this merge reads: the merge stops, logged,
    with no half-written vectors left behind and every shard that remains readable."""
    monkeypatch.setattr(vector_cache, "MAX_SHARDS", 100)
    store = VectorStore(tmp_path, "m")
    keys = [text_key(f"t{i}") for i in range(6)]
    for i in range(3):
        store.put(keys[2 * i : 2 * i + 2], np.full((2, 4), float(i), dtype=np.float32))
    first = store.shards()[0]
    gather = vector_cache.ShardRows.__getitem__

    def removed_meanwhile(self, rows):
        first.with_name(first.name.replace(".keys.", ".vectors.")).unlink()
        first.unlink()
        return gather(self, rows)

    monkeypatch.setattr(vector_cache.ShardRows, "__getitem__", removed_meanwhile)
    monkeypatch.setattr(vector_cache, "MAX_SHARDS", 2)
    with caplog.at_level("WARNING"):
        store.put([text_key("t6")], np.full((1, 4), 9.0, dtype=np.float32))
    assert "could not write vector cache" in caplog.text
    assert not [path for path in store.folder.iterdir() if path.name.endswith(".tmp")]
    found, vectors = store.get(keys[2:] + [text_key("t6")])
    assert found.all() and vectors is not None and vectors[:, 0].tolist() == [1, 1, 2, 2, 9]
