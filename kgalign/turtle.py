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


def _sort_key(triple: Triple) -> tuple[str, str, str]:
    return (triple[0].n3(), triple[1].n3(), triple[2].n3())


def write_triples(handle: IO[str], triples: Iterable[Triple], indent: str = "") -> int:
    """Write triples grouped by subject (``s p o ; p o .``); returns how many were written."""
    count = 0
    current = None
    for s, p, o in sorted(triples, key=_sort_key):
        subject = s.n3()
        if subject != current:
            if current is not None:
                handle.write(" .\n")
            handle.write(f"{indent}{subject}\n{indent}    {p.n3()} {o.n3()}")
            current = subject
        else:
            handle.write(f" ;\n{indent}    {p.n3()} {o.n3()}")
        count += 1
    if current is not None:
        handle.write(" .\n")
    return count


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
