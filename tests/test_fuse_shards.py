"""The fused graph and its provenance as shards (kgalign.fusion.shards): each fusion
partition writes its rows, and the shards together hold what fused.ttl and
provenance.trig hold. The partitions are objects of this process here;
tests/test_ray_engine.py has Ray actors write them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from rdflib import Dataset, URIRef

from kgalign.errors import KgalignError
from kgalign.evaluation.metrics import read_pairs
from kgalign.fusion.export import DROPPED_GRAPH, provenance_dataset, provenance_header, write_dataset, write_fused
from kgalign.fusion.fuse import choose_canonical, cluster_links, same_as_pairs
from kgalign.fusion.partitioned import FusePartition, fuse_partitioned
from kgalign.fusion.shards import TOKEN_FILE, ShardFolder, remove_stale, sees
from kgalign.io.atomic import deferred_renames, replace_later
from kgalign.io.formats import rdf_format
from kgalign.io.partitioned import InProcess
from kgalign.model import Link

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
RUN = URIRef("urn:kgalign:run/test")


@pytest.fixture(autouse=True)
def _grouped_turtle(monkeypatch) -> None:
    """fused.ttl by the grouped writer (rdflib's pretty Turtle stops at 100 triples here),
    as it is past 5,000 triples, where the partitions fuse."""
    import kgalign.io.turtle as turtle

    monkeypatch.setattr(turtle, "PRETTY_LIMIT", 100)


def _fuse(tmp_path: Path, parts: int = 3, limit: int | None = None, conflicts: str = "keep-all", token: str | None = None):
    """The persons example fused by ``parts`` in-process partitions, with shards staged in
    tmp_path/stage (``token``: the driver's token replaced, as on a node whose folder
    of that name is another one)."""
    folder = EXAMPLES / "persons"
    links = [Link(a, b, 1.0) for a, b in read_pairs(folder / "gold.tsv")]
    clusters = cluster_links(links)
    mapping = choose_canonical(clusters, links, "left")
    exchange = InProcess(parts, partitions=[FusePartition(k, parts, mapping, same_as_pairs(clusters, mapping), conflicts) for k in range(parts)])
    shards = ShardFolder(tmp_path / "stage", parts)
    if token is not None:
        shards.token = token
    sides = [("left", [(folder / "left.nt", "nt")]), ("right", [(folder / "right.ttl", rdf_format(folder / "right.ttl"))])]
    fusion = fuse_partitioned(sides, mapping, clusters, [], exchange, 4096, chunk_rows=7, shards=shards, single_files_limit=limit)
    return fusion, shards


def _blocks(text: str) -> list[str]:
    """A Turtle text of full forms (no prefixes) as its subject blocks, sorted."""
    return sorted(block for block in text.split(" .\n") if block.strip())


def _saved(fusion, shards: ShardFolder, outdir: Path) -> None:
    outdir.mkdir(parents=True, exist_ok=True)
    with deferred_renames():
        default, dropped = provenance_header(fusion, RUN, "left", "right")
        shards.save(outdir, default, dropped, DROPPED_GRAPH)
    shards.saved(outdir)


def _quads(*paths: Path) -> set:
    dataset = Dataset()
    for path in paths:
        dataset.parse(path, format="trig")
    quads = set(dataset.quads((None, None, None, None)))
    assert not any(term.startswith("_:") or type(term).__name__ == "BNode" for quad in quads for term in quad[:3])
    return {(s, p, o, str(g.identifier if hasattr(g, "identifier") else g)) for s, p, o, g in quads}


@pytest.mark.parametrize("parts", [1, 3])
def test_the_shards_hold_the_fused_graph_and_its_provenance(tmp_path, parts) -> None:
    fusion, shards = _fuse(tmp_path, parts, conflicts="most-specific")
    assert fusion.single_files and fusion.rows is not None and len(fusion) == len(shards) > 1900
    assert shards.by_driver == []
    write_fused(fusion, tmp_path / "fused.ttl", fusion.rows)
    write_dataset(provenance_dataset(fusion, RUN, "left", "right", fusion.rows), tmp_path / "provenance.trig")
    out = tmp_path / "out"
    _saved(fusion, shards, out)
    assert not shards.path.exists()  # the staging folder goes once saved
    fused = sorted((out / "fused").iterdir())
    assert [path.name for path in fused] == [f"part-{k:05d}.ttl" for k in range(parts)]
    # Every subject's block is in one shard, as fused.ttl writes it.
    assert _blocks("".join(path.read_text() for path in fused)) == _blocks((tmp_path / "fused.ttl").read_text())
    provenance = sorted((out / "provenance").iterdir())
    assert [path.name for path in provenance] == [f"part-{k:05d}.trig" for k in range(parts)] + ["run.trig"]
    assert _quads(*provenance) == _quads(tmp_path / "provenance.trig")
    assert shards.describe() == {"files": parts, "folders": ["fused", "provenance"], "written_by_partitions": parts, "written_by_driver": 0}


def test_past_the_limit_only_the_shards_hold_the_rows(tmp_path) -> None:
    whole, shards = _fuse(tmp_path / "whole", 2)
    fusion, sharded = _fuse(tmp_path / "sharded", 2, limit=len(whole) - 1)
    assert fusion.rows is None and not fusion.single_files and len(fusion) == len(whole)
    with pytest.raises(TypeError):
        fusion.graph  # noqa: B018
    for got, folder, name in ((whole, shards, "whole"), (fusion, sharded, "sharded")):
        _saved(got, folder, tmp_path / name / "out")
    for name in ("fused/part-00000.ttl", "fused/part-00001.ttl", "provenance/part-00001.trig"):
        assert (tmp_path / "sharded/out" / name).read_bytes() == (tmp_path / "whole/out" / name).read_bytes()
    # At the limit the single files are still written.
    at, _ = _fuse(tmp_path / "at", 2, limit=len(whole))
    assert at.single_files and at.rows is not None


def test_partitions_that_do_not_see_the_folder_leave_their_shards_to_the_driver(tmp_path) -> None:
    seen, shards = _fuse(tmp_path / "seen", 3)
    _saved(seen, shards, tmp_path / "seen/out")
    for limit in (None, 0):  # with the single files spilled, and without
        fusion, unseen = _fuse(tmp_path / f"unseen-{limit}", 3, limit=limit, token="another node's folder")
        assert unseen.by_driver == [0, 1, 2]
        assert fusion.single_files == (limit is None)
        out = tmp_path / f"unseen-{limit}/out"
        _saved(fusion, unseen, out)
        for folder in ("fused", "provenance"):
            for path in (tmp_path / "seen/out" / folder).glob("part-*"):
                assert (out / folder / path.name).read_bytes() == path.read_bytes()
        assert unseen.describe()["written_by_driver"] == 3


def test_saved_twice_the_second_folder_gets_a_copy(tmp_path) -> None:
    fusion, shards = _fuse(tmp_path, 2)
    _saved(fusion, shards, tmp_path / "one")
    _saved(fusion, shards, tmp_path / "two")
    for folder in ("fused", "provenance"):
        one, two = (sorted(p.name for p in (tmp_path / out / folder).iterdir()) for out in ("one", "two"))
        assert one == two and len(one) >= 2
        for name in one:
            assert (tmp_path / "one" / folder / name).read_bytes() == (tmp_path / "two" / folder / name).read_bytes()


def test_a_failed_save_leaves_the_earlier_shards_and_can_be_tried_again(tmp_path) -> None:
    out = tmp_path / "out"
    (out / "fused").mkdir(parents=True)
    (out / "fused" / "part-00000.ttl").write_text("<urn:old> <urn:p> <urn:o> .\n")
    fusion, shards = _fuse(tmp_path, 2, limit=0)  # the shards are the only copy of the rows
    with pytest.raises(RuntimeError), deferred_renames():
        default, dropped = provenance_header(fusion, RUN, "left", "right")
        shards.save(out, default, dropped, DROPPED_GRAPH)
        raise RuntimeError("a later writer failed")
    assert [p.name for p in (out / "fused").iterdir()] == ["part-00000.ttl"]
    assert "urn:old" in (out / "fused" / "part-00000.ttl").read_text()
    assert not (out / "provenance").exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    # The staged shards are still there: saved again, they replace the old folder whole.
    _saved(fusion, shards, out)
    assert sorted(p.name for p in (out / "fused").iterdir()) == ["part-00000.ttl", "part-00001.ttl"]
    assert "urn:old" not in (out / "fused" / "part-00000.ttl").read_text()
    assert (out / "provenance" / "run.trig").is_file()
    assert not [p for p in out.iterdir() if p.name.startswith(".")] and not shards.path.exists()


def test_a_folder_of_that_name_with_other_files_is_not_replaced(tmp_path) -> None:
    out = tmp_path / "out"
    (out / "provenance").mkdir(parents=True)
    (out / "provenance" / "notes.txt").write_text("mine")
    fusion, shards = _fuse(tmp_path, 2)
    with pytest.raises(KgalignError, match=r"provenance: holds files kgalign did not write") as caught, deferred_renames():
        default, dropped = provenance_header(fusion, RUN, "left", "right")
        shards.save(out, default, dropped, DROPPED_GRAPH)
    assert "\n" not in str(caught.value)
    assert [p.name for p in out.iterdir()] == ["provenance"] and (out / "provenance" / "notes.txt").read_text() == "mine"


def test_the_shards_share_blank_node_labels_and_concatenated_are_the_fused_graph(tmp_path) -> None:
    """A blank node's own rows are in the partition of its label, the rows naming it in
    their subject's: one label, in several shards. Concatenated (no prefixes, so plain
    concatenation is a Turtle document), they are fused.ttl's graph."""
    from rdflib import Graph
    from rdflib.compare import isomorphic

    left, right = tmp_path / "l.nt", tmp_path / "r.nt"
    left.write_text("".join(f'<http://l/{i}> <http://ex/addr> _:a{i} .\n_:a{i} <http://ex/city> "City {i}" .\n_:a{i} <http://ex/zip> "{i:05d}" .\n' for i in range(60)))
    right.write_text("".join(f'<http://r/{i}> <http://ex/addr> _:a{i} .\n_:a{i} <http://ex/city> "Town {i}" .\n' for i in range(60)))
    links = [Link(f"http://l/{i}", f"http://r/{i}", 1.0) for i in range(60)]
    clusters = cluster_links(links)
    mapping = choose_canonical(clusters, links, "left")
    exchange = InProcess(3, partitions=[FusePartition(k, 3, mapping, same_as_pairs(clusters, mapping)) for k in range(3)])
    shards = ShardFolder(tmp_path / "stage", 3)
    fusion = fuse_partitioned([("left", [(left, "nt")]), ("right", [(right, "nt")])], mapping, clusters, [], exchange, 4096, shards=shards)
    write_fused(fusion, tmp_path / "fused.ttl", fusion.rows)
    parts = sorted((shards.path / "fused").iterdir())
    labels = [{line.split()[0] for line in part.read_text().splitlines() if line.startswith("_:")} | set(re.findall(r"_:\w+", part.read_text())) for part in parts]
    assert sum(len(found) for found in labels) > len(set().union(*labels)) == 120  # labels shared between shards
    whole = Graph().parse(data="".join(part.read_text() for part in parts), format="turtle")
    assert len(whole) == len(fusion) and isomorphic(whole, Graph().parse(tmp_path / "fused.ttl", format="turtle"))


def test_a_staging_folder_that_cannot_be_made_stops_in_one_line(tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(Exception, match=r"file.*cannot make the shards' folder there") as caught:
        ShardFolder(blocker / "stage", 2)
    assert "\n" not in str(caught.value)


def test_the_staging_folder_goes_with_the_fusion(tmp_path) -> None:
    fusion, shards = _fuse(tmp_path, 2)
    stage = shards.path
    assert (stage / TOKEN_FILE).is_file() and (stage / "fused" / "part-00001.ttl").is_file()
    del fusion, shards
    import gc

    gc.collect()
    assert not stage.exists()


def test_stale_shards_are_removed_and_other_files_kept(tmp_path, caplog) -> None:
    (tmp_path / "fused").mkdir()
    (tmp_path / "fused" / "part-00000.ttl").write_text("")
    (tmp_path / "provenance").mkdir()
    (tmp_path / "provenance" / "notes.txt").write_text("mine")
    remove_stale(tmp_path)
    assert not (tmp_path / "fused").exists()
    assert (tmp_path / "provenance" / "notes.txt").read_text() == "mine"
    assert re.search(r"provenance: holds files kgalign did not write", caplog.text)


def test_a_folder_replaces_a_folder_only_when_the_block_succeeds(tmp_path) -> None:
    target = tmp_path / "target"
    target.mkdir()
    (target / "old").write_text("old")
    new = tmp_path / "new"
    new.mkdir()
    (new / "a").write_text("a")
    with pytest.raises(KeyError), deferred_renames():
        replace_later(new, target)
        raise KeyError("boom")
    assert not new.exists() and (target / "old").read_text() == "old"
    new.mkdir()
    (new / "b").write_text("b")
    with deferred_renames():
        replace_later(new, target)
        assert (target / "old").exists()  # not before the block ends
    assert [p.name for p in target.iterdir()] == ["b"]
    assert [p.name for p in tmp_path.iterdir()] == ["target"]


def test_a_relative_staging_folder_is_made_absolute(tmp_path, monkeypatch) -> None:
    """Actors resolve a path from their own working directory: the token's path is absolute."""
    monkeypatch.chdir(tmp_path)
    shards = ShardFolder("relative/stage", 1)
    assert shards.path.is_absolute() and shards.path.parent == tmp_path / "relative" / "stage"
    assert sees(str(shards.path), shards.token) and not sees(str(shards.path), "another")


def test_an_output_folder_with_a_foreign_fused_folder_stops_before_any_work(tmp_path) -> None:
    from helpers import cli

    out = tmp_path / "out"
    (out / "fused").mkdir(parents=True)
    (out / "fused" / "notes.txt").write_text("mine")
    folder = EXAMPLES / "persons"
    done = cli(["run", folder / "left.nt", folder / "right.ttl", "-o", out, "--quiet"])
    assert done.exit_code != 0 and "holds other files (fused)" in done.output
    assert sorted(p.name for p in out.iterdir()) == ["fused"]
    # A folder of shards an earlier run wrote is kgalign's own: a run without shards removes it.
    (out / "fused" / "notes.txt").unlink()
    (out / "fused" / "part-00000.ttl").write_text("<urn:a> <urn:p> <urn:o> .\n")
    done = cli(["run", folder / "left.nt", folder / "right.ttl", "-o", out, "--quiet"])
    assert done.exit_code == 0, done.output
    assert not (out / "fused").exists() and (out / "fused.ttl").is_file()
