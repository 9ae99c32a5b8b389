"""The fused rows of the partitions, spilled to local disk and merged as they are written.

Each fusion partition (:class:`kgalign.fusion.partitioned.FusePartition`) holds its
own rows sorted. The driver fetches them a chunk at a time and appends each chunk to
that partition's file in a folder of the temporary directory (``TMPDIR``), so it never
holds more than a few chunks; the partitions can then go. The writers read the files
back as one sorted stream: a partition's rows are sorted, and a merge of the sorted
files is the order one process sorts all rows in (fused.ttl and provenance.trig are the
same files). Each pass reads the files again, from disk.

The folder is removed when the rows are let go (or the process ends); a process killed
outright leaves it behind, named ``kgalign-fused-*``.
"""

from __future__ import annotations

import heapq
import logging
import pickle
import shutil
import tempfile
import weakref
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any, BinaryIO

from kgalign.errors import KgalignError
from kgalign.fusion.export import SOURCE_BITS
from kgalign.io.partitioned import Exchange
from kgalign.io.turtle import StreamedRows

log = logging.getLogger(__name__)

#: A chunk of a partition's rows: the rows in N-Triples forms, and each one's source bits.
Chunk = tuple[list[tuple[str, str, str]], bytes]
#: Rows a partition sends in one chunk (about 10 MB of forms on the synthetic pairs).
CHUNK_ROWS = 65_536
#: Every source's bit.
ANY_SOURCE = sum(SOURCE_BITS.values())


class SpilledRows:
    """The sorted fused rows of several partitions, in files (see the module text).

    Serves the writers as :class:`kgalign.fusion.export.FusedRows` does: ``rows`` and
    ``of_source(source)`` are the rows to write, made afresh from the files each time
    they are iterated."""

    def __init__(
        self,
        folder: Path,
        files: Sequence[Path],
        counts: Mapping[str, int],
        parts: Mapping[int, tuple[Path, Mapping[str, int]]] | None = None,
        owner: bool = True,
    ) -> None:
        """``parts``: each partition's file and counts, by its number (:meth:`part`);
        ``owner``: the folder is removed when this object goes."""
        self.folder = folder
        self.files = list(files)
        self.counts = dict(counts)
        self._parts = dict(parts or {})
        self._remove = weakref.finalize(self, shutil.rmtree, folder, True) if owner else None

    def __len__(self) -> int:
        return self.counts["rows"]

    @property
    def rows(self) -> StreamedRows:
        return StreamedRows(lambda: self._merged(ANY_SOURCE), len(self))

    def of_source(self, source: str) -> StreamedRows:
        return StreamedRows(lambda: self._merged(SOURCE_BITS[source]), self.counts[source])

    def part(self, number: int) -> SpilledRows:
        """The rows of the ``number``-th partition alone (valid while this object is)."""
        path, counts = self._parts[number]
        return SpilledRows(self.folder, [path], counts, owner=False)

    def close(self) -> None:
        """Remove the files now (they are removed anyway when this object goes)."""
        if self._remove is not None:
            self._remove()

    def _merged(self, wanted: int) -> Iterator[tuple[str, str, str]]:
        return heapq.merge(*(_read(path, wanted) for path in self.files))


def _read(path: Path, wanted: int) -> Iterator[tuple[str, str, str]]:
    """The rows of one partition's file of chunks that have one of the ``wanted`` source bits."""
    with open(path, "rb") as handle:
        while True:
            try:
                rows, bits = pickle.load(handle)
            except EOFError:
                return
            if wanted == ANY_SOURCE:
                yield from rows
            else:
                yield from (row for row, bit in zip(rows, bits) if bit & wanted)


class SpillFailed(KgalignError):
    """The rows could not be written to local disk (the caller may fuse in one process)."""


def spill(
    exchange: Exchange,
    states: Sequence[Mapping[str, int]],
    window: int,
    chunk_rows: int = CHUNK_ROWS,
    directory: str | None = None,
    parts: Sequence[int] | None = None,
) -> SpilledRows:
    """Fetch the rows of every partition of ``exchange`` (``states``: what each one's
    ``finish`` counted; ``parts``: only those partitions) in chunks of ``chunk_rows``,
    the partitions in turn, at most ``window`` chunks in flight, into one file per
    partition in a new folder of ``directory`` (default: the temporary directory).
    Raises :class:`SpillFailed`."""
    numbers = list(range(len(states))) if parts is None else list(parts)
    try:
        folder = Path(tempfile.mkdtemp(prefix="kgalign-fused-", dir=directory))
    except OSError as exc:
        raise _cannot_spill(exc, directory or tempfile.gettempdir()) from None
    files = {k: folder / f"part-{k:05d}.pickle" for k in numbers}
    try:
        with ExitStack() as stack:
            handles = {k: stack.enter_context(open(path, "wb")) for k, path in files.items()}
            pending: deque[tuple[int, Any]] = deque()
            turns = max((states[k]["rows"] for k in numbers), default=0)
            for start in range(0, turns, chunk_rows):
                for k in numbers:
                    if start < states[k]["rows"]:
                        pending.append((k, exchange.call(k, "chunk", start, start + chunk_rows)))
                    if len(pending) > window:
                        _write(exchange, pending.popleft(), handles)
            while pending:
                _write(exchange, pending.popleft(), handles)
    except OSError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise _cannot_spill(exc, folder) from None
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    names = ("rows", *SOURCE_BITS)
    counts = {name: sum(states[k][name] for k in numbers) for name in names}
    log.info("spilled %d fused triples of %d partitions to %s", counts["rows"], len(numbers), folder)
    return SpilledRows(folder, list(files.values()), counts, {k: (files[k], {name: states[k][name] for name in names}) for k in numbers})


def _write(exchange: Exchange, call: tuple[int, Any], handles: Mapping[int, BinaryIO]) -> None:
    """A chunk, once it has come, appended to its partition's file (a partition's chunks
    are asked, and so come, in order)."""
    k, future = call
    pickle.dump(exchange.get([future])[0], handles[k], protocol=pickle.HIGHEST_PROTOCOL)


def _cannot_spill(exc: OSError, where: str | Path) -> SpillFailed:
    return SpillFailed(f"{exc.filename or where}: cannot spill the fused triples there ({exc.strerror or exc}); set TMPDIR to a folder with room")
