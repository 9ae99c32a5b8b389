"""An entity table built in partitions: no process holds all the triples of a graph.

A line-based input (N-Triples or N-Quads, gzipped or not; a folder of them) is read in
blocks cut at line ends (:func:`blocks`). Each block's lines are routed by their subject
(:func:`route`) to one of ``n`` partitions (a hash of the subject; a shuffle: all of an
entity's triples meet in one partition, whichever file or block they came from). A
:class:`Partition` parses its lines as one process parses the whole file (the same
term conversion, triples in file order, each once) and indexes them
(:class:`kgalign.io.entities.Index`).

What one process reads of the whole graph, the partitions exchange in rounds
(:func:`build_table`), the caller carrying the messages (:class:`Exchange`: direct calls
here, Ray actors in :mod:`kgalign.runtime.ray_load`):

1. which nodes are referenced by other subjects, and the classes of those (up to a
   few); which describe the vocabulary (the owner of each node learns it);
2. whether the graph has a literal at all;
3. each partition's classes (:func:`kgalign.io.entities.tally_classes`), summed, which
   the caller decides on (:func:`kgalign.io.kinds.decide`), and the entities of each
   partition (:func:`kgalign.io.entities.find_entity_nodes`);
4. up to FOLD_DEPTH rounds: each partition asks the owners of the nodes its entities
   link to (and, through label-less nodes, up to FOLD_DEPTH links away) whether they
   are entities and, if not, for their literals and links, which are folded in;
5. each partition's entities, in IRI order, merged by IRI into the table.

The table is the one :func:`kgalign.io.entities.build_entity_table` builds from the
whole graph, entity for entity (tests/test_partitioned.py). Blank node labels are kept
per file (``_:b1`` of two files stays two nodes, as in one process). Whatever a
partition cannot parse or check (a syntax error, an RDF 1.2 triple term, a bad IRI)
makes the caller load the file in one process instead, whose error names the line.
"""

from __future__ import annotations

import heapq
import logging
import os
import re
import sys
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from rdflib import BNode, URIRef

from kgalign.errors import first_line
from kgalign.incremental.state import entity_hash
from kgalign.io import kinds as kinds_module
from kgalign.io.diagnostics import TermWarnings, check_terms, quiet_term_warnings, report_term_warnings
from kgalign.io.entities import FOLD_DEPTH, Index, build_entities, find_entity_nodes, referrers_of, tally_classes
from kgalign.io.entity_file import EntitySink
from kgalign.io.kinds import MAX_OWNERS, ClassTally, EntityKinds
from kgalign.io.reading import chunks, open_input
from kgalign.io.triples import Triple, TripleSet
from kgalign.model import Entity, EntityTable, Value

log = logging.getLogger(__name__)

#: The formats whose every line is one triple (or quad), and can be routed by its first term.
LINE_FORMATS = frozenset({"nt", "nquads"})
#: The formats the driver parses as a stream into N-Triples lines (:func:`parsed_blocks`).
PARSED_FORMATS = frozenset({"turtle", "trig"})
_ESCAPE = re.compile(rb"\\u([0-9A-Fa-f]{4})|\\U([0-9A-Fa-f]{8})")
_LABEL_END = re.compile(rb"[ \t<\r\n]")
#: The entities a partition hands over at once when the table goes to a file.
PAGE_ENTITIES = 16_384
#: What :meth:`Partition.close` says of a node that describes the vocabulary.
SCHEMA = "schema"


class PartitionFailed(Exception):
    """A partition could not parse or check its lines (the message says what it saw)."""


class Counted:
    """What the pipeline keeps of an input loaded by partitions (a
    :class:`kgalign.io.triples.TripleSource` without its triples): their number and the
    file's prefixes; fusion reads the file again (:class:`kgalign.io.reloaded.ReloadedTriples`)."""

    def __init__(self, count: int, prefixes: dict[str, str]) -> None:
        self.count = count
        self.prefixes = [(prefix, URIRef(namespace)) for prefix, namespace in prefixes.items()]

    def __len__(self) -> int:
        return self.count

    def namespaces(self) -> list[tuple[str, URIRef]]:
        return list(self.prefixes)

    def __iter__(self) -> Iterator[Triple]:
        raise TypeError("the triples of an input loaded by partitions are read again from its file")


def blocks(path: Path, size: int) -> Iterator[bytes]:
    """The bytes of ``path`` (decompressed when it ends in ``.gz``) in blocks of about
    ``size`` bytes, each ending at a line end (a line longer than ``size`` is one block)."""
    carry = b""
    with open_input(path) as handle:
        for chunk in chunks(path, handle):
            carry += chunk
            if len(carry) < size:
                continue
            cut = carry.rfind(b"\n") + 1
            if cut:
                yield carry[:cut]
                carry = carry[cut:]
    if carry:
        yield carry


def parsed_blocks(path: Path, fmt: str, size: int, prefixes: dict[str, str]) -> Iterator[bytes]:
    """A Turtle or TriG file (``fmt``), parsed as a stream (the whole file is never held),
    as N-Triples lines in blocks of about ``size`` bytes; the file's prefixes are added
    to ``prefixes`` at the end. A file pyoxigraph cannot parse raises
    :class:`PartitionFailed` (the one-process load names the error)."""
    import pyoxigraph as ox

    from kgalign.io.parsers import oxigraph_format

    lines: list[str] = []
    held = 0
    try:
        with open_input(path) as handle:
            parser = ox.parse(handle, format=oxigraph_format(fmt), base_iri=path.resolve().as_uri())
            for quad in parser:
                line = f"{quad.subject} {quad.predicate} {quad.object} .\n"
                lines.append(line)
                held += len(line)
                if held >= size:
                    yield "".join(lines).encode("utf-8", "surrogatepass")
                    lines.clear()
                    held = 0
            for prefix, namespace in parser.prefixes.items():
                prefixes.setdefault(prefix, namespace)
    except PartitionFailed:
        raise
    except Exception as exc:  # a syntax error, an unreadable stream
        raise PartitionFailed(f"{path}: {type(exc).__name__}") from None
    if lines:
        yield "".join(lines).encode("utf-8", "surrogatepass")


def read_range(path: str | Path, start: int, stop: int, seen: tuple[int, int] | None = None) -> bytes:
    """The lines of the uncompressed file ``path`` that begin at a byte in ``start:stop``
    (the last one read to its end): ranges cut a file anywhere, and each line is in
    exactly one of them. ``seen``: the file's size and modification time (ns) when the
    ranges were cut; a file that is no longer so raises :class:`PartitionFailed`."""
    with open(path, "rb") as handle:
        if seen is not None:
            found = os.fstat(handle.fileno())
            if (found.st_size, found.st_mtime_ns) != seen:
                raise PartitionFailed(f"{path}: the file changed while it was read")
        if start > 0:
            handle.seek(start - 1)
            start += len(handle.readline()) - 1  # the rest of a line begun before ``start``
            if start >= stop:
                return b""
        data = handle.read(stop - start)
        if data and not data.endswith(b"\n"):
            data += handle.readline()
        return data


def ranged(path: Path, fmt: str) -> bool:
    """Whether partitions may read ``path`` by byte ranges themselves: a file of lines
    (N-Triples, N-Quads), not compressed."""
    return fmt in LINE_FORMATS and path.suffix.lower() != ".gz"


class RangeReading:
    """What lets a partition read its share of a file itself (:func:`send_lines`), where
    it sees the file the driver sees, instead of being sent its bytes."""

    #: The partition's own routing of a block of lines (:class:`Partition`, :class:`kgalign.fusion.partitioned.FusePartition`).
    route: Callable[[bytes, int], list[bytes]]

    def sees_file(self, path: str, size: int, mtime_ns: int) -> bool:
        """Whether this process can read ``path`` and sees it with the driver's size and
        modification time."""
        try:
            found = os.stat(path)
        except OSError:
            return False
        return found.st_size == size and found.st_mtime_ns == mtime_ns and os.access(path, os.R_OK)

    def route_range(self, path: str, start: int, stop: int, tag: int, seen: tuple[int, int] | None = None) -> list[bytes]:
        """:meth:`route` of the lines of ``path`` that begin in ``start:stop`` (:func:`read_range`)."""
        return self.route(read_range(path, start, stop, seen), tag)


def blank_id(tag: int, label: str) -> str:
    """The identifier of blank node ``_:label`` of the input's ``tag``-th file."""
    return f"f{tag}b{label}"


def _unescape(match: re.Match[bytes]) -> bytes:
    return chr(int(match.group(1) or match.group(2), 16)).encode("utf-8", "surrogatepass")


def line_key(line: bytes, tag: int) -> bytes | None:
    """The subject of one N-Triples/N-Quads line as :func:`node_key` spells it; None for a
    blank or comment line. A line that starts otherwise gets an empty key: its partition
    fails to parse it, and the file is loaded in one process (which names the error)."""
    text = line.lstrip(b" \t")  # N-Triples' white space; any other byte is the parser's to judge
    if not text.rstrip(b"\r\n") or text[:1] == b"#":
        return None
    if text[:1] == b"<" and text[1:2] != b"<":
        end = text.find(b">")
        iri = text[1:end] if end > 0 else b""
        try:
            return _ESCAPE.sub(_unescape, iri) if b"\\" in iri else iri
        except ValueError:  # an escape past U+10FFFF: the parser names it
            return b""
    if text[:2] == b"_:":
        stop = _LABEL_END.search(text, 2)
        label = text[2 : stop.start() if stop else len(text)]
        return b"_:" + blank_id(tag, label.decode("utf-8", "surrogatepass")).encode("utf-8", "surrogatepass")
    return b""


def node_key(node: object) -> bytes:
    """What decides a node's partition: its IRI, or ``_:`` and its identifier."""
    text = f"_:{node}" if isinstance(node, BNode) else str(node)
    return text.encode("utf-8", "surrogatepass")


def owner(key: bytes, parts: int) -> int:
    """The partition of a key: the same in every process (unlike ``hash``)."""
    return zlib.crc32(key) % parts


def route(data: bytes, parts: int, tag: int, renamed: dict[bytes, bytes] | None = None) -> list[bytes]:
    """The lines of ``data`` (one block of the ``tag``-th file) grouped by the partition
    of their subject (``renamed``: of the subject's new key where it has one, as fusion
    routes a triple by its canonical subject), each group in the order of the lines."""
    groups: list[list[bytes]] = [[] for _ in range(parts)]
    for line in data.splitlines(keepends=True):
        key = line_key(line, tag)
        if key is not None:
            if renamed:
                key = renamed.get(key, key)
            groups[owner(key, parts)].append(line)
    return [b"".join(group) for group in groups]


def read_blocks(path: Path, fmt: str, size: int, prefixes: dict[str, str]) -> Iterator[bytes]:
    """The lines of one input file in blocks: :func:`blocks` for LINE_FORMATS, else
    :func:`parsed_blocks` (whose prefixes go into ``prefixes``)."""
    return blocks(path, size) if fmt in LINE_FORMATS else parsed_blocks(path, fmt, size, prefixes)


class Partition(RangeReading):
    """The triples of the subjects one partition owns, their index, and what it learns
    from the others (see the module text). Every method is one step of
    :func:`build_table`, called in that order."""

    def __init__(self, number: int, parts: int, origin: str) -> None:
        from kgalign.io.parsers import oxigraph_terms

        self.number = number
        self.parts = parts
        self.origin = origin
        self._tag = 0
        self._term = oxigraph_terms(lambda label: BNode(blank_id(self._tag, label)))
        self._triples: dict[Triple, None] = {}
        self.failed: str | None = None
        self.ill_typed = 0
        self.datatypes: set[str] = set()
        self.index: Index | None = None
        self.count = 0
        self._entities: list[URIRef] = []
        self._iri_of: dict[object, str] = {}
        self._fetched: set[object] = set()
        self._frontier: set[object] = set()
        self._done: set[object] = set()
        self._built: list[Entity] = []
        self._hashes: list[str] = []

    def restart(self, origin: str) -> None:
        """Forget the input loaded before: this partition now loads ``origin`` (one set
        of partition processes loads both inputs of a run)."""
        Partition.__init__(self, self.number, self.parts, origin)

    def route(self, data: bytes, tag: int) -> list[bytes]:
        """A block's lines by partition (the blocks are routed by the partitions in turn)."""
        return route(data, self.parts, tag)

    def take(self, lines: bytes, tag: int, fmt: str) -> None:
        """Parse some lines (``fmt``: nt or nquads) of the ``tag``-th file (all of one
        subject's are in this partition)."""
        if self.failed is not None or not lines:
            return
        import pyoxigraph as ox

        from kgalign.io.parsers import oxigraph_format

        self._tag = tag
        term, triples = self._term, self._triples
        try:
            with quiet_term_warnings() as counter:
                for quad in ox.parse(lines, format=oxigraph_format(fmt)):
                    triples[(term(quad.subject), term(quad.predicate), term(quad.object))] = None
        except Exception as exc:  # a syntax error, a triple term: the one-process load names it
            self.failed = first_line(exc, named=True)
            return
        self.ill_typed += counter.ill_typed
        self.datatypes |= counter.datatypes

    def close(self) -> list[list[tuple[object, Any]]]:
        """Index the triples (and let them go); by owner, the nodes they reference, each
        with the classes of each of its referrers here (the first MAX_OWNERS + 1), and the
        nodes that describe the vocabulary (``SCHEMA``)."""
        referenced: list[list[tuple[object, Any]]] = [[] for _ in range(self.parts)]
        if self.failed is None:
            try:
                check_terms(Path(self.origin), TripleSet(self._triples), None)
            except Exception as exc:
                self.failed = first_line(exc)
        if self.failed is not None:
            self._triples = {}
            return referenced
        self.count = len(self._triples)
        index = self.index = Index(TripleSet(self._triples))
        self._triples = {}
        index.find_referrers()
        for node in index.referenced:
            referenced[owner(node_key(node), self.parts)].append((node, [index.keys_of(ref) for ref in referrers_of(index, node)]))
        for node in (*index.schema, *index.vocabulary):
            referenced[owner(node_key(node), self.parts)].append((node, SCHEMA))
        return referenced

    def state(self) -> dict[str, Any]:
        """What the caller gathers after :meth:`close`."""
        index = self.index
        return {
            "failed": self.failed,
            "count": self.count,
            "literals": index is not None and bool(index.literals or index.labels),
            "ill_typed": self.ill_typed,
            "datatypes": sorted(self.datatypes),
        }

    def mark_referenced(self, *groups: list[tuple[object, Any]]) -> None:
        """What every partition said of this partition's nodes (:meth:`close`): each
        referenced node's referrers (the classes of each), the nodes that describe the
        vocabulary."""
        assert self.index is not None
        referrer: dict[object, list] = {}
        schema = set()
        for group in groups:
            for node, info in group:
                if isinstance(info, str):
                    schema.add(node)
                else:
                    # Referrers of two partitions are two subjects (a subject lives in one).
                    known = referrer.setdefault(node, [])
                    known.extend(tuple(keys) for keys in info[: MAX_OWNERS + 1 - len(known)])
        self.index.referrer = referrer
        self.index.referenced = set(referrer)
        self.index.schema = schema

    def tally(self) -> dict[str, tuple[int, int, int]]:
        """This partition's classes (:func:`kgalign.io.entities.tally_classes`), as plain tuples."""
        assert self.index is not None
        return {key: (t.instances, t.owned, t.labelled) for key, t in tally_classes(self.index).items()}

    def find(self, wanted: list[str] | None, literal_free: bool, kinds: EntityKinds | None = None) -> int:
        """This partition's entities; the first nodes to look up are the ones they link to."""
        assert self.index is not None
        self._entities = find_entity_nodes(self.index, set(wanted) if wanted is not None else None, literal_free, kinds)
        self._iri_of = {node: str(node) for node in self._entities}
        self._frontier = {target for node in self._entities for targets in self.index.links.get(node, {}).values() for target in targets}
        return len(self._entities)

    def asks(self) -> list[list[object]]:
        """The nodes of this round's frontier that other partitions own and were not yet
        looked up, by owner."""
        asked: list[list[object]] = [[] for _ in range(self.parts)]
        for node in self._frontier:
            where = owner(node_key(node), self.parts)
            if where != self.number and node not in self._fetched:
                asked[where].append(node)
        return asked

    def answer(self, *asked: list[object]) -> list[list[tuple]]:
        """For each partition's nodes: ``(node, None)`` for an entity, else the node's
        labels, literals and links (empty for a node that is no subject)."""
        assert self.index is not None
        index, entities = self.index, self._iri_of
        answers: list[list[tuple]] = []
        for nodes in asked:
            records: list[tuple] = []
            for node in nodes:
                if node in entities:
                    records.append((node, None))
                else:
                    records.append((node, (list(index.labels.get(node, ())), dict(index.literals.get(node, {})), dict(index.links.get(node, {})))))
            answers.append(records)
        return answers

    def absorb(self, *answers: list[tuple]) -> None:
        """Keep what the owners said of the nodes asked."""
        assert self.index is not None
        index = self.index
        for records in answers:
            for node, record in records:
                self._fetched.add(node)
                if record is None:
                    self._iri_of[node] = str(node)
                    continue
                labels, literals, links = record
                if labels:
                    index.labels[node] = labels
                if literals:
                    index.literals[node].update(literals)
                if links:
                    index.links[node].update(links)

    def advance(self) -> None:
        """The next frontier: the nodes that the frontier's label-less nodes link to."""
        assert self.index is not None
        links = self.index.links
        self._done |= self._frontier
        following = {
            target
            for node in self._frontier
            if node not in self._iri_of and node in links
            for targets in links[node].values()
            for target in targets
        }
        self._frontier = following - self._done

    def entities(self) -> list[Entity]:
        """This partition's entities, in IRI order, descriptions folded in."""
        assert self.index is not None
        return build_entities(self.index, self._entities, self._iri_of)

    def count_entities(self) -> int:
        """Builds this partition's entities (:meth:`entities`) and their content hashes
        (:func:`kgalign.incremental.state.entity_hash`: made here, every partition at once,
        rather than by the driver), to be taken a page at a time (:meth:`entity_page`);
        their number."""
        self._built = self.entities()
        self._hashes = [entity_hash(entity) for entity in self._built]
        return len(self._built)

    def entity_page(self, start: int, stop: int) -> tuple[list[Entity], list[str]]:
        """The entities ``start:stop`` of those :meth:`count_entities` built, and their
        content hashes; the last page lets them go."""
        page, hashes = self._built[start:stop], self._hashes[start:stop]
        if stop >= len(self._built):
            self._built, self._hashes = [], []
        return page, hashes


class Exchange(Protocol):
    """How :func:`build_table` reaches the partitions: a call gives a future (``split``:
    the method returns one value per partition, and the call a list of their futures),
    which :meth:`get` turns into its value; a future may be passed to a later call as
    an argument, and :meth:`route` gives one future per partition."""

    parts: int

    def route(self, data: bytes, tag: int) -> list[Any]: ...

    def call(self, number: int, method: str, *args: Any, split: bool = False) -> Any: ...

    def get(self, futures: list[Any]) -> list[Any]: ...


class InProcess:
    """:class:`Exchange` over partition objects of this process (by default
    :class:`Partition` objects reading ``origin``)."""

    def __init__(self, parts: int, origin: str = "", partitions: list[Any] | None = None) -> None:
        self.parts = parts
        self.partitions = partitions if partitions is not None else [Partition(number, parts, origin) for number in range(parts)]
        self._routed = 0

    def route(self, data: bytes, tag: int) -> list[Any]:
        self._routed += 1
        return list(self.partitions[self._routed % self.parts].route(data, tag))

    def call(self, number: int, method: str, *args: Any, split: bool = False) -> Any:
        return getattr(self.partitions[number], method)(*args)

    def get(self, futures: list[Any]) -> list[Any]:
        return list(futures)


def build_table(
    files: Sequence[tuple[Path, str]],
    name: str,
    classes: Iterable[str] | None,
    exchange: Exchange,
    block_bytes: int,
    window: int = 4,
    by_ranges: bool = True,
    spill: bool = False,
    keep: Sequence[str] = (),
    fold: Sequence[str] = (),
) -> tuple[EntityTable, dict[str, str]]:
    """The entity table of ``files`` (each with its format: LINE_FORMATS or
    PARSED_FORMATS) read as one graph (see the module text), the number of its distinct
    triples in ``table.triple_count``, and the prefixes the files declared (the first
    file's namespace for each). ``window``: blocks whose lines are in flight at once;
    ``by_ranges``: see :func:`send_lines`; ``spill``: the table's entities in a
    temporary file, taken from the partitions a page at a time (:func:`_taken_by_pages`).
    Raises :class:`PartitionFailed` where one process must load the input instead."""
    from kgalign.runtime.progress import progress_bar

    n = exchange.parts
    prefixes: dict[str, str] = {}
    # MB of the files (a gzipped file's lines are more: the bar's total then grows).
    with progress_bar(f"load {name} (MB)", sum(path.stat().st_size for path, _ in files) >> 20) as advance:
        send_lines(exchange, [(tag, path, fmt, ()) for tag, (path, fmt) in enumerate(files)], block_bytes, window, prefixes, advance, by_ranges)

    referenced = [exchange.call(j, "close", split=True) for j in range(n)]
    states = exchange.get([exchange.call(j, "state") for j in range(n)])
    failed = [state["failed"] for state in states if state["failed"]]
    if failed:
        raise PartitionFailed(failed[0])
    count = sum(state["count"] for state in states)
    if count == 0:
        raise PartitionFailed("no triples")
    exchange.get([exchange.call(k, "mark_referenced", *(referenced[j][k] for j in range(n))) for k in range(n)])
    del referenced
    literal_free = not any(state["literals"] for state in states)
    wanted = sorted({str(c) for c in classes}) if classes else None
    kinds = None
    if wanted is None and not literal_free:
        tallies: dict[str, ClassTally] = {}
        for part in exchange.get([exchange.call(k, "tally") for k in range(n)]):
            for key, counts in part.items():
                tallies.setdefault(key, ClassTally()).add(ClassTally(*counts))
        kinds = kinds_module.decide(tallies, keep, fold)
    found = sum(exchange.get([exchange.call(k, "find", wanted, literal_free, kinds) for k in range(n)]))
    if found:
        for level in range(1, FOLD_DEPTH + 1):
            asked = [exchange.call(j, "asks", split=True) for j in range(n)]
            answers = [exchange.call(k, "answer", *(asked[j][k] for j in range(n)), split=True) for k in range(n)]
            exchange.get([exchange.call(j, "absorb", *(answers[k][j] for k in range(n))) for j in range(n)])
            if level < FOLD_DEPTH:
                exchange.get([exchange.call(j, "advance") for j in range(n)])
    hashes = None
    if spill:
        entities, hashes = _taken_by_pages(exchange, name)
    else:
        entities = _merged(exchange.get([exchange.call(k, "entities") for k in range(n)]))
    # The one-process load's warning, for the input (a file, or the folder of its files).
    counter = TermWarnings()
    counter.ill_typed = sum(state["ill_typed"] for state in states)
    counter.datatypes = {d for state in states for d in state["datatypes"]}
    report_term_warnings(files[0][0] if len(files) == 1 else files[0][0].parent, counter)
    return EntityTable(name=name, entities=entities, triple_count=count, hashes=hashes, kinds=kinds), prefixes


def send_lines(
    exchange: Exchange,
    files: Iterable[tuple[int, Path, str, tuple[Any, ...]]],
    block_bytes: int,
    window: int,
    prefixes: dict[str, str],
    advance: Callable[[int], None] | None = None,
    by_ranges: bool = True,
) -> None:
    """Every line of the files ``(tag, path, format, extra)`` to its partition: each block
    routed by a partition, each partition's lines given to it as ``take(lines, tag,
    lines' format, *extra)``, at most ``window`` blocks in flight; ``advance`` gets the
    MB sent. A file of lines the partitions see as the driver does (``by_ranges``,
    :func:`ranged`) is cut into byte ranges that they read and route themselves: the
    driver reads none of it. Any other block is read by the driver (:func:`read_blocks`;
    a parsed file's prefixes go into ``prefixes``) and sent. Either way the partitions
    take each file's lines in file order."""
    n = exchange.parts
    files = list(files)
    # Asked of every file first: an actor answers after the work queued before the question.
    readers = _range_readers(exchange, [path for _, path, fmt, _ in files if ranged(path, fmt)]) if by_ranges else {}
    pending: deque[list[Any]] = deque()
    sent = 0
    for tag, path, fmt, extra in files:
        lines_format = fmt if fmt in LINE_FORMATS else "nt"
        those, seen = readers.get(path, ([], (0, 0)))
        if those:
            size, name = seen[0], str(path.resolve())
            routed = (
                (stop - start, exchange.call(those[i % len(those)], "route_range", name, start, stop, tag, seen, split=True))
                for i, (start, stop) in enumerate((start, min(start + block_bytes, size)) for start in range(0, size, block_bytes))
            )
        else:
            routed = ((len(data), exchange.route(data, tag)) for data in read_blocks(path, fmt, block_bytes, prefixes))
        for length, pieces in routed:
            before, sent = sent, sent + length
            if advance is not None:
                advance((sent >> 20) - (before >> 20))
            pending.append([exchange.call(k, "take", pieces[k], tag, lines_format, *extra) for k in range(n)])
            del pieces
            if len(pending) > window:
                exchange.get(pending.popleft())
    while pending:
        exchange.get(pending.popleft())
    for path, (_, seen) in readers.items():  # the ranges of a file that changed meanwhile may mix two versions
        found = path.stat()
        if (found.st_size, found.st_mtime_ns) != seen:
            raise PartitionFailed(f"{path}: the file changed while it was read")


def _range_readers(exchange: Exchange, paths: Sequence[Path]) -> dict[Path, tuple[list[int], tuple[int, int]]]:
    """For each of ``paths``, the partitions that see it as this process does, and its
    size and modification time (ns) then."""
    seen = {}
    for path in paths:
        found = path.stat()
        seen[path] = (found.st_size, found.st_mtime_ns)
    calls = [exchange.call(k, "sees_file", str(path.resolve()), *seen[path]) for path in paths for k in range(exchange.parts)]
    answers = exchange.get(calls) if calls else []
    readers: dict[Path, tuple[list[int], tuple[int, int]]] = {}
    for i, path in enumerate(paths):
        those = [k for k in range(exchange.parts) if answers[i * exchange.parts + k]]
        if len(those) < exchange.parts:
            log.info("%s: %d of %d partitions see the file; they read it for all", path, len(those), exchange.parts)
        readers[path] = (those, seen[path])
    return readers


def _taken_by_pages(exchange: Exchange, name: str) -> tuple[Mapping[str, Entity], dict[str, str]]:
    """The partitions' entities taken PAGE_ENTITIES at a time into an
    :class:`kgalign.io.entity_file.EntityFile` (this process holds one page, not a
    table), iterating in the order :func:`_merged` gives them, and their content hashes
    in that order."""
    n = exchange.parts
    counts = exchange.get([exchange.call(k, "count_entities") for k in range(n)])
    sink = EntitySink(True, name)
    orders: list[list[str]] = []
    for k, count in enumerate(counts):
        iris: list[str] = []
        asked = exchange.call(k, "entity_page", 0, PAGE_ENTITIES) if count else None
        for start in range(0, count, PAGE_ENTITIES):
            ((page, hashes),) = exchange.get([asked])
            following = start + PAGE_ENTITIES
            # The next page is made while this one is written.
            asked = exchange.call(k, "entity_page", following, following + PAGE_ENTITIES) if following < count else None
            iris.extend(entity.iri for entity in page)
            sink.extend(page, hashes)
            del page
        orders.append(iris)
    # Each partition's entities come in IRI order: merged as _merged merges them.
    return sink.finish(heapq.merge(*orders)), sink.hashes


def _merged(parts: list[list[Entity]]) -> dict[str, Entity]:
    """The partitions' entities in IRI order, their values and attribute paths shared
    again (each partition had its own copies), as one process shares them."""
    values: dict[Value, Value] = {}
    strings: dict[str, str] = {}
    entities: dict[str, Entity] = {}
    for entity in heapq.merge(*parts, key=lambda e: e.iri):
        entity.labels = [values.setdefault(v, v) for v in entity.labels]
        entity.attributes = {sys.intern(path): [values.setdefault(v, v) for v in found] for path, found in entity.attributes.items()}
        entity.relations = {strings.setdefault(p, p): found for p, found in entity.relations.items()}
        entities[entity.iri] = entity
    return entities

