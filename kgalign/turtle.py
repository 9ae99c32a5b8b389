"""Fast streaming writers for Turtle and TriG.

rdflib's pretty Turtle serialiser is quadratic-ish in practice (minutes for a few
hundred thousand triples). These writers group triples by subject and write each term
in its N-Triples form, which is valid Turtle: linear time, constant extra memory
beyond the sort.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import IO

from rdflib.term import Node

Triple = tuple[Node, Node, Node]


class _N3:
    """Each term's N-Triples form, computed once: subjects and predicates repeat on many triples."""

    def __init__(self) -> None:
        self._forms: dict[Node, str] = {}

    def __call__(self, term: Node) -> str:
        form = self._forms.get(term)
        if form is None:
            form = self._forms[term] = term.n3()
        return form


def write_triples(handle: IO[str], triples: Iterable[Triple], indent: str = "") -> int:
    """Write triples grouped by subject (``s p o ; p o .``); returns how many were written."""
    n3 = _N3()
    rows = sorted((n3(s), n3(p), n3(o)) for s, p, o in triples)
    del n3
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


def write_turtle(handle: IO[str], triples: Iterable[Triple], prefixes: dict[str, str] | None = None) -> int:
    for prefix, namespace in sorted((prefixes or {}).items()):
        handle.write(f"@prefix {prefix}: <{namespace}> .\n")
    if prefixes:
        handle.write("\n")
    return write_triples(handle, triples)


def write_trig(handle: IO[str], default: Iterable[Triple], graphs: dict[Node, Iterable[Triple]]) -> int:
    """Default-graph triples first, then one ``GRAPH <g> { ... }`` block per named graph."""
    count = write_triples(handle, default)
    for name, triples in graphs.items():
        handle.write(f"\n{name.n3()} {{\n")
        count += write_triples(handle, triples, indent="    ")
        handle.write("}\n")
    return count
