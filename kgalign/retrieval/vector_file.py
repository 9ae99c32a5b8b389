"""Vectors kept in a file of the temporary directory instead of a process's memory.

Under ``--engine ray`` the driver does not hold the embedding's vectors: they are
written to a file as the actors' batches come back (and as the vector cache's shards
are read), and every later step reads the rows it needs, a slice at a time: the dense
search sends the targets' slices and the sources' blocks to the actors, and the pooled
pairs are scored from the rows they name. Each read copies the rows it names straight
from the file (:mod:`kgalign.io.pread`: no map, so the process holds none of the file's
pages); the kernel's page cache holds what it can, and gives it up under pressure as it
would any file.

The file has no name once open (``tempfile.TemporaryFile``: nothing is left behind by a
crash). Its size is checked against the folder's free space and its blocks reserved
when it is made (``posix_fallocate``, where the system has it): a full disk is then
an ``OSError`` at once, and :func:`new_vectors` falls back to memory with a warning,
rather than a write failing later. On a temporary directory in memory (a tmpfs
``/tmp``) the file is in memory too: point ``TMPDIR`` at a disk.
"""

from __future__ import annotations

import errno
import logging
import os
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np

from kgalign.io.pread import read_rows, row_numbers, write_rows

log = logging.getLogger(__name__)

#: Free space a file of vectors leaves in its folder (the rest of the run writes there too).
FREE_MARGIN = 256 * 2**20


class FileBackedRows(ABC):
    """Rows kept in a file and read when indexed (vectors here, sparse rows in
    :mod:`kgalign.retrieval.sparse_file`): a 2-d ``shape`` and ``dtype``, and views of
    some rows (:meth:`rows`, what :func:`subset` gives)."""

    shape: tuple[int, int]
    dtype: np.dtype

    @property
    def ndim(self) -> int:
        return 2

    def __len__(self) -> int:
        return self.shape[0]

    @abstractmethod
    def rows(self, index: np.ndarray) -> FileBackedRows:
        """The rows ``index``, read when indexed (no copy now)."""


class _FileRows(FileBackedRows):
    """What :class:`VectorFile` and :class:`VectorRows` share beside :class:`FileBackedRows`:
    the array protocol (every row in memory, read through ``__getitem__``)."""

    @abstractmethod
    def __getitem__(self, key: Any) -> np.ndarray:
        """The rows ``key`` picks (a slice, an int array or a boolean mask), in memory."""

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        """Every row in memory (what a search in this process needs: the fallbacks)."""
        return self[:] if dtype is None else self[:].astype(dtype, copy=False)


class VectorFile(_FileRows):
    """``n`` rows of ``dim`` float32 in an unlinked temporary file; indexed like an array
    (a slice, an int array or a boolean mask of rows), each read a copy."""

    def __init__(self, n: int, dim: int, directory: str | None = None) -> None:
        self.shape = (n, dim)
        self.dtype = np.dtype(np.float32)
        size = n * dim * self.dtype.itemsize
        folder = directory or tempfile.gettempdir()
        stats = os.statvfs(folder) if hasattr(os, "statvfs") else None
        free = stats.f_bavail * stats.f_frsize if stats is not None else None
        if free is not None and size + FREE_MARGIN > free:
            # Checked first: a reservation past the free space may take every free block
            # before it fails, and Ray spills its object store to the same folder.
            raise OSError(errno.ENOSPC, f"{size / 2**20:,.0f} MB of vectors, {free / 2**20:,.0f} MB free", folder)
        # Unlinked as it is opened, where the system allows (no name at all under Linux).
        self._file = tempfile.TemporaryFile(prefix="kgalign-vectors-", suffix=".f32", dir=directory)
        try:
            if size and hasattr(os, "posix_fallocate"):
                os.posix_fallocate(self._file.fileno(), 0, size)
            elif size:  # no posix_fallocate (macOS): a sparse file, its blocks taken as it is written
                os.ftruncate(self._file.fileno(), size)
        except OSError:
            self._file.close()
            raise

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            return self[np.array([key])][0]
        return read_rows(self._file.fileno(), self.dtype, self.shape[1], row_numbers(key, self.shape[0]))

    def __setitem__(self, key: Any, values: np.ndarray) -> None:
        rows = row_numbers(key, self.shape[0])
        values = np.broadcast_to(np.asarray(values, dtype=self.dtype), (len(rows), self.shape[1]))
        write_rows(self._file.fileno(), values, self.shape[1], rows)

    def rows(self, index: np.ndarray) -> VectorRows:
        """The rows ``index`` of this file, read when indexed (no copy now)."""
        return VectorRows(self, np.asarray(index, dtype=np.int64))

    def close(self) -> None:
        self._file.close()


class VectorRows(_FileRows):
    """Some rows of a :class:`VectorFile`, in a given order, indexed like an array."""

    def __init__(self, base: VectorFile, index: np.ndarray) -> None:
        self.base = base
        self.index = index
        self.shape = (len(index), base.shape[1])
        self.dtype = base.dtype

    def __getitem__(self, key: Any) -> np.ndarray:
        return self.base[self.index[key]]

    def rows(self, index: np.ndarray) -> VectorRows:
        return VectorRows(self.base, self.index[np.asarray(index, dtype=np.int64)])


#: Vectors as retrieval takes them: in memory, or in a file read a slice at a time.
Vectors = np.ndarray | VectorFile | VectorRows


def new_vectors(n: int, dim: int, spill: bool) -> np.ndarray | VectorFile:
    """Room for ``n`` vectors of ``dim``: a :class:`VectorFile` with ``spill`` (in memory,
    with a warning, when the temporary directory cannot hold it), else an array."""
    if spill:
        try:
            return VectorFile(n, dim)
        except OSError as exc:
            log.warning("could not keep %d vectors in %s (%s); holding them in memory", n, tempfile.gettempdir(), exc)
    return np.empty((n, dim), dtype=np.float32)


def subset(vectors: Any, index: np.ndarray | Sequence[int]) -> Any:
    """The rows ``index`` of vectors or sparse rows: a copy of memory's, a view of a file's."""
    index = np.asarray(index, dtype=np.int64)
    if isinstance(vectors, FileBackedRows):
        return vectors.rows(index)
    return vectors[index]
