"""Sparse rows (TF-IDF and neighbour rows) kept in files instead of a process's memory.

Under ``--engine ray`` the driver does not hold the TF-IDF rows of the two sides, nor
the neighbour rows averaged from them: they are written a block of rows at a time as
they are computed (:func:`kgalign.retrieval.tfidf.lexical_rows`,
:func:`kgalign.retrieval.structure.neighbour_vectors`), and every later step reads the
rows it needs: the lexical search a block of sources and a slice of targets at a time,
the pooled pairs' scores their two rows. The process keeps one offset per row (8
bytes); a row's cells (a float32 value and a 32-bit column each) are in two unlinked
temporary files, each read copying the cells it names from the files
(:mod:`kgalign.io.pread`), as :mod:`kgalign.retrieval.vector_file` reads vectors.

Rows are appended (a write, never a write through a map: a full disk is an ``OSError``
at the write, not a ``SIGBUS`` later); :class:`SparseSink` turns a failed write into
rows held in memory, with a warning, so a full temporary directory slows nothing down
but the memory. On a temporary directory in memory (a tmpfs ``/tmp``) the files are in
memory too: point ``TMPDIR`` at a disk.

Whatever reads rows here reads them as scipy CSR matrices, so :func:`is_sparse`,
:func:`column_counts` and indexing (``rows[a:b]``, ``rows[index]``) are all a caller
needs to take either kind.
"""

from __future__ import annotations

import errno
import logging
import os
import tempfile
from abc import abstractmethod
from typing import Any, TypeAlias

import numpy as np
from scipy import sparse

from kgalign.io import pread
from kgalign.io.pread import Spans, read_range, row_numbers, write_at
from kgalign.retrieval.vector_file import FREE_MARGIN, FileBackedRows

log = logging.getLogger(__name__)

#: Rows of a scattered read of sparse rows past which they are gathered through windows
#: of a map (:func:`kgalign.io.pread.over_map`) rather than read a range each: sparse rows are short,
#: and a call each costs more than the copy.
MAX_READS = 64
#: The bytes of a file such a gather maps at a time.
WINDOW_BYTES = 64 << 20

#: Cells read at a time where a whole file is scanned (:func:`column_counts`): 64 MB of columns.
SCAN_CELLS = 16 * 2**20
#: Rows read at a time where rows picked from a file are scanned.
SCAN_ROWS = 65_536


class _SparseRows(FileBackedRows):
    """What :class:`SparseFile` and its views share beside :class:`FileBackedRows`:
    indexing into CSR matrices."""

    @abstractmethod
    def take(self, index: np.ndarray) -> sparse.csr_matrix:
        """The rows ``index`` (an int64 array of row numbers, any order, repeats allowed)."""

    def __getitem__(self, key: Any) -> sparse.csr_matrix:
        """The rows ``key`` picks (an int, a slice, an int array or a boolean mask), in memory."""
        return self.take(row_numbers(key, self.shape[0]))

    def column_counts(self) -> np.ndarray:
        """How many rows have each column, read a block of rows at a time."""
        counts = np.zeros(self.shape[1], dtype=np.int64)
        for start in range(0, self.shape[0], SCAN_ROWS):
            counts += np.bincount(self[start : start + SCAN_ROWS].indices, minlength=self.shape[1])
        return counts


class SparseFile(_SparseRows):
    """CSR rows of ``n_cols`` columns appended a block at a time (:meth:`append`), their
    cells in two unlinked temporary files and the row offsets in memory."""

    def __init__(self, n_cols: int, directory: str | None = None) -> None:
        self.dtype = np.dtype(np.float32)
        self.shape = (0, n_cols)
        self.directory = directory or tempfile.gettempdir()
        # Unbuffered: a write that fails fails at once, with nothing left to flush later.
        self._data = tempfile.TemporaryFile(prefix="kgalign-rows-", suffix=".f32", dir=self.directory, buffering=0)
        try:
            self._indices = tempfile.TemporaryFile(prefix="kgalign-rows-", suffix=".i32", dir=self.directory, buffering=0)
        except OSError:
            self._data.close()
            raise
        self._offsets: list[np.ndarray] = [np.zeros(1, dtype=np.int64)]
        self._indptr: np.ndarray | None = None
        self._sorted = True
        self.nnz = 0

    def append(self, block: sparse.csr_matrix) -> None:
        """Rows added at the end; an ``OSError`` (a full disk) leaves the file as it was."""
        block = block.tocsr()
        if block.shape[1] != self.shape[1]:
            raise ValueError(f"rows of {block.shape[1]} columns appended to rows of {self.shape[1]}")
        data = np.ascontiguousarray(block.data, dtype=np.float32)
        indices = np.ascontiguousarray(block.indices, dtype=np.int32)
        size = data.nbytes + indices.nbytes
        if hasattr(os, "statvfs"):
            stats = os.statvfs(self.directory)
            free = stats.f_bavail * stats.f_frsize
            if size + FREE_MARGIN > free:
                raise OSError(errno.ENOSPC, f"{size / 2**20:,.0f} MB of rows, {free / 2**20:,.0f} MB free", self.directory)
        try:
            write_at(self._data.fileno(), data, self.nnz * 4)
            write_at(self._indices.fileno(), indices, self.nnz * 4)
        except OSError:
            for file in (self._data, self._indices):
                os.ftruncate(file.fileno(), self.nnz * 4)  # nothing of the failed block stays
            raise
        self._offsets.append(self.nnz + np.asarray(block.indptr[1:], dtype=np.int64))
        self._sorted = self._sorted and bool(block.has_sorted_indices)
        self.nnz += len(data)
        self.shape = (self.shape[0] + block.shape[0], self.shape[1])
        self._indptr = None

    @property
    def indptr(self) -> np.ndarray:
        """Where each row's cells start (``n + 1`` offsets)."""
        if self._indptr is None:
            self._indptr = np.concatenate(self._offsets)
            self._offsets = [self._indptr]
        return self._indptr

    def take(self, index: np.ndarray) -> sparse.csr_matrix:
        indptr = self.indptr
        if len(index) and np.all(np.diff(index) == 1):  # consecutive rows: one range of cells
            lo, hi = int(indptr[index[0]]), int(indptr[index[-1] + 1])
            data = read_range(self._data.fileno(), np.float32, lo, hi)
            indices = read_range(self._indices.fileno(), np.int32, lo, hi)
            out_indptr = indptr[index[0] : index[-1] + 2] - lo
        elif len(index) > MAX_READS:  # many short rows: a call each would cost more than the copy
            return self._gathered(index)
        else:
            starts = indptr[index]
            lengths = indptr[index + 1] - starts
            out_indptr = np.zeros(len(index) + 1, dtype=np.int64)
            np.cumsum(lengths, out=out_indptr[1:])
            spans = Spans(starts, lengths, 4)  # the values and the columns: 4 bytes a cell each
            data = spans.read(self._data.fileno(), np.float32)
            indices = spans.read(self._indices.fileno(), np.int32)
        if out_indptr[-1] < 2**31:
            out_indptr = out_indptr.astype(np.int32, copy=False)  # 32-bit offsets, as scipy makes rows of this size
        matrix = sparse.csr_matrix((data, indices, out_indptr), shape=(len(index), self.shape[1]), copy=False)
        if self._sorted:
            matrix.has_sorted_indices = True  # as every block appended (scipy would check each row)
        return matrix

    def _gathered(self, index: np.ndarray) -> sparse.csr_matrix:
        """Many scattered rows: scipy's compiled row gather over windows of maps of the
        files, about ``WINDOW_BYTES`` of cells at a time in row order, each window
        let go before the next (the process holds one window's pages, not the pages
        around every row read), the pieces then put in the order asked."""
        indptr = self.indptr
        order = np.argsort(index, kind="stable")
        ordered = index[order]
        begins = indptr[ordered]
        window = max(WINDOW_BYTES // 8, 1)  # cells: 4 bytes in each file
        pieces = []
        first = 0
        while first < len(ordered):
            last = max(int(np.searchsorted(begins, begins[first] + window, side="left")), first + 1)
            top, bottom = int(ordered[first]), int(ordered[last - 1])
            lo, hi = int(indptr[top]), int(indptr[bottom + 1])
            offsets = (indptr[top : bottom + 2] - lo).astype(np.int32 if hi - lo < 2**31 else np.int64)
            pieces.append(self._window_rows(lo, hi, offsets, ordered[first:last] - top))
            first = last
        gathered = sparse.vstack(pieces, format="csr")
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        matrix = gathered[inverse]
        if self._sorted:
            matrix.has_sorted_indices = True
        return matrix

    def _window_rows(self, lo: int, hi: int, offsets: np.ndarray, picked: np.ndarray) -> sparse.csr_matrix:
        """The rows ``picked`` of the rows whose cells are ``lo:hi`` (``offsets``: theirs
        from ``lo``), gathered by scipy over maps of that range of the two files."""

        def pick(data: np.ndarray, indices: np.ndarray) -> sparse.csr_matrix:
            part = sparse.csr_matrix((data, indices, offsets), shape=(len(offsets) - 1, self.shape[1]), copy=False)
            return part[picked]  # new arrays: nothing of the maps is kept

        return pread.over_map(
            self._data.fileno(), np.float32, lo, hi, lambda data: pread.over_map(self._indices.fileno(), np.int32, lo, hi, lambda indices: pick(data, indices))
        )

    def rows(self, index: np.ndarray) -> SparseRowsView:
        return SparseRowsView(self, row_numbers(index, self.shape[0]))

    def column_counts(self) -> np.ndarray:
        """How many rows have each column, read a scan at a time."""
        counts = np.zeros(self.shape[1], dtype=np.int64)
        for start in range(0, self.nnz, SCAN_CELLS):
            counts += np.bincount(read_range(self._indices.fileno(), np.int32, start, min(start + SCAN_CELLS, self.nnz)), minlength=self.shape[1])
        return counts

    def close(self) -> None:
        self._data.close()
        self._indices.close()


class SparseRowsView(_SparseRows):
    """Some rows of a :class:`SparseFile`, in a given order."""

    def __init__(self, base: SparseFile, index: np.ndarray) -> None:
        self.base = base
        self.index = index
        self.shape = (len(index), base.shape[1])
        self.dtype = base.dtype

    def take(self, index: np.ndarray) -> sparse.csr_matrix:
        return self.base.take(self.index[index])

    def rows(self, index: np.ndarray) -> SparseRowsView:
        return SparseRowsView(self.base, self.index[row_numbers(index, self.shape[0])])


class StackedRows(_SparseRows):
    """The rows ``source`` of ``first`` stacked over ``second`` (numbers from
    ``first.shape[0]`` on are ``second``'s rows), read when indexed; either may be in
    memory or in a file."""

    def __init__(self, first: Any, second: Any, source: np.ndarray) -> None:
        self.first, self.second, self.source = first, second, np.asarray(source, dtype=np.int64)
        self.shape = (len(self.source), first.shape[1])
        self.dtype = np.dtype(np.float32)

    def take(self, index: np.ndarray) -> sparse.csr_matrix:
        picked = self.source[index]
        n = self.first.shape[0]
        in_first = picked < n
        stacked = sparse.vstack([self.first[picked[in_first]], self.second[picked[~in_first] - n]], format="csr")
        order = np.concatenate([np.flatnonzero(in_first), np.flatnonzero(~in_first)])
        return stacked[np.argsort(order, kind="stable")]

    def rows(self, index: np.ndarray) -> StackedRows:
        return StackedRows(self.first, self.second, self.source[row_numbers(index, self.shape[0])])


#: Sparse rows as retrieval takes them: a CSR matrix in memory, or rows of a file.
SparseRows: TypeAlias = sparse.csr_matrix | SparseFile | SparseRowsView | StackedRows


def is_sparse(rows: Any) -> bool:
    """Whether ``rows`` are sparse rows: a scipy sparse matrix or rows of a :class:`SparseFile`."""
    return sparse.issparse(rows) or isinstance(rows, _SparseRows)


def is_spilled(rows: Any) -> bool:
    return isinstance(rows, _SparseRows)


def column_counts(rows: SparseRows) -> np.ndarray:
    """How many of ``rows`` have each column (their document frequencies)."""
    if isinstance(rows, _SparseRows):
        return rows.column_counts()
    return np.bincount(rows.indices, minlength=rows.shape[1])


def in_memory(rows: SparseRows) -> sparse.csr_matrix:
    """``rows`` as one CSR matrix in memory (what a fallback that needs them all reads)."""
    return rows[:] if isinstance(rows, _SparseRows) else rows


class SparseSink:
    """Where blocks of rows go as they are made: a :class:`SparseFile` with ``spill``,
    else a list of blocks stacked at the end. A block the file cannot take (a full
    disk) turns the sink to memory, the rows written so far read back, with a warning."""

    def __init__(self, n_cols: int, spill: bool) -> None:
        self.n_cols = n_cols
        self.file: SparseFile | None = None
        self.blocks: list[sparse.csr_matrix] = []
        if spill:
            try:
                self.file = SparseFile(n_cols)
            except OSError as exc:
                log.warning("could not keep sparse rows in %s (%s); holding them in memory", tempfile.gettempdir(), exc)

    def append(self, block: sparse.csr_matrix) -> None:
        if self.file is not None:
            try:
                self.file.append(block)
                return
            except OSError as exc:
                log.warning(
                    "could not keep more sparse rows in %s (%s); holding the %d rows so far and the rest in memory",
                    self.file.directory,
                    exc,
                    self.file.shape[0],
                )
                self.blocks.append(self.file[:])
                self.file.close()
                self.file = None
        self.blocks.append(block)

    def finish(self) -> SparseRows:
        if self.file is not None:
            return self.file
        if not self.blocks:
            return sparse.csr_matrix((0, self.n_cols), dtype=np.float32)
        if len(self.blocks) == 1:
            return self.blocks[0]
        stacked = sparse.vstack(self.blocks, format="csr")
        self.blocks = []
        return stacked
