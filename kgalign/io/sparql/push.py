"""Write a run's links (and its fused graph) back to a triple store, one named graph each.

Each named graph is replaced whole in one request, so pushing twice leaves one copy and
a failed push leaves the graph as it was: with SPARQL 1.1 Update (``DROP SILENT GRAPH``
then ``INSERT DATA`` in one request, which the protocol applies atomically), or with
the Graph Store HTTP Protocol (``PUT ?graph=IRI``, which replaces the graph). The
triples sent are those of the files the run wrote (links.ttl, fused.ttl), so what is
read back equals what is on disk. Credentials: as for reading (:mod:`kgalign.io.sparql.http`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyoxigraph as ox

from kgalign.errors import InputError, KgalignError
from kgalign.io.sparql import queries
from kgalign.io.sparql.http import HttpSettings, SparqlClient

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pushed:
    graph: str
    triples: int


def ntriples_of(path: Path) -> tuple[str, int]:
    """The triples of a Turtle file as N-Triples text (blank nodes kept apart), and their count."""
    try:
        with path.open("rb") as handle:
            triples = list(ox.parse(handle, format=ox.RdfFormat.TURTLE))
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{path}: cannot read it to push ({exc})") from None
    text = ox.serialize(triples, format=ox.RdfFormat.N_TRIPLES) or b""
    return text.decode("utf-8"), len(triples)


def push_outputs(outdir: Path, push: Any, sparql: Any) -> list[Pushed]:
    """Send ``outdir``'s links.ttl (and fused.ttl when ``push.fused_graph`` is set) to ``push.url``."""
    jobs = [(push.links_graph, outdir / "links.ttl")]
    if push.fused_graph:
        if not (outdir / "fused.ttl").is_file() and (outdir / "fused").is_dir():
            raise KgalignError(
                f"{outdir / 'fused.ttl'}: not written (past --ray-single-files-limit the fused graph is in the shards of {outdir / 'fused'}); "
                "load those with the store's bulk loader, or push the links alone"
            )
        jobs.append((push.fused_graph, outdir / "fused.ttl"))
    done = []
    with SparqlClient(push.url, HttpSettings.of(sparql), pool=1) as client:
        for graph, path in jobs:
            text, count = ntriples_of(path)
            if push.protocol == "gsp":
                client.put_graph(graph, text.encode("utf-8"))
            else:
                client.update(queries.replace_graph(graph, text))
            log.info("%s: graph <%s> now holds the %d triples of %s", client.shown, graph, count, path.name)
            done.append(Pushed(graph, count))
    return done
