"""Fusion by partitions: no process holds all the fused triples as Python objects.

:func:`kgalign.fusion.fuse.fuse` rewrites every triple of both graphs onto canonical
IRIs and keeps each once, with its sources. Here the input files are read again in
blocks of lines (:func:`kgalign.io.partitioned.read_blocks`), each line is routed to
the partition of its *canonical* subject (the canonical map is given to every
partition), and each partition rewrites and keeps its own triples, adds the
``owl:sameAs`` triples of the clusters whose canonical IRI it owns, and renders them as
sorted rows of numbers (:class:`kgalign.fusion.export.FusedRows`). A triple has one
canonical subject, so it is in one partition, with all its sources. The driver takes
the partitions' rows a chunk at a time into files (:mod:`kgalign.fusion.spilled`), and
the writers merge them: the rows one process renders, so fused.ttl and provenance.trig
are the same files, and no process holds all the fused rows. Given a staging folder,
each partition also writes its rows as shards (:mod:`kgalign.fusion.shards`); past a
number of rows only the shards are written, and the rows are not spilled at all.

A conflict policy other than ``keep-all`` needs the *functional* predicates first (at
most one literal value per subject in each graph, :func:`kgalign.fusion.fuse.fuse`), a
fact of the whole graphs. An input subject's triples all go to the partition of its
canonical subject, so each partition counts its own subjects' values
(:meth:`FusePartition.predicates`) and the driver joins the counts
(:func:`functional_forms`). Each partition then settles the conflicts of the merged
subjects it owns and drops the values the policy does not keep before rendering its
rows; the dropped record is merged and sorted as one process sorts it.
"""

from __future__ import annotations

import logging
from array import array
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rdflib import BNode, Literal, URIRef
from rdflib.namespace import OWL

from kgalign.errors import KgalignError, first_line
from kgalign.fusion.export import SOURCE_BITS, FusedRows
from kgalign.fusion.fuse import CONFLICT_POLICIES, ConflictPolicy, FusionResult, conflict_reason, dropped_order, settled
from kgalign.fusion.shards import ShardFolder, sees, write_shard
from kgalign.fusion.spilled import CHUNK_ROWS, Chunk, spill
from kgalign.io.diagnostics import quiet_term_warnings
from kgalign.io.parsers import oxigraph_literal
from kgalign.io.partitioned import Exchange, PartitionFailed, RangeReading, blank_id, node_key, owner, route, send_lines
from kgalign.io.triples import Triple, known_iri

log = logging.getLogger(__name__)

#: File tags of the right graph start here (a blank node of each file stays its own).
RIGHT_TAGS = 1 << 20


class FusePartition(RangeReading):
    """The fused triples whose canonical subject one partition owns (see the module text).

    The triples are held as numbers, not as rdflib terms (an rdflib triple with its terms
    took about 600 bytes; a 4M-triple pair's fusion partitions held 2.5 GB each): each
    distinct term is numbered by its N-Triples form as rdflib renders it (the form
    fused.ttl writes; two terms rdflib holds equal render alike here, pyoxigraph having
    lowercased language tags), and each triple is three numbers and the bits of its
    sources (:data:`kgalign.fusion.export.SOURCE_BITS`). :meth:`finish` sorts and dedupes them.
    """

    def __init__(
        self,
        number: int,
        parts: int,
        canonical: Mapping[str, str],
        same_as: Sequence[tuple[str, str]],
        conflicts: str = "keep-all",
        policy: ConflictPolicy = None,
    ) -> None:
        """``canonical``: every clustered IRI to its canonical IRI; ``same_as``: the
        ``(canonical, member)`` pairs of the fused graph's ``owl:sameAs`` triples
        (:func:`kgalign.fusion.fuse.same_as_pairs`); ``conflicts``: the conflict
        policy's name, ``policy`` the policy itself where the caller has it (one
        registered in the driver alone is not in a Ray actor's registry)."""
        from kgalign.io.parsers import oxigraph_datatypes

        self.number = number
        self.parts = parts
        # Only the sameAs triples whose subject this partition owns.
        self._same_as = [(target, member) for target, member in same_as if owner(node_key(URIRef(target)), parts) == number]
        self._keys = {node_key(URIRef(member)): node_key(URIRef(target)) for member, target in canonical.items()}
        self._rewrite = canonical
        self._forms: dict[str, int] = {}  # a term's form -> its number
        self._literals: dict[str, int] = {}  # a literal as pyoxigraph writes it -> its number
        self._datatypes = oxigraph_datatypes()
        self._triples = array("i")  # three numbers a triple, in the order taken
        self._sources = array("B")  # the source bits of each
        self._conflicts = conflicts
        self._policy = policy if policy is not None else CONFLICT_POLICIES.get(conflicts)
        # With a policy: five numbers a literal triple (source bits, input subject, subject,
        # predicate, object), an input subject merged into a cluster numbered below 0.
        self._literal_rows: array[int] | None = array("i") if self._policy is not None else None
        self._merged_subjects: dict[str, int] = {}
        self._dropped: list[tuple[Triple, str, str]] = []
        self.failed: str | None = None
        self.rendered: FusedRows | None = None  # the rows, once finish() has rendered them

    def route(self, data: bytes, tag: int) -> list[bytes]:
        """A block's lines by the partition of their canonical subject."""
        return route(data, self.parts, tag, self._keys)

    def take(self, lines: bytes, tag: int, fmt: str, side: str) -> None:
        """Rewrite and keep some lines of the ``tag``-th file of ``side`` (as :func:`fuse`)."""
        if self.failed is not None or not lines:
            return
        import pyoxigraph as ox

        from kgalign.io.parsers import oxigraph_format

        try:
            # rdflib's per-literal warnings are the load's to report (once), not fusion's.
            with quiet_term_warnings():
                self._number_lines(ox.parse(lines, format=oxigraph_format(fmt)), tag, SOURCE_BITS[side])
        except Exception as exc:  # the caller fuses in one process, which names the error
            self.failed = first_line(exc, named=True)

    def _iri(self, value: str) -> int:
        forms = self._forms
        form = f"<{value}>"
        number = forms.get(form)
        if number is None:
            known_iri(value).n3()  # raises for an IRI rdflib refuses (pyoxigraph takes a few)
            number = forms[form] = len(forms)
        return number

    def _number_lines(self, quads: Any, tag: int, bits: int) -> None:
        import pyoxigraph as ox

        named_node, literal_type = ox.NamedNode, ox.Literal
        forms, literals, rewrite, iri = self._forms, self._literals, self._rewrite, self._iri
        triples, sources = self._triples, self._sources
        literal_rows, merged = self._literal_rows, self._merged_subjects
        for quad in quads:
            subject, obj = quad.subject, quad.object
            target = None
            if type(subject) is named_node:
                subject_iri = subject.value
                target = rewrite.get(subject_iri)
                s = iri(subject_iri if target is None else target)
            else:
                s = self._blank(subject, tag)
            p = iri(quad.predicate.value)
            kind = type(obj)
            if kind is named_node:
                value = obj.value
                o = iri(rewrite.get(value, value))
            elif kind is literal_type:
                key = str(obj)
                number = literals.get(key)
                if number is None:
                    form = oxigraph_literal(obj, self._datatypes).n3()
                    # Mostly pyoxigraph and rdflib write a literal alike: one string then.
                    number = literals[key] = forms.setdefault(key if form == key else form, len(forms))
                o = number
                if literal_rows is not None:
                    origin = s if target is None else -1 - merged.setdefault(subject_iri, len(merged))
                    literal_rows.extend((bits, origin, s, p, o))
            else:
                o = self._blank(obj, tag)
            triples.extend((s, p, o))
            sources.append(bits)

    def _blank(self, node: Any, tag: int) -> int:
        import pyoxigraph as ox

        if type(node) is not ox.BlankNode:  # an RDF 1.2 triple term: one process decides
            raise ValueError(f"unsupported term {node!r}")
        return self._forms.setdefault(BNode(blank_id(tag, node.value)).n3(), len(self._forms))

    def predicates(self) -> dict[str, tuple[set[str], set[str]]] | str | None:
        """For each side, the predicates of this partition's literal triples, and those of
        them with two values or more on one input subject; or what made it fail; None
        under ``keep-all`` (nothing to settle). Every triple of an input subject is here
        or in no partition: :func:`functional_forms` joins the partitions' answers into
        the graphs' functional predicates."""
        if self.failed is not None:
            return self.failed
        if self._literal_rows is None:
            return None
        rows = np.frombuffer(self._literal_rows, dtype=np.intc).reshape(-1, 5)
        found: dict[str, tuple[set[int], set[int]]] = {}
        for side in ("left", "right"):
            distinct = np.unique(rows[(rows[:, 0] & SOURCE_BITS[side]) != 0][:, [1, 3, 4]], axis=0)  # (input subject, p, o)
            pairs, counts = np.unique(distinct[:, :2], axis=0, return_counts=True)
            found[side] = set(pairs[:, 1].tolist()), set(pairs[counts > 1, 1].tolist())
        wanted = {number for present, multi in found.values() for number in present}
        form_of = {number: form for form, number in self._forms.items() if number in wanted}
        return {side: ({form_of[n] for n in present}, {form_of[n] for n in multi}) for side, (present, multi) in found.items()}

    def finish(self, functional: Collection[str] = ()) -> dict[str, int] | str:
        """Render this partition's rows, with the ``owl:sameAs`` of the clusters whose
        canonical IRI it owns, the values the conflict policy does not keep of the
        ``functional`` predicates (their N-Triples forms) left out, and keep them for
        :meth:`chunk`: their number in all and by source (``rows``, ``left``, ``right``,
        ``kgalign``); or what made it fail."""
        if self.failed is not None:
            return self.failed
        if self._same_as:  # owl:sameAs is a form here only where a row holds it
            try:
                same_as, kgalign = self._iri(str(OWL.sameAs)), SOURCE_BITS["kgalign"]
                for target, member in self._same_as:
                    self._triples.extend((self._iri(target), same_as, self._iri(member)))
                    self._sources.append(kgalign)
            except Exception as exc:  # a canonical IRI rdflib cannot render: one process names it
                return first_line(exc, named=True)
        forms = list(self._forms)  # in the order numbered
        triples = np.frombuffer(self._triples, dtype=np.intc).reshape(-1, 3)
        sources = np.frombuffer(self._sources, dtype=np.uint8)
        if functional and self._literal_rows is not None:
            try:
                kept = self._settle(functional, forms, triples, sources)
            except Exception as exc:  # a value rdflib cannot take: one process names it
                return first_line(exc, named=True)
            if kept is not None:
                triples, sources = triples[kept], sources[kept]
        self._forms, self._literals, self._literal_rows, self._merged_subjects = {}, {}, None, {}
        self.rendered = FusedRows.numbered(forms, triples, sources)
        self._triples, self._sources = array("i"), array("B")
        counts = {source: int(np.count_nonzero(self.rendered.sources & bit)) for source, bit in SOURCE_BITS.items()}
        return {"rows": len(self.rendered), **counts}

    def _settle(self, functional: Collection[str], forms: list[str], triples: np.ndarray, sources: np.ndarray) -> np.ndarray | None:
        """Settle the conflicts of the merged subjects here (as :func:`kgalign.fusion.fuse.fuse`
        does): which of ``triples`` are kept (a boolean per row; None: all of them), and
        the dropped ones recorded for :meth:`dropped`, once per source."""
        assert self._policy is not None and self._literal_rows is not None
        numbers = [self._forms[form] for form in functional if form in self._forms]
        rows = np.frombuffer(self._literal_rows, dtype=np.intc).reshape(-1, 5)
        rows = rows[(rows[:, 1] < 0) & np.isin(rows[:, 3], numbers)]  # merged subjects' functional values
        values = np.unique(rows[:, 2:], axis=0)  # (s, p, o), each once
        pairs, counts = np.unique(values[:, :2], axis=0, return_counts=True)
        conflicts: dict[tuple[int, int], dict[str, set[int]]] = {(s, p): {"left": set(), "right": set()} for s, p in pairs[counts > 1].tolist()}
        if not conflicts:
            return None
        for bits, _, s, p, o in rows.tolist():
            by_side = conflicts.get((s, p))
            if by_side is not None:
                by_side["left" if bits & SOURCE_BITS["left"] else "right"].add(o)
        nodes = self._literal_nodes({o for by_side in conflicts.values() for found in by_side.values() for o in found})
        drop: set[tuple[int, int, int]] = set()
        for (s, p), by_side in conflicts.items():
            keep = settled({side: [nodes[o] for o in found] for side, found in by_side.items()}, self._policy)
            drop.update((s, p, o) for found in by_side.values() for o in found if nodes[o] != keep)
        kept = np.ones(len(triples), dtype=bool)
        near = np.flatnonzero(np.isin(triples[:, 0], [s for s, _, _ in drop]) & np.isin(triples[:, 1], [p for _, p, _ in drop]))
        bits_of: dict[tuple[int, ...], int] = {}
        for row in near.tolist():
            triple = tuple(triples[row].tolist())
            if triple in drop:
                kept[row] = False
                bits_of[triple] = bits_of.get(triple, 0) | int(sources[row])
        reason = conflict_reason(self._conflicts)
        for (s, p, o), bits in bits_of.items():
            triple = (known_iri(forms[s][1:-1]), known_iri(forms[p][1:-1]), nodes[o])
            self._dropped.extend((triple, source, reason) for source, bit in SOURCE_BITS.items() if bits & bit)
        return kept

    def _literal_nodes(self, numbers: set[int]) -> dict[int, Literal]:
        """rdflib's literal of each of ``numbers`` (literals' numbers), as the load makes it."""
        import pyoxigraph as ox

        spelled = {number: key for key, number in self._literals.items() if number in numbers}
        text = "".join(f"<urn:x:{number}> <urn:x:p> {key} .\n" for number, key in spelled.items())
        return {int(quad.subject.value[6:]): oxigraph_literal(quad.object, self._datatypes) for quad in ox.parse(text.encode(), format=ox.RdfFormat.N_TRIPLES)}

    def dropped(self) -> list[tuple[Triple, str, str]]:
        """The triples :meth:`finish` left out, each with a source it came from and why."""
        return self._dropped

    def write_shard(self, folder: str, token: str) -> bool:
        """Write this partition's rows (after :meth:`finish`) as shards into the staging
        ``folder`` (:mod:`kgalign.fusion.shards`); False where this process does not see
        it, or cannot write there: the driver writes them then."""
        if self.rendered is None:
            raise RuntimeError("write_shard() before finish()")
        if not sees(folder, token):
            return False
        try:
            write_shard(self.rendered, folder, self.number)
        except OSError as exc:
            log.warning("partition %d cannot write its shards into %s (%s); the driver writes them", self.number, folder, exc.strerror or exc)
            return False
        return True

    def chunk(self, start: int, stop: int) -> Chunk:
        """Rows ``start`` to ``stop`` of :meth:`finish`'s, rendered, and their source bits."""
        rows = self.rendered
        if rows is None:
            raise RuntimeError("chunk() before finish()")
        forms = rows.forms
        return [(forms[s], forms[p], forms[o]) for s, p, o in rows.ranks[start:stop].tolist()], rows.sources[start:stop].tobytes()


def fuse_partitioned(
    sides: Sequence[tuple[str, Sequence[tuple[Path, str]]]],
    canonical: Mapping[str, str],
    clusters: list[list[str]],
    namespaces: list[tuple[str, URIRef]],
    exchange: Exchange,
    block_bytes: int,
    window: int = 4,
    chunk_rows: int = CHUNK_ROWS,
    spill_dir: str | None = None,
    shards: ShardFolder | None = None,
    single_files_limit: int | None = None,
    at_least: int = 0,
) -> FusionResult | None:
    """The fusion of the ``(side, files)`` given (left first, each file with its format)
    along ``canonical`` (every clustered IRI to its cluster's canonical IRI), its rows
    merged from the partitions of ``exchange`` (:class:`FusePartition` objects, which
    hold the conflict policy). With ``shards`` each partition writes its rows there too
    (the driver writes those of a partition that cannot); past ``single_files_limit``
    rows (None: no limit) the rows are not spilled: ``rows`` is None, the shards hold them.
    None where the fusion has ``at_least`` rows or fewer (the caller fuses them itself).
    Raises :class:`kgalign.io.partitioned.PartitionFailed` where one process must fuse."""
    n = exchange.parts
    files = [(number * RIGHT_TAGS + index, path, fmt, (side,)) for number, (side, paths) in enumerate(sides) for index, (path, fmt) in enumerate(paths)]
    send_lines(exchange, files, block_bytes, window, {})
    found = _succeeded(exchange.get([exchange.call(k, "predicates") for k in range(n)]))
    functional = sorted(functional_forms(found)) if all(part is not None for part in found) else []
    states = _succeeded(exchange.get([exchange.call(k, "finish", functional) for k in range(n)]))
    dropped = sorted((entry for part in exchange.get([exchange.call(k, "dropped") for k in range(n)]) for entry in part), key=dropped_order)
    total = sum(state["rows"] for state in states)
    if total <= at_least:
        return None
    single = shards is None or single_files_limit is None or total <= single_files_limit
    unseen: list[int] = []
    if shards is not None:
        shards.rows = total
        wrote = exchange.get([exchange.call(k, "write_shard", str(shards.path), shards.token) for k in range(n)])
        unseen = [k for k, done in enumerate(wrote) if not done]
    rows = spill(exchange, states, window, chunk_rows, spill_dir, None if single else unseen) if single or unseen else None
    if shards is not None and rows is not None:
        for k in unseen:
            try:
                write_shard(rows.part(k), shards.path, k)
            except OSError as exc:
                raise KgalignError(f"{exc.filename or shards.path}: cannot write the shards there ({exc.strerror or exc})") from None
        shards.by_driver = unseen
        if unseen:
            log.info("the driver wrote the shards of %d partitions that do not see %s", len(unseen), shards.path)
    if not single and rows is not None:
        rows.close()
        rows = None
    return FusionResult(canonical=dict(canonical), clusters=clusters, namespaces=namespaces, rows=rows, dropped=dropped, shards=shards)


def _succeeded(answers: list[Any]) -> list[Any]:
    """The partitions' answers, or :class:`PartitionFailed` with the first failure (a string)."""
    failed = [answer for answer in answers if isinstance(answer, str)]
    if failed:
        raise PartitionFailed(failed[0])
    return answers


def functional_forms(found: Sequence[Mapping[str, tuple[set[str], set[str]]]]) -> set[str]:
    """The predicates functional in both graphs (see :func:`kgalign.fusion.fuse.fuse`), from
    each partition's :meth:`FusePartition.predicates`: present in a side's literal
    triples and never with two values on one subject of it."""
    functional: set[str] | None = None
    for side in ("left", "right"):
        present = set().union(*(part[side][0] for part in found))
        multi = set().union(*(part[side][1] for part in found))
        functional = present - multi if functional is None else functional & (present - multi)
    return functional or set()
