"""Fusion: clusters, canonical IRIs, conflict policies, and the no-triple-lost invariant."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from rdflib import Graph, Literal, URIRef
from rdflib.namespace import OWL

from kgalign.fusion.fuse import MINT_BASE, fuse
from kgalign.model import Link

EX = "http://example.org/"


def _graph(triples) -> Graph:
    g = Graph()
    for t in triples:
        g.add(t)
    return g


def _rewrite(triple, mapping):
    return tuple(URIRef(mapping[str(x)]) if isinstance(x, URIRef) and str(x) in mapping else x for x in triple)


def assert_nothing_lost(left: Graph, right: Graph, result) -> None:
    dropped = {t for t, _, _ in result.dropped}
    for graph in (left, right):
        for triple in graph:
            rewritten = _rewrite(triple, result.canonical)
            assert rewritten in result.graph or rewritten in dropped, triple


iris = st.sampled_from([URIRef(f"{EX}e{i}") for i in range(6)])
preds = st.sampled_from([URIRef(f"{EX}p{i}") for i in range(3)])
objs = st.one_of(iris, st.text(max_size=5).map(Literal), st.integers(0, 3).map(Literal))
triples = st.lists(st.tuples(iris, preds, objs), max_size=25)
links = st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5)), max_size=6)


@settings(max_examples=150, deadline=None)
@given(triples, triples, links, st.sampled_from(["left", "right", "mint"]), st.sampled_from(["keep-all", "prefer-left", "prefer-right", "most-specific"]))
def test_no_input_triple_is_lost(left_triples, right_triples, pairs, canonical, policy) -> None:
    left = _graph(left_triples)
    # The right graph lives in another namespace, as a second source would.
    right = _graph((URIRef(str(s).replace(EX, EX + "r/")), p, URIRef(str(o).replace(EX, EX + "r/")) if isinstance(o, URIRef) else o) for s, p, o in right_triples)
    link_list = [Link(f"{EX}e{a}", f"{EX}r/e{b}", 1.0) for a, b in pairs]
    result = fuse(left, right, link_list, canonical=canonical, conflicts=policy)
    assert_nothing_lost(left, right, result)
    if policy == "keep-all":
        assert not result.dropped
    for members in result.clusters:
        targets = {result.canonical[m] for m in members}
        assert len(targets) == 1
        target = targets.pop()
        if canonical == "mint":
            assert target.startswith(MINT_BASE)
        for member in members:
            if member != target:
                assert (URIRef(target), OWL.sameAs, URIRef(member)) in result.graph


def test_conflict_policies_on_a_functional_attribute() -> None:
    name = URIRef(f"{EX}name")
    left = _graph([(URIRef(f"{EX}a"), name, Literal("Paris")), (URIRef(f"{EX}a"), URIRef(f"{EX}pop"), Literal("2"))])
    right = _graph([(URIRef(f"{EX}r/a"), name, Literal("Paris", lang="fr"))])
    link = [Link(f"{EX}a", f"{EX}r/a", 0.9)]
    canon = URIRef(f"{EX}a")
    kept = {
        policy: set(fuse(left, right, link, "left", policy).graph.objects(canon, name))
        for policy in ("keep-all", "prefer-left", "prefer-right", "most-specific")
    }
    assert kept["keep-all"] == {Literal("Paris"), Literal("Paris", lang="fr")}
    assert kept["prefer-left"] == {Literal("Paris")}
    assert kept["prefer-right"] == {Literal("Paris", lang="fr")}
    assert kept["most-specific"] == {Literal("Paris", lang="fr")}
    result = fuse(left, right, link, "left", "prefer-left")
    assert [(t[2], source, reason) for t, source, reason in result.dropped] == [
        (Literal("Paris", lang="fr"), "right", "functional-conflict:prefer-left")
    ]
    assert result.provenance[(canon, URIRef(f"{EX}pop"), Literal("2"))] == {"left"}


def test_duplicates_collapse_and_provenance_names_both_sources() -> None:
    p = URIRef(f"{EX}p")
    left = _graph([(URIRef(f"{EX}a"), p, Literal("x"))])
    right = _graph([(URIRef(f"{EX}r/a"), p, Literal("x"))])
    result = fuse(left, right, [Link(f"{EX}a", f"{EX}r/a", 1.0)], canonical="right")
    canon = URIRef(f"{EX}r/a")
    assert list(result.graph.objects(canon, p)) == [Literal("x")]
    assert result.provenance[(canon, p, Literal("x"))] == {"left", "right"}
    assert (canon, OWL.sameAs, URIRef(f"{EX}a")) in result.graph


def test_many_links_take_the_fast_writer_and_parse_back(tmp_path) -> None:
    from kgalign.fusion.export import write_links
    from kgalign.io.turtle import PRETTY_LIMIT

    links = [Link(f"http://a.example/e{i}", f"http://b.example/r/{i}%C3%A9", 1.0) for i in range(PRETTY_LIMIT + 7)]
    path = tmp_path / "links.ttl"
    write_links(links, path)
    graph = Graph().parse(path, format="turtle")
    assert len(graph) == len(links)
    assert set(graph.subject_objects(OWL.sameAs)) == {(URIRef(x.left), URIRef(x.right)) for x in links}


def test_known_iri_is_the_same_term_as_urirefs() -> None:
    from kgalign.io.triples import known_iri

    value = "http://example.org/entity/Saint-Étienne_(ville)"
    term = known_iri(value)
    assert type(term) is URIRef and term == URIRef(value) and hash(term) == hash(URIRef(value))
    assert {URIRef(value): 1}[term] == 1 and term != value and term.n3() == URIRef(value).n3()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 7), st.integers(0, 7)), max_size=14))
def test_clusters_are_the_connected_components_of_the_links(pairs) -> None:
    """Against a breadth-first search: every link's two IRIs share one cluster, clusters
    are disjoint, and a left and a right IRI spelt alike stay two members."""
    from kgalign.fusion.fuse import cluster_links

    links = [Link(left=f"{EX}n{a}", right=f"{EX}n{b}", confidence=1.0) for a, b in pairs]
    neighbours: dict[tuple[str, str], set[tuple[str, str]]] = {}
    for link in links:
        neighbours.setdefault(("L", link.left), set()).add(("R", link.right))
        neighbours.setdefault(("R", link.right), set()).add(("L", link.left))
    expected, seen = [], set()
    for start in neighbours:
        if start in seen:
            continue
        component, frontier = {start}, [start]
        while frontier:
            for nxt in neighbours[frontier.pop()] - component:
                component.add(nxt)
                frontier.append(nxt)
        seen |= component
        expected.append([iri for _, iri in sorted(component)])
    assert cluster_links(links) == sorted(expected)


def test_fused_graph_and_provenance_share_one_rendering(tmp_path) -> None:
    """fused.ttl and provenance.trig written from one rendering of the fused triples are
    the files written from the triples themselves, and parse back to every triple in
    the graph of each source that contributed it."""
    from rdflib import Dataset

    from kgalign.fusion.export import SOURCE_GRAPHS, FusedRows, provenance_dataset, write_dataset, write_fused
    from kgalign.io.turtle import PRETTY_LIMIT

    p, q = URIRef(f"{EX}p"), URIRef(f"{EX}q")
    n = PRETTY_LIMIT // 2 + 5
    left = _graph([(URIRef(f"{EX}l{i}"), p, Literal(f"v{i}")) for i in range(n)] + [(URIRef(f"{EX}l{i}"), q, Literal("shared")) for i in range(0, n, 3)])
    right = _graph([(URIRef(f"{EX}r{i}"), p, Literal(f"v{i}", lang="fr")) for i in range(n)] + [(URIRef(f"{EX}r{i}"), q, Literal("shared")) for i in range(0, n, 2)])
    links = [Link(f"{EX}l{i}", f"{EX}r{i}", 1.0) for i in range(0, n, 4)]
    fusion = fuse(left, right, links)
    assert len(fusion) > PRETTY_LIMIT
    run = URIRef(f"{EX}run/1")
    rendered = FusedRows.of(fusion)
    for name, shared in (("plain", None), ("shared", rendered)):
        write_fused(fusion, tmp_path / f"{name}.ttl", shared)
        write_dataset(provenance_dataset(fusion, run, "left.ttl", "right.ttl", shared), tmp_path / f"{name}.trig")
    assert (tmp_path / "plain.ttl").read_bytes() == (tmp_path / "shared.ttl").read_bytes()
    assert (tmp_path / "plain.trig").read_bytes() == (tmp_path / "shared.trig").read_bytes()
    dataset = Dataset()
    dataset.parse(tmp_path / "shared.trig", format="trig")
    for source in ("left", "right", "kgalign"):
        expected = {t for t, sources in fusion.provenance.items() if source in sources}
        assert set(dataset.graph(SOURCE_GRAPHS[source])) == expected
    both = {t for t, sources in fusion.provenance.items() if sources == {"left", "right"}}
    assert both  # the linked subjects' shared values came from both graphs
