"""The SPARQL text kgalign sends: entity pages, descriptions, and the updates of a push.

Every IRI put into a query comes from the user's options or from the endpoint's own
answers, and is checked to be writable between ``<`` and ``>`` (:func:`iri`) before it
is quoted, so no answer can change a query's shape.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from kgalign.errors import KgalignError

_NOT_IN_IRI = frozenset('<>"{}|^`\\ \t\n\r')


def is_writable_iri(value: str) -> bool:
    """True when ``value`` can be written as ``<value>`` in SPARQL (absolute, no forbidden character)."""
    return ":" in value and not any(ch in _NOT_IN_IRI or ord(ch) < 0x20 for ch in value)


def iri(value: str) -> str:
    if not is_writable_iri(value):
        raise KgalignError(f"{value!r} is not an IRI that can be written in a SPARQL query")
    return f"<{value}>"


def _in_graph(pattern: str, graph: str | None) -> str:
    return f"GRAPH {iri(graph)} {{\n{pattern}\n}}" if graph else pattern


def string_literal(value: str) -> str:
    """``value`` as a SPARQL string literal, every character that could end or bend it escaped."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return f'"{escaped}"'


def entity_page(classes: Sequence[str], graph: str | None, where: str | None, limit: int, after: str | None = None) -> str:
    """One page of the entities to align: IRIs of one of ``classes`` (and matching ``where``),
    in IRI order, from the first one past ``after``.

    Keyset paging: each page starts where the last one ended instead of at an OFFSET,
    which servers cap (Virtuoso sorts at most ResultSetMaxRows rows, offset included)
    and which costs a sort of every skipped row.
    """
    if len(classes) == 1:
        typed = f"?entity a {iri(classes[0])} ."
    else:
        typed = f"VALUES ?class {{ {' '.join(iri(c) for c in classes)} }}\n?entity a ?class ."
    pattern = f"{typed}\nFILTER(isIRI(?entity))"
    if after is not None:
        pattern += f"\nFILTER(STR(?entity) > {string_literal(after)})"
    if where:
        pattern += f"\n{{ {where} }}"
    return f"SELECT DISTINCT ?entity WHERE {{\n{_in_graph(pattern, graph)}\n}}\nORDER BY ?entity\nLIMIT {limit}"


def descriptions(roots: Iterable[str], graph: str | None, blank_depth: int, *, count: bool = False) -> str:
    """Every triple of ``roots``, and of the blank nodes they lead to within ``blank_depth`` links
    (with ``count``: how many rows that query answers).

    Blank nodes have no name that outlives one answer, so they are fetched in the same
    query as the node that points to them (one branch per depth); their labels agree
    within the answer (SPARQL results scope them to the result set).
    """
    values = " ".join(iri(r) for r in roots)
    branches = [f"{{ VALUES ?s {{ {values} }}\n  ?s ?p ?o }}"]
    for depth in range(1, blank_depth + 1):
        steps = []
        previous = "?root"
        for hop in range(1, depth + 1):
            node = "?s" if hop == depth else f"?b{hop}"
            steps.append(f"{previous} ?l{hop} {node} . FILTER(isBlank({node}))")
            previous = node
        branches.append(f"{{ VALUES ?root {{ {values} }}\n  {' '.join(steps)}\n  ?s ?p ?o }}")
    pattern = _in_graph("\n".join(["  " + branches[0]] + ["  UNION " + b for b in branches[1:]]), graph)
    return f"SELECT {'(COUNT(*) AS ?n)' if count else '?s ?p ?o'} WHERE {{\n{pattern}\n}}"


def replace_graph(graph: str, ntriples: str) -> str:
    """One SPARQL Update request that makes named graph ``graph`` hold exactly ``ntriples``."""
    return f"DROP SILENT GRAPH {iri(graph)} ;\nINSERT DATA {{ GRAPH {iri(graph)} {{\n{ntriples}}} }}"
