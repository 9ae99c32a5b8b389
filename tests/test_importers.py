"""`kgalign convert` importers and CSV/TSV tables as direct input, on real excerpts.

tests/data/dbp15k_mini holds excerpts of DBP15K fr-en and SRPRS fr-en, and
tests/data/abt_buy_mini one of Leipzig Abt-Buy (latin-1 bytes included); each folder's
README.md says where they come from.
"""

from __future__ import annotations

import csv
import gzip
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from rdflib import Graph, Literal, URIRef
from rdflib.namespace import RDF, RDFS

from kgalign.cli.main import main
from kgalign.errors import InputError
from kgalign.evaluation.metrics import read_pairs
from kgalign.io.importers import convert_dbp15k, convert_tables, read_table, table_graph
from kgalign.io.importers.terms import escape_iri, iri_term, literal_term, mint_iri, mint_segment
from kgalign.io.entities import build_entity_table, load_entities
from kgalign.io.parsers import load_graph
from kgalign.model import local_name

DATA = Path(__file__).resolve().parent / "data"
DBP = DATA / "dbp15k_mini" / "dbp_fr_en"
SRPRS = DATA / "dbp15k_mini" / "srprs_fr_en"
ABT = DATA / "abt_buy_mini"


def _id_lines(path: Path) -> dict[int, str]:
    rows = [line.rstrip("\r").split("\t") for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return {int(i): iri for i, iri in rows}


def _int_rows(path: Path) -> list[tuple[int, ...]]:
    return [tuple(int(x) for x in line.split("\t")) for line in path.read_text().splitlines() if line.strip()]


def _cli(args: list[str]):
    return CliRunner().invoke(main, ["--log-level", "warning", *args])


# --- terms ------------------------------------------------------------------------


def test_escape_iri_percent_encodes_only_forbidden_characters() -> None:
    raw = 'http://x.org/a b"c<d>e{f}g|h^i`j\\k%20l_é«»'
    escaped = escape_iri(raw)
    assert escaped == "http://x.org/a%20b%22c%3Cd%3Ee%7Bf%7Dg%7Ch%5Ei%60j%5Ck%20l_é«»"
    graph = Graph().parse(data=f"{iri_term(raw)} <urn:p> {iri_term(raw)} .", format="nt")
    assert {str(s) for s in graph.subjects()} == {escaped}


def test_literal_terms_round_trip_through_rdflib() -> None:
    texts = ['music from "the elder"', "back\\slash", "line\nbreak\r\ttab", "bell\x07 and \x7f", "Divx® «x» 東京"]
    doc = "".join(f"<urn:s{i}> <urn:p> {literal_term(t, 'en' if i % 2 else None)} .\n" for i, t in enumerate(texts))
    for fmt in ("nt", "turtle"):
        graph = Graph().parse(data=doc, format=fmt)
        for i, text in enumerate(texts):
            assert graph.value(URIRef(f"urn:s{i}"), URIRef("urn:p")) == Literal(text, lang="en" if i % 2 else None)
    with pytest.raises(InputError, match="language tag"):
        literal_term("x", "not a tag")


def test_minted_segments_keep_the_iri_in_one_piece() -> None:
    assert mint_segment("Abt") == "Abt"
    assert mint_segment("a:b/c#d e%f") == "a%3Ab%2Fc%23d%20e%25f"
    iri = mint_iri("table", "my table", "id:1/2")
    assert iri == "urn:kgalign:table:my%20table:id%3A1%2F2"
    assert local_name(iri) == "id%3A1%2F2"
    assert escape_iri(iri) == iri


# --- DBP15K / SRPRS ---------------------------------------------------------------


@pytest.fixture(scope="module")
def dbp_out(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dbp")
    convert_dbp15k(DBP, out)
    return out


def test_dbp15k_graphs_hold_every_entity_name_and_triple(dbp_out: Path) -> None:
    names = {i: " ".join(tokens) for i, tokens in json.loads((DBP / "translated_names.json").read_text(encoding="utf-8"))}
    for side, out_name in (("1", "left.ttl"), ("2", "right.ttl")):
        entities = _id_lines(DBP / f"ent_ids_{side}")
        triples = _int_rows(DBP / f"triples_{side}")
        graph = Graph().parse(dbp_out / out_name, format="turtle")
        expected = {(URIRef(entities[h]), URIRef(f"urn:kgalign:relation:{r}"), URIRef(entities[t])) for h, r, t in triples}
        relation_triples = {t for t in graph if t[1] != RDFS.label}
        assert relation_triples == expected
        labels = dict(graph.subject_objects(RDFS.label))
        assert set(labels) == {URIRef(iri) for iri in entities.values()}
        for key, iri in entities.items():
            if names[key]:
                assert labels[URIRef(iri)] == Literal(names[key], lang="en")
        table = build_entity_table(graph, out_name)
        assert len(table) == len(entities)


def test_dbp15k_quotes_in_names_and_empty_names(dbp_out: Path) -> None:
    graph = Graph().parse(dbp_out / "left.ttl", format="turtle")
    elder = URIRef("http://fr.dbpedia.org/resource/Music_from_«_The_Elder_»")
    assert graph.value(elder, RDFS.label) == Literal('music from "the elder"', lang="en")
    # translated_names.json gives entity 27974 no tokens: its label is the IRI's local name, "_" as space.
    assert graph.value(URIRef("http://fr.dbpedia.org/resource/(_)"), RDFS.label) == Literal("( )")


def test_dbp15k_gold_split_is_first_30_percent_of_ref(dbp_out: Path) -> None:
    left, right = _id_lines(DBP / "ent_ids_1"), _id_lines(DBP / "ent_ids_2")
    ref = [(left[a], right[b]) for a, b in _int_rows(DBP / "ref_ent_ids")]
    assert len(ref) == 40
    train, test, every = (read_pairs(dbp_out / f"gold{s}.tsv") for s in ("_train", "_test", ""))
    assert train == ref[:12] and test == ref[12:] and every == ref


def test_srprs_uses_rel_ids_and_sup_ent_ids(tmp_path: Path) -> None:
    assert b"\r\n" in (SRPRS / "ent_ids_2").read_bytes()  # the published files end lines in CRLF
    report = convert_dbp15k(SRPRS, tmp_path)
    relations = {side: _id_lines(SRPRS / f"rel_ids_{side}") for side in ("1", "2")}
    for side, out_name in (("1", "left.ttl"), ("2", "right.ttl")):
        entities = _id_lines(SRPRS / f"ent_ids_{side}")
        graph = Graph().parse(tmp_path / out_name, format="turtle")
        expected = {
            (URIRef(entities[h]), URIRef(relations[side][r]), URIRef(entities[t])) for h, r, t in _int_rows(SRPRS / f"triples_{side}")
        }
        assert {t for t in graph if t[1] != RDFS.label} == expected
        assert all("\r" not in str(node) for triple in graph for node in triple)
        assert report.counts[f"{'left' if side == '1' else 'right'}_entities"] == len(entities)
    left, right = _id_lines(SRPRS / "ent_ids_1"), _id_lines(SRPRS / "ent_ids_2")
    assert read_pairs(tmp_path / "gold_train.tsv") == [(left[a], right[b]) for a, b in _int_rows(SRPRS / "sup_ent_ids")]
    assert read_pairs(tmp_path / "gold_test.tsv") == [(left[a], right[b]) for a, b in _int_rows(SRPRS / "ref_ent_ids")]
    assert len(read_pairs(tmp_path / "gold.tsv")) == 40


def test_dbp15k_iris_with_forbidden_characters_are_encoded_everywhere(tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(DBP, src)
    ent = src / "ent_ids_1"
    bad = 'http://fr.dbpedia.org/resource/Saint Joseph "de" <Coleraine>{x}|^`\\'
    ent.write_text(ent.read_text(encoding="utf-8").replace("http://fr.dbpedia.org/resource/Saint-Joseph-de-Coleraine", bad), encoding="utf-8")
    convert_dbp15k(src, tmp_path / "out")
    encoded = "http://fr.dbpedia.org/resource/Saint%20Joseph%20%22de%22%20%3CColeraine%3E%7Bx%7D%7C%5E%60%5C"
    graph = Graph().parse(tmp_path / "out" / "left.ttl", format="turtle")
    assert graph.value(URIRef(encoded), RDFS.label) == Literal("saint joseph de coleraine", lang="en")
    assert (encoded, "http://dbpedia.org/resource/Saint-Joseph-de-Coleraine,_Quebec") in read_pairs(tmp_path / "out" / "gold.tsv")


@pytest.mark.parametrize(
    "file,old,new,message",
    [
        ("triples_1", "24771\t79\t28184", "24771\t79\t99999999", r"triples_1:1: entity id 99999999 is not in ent_ids_1"),
        ("triples_2", None, "1\t2\n", r"triples_2:\d+: expected 3 tab-separated ids, found 2"),
        ("ent_ids_1", "18\thttp", "x18\thttp", r"ent_ids_1:2: id 'x18' is not an integer id"),
        ("ref_ent_ids", "18\t10518", "18\t18", r"ref_ent_ids:2: id 18 is not in ent_ids_2"),
        ("translated_names.json", "[[", "[[[", r"translated_names.json:1: not valid JSON"),
    ],
)
def test_dbp15k_errors_name_file_and_line(tmp_path: Path, file: str, old: str | None, new: str, message: str) -> None:
    src = tmp_path / "src"
    shutil.copytree(DBP, src)
    path = src / file
    text = path.read_text(encoding="utf-8")
    path.write_text(text + new if old is None else text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(InputError, match=message):
        convert_dbp15k(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # every input is checked before anything is written


def test_cli_convert_dbp15k(tmp_path: Path) -> None:
    result = _cli(["convert", "dbp15k", str(DBP), "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "51 left entities" in result.output and "50 right entities" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gold.tsv", "gold_test.tsv", "gold_train.tsv", "left.ttl", "right.ttl"]
    missing = _cli(["convert", "dbp15k", str(tmp_path), "-o", str(tmp_path / "x")])
    assert missing.exit_code == 1
    assert missing.stderr.strip().count("\n") == 0 and "ent_ids_1: no such file" in missing.stderr


def test_cli_convert_dbp15k_with_a_bad_gold_line_writes_nothing(tmp_path: Path) -> None:
    """A pair naming an unknown id (checked last) stops the conversion before left.ttl
    and right.ttl are written: into a new folder or over an earlier conversion."""
    src = tmp_path / "src"
    shutil.copytree(DBP, src)
    with (src / "ref_ent_ids").open("a", encoding="utf-8") as handle:
        handle.write("0\t99\n")
    lines = len((src / "ref_ent_ids").read_text(encoding="utf-8").splitlines())
    for out in (tmp_path / "new", tmp_path / "earlier"):
        if out.name == "earlier":
            assert _cli(["convert", "dbp15k", str(DBP), "-o", str(out)]).exit_code == 0
        before = {p.name: p.read_bytes() for p in out.iterdir()} if out.exists() else None
        result = _cli(["convert", "dbp15k", str(src), "-o", str(out)])
        assert result.exit_code == 1
        assert result.stderr.strip() == f"kgalign: error: {src / 'ref_ent_ids'}:{lines}: id 99 is not in ent_ids_2 (pairs are 'id1<TAB>id2')"
        assert ({p.name: p.read_bytes() for p in out.iterdir()} if out.exists() else None) == before


# --- tables -----------------------------------------------------------------------


def test_table_encoding_is_detected_and_latin1_never_fails(tmp_path: Path) -> None:
    abt = read_table(ABT / "Abt.csv")
    assert abt.encoding == "cp1252" and abt.id_column == "id" and len(abt.rows) == 30
    assert abt.columns == ["id", "name", "description", "price"]
    assert any("®" in row.cells.get("description", "") for row in abt.rows)
    buy = read_table(ABT / "Buy.csv")
    assert buy.encoding == "utf-8" and len(buy.rows) == 30
    # 0x81 is undefined in cp1252: the file is read as latin-1.
    odd = tmp_path / "odd.csv"
    odd.write_bytes((ABT / "Abt.csv").read_bytes().replace(b"\xae", b"\x81", 1))
    assert read_table(odd).encoding == "latin-1"


@pytest.fixture(scope="module")
def abt_out(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("abt")
    convert_tables(ABT / "Abt.csv", ABT / "Buy.csv", out, ABT / "abt_buy_perfectMapping.csv")
    return out


def test_converted_tables_are_the_graph_run_reads(abt_out: Path) -> None:
    for side, source in (("left", "Abt.csv"), ("right", "Buy.csv")):
        written = Graph().parse(abt_out / f"{side}.ttl", format="turtle")
        assert set(written) == set(table_graph(ABT / source))
    left = Graph().parse(abt_out / "left.ttl", format="turtle")
    row = URIRef("urn:kgalign:table:Abt:9071")
    assert (row, RDF.type, URIRef("urn:kgalign:table:Abt")) in left
    assert str(left.value(row, URIRef("urn:kgalign:table:Abt#name"))) == "Sony 400 Disc MegaStorage CD Changer - CDPCX455"
    with (ABT / "Abt.csv").open(encoding="cp1252", newline="") as handle:
        cells = sum(1 for r in list(csv.reader(handle))[1:] for v in r[1:] if v.strip())
    assert len(left) == 30 + cells


def test_mapping_becomes_gold_of_minted_iris(abt_out: Path) -> None:
    with (ABT / "abt_buy_perfectMapping.csv").open() as handle:
        rows = list(csv.reader(handle))[1:]
    expected = [(f"urn:kgalign:table:Abt:{a}", f"urn:kgalign:table:Buy:{b}") for a, b in rows]
    assert read_pairs(abt_out / "gold.tsv") == expected
    left = Graph().parse(abt_out / "left.ttl")
    right = Graph().parse(abt_out / "right.ttl")
    assert all((URIRef(a), None, None) in left and (URIRef(b), None, None) in right for a, b in expected)


def test_other_id_column_tsv_semicolons_and_gzip(tmp_path: Path) -> None:
    with (ABT / "Buy.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    for name, delimiter in (("buy.tsv", "\t"), ("buy_semi.csv", ";")):
        with (tmp_path / name).open("w", encoding="utf-8", newline="") as handle:
            csv.writer(handle, delimiter=delimiter).writerows(rows)
    gz = tmp_path / "buy.tsv.gz"
    gz.write_bytes(gzip.compress((tmp_path / "buy.tsv").read_bytes()))
    def cells(graph: Graph) -> set[tuple[str, str, str]]:
        return {(s.split(":")[-1], p.split("#")[-1], str(o)) for s, p, o in graph if isinstance(o, Literal)}

    reference = cells(table_graph(ABT / "Buy.csv"))
    assert len(reference) == 129 - 30
    for path in (tmp_path / "buy.tsv", tmp_path / "buy_semi.csv", gz):
        assert cells(load_graph(path)) == reference
    # Names as ids: spaces, '/' and ':' are percent-encoded, the IRIs parse.
    by_name = read_table(ABT / "Buy.csv", id_column="name")
    graph = table_graph(ABT / "Buy.csv", id_column="name")
    assert len({s for s in graph.subjects(RDF.type, None)}) == 30
    assert len(Graph().parse(data=graph.serialize(format="nt"), format="nt")) == len(graph)
    first = by_name.rows[0]
    iri = by_name.entity_iri(first.id)
    assert " " not in iri and "/" not in iri.removeprefix("urn:kgalign:table:Buy:")
    assert "id" in first.cells and "name" not in first.cells
    _, table = load_entities(ABT / "Buy.csv", "right", id_column="name")
    assert iri in table.entities


@pytest.mark.parametrize(
    "mutate,message",
    [
        (lambda lines: lines[:3] + [lines[3] + ',"extra"'] + lines[4:], r"Abt\.csv:4: expected 4 cells as in the header \(line 1\), found 5"),
        (lambda lines: lines[:5] + [lines[2]] + lines[5:], r"Abt\.csv:6: duplicate id '\d+' in column 'id' \(first on line 3\)"),
        (lambda lines: lines[:2] + ["," + lines[2].split(",", 1)[1]] + lines[3:], r"Abt\.csv:3: empty id in column 'id'"),
        (lambda lines: lines[:1], r"Abt\.csv: the table has a header but no rows"),
    ],
)
def test_table_errors_name_file_and_line(tmp_path: Path, mutate, message: str) -> None:
    lines = (ABT / "Abt.csv").read_bytes().decode("cp1252").splitlines()
    bad = tmp_path / "Abt.csv"
    bad.write_bytes("\n".join(mutate(lines)).encode("cp1252") + b"\n")
    with pytest.raises(InputError, match=message):
        read_table(bad)
    with pytest.raises(InputError, match=message):
        load_graph(bad)


def test_missing_id_column_and_unmatched_mapping(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"Abt\.csv:1: no id column 'sku' in the header \(columns: id, name, description, price\)"):
        read_table(ABT / "Abt.csv", id_column="sku")
    swapped = tmp_path / "swapped.csv"
    swapped.write_text("\n".join(",".join(reversed(line.split(","))) for line in (ABT / "abt_buy_perfectMapping.csv").read_text().splitlines()))
    with pytest.raises(InputError, match="no pair names an id of Abt.csv"):
        convert_tables(ABT / "Abt.csv", ABT / "Buy.csv", tmp_path / "out", swapped)


def test_cli_convert_tables(tmp_path: Path) -> None:
    result = _cli(["convert", "tables", str(ABT / "Abt.csv"), str(ABT / "Buy.csv"), "--mapping", str(ABT / "abt_buy_perfectMapping.csv"), "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "30 left entities" in result.output and "30 gold pairs" in result.output
    assert len(read_pairs(tmp_path / "gold.tsv")) == 30


def test_convert_tables_leaves_no_stale_gold_and_no_partial_output(tmp_path: Path) -> None:
    """Converting again without --mapping removes the earlier conversion's gold.tsv (it
    would be read as the gold of the new tables); a bad mapping writes nothing."""
    out = tmp_path / "out"
    mapped = ["convert", "tables", str(ABT / "Abt.csv"), str(ABT / "Buy.csv"), "--mapping", str(ABT / "abt_buy_perfectMapping.csv"), "-o", str(out)]
    assert _cli(mapped).exit_code == 0
    other = tmp_path / "Other.csv"
    shutil.copy(ABT / "Buy.csv", other)
    result = _cli(["convert", "tables", str(ABT / "Abt.csv"), str(other), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["left.ttl", "right.ttl"]
    assert "urn:kgalign:table:Other:" in (out / "right.ttl").read_text(encoding="utf-8")
    (out / "notes.txt").write_text("mine")  # not a file the converter names: kept
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    bad = tmp_path / "bad.csv"
    bad.write_text("nothing,known\n")
    failed = _cli(["convert", "tables", str(ABT / "Abt.csv"), str(ABT / "Buy.csv"), "--mapping", str(bad), "-o", str(out)])
    assert failed.exit_code == 1 and "no pair names an id" in failed.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert _cli(["convert", "tables", str(ABT / "Abt.csv"), str(other), "-o", str(out)]).exit_code == 0
    assert sorted(p.name for p in out.iterdir()) == ["left.ttl", "notes.txt", "right.ttl"]


# --- CSV input to `kgalign run` -----------------------------------------------------


def test_run_reads_csv_tables_directly(abt_out: Path, tmp_path: Path) -> None:
    csv_out, ttl_out = tmp_path / "csv", tmp_path / "ttl"
    gold = abt_out / "gold.tsv"
    common = ["--judge", "none", "--gold", str(gold), "--quiet"]
    result = _cli(["run", str(ABT / "Abt.csv"), str(ABT / "Buy.csv"), "-o", str(csv_out), *common])
    assert result.exit_code == 0, result.output
    assert "links from 30 x 30 entities" in result.output
    metrics = json.loads((csv_out / "metrics.json").read_text())
    assert metrics["gold_pairs_not_in_graphs"] == 0
    assert metrics["predicted"] >= 27 and metrics["precision"] >= 0.95 and metrics["f1"] >= 0.9
    links = set(read_pairs(csv_out / "links.ttl"))
    assert len(links) == metrics["predicted"] and len(links & set(read_pairs(gold))) == metrics["true_positives"]
    # The converted Turtle gives the same entities, hence the same links.
    result = _cli(["run", str(abt_out / "left.ttl"), str(abt_out / "right.ttl"), "-o", str(ttl_out), *common])
    assert result.exit_code == 0, result.output
    assert set(read_pairs(ttl_out / "links.ttl")) == links


def test_run_csv_errors_are_one_line_with_exit_code_1(tmp_path: Path) -> None:
    lines = (ABT / "Buy.csv").read_text(encoding="utf-8").splitlines()
    bad = tmp_path / "Buy.csv"
    bad.write_text("\n".join(lines[:7] + ["123,only two"] + lines[7:]) + "\n", encoding="utf-8")
    result = _cli(["run", str(ABT / "Abt.csv"), str(bad), "-o", str(tmp_path / "out"), "--judge", "none", "--quiet"])
    assert result.exit_code == 1
    assert result.stderr.strip() == f"kgalign: error: {bad}:8: expected 5 cells as in the header (line 1), found 2"
    result = _cli(["run", str(ABT / "Abt.csv"), str(ABT / "Buy.csv"), "-o", str(tmp_path / "out"), "--judge", "none", "--id-column", "sku"])
    assert result.exit_code == 1
    assert result.stderr.strip().startswith(f"kgalign: error: {ABT / 'Abt.csv'}:1: no id column 'sku'")
    same = tmp_path / "other"
    same.mkdir()
    shutil.copy(ABT / "Abt.csv", same / "Abt.csv")
    result = _cli(["run", str(ABT / "Abt.csv"), str(same / "Abt.csv"), "-o", str(tmp_path / "out2"), "--judge", "none"])
    assert result.exit_code == 1 and "same table name 'Abt'" in result.stderr
