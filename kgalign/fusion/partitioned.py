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
are the same files, and no process holds all the fused rows.

Only the ``keep-all`` conflict policy is fused this way (the others compare the values
of one attribute across the whole graph first); the caller fuses in one process
otherwise.
"""

from __future__ import annotations

from array import array
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rdflib import BNode, URIRef
from rdflib.namespace import OWL

from kgalign.errors import first_line
from kgalign.fusion.export import SOURCE_BITS, FusedRows
from kgalign.fusion.fuse import FusionResult
from kgalign.fusion.spilled import CHUNK_ROWS, Chunk, spill
from kgalign.io.diagnostics import quiet_term_warnings
from kgalign.io.parsers import oxigraph_literal
from kgalign.io.partitioned import Exchange, PartitionFailed, blank_id, node_key, owner, route, send_lines
from kgalign.io.triples import known_iri

#: File tags of the right graph start here (a blank node of each file stays its own).
RIGHT_TAGS = 1 << 20


class FusePartition:
    """The fused triples whose canonical subject one partition owns (see the module text).

    The triples are held as numbers, not as rdflib terms (an rdflib triple with its terms
    took about 600 bytes; a 4M-triple pair's fusion partitions held 2.5 GB each): each
    distinct term is numbered by its N-Triples form as rdflib renders it (the form
    fused.ttl writes; two terms rdflib holds equal render alike here, pyoxigraph having
    lowercased language tags), and each triple is three numbers and the bits of its
    sources (:data:`kgalign.fusion.export.SOURCE_BITS`). :meth:`finish` sorts and dedupes them.
    """

    def __init__(self, number: int, parts: int, canonical: Mapping[str, str], same_as: Sequence[tuple[str, str]]) -> None:
        """``canonical``: every clustered IRI to its canonical IRI; ``same_as``: the
        ``(canonical, member)`` pairs of the fused graph's ``owl:sameAs`` triples
        (:func:`kgalign.fusion.fuse.same_as_pairs`)."""
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
        for quad in quads:
            subject, obj = quad.subject, quad.object
            if type(subject) is named_node:
                value = subject.value
                s = iri(rewrite.get(value, value))
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
            else:
                o = self._blank(obj, tag)
            triples.extend((s, p, o))
            sources.append(bits)

    def _blank(self, node: Any, tag: int) -> int:
        import pyoxigraph as ox

        if type(node) is not ox.BlankNode:  # an RDF 1.2 triple term: one process decides
            raise ValueError(f"unsupported term {node!r}")
        return self._forms.setdefault(BNode(blank_id(tag, node.value)).n3(), len(self._forms))

    def finish(self) -> dict[str, int] | str:
        """Render this partition's rows, with the ``owl:sameAs`` of the clusters whose
        canonical IRI it owns, and keep them for :meth:`chunk`: their number in all and
        by source (``rows``, ``left``, ``right``, ``kgalign``); or what made it fail."""
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
        self._forms, self._literals = {}, {}
        triples = np.frombuffer(self._triples, dtype=np.intc).reshape(-1, 3)
        sources = np.frombuffer(self._sources, dtype=np.uint8)
        self.rendered = FusedRows.numbered(forms, triples, sources)
        self._triples, self._sources = array("i"), array("B")
        counts = {source: int(np.count_nonzero(self.rendered.sources & bit)) for source, bit in SOURCE_BITS.items()}
        return {"rows": len(self.rendered), **counts}

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
) -> FusionResult:
    """The fusion of the ``(side, files)`` given (left first, each file with its format)
    along ``canonical`` (every clustered IRI to its cluster's canonical IRI), its rows
    merged from the partitions of ``exchange`` (:class:`FusePartition` objects).
    Raises :class:`kgalign.io.partitioned.PartitionFailed` where one process must fuse."""
    n = exchange.parts
    files = [(number * RIGHT_TAGS + index, path, fmt, (side,)) for number, (side, paths) in enumerate(sides) for index, (path, fmt) in enumerate(paths)]
    send_lines(exchange, files, block_bytes, window, {})
    states = exchange.get([exchange.call(k, "finish") for k in range(n)])
    failed = [state for state in states if isinstance(state, str)]
    if failed:
        raise PartitionFailed(failed[0])
    rows = spill(exchange, states, window, chunk_rows, spill_dir)
    return FusionResult(canonical=dict(canonical), clusters=clusters, namespaces=namespaces, rows=rows)
