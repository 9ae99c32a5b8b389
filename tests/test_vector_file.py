"""Vectors kept in a temporary file (``--engine ray``'s driver): the same rows, the same
candidates, and no page of the file left mapped in the process."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

from kgalign.config import RetrievalConfig
from kgalign.retrieval import embed as embed_module
from kgalign.retrieval import vector_cache
from kgalign.retrieval.embed import CachedEmbedder, encode_sides
from kgalign.retrieval.retrieve import lexical_vectors, retrieve
from kgalign.retrieval.vector_file import VectorFile, VectorRows, new_vectors, subset
from helpers import CountingEmbedder


def _unit_rows(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def _mappings_of(stored: VectorFile) -> list[str]:
    """The lines of /proc/self/maps that map ``stored``'s file (by device and inode)."""
    info = os.fstat(stored._file.fileno())
    device = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}"
    return [line for line in Path("/proc/self/maps").read_text().splitlines() if line.split()[3:5] == [device, str(info.st_ino)]]


def test_a_file_of_vectors_is_indexed_as_an_array_and_leaves_nothing_behind(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    data = _unit_rows(50, 8)
    stored = VectorFile(50, 8)
    assert list(tmp_path.iterdir()) == []  # unlinked as soon as it is open
    stored[np.arange(0, 50, 2)] = data[::2]
    stored[np.arange(1, 50, 2)] = data[1::2]
    assert stored.shape == (50, 8) and len(stored) == 50
    assert np.array_equal(stored[:], data)
    assert np.array_equal(stored[10:13], data[10:13])
    assert np.array_equal(stored[np.array([7, 3, 7])], data[[7, 3, 7]])
    mask = np.zeros(50, dtype=bool)
    mask[[4, 9]] = True
    assert np.array_equal(stored[mask], data[mask])
    assert np.array_equal(np.asarray(stored), data)
    # Views of views: the rows of the rows, in the order asked, no copy made until indexed.
    order = np.array([49, 0, 25, 3, 3])
    view = subset(stored, order)
    assert isinstance(view, VectorRows) and view.shape == (5, 8)
    assert np.array_equal(view[1:4], data[order][1:4])
    again = view.rows(np.array([4, 0]))
    assert np.array_equal(np.asarray(again), data[[3, 49]])
    assert np.array_equal(np.ascontiguousarray(again, dtype=np.float32), data[[3, 49]])
    # Every read and write went through the file, not a map of it (a map would name the file).
    assert _mappings_of(stored) == []
    mapped = np.memmap(stored._file, dtype=np.float32, mode="r", shape=stored.shape)
    assert len(_mappings_of(stored)) == 1
    del mapped
    assert np.array_equal(stored[7], data[7]) and np.array_equal(stored[-1], data[49])
    with pytest.raises(IndexError):
        stored[np.array([50])]
    stored.close()


def test_a_temporary_directory_that_cannot_hold_the_vectors_leaves_them_in_memory(tmp_path, monkeypatch, caplog) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "gone"))
    with caplog.at_level(logging.WARNING):
        room = new_vectors(4, 3, spill=True)
    assert isinstance(room, np.ndarray) and room.shape == (4, 3)
    assert "holding them in memory" in caplog.text
    assert isinstance(new_vectors(4, 3, spill=False), np.ndarray)


def test_spilled_embeddings_are_the_cached_and_computed_bits(embedder, tmp_path, monkeypatch) -> None:
    """encode_spilled reads the cache a few vectors at a time (here 2) into a file, embeds
    what it lacks (each text once) and gives the rows encode gives."""
    monkeypatch.setattr(vector_cache, "WRITE_ROWS", 2)
    monkeypatch.setattr(embed_module, "COPY_ROWS", 2)
    warm = CachedEmbedder(embedder, tmp_path / "cache")
    warm.encode(["luke bakes", "tom runs", "anna sings"])
    texts = ["tom runs", "new one", "luke bakes", "new one", "anna sings", "another", "tom runs"]
    counting = CountingEmbedder(embedder)
    spilled = CachedEmbedder(counting, tmp_path / "cache")
    got = spilled.encode_spilled(texts)
    assert isinstance(got, VectorFile)
    assert counting.asked == [["new one", "another"]]
    assert spilled.read == 4 and spilled.computed == 2  # "tom runs" read for both its places
    # The same bits as the in-memory path over the same cache (everything cached now).
    assert np.array_equal(got[:], CachedEmbedder(embedder, tmp_path / "cache").encode(texts))
    # Nothing cached: the inner embedder's vectors, in a file too.
    cold = CachedEmbedder(embedder, tmp_path / "cold").encode_spilled(["x y", "z w"])
    assert isinstance(cold, VectorFile) and np.allclose(cold[:], embedder.encode(["x y", "z w"]), atol=1e-5)


def test_retrieval_from_spilled_vectors_finds_the_same_candidates(embedder, tmp_path, monkeypatch) -> None:
    """Both sides' vectors in one file, each side a view of its rows: the dense search, the
    rescoring of its finds and the scores of the pooled pairs read them slice by slice, and
    every candidate and score is what the arrays in memory give."""
    monkeypatch.setenv("KGALIGN_CACHE", str(tmp_path / "cache"))
    left = [f"person {i} born {1900 + i % 70} in town {i % 13}" for i in range(120)]
    right = [f"persn {i} born {1900 + i % 70} in twn {i % 13}" for i in range(0, 240, 2)] + ["person 5 born 1905 in town 5"]
    cached = CachedEmbedder(embedder, tmp_path / "cache")
    in_memory = encode_sides(cached, left, right)
    spilled = encode_sides(cached, left, right, spill=True)
    assert isinstance(spilled[0], VectorRows) and isinstance(spilled[1], VectorRows)
    assert spilled[0].base is spilled[1].base  # the distinct texts once
    assert np.array_equal(np.asarray(spilled[0]), in_memory[0]) and np.array_equal(np.asarray(spilled[1]), in_memory[1])
    lex = lexical_vectors(left, right)
    config = RetrievalConfig(k=5, pool=12)
    left_iris = [f"l{i}" for i in range(len(left))]
    right_iris = [f"r{j}" for j in range(len(right))]
    expected = retrieve(left_iris, right_iris, *in_memory, *lex, config)
    got = retrieve(left_iris, right_iris, *spilled, *lex, config)
    assert [(c.source, [(i.iri, i.score) for i in c.items], c.mutual, c.margin) for c in got] == [
        (c.source, [(i.iri, i.score) for i in c.items], c.mutual, c.margin) for c in expected
    ]
    assert _mappings_of(spilled[0].base) == []


@pytest.mark.skipif(not hasattr(os, "posix_fallocate"), reason="posix_fallocate reserves the file's blocks")
def test_the_file_reserves_its_blocks(tmp_path, monkeypatch) -> None:
    """The blocks are reserved when the file is made, so a full disk fails there (an
    OSError new_vectors turns into memory), not in a write into a mapped page."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    stored = VectorFile(1000, 384)
    assert os.fstat(stored._file.fileno()).st_blocks * 512 >= 1000 * 384 * 4
    stored.close()


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts the open descriptors in /proc")
def test_a_file_larger_than_the_disk_fails_at_once_and_leaves_nothing_open(tmp_path, monkeypatch) -> None:
    """26 TB of vectors: refused when the file is made, by the folder's free space (not a
    write into a mapped page later, nor a reservation that fills the disk first), and
    neither a file nor a descriptor is left behind."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    open_before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(OSError, match="MB of vectors"):
        VectorFile(2**34, 384)
    assert list(tmp_path.iterdir()) == []
    assert len(os.listdir("/proc/self/fd")) == open_before
