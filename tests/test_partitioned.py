"""The entity table built by partitions (kgalign.io.partitioned) is the one a single
process builds from the whole graph: entity for entity, values in file order, folded
paths, relations, types and the count of distinct triples, whatever the number of
partitions and the size of the blocks. The partitions here are objects of this process
(InProcess); tests/test_ray_engine.py runs them as Ray actors."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kgalign.incremental.state import table_hashes
from kgalign.io import partitioned
from kgalign.io.entities import build_entity_table
from kgalign.io.entity_file import EntityFile
from kgalign.io.formats import folder_files, rdf_format
from kgalign.io.parsers import read_triples
from kgalign.io.partitioned import InProcess, Partition, PartitionFailed, blocks, build_table, line_key, node_key, owner, ranged, read_range, route

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _table(path: Path, parts: int, block_bytes: int, classes: list[str] | None = None, spill: bool = False):
    """The partitioned table of ``path`` (a file or a folder, each file read by its extension) and its prefixes."""
    files = [(p, rdf_format(p)) for p in folder_files(path)] if path.is_dir() else [(path, rdf_format(path))]
    return build_table(files, "x", classes, InProcess(parts, str(path)), block_bytes, spill=spill)


def _same_table(path: Path, parts: int, block_bytes: int, classes: list[str] | None = None) -> int:
    """Asserts the partitioned table of ``path`` equals the one-process table, and the
    prefixes those the one-process parse keeps, held in memory and taken into a file in
    pages of 7 entities; gives the table's size."""
    triples = read_triples(path)
    expected = build_entity_table(triples, "x", classes)
    for spill in (False, True):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(partitioned, "PAGE_ENTITIES", 7)
            got, prefixes = _table(path, parts, block_bytes, classes, spill)
        assert isinstance(got.entities, EntityFile) == spill
        # Taken into a file, the entities come with their content hashes, made by the partitions.
        assert got.hashes == (table_hashes(expected) if spill else None)
        assert list(got.hashes or expected.entities) == list(expected.entities)
        assert [(prefix, str(namespace)) for prefix, namespace in triples.namespaces()] == list(prefixes.items())
        assert list(got.entities) == list(expected.entities)
        assert got.triple_count == expected.triple_count
        for iri, entity in expected.entities.items():
            assert got.entities[iri] == entity, iri
            # Attribute paths keep their order too (a profile lists them in this order).
            assert list(got.entities[iri].attributes) == list(entity.attributes), iri
    return len(expected.entities)


@pytest.mark.parametrize("parts", [1, 2, 3, 5])
def test_the_persons_example_folds_its_addresses_the_same_in_any_number_of_partitions(parts) -> None:
    path = EXAMPLES / "persons" / "left.nt"
    assert _same_table(path, parts, 1024) == 60
    table = _table(path, parts, 1024)[0]
    # Two hops of label-less nodes folded into each person (address, then suburb).
    assert any(" / " in attribute for entity in table.entities.values() for attribute in entity.attributes)


def test_the_persons_example_in_turtle(tmp_path) -> None:
    assert _same_table(EXAMPLES / "persons" / "right.ttl", 3, 2048) == 60


def test_the_oaei_benchmarks_in_partitions(shared_data) -> None:
    for name in ("oaei2010_persons1/person11.nt", "oaei2010_persons1/person12.nt", "oaei2010_restaurants/restaurant1.nt"):
        assert _same_table(shared_data / name, 3, 1 << 14) > 100


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


BLANKS = """\
<http://ex/a> <http://www.w3.org/2000/01/rdf-schema#label> "Ann" .
<http://ex/a> <http://ex/address> _:addr .
_:addr <http://ex/street> "1 Main St" .
_:addr <http://ex/city> _:city .
_:city <http://ex/name> "Paris" .
_:city <http://ex/in> _:country .
_:country <http://ex/name> "France" .
_:country <http://ex/next> _:far .
_:far <http://ex/name> "too deep" .
<http://ex/b> <http://www.w3.org/2000/01/rdf-schema#label> "Bob" .
<http://ex/b> <http://ex/knows> <http://ex/a> .
<http://ex/b> <http://ex/address> _:addr .
<http://ex/b> <http://ex/street> "2 Side St" .
<http://ex/b> <http://ex/street> "2 Side St" .
<http://ex/c> <http://ex/knows> <http://ex/b> .
<http://ex/c> <http://ex/sameAddressAs> _:city .
<http://ex/c> <http://www.w3.org/1999/02/22-rdf-syntax-ns#type> <http://ex/Person> .
<http://ex/a> <http://ex/age> "41"^^<http://www.w3.org/2001/XMLSchema#integer> .
<http://ex/a> <http://ex/age> "041"^^<http://www.w3.org/2001/XMLSchema#integer> .
<http://ex/a> <http://ex/name> "Anne"@fr .
<http://ex/\\u00E9t\\u00E9> <http://ex/name> "summer" .
<http://ex/\u00e9t\u00e9> <http://ex/name> "été"@fr .
"""


@pytest.mark.parametrize("parts", [1, 2, 4, 7])
def test_blank_nodes_fold_across_partitions_up_to_the_depth_one_process_folds(tmp_path, parts) -> None:
    path = _write(tmp_path / "g.nt", BLANKS)
    # Blocks of one line or two: every subject's triples come from several blocks.
    _same_table(path, parts, 64)
    table = _table(path, parts, 64)[0]
    a = table.entities["http://ex/a"]
    assert [v.text for v in a.attributes["http://ex/address / http://ex/city / http://ex/in / http://ex/name"]] == ["France"]
    assert not any("too deep" == v.text for values in a.attributes.values() for v in values)
    assert table.entities["http://ex/c"].relations == {"http://ex/knows": ["http://ex/b"]}
    # The escaped and the plain spelling are one subject: both its values, in file order.
    assert [v.text for v in table.entities["http://ex/été"].attributes["http://ex/name"]] == ["summer", "été"]
    # The repeated triple counts once, and so do "41" and "041" as integers (one rdflib
    # term, as in one process).
    assert table.triple_count == len(BLANKS.splitlines()) - 2


def test_a_folder_keeps_each_files_blank_nodes_apart_and_merges_its_subjects(tmp_path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    _write(folder / "1.nt", '<http://ex/a> <http://ex/p> _:b1 .\n_:b1 <http://ex/v> "first" .\n<http://ex/a> <http://ex/q> "x" .\n')
    _write(folder / "2.nt", '<http://ex/z> <http://ex/p> _:b1 .\n_:b1 <http://ex/v> "second" .\n<http://ex/a> <http://ex/q> "y" .\n<http://ex/a> <http://ex/q> "x" .\n')
    for parts in (1, 2, 3):
        _same_table(folder, parts, 32)
    table, _ = _table(folder, 2, 32)
    assert [v.text for v in table.entities["http://ex/a"].attributes["http://ex/p / http://ex/v"]] == ["first"]
    assert [v.text for v in table.entities["http://ex/z"].attributes["http://ex/p / http://ex/v"]] == ["second"]
    assert [v.text for v in table.entities["http://ex/a"].attributes["http://ex/q"]] == ["x", "y"]


def test_n_quads_merge_their_graphs(tmp_path) -> None:
    path = _write(
        tmp_path / "g.nq",
        '<http://ex/a> <http://ex/p> "v" <http://ex/g1> .\n<http://ex/a> <http://ex/p> "v" <http://ex/g2> .\n<http://ex/b> <http://ex/p> "w" .\n',
    )
    assert _same_table(path, 2, 16) == 2


def test_classes_and_a_literal_free_graph(tmp_path) -> None:
    typed = _write(
        tmp_path / "typed.nt",
        "".join(
            f'<http://ex/e{i}> <http://www.w3.org/1999/02/22-rdf-syntax-ns#type> <http://ex/{"Person" if i % 3 else "Place"}> .\n'
            f'<http://ex/e{i}> <http://ex/near> <http://ex/e{(i + 1) % 20}> .\n<http://ex/e{i}> <http://ex/n> "{i}" .\n'
            for i in range(20)
        ),
    )
    assert _same_table(typed, 3, 100, classes=["http://ex/Person"]) == 13
    bare = _write(tmp_path / "bare.nt", "".join(f"<http://ex/n{i}> <http://ex/next> <http://ex/n{(i + 1) % 9}> .\n" for i in range(9)))
    # No literal in any partition: every IRI subject is an entity, even where one partition alone has none.
    assert _same_table(bare, 4, 40) == 9


def test_a_gzipped_input_is_read_in_blocks(tmp_path) -> None:
    text = (EXAMPLES / "persons" / "left.nt").read_bytes()
    path = tmp_path / "left.nt.gz"
    path.write_bytes(gzip.compress(text))
    assert b"".join(blocks(path, 500)) == text
    assert all(block.endswith(b"\n") for block in blocks(path, 500))
    assert _same_table(path, 2, 500) == 60


def test_lines_go_to_the_partition_of_their_subject() -> None:
    lines = b'<http://ex/a> <http://ex/p> "1" .\n# a comment\n\n_:x <http://ex/p> "2" .\n  <http://ex/a> <http://ex/q> "3" .\n'
    groups = route(lines, 3, 0)
    assert sum(group.count(b"\n") for group in groups) == 3
    a = owner(b"http://ex/a", 3)
    assert groups[a].count(b"<http://ex/a>") == 2
    assert line_key(b"_:x <http://ex/p> <http://ex/o> .\n", 4) == b"_:f4bx"
    from rdflib import BNode, URIRef

    assert node_key(BNode("f4bx")) == b"_:f4bx" and node_key(URIRef("http://ex/a")) == b"http://ex/a"
    assert line_key(b"# note\n", 0) is None


def test_a_line_no_partition_can_parse_makes_the_caller_load_it_in_one_process(tmp_path) -> None:
    path = _write(tmp_path / "bad.nt", '<http://ex/a> <http://ex/p> "1" .\n<http://ex/b> <http://ex/p> "2" \n')
    with pytest.raises(PartitionFailed):
        _table(path, 2, 16)[0]
    bad_iri = _write(tmp_path / "iri.nt", '<http://ex/a> <http://ex/p> <no-scheme> .\n')
    with pytest.raises(PartitionFailed):
        _table(bad_iri, 2, 16)[0]


@pytest.mark.parametrize(
    "line",
    [b"\x0c\n", b"\x0b# not a comment to N-Triples\n", b'<http://ex/\\U00110000> <http://ex/p> "x" .\n'],
    ids=["form feed", "vertical tab", "escape past U+10FFFF"],
)
def test_a_line_one_process_rejects_is_rejected_by_the_partitions_too(tmp_path, line) -> None:
    path = tmp_path / "odd.nt"
    path.write_bytes(b'<http://ex/a> <http://www.w3.org/2000/01/rdf-schema#label> "Ann" .\n' + line)
    with pytest.raises(Exception):  # noqa: B017 - whichever error the one-process load raises
        read_triples(path)
    with pytest.raises(PartitionFailed):
        _table(path, 2, 16)[0]


TURTLE = """\
@prefix ex: <http://ex/> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
ex:a rdfs:label "Ann", "Anne"@fr ; ex:address [ ex:street "1 Main St" ; ex:city [ ex:name "Paris" ] ] ; ex:knows ex:b .
ex:b rdfs:label "Bob" ; ex:age 41 ; ex:home <relative/home> ; ex:note \"\"\"two
lines\"\"\" .
<relative/home> ex:name "home" ; ex:score "1.5"^^<http://www.w3.org/2001/XMLSchema#decimal> .
ex:a ex:same "x"^^<http://www.w3.org/2001/XMLSchema#string> .
"""


@pytest.mark.parametrize("parts", [1, 2, 3])
def test_turtle_is_parsed_as_a_stream_into_lines_and_partitioned_the_same(tmp_path, parts) -> None:
    path = _write(tmp_path / "g.ttl", TURTLE)
    assert _same_table(path, parts, 40) == 2
    table, prefixes = _table(path, parts, 40)
    assert prefixes == {"ex": "http://ex/", "rdfs": "http://www.w3.org/2000/01/rdf-schema#"}
    # Anonymous nodes fold, and so does the node of a relative IRI; a long string keeps its line break.
    a, b = table.entities["http://ex/a"], table.entities["http://ex/b"]
    assert [v.text for v in a.attributes["http://ex/address / http://ex/city / http://ex/name"]] == ["Paris"]
    assert [v.text for v in b.attributes["http://ex/home / http://ex/name"]] == ["home"]
    assert [v.text for v in b.attributes["http://ex/note"]] == ["two\nlines"]


def test_a_folder_of_turtle_trig_and_n_triples(tmp_path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    _write(folder / "1.ttl", TURTLE)
    _write(folder / "2.trig", "@prefix ex: <http://other/> .\nex:g { <http://ex/a> <http://ex/q> [ <http://ex/v> \"in a graph\" ] . }\n")
    _write(folder / "3.nt", '<http://ex/b> <http://ex/q> "plain" .\n')
    assert _same_table(folder, 2, 64) == 2
    # The first file's namespace for a prefix, as one process keeps it.
    assert _table(folder, 2, 64)[1]["ex"] == "http://ex/"


def test_turtle_no_parser_accepts_makes_the_caller_load_it_in_one_process(tmp_path) -> None:
    path = _write(tmp_path / "bad.ttl", "@prefix ex: <http://ex/> .\nex:a ex:p ex:b .\nex:c ex:p \"open .\n")
    with pytest.raises(PartitionFailed):
        _table(path, 2, 16)


def test_a_partition_reports_the_first_line_of_its_error() -> None:
    """What a partition (or a Ray error, which carries a traceback) reports is one line."""
    from kgalign.errors import first_line

    traced = RuntimeError("the actor died\nTraceback (most recent call last):\n  File ...")
    assert first_line(traced) == "the actor died"
    assert first_line(traced, named=True) == "RuntimeError: the actor died"
    assert first_line(ValueError()) == "ValueError" and first_line(ValueError("\n"), named=True) == "ValueError"
    assert first_line(ValueError("\n  the line\nmore")) == "the line"


@settings(max_examples=200, deadline=None)
@given(
    lines=st.lists(st.text(alphabet="ab <>\"\r\t.é", min_size=0, max_size=30), max_size=30),
    last_newline=st.booleans(),
    cuts=st.lists(st.integers(min_value=0, max_value=1200), max_size=12),
)
def test_byte_ranges_hold_each_line_once_in_file_order(tmp_path_factory, lines, last_newline, cuts) -> None:
    """Ranges cut anywhere: each line is read by the range its first byte is in, whole."""
    data = "\n".join(lines).encode("utf-8") + (b"\n" if last_newline and lines else b"")
    path = tmp_path_factory.mktemp("ranges") / "f.nt"
    path.write_bytes(data)
    bounds = sorted({0, len(data), *(cut for cut in cuts if cut < len(data))})
    pieces = [read_range(path, start, stop) for start, stop in zip(bounds, bounds[1:])]
    assert b"".join(pieces) == data
    begin = 0
    for (start, stop), piece in zip(zip(bounds, bounds[1:]), pieces):
        if piece:  # whole lines, the first beginning inside the range
            assert start <= begin < stop and (begin == 0 or data[begin - 1 : begin] == b"\n")
            assert piece.endswith(b"\n") or begin + len(piece) == len(data)
        begin += len(piece)


@pytest.mark.parametrize("block_bytes", [256, 4096])
def test_partitions_reading_byte_ranges_build_the_table_the_driver_blocks_build(tmp_path, block_bytes) -> None:
    """The persons' N-Triples read by the partitions themselves (ranges) and sent by the
    driver (blocks): the same table, the same as one process's."""
    path = EXAMPLES / "persons" / "left.nt"
    files = [(path, "nt")]
    by_ranges, _ = build_table(files, "x", None, InProcess(3, str(path)), block_bytes)
    by_blocks, _ = build_table(files, "x", None, InProcess(3, str(path)), block_bytes, by_ranges=False)
    assert list(by_ranges.entities.items()) == list(by_blocks.entities.items()) and by_ranges.triple_count == by_blocks.triple_count
    _same_table(path, 3, block_bytes)


def test_a_partition_sees_a_file_only_as_the_driver_sees_it(tmp_path) -> None:
    path = tmp_path / "g.nt"
    path.write_text("<http://a> <http://p> <http://b> .\n")
    found = path.stat()
    part = Partition(0, 1, str(path))
    assert part.sees_file(str(path), found.st_size, found.st_mtime_ns)
    assert not part.sees_file(str(path), found.st_size + 1, found.st_mtime_ns)  # changed since
    assert not part.sees_file(str(tmp_path / "elsewhere.nt"), found.st_size, found.st_mtime_ns)  # another node
    assert ranged(path, "nt") and not ranged(tmp_path / "g.nt.gz", "nt") and not ranged(path, "turtle")


class _Counting(Partition):
    """A partition that counts the byte ranges it reads, and may append a line to the
    file after reading its first (another process writing the input meanwhile)."""

    def __init__(self, number: int, parts: int, origin: str, append: bool = False) -> None:
        super().__init__(number, parts, origin)
        self.ranges = 0
        self.append = append

    def route_range(self, path: str, start: int, stop: int, tag: int, seen=None) -> list[bytes]:
        self.ranges += 1
        routed = super().route_range(path, start, stop, tag, seen)
        if self.append and self.ranges == 1:
            with open(path, "ab") as handle:
                handle.write(b"<http://x/new> <http://x/p> \"added\" .\n")
        return routed


def test_the_partitions_read_the_ranges_and_a_file_changed_meanwhile_is_refused(tmp_path) -> None:
    path = tmp_path / "left.nt"
    path.write_bytes((EXAMPLES / "persons" / "left.nt").read_bytes())
    parts = [_Counting(k, 2, str(path)) for k in range(2)]
    table, _ = build_table([(path, "nt")], "x", None, InProcess(2, str(path), parts), 1024)
    assert sum(part.ranges for part in parts) == -(-path.stat().st_size // 1024)  # every range, once
    assert len(table.entities) == len(_table(path, 2, 1024)[0].entities)
    # Written to while the partitions read it: not a table of two versions of the file.
    parts = [_Counting(k, 2, str(path), append=True) for k in range(2)]
    with pytest.raises(PartitionFailed, match="the file changed while it was read"):
        build_table([(path, "nt")], "x", None, InProcess(2, str(path), parts), 1024)
    found = path.stat()
    with pytest.raises(PartitionFailed, match="changed"):
        read_range(path, 0, 10, (found.st_size - 1, found.st_mtime_ns))
