"""Inputs read from SPARQL endpoints and links pushed back, against real servers on 127.0.0.1.

Oxigraph's own server (the ``oxigraph`` package) holds the OAEI persons example and
Restaurants; a small SPARQL server in a thread (tests/sparql_server.py) misbehaves on
purpose: 429, 503, hangs, dropped connections, HTML pages, credentials.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rdflib import Graph, URIRef
from rdflib.namespace import OWL

from kgalign.errors import KgalignError
from kgalign.io.sparql.fetch import EndpointQuery, fetch_copy
from tests.helpers import cli
from tests.sparql_server import FaultyEndpoint, oxigraph_server, select

PERSON1 = "http://www.okkam.org/ontology_person1.owl#Person"
PERSON2 = "http://www.okkam.org/ontology_person2.owl#Person"
CLASSES = ["--class", PERSON1, "--class", PERSON2]


def fast_config(tmp_path: Path, **sparql: object) -> Path:
    """A config file with quick retries (backoff 0.05 s) and any other sparql settings."""
    settings = {"timeout": 1.0, "retries": 3, "backoff": 0.05, **sparql}
    path = tmp_path / "fast.json"
    path.write_text(json.dumps({"sparql": settings}))
    return path


def links(outdir: Path) -> set[tuple[str, str]]:
    graph = Graph().parse(outdir / "links.ttl")
    return {(str(s), str(o)) for s, _, o in graph.triples((None, OWL.sameAs, None))}


def run(left: object, right: object, outdir: Path, *options: object):
    return cli(["run", left, right, "-o", outdir, "--quiet", *options])


@pytest.fixture(scope="module")
def file_run(persons, tmp_path_factory) -> Path:
    outdir = tmp_path_factory.mktemp("file-run")
    result = run(persons["left"], persons["right"], outdir, *CLASSES, "--gold", persons["gold"])
    assert result.exit_code == 0, result.output
    return outdir


@pytest.fixture(scope="module")
def persons_servers(persons, tmp_path_factory):
    """Two read-only Oxigraph servers, one per side of the persons example."""
    folder = tmp_path_factory.mktemp("oxigraph")
    with oxigraph_server(folder / "left", [(persons["left"], None)]) as left, oxigraph_server(folder / "right", [(persons["right"], None)]) as right:
        yield f"{left}/query", f"{right}/query"


def test_endpoint_run_equals_file_run(persons, persons_servers, file_run, tmp_path):
    left, right = persons_servers
    outdir = tmp_path / "out"
    result = run(left, right, outdir, *CLASSES, "--gold", persons["gold"])
    assert result.exit_code == 0, result.output
    assert links(outdir) == links(file_run) and len(links(outdir)) > 40
    file_votes = [json.loads(line) for line in (file_run / "votes.jsonl").read_text().splitlines()]
    endpoint_votes = [json.loads(line) for line in (outdir / "votes.jsonl").read_text().splitlines()]
    assert endpoint_votes == file_votes  # same candidates, scores and decisions
    # The copy holds every triple of the file (all of them belong to a person or its address chain).
    copy = Graph().parse(outdir / "sources" / "left.nt", format="nt")
    assert len(copy) == len(Graph().parse(persons["left"]))
    info = json.loads((outdir / "sources" / "left.json").read_text())
    assert info["entities"] == 60 and info["endpoint"] == left
    saved = json.loads((outdir / "run.json").read_text())
    assert saved["left"] == left and saved["right"] == right
    assert json.loads((outdir / "metrics.json").read_text())["f1"] == json.loads((file_run / "metrics.json").read_text())["f1"]
    # alignment.rdf and the provenance name the endpoints.
    assert left in (outdir / "alignment.rdf").read_text()
    assert f"<{left}>" in (outdir / "provenance.trig").read_text()


def test_rerun_reads_the_copy_not_the_endpoint(persons, tmp_path, file_run):
    """A second run into the same folder sends no request; --refresh reads the endpoint again."""
    with FaultyEndpoint([persons["left"]]) as left:
        outdir = tmp_path / "out"
        assert run(left.url, persons["right"], outdir, *CLASSES).exit_code == 0
        first = left.requests
        assert first >= 4  # entity page + the hops out to the address chain
        assert run(left.url, persons["right"], outdir, *CLASSES).exit_code == 0
        assert left.requests == first
        again = tmp_path / "again"
        assert cli(["rerun", outdir, "-o", again, "--quiet"]).exit_code == 0
        assert left.requests == first and links(again) == links(file_run)
        # --since OLD carries OLD's copies too.
        since = tmp_path / "since"
        assert run(left.url, persons["right"], since, *CLASSES, "--since", outdir).exit_code == 0
        assert left.requests == first and json.loads((since / "run.json").read_text())["since"]["links"]["added"] == 0
        assert run(left.url, persons["right"], outdir, *CLASSES, "--refresh").exit_code == 0
        assert left.requests == 2 * first
        # Another query (a pattern) is another copy: read from the endpoint.
        assert run(left.url, persons["right"], outdir, *CLASSES, "--where", "?entity ?p ?o").exit_code == 0
        assert left.requests > 2 * first


def test_named_graph_and_pattern(persons, tmp_path, file_run):
    """--graph reads one named graph of a store holding both sides; --where narrows the entities."""
    with oxigraph_server(tmp_path / "store", [(persons["left"], "http://example.org/left"), (persons["right"], "http://example.org/right")]) as base:
        outdir = tmp_path / "graph"
        result = run(f"{base}/query", persons["right"], outdir, *CLASSES, "--graph", "http://example.org/left")
        assert result.exit_code == 0, result.output
        assert links(outdir) == links(file_run)
        # Both sides from one store: each endpoint URL names its graph as the protocol does.
        both = tmp_path / "both"
        sides = [f"{base}/query?default-graph-uri=http://example.org/{side}" for side in ("left", "right")]
        result = run(*sides, both, *CLASSES)
        assert result.exit_code == 0, result.output
        assert links(both) == links(file_run)
        # Only persons whose surname starts with "a".
        where = '?entity <http://www.okkam.org/ontology_person1.owl#surname> ?name FILTER(STRSTARTS(?name, "a"))'
        narrow = tmp_path / "narrow"
        result = run(f"{base}/query", persons["right"], narrow, *CLASSES, "--graph", "http://example.org/left", "--where", where)
        assert result.exit_code == 0, result.output
        left_graph = Graph().parse(persons["left"])
        surname = URIRef("http://www.okkam.org/ontology_person1.owl#surname")
        expected = {str(s) for s, o in left_graph.subject_objects(surname) if str(o).startswith("a")}
        assert 0 < len(expected) < 60
        assert json.loads((narrow / "sources" / "left.json").read_text())["entities"] == len(expected)
        assert {a for a, _ in links(narrow)} <= expected
        # The default graph of that store is empty: no entity there.
        empty = run(f"{base}/query", persons["right"], tmp_path / "empty", *CLASSES)
        assert empty.exit_code == 1 and "no entity of rdf:type" in empty.output
        assert not (tmp_path / "empty").exists()


def test_paging_and_batches(persons, tmp_path):
    """Small pages and batches, several queries in flight: the same copy as one big page."""
    with FaultyEndpoint([persons["left"]]) as endpoint:
        query = EndpointQuery(url=endpoint.url, classes=(PERSON1,))
        from kgalign.config import SparqlConfig

        one = fetch_copy(query, tmp_path / "one.nt", SparqlConfig())
        paged = fetch_copy(query, tmp_path / "paged.nt", SparqlConfig(page_size=7, batch_size=5, concurrency=3))
        assert (tmp_path / "one.nt").read_bytes() == (tmp_path / "paged.nt").read_bytes()
        assert one.entities == paged.entities == 60
        # 60 entities in pages of 7 (9 pages, the last short) + 12 batches of 5 per hop.
        assert paged.requests > one.requests + 9


def test_a_server_row_limit_does_not_cut_the_copy(tmp_path, caplog):
    """A server that silently cuts every answer at 1,000 rows: pages and batches are asked again until complete."""
    from kgalign.config import SparqlConfig

    data = tmp_path / "many.nt"
    rows = []
    for i in range(1500):
        rows.append(f"<http://example.org/e{i}> <http://www.w3.org/1999/02/22-rdf-syntax-ns#type> <http://example.org/T> .")
        rows.append(f'<http://example.org/e{i}> <http://example.org/name> "entity {i}" .')
    data.write_text("\n".join(rows) + "\n")
    query = EndpointQuery(url="", classes=("http://example.org/T",))
    settings = SparqlConfig(page_size=2000, batch_size=1000, concurrency=1)
    copies = []
    for cap in (None, 1000):
        with FaultyEndpoint([data], max_rows=cap) as endpoint:
            info = fetch_copy(EndpointQuery(url=endpoint.url, classes=query.classes), tmp_path / f"copy-{cap}.nt", settings)
            copies.append((tmp_path / f"copy-{cap}.nt").read_bytes())
            assert info.entities == 1500 and info.triples == 3000
    assert copies[0] == copies[1]
    # One entity with more triples than the limit keeps what the server gave, with a warning.
    big = tmp_path / "big.nt"
    big.write_text(rows[0] + "\n" + "".join(f'<http://example.org/e0> <http://example.org/alias> "alias {i}" .\n' for i in range(1200)))
    with FaultyEndpoint([big], max_rows=1000) as endpoint:
        info = fetch_copy(EndpointQuery(url=endpoint.url, classes=query.classes), tmp_path / "big-copy.nt", settings)
    assert info.triples == 1000
    assert "has 1201 triples, but the server answers at most 1000 rows a query" in caplog.text


def test_blank_nodes_are_folded_as_from_the_file(tmp_path):
    """Label-less blank nodes (two deep) reach the entity's description as they do from a file."""
    from kgalign.io.entities import load_entities

    data = tmp_path / "blank.ttl"
    data.write_text(
        "@prefix ex: <http://example.org/> .\n"
        'ex:a a ex:Person ; ex:name "Ann" ; ex:address [ ex:street "1 Main St" ; ex:city [ ex:name "Springfield" ] ] .\n'
        'ex:b a ex:Person ; ex:name "Bob" ; ex:knows ex:a ; ex:address [ ex:street "2 Side St" ] .\n'
        'ex:c ex:name "not a person" .\n'
    )
    with FaultyEndpoint([data]) as endpoint:
        from kgalign.config import SparqlConfig

        fetch_copy(EndpointQuery(url=endpoint.url, classes=("http://example.org/Person",)), tmp_path / "copy.nt", SparqlConfig())
    _, from_file = load_entities(data, "f", classes=["http://example.org/Person"])
    _, from_copy = load_entities(tmp_path / "copy.nt", "e", classes=["http://example.org/Person"])
    assert from_copy.entities.keys() == from_file.entities.keys() == {"http://example.org/a", "http://example.org/b"}
    for iri, entity in from_file.entities.items():
        copied = from_copy.entities[iri]
        assert {k: sorted(v.text for v in vs) for k, vs in copied.attributes.items()} == {k: sorted(v.text for v in vs) for k, vs in entity.attributes.items()}
        assert copied.relations == entity.relations
    assert "http://example.org/address / http://example.org/city / http://example.org/name" in from_copy.entities["http://example.org/a"].attributes


@pytest.mark.parametrize("plan", [["429", "429"], ["503"], ["hang"], ["ok", "drop"]], ids=["429-then-200", "503", "hang-past-timeout", "dropped-mid-answer"])
def test_faults_that_pass_are_retried(persons, file_run, tmp_path, plan):
    with FaultyEndpoint([persons["left"]], plan=plan, hang_seconds=3) as left:
        outdir = tmp_path / "out"
        result = run(left.url, persons["right"], outdir, *CLASSES, "--config", fast_config(tmp_path))
        assert result.exit_code == 0, result.output
        assert links(outdir) == links(file_run)
        assert left.steps[: len(plan)] == plan and left.requests > len(plan)
        assert json.loads((outdir / "sources" / "left.json").read_text())["retried"] == sum(step != "ok" for step in plan)


@pytest.mark.parametrize(
    ("then", "message"),
    [
        ("hang", "query failed after 2 tries (no answer within 1 s)"),
        ("503", "query failed after 2 tries (HTTP 503 Service Unavailable: busy)"),
        ("drop", "query failed after 2 tries (connection failed"),
        ("404", "the endpoint answered HTTP 404 Not Found to the query: no such endpoint"),
        ("html", "the answer is not SPARQL JSON results (Content-Type text/html)"),
    ],
)
def test_faults_that_stay_fail_in_one_line_writing_nothing(persons, tmp_path, then, message):
    with FaultyEndpoint([persons["left"]], then=then, hang_seconds=2) as left:
        outdir = tmp_path / "out"
        result = run(left.url, persons["right"], outdir, *CLASSES, "--config", fast_config(tmp_path, retries=1))
        assert result.exit_code == 1
        # Retries are logged as warnings; the error is one line, the last.
        error = result.output.strip().splitlines()[-1]
        assert error.startswith(f"kgalign: error: {left.url}: ") and message in error, result.output
        assert not outdir.exists()


def test_rejected_query_and_unreachable_endpoint(persons, tmp_path):
    with FaultyEndpoint([persons["left"]]) as left:
        result = run(left.url, persons["right"], tmp_path / "bad", *CLASSES, "--where", "?entity ?p", "--config", fast_config(tmp_path))
        assert result.exit_code == 1 and "the endpoint rejected the query (HTTP 400): query error" in result.output
        assert left.requests == 1  # a rejected query is not tried again
    from tests.helpers import free_port

    closed = f"http://127.0.0.1:{free_port()}/sparql"
    result = run(closed, persons["right"], tmp_path / "closed", *CLASSES, "--config", fast_config(tmp_path, retries=1))
    assert result.exit_code == 1 and result.output.strip().splitlines()[-1].startswith(f"kgalign: error: {closed}: query failed after 2 tries (connection failed")
    assert not (tmp_path / "bad").exists() and not (tmp_path / "closed").exists()


def test_endpoint_needs_a_class(persons, tmp_path):
    result = run("http://127.0.0.1:9/sparql", persons["right"], tmp_path / "out")
    assert result.exit_code == 1 and "LEFT is a SPARQL endpoint; name the entities' type with --class" in result.output
    result = run("http://127.0.0.1:9/sparql", "http://127.0.0.1:9/sparql", tmp_path / "out", *CLASSES)
    assert result.exit_code == 1 and "the same endpoint was given as LEFT and RIGHT" in result.output
    assert not (tmp_path / "out").exists()


def test_credentials_from_the_environment_never_written(persons, file_run, tmp_path, monkeypatch):
    secret = "s3cret-Pa55word"
    with FaultyEndpoint([persons["left"]], credentials=("reader", secret)) as left:
        refused = run(left.url, persons["right"], tmp_path / "refused", *CLASSES)
        assert refused.exit_code == 1 and "HTTP 401" in refused.output and "KGALIGN_SPARQL_USER" in refused.output
        monkeypatch.setenv("KGALIGN_SPARQL_USER", "reader")
        monkeypatch.setenv("KGALIGN_SPARQL_PASSWORD", secret)
        outdir = tmp_path / "out"
        result = cli(["--log-level", "debug", "run", left.url, persons["right"], "-o", outdir, "--quiet", *CLASSES])
        assert result.exit_code == 0, result.output
        assert links(outdir) == links(file_run)
        assert secret not in result.output
        for path in outdir.rglob("*"):
            if path.is_file() and path.suffix in (".json", ".jsonl", ".ttl", ".trig", ".nt", ".rdf"):
                assert secret not in path.read_text(encoding="utf-8"), path


@pytest.mark.parametrize("protocol", ["update", "gsp"])
def test_push_replaces_the_named_graphs(persons, tmp_path, protocol):
    """The pushed links read back equal links.ttl; pushing twice leaves one copy; the fused graph goes to its own graph."""
    with oxigraph_server(tmp_path / "store", writable=True) as base:
        url = f"{base}/update" if protocol == "update" else f"{base}/store"
        options = ["--push", url, "--push-protocol", protocol, "--push-graph", "http://example.org/links", "--push-fused", "http://example.org/fused"]
        for attempt in ("first", "second"):
            outdir = tmp_path / attempt
            result = run(persons["left"], persons["right"], outdir, *options)
            assert result.exit_code == 0, result.output
            assert "pushed" in result.output
        rows = select(f"{base}/query", "SELECT ?a ?b WHERE { GRAPH <http://example.org/links> { ?a <http://www.w3.org/2002/07/owl#sameAs> ?b } }")
        pushed = [(row["a"]["value"], row["b"]["value"]) for row in rows]
        assert len(pushed) == len(set(pushed)) and set(pushed) == links(tmp_path / "second")
        fused = select(f"{base}/query", "SELECT (COUNT(*) AS ?n) WHERE { GRAPH <http://example.org/fused> { ?s ?p ?o } }")
        assert int(fused[0]["n"]["value"]) == len(Graph().parse(tmp_path / "second" / "fused.ttl"))


def test_failed_push_names_the_complete_outputs(persons, tmp_path):
    with FaultyEndpoint([persons["left"]], then="404") as target:
        outdir = tmp_path / "out"
        result = run(persons["left"], persons["right"], outdir, "--push", target.url, "--config", fast_config(tmp_path))
        assert result.exit_code == 1
        assert "HTTP 404" in result.output and f"the outputs in {outdir} are complete; only the push failed" in result.output
        assert (outdir / "links.ttl").is_file()


def test_config_checks_sparql_and_push_settings():
    from kgalign.config import AlignConfig

    with pytest.raises(KgalignError, match="sparql.graph: 'not an iri' is not an absolute IRI"):
        AlignConfig.from_dict({"sparql": {"graph": "not an iri"}})
    with pytest.raises(KgalignError, match="push.url: 'ftp://x' is not an http"):
        AlignConfig.from_dict({"push": {"url": "ftp://x"}})
    with pytest.raises(KgalignError, match="must differ from links_graph"):
        AlignConfig.from_dict({"push": {"fused_graph": "urn:kgalign:links"}})
    with pytest.raises(KgalignError, match="sparql.page_size: 0 is out of range"):
        AlignConfig.from_dict({"sparql": {"page_size": 0}})


OAEI = {
    "person1": ("oaei2010_persons1", "person11.nt", "person12.nt", "dataset11_dataset12_goldstandard_person.xml", "http://www.okkam.org/ontology_person{}.owl#Person"),
    "restaurants": ("oaei2010_restaurants", "restaurant1.nt", "restaurant2.nt", "goldstandard_repaired.tsv", "http://www.okkam.org/ontology_restaurant{}.owl#Restaurant"),
}


@pytest.mark.parametrize("name", sorted(OAEI))
def test_oaei_benchmarks_from_oxigraph_equal_the_files(shared_data, tmp_path, name):
    """OAEI 2010 Person1 and Restaurants served by Oxigraph give the links, votes and scores of the files."""
    folder, left_file, right_file, gold, cls = OAEI[name]
    data = shared_data / folder
    classes = ["--class", cls.format(1), "--class", cls.format(2), "--gold", data / gold]
    from_files = tmp_path / "files"
    assert run(data / left_file, data / right_file, from_files, *classes).exit_code == 0
    with oxigraph_server(tmp_path / "left", [(data / left_file, None)]) as left, oxigraph_server(tmp_path / "right", [(data / right_file, None)]) as right:
        from_endpoints = tmp_path / "endpoints"
        result = run(f"{left}/query", f"{right}/query", from_endpoints, *classes)
        assert result.exit_code == 0, result.output
    assert links(from_endpoints) == links(from_files) and len(links(from_files)) > 80
    assert (from_endpoints / "votes.jsonl").read_text() == (from_files / "votes.jsonl").read_text()
    metrics = [json.loads((d / "metrics.json").read_text()) for d in (from_files, from_endpoints)]
    assert metrics[0]["f1"] == metrics[1]["f1"] > 0.9


@pytest.fixture
def virtuoso(tmp_path, persons):
    """Virtuoso holding the persons example's left side in a named graph (skipped where not installed, except in CI)."""
    import os

    from tests.sparql_server import virtuoso_server

    try:
        with virtuoso_server(tmp_path / "virtuoso", [(persons["left"], "http://example.org/left")]) as url:
            yield url
    except FileNotFoundError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{exc}: .ci/install-virtuoso.sh installs it for CI")
        pytest.skip(str(exc))


def test_virtuoso_read_and_push(persons, file_run, virtuoso, tmp_path):
    """Read the left side from Virtuoso's named graph, push the links and the fused graph back, read them again."""
    outdir = tmp_path / "out"
    options = ["--graph", "http://example.org/left", "--push", virtuoso, "--push-graph", "http://example.org/links", "--push-fused", "http://example.org/fused"]
    result = run(virtuoso, persons["right"], outdir, *CLASSES, *options)
    assert result.exit_code == 0, result.output
    assert links(outdir) == links(file_run)
    # The same triples as Oxigraph's copy of the same file: the whole left graph.
    assert len(Graph().parse(outdir / "sources" / "left.nt", format="nt")) == len(Graph().parse(persons["left"]))
    rerun = tmp_path / "again"
    assert run(virtuoso, persons["right"], rerun, *CLASSES, *options).exit_code == 0  # pushed twice
    rows = select(virtuoso, "SELECT ?a ?b WHERE { GRAPH <http://example.org/links> { ?a <http://www.w3.org/2002/07/owl#sameAs> ?b } }")
    pushed = [(row["a"]["value"], row["b"]["value"]) for row in rows]
    assert len(pushed) == len(set(pushed)) and set(pushed) == links(rerun)
    count = select(virtuoso, "SELECT (COUNT(*) AS ?n) WHERE { GRAPH <http://example.org/fused> { ?s ?p ?o } }")
    assert int(count[0]["n"]["value"]) == len(Graph().parse(rerun / "fused.ttl"))
