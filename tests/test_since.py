"""`kgalign run --since OLD`: a run on changed inputs against an earlier run, on small real excerpts.

The persons example (OAEI Person1, 60 against 60): entities added, changed and removed on
each side; a removal that splits a cluster (one-to-many data); a run with no change that
asks the judge nothing; corrupt and foreign OLD folders.
"""

from __future__ import annotations

import gzip
import json
import random
from collections import defaultdict
from pathlib import Path

import pytest
from rdflib import Graph, Literal, URIRef

from bench.make_cardinality import add_copies, write_sorted
from kgalign.config import AlignConfig
from kgalign.errors import ConfigError
from kgalign.evaluation.metrics import read_pairs
from kgalign.incremental.since import ASKED_REASONS, summary_line
from kgalign.incremental.state import STATE_VERSION, entity_hash
from kgalign.io.entities import load_entities
from kgalign.judging.testing import ScriptedJudge, pick
from kgalign.pipeline import align
from tests.helpers import cli

PERSON2 = URIRef("http://www.okkam.org/ontology_person2.owl#Person")
# The persons are the entities (without it, the address of a person removed from a graph
# would become an entity of its own: a node no one points to).
CLASSES = ["--class", "http://www.okkam.org/ontology_person1.owl#Person", "--class", str(PERSON2)]


def _without(graph: Graph, subjects: list[URIRef]) -> Graph:
    kept = Graph()
    for triple in graph:
        if triple[0] not in subjects:
            kept.add(triple)
    return kept


def _changed(graph: Graph, subject: URIRef) -> Graph:
    """``graph`` with one literal of ``subject`` edited."""
    edited = Graph()
    done = False
    for s, p, o in graph:
        if s == subject and isinstance(o, Literal) and str(o) and not done:
            o, done = Literal(str(o) + "x"), True
        edited.add((s, p, o))
    assert done
    return edited


@pytest.fixture(scope="module")
def versions(persons, tmp_path_factory) -> dict:
    """Base and final versions of both sides: final = base + 3 persons added, 1 changed, 1 removed, on each side."""
    folder = tmp_path_factory.mktemp("since")
    gold = read_pairs(persons["gold"])
    left, right = Graph().parse(persons["left"]), Graph().parse(persons["right"])
    left_added, right_added = [URIRef(a) for a, _ in gold[:3]], [URIRef(b) for _, b in gold[3:6]]
    left_changed, right_changed = URIRef(gold[10][0]), URIRef(gold[11][1])
    left_removed, right_removed = URIRef(gold[20][0]), URIRef(gold[21][1])
    paths = {}
    for name, graph in (
        ("left-base", _without(left, left_added)),
        ("right-base", _without(right, right_added)),
        ("left-final", _without(_changed(left, left_changed), [left_removed])),
        ("right-final", _without(_changed(right, right_changed), [right_removed])),
    ):
        paths[name] = folder / f"{name}.nt"
        write_sorted(graph, paths[name])
    return {
        "paths": paths,
        "gold": persons["gold"],
        "added": {"left": {str(x) for x in left_added}, "right": {str(x) for x in right_added}},
        "changed": {"left": {str(left_changed)}, "right": {str(right_changed)}},
        "removed": {"left": {str(left_removed)}, "right": {str(right_removed)}},
    }


def _links(outdir: Path) -> set[tuple[str, str]]:
    graph = Graph().parse(outdir / "links.ttl")
    return {(str(s), str(o)) for s, _, o in graph}


def test_since_equals_a_full_run_and_lists_every_change(versions, tmp_path, monkeypatch):
    monkeypatch.setenv("KGALIGN_CACHE", str(tmp_path / "cache"))  # an empty vector cache
    p = versions["paths"]
    old, new, full = tmp_path / "old", tmp_path / "new", tmp_path / "full"
    assert cli(["run", p["left-base"], p["right-base"], "-o", old, "--quiet", *CLASSES]).exit_code == 0
    assert (old / "entities.json.gz").is_file()
    result = cli(["run", p["left-final"], p["right-final"], "-o", new, "--since", old, "--gold", versions["gold"], *CLASSES])
    assert result.exit_code == 0, result.output
    assert "entities left +3 -1 ~1, right +3 -1 ~1;" in result.stdout  # in the summary block
    assert cli(["run", p["left-final"], p["right-final"], "-o", full, "--quiet", "--gold", versions["gold"], *CLASSES]).exit_code == 0
    assert _links(new) == _links(full)
    for name in ("fused.ttl", "alignment.rdf", "votes.jsonl", "metrics.json"):
        assert (new / name).is_file()
    assert json.loads((new / "metrics.json").read_text())["f1"] == json.loads((full / "metrics.json").read_text())["f1"]
    records = [json.loads(line) for line in (new / "changes.jsonl").read_text().splitlines()]
    for kind in ("added", "changed", "removed"):
        for side in ("left", "right"):
            listed = {r["iri"] for r in records if r["change"] == f"entity_{kind}" and r["side"] == side}
            assert listed == versions[kind][side], (kind, side)
    link_changes = [r for r in records if r["change"].startswith("link_")]
    old_links, new_links = _links(old), _links(new)
    assert {(r["left"], r["right"]) for r in link_changes if r["change"] == "link_added"} | {
        (r["left"], r["right"]) for r in link_changes if r["change"] == "link_changed"
    } == new_links - old_links
    # Every added person's link is explained by its addition.
    for r in link_changes:
        if r["change"] == "link_added" and r["left"] in versions["added"]["left"]:
            assert r["reason"] == "left entity added"
    removed_left = next(iter(versions["removed"]["left"]))
    assert any(r["change"] == "link_removed" and r["left"] == removed_left and r["reason"] == "left entity removed" for r in link_changes)
    run = json.loads((new / "run.json").read_text())
    since = run["since"]
    # The comparison is timed as a stage of its own, which a run without --since has not.
    assert "since" in run["stages"] and "since" not in json.loads((full / "run.json").read_text())["stages"]
    # The update embeds the texts the vector cache lacks (the retrieval texts follow the new
    # attribute order, as a full run's do), so the full run after it, on that cache, embeds none.
    full_counts = json.loads((full / "run.json").read_text())["counts"]
    assert since["reused"]["vectors_computed"] > 0 and full_counts["vectors_computed"] == 0 and full_counts["vectors_read"] > 0
    assert since["old"] == str(old) and since["entities"]["left"]["added"] == 3 and since["links"]["kept"] == len(old_links & new_links)
    # The report has a changes section.
    assert cli(["report", new]).exit_code == 0
    page = (new / "report.html").read_text().replace(" ", "")
    assert '"since":{' in page and f'"added":{since["links"]["added"]}' in page


def test_no_change_asks_the_judge_nothing(persons, embedder, tmp_path):
    """With a judge on every source, a run on unchanged inputs answers everything from OLD's answers."""
    gold = dict(read_pairs(persons["gold"]))
    config = AlignConfig.from_dict({"vote": {"question": "choice", "gate": False}, "cache_path": str(tmp_path / "old" / "judge-cache.sqlite")})
    first = ScriptedJudge({a: pick(b) for a, b in gold.items()}, default=None)
    old_result = align(persons["left"], persons["right"], config, embedder=embedder, judge=first)
    old_result.save(tmp_path / "old")
    asked = len(first.sources)
    assert asked > 50
    again = ScriptedJudge({a: pick(b) for a, b in gold.items()}, default=None)
    new_config = config.replace(cache_path=str(tmp_path / "new" / "judge-cache.sqlite"))
    new_result = align(persons["left"], persons["right"], new_config, embedder=embedder, judge=again, since=tmp_path / "old")
    assert again.sources == [] and new_result.counts["llm_questions"] == 0 and new_result.counts["cache_hits"] == asked
    assert {(x.left, x.right) for x in new_result.links} == {(x.left, x.right) for x in old_result.links}
    assert new_result.since is not None and new_result.since["links"] == {"added": 0, "removed": 0, "changed": 0, "kept": len(old_result.links)}
    assert new_result.changes == []
    # The previous result itself can stand for OLD (Python API).
    from_result = align(persons["left"], persons["right"], new_config, embedder=embedder, judge=again, since=old_result)
    assert from_result.since is not None and from_result.since["links"]["kept"] == len(old_result.links)


def test_a_removal_that_splits_a_cluster(persons, tmp_path):
    """One-to-many data: removing a left person splits its right records apart (cluster_split)."""
    right, records = add_copies(Graph().parse(persons["right"]), PERSON2, random.Random(5), 3, defaultdict(int))
    write_sorted(right, tmp_path / "right.nt")
    gold = read_pairs(persons["gold"])
    person = next(a for a, b in gold if len(records[b]) >= 2)
    left = Graph().parse(persons["left"])
    write_sorted(_without(left, [URIRef(person)]), tmp_path / "left-final.nt")
    old, new = tmp_path / "old", tmp_path / "new"
    assert cli(["run", persons["left"], tmp_path / "right.nt", "-o", old, "--quiet", *CLASSES]).exit_code == 0
    assert cli(["run", tmp_path / "left-final.nt", tmp_path / "right.nt", "-o", new, "--since", old, "--quiet", *CLASSES]).exit_code == 0
    changes = [json.loads(line) for line in (new / "changes.jsonl").read_text().splitlines()]
    splits = [r for r in changes if r["change"] == "cluster_split"]
    assert any(f"L:{person}" in r["members"] and r["into"] >= 2 for r in splits), splits
    assert json.loads((new / "run.json").read_text())["since"]["clusters"]["split"] >= 1


def test_bad_old_folders_fail_in_one_line_writing_nothing(persons, tmp_path):
    old = tmp_path / "old"
    assert cli(["run", persons["left"], persons["right"], "-o", old, "--quiet"]).exit_code == 0
    cases = []
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    for name in ("run.json", "links.ttl"):
        (corrupt / name).write_bytes((old / name).read_bytes())
    (corrupt / "entities.json.gz").write_bytes(b"not gzip")
    cases.append((corrupt, "entities.json.gz: not a readable entity state"))
    older = tmp_path / "older"
    older.mkdir()
    for name in ("run.json", "links.ttl"):
        (older / name).write_bytes((old / name).read_bytes())
    cases.append((older, "entities.json.gz: missing; the folder was written by an older kgalign"))
    cases.append((tmp_path / "nowhere", "--since needs the output folder of an earlier `kgalign run`"))
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    for name in ("run.json", "links.ttl"):
        (foreign / name).write_bytes((old / name).read_bytes())
    with gzip.open(foreign / "entities.json.gz", "wt") as handle:
        json.dump({"version": STATE_VERSION, "left": {"urn:x:1": "a"}, "right": {"urn:y:1": "b"}}, handle)
    cases.append((foreign, "no entity in common with these inputs"))
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    for name in ("run.json", "links.ttl"):
        (earlier / name).write_bytes((old / name).read_bytes())
    with gzip.open(earlier / "entities.json.gz", "wt") as handle:
        json.dump({"version": 1, "left": {}, "right": {}}, handle)
    cases.append((earlier, "written by an earlier kgalign (entity state version 1"))
    for folder, message in cases:
        new = tmp_path / f"new-{folder.name}"
        result = cli(["run", persons["left"], persons["right"], "-o", new, "--since", folder, "--quiet"])
        assert result.exit_code == 1 and message in result.output, result.output
        assert result.output.strip().splitlines()[-1].startswith("kgalign: error: ")
        assert not new.exists(), folder
    same = cli(["run", persons["left"], persons["right"], "-o", old, "--since", old, "--quiet"])
    assert same.exit_code == 1 and "--since names the output folder itself" in same.output


def test_the_earlier_attribute_order_is_kept_when_the_same_attributes_are_chosen():
    """With --keep-earlier, new records that reorder the same attributes leave the earlier order: the prompts read as before."""
    from kgalign.pipeline import keep_earlier_order
    from kgalign.selection.predicates import Selection

    new = Selection(["name", "street", "phone"], ["in_city"], 8, 5)
    kept = keep_earlier_order(new, {"attributes": ["street", "name", "phone"], "relations": ["in_city"]}, "left")
    assert kept.attributes == ["street", "name", "phone"] and kept.relations == ["in_city"] and kept.max_attributes == 8
    other = keep_earlier_order(new, {"attributes": ["street", "name"], "relations": ["in_city"]}, "left")
    assert other is new
    assert keep_earlier_order(new, None, "left") is new


OAIE = "http://www.okkam.org/oaie/"
NS2 = "http://www.okkam.org/ontology_person2.owl#"


def _run_view(result) -> tuple:
    """What a run scored, settled and linked (no times)."""
    scores = [(c.source, [(i.iri, i.score) for i in c.items]) for c in result.prepared.candidates]
    decisions = [(d.source, d.kind, d.target, d.confidence, d.gated) for d in result.decisions]
    return scores, decisions, sorted((link.left, link.right) for link in result.links)


def test_a_since_run_scores_and_links_as_a_full_run_where_new_records_reorder_the_attributes(persons, embedder, tmp_path):
    """Removing one right person reorders the right attribute ranking: the update's prompts
    keep the earlier order (run.json ``selection``), but retrieval scores the texts in the
    new one, so its candidates, scores, gated sources and links are the full run's."""
    right = tmp_path / "right.nt"
    write_sorted(_without(Graph().parse(persons["right"]), [URIRef(OAIE + "person2-Person1241"), URIRef(OAIE + "person2-Address1241")]), right)
    config = AlignConfig()
    earlier = align(persons["left"], persons["right"], config, embedder=embedder)
    earlier.save(tmp_path / "old")
    full = align(persons["left"], right, config, embedder=embedder)
    assert earlier.prepared.selections["right"].attributes != full.prepared.selections["right"].attributes
    for keep in (None, 0.5):  # keep_earlier without a judge keeps nothing, the order neither
        since = align(persons["left"], right, config.replace(keep_earlier=keep), embedder=embedder, since=tmp_path / "old")
        assert _run_view(since) == _run_view(full)
        assert since.prepared.selections["right"] == earlier.prepared.selections["right"]
        # An unchanged entity is shown as before, not as the full run shows it.
        iri = OAIE + "person2-Person01"
        assert since.prepared.right_profiles[iri] == earlier.prepared.right_profiles[iri] != full.prepared.right_profiles[iri]
    # Without a judge there is no decision to keep, so the earlier decision log is not read.
    (tmp_path / "old" / "votes.jsonl").write_text("not json\n")
    done = cli(["run", persons["left"], str(right), "-o", str(tmp_path / "new"), "--since", str(tmp_path / "old"), "--keep-earlier", "0.5", "--quiet"])
    assert done.exit_code == 0, done.output
    assert "without a judge it does nothing" in done.output


def test_a_changed_link_gives_its_old_target_s_change_as_the_reason(persons, embedder, tmp_path):
    """A right person gets a near-twin; then the person changes, so its source links the
    twin: the link changed because its old target changed."""
    person, address = URIRef(OAIE + "person2-Person121"), URIRef(OAIE + "person2-Address121")
    twin, twin_address = URIRef(OAIE + "person2-Person121b"), URIRef(OAIE + "person2-Address121b")
    first = Graph().parse(persons["right"])
    for s, p, o in list(first):
        if s == person:
            o = twin_address if o == address else Literal("00 00000000") if p == URIRef(NS2 + "phone_numer") else o
            first.add((twin, p, o))
        elif s == address:
            first.add((twin_address, p, o))
    second = Graph()
    for s, p, o in first:
        if s == person and p in {URIRef(NS2 + n) for n in ("soc_sec_id", "surname", "given_name")}:
            o = Literal("zzzz0000")
        second.add((s, p, o))
    write_sorted(first, tmp_path / "right-1.nt")
    write_sorted(second, tmp_path / "right-2.nt")
    config = AlignConfig(classes=CLASSES[1::2])
    earlier = align(persons["left"], tmp_path / "right-1.nt", config, embedder=embedder)
    source = next(link.left for link in earlier.links if link.right == str(person))
    earlier.save(tmp_path / "old")
    align(persons["left"], tmp_path / "right-2.nt", config, embedder=embedder, since=tmp_path / "old").save(tmp_path / "new")
    records = [json.loads(line) for line in (tmp_path / "new" / "changes.jsonl").read_text().splitlines()]
    assert {"change": "entity_changed", "side": "right", "iri": str(person)} in records
    changed = [r for r in records if r["change"] == "link_changed"]
    assert changed == [{"change": "link_changed", "left": source, "old_right": str(person), "right": str(twin), "reason": "right entity changed"}]


def _judged_base(versions, embedder, tmp_path, resolve="auto"):
    """The base versions run with a scripted judge asked about every source, saved into
    tmp_path/old: the script, the config of the run after it (its own answer cache), and
    the base result."""
    script = {a: pick(b) for a, b in dict(read_pairs(versions["gold"])).items()}
    settings = {"vote": {"question": "choice", "gate": False}, "classes": CLASSES[1::2], "cache_path": str(tmp_path / "old" / "judge-cache.sqlite"), "resolve": resolve}
    base = AlignConfig.from_dict(settings)
    p = versions["paths"]
    earlier = align(p["left-base"], p["right-base"], base, embedder=embedder, judge=ScriptedJudge(script, default=None))
    earlier.save(tmp_path / "old")
    return script, base.replace(cache_path=str(tmp_path / "new" / "judge-cache.sqlite")), earlier


def test_every_source_the_judge_is_asked_about_again_has_its_reason(versions, embedder, tmp_path):
    """With a judge on every source, the since run asks only about sources an entity's
    change explains (added, changed, or shown an added or changed candidate), and says so
    per source; a source whose prompt the updated statistics alone changed is named as such
    (other candidates, or the same ones shown otherwise)."""
    script, config, earlier = _judged_base(versions, embedder, tmp_path)
    judge = ScriptedJudge(script, default=None)
    result = align(versions["paths"]["left-final"], versions["paths"]["right-final"], config, embedder=embedder, judge=judge, since=tmp_path / "old")
    assert result.since is not None and result.changes is not None
    reasons = {r["left"]: r["reason"] for r in result.changes if r["change"] == "judge_asked"}
    assert set(reasons) == set(judge.sources) and result.counts["llm_questions"] > 0
    assert sum(result.since["asked"].values()) == len(reasons)
    for source in versions["added"]["left"]:
        assert reasons[source] == "source added"
    assert [reasons[s] for s in versions["changed"]["left"]] == ["source changed"]
    shown = {d.source: d.shown for d in result.decisions}
    fresh = versions["added"]["right"] | versions["changed"]["right"]
    for source, reason in reasons.items():
        assert reason in ASKED_REASONS
        if reason == "candidate added or changed":
            assert shown[source] & fresh
        elif reason not in ("source added", "source changed"):
            assert not shown[source] & fresh and source not in versions["added"]["left"] | versions["changed"]["left"]
    shown_before = {d.source: d.shown for d in earlier.decisions}
    for source, reason in reasons.items():
        if reason == "other candidates":
            assert shown[source] != shown_before[source]
        elif reason == "same candidates shown otherwise":
            assert shown[source] == shown_before[source]
    # Every source shown an added candidate was asked again: none is left out. (One shown
    # a changed candidate may be answered from the earlier answers: where the change is in
    # what the prompt does not show, the prompt is the same.)
    for source, options in shown.items():
        if options & versions["added"]["right"]:
            assert source in reasons
    # The summary line and the report name them.
    assert f"about {len(reasons)} sources (" in summary_line(result.since, result.counts)
    result.save(tmp_path / "new")
    assert cli(["report", tmp_path / "new"]).exit_code == 0
    page = (tmp_path / "new" / "report.html").read_text().replace(" ", "")
    assert '"asked":{' in page


def test_sources_asked_again_because_the_earlier_answers_cannot_serve_say_so(versions, embedder, tmp_path, caplog):
    """Where OLD's answers cannot answer this run's questions (another judge model, or OLD
    kept no answer cache), an unchanged source shown the same candidates is asked again for that
    reason, not for the statistics; a warning names what differs."""
    script, config, earlier = _judged_base(versions, embedder, tmp_path)
    final = versions["paths"]["left-final"], versions["paths"]["right-final"]
    plain = align(*final, config, embedder=embedder, judge=ScriptedJudge(script, default=None), since=tmp_path / "old")
    same = {r["left"] for r in plain.changes if r.get("reason") == "same candidates shown otherwise"}
    reasons: dict[str, dict[str, str]] = {}
    other = config.replace(cache_path=str(tmp_path / "new-judge" / "judge-cache.sqlite"))
    result = align(*final, other, embedder=embedder, judge=ScriptedJudge(script, default=None, model_id="scripted-2"), since=tmp_path / "old")
    reasons["judge"] = {r["left"]: r["reason"] for r in result.changes if r["change"] == "judge_asked"}
    assert "another judge (the judge, scripted, differs)" in caplog.text
    (tmp_path / "old" / "judge-cache.sqlite").unlink()
    result = align(*final, config.replace(cache_path=str(tmp_path / "new-none" / "judge-cache.sqlite")), embedder=embedder, judge=ScriptedJudge(script, default=None), since=tmp_path / "old")
    reasons["none"] = {r["left"]: r["reason"] for r in result.changes if r["change"] == "judge_asked"}
    for case, reason in (("judge", "judge or its settings changed"), ("none", "no earlier answers")):
        assert reason in ASKED_REASONS and "same candidates shown otherwise" not in reasons[case].values()
        unexplained = {source for source, why in reasons[case].items() if why == reason}
        # Each source the plain update asked for the statistics is asked for want of earlier answers.
        assert same and same <= unexplained


def test_an_update_into_a_folder_with_answers_adds_the_earlier_ones_to_them(versions, embedder, tmp_path):
    """NEW already holds an answer cache (an earlier try): OLD's answers are added to it, so
    the update asks what an update into an empty folder asks."""
    from kgalign.judging.cache import AnswerCache

    script, config, _ = _judged_base(versions, embedder, tmp_path)
    final = versions["paths"]["left-final"], versions["paths"]["right-final"]
    fresh = align(*final, config, embedder=embedder, judge=ScriptedJudge(script, default=None), since=tmp_path / "old")
    other = tmp_path / "other" / "judge-cache.sqlite"
    align(*final, config.replace(cache_path=str(other)), embedder=embedder, judge=ScriptedJudge({}, default=None))  # other answers
    before = len(AnswerCache(other))
    result = align(*final, config.replace(cache_path=str(other)), embedder=embedder, judge=ScriptedJudge(script, default=None), since=tmp_path / "old")
    assert result.since["reused"]["judge_answers"] is True
    assert result.counts["llm_questions"] == fresh.counts["llm_questions"] > 0
    assert len(AnswerCache(other)) > before


def test_a_failed_update_leaves_no_folder_holding_only_the_earlier_answers(versions, embedder, tmp_path):
    """The judge cannot be built: NEW held only OLD's answers, copied in, so it goes."""
    _judged_base(versions, embedder, tmp_path)
    p = versions["paths"]
    new = tmp_path / "new"
    failed = cli(["run", p["left-final"], p["right-final"], "-o", new, "--since", tmp_path / "old", *CLASSES,
                  "--judge", "openai", "--llm-url", "http://127.0.0.1:9/v1", "--no-gate", "--quiet"])
    assert failed.exit_code == 1 and len(failed.output.strip().splitlines()) == 1, failed.output
    assert not new.exists()


def test_an_unreadable_earlier_decision_log_leaves_the_reason_open_not_the_run(versions, embedder, tmp_path, caplog):
    script, config, _ = _judged_base(versions, embedder, tmp_path)
    (tmp_path / "old" / "votes.jsonl").write_text('{"source": "x", "decision": \n')
    p = versions["paths"]
    result = align(p["left-final"], p["right-final"], config, embedder=embedder, judge=ScriptedJudge(script, default=None), since=tmp_path / "old")
    assert result.since is not None
    assert "earlier decisions unreadable" in result.since["asked"]
    assert set(result.since["asked"]) <= set(ASKED_REASONS) | {"earlier decisions unreadable"}
    assert any("the earlier decisions cannot be read" in r.getMessage() and "votes.jsonl:1" in r.getMessage() for r in caplog.records)


def test_an_entity_is_changed_by_its_own_triples_not_by_a_neighbour_coming_or_going(tmp_path):
    """X links to H and K. H gets a description (becomes an entity) and K loses its own:
    X's triples are the same, so its content hash is too; a link of X's own that points
    elsewhere, or a new one, changes it."""
    head = "@prefix : <http://example.org/> .\n@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .\n"
    versions = {
        "before": ':x rdfs:label "X" ; :knows :h , :k .\n:k rdfs:label "K" .\n',
        "after": ':x rdfs:label "X" ; :knows :h , :k .\n:h rdfs:label "H" .\n',
        "retargeted": ':x rdfs:label "X" ; :knows :h , :j .\n:h rdfs:label "H" .\n',
        "more": ':x rdfs:label "X" ; :knows :h , :k ; :likes :k .\n:h rdfs:label "H" .\n',
    }
    hashes, tables = {}, {}
    for name, body in versions.items():
        path = tmp_path / f"{name}.ttl"
        path.write_text(head + body)
        _, tables[name] = load_entities(path, name)
        hashes[name] = entity_hash(tables[name].entities["http://example.org/x"])
    assert set(tables["before"].entities["http://example.org/x"].relations["http://example.org/knows"]) == {"http://example.org/k"}
    assert set(tables["after"].entities["http://example.org/x"].relations["http://example.org/knows"]) == {"http://example.org/h"}
    assert hashes["after"] == hashes["before"]
    assert hashes["retargeted"] != hashes["after"] and hashes["more"] != hashes["after"]


def test_the_benchmark_split_adds_changes_and_removes_the_shares_asked(persons, tmp_path):
    """bench/incremental.py's split: the base lacks the added share, the final inputs lack
    the removed entities and carry one edited literal per changed entity."""
    from bench.incremental import split

    base, final = tmp_path / "base.nt", tmp_path / "final.nt"
    counts = split(Path(persons["left"]), base, final, random.Random(0), CLASSES[1:2], added=0.2, edited=0.05)
    assert counts == {"entities": 60, "added": 12, "changed": 2, "removed": 2}
    _, before = load_entities(base, "left", classes=CLASSES[1:2])
    _, after = load_entities(final, "left", classes=CLASSES[1:2])
    assert len(before.entities) == 48 and len(after.entities) == 48 + 12 - 2
    revised = {iri for iri, entity in after.entities.items() if any(v.text.endswith(" (revised)") for values in entity.attributes.values() for v in values)}
    assert len(revised) == 2 and revised <= before.entities.keys()


def test_the_benchmark_counts_what_keeping_the_decisions_the_statistics_moved_would_save(versions, embedder, tmp_path):
    """bench/incremental.py's ``statistics_only``, read from the three folders, against
    the runs themselves: the sources asked again for the statistics alone, their questions
    in the update, and those the full run decides otherwise than the earlier run."""
    from bench.incremental import STATISTICS_ONLY, statistics_only

    script, config, earlier = _judged_base(versions, embedder, tmp_path)
    p = versions["paths"]
    since = align(p["left-final"], p["right-final"], config, embedder=embedder, judge=ScriptedJudge(script, default=None), since=tmp_path / "old")
    since.save(tmp_path / "new")
    full = align(p["left-final"], p["right-final"], config.replace(cache_path=str(tmp_path / "full" / "judge-cache.sqlite")), embedder=embedder, judge=ScriptedJudge(script, default=None))
    full.save(tmp_path / "full")

    moved = statistics_only(tmp_path / "old", tmp_path / "new", tmp_path / "full")

    assert since.changes is not None
    expected = sorted(r["left"] for r in since.changes if r["change"] == "judge_asked" and r["reason"] in STATISTICS_ONLY)
    assert expected, (since.since, STATISTICS_ONLY)
    assert expected and moved["sources"] == len(expected)
    rounds = {d.source: d.rounds for d in since.decisions}
    assert moved["questions"] == sum(1 for s in expected for r in rounds[s] if not r.cached) > 0
    before, after = ({d.source: (d.kind, d.target) for d in run.decisions} for run in (earlier, full))
    assert moved["decided_otherwise"] == sum(1 for s in expected if before[s] != after[s])
    assert 0 <= moved["linked_otherwise"] <= moved["sources"]
    confidence = {d.source: d.confidence for d in earlier.decisions}
    assert moved["confident"] == sum(1 for s in expected if confidence[s] >= 0.5)
    assert moved["confident_decided_otherwise"] == sum(1 for s in expected if confidence[s] >= 0.5 and before[s] != after[s])
    assert len(moved["score_shift"]["otherwise"]) == moved["decided_otherwise"]
    assert len(moved["score_shift"]["alike"]) == moved["sources"] - moved["decided_otherwise"]
    # The shift is that of the scores the runs logged, over the options shown before or now.
    scores = {name: {c.source: {i.iri: i.score for i in c.items} for c in run.candidates} for name, run in (("before", earlier), ("now", since))}
    options = config.vote.options
    shifts = []
    for s in expected:
        earlier_c, now_c = scores["before"][s], scores["now"][s]
        shown = set(list(earlier_c)[:options]) | set(list(now_c)[:options])
        shifts.append(round(max((abs(now_c[i] - earlier_c[i]) for i in shown if i in earlier_c and i in now_c), default=0.0), 6))
    assert sorted(shifts) == sorted(moved["score_shift"]["otherwise"] + moved["score_shift"]["alike"])


def _since_with(versions, embedder, tmp_path, config, name: str, script, since: str = "old"):
    """A since run of the final versions against tmp_path/SINCE (default: old), with its
    own answer cache (a copy of SINCE's) in tmp_path/NAME; the result and its judge."""
    judge = ScriptedJudge(script, default=None)
    p = versions["paths"]
    cache = str(tmp_path / name / "judge-cache.sqlite")
    result = align(p["left-final"], p["right-final"], config.replace(cache_path=cache), embedder=embedder, judge=judge, since=tmp_path / since)
    return result, judge


def test_keep_earlier_keeps_the_decisions_only_the_statistics_moved_and_asks_the_rest(versions, embedder, tmp_path):
    """With keep_earlier, a source asked again in an exact since run for the statistics
    alone keeps its earlier decision, with its votes, and is not asked; every other
    source is asked as in the exact run, and changes.jsonl, run.json, votes.jsonl and the
    summary line say which decisions were kept and why."""
    from kgalign.incremental.keep import KEPT_REASONS

    script, config, earlier = _judged_base(versions, embedder, tmp_path)
    exact, exact_judge = _since_with(versions, embedder, tmp_path, config, "exact", script)
    kept_run, judge = _since_with(versions, embedder, tmp_path, config.replace(keep_earlier=0.0), "kept", script)
    assert exact.changes is not None and kept_run.changes is not None and kept_run.since is not None
    moved = {r["left"] for r in exact.changes if r["change"] == "judge_asked" and r["reason"] in KEPT_REASONS}
    kept = {r["left"]: r["reason"] for r in kept_run.changes if r["change"] == "decision_kept"}
    assert kept and set(kept) <= moved
    # Not asked, and asked about nothing else than the exact run beside them.
    assert not set(judge.sources) & set(kept)
    assert set(judge.sources) == set(exact_judge.sources) - set(kept)
    asked = {r["left"] for r in kept_run.changes if r["change"] == "judge_asked"}
    assert asked == {r["left"] for r in exact.changes if r["change"] == "judge_asked"} - set(kept)
    # Each kept decision is the earlier one, votes and all, marked kept.
    before = {d.source: d for d in earlier.decisions}
    now = {d.source: d for d in kept_run.decisions}
    shown_now = {c.source: c for c in kept_run.candidates}
    for source, reason in kept.items():
        assert now[source].kept and (now[source].kind, now[source].target, now[source].rounds) == (before[source].kind, before[source].target, before[source].rounds)
        # The reason: the options shown now are the earlier ones (in another order), or not.
        options_now = {c.iri for c in shown_now[source].items[: config.vote.options]}
        assert (reason == "same candidates shown otherwise") == (now[source].shown == options_now)
    assert sum(1 for d in kept_run.decisions if d.kept) == len(kept) == kept_run.counts["kept"]
    exact_rounds = {d.source: d.rounds for d in exact.decisions}
    assert kept_run.counts["llm_questions"] == exact.counts["llm_questions"] - sum(1 for s in kept for r in exact_rounds[s] if not r.cached)
    assert sum(kept_run.since["kept"].values()) == len(kept) and kept_run.since["reused"]["decisions_kept"] == len(kept)
    assert f"{len(kept)} earlier decisions kept" in summary_line(kept_run.since, kept_run.counts)
    kept_run.save(tmp_path / "kept")
    records = {json.loads(line)["source"]: json.loads(line) for line in (tmp_path / "kept" / "votes.jsonl").read_text().splitlines()}
    assert {s for s, r in records.items() if r["kept"]} == set(kept)
    # The earlier run's decisions as the pipeline holds them (the Python API) keep the same ones.
    p = versions["paths"]
    api_config = config.replace(keep_earlier=0.0, cache_path=str(tmp_path / "api" / "judge-cache.sqlite"))
    from_result = align(p["left-final"], p["right-final"], api_config, embedder=embedder, judge=ScriptedJudge(script, default=None), since=earlier)
    assert {d.source for d in from_result.decisions if d.kept} == set(kept)
    # The next update keeps them again (against the questions first asked, which its
    # answers come from), and asks about nothing else: every other answer is in the cache.
    again, again_judge = _since_with(versions, embedder, tmp_path, config.replace(keep_earlier=0.0), "again", script, since="kept")
    assert {d.source for d in again.decisions if d.kept} == set(kept)
    assert again_judge.sources == [] and again.counts["llm_questions"] == 0
    assert {d.source: d.rounds for d in again.decisions if d.kept} == {s: before[s].rounds for s in kept}


def test_keep_earlier_keeps_judged_sets_where_the_run_judges_sets(versions, embedder, tmp_path):
    script, config, earlier = _judged_base(versions, embedder, tmp_path, resolve="1:n")
    assert any(d.option_votes for d in earlier.decisions)
    result, judge = _since_with(versions, embedder, tmp_path, config.replace(keep_earlier=0.0), "sets", script)
    kept = [d for d in result.decisions if d.kept]
    assert kept and all(d.option_votes for d in kept) and not {d.source for d in kept} & set(judge.sources)
    # Its links follow the kept sets: each accepted option of a kept decision is linked.
    links = {(link.left, link.right) for link in result.links}
    assert all((d.source, vote.iri) in links for d in kept for vote in d.accepted)


def test_an_earlier_decision_log_keep_earlier_cannot_read_stops_the_run_before_anything_is_written(versions, embedder, tmp_path):
    _judged_base(versions, embedder, tmp_path)
    log = tmp_path / "old" / "votes.jsonl"
    lines = log.read_text().splitlines()
    number, record = next((i, json.loads(line)) for i, line in enumerate(lines, start=1) if json.loads(line)["rounds"] and not json.loads(line)["gated"])
    record["rounds"][0]["order"] = [1, 2]
    lines[number - 1] = json.dumps(record)
    log.write_text("\n".join(lines) + "\n")
    p = versions["paths"]
    # With a judge (the error comes before its model is loaded): without one nothing is kept, and the log is not read.
    result = cli(["run", p["left-final"], p["right-final"], "-o", tmp_path / "new", "--since", tmp_path / "old", "--keep-earlier", "0.5", "--judge", "local", "--quiet", *CLASSES])
    assert result.exit_code == 1
    assert f"votes.jsonl:{number}: not a decision record kgalign can keep (rounds: an order that is not a list of IRIs)" in result.output
    assert not (tmp_path / "new").exists()


def test_keep_earlier_asks_again_below_the_confidence_where_the_question_looks_otherwise_and_after_a_settings_change(versions, embedder, tmp_path, caplog):
    """The rules of kgalign.incremental.keep, one at a time, on the earlier decision log:
    a decision made with less confidence than asked is asked again; one whose earlier
    question does not read as it would today (here: its logged prompt edited) is asked
    again; a run with other vote settings keeps nothing and says why."""
    script, config, _ = _judged_base(versions, embedder, tmp_path)
    first, _ = _since_with(versions, embedder, tmp_path, config.replace(keep_earlier=0.5), "first", script)
    kept = sorted(d.source for d in first.decisions if d.kept)
    assert len(kept) >= 2
    log = tmp_path / "old" / "votes.jsonl"
    records = [json.loads(line) for line in log.read_text().splitlines()]
    for record in records:
        if record["source"] == kept[0]:
            record["confidence"] = 0.4
        if record["source"] == kept[1]:
            record["prompt"] = record["prompt"].replace("SOURCE:", "SOURCE: ")
    log.write_text("".join(json.dumps(r) + "\n" for r in records))
    again, judge = _since_with(versions, embedder, tmp_path, config.replace(keep_earlier=0.5), "again", script)
    assert {d.source for d in again.decisions if d.kept} == set(kept) - {kept[0], kept[1]}
    assert {kept[0], kept[1]} <= set(judge.sources)
    other_vote = config.replace(keep_earlier=0.0, vote={"rounds": 5})
    caplog.clear()
    changed, _ = _since_with(versions, embedder, tmp_path, other_vote, "changed", script)
    assert not any(d.kept for d in changed.decisions)
    assert any("no earlier decision is kept: the vote's rounds changed" in r.getMessage() for r in caplog.records)
    # The earlier run chose one winner a source (1:1): a run that judges sets keeps none of those votes.
    assert not any(d.option_votes for d in first.decisions)
    sets, _ = _since_with(versions, embedder, tmp_path, config.replace(keep_earlier=0.0, resolve="1:n"), "sets", script)
    assert any(d.option_votes for d in sets.decisions) and not any(d.kept for d in sets.decisions)


def test_keep_earlier_needs_since_and_a_confidence_between_0_and_1(persons, tmp_path):
    result = cli(["run", persons["left"], persons["right"], "-o", tmp_path / "out", "--keep-earlier", "0.5"])
    assert result.exit_code == 2 and "--keep-earlier keeps decisions of an earlier run: it needs --since OLD" in result.output
    assert not (tmp_path / "out").exists()
    result = cli(["run", persons["left"], persons["right"], "-o", tmp_path / "out", "--since", tmp_path, "--keep-earlier", "1.5"])
    assert result.exit_code == 2 and "1.5" in result.output
    with pytest.raises(ConfigError, match="keep_earlier"):
        AlignConfig.from_dict({"keep_earlier": -0.1})


def test_a_rerun_of_an_update_links_as_the_update(persons, tmp_path):
    """Without a judge an update is a full run of its inputs (attributes reordered or not),
    so `kgalign rerun` of it gives its links and decisions; run.json names the earlier run."""
    from kgalign.replay import read_run

    right = tmp_path / "right.nt"
    write_sorted(_without(Graph().parse(persons["right"]), [URIRef(OAIE + "person2-Person1241"), URIRef(OAIE + "person2-Address1241")]), right)
    assert cli(["run", persons["left"], persons["right"], "-o", tmp_path / "old", "--quiet"]).exit_code == 0
    assert cli(["run", persons["left"], right, "-o", tmp_path / "new", "--since", tmp_path / "old", "--quiet"]).exit_code == 0
    assert read_run(tmp_path / "new").since == str(tmp_path / "old")
    assert cli(["rerun", tmp_path / "new", "-o", tmp_path / "again", "--quiet"]).exit_code == 0
    assert _links(tmp_path / "again") == _links(tmp_path / "new")

    def decided(folder: Path) -> list[tuple]:
        records = [json.loads(line) for line in (folder / "votes.jsonl").read_text().splitlines()]
        return [(r["source"], r["decision"], r.get("target"), r.get("gated")) for r in records]

    assert decided(tmp_path / "again") == decided(tmp_path / "new")


def test_the_pairwise_threshold_counts_among_the_vote_settings_only_for_pairwise_questions() -> None:
    from kgalign.incremental.since import OldRun, earlier_settings_differ

    def earlier(vote: dict, effective_vote: dict | None = None) -> OldRun:
        config = AlignConfig(judge="local").to_dict()
        config["vote"] = {**config["vote"], **vote}
        return OldRun("old", {}, {}, set(), info={"config": config, "effective": {"vote": effective_vote or {}}})

    choice = AlignConfig(judge="local")
    # A run of an earlier kgalign recorded 0.5 for a multiple-choice vote, which never reads it.
    assert earlier_settings_differ(earlier({"pair_threshold": 0.5}), choice) is None
    assert earlier_settings_differ(earlier({"pair_threshold": None}), choice) is None
    pairwise = AlignConfig.from_dict({"judge": "local", "vote": {"question": "pairwise", "pair_threshold": 0.93}})
    # The earlier pairwise run settled its judge's trained threshold in its effective config.
    assert earlier_settings_differ(earlier({"question": "pairwise", "pair_threshold": None}, {"pair_threshold": 0.93}), pairwise) is None
    assert earlier_settings_differ(earlier({"question": "pairwise", "pair_threshold": 0.5}), pairwise) == "the vote's pair_threshold"
    assert earlier_settings_differ(earlier({"question": "pairwise", "pair_threshold": None}), pairwise.replace(vote={"pair_threshold": 0.5})) is None
