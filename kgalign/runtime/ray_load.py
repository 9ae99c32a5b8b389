"""``--engine ray``'s load stage: an input's entity table built by partitions on Ray actors.

An uncompressed N-Triples or N-Quads file is cut into byte ranges of 4 MB that the
partition actors read themselves, each range's lines those that begin in it, where
they see the file as the driver does (the same size and modification time; on a
cluster, a shared filesystem); a gzipped one, or one they do not see, is read by the
driver in blocks cut at line ends (a Turtle or TriG file is parsed by the driver as a
stream, into blocks of N-Triples lines). One actor per partition routes every n-th
range's or block's lines by subject to the partitions (the shuffle), then parses,
indexes and folds its own subjects (:mod:`kgalign.io.partitioned`). The driver never holds more
than a window of blocks, and receives the entity table, which is the one a single
process builds. The partition actors reserve no CPU: the model actors, which may
already hold the cluster's CPUs, would otherwise keep them from starting. The same
partitions load both inputs (a Ray actor's process takes about a CPU second to start),
and are let go once both tables are built.

Other inputs (RDF/XML, tables, an endpoint's copy) are loaded in the driver,
as are inputs a partition cannot parse or check: the one-process load then names the
error as ``--engine local`` does.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from kgalign.errors import InputError, first_line
from kgalign.io.entities import check_table, no_subject_of_class
from kgalign.io.formats import folder_files, is_table_input, rdf_format
from kgalign.io.partitioned import LINE_FORMATS, PARSED_FORMATS, Counted, Partition, PartitionFailed, build_table
from kgalign.io.reading import scan
from kgalign.model import EntityTable

log = logging.getLogger(__name__)

#: Bytes of input a routing task gets at once (cut at a line end). The driver puts each
#: block in Ray's object store, whose pages it writes stay in its resident memory (and
#: in the store) for the whole run: with 16 MB blocks, the window of blocks in flight
#: kept 248 MB of them in the driver of the 4M run; with 4 MB blocks 116 MB, the load as
#: fast (133 s against 132 s; the driver's /proc status polled, 2026-11-25).
BLOCK_BYTES = 4 << 20
#: Blocks whose lines are in flight at once per partition.
WINDOW = 4


class Splitting:
    """What a partition needs as a Ray actor: :meth:`split` gives a method's
    per-partition list as that many return values, so each goes straight to the
    partition it is for."""

    def split(self, method: str, *args: Any) -> Any:
        values = getattr(self, method)(*args)
        return values[0] if len(values) == 1 else values


class RemotePartition(Partition, Splitting):
    """A partition of the load (:class:`kgalign.io.partitioned.Partition`) as a Ray actor."""


class RayExchange:
    """:class:`kgalign.io.partitioned.Exchange` over Ray actors of ``kind`` (a partition
    class with :class:`Splitting`), each made as ``kind(number, parts, *args)``."""

    def __init__(self, ray: Any, parts: int, kind: type, *args: Any) -> None:
        self.ray = ray
        self.parts = parts
        actor = ray.remote(num_cpus=0)(kind)
        self.actors: list[Any] = []
        try:
            for k in range(parts):
                self.actors.append(actor.options(scheduling_strategy="SPREAD").remote(k, parts, *args))
        except BaseException:
            self.close()
            raise
        self._routed = 0

    def route(self, data: bytes, tag: int) -> list[Any]:
        self._routed += 1
        return self.call(self._routed % self.parts, "route", data, tag, split=True)

    def call(self, number: int, method: str, *args: Any, split: bool = False) -> Any:
        actor = self.actors[number]
        if not split:
            return getattr(actor, method).remote(*args)
        refs = actor.split.options(num_returns=self.parts).remote(method, *args)
        return refs if self.parts > 1 else [refs]

    def get(self, futures: list[Any]) -> list[Any]:
        return list(self.ray.get(futures))

    def restart(self, *args: Any) -> None:
        """Each partition's ``restart(*args)``: what it held goes, and it starts again."""
        self.get([actor.restart.remote(*args) for actor in self.actors])

    def close(self) -> None:
        kill_all(self.ray, self.actors)


def kill_all(ray: Any, actors: list[Any]) -> None:
    """Kill the actors, those already gone (killed, or their node lost) silently."""
    for actor in actors:
        try:
            ray.kill(actor)
        except Exception:  # already gone
            pass


def partitioned_files(path: Path, fmt: str | None) -> list[tuple[Path, str]] | None:
    """The files of an input the partitions can read, in order, each with its format;
    None where one process must load it (RDF/XML, a table, a blank single file, a
    surrogate escape)."""
    if is_table_input(path, fmt):
        return None
    if path.is_dir():
        files = [(file, rdf_format(file)) for file in folder_files(path)]
    elif path.is_file():
        files = [(path, rdf_format(path, fmt))]
    else:
        return None
    if any(found not in LINE_FORMATS | PARSED_FORMATS for _, found in files):
        return None
    kept = []
    for file, found_format in files:
        found = scan(file, found_format)
        if found.surrogate_line is not None or (found.blank and not path.is_dir()):
            return None
        if found.blank:
            log.warning("%s: the file is empty", file)
        else:
            kept.append((file, found_format))
    return kept or None


class RayLoader:
    """Builds an input's entity table on the partitions of a Ray cluster (see the module text)."""

    def __init__(self, ray: Any, parts: int, by_ranges: bool = True) -> None:
        self.ray = ray
        self.parts = max(1, parts)
        self.by_ranges = by_ranges  # files of lines read by the partitions themselves, where they see them
        self.used = 0  # inputs loaded by partitions
        self._exchange: RayExchange | None = None  # the partitions, kept for the next input
        self.started = 0  # sets of partitions started

    def _partitions(self, path: Path) -> RayExchange:
        """The partitions, started for ``path`` (or those of the input before, restarted)."""
        if self._exchange is None:
            self._exchange = RayExchange(self.ray, self.parts, RemotePartition, str(path))
            self.started += 1
        else:
            self._exchange.restart(str(path))
        return self._exchange

    def close(self) -> None:
        """Let the partitions go (once the run's inputs are loaded)."""
        if self._exchange is not None:
            self._exchange.close()
            self._exchange = None

    def __call__(
        self, path: Path, name: str, fmt: str | None, classes: list[str] | None, keep: tuple[str, ...] = (), fold: tuple[str, ...] = ()
    ) -> tuple[Counted, EntityTable] | None:
        """The number and prefixes of ``path``'s triples and its entity table, or None
        where the driver must load it."""
        files = partitioned_files(path, fmt)
        if files is None:
            return None
        done = False
        try:
            exchange = self._partitions(path)
            table, prefixes = build_table(files, name, classes, exchange, BLOCK_BYTES, WINDOW * self.parts, self.by_ranges, spill=True, keep=keep, fold=fold)
            done = True
        except PartitionFailed as failed:
            log.info("%s: the partitions could not read it (%s); loading it in the driver", path, failed)
            return None
        except self.ray.exceptions.RayError as exc:  # an actor died (out of memory, a lost node)
            log.warning("%s: a partition failed (%s); loading it in the driver", path, first_line(exc))
            return None
        finally:
            if not done:  # blocks may still be in flight to them: the next input gets new ones
                self.close()
        if classes and not table.entities:
            raise InputError(no_subject_of_class(str(path), {str(c) for c in classes}))
        check_table(path, table)
        log.info("loaded %s: %d triples, in %d partitions", path, table.triple_count, self.parts)
        log.info("%s: %d entities", name, len(table.entities))
        self.used += 1
        return Counted(table.triple_count, prefixes), table
