"""Loading real RDF in every supported syntax, folding label-less nodes, and clear errors."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from rdflib import Graph

from kgalign.errors import InputError
from kgalign.io.entities import build_entity_table, load_entities
from kgalign.io.formats import guess_format
from kgalign.io.parsers import load_graph
from kgalign.io.triples import TripleSet

PERSON = "http://www.okkam.org/oaie/person1-Person00"
ONTO1 = "http://www.okkam.org/ontology_person1.owl#"


@pytest.fixture(scope="module")
def left_graph(persons) -> Graph:
    return load_graph(persons["left"])


@pytest.mark.parametrize(
    "suffix,fmt",
    [(".ttl", "turtle"), (".nt", "nt"), (".nq", "nquads"), (".trig", "trig"), (".rdf", "xml"), (".jsonld", "json-ld")],
)
def test_every_syntax_loads_the_same_triples(tmp_path: Path, left_graph: Graph, suffix: str, fmt: str) -> None:
    path = tmp_path / f"left{suffix}"
    if fmt in ("nquads", "trig"):
        from rdflib import Dataset, URIRef

        ds = Dataset()
        g = ds.graph(URIRef("urn:example:g"))
        for t in left_graph:
            g.add(t)
        path.write_bytes(ds.serialize(format=fmt, encoding="utf-8"))
    else:
        path.write_bytes(left_graph.serialize(format=fmt, encoding="utf-8"))
    loaded = load_graph(path)
    assert len(loaded) == len(left_graph)
    assert set(loaded) == set(left_graph)


def test_gzip_is_read_transparently(tmp_path: Path, persons) -> None:
    path = tmp_path / "left.nt.gz"
    path.write_bytes(gzip.compress(persons["left"].read_bytes()))
    assert guess_format(path) == "nt"
    assert len(load_graph(path)) == len(load_graph(persons["left"]))


def test_address_chain_is_folded_into_the_person(persons) -> None:
    _, table = load_entities(persons["left"], "left")
    # Only persons are entities: addresses, suburbs and states are label-less and referenced.
    assert len(table) == 60
    assert all("Person" in iri for iri in table.entities)
    person = next(iter(table.entities.values()))
    paths = set(person.attributes)
    assert f"{ONTO1}soc_sec_id" in paths
    suburb_path = f"{ONTO1}has_address / {ONTO1}is_in_suburb / {ONTO1}name"
    state_path = f"{ONTO1}has_address / {ONTO1}is_in_suburb / {ONTO1}is_in_state / {ONTO1}name"
    assert suburb_path in paths
    assert state_path in paths


def test_blank_nodes_fold_and_labels_are_kept_with_language(tmp_path: Path) -> None:
    path = tmp_path / "g.ttl"
    path.write_text(
        """
        @prefix ex: <http://example.org/> .
        @prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
        ex:paris rdfs:label "Paris"@fr, "Paris"@en ; ex:population "2100000" ;
            ex:location [ ex:lat "48.85" ; ex:long "2.35" ] ; ex:country ex:france .
        ex:france rdfs:label "France"@en .
        """
    )
    _, table = load_entities(path, "g")
    assert set(table.entities) == {"http://example.org/paris", "http://example.org/france"}
    paris = table.entities["http://example.org/paris"]
    assert {(v.text, v.lang) for v in paris.labels} == {("Paris", "fr"), ("Paris", "en")}
    assert paris.attributes["http://example.org/location / http://example.org/lat"][0].text == "48.85"
    assert paris.relations == {"http://example.org/country": ["http://example.org/france"]}
    assert paris.label == "Paris"


def test_class_restricts_the_entities(persons) -> None:
    graph = load_graph(persons["left"])
    table = build_entity_table(graph, "left", classes=[f"{ONTO1}Address"])
    assert len(table) == 60
    assert all("Address" in iri for iri in table.entities)
    with pytest.raises(InputError, match="no subject has rdf:type"):
        build_entity_table(graph, "left", classes=["http://example.org/Nothing"])


def test_malformed_turtle_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.ttl"
    path.write_text('@prefix ex: <http://example.org/> .\nex:a ex:b "ok" .\nex:c ex:d "unterminated .\n')
    with pytest.raises(InputError) as err:
        load_graph(path)
    message = str(err.value)
    assert str(path) in message and "\n" not in message
    assert f"{path}:3" in message


def test_unknown_extension_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot tell the RDF format"):
        load_graph(tmp_path / "graph.xyz")
    with pytest.raises(InputError, match="no such file"):
        load_graph(tmp_path / "missing.ttl")


def test_a_format_kgalign_does_not_read_is_one_line_listing_those_it_reads(tmp_path: Path, persons) -> None:
    from kgalign.io.formats import FORMAT_ALIASES, READ_FORMATS

    with pytest.raises(InputError) as error:
        load_graph(persons["left"], "bogus")
    message = str(error.value)
    assert message.startswith(f"{persons['left']}: --format 'bogus' is not a format kgalign reads") and "\n" not in message
    assert all(name in message for name in READ_FORMATS)
    # Each name (and alias) given for N-Triples reads the file as its extension does.
    expected = set(load_graph(persons["left"]))
    for name in ("nt", "ntriples", "n-triples", "turtle", "ttl"):
        assert name in READ_FORMATS and set(load_graph(persons["left"], name)) == expected, name
    assert set(FORMAT_ALIASES) <= set(READ_FORMATS)


def test_non_utf8_ntriples_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "latin.nt"
    path.write_bytes(b'<http://e/a> <http://e/p> "ok" .\n<http://e/b> <http://e/p> "caf\xe9" .\n')
    with pytest.raises(InputError, match=r"latin\.nt:2: not valid UTF-8"):
        load_graph(path)


TRICKY_TURTLE = """@prefix ex: <http://example.org/> .
@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .
@base <http://example.org/base/> .
ex:a ex:name "Zoë"@fr , "plain" , "typed"^^xsd:string , "007"^^xsd:integer , "2010-01-02"^^xsd:date ;
     ex:size "1.50"^^xsd:decimal , "abc"^^xsd:integer ;
     ex:note \"\"\"two
lines with a \\"quote\\" and a tab\\t\"\"\" ;
     ex:rel <relative> , [ ex:street "1 Main St" ; ex:city _:c ] .
_:c ex:name "Springfield" .
<relative> ex:name "relative IRI resolved against @base" .
"""


def test_fast_parser_reads_what_rdflib_reads(tmp_path: Path) -> None:
    """pyoxigraph (the fast path for Turtle/N-Triples) and rdflib give isomorphic graphs:
    languages, datatypes (an ill-typed one too), escapes, @base, blank nodes."""
    from rdflib.compare import isomorphic

    from kgalign.io.parsers import read_triples

    path = tmp_path / "tricky.ttl"
    path.write_text(TRICKY_TURTLE, encoding="utf-8")
    fast = read_triples(path)
    reference = Graph().parse(path, format="turtle")
    # RDF 1.1: "typed"^^xsd:string and "typed" are one term; rdflib keeps the datatype.
    reference = TripleSet.from_graph(reference).graph()
    assert len(fast) == len(reference) == 14
    assert isomorphic(fast.graph(), reference)
    assert dict(fast.namespaces())["ex"] == __import__("rdflib").URIRef("http://example.org/")


def test_repeated_values_are_shared_yet_every_spelling_is_kept(tmp_path: Path) -> None:
    """A value repeated across the graph is one object after parsing and in the entity
    table (large graphs repeat most values); one text under two datatypes stays two
    values. A graph given as rdflib terms keeps what rdflib calls one term while it is
    written two ways ("01" and "1" as integers, "@EN" and "@en") as written."""
    from rdflib import Literal, URIRef
    from rdflib.namespace import XSD

    from kgalign.io.parsers import read_triples

    path = tmp_path / "repeats.nt"
    rows = []
    for i in range(3):
        rows.append(f'<http://e/p{i}> <http://e/city> "Lyon" .')
        rows.append(f'<http://e/p{i}> <http://e/name> "Person {i}"@en .')
    rows += ['<http://e/p0> <http://e/rank> "5"^^<http://www.w3.org/2001/XMLSchema#integer> .', '<http://e/p1> <http://e/rank> "5" .']
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    cities = [o for s, p, o in read_triples(path) if str(p) == "http://e/city"]
    assert len(cities) == 3 and cities[0] is cities[1] is cities[2]
    _, table = load_entities(path, "t")
    people = [table.entities[f"http://e/p{i}"] for i in range(3)]
    assert people[0].attributes["http://e/city"][0] is people[2].attributes["http://e/city"][0]
    ranks = [p.attributes["http://e/rank"][0] for p in people[:2]]
    assert [r.text for r in ranks] == ["5", "5"] and [r.datatype for r in ranks] == [str(XSD.integer), None]

    a, b, motto, rank = URIRef("http://e/a"), URIRef("http://e/b"), URIRef("http://e/motto"), URIRef("http://e/rank")
    written = TripleSet(
        [
            (a, motto, Literal("Yes", lang="EN")),
            (b, motto, Literal("Yes", lang="en")),
            (a, rank, Literal("01", datatype=XSD.integer, normalize=False)),
            (b, rank, Literal("1", datatype=XSD.integer)),
        ]
    )
    rows_of = build_entity_table(written, "w").entities
    assert [rows_of[str(e)].attributes[str(motto)][0].lang for e in (a, b)] == ["EN", "en"]
    assert [rows_of[str(e)].attributes[str(rank)][0].text for e in (a, b)] == ["01", "1"]


def test_blank_nodes_of_two_files_stay_apart(tmp_path: Path) -> None:
    """Both files label a node _:b1; parsed apart, the two nodes must not merge in a fusion."""
    from rdflib import BNode

    from kgalign.fusion.fuse import fuse
    from kgalign.io.parsers import read_triples

    left, right = tmp_path / "l.nt", tmp_path / "r.nt"
    left.write_text('<http://e.org/l> <http://e.org/p> _:b1 .\n_:b1 <http://e.org/v> "left" .\n', encoding="utf-8")
    right.write_text('<http://e.org/r> <http://e.org/p> _:b1 .\n_:b1 <http://e.org/v> "right" .\n', encoding="utf-8")
    fused = fuse(read_triples(left), read_triples(right), [])
    blanks = {t[0] for t in fused.triples if isinstance(t[0], BNode)}
    assert len(blanks) == 2


def test_a_file_the_fast_parser_rejects_gets_rdflibs_located_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.nt"
    path.write_text('<http://e.org/a> <http://e.org/p> "ok" .\n<http://e.org/b> <http://e.org/p> "unclosed .\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"bad\.nt:2\b"):
        load_graph(path)


def test_file_order_is_kept(tmp_path: Path) -> None:
    """The first value of an attribute is the one shown: the same file gives the same order in every process."""
    from kgalign.io.parsers import read_triples

    path = tmp_path / "order.nt"
    lines = [f'<http://e.org/a> <http://e.org/p> "v{i}" .' for i in (5, 3, 9, 1, 7)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert [str(o) for _, _, o in read_triples(path)] == ["v5", "v3", "v9", "v1", "v7"]


def _split_into_folder(source: Path, folder: Path) -> str:
    """``source`` (N-Triples) as a folder: its lines up to the middle of a person's triples
    past line 300 in a.nt, the rest gzipped in sub/b.nt.gz, and files that are not RDF (a
    README, a hidden file) beside them. Returns the person cut in two."""
    lines = source.read_text().splitlines(keepends=True)
    subject = [line.split(" ", 1)[0].strip("<>") for line in lines]
    cut = next(i for i in range(300, len(lines)) if subject[i] == subject[i - 1] and "Person" in subject[i])
    (folder / "sub").mkdir(parents=True)
    (folder / "a.nt").write_text("".join(lines[:cut]))
    (folder / "sub" / "b.nt.gz").write_bytes(gzip.compress("".join(lines[cut:]).encode()))
    (folder / "README.txt").write_text("not RDF")
    (folder / ".hidden.nt").write_text("not even N-Triples")
    return subject[cut]


def test_a_folder_is_read_as_one_graph(tmp_path: Path, persons) -> None:
    """A folder's RDF files, subfolders included, make one graph: the same triples in the
    same order as the file they were cut from, an entity described across two files
    whole; files without an RDF extension and hidden ones skipped."""
    from kgalign.io.parsers import read_triples

    folder = tmp_path / "left"
    cut_subject = _split_into_folder(persons["left"], folder)
    whole = read_triples(persons["left"])
    assert list(read_triples(folder)) == list(whole)
    _, table = load_entities(folder)
    _, single = load_entities(persons["left"])
    assert table.entities[cut_subject].attributes == single.entities[cut_subject].attributes


@pytest.mark.parametrize(
    "files,error",
    [
        ({"notes.txt": "x"}, r"case: the folder holds no RDF file"),
        ({"a.nt": '<urn:a> <urn:p> "x" .\n', "b.csv": "id,name\n1,x\n"}, r"b\.csv: a CSV/TSV table cannot be read as part of the folder"),
        ({"a.nt": '<urn:a> <urn:p> "x" .\n', "b.ttl": '@prefix ex: <urn:ex:> .\nex:a ex:p "x" .\nex:b ex:p "y\n'}, r"b\.ttl:3\b"),
    ],
    ids=["no RDF file", "a table inside", "a syntax error in the second file"],
)
def test_folder_errors_name_the_file(tmp_path: Path, files: dict[str, str], error: str) -> None:
    from kgalign.io.parsers import read_triples

    folder = tmp_path / "case"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    with pytest.raises(InputError, match=error):
        read_triples(folder)


def test_blank_nodes_of_two_files_of_a_folder_stay_apart(tmp_path: Path) -> None:
    from rdflib import BNode

    from kgalign.io.parsers import read_triples

    folder = tmp_path / "g"
    folder.mkdir()
    (folder / "1.nt").write_text('<urn:a> <urn:p> _:b1 .\n_:b1 <urn:q> "one" .\n')
    (folder / "2.nt").write_text('<urn:c> <urn:p> _:b1 .\n_:b1 <urn:q> "two" .\n')
    blanks = {o for s, p, o in read_triples(folder) if isinstance(o, BNode)}
    assert len(blanks) == 2


def test_a_folder_skips_what_is_not_its_graph_and_follows_linked_folders(tmp_path: Path, caplog) -> None:
    """A .json file (metadata, not JSON-LD) and an empty file are skipped; a symlinked
    subfolder is read once (a link back to the folder is no loop); a kgalign output
    folder inside is refused, as is a folder whose files hold no triple."""
    from kgalign.io.parsers import read_triples

    data, elsewhere = tmp_path / "data", tmp_path / "elsewhere"
    data.mkdir()
    elsewhere.mkdir()
    (data / "a.nt").write_text('<urn:a> <urn:p> "x" .\n')
    (data / "empty.ttl").write_text("")
    (data / "metadata.json").write_text('{"source": "somewhere"}')
    (elsewhere / "b.ttl").write_text('<urn:b> <urn:p> "y" .\n')
    (data / "linked").symlink_to(elsewhere, target_is_directory=True)
    (data / "loop").symlink_to(data, target_is_directory=True)
    with caplog.at_level("WARNING"):
        triples = read_triples(data)
    assert {str(s) for s, _, _ in triples} == {"urn:a", "urn:b"}
    assert any("empty.ttl: the file is empty" in r.message for r in caplog.records)
    run = data / "old-run"
    run.mkdir()
    (run / "run.json").write_text("{}")
    (run / "links.ttl").write_text("")
    with pytest.raises(InputError, match=r"old-run: a kgalign output folder inside the input folder"):
        read_triples(data)
    hollow = tmp_path / "hollow"
    hollow.mkdir()
    (hollow / "a.ttl").write_text("@prefix ex: <urn:ex:> .\n")
    with pytest.raises(InputError, match=r"hollow: the folder's 1 RDF files hold no triples"):
        read_triples(hollow)
    with pytest.raises(InputError, match=r"old-run: a kgalign output folder, not an input graph"):
        read_triples(run)
