"""Arrays read from and written to a file at given offsets, without mapping it.

The files a lean run keeps its rows in (:mod:`kgalign.retrieval.vector_file`,
:mod:`kgalign.retrieval.sparse_file`, the TF-IDF counts' spool) are read with
``os.preadv`` straight into the arrays returned and written with ``os.pwrite``. A read
through a memory map would cost the same copy, but the pages it touches count in the
process's resident memory until the map is let go, and more than it reads: the kernel
maps the pages around each one it faults in (64 kB on Linux), so 8,192 vectors picked
at random from a 900 MB file mapped nearly all of it (+880 MB resident during the
read) where ``preadv`` takes 1.5 kB a vector and 13 ms. Many short rows picked at
random (sparse rows) are gathered through windows of a map instead (:func:`over_map`,
one window at a time): the process holds a window's pages, not the file's.

Offsets and lengths are in items of the array's dtype. The calls have no shared file
position, so threads may read at once.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")

#: Spans of a scattered read closer than this (in bytes) are read as one range: a
#: system call costs about what copying a few kilobytes does.
MERGE_GAP_BYTES = 4096
#: Spans of one range copied to their places one slice each (more: by index arrays).
FEW_SPANS = 32


def read_into(fd: int, out: np.ndarray, offset: int) -> np.ndarray:
    """``out`` filled from the bytes at ``offset`` of the file ``fd`` (however many reads
    it takes); an ``OSError`` if the file ends first."""
    if out.size:
        _read_bytes(fd, out.data.cast("B"), offset)
    return out


def _read_bytes(fd: int, view: memoryview, offset: int) -> None:
    """The bytes of ``view`` read from ``offset`` of the file ``fd``, however many reads it
    takes; an ``OSError`` if the file ends first."""
    while len(view):
        if hasattr(os, "preadv"):
            done = os.preadv(fd, [view], offset)
        else:  # a copy more, where the system has no preadv
            chunk = os.pread(fd, len(view), offset)
            done = len(chunk)
            view[:done] = chunk
        if done <= 0:
            raise OSError(f"the file ends at byte {offset}, {len(view)} bytes short")
        view, offset = view[done:], offset + done


def write_at(fd: int, values: np.ndarray, offset: int) -> None:
    """``values``' bytes written at ``offset`` of the file ``fd``, however many writes it takes."""
    view = np.ascontiguousarray(values).data.cast("B")
    while len(view):
        done = os.pwrite(fd, view, offset)
        view, offset = view[done:], offset + done


def read_range(fd: int, dtype: Any, start: int, stop: int) -> np.ndarray:
    """Items ``start:stop`` of a file of ``dtype`` items, in a new array."""
    dtype = np.dtype(dtype)
    return read_into(fd, np.empty(max(stop - start, 0), dtype=dtype), start * dtype.itemsize)


def read_spans(fd: int, dtype: Any, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The items ``starts[i] : starts[i] + lengths[i]`` of a file of ``dtype`` items for
    each ``i``, one after the other in the order given (repeats and overlaps allowed), in
    a new array (:class:`Spans`)."""
    return Spans(starts, lengths, np.dtype(dtype).itemsize).read(fd, dtype)


class Spans:
    """A scattered read planned once, for files of items of ``itemsize`` bytes (several
    files of one layout, such as a sparse matrix's values and columns, read alike):
    the spans ``starts[i] : starts[i] + lengths[i]``, one after the other in the order
    given.

    Spans closer than :data:`MERGE_GAP_BYTES` are read as one range, each range with a
    call: 8,192 vectors of 1.5 kB picked at random from a 921 MB file in 13 ms. (Many
    short spans, such as sparse rows, cost more in calls than in copies: see
    :func:`over_map`.)"""

    def __init__(self, starts: np.ndarray, lengths: np.ndarray, itemsize: int) -> None:
        starts = np.asarray(starts, dtype=np.int64)
        lengths = np.asarray(lengths, dtype=np.int64)
        self.itemsize = itemsize
        n = len(starts)
        self.total = int(lengths.sum()) if n else 0
        if not self.total:
            return
        keep = lengths > 0
        if not keep.all():
            starts, lengths = starts[keep], lengths[keep]
            n = len(starts)
        self.out_starts = np.zeros(n, dtype=np.int64)
        np.cumsum(lengths[:-1], out=self.out_starts[1:])
        self.order = np.argsort(starts, kind="stable")
        self.begin = starts[self.order]
        self.lengths = lengths[self.order]
        self.reach = np.maximum.accumulate(self.begin + self.lengths)  # the end of what is read so far
        opens = np.ones(n, dtype=bool)
        opens[1:] = self.begin[1:] > self.reach[:-1] + MERGE_GAP_BYTES // itemsize
        self.firsts = np.flatnonzero(opens)
        #: The spans' one length, where they have one (rows of a file of rows), else 0.
        self.width = int(lengths[0]) if bool(np.all(lengths == lengths[0])) else 0

    def read(self, fd: int, dtype: Any) -> np.ndarray:
        """The spans' items of the file ``fd``, in a new array."""
        dtype = np.dtype(dtype)
        if dtype.itemsize != self.itemsize:
            raise ValueError(f"spans of {self.itemsize}-byte items read as {dtype}")
        out = np.empty(self.total, dtype=dtype)
        if not self.total:
            return out
        lasts = np.append(self.firsts[1:], len(self.begin))
        starts = self.begin[self.firsts]
        ends = self.reach[lasts - 1]
        alone = (lasts - self.firsts == 1) & (ends - starts == self.lengths[self.firsts])  # one span: read in place
        at = self.out_starts[self.order[self.firsts]]
        view = out.data.cast("B")
        size = self.itemsize
        preadv = getattr(os, "preadv", None)
        for first, last, start, end, whole, place in zip(self.firsts.tolist(), lasts.tolist(), starts.tolist(), ends.tolist(), alone.tolist(), at.tolist()):
            if whole:
                piece = view[place * size : (place + end - start) * size]
                if preadv is None or preadv(fd, [piece], start * size) != len(piece):  # one call, mostly
                    _read_bytes(fd, piece, start * size)
            else:
                self._place(out, read_range(fd, dtype, start, end), start, first, last)
        return out

    def _place(self, out: np.ndarray, source: np.ndarray, origin: int, first: int, last: int) -> None:
        """Copy the sorted spans ``first:last`` from ``source`` (the file's items from
        item ``origin`` on) to their places in ``out``."""
        lengths = self.lengths[first:last]
        if last - first <= FEW_SPANS:  # a slice each costs less than the index arrays below
            targets = self.out_starts[self.order[first:last]].tolist()
            for at, begin, length in zip(targets, (self.begin[first:last] - origin).tolist(), lengths.tolist()):
                out[at : at + length] = source[begin : begin + length]
            return
        if self.width:  # spans of one length (rows, often repeated): copied a row at a time
            rows = np.lib.stride_tricks.sliding_window_view(source, self.width)
            out.reshape(-1, self.width)[self.out_starts[self.order[first:last]] // self.width] = rows[self.begin[first:last] - origin]
            return
        within = np.arange(int(lengths.sum()), dtype=np.int64)
        skip = np.zeros(len(lengths), dtype=np.int64)
        np.cumsum(lengths[:-1], out=skip[1:])
        within -= np.repeat(skip, lengths)
        out[np.repeat(self.out_starts[self.order[first:last]], lengths) + within] = source[np.repeat(self.begin[first:last] - origin, lengths) + within]


def over_map(fd: int, dtype: Any, start: int, stop: int, use: Callable[[np.ndarray], T]) -> T:
    """``use(items)``, ``items`` the items ``start:stop`` of a file of ``dtype`` items as a
    read-only array over a map of just that range, let go when ``use`` returns (what it
    returns must not be a view of ``items``)."""
    dtype = np.dtype(dtype)
    if stop <= start:
        return use(np.empty(0, dtype=dtype))
    granule = mmap.ALLOCATIONGRANULARITY
    lo = start * dtype.itemsize // granule * granule
    hi = stop * dtype.itemsize
    size = os.fstat(fd).st_size
    if hi > size:
        raise OSError(f"the file ends at byte {size}, before byte {hi}")
    region = mmap.mmap(fd, hi - lo, access=mmap.ACCESS_READ, offset=lo)
    try:
        return use(np.frombuffer(region, dtype=dtype, count=stop - start, offset=start * dtype.itemsize - lo))
    finally:
        _let_go(region)


def _let_go(region: mmap.mmap) -> None:
    """Unmap ``region`` now, or, where a view of it is still referenced (a traceback
    being handled, a profiler holding a frame), when the last view goes."""
    try:
        region.close()
    except BufferError:
        pass


def read_rows(fd: int, dtype: Any, width: int, rows: np.ndarray, offset: int = 0) -> np.ndarray:
    """Rows ``rows`` (any order, repeats allowed) of a file of rows of ``width`` items
    that begin ``offset`` items in (after a header), as a ``(len(rows), width)`` array."""
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) and np.all(np.diff(rows) == 1):  # consecutive rows: one range
        flat = read_range(fd, dtype, offset + int(rows[0]) * width, offset + (int(rows[-1]) + 1) * width)
    else:
        flat = read_spans(fd, dtype, offset + rows * width, np.full(len(rows), width, dtype=np.int64))
    return flat.reshape(len(rows), width)


def write_rows(fd: int, values: np.ndarray, width: int, rows: np.ndarray) -> None:
    """``values`` (``len(rows)`` rows of ``width`` items) written at rows ``rows`` of a file
    of such rows; runs of consecutive rows in one write each."""
    values = np.ascontiguousarray(values).reshape(len(rows), width)
    rows = np.asarray(rows, dtype=np.int64)
    if not len(rows):
        return
    row_bytes = width * values.dtype.itemsize
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    for lo, hi in zip(np.concatenate(([0], breaks)).tolist(), np.concatenate((breaks, [len(rows)])).tolist()):
        write_at(fd, values[lo:hi], int(rows[lo]) * row_bytes)


def row_numbers(key: Any, n: int) -> np.ndarray:
    """The row numbers an index of ``n`` rows picks (an int, a slice, an int array or a
    boolean mask), as int64, negative ones counted from the end."""
    if isinstance(key, slice):
        return np.arange(*key.indices(n), dtype=np.int64)
    index = np.asarray(key)
    if index.dtype == bool:
        if index.shape != (n,):
            raise IndexError(f"a mask of {index.shape} for {n} rows")
        return np.flatnonzero(index)
    index = np.atleast_1d(index).astype(np.int64, copy=False)
    if len(index) and (index.min() < -n or index.max() >= n):
        raise IndexError(f"row out of range for {n} rows")
    return np.where(index < 0, index + n, index)
