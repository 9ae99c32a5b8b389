"""Records by key kept in a file instead of memory (``--engine ray``'s driver).

A :class:`RecordFile` is a read-only mapping whose values live in a nameless temporary
file (``tempfile.TemporaryFile`` in ``TMPDIR``: gone with the last reference to it, or
when the process ends); the process keeps a row number per key and an offset per row.
Each value is stored with :mod:`marshal` (the file is this process's own, never read
from elsewhere) and read back with ``os.pread`` (no shared file position: threads may
read at once). Records are appended a batch at a time, unbuffered, each batch written
until done (``os.pwrite``): a batch that fails (a full disk) is not indexed, and every
batch before it stays readable, so a caller can fall back to memory with what it had
written (:meth:`RecordFile.read_back`).

Subclasses say how a value becomes a record and back (:meth:`RecordFile.encode`,
:meth:`RecordFile.decode`): :class:`kgalign.selection.profile_file.ProfileFile`,
:class:`kgalign.io.entity_file.EntityFile`.
"""

from __future__ import annotations

import logging
import marshal
import os
import tempfile
from abc import abstractmethod
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Generic, TypeVar

V = TypeVar("V")

log = logging.getLogger(__name__)

#: The bytes of records gathered before one write.
BATCH_BYTES = 8 << 20


class RecordFile(Mapping[str, V], Generic[V]):
    """Values by key in a temporary file (see the module text); keys iterate in the
    order they were appended, or the order given to :meth:`reorder`."""

    def __init__(self, directory: str | None = None) -> None:
        self._file = tempfile.TemporaryFile(dir=directory, buffering=0)
        self.directory = directory or tempfile.gettempdir()
        self._rows: dict[str, int] = {}
        self._starts = array("q")
        self._ends = array("q")
        self._size = 0

    # How a value is stored: each subclass says.
    @abstractmethod
    def encode(self, value: V) -> Any:
        """What :mod:`marshal` writes for ``value`` (its key is kept apart)."""

    @abstractmethod
    def decode(self, key: str, data: Any) -> V:
        """The value of ``key`` from what :meth:`encode` gave."""

    def extend(self, items: Iterable[tuple[str, V]]) -> None:
        """Append ``(key, value)`` pairs, written BATCH_BYTES at a time; a key given again
        is replaced (its old record stays in the file, unread). Raises OSError where the
        file cannot take a batch: that batch is not indexed, those before it are."""
        records = bytearray()
        placed: list[tuple[str, int]] = []
        for key, value in items:
            record = marshal.dumps(self.encode(value))
            records += record
            placed.append((key, len(records)))
            if len(records) >= BATCH_BYTES:
                self._write(records, placed)
                records, placed = bytearray(), []
        if placed:
            self._write(records, placed)

    def _write(self, records: bytearray, placed: list[tuple[str, int]]) -> None:
        view, offset = memoryview(records), self._size
        while len(view):
            done = os.pwrite(self._file.fileno(), view, offset)
            view, offset = view[done:], offset + done
        rows, starts, ends, start = self._rows, self._starts, self._ends, self._size
        for key, end in placed:
            rows[key] = len(starts)
            starts.append(start)
            ends.append(self._size + end)
            start = self._size + end
        self._size += len(records)

    def reorder(self, keys: Iterable[str]) -> None:
        """Iterate the keys in the order of ``keys`` (the same keys, each once)."""
        rows = self._rows
        try:
            ordered = {key: rows[key] for key in keys}
        except KeyError as exc:
            raise ValueError(f"reorder: {exc.args[0]!r} is not a key of the file") from None
        if len(ordered) != len(rows):
            raise ValueError(f"reorder: {len(ordered)} keys given for {len(rows)}")
        self._rows = ordered

    def read_back(self) -> dict[str, V]:
        """Every value, in memory, in key order: where a caller gives up on the file."""
        return {key: self[key] for key in self._rows}

    def close(self) -> None:
        self._file.close()

    def _record(self, row: int) -> Any:
        """What :meth:`encode` gave for the value of ``row``, read back."""
        start = self._starts[row]
        return marshal.loads(os.pread(self._file.fileno(), self._ends[row] - start, start))

    def __getitem__(self, key: str) -> V:
        return self.decode(key, self._record(self._rows[key]))

    def __contains__(self, key: object) -> bool:
        return key in self._rows

    def __iter__(self) -> Iterator[str]:
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)


class RecordSink(Generic[V]):
    """Values by key as they come, a batch at a time: into the :class:`RecordFile` that
    ``make`` gives, else (``make`` None, or a file that cannot be made) a dict. A batch
    the file cannot take (a full disk, a value marshal cannot write) turns the sink to
    memory, with a warning, the values written so far read back. ``what`` names the
    values in the warnings, after ``name: `` where a ``name`` is given."""

    def __init__(self, make: Callable[[], RecordFile[V]] | None, what: str, name: str = "") -> None:
        self.what = what
        self.prefix = f"{name}: " if name else ""
        self.file: RecordFile[V] | None = None
        self.held: dict[str, V] = {}
        if make is not None:
            try:
                self.file = make()
            except OSError as exc:
                log.warning("%scannot keep the %s in a temporary file (%s); they stay in memory", self.prefix, what, exc)

    def extend(self, items: list[tuple[str, V]]) -> None:
        """Take ``items`` (``(key, value)`` pairs)."""
        if self.file is not None:
            try:
                self.file.extend(items)
                return
            except (OSError, ValueError) as exc:  # ValueError: a value marshal cannot write
                log.warning(
                    "%scannot keep more %s in %s (%s); the %d so far and the rest stay in memory",
                    self.prefix,
                    self.what,
                    self.file.directory,
                    exc,
                    len(self.file),
                )
                self.held = self.file.read_back()
                self.file.close()
                self.file = None
        self.held.update(items)

    def finish(self) -> Mapping[str, V]:
        """The values by key, in the order they came: the file, or the dict."""
        return self.file if self.file is not None else self.held
