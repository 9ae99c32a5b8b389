"""Write Turtle and TriG files: rdflib's pretty form when small, fast streaming writers beyond.

rdflib's pretty Turtle serialiser is quadratic-ish in practice (minutes for a few
hundred thousand triples). The fast writers group triples by subject and write each
term in its N-Triples form, which is valid Turtle: linear time, constant extra memory
beyond the sort. :func:`write_turtle` picks one by size (``PRETTY_LIMIT``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING

import numpy as np
from rdflib.term import Node, URIRef

from kgalign.io.atomic import atomic_open

if TYPE_CHECKING:
    from rdflib import Graph

Triple = tuple[Node, Node, Node]
#: Files of more triples than this are written by the fast writer, not by rdflib.
PRETTY_LIMIT = 5_000


class N3:
    """Each term's N-Triples form, computed once: subjects and predicates repeat on many
    triples, and one instance can serve several writers of the same terms."""

    def __init__(self) -> None:
        self._forms: dict[Node, str] = {}

    def __call__(self, term: Node) -> str:
        form = self._forms.get(term)
        if form is None:
            form = self._forms[term] = term.n3()
        return form


class Rendered(list):
    """Rows ``(subject, predicate, object)`` in N-Triples form, sorted (see :func:`render`):
    the writers take them as they are."""


class RankedRows:
    """Sorted rows held as numbers: ``forms`` are distinct N-Triples forms, ``ranks`` an
    ``(n, 3)`` integer array of indexes into them, a row per triple in the order to
    write. It iterates as the rows of forms themselves, a slice at a time, so that no
    tuple per triple is ever held (see :class:`kgalign.fusion.export.FusedRows`)."""

    __slots__ = ("forms", "ranks")
    SLICE = 65_536

    def __init__(self, forms: list[str], ranks: np.ndarray) -> None:
        self.forms = forms
        self.ranks = ranks

    def __len__(self) -> int:
        return len(self.ranks)

    def __iter__(self) -> Iterator[tuple[str, str, str]]:
        forms = self.forms
        for start in range(0, len(self.ranks), self.SLICE):
            for s, p, o in self.ranks[start : start + self.SLICE].tolist():
                yield forms[s], forms[p], forms[o]


class StreamedRows:
    """Sorted rows made afresh by ``produce()`` each time they are iterated (rows read
    back from disk: :class:`kgalign.fusion.spilled.SpilledRows`), ``count`` of them."""

    __slots__ = ("produce", "count")

    def __init__(self, produce: Callable[[], Iterator[tuple[str, str, str]]], count: int) -> None:
        self.produce = produce
        self.count = count

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[tuple[str, str, str]]:
        return self.produce()


#: Rows the writers take as they are: rendered and sorted.
SORTED_ROWS = (Rendered, RankedRows, StreamedRows)


def render(triples: Iterable[Triple], n3: N3 | None = None) -> Rendered:
    """The triples as sorted rows of N-Triples forms; sorting groups them by subject."""
    n3 = n3 or N3()
    return Rendered(sorted((n3(s), n3(p), n3(o)) for s, p, o in triples))


def write_triples(handle: IO[str], triples: Iterable[Triple] | Rendered | RankedRows | StreamedRows, indent: str = "") -> int:
    """Write triples grouped by subject (``s p o ; p o .``); returns how many were written."""
    rows = triples if isinstance(triples, SORTED_ROWS) else render(triples)
    current = None
    chunk: list[str] = []
    for subject, predicate, obj in rows:
        if subject != current:
            if current is not None:
                chunk.append(" .\n")
            chunk.append(f"{indent}{subject}\n{indent}    {predicate} {obj}")
            current = subject
        else:
            chunk.append(f" ;\n{indent}    {predicate} {obj}")
        if len(chunk) >= 4096:
            handle.write("".join(chunk))
            chunk.clear()
    if current is not None:
        chunk.append(" .\n")
    handle.write("".join(chunk))
    return len(rows)


def write_turtle(path: Path, triples: Iterable[Triple] | Rendered | RankedRows | StreamedRows, *, count: int, graph: Callable[[], Graph]) -> None:
    """A Turtle file of ``count`` triples: rdflib's pretty form of ``graph()`` (prefixes
    bound) up to ``PRETTY_LIMIT`` triples, else ``triples`` by the fast grouped writer
    (no rdflib graph of them is ever built)."""
    if count > PRETTY_LIMIT:
        with atomic_open(path) as handle:
            write_triples(handle, triples)
        return
    data = graph().serialize(format="turtle", encoding="utf-8")
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def write_trig(handle: IO[str], default: Iterable[Triple], graphs: Mapping[URIRef, Iterable[Triple] | Rendered | RankedRows | StreamedRows]) -> int:
    """Default-graph triples first, then one ``GRAPH <g> { ... }`` block per named graph."""
    count = write_triples(handle, default)
    for name, triples in graphs.items():
        handle.write(f"\n{name.n3()} {{\n")
        count += write_triples(handle, triples, indent="    ")
        handle.write("}\n")
    return count
