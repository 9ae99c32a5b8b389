"""The sentence-vector cache on disk: one vector per text, per model.

A folder per embedder model (``$KGALIGN_CACHE/vectors/<model hash>/``) holding shards:
each call that embeds texts the cache lacks writes one, two numpy files (the vectors,
float32, and their keys: the first 16 bytes of each text's SHA-256, sorted). A run asks
for all its texts at once and embeds only those no shard holds, so a run on slightly
changed inputs (``--since``, or any rerun after an edit) embeds only the new and changed
texts. Reading is a binary search in each shard's keys and a gather from its
memory-mapped vectors. Past ``MAX_SHARDS`` shards, a write merges them all into one,
reading and writing the vectors a slice at a time (the cache of a large graph is
gigabytes; only the keys are held whole).

What this trades: a text's vector depends, in the last bits, on the batch it was
computed in (the padding and the matrix shapes of that batch). A text read from the
cache keeps the bits of the run that first embedded it (the oldest shard wins), so two
runs on the same inputs from different cache histories can differ in those bits.
docs/retrieval.md measures what that changes.

A shard, merged ones too, is written under a name no other shard has, to temporary
files renamed into place, its keys last: an interrupted run leaves no half shard that
counts, and a merge removes what such runs left once it is an hour old. A shard whose
files are unreadable or do not belong together is logged and passed over (and removed
by a merge once an hour old), and so is an unreadable folder: the cache only ever saves
time.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from kgalign.io.pread import read_rows
from kgalign.retrieval.vector_file import VectorFile, Vectors

log = logging.getLogger(__name__)

#: Shards a model's folder holds before a write merges them into one.
MAX_SHARDS = 16

KEYS = ".keys.npy"
VECTORS = ".vectors.npy"
MERGED = "-merged"
#: Length of the time at the start of a shard's name (nanoseconds, zero-padded).
STAMP = 20
#: Age past which a merge removes a vectors file without keys, or a temporary file.
ORPHAN_AGE_S = 3600
#: Vectors gathered and written at a time.
WRITE_ROWS = 65_536


def text_key(text: str) -> bytes:
    """The cache key of one text (16 bytes)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()[:16]


def _as_words(keys: Sequence[bytes]) -> np.ndarray:
    """Keys as rows of two uint64: the first sorted and searched, the second compared."""
    return np.frombuffer(b"".join(keys), dtype=np.uint64).reshape(-1, 2) if keys else np.zeros((0, 2), dtype=np.uint64)


class VectorStore:
    """The cached vectors of one model's texts, under ``directory``."""

    def __init__(self, directory: Path, model_id: str) -> None:
        self.folder = directory / hashlib.sha256(model_id.encode()).hexdigest()[:32]
        self.model_id = model_id

    def shards(self) -> list[Path]:
        """The complete shards, oldest first (their names start with the time they were written)."""
        if not self.folder.is_dir():
            return []
        return sorted(self.folder.glob(f"*{KEYS}"))

    def get(self, keys: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray | None]:
        """Which of ``keys`` the cache holds (a boolean per key) and their vectors (rows of
        the found keys, in order; None when none is found)."""
        found = np.zeros(len(keys), dtype=bool)
        rows: list[tuple[np.ndarray, np.ndarray]] = []  # (positions in keys, vectors)
        for positions, vectors, at, _ in self._hits(keys):
            rows.append((positions, np.asarray(vectors[at], dtype=np.float32)))
            found[positions] = True
        if not rows:
            return found, None
        if not self._one_width({part.shape[1] for _, part in rows}):
            return np.zeros(len(keys), dtype=bool), None
        out = np.empty((int(found.sum()), rows[0][1].shape[1]), dtype=np.float32)
        rank = np.cumsum(found) - 1  # a found key's row in out
        for positions, part in rows:
            out[rank[positions]] = part
        return found, out

    def get_into(self, keys: Sequence[bytes], make: Callable[[int], np.ndarray | VectorFile]) -> tuple[np.ndarray, np.ndarray | VectorFile | None]:
        """:meth:`get`, the vectors put at their keys' rows of ``make(width)`` (a row per
        key; those not found left as they are), ``WRITE_ROWS`` at a time, each slice read
        from its shard's file (:mod:`kgalign.io.pread`): no copy of them all is held, and
        no page of a shard is mapped whole."""
        found = np.zeros(len(keys), dtype=bool)
        hits = list(self._hits(keys))  # where each found key is; its vector not read yet
        if not hits:
            return found, None
        if not self._one_width({vectors.shape[1] for _, vectors, _, _ in hits}):
            return found, None
        out = make(hits[0][1].shape[1])
        for positions, _, at, path in hits:
            for start in range(0, len(positions), WRITE_ROWS):
                out[positions[start : start + WRITE_ROWS]] = _read_rows(path, at[start : start + WRITE_ROWS])
            found[positions] = True
        return found, out

    def _one_width(self, widths: set[int]) -> bool:
        """Whether the shards read hold vectors of one width (else the cache is ignored, logged)."""
        if len(widths) > 1:
            log.warning("ignoring vector cache %s: its shards hold vectors of several widths", self.folder)
            return False
        return True

    def _hits(self, keys: Sequence[bytes]) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, Path]]:
        """For each shard holding some of ``keys`` not found in an older one, oldest first:
        their positions in ``keys``, the shard's vectors (memory-mapped), their rows there
        and the file of the vectors."""
        wanted = _as_words(keys)
        found = np.zeros(len(keys), dtype=bool)
        for shard in self.shards():
            if found.all():
                break
            read = _read_shard(shard)
            if read is None:
                continue
            stored, vectors = read
            open_rows = np.flatnonzero(~found)
            query = wanted[open_rows]
            at = np.searchsorted(stored[:, 0], query[:, 0])
            at[at == len(stored)] = 0
            hit = (stored[at, 0] == query[:, 0]) & (stored[at, 1] == query[:, 1]) if len(stored) else np.zeros(len(query), dtype=bool)
            if hit.any():
                yield open_rows[hit], vectors, at[hit], _vectors_of(shard)
                found[open_rows[hit]] = True

    def put(self, keys: Sequence[bytes], vectors: Vectors) -> None:
        """Store ``vectors`` (a row per key, the keys distinct; in memory or a file) as a new shard."""
        if not keys:
            return
        words = _as_words(keys)
        order = np.lexsort((words[:, 1], words[:, 0]))
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._write(f"{time.time_ns():0{STAMP}d}-{os.getpid()}", words[order], vectors, order)
            if len(self.shards()) > MAX_SHARDS:
                self.compact()
        except OSError as exc:
            log.warning("could not write vector cache %s: %s", self.folder, exc)

    def _write(self, name: str, words: np.ndarray, vectors: Vectors | ShardRows, rows: np.ndarray) -> None:
        """A shard of ``words`` and ``vectors[rows]`` (the row of each key), the vectors
        gathered and written a slice at a time: gathering them all at once would hold a
        second copy of every vector (a gigabyte on a graph of a few million triples)."""
        keys_path = self.folder / f"{name}{KEYS}"
        vectors_path = _vectors_of(keys_path)
        tmp = vectors_path.with_name(f".{vectors_path.name}.{os.getpid()}.tmp")
        try:
            with tmp.open("wb") as handle:
                header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)), "fortran_order": False, "shape": (len(rows), vectors.shape[1])}
                np.lib.format.write_array_header_1_0(handle, header)
                for start in range(0, len(rows), WRITE_ROWS):
                    handle.write(np.ascontiguousarray(vectors[rows[start : start + WRITE_ROWS]], dtype=np.float32).tobytes())
        except BaseException:  # a full disk, or a merge's shard removed by another run's merge
            tmp.unlink(missing_ok=True)
            raise
        os.replace(tmp, vectors_path)
        tmp = keys_path.with_name(f".{keys_path.name}.{os.getpid()}.tmp")
        with tmp.open("wb") as handle:
            np.save(handle, words)
        os.replace(tmp, keys_path)  # the keys last: a shard counts once they are in place

    def compact(self) -> None:
        """Merge every shard into one (the oldest copy of a key kept), then remove the others.

        The merged shard gets a name of its own, so that it appears whole (its keys
        renamed last) and no reader or other merge ever sees it half replaced; the name
        starts with the oldest shard's time, so that it still comes before any shard
        written meanwhile by another run."""
        shards = self.shards()
        words, shapes, merged_shards = [], [], []
        for shard in shards:
            read = _read_shard(shard)
            if read is not None:
                words.append(read[0])
                shapes.append(read[1].shape)
                merged_shards.append(shard)
            elif _older_than(shard, ORPHAN_AGE_S):
                for path in (shard, _vectors_of(shard)):  # broken for an hour: for good
                    path.unlink(missing_ok=True)
            del read
        if not words or len({width for _, width in shapes}) > 1:
            return
        vectors = ShardRows([_vectors_of(shard) for shard in merged_shards], [length for length, _ in shapes], shapes[0][1])
        merged = np.concatenate(words)
        order = np.lexsort((np.arange(len(merged)), merged[:, 1], merged[:, 0]))  # equal keys: oldest first
        merged = merged[order]
        first = np.ones(len(merged), dtype=bool)
        first[1:] = np.any(merged[1:] != merged[:-1], axis=1)
        name = f"{shards[0].name[:STAMP]}{MERGED}-{time.time_ns():0{STAMP}d}-{os.getpid()}"
        self._write(name, merged[first], vectors, order[first])
        for shard in merged_shards:
            for path in (shard, _vectors_of(shard)):
                path.unlink(missing_ok=True)
        self._remove_orphans()
        log.info("vector cache %s: %d shards merged into one", self.folder, len(merged_shards))

    def _remove_orphans(self) -> None:
        """Remove what killed runs left: vectors whose keys never came, temporary files.
        Only those older than ``ORPHAN_AGE_S``: a younger one may be a running write's."""
        complete = {shard.name[: -len(KEYS)] for shard in self.shards()}
        try:
            paths = list(self.folder.iterdir())
        except OSError:  # the folder went away meanwhile: nothing to remove
            return
        for path in paths:
            orphan = path.name.endswith(".tmp") or (path.name.endswith(VECTORS) and path.name[: -len(VECTORS)] not in complete)
            if orphan and _older_than(path, ORPHAN_AGE_S):
                path.unlink(missing_ok=True)
                log.info("vector cache: removed %s, left by an interrupted run", path.name)


class ShardRows:
    """The vectors of several shards as the rows of one array (the first shard's first),
    for a merge: each gather reads the rows from the files (:mod:`kgalign.io.pread`),
    so no copy of them all is held and no shard is mapped whole. A shard removed
    meanwhile (another run's merge, which then holds its vectors) fails this merge with
    an OSError: :meth:`VectorStore.put` logs it, and the shards stay as they are."""

    def __init__(self, paths: Sequence[Path], lengths: Sequence[int], width: int) -> None:
        self.paths = list(paths)
        self.starts = np.cumsum([0, *lengths])
        self.shape = (int(self.starts[-1]), width)

    def __getitem__(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows)
        out = np.empty((len(rows), self.shape[1]), dtype=np.float32)
        shard = np.searchsorted(self.starts, rows, side="right") - 1
        for k in np.unique(shard).tolist():
            mine = shard == k
            out[mine] = _read_rows(self.paths[k], rows[mine] - self.starts[k])
        return out


def _read_rows(path: Path, rows: np.ndarray) -> np.ndarray:
    """The vectors ``rows`` of a shard's vectors file (an ``.npy`` of 2-d rows), as
    float32, read from the file without mapping it (:mod:`kgalign.io.pread`)."""
    with open(path, "rb") as handle:
        version = np.lib.format.read_magic(handle)
        read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}.get(version)
        if read_header is None:
            raise ValueError(f"{path}: an .npy file of version {version}")
        shape, fortran, dtype = read_header(handle)
        if fortran or len(shape) != 2:
            raise ValueError(f"{path}: not an array of rows")
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) and (rows.min() < 0 or rows.max() >= shape[0]):
            raise IndexError(f"{path}: row out of range for {shape[0]} rows")
        found = read_rows(handle.fileno(), dtype, shape[1], rows, handle.tell() // dtype.itemsize)
    return found.astype(np.float32, copy=False)


def _older_than(path: Path, seconds: float) -> bool:
    """Whether ``path`` was last written more than ``seconds`` ago (False if it is gone)."""
    try:
        return time.time() - path.stat().st_mtime > seconds
    except OSError:
        return False


def _read_shard(shard: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """A shard's keys and vectors (memory-mapped), or None, logged, when
    either is unreadable or they do not belong together (other lengths, other shapes)."""
    try:
        stored = np.load(shard)
        vectors = np.load(_vectors_of(shard), mmap_mode="r")
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable vector cache shard %s: %s", shard, exc)
        return None
    if stored.ndim != 2 or stored.shape[1] != 2 or vectors.ndim != 2 or len(vectors) != len(stored):
        log.warning("ignoring malformed vector cache shard %s", shard)
        return None
    return stored, vectors


def _vectors_of(keys_path: Path) -> Path:
    return keys_path.with_name(keys_path.name[: -len(KEYS)] + VECTORS)
