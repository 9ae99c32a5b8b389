"""Read the entities of a SPARQL endpoint, with what a file run would fold into them, into a local copy.

What a run reads from a file it reads here from an endpoint, so that the entity table
is the same: the IRIs of the ``--class`` types (paged in IRI order, ``page_size`` at a
time), every triple of each, and the triples of the label-less nodes they lead to, up
to :data:`~kgalign.io.entities.FOLD_DEPTH` links out (an address, its suburb, its
state). Descriptions are fetched ``batch_size`` nodes a query, ``concurrency`` queries
at once; blank nodes come in the query of the node that points to them.

The copy is N-Triples, sorted (the order of a server's answers is not fixed, and an
entity shows its first value of an attribute), blank nodes renamed in that order, and
written atomically with a small JSON record of the query that made it
(:class:`CopyInfo`). A later run with the same endpoint, classes, graph and pattern
reads the copy instead of the endpoint, unless told to refresh.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyoxigraph as ox

from kgalign.errors import InputError
from kgalign.io.atomic import atomic_open, write_text_atomic
from kgalign.io.entities import FOLD_DEPTH
from kgalign.io.sparql import queries
from kgalign.io.sparql.http import EndpointError, HttpSettings, SparqlClient
from kgalign.runtime.progress import progress_bar

log = logging.getLogger(__name__)

RDF_TYPE = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"
#: Changes when the copy's content or layout changes, so an older copy is fetched again.
COPY_VERSION = 1
#: Answers this long are checked against a COUNT for a server's silent row limit.
CHECK_ROWS = 1000

Term = ox.NamedNode | ox.BlankNode | ox.Literal
Triple = tuple[Term, ox.NamedNode, Term]


@dataclass(frozen=True)
class EndpointQuery:
    """What is read from an endpoint: its URL, the entities' classes, a named graph, a pattern."""

    url: str
    classes: tuple[str, ...]
    graph: str | None = None
    where: str | None = None

    def key(self) -> str:
        data = json.dumps([COPY_VERSION, FOLD_DEPTH, self.url, sorted(self.classes), self.graph, self.where])
        return hashlib.sha256(data.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class CopyInfo:
    """The record beside a fetched copy (``NAME.json``)."""

    key: str
    endpoint: str
    classes: list[str]
    graph: str | None
    where: str | None
    entities: int
    triples: int
    requests: int
    retried: int
    seconds: float
    fetched: str


def fetch_copy(query: EndpointQuery, path: Path, settings: Any, *, label: str = "endpoint") -> CopyInfo:
    """Read ``query`` from its endpoint into the N-Triples file ``path`` (and ``path``.json); nothing written on failure."""
    started = time.perf_counter()
    with SparqlClient(query.url, HttpSettings.of(settings), pool=settings.concurrency) as client:
        entities = list_entities(client, query, settings.page_size)
        if not entities:
            where = f" matching {query.where!r}" if query.where else ""
            graph = f" in graph <{query.graph}>" if query.graph else ""
            raise InputError(f"{client.shown}: no entity of rdf:type {', '.join(query.classes)}{graph}{where}")
        triples = fetch_descriptions(client, entities, query.graph, settings, label)
        lines = ntriples_lines(triples)
        with atomic_open(path) as handle:
            handle.writelines(lines)
        info = CopyInfo(
            key=query.key(),
            endpoint=client.shown,
            classes=list(query.classes),
            graph=query.graph,
            where=query.where,
            entities=len(entities),
            triples=len(lines),
            requests=client.requests,
            retried=client.retried,
            seconds=round(time.perf_counter() - started, 3),
            fetched=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        )
    write_text_atomic(info_path(path), json.dumps(asdict(info), indent=2) + "\n")
    log.info(
        "%s: %d entities, %d triples read in %.1f s (%d requests, %d tried again) -> %s",
        info.endpoint, info.entities, info.triples, info.seconds, info.requests, info.retried, path,
    )
    return info


def info_path(path: Path) -> Path:
    return path.with_suffix(".json")


def read_copy_info(path: Path) -> CopyInfo | None:
    """The record of the copy at ``path``, or None when there is no complete, readable one."""
    try:
        data = json.loads(info_path(path).read_text(encoding="utf-8"))
        info = CopyInfo(**data)
    except (OSError, ValueError, TypeError):
        return None
    return info if path.is_file() else None


def list_entities(client: SparqlClient, query: EndpointQuery, page_size: int) -> list[str]:
    """The IRIs of the entities, page by page in IRI order (keyset paging), until an empty page."""
    found: list[str] = []
    after: str | None = None
    while True:
        rows = client.select(queries.entity_page(query.classes, query.graph, query.where, page_size, after))
        page = []
        for row in rows:
            term = row.get("entity")
            if not isinstance(term, dict) or term.get("type") != "uri" or not isinstance(term.get("value"), str):
                raise EndpointError(f"{client.shown}: the answer is not SPARQL JSON results (a row without an ?entity IRI)")
            page.append(term["value"])
        if after is not None and page and page[0] <= after:
            raise EndpointError(f"{client.shown}: the endpoint does not order IRIs as SPARQL asks (page after {after!r} starts at {page[0]!r})")
        found += page
        # Only an empty page ends the list: a short one may be a server's own row limit
        # (Virtuoso's ResultSetMaxRows) cutting the page, not the last page.
        if not page:
            break
        after = page[-1]
    unique = list(dict.fromkeys(found))
    skipped = [value for value in unique if not queries.is_writable_iri(value)]
    if skipped:
        log.warning("%s: %d entity IRIs cannot be written in a query and are left out (first: %r)", client.shown, len(skipped), skipped[0])
    return [value for value in unique if queries.is_writable_iri(value)]


def fetch_descriptions(client: SparqlClient, entities: Sequence[str], graph: str | None, settings: Any, label: str) -> list[Triple]:
    """The triples of the entities and of the nodes a file run would fold into them."""
    triples: list[Triple] = []
    fetched = set(entities)
    roots = list(entities)
    bad_terms = 0
    for hop in range(FOLD_DEPTH + 1):
        batches = [roots[i : i + settings.batch_size] for i in range(0, len(roots), settings.batch_size)]
        following: set[str] = set()
        description = f"{label}: entities" if hop == 0 else f"{label}: nodes {hop} link{'s' if hop > 1 else ''} out"
        with progress_bar(description, len(roots)) as advance:
            for index, answers in _in_parallel(lambda batch: describe(client, batch, graph), batches, settings.concurrency):
                for rows in answers:
                    blanks: dict[str, ox.BlankNode] = {}  # blank node labels hold within one answer
                    for row in rows:
                        triple = _triple(row, blanks)
                        if triple is None:
                            bad_terms += 1
                            continue
                        triples.append(triple)
                        obj = triple[2]
                        if isinstance(obj, ox.NamedNode) and triple[1].value != RDF_TYPE and obj.value not in fetched:
                            following.add(obj.value)
                advance(len(batches[index]))
        following = {value for value in following if queries.is_writable_iri(value)}
        if hop == FOLD_DEPTH or not following:
            break
        fetched |= following
        roots = sorted(following)
    if bad_terms:
        log.warning("%s: %d answer rows held a term that is not valid RDF and were left out", client.shown, bad_terms)
    return triples


def describe(client: SparqlClient, roots: list[str], graph: str | None) -> list[list[dict]]:
    """The answers holding every triple of ``roots`` (see :func:`queries.descriptions`).

    Some servers cut every answer at a row limit of their own, silently (Virtuoso's
    ResultSetMaxRows, 10,000 on DBpedia). An answer of at least :data:`CHECK_ROWS` rows is
    checked against a count of the same query; a cut one is asked again in two halves.
    A single node with more triples than the limit keeps what the server gave, with a
    warning.
    """
    rows = client.select(queries.descriptions(roots, graph, FOLD_DEPTH))
    if len(rows) < CHECK_ROWS:
        return [rows]
    counted = client.select(queries.descriptions(roots, graph, FOLD_DEPTH, count=True))
    try:
        total = int(counted[0]["n"]["value"])
    except (IndexError, KeyError, TypeError, ValueError):
        raise EndpointError(f"{client.shown}: the answer is not SPARQL JSON results (a COUNT without a number)") from None
    if total <= len(rows):
        return [rows]
    if len(roots) == 1:
        log.warning(
            "%s: <%s> has %d triples, but the server answers at most %d rows a query (a limit of its own); the rest is left out",
            client.shown, roots[0], total, len(rows),
        )
        return [rows]
    half = len(roots) // 2
    return describe(client, roots[:half], graph) + describe(client, roots[half:], graph)


def _in_parallel(work: Callable[[list[str]], list], batches: list[list[str]], concurrency: int):
    """``(index, work(batch))`` in batch order, ``concurrency`` at a time; the first failure stops the rest."""
    if concurrency <= 1 or len(batches) <= 1:
        for index, batch in enumerate(batches):
            yield index, work(batch)
        return
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="kgalign-sparql")
    try:
        futures = [pool.submit(work, batch) for batch in batches]
        for index, future in enumerate(futures):
            yield index, future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _term(binding: object, blanks: dict[str, ox.BlankNode]) -> Term | None:
    if not isinstance(binding, dict) or not isinstance(binding.get("value"), str):
        return None
    kind, value = binding.get("type"), binding["value"]
    try:
        if kind == "uri":
            return ox.NamedNode(value)
        if kind == "bnode":
            if value not in blanks:
                blanks[value] = ox.BlankNode()
            return blanks[value]
        if kind in ("literal", "typed-literal"):
            language = binding.get("xml:lang")
            if language:
                return ox.Literal(value, language=str(language))
            datatype = binding.get("datatype")
            return ox.Literal(value, datatype=ox.NamedNode(str(datatype))) if datatype else ox.Literal(value)
    except ValueError:
        return None
    return None


def _triple(row: dict, blanks: dict[str, ox.BlankNode]) -> Triple | None:
    s, p, o = (_term(row.get(name), blanks) for name in ("s", "p", "o"))
    if s is None or o is None or not isinstance(p, ox.NamedNode) or isinstance(s, ox.Literal):
        return None
    return s, p, o


def ntriples_lines(triples: list[Triple]) -> list[str]:
    """The triples as sorted, distinct N-Triples lines, blank nodes renamed ``_:n1``, ``_:n2``... in that order."""

    def key(triple: Triple) -> tuple[str, str, str]:
        s, p, o = triple
        return ("_:" if isinstance(s, ox.BlankNode) else str(s), str(p), "_:" if isinstance(o, ox.BlankNode) else str(o))

    names: dict[ox.BlankNode, str] = {}

    def name(term: Term) -> str:
        if isinstance(term, ox.BlankNode):
            if term not in names:
                names[term] = f"_:n{len(names) + 1}"
            return names[term]
        return str(term)

    lines = (f"{name(s)} {p} {name(o)} .\n" for s, p, o in sorted(triples, key=key))
    return list(dict.fromkeys(lines))
