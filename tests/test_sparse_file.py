"""Sparse rows kept in files (``--engine ray``'s driver: kgalign/retrieval/sparse_file.py):
the TF-IDF and neighbour rows bit for bit those made in memory, read back as CSR rows,
and the run's outputs unchanged."""

from __future__ import annotations

import csv
import logging
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from scipy import sparse

from kgalign.config import AlignConfig
from kgalign.pipeline import _align
from kgalign.retrieval import candidates, sparse_file, structure, tfidf
from kgalign.retrieval.retrieve import lexical_text, lexical_vectors, retrieve, search_keep, sparse_pair_dots
from kgalign.retrieval.sparse_file import SparseFile, SparseRowsView, SparseSink, StackedRows, column_counts, is_sparse
from kgalign.retrieval.structure import neighbour_vectors, propagate_seeds
from kgalign.retrieval.vector_file import subset
from tests.helpers import python_script

ABT = Path(__file__).parent / "data" / "abt_buy_mini"
DBP = Path(__file__).parent / "data" / "dbp15k_mini" / "dbp_fr_en"


@pytest.fixture(scope="module")
def texts() -> tuple[list[str], list[str]]:
    sides = []
    for name in ("Abt.csv", "Buy.csv"):
        with (ABT / name).open(encoding="utf-8", errors="replace") as handle:
            sides.append([" | ".join(v or "" for k, v in row.items() if k != "id") for row in csv.DictReader(handle)])
    # Rows without a feature, and one of punctuation only, among them.
    return sides[0] + ["", "!!! --"], sides[1] + ["   "]


def _same(a: sparse.csr_matrix, b: sparse.csr_matrix) -> None:
    """The same rows, bit for bit: offsets, columns in their order, values."""
    assert a.shape == b.shape
    assert np.array_equal(a.indptr, b.indptr) and np.array_equal(a.indices, b.indices) and np.array_equal(a.data, b.data)


def _mappings_of(file) -> list[str]:
    """The lines of /proc/self/maps that map ``file`` (by device and inode)."""
    info = os.fstat(file.fileno())
    device = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}"
    return [line for line in Path("/proc/self/maps").read_text().splitlines() if line.split()[3:5] == [device, str(info.st_ino)]]


def _random_rows(n: int, n_cols: int, seed: int = 0) -> sparse.csr_matrix:
    rng = np.random.default_rng(seed)
    matrix = sparse.random(n, n_cols, density=0.05, format="csr", dtype=np.float32, random_state=rng)
    return sparse.diags((np.arange(n) != 3).astype(np.float32)) @ matrix  # row 3 empty


def test_rows_in_a_file_are_indexed_as_a_csr_matrix_and_leave_nothing_behind(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    matrix = _random_rows(60, 40)
    stored = SparseFile(40)
    assert list(tmp_path.iterdir()) == []  # unlinked as soon as they are open
    for start in (0, 7, 8, 31):  # blocks of any size, an empty one too
        stored.append(matrix[start : {0: 7, 7: 8, 8: 31, 31: 60}[start]])
    assert stored.shape == (60, 40) and stored.nnz == matrix.nnz and is_sparse(stored)
    _same(stored[:], matrix)
    _same(stored[10:13], matrix[10:13])
    _same(stored[::-3], matrix[::-3])
    for picked in (np.array([7, 3, 7, 59, 0]), np.array([3]), np.array([], dtype=np.int64), np.array([-1, 2])):
        _same(stored[picked], matrix[picked])
    mask = np.zeros(60, dtype=bool)
    mask[[4, 9, 50]] = True
    _same(stored[mask], matrix[mask])
    with pytest.raises(IndexError):
        stored[np.array([60])]
    # Views of views: the rows of the rows, read when indexed.
    view = subset(stored, np.array([59, 0, 25, 3, 3]))
    assert isinstance(view, SparseRowsView) and view.shape == (5, 40)
    _same(view[1:4], matrix[[0, 25, 3]])
    _same(view.rows(np.array([4, 0]))[:], matrix[[3, 59]])
    assert np.array_equal(column_counts(stored), np.bincount(matrix.indices, minlength=40))
    assert np.array_equal(column_counts(view), np.bincount(matrix[[59, 0, 25, 3, 3]].indices, minlength=40))
    # Every read copied its cells from the files, not through a map (a map would name the file).
    assert _mappings_of(stored._data) == [] and _mappings_of(stored._indices) == []
    held = np.memmap(stored._data, dtype=np.float32, mode="r", shape=(stored.nnz,))
    assert len(_mappings_of(stored._data)) == 1
    del held
    with pytest.raises(ValueError, match="rows of 41 columns"):
        stored.append(sparse.csr_matrix((1, 41), dtype=np.float32))
    stored.close()


@pytest.mark.parametrize("window", [4, 200, 64 << 20])
def test_many_scattered_rows_are_gathered_through_windows(tmp_path, monkeypatch, window) -> None:
    """Past ``MAX_READS`` rows a scattered read maps the files a window at a time
    (a window of 4 bytes: every row alone; empty rows, repeats, any order): the rows in
    memory's order, and no map left."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(sparse_file, "MAX_READS", 3)
    monkeypatch.setattr(sparse_file, "WINDOW_BYTES", window)
    keep = np.ones(300, dtype=np.float32)
    keep[[10, 11, 200]] = 0  # rows without cells
    matrix = (sparse.diags(keep) @ _random_rows(300, 50, 7)).tocsr()
    matrix.eliminate_zeros()
    assert matrix[10].nnz == 0
    stored = SparseFile(50)
    stored.append(matrix[:120])
    stored.append(matrix[120:])
    rng = np.random.default_rng(window)
    for picked in (rng.integers(0, 300, 500), np.array([299, 11, 10, 0, 0, 200, 5]), np.arange(300)[::-1]):
        _same(stored[picked], matrix[picked])
    assert sparse_pair_dots(stored, stored, picked, picked[::-1]).tolist() == pytest.approx(
        np.asarray(matrix[picked].multiply(matrix[picked[::-1]]).sum(axis=1)).ravel().tolist()
    )
    assert _mappings_of(stored._data) == [] and _mappings_of(stored._indices) == []
    stored.close()


def test_rows_stacked_from_two_sources_read_as_one(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    right, left = _random_rows(20, 30, 1), _random_rows(12, 30, 2)
    stored = SparseFile(30)
    stored.append(right)
    source = np.arange(20)
    source[[2, 15]] = [20 + 11, 20 + 0]  # two rows taken from the second
    stacked = StackedRows(stored, left, source)
    expected = sparse.vstack([right, left], format="csr")[source]
    _same(stacked[:], expected)
    _same(stacked[np.array([15, 2, 2, 0])], expected[[15, 2, 2, 0]])
    _same(stacked.rows(np.array([15, 1]))[:], expected[[15, 1]])
    assert np.array_equal(column_counts(stacked), np.bincount(expected.indices, minlength=30))


def test_tfidf_made_in_blocks_into_files_is_the_tfidf_made_at_once(texts, monkeypatch, tmp_path) -> None:
    """Blocks of 7 rows and spools of 100 cells, written to files: the same columns and
    values, bit for bit, as the matrix made in one piece in memory."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    left, right = texts
    whole = lexical_vectors(left, right)
    assert all(sparse.issparse(m) for m in whole)
    monkeypatch.setattr(tfidf, "BLOCK_ROWS", 7)
    monkeypatch.setattr(tfidf, "SPOOL_CELLS", 100)
    for spill in (False, True):
        made = lexical_vectors(left, right, spill)
        assert all(isinstance(m, SparseFile) for m in made) == spill
        for a, b in zip(made, whole):
            _same(a[:] if spill else a, b)
    assert list(tmp_path.iterdir()) == []
    # Each analyzer's part alone, against the whole computation of one analyzer.
    corpus = [lexical_text(t) for t in left + right]
    features = tfidf._Features(tfidf.words, spill=True)
    for text in corpus:
        features.add(text)
    features.fit()
    monkeypatch.setattr(tfidf, "BLOCK_ROWS", 65_536)
    _same(sparse.vstack([features.block(lo, min(lo + 50, len(corpus))) for lo in range(0, len(corpus), 50)], format="csr"), tfidf.tfidf(corpus, tfidf.words))


def test_the_search_and_the_pair_scores_read_the_files_as_memory(texts, tmp_path, monkeypatch) -> None:
    from kgalign.config import RetrievalConfig
    from kgalign.retrieval import retrieve as retrieve_module

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    left, right = texts
    memory = lexical_vectors(left, right)
    files = lexical_vectors(left, right, spill=True)
    rows = np.repeat(np.arange(len(left)), 3)
    cols = np.tile([0, 5, len(right) - 1], len(left))
    assert np.array_equal(sparse_pair_dots(*files, rows, cols), sparse_pair_dots(*memory, rows, cols))
    # The common features dropped from the search (as past PRUNE_FROM_TARGETS targets): the same ones.
    monkeypatch.setattr(retrieve_module, "PRUNE_FROM_TARGETS", 10)
    keep = search_keep(files[1])
    assert keep is not None and np.array_equal(keep, search_keep(memory[1]))
    config = RetrievalConfig(k=5, pool=10, dense_weight=0.0)
    iris = [f"l{i}" for i in range(len(left))], [f"r{j}" for j in range(len(right))]
    expected = retrieve(*iris, None, None, *memory, config)
    got = retrieve(*iris, None, None, *files, config)
    assert [(c.source, [(i.iri, i.score) for i in c.items], c.margin, c.mutual) for c in got] == [
        (c.source, [(i.iri, i.score) for i in c.items], c.margin, c.mutual) for c in expected
    ]


def test_neighbour_rows_made_in_blocks_are_the_one_product(texts, tmp_path, monkeypatch) -> None:
    """The neighbour channel of rows in files, in blocks of 5 rows: each row's sums taken
    in the one product's order, so the same bits; seed targets read through StackedRows."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(structure, "BLOCK_ROWS", 5)
    left, right = texts
    memory = lexical_vectors(left, right)
    files = lexical_vectors(left, right, spill=True)
    n = len(right)
    rng = np.random.default_rng(3)
    edges = rng.integers(0, n, size=(4 * n, 2))
    adj = sparse.csr_matrix((np.ones(len(edges), dtype=np.float32), (edges[:, 0], edges[:, 1])), shape=(n, n))
    adj.sum_duplicates()
    degree = np.asarray(adj.sum(axis=1)).ravel()
    degree[degree == 0] = 1.0
    adj = sparse.diags(1.0 / degree) @ adj
    seeds = [(f"l{i}", f"r{i}") for i in range(0, min(len(left), n), 9)]
    orders = [f"l{i}" for i in range(len(left))], [f"r{j}" for j in range(n)]
    propagated = propagate_seeds(*files, *orders, seeds)
    assert isinstance(propagated, StackedRows)
    expected = neighbour_vectors(adj, propagate_seeds(*memory, *orders, seeds))
    got = neighbour_vectors(adj, propagated, spill=True)
    assert isinstance(got, SparseFile)
    _same(got[:], expected)
    # From rows in memory into a file, and from a file into memory: the same again.
    _same(neighbour_vectors(adj, memory[1], spill=True)[:], neighbour_vectors(adj, memory[1]))
    _same(neighbour_vectors(adj, files[1]), neighbour_vectors(adj, memory[1]))


def test_a_disk_that_fills_up_leaves_the_rows_in_memory(tmp_path, monkeypatch, caplog) -> None:
    """The free space checked before each block: past it the rows so far are read back
    and the rest kept in memory, with a warning; the same rows in the end."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    matrix = _random_rows(30, 20)
    sink = SparseSink(20, spill=True)
    sink.append(matrix[:10])
    monkeypatch.setattr(sparse_file, "FREE_MARGIN", 2**62)
    with caplog.at_level(logging.WARNING):
        sink.append(matrix[10:25])
        sink.append(matrix[25:])
    assert "holding the 10 rows so far and the rest in memory" in caplog.text
    got = sink.finish()
    assert sparse.issparse(got)
    _same(got, matrix)
    with pytest.raises(OSError, match="MB of rows"):
        SparseFile(20).append(matrix)


def _noting(function, made: list[str], name: str):
    """``function``, noting the kinds of what it returns in ``made``."""

    def noted(*args, **kwargs):
        result = function(*args, **kwargs)
        made.append(" ".join([name] + [type(r).__name__ for r in (result if isinstance(result, list) else [result])]))
        return result

    return noted


def test_a_lean_run_with_seeds_and_detected_cardinality_writes_the_same_files(embedder, tmp_path, monkeypatch) -> None:
    """A lean run (``--engine ray``'s driver) of the DBP15K excerpt, with its train links as
    seeds (StackedRows) and the cardinality detected from the rows, against the same
    run in memory: the TF-IDF and neighbour rows in files, and the same outputs, byte
    for byte."""
    from kgalign.io.importers import convert_dbp15k

    convert_dbp15k(DBP, tmp_path / "dbp")
    left, right = tmp_path / "dbp" / "left.ttl", tmp_path / "dbp" / "right.ttl"
    config = AlignConfig(judge="none", resolve="auto", seed_links=str(tmp_path / "dbp" / "gold_train.tsv"))
    kept = _align(left, right, config, embedder, None)
    made: list[str] = []
    monkeypatch.setattr(candidates, "neighbour_vectors", _noting(structure.neighbour_vectors, made, "neighbours"))
    monkeypatch.setattr(tfidf, "lexical_rows", _noting(tfidf.lexical_rows, made, "tfidf"))
    lean = _align(left, right, config, embedder, None, lean=True)
    # The detection's TF-IDF rows (reused by retrieval) and both sides' neighbour rows, in files.
    assert made == ["tfidf SparseFile SparseFile", "neighbours SparseFile", "neighbours SparseFile"]
    assert lean.links == kept.links and lean.counts == kept.counts and len(kept.links) > 10
    for name, result in (("kept", kept), ("lean", lean)):
        result.save(tmp_path / name)
    for file in ("fused.ttl", "links.ttl", "votes.jsonl", "alignment.rdf"):
        assert (tmp_path / "kept" / file).read_bytes() == (tmp_path / "lean" / file).read_bytes(), file


def test_no_temporary_folder_leaves_the_rows_and_counts_in_memory(texts, tmp_path, monkeypatch, caplog) -> None:
    """A temporary directory that is not there: the counts spooled and the rows made in
    memory, with a warning for each, and the same rows."""
    left, right = texts
    expected = lexical_vectors(left, right)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "absent"))
    with caplog.at_level(logging.WARNING):
        got = lexical_vectors(left, right, spill=True)
    assert "could not spool TF-IDF counts" in caplog.text and "could not keep sparse rows" in caplog.text
    for a, b in zip(got, expected):
        assert sparse.issparse(a)
        _same(a, b)


def test_a_spool_whose_file_fails_keeps_what_it_wrote(tmp_path, monkeypatch, caplog) -> None:
    """A write that fails (here a file open for reading only) after some cells were
    written: those are read back, and every cell is still there, in order."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(tfidf, "SPOOL_CELLS", 4)
    spool = tfidf._Spool(spill=True)
    spool.extend(range(6))  # 6 cells written
    assert spool.written == 6 and len(spool) == 6
    spool.extend([6, 7])
    written = spool.file
    (tmp_path / "read-only").write_bytes(b"")
    with (tmp_path / "read-only").open("rb") as stuck:
        # The same cells, on a handle that refuses writes.
        written.seek(0)
        (tmp_path / "read-only").write_bytes(written.read())
        spool.file = stuck
        with caplog.at_level(logging.WARNING):
            spool.extend([8, 9])
    assert "could not spool more TF-IDF counts" in caplog.text
    assert spool.file is None and list(spool.read(0, len(spool))) == list(range(10))
    written.close()


FILLED_DISK = """
import logging, resource, signal, sys
import numpy as np
from kgalign.retrieval import tfidf
from kgalign.retrieval.retrieve import lexical_vectors
left, right = eval(sys.stdin.read())
expected = lexical_vectors(left, right)
tfidf.BLOCK_ROWS, tfidf.SPOOL_CELLS = 7, 1000
logging.basicConfig(level=logging.WARNING, format="%(message)s")
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead of killing the process
resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, resource.RLIM_INFINITY))
got = lexical_vectors(left, right, spill=True)
for a, b in zip(got, expected):
    a = a[:]
    assert np.array_equal(a.indptr, b.indptr) and np.array_equal(a.indices, b.indices) and np.array_equal(a.data, b.data)
print("same rows")
"""


@pytest.mark.skipif(not hasattr(os, "pwrite"), reason="a file size limit of the process (POSIX)")
def test_writes_that_fail_midway_keep_every_row(texts, tmp_path) -> None:
    """Files that may not grow past 20 kB (the process's file size limit): the spools' and
    the rows' writes fail partway, at the write itself, not at a later flush; what they
    wrote is read back and the rest kept in memory, and every row is the same."""
    done = python_script(FILLED_DISK, tmpdir=tmp_path, stdin=repr(texts))
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "same rows"
    assert "could not spool more TF-IDF counts" in done.stderr and "could not keep more sparse rows" in done.stderr
