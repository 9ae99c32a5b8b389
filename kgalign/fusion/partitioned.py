"""Fusion by partitions: no process holds all the fused triples as Python objects.

:func:`kgalign.fusion.fuse.fuse` rewrites every triple of both graphs onto canonical
IRIs and keeps each once, with its sources. Here the input files are read again in
blocks of lines (:func:`kgalign.io.partitioned.read_blocks`), each line is routed to
the partition of its *canonical* subject (the canonical map is given to every
partition), and each partition rewrites and keeps its own triples, adds the
``owl:sameAs`` triples of the clusters whose canonical IRI it owns, and renders them as
sorted rows of numbers (:class:`kgalign.fusion.export.FusedRows`). A triple has one
canonical subject, so it is in one partition, with all its sources. The rows of the
partitions, merged (:meth:`FusedRows.merged`), are the rows one process renders:
fused.ttl and provenance.trig are the same files.

Only the ``keep-all`` conflict policy is fused this way (the others compare the values
of one attribute across the whole graph first); the caller fuses in one process
otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rdflib import BNode, URIRef
from rdflib.namespace import OWL
from rdflib.term import Node

from kgalign.fusion.export import FusedRows
from kgalign.fusion.fuse import _SOURCES, FusionResult
from kgalign.io.diagnostics import quiet_term_warnings
from kgalign.io.partitioned import Exchange, PartitionFailed, blank_id, node_key, owner, route, send_lines
from kgalign.io.triples import Triple, known_iri

#: File tags of the right graph start here (a blank node of each file stays its own).
RIGHT_TAGS = 1 << 20


class FusePartition:
    """The fused triples whose canonical subject one partition owns (see the module text)."""

    def __init__(self, number: int, parts: int, canonical: Mapping[str, str], same_as: Sequence[tuple[str, str]]) -> None:
        """``canonical``: every clustered IRI to its canonical IRI; ``same_as``: the
        ``(canonical, member)`` pairs of the fused graph's ``owl:sameAs`` triples
        (:func:`kgalign.fusion.fuse.same_as_pairs`)."""
        from kgalign.io.parsers import oxigraph_terms

        self.number = number
        self.parts = parts
        # Only the sameAs triples whose subject this partition owns.
        self._same_as = [(target, member) for target, member in same_as if owner(node_key(URIRef(target)), parts) == number]
        self._keys = {node_key(URIRef(member)): node_key(URIRef(target)) for member, target in canonical.items()}
        self._rewrite: dict[Node, Node] = {known_iri(member): known_iri(target) for member, target in canonical.items()}
        self._tag = 0
        self._term = oxigraph_terms(lambda label: BNode(blank_id(self._tag, label)))
        self.provenance: dict[Triple, frozenset[str]] = {}
        self.failed: str | None = None

    def route(self, data: bytes, tag: int) -> list[bytes]:
        """A block's lines by the partition of their canonical subject."""
        return route(data, self.parts, tag, self._keys)

    def take(self, lines: bytes, tag: int, fmt: str, side: str) -> None:
        """Rewrite and keep some lines of the ``tag``-th file of ``side`` (as :func:`fuse`)."""
        if self.failed is not None or not lines:
            return
        import pyoxigraph as ox

        from kgalign.io.parsers import oxigraph_format

        self._tag = tag
        alone, both = _SOURCES[side], _SOURCES["both"]
        try:
            # rdflib's per-literal warnings are the load's to report (once), not fusion's.
            with quiet_term_warnings():
                self._rewrite_lines(ox.parse(lines, format=oxigraph_format(fmt)), alone, both)
        except Exception as exc:  # the caller fuses in one process, which names the error
            self.failed = f"{type(exc).__name__}: {exc}".splitlines()[0]

    def _rewrite_lines(self, quads: Any, alone: frozenset[str], both: frozenset[str]) -> None:
        term, rewrite, provenance = self._term, self._rewrite, self.provenance
        get = provenance.get
        for quad in quads:
            s, p, o = term(quad.subject), term(quad.predicate), term(quad.object)
            triple = (s, p, o)
            if s in rewrite or (type(o) is URIRef and o in rewrite):
                triple = (rewrite.get(s, s), p, rewrite.get(o, o) if type(o) is URIRef else o)
            known = get(triple)
            provenance[triple] = alone if known is None or known is alone else both

    def rows(self) -> FusedRows | str:
        """This partition's rows with the ``owl:sameAs`` of the clusters whose canonical IRI
        it owns; or what made it fail."""
        if self.failed is not None:
            return self.failed
        provenance, same_as, kgalign = self.provenance, OWL.sameAs, _SOURCES["kgalign"]
        for target, member in self._same_as:
            link = (known_iri(target), same_as, known_iri(member))
            provenance[link] = provenance.get(link, frozenset()) | kgalign
        rows = FusedRows.of(FusionResult(canonical={}, clusters=[], provenance=provenance))
        self.provenance = {}
        return rows


def fuse_partitioned(
    sides: Sequence[tuple[str, Sequence[tuple[Path, str]]]],
    canonical: Mapping[str, str],
    clusters: list[list[str]],
    namespaces: list[tuple[str, URIRef]],
    exchange: Exchange,
    block_bytes: int,
    window: int = 4,
) -> FusionResult:
    """The fusion of the ``(side, files)`` given (left first, each file with its format)
    along ``canonical`` (every clustered IRI to its cluster's canonical IRI), its rows
    merged from the partitions of ``exchange`` (:class:`FusePartition` objects).
    Raises :class:`kgalign.io.partitioned.PartitionFailed` where one process must fuse."""
    n = exchange.parts
    files = [(number * RIGHT_TAGS + index, path, fmt, (side,)) for number, (side, paths) in enumerate(sides) for index, (path, fmt) in enumerate(paths)]
    send_lines(exchange, files, block_bytes, window, {})
    parts = exchange.get([exchange.call(k, "rows") for k in range(n)])
    failed = [part for part in parts if isinstance(part, str)]
    if failed:
        raise PartitionFailed(failed[0])
    rows = FusedRows.merged(parts)
    return FusionResult(canonical=dict(canonical), clusters=clusters, namespaces=namespaces, rows=rows)
