"""--resolve auto: the cardinality detected on small real excerpts, and the links of each mode.

The excerpts are the bundled persons example (OAEI Person1, 60 against 60) and the same
with noisy copies of its persons added on one side or both, by bench/make_cardinality.py's
own noise (typos, a blanked field, swapped name fields).
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from pathlib import Path

import pytest
from rdflib import Graph, URIRef

from bench.make_cardinality import add_copies, write_sorted
from kgalign.config import AlignConfig
from kgalign.model import Candidate, Candidates, Decision, Link
from kgalign.pipeline import align
from kgalign.resolution.resolve import close_clusters, resolve
from tests.helpers import cli

PERSON1 = URIRef("http://www.okkam.org/ontology_person1.owl#Person")
PERSON2 = URIRef("http://www.okkam.org/ontology_person2.owl#Person")


@pytest.fixture(scope="module")
def pairs(persons, tmp_path_factory) -> dict[str, dict[str, Path]]:
    """The example 1:1, and with copies: right side (1:n), swapped (n:1), both sides (n:m); gold of each."""
    from kgalign.evaluation.metrics import read_pairs

    folder = tmp_path_factory.mktemp("cardinality")
    gold = read_pairs(persons["gold"])
    rng = random.Random(7)
    right, right_records = add_copies(Graph().parse(persons["right"]), PERSON2, rng, 4, defaultdict(int))
    left, left_records = add_copies(Graph().parse(persons["left"]), PERSON1, rng, 3, defaultdict(int))
    write_sorted(right, folder / "right-copies.nt")
    write_sorted(left, folder / "left-copies.nt")

    def gold_file(name: str, rows: list[tuple[str, str]]) -> Path:
        (folder / name).write_text("".join(f"{a}\t{b}\n" for a, b in rows))
        return folder / name

    one_to_many = [(a, r) for a, b in gold for r in right_records[b]]
    return {
        "1:1": {"left": persons["left"], "right": persons["right"], "gold": persons["gold"]},
        "1:n": {"left": persons["left"], "right": folder / "right-copies.nt", "gold": gold_file("1n.tsv", one_to_many)},
        "n:1": {"left": folder / "right-copies.nt", "right": persons["left"], "gold": gold_file("n1.tsv", [(b, a) for a, b in one_to_many])},
        "n:m": {
            "left": folder / "left-copies.nt",
            "right": folder / "right-copies.nt",
            "gold": gold_file("nm.tsv", [(x, y) for a, b in gold for x in left_records[a] for y in right_records[b]]),
        },
    }


@pytest.mark.parametrize("kind", ["1:1", "1:n", "n:1", "n:m"])
def test_auto_detects_the_cardinality_and_links_every_record(pairs, embedder, kind):
    pair = pairs[kind]
    result = align(pair["left"], pair["right"], AlignConfig(gold=str(pair["gold"])), embedder=embedder)
    evidence = result.prepared.cardinality
    assert evidence is not None and evidence.choice == kind, evidence
    assert result.effective.resolve == {"1:1": "assignment", "1:n": "1:n", "n:1": "n:1", "n:m": "n:m"}[kind]
    assert result.metrics is not None and result.metrics["f1"] >= 0.98, result.metrics
    info = result.run_info()["cardinality"]
    assert info["detected"] and info["choice"] == kind and info["resolve"] == result.effective.resolve


def test_one_to_one_forced_is_the_former_default(pairs, embedder):
    """--resolve 1:1 on one-to-many data links each left person once (what the former default did)."""
    pair = pairs["1:n"]
    forced = align(pair["left"], pair["right"], AlignConfig(gold=str(pair["gold"]), resolve="1:1"), embedder=embedder)
    assert forced.prepared.cardinality is None and forced.run_info()["cardinality"] == {"resolve": "1:1", "detected": False}
    assert len({link.left for link in forced.links}) == len(forced.links)
    assert forced.metrics is not None and forced.metrics["recall"] < 0.6


def test_the_cli_logs_and_saves_the_choice(pairs, tmp_path):
    pair = pairs["1:n"]
    outdir = tmp_path / "out"
    result = cli(["--log-level", "info", "run", pair["left"], pair["right"], "-o", outdir, "--quiet"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "cardinality 1:n:" in text and "--resolve 1:n" in text
    saved = json.loads((outdir / "run.json").read_text())
    assert saved["cardinality"]["choice"] == "1:n" and saved["config"]["resolve"] == "auto" and saved["effective"]["resolve"] == "1:n"
    assert sum(saved["clusters"]["sizes"].values()) == saved["counts"]["clusters"] and max(map(int, saved["clusters"]["sizes"])) > 2
    shown = cli(["inspect", outdir / "votes.jsonl"]).output
    assert "cardinality: 1:n (detected;" in shown and "clusters: " in shown and " of size 3" in shown
    assert cli(["report", outdir]).exit_code == 0
    page = (outdir / "report.html").read_text()
    assert '"choice":"1:n"' in page.replace(" ", "") and "Largest cluster" in page


def _candidates(source: str, *scored: tuple[str, float]) -> Candidates:
    items = [Candidate(iri=iri, score=score, rank=rank + 1) for rank, (iri, score) in enumerate(scored)]
    return Candidates(source=source, items=items, margin=items[0].score - (items[1].score if len(items) > 1 else 0.0), mutual=False)


def test_one_to_many_gives_a_target_to_its_best_source():
    """1:n: a source keeps its strong candidates whose best source it is; a target wanted twice goes to the higher score."""
    candidates = [
        _candidates("a", ("x1", 0.9), ("x2", 0.8), ("y", 0.55)),
        _candidates("b", ("y", 0.7), ("x2", 0.3)),
        _candidates("c", ("y", 0.65)),
    ]
    decisions = [Decision(c.source, "match", c.items[0].iri, c.items[0].score) for c in candidates]
    links, conflicts = resolve(decisions, candidates, "1:n")
    assert {(link.left, link.right) for link in links} == {("a", "x1"), ("a", "x2"), ("b", "y")}
    assert [(c.source, c.target, c.winner) for c in conflicts] == [("c", "y", "b")]


def test_close_clusters_links_every_record_of_a_component():
    links = [Link("l1", "r1", 0.9), Link("l2", "r1", 0.8), Link("l2", "r2", 0.7), Link("l3", "r3", 0.95)]
    closed = close_clusters(links)
    assert {(link.left, link.right) for link in closed} == {("l1", "r1"), ("l1", "r2"), ("l2", "r1"), ("l2", "r2"), ("l3", "r3")}
    assert next(link for link in closed if (link.left, link.right) == ("l1", "r2")).confidence == 0.7


def test_resolve_choices_are_checked():
    with pytest.raises(Exception, match="resolve: 'n:n' is not one of auto, "):
        AlignConfig(resolve="n:n")


@pytest.mark.parametrize("kind", ["1:1", "1:n", "n:1", "n:m"])
def test_a_sample_of_each_side_finds_what_all_of_it_finds(pairs, kind):
    """Detection on 30 evenly spaced entities of each side (as a large graph is measured)
    chooses what the whole sides give, with shares near the whole sides'."""
    from kgalign.io.entities import load_entities
    from kgalign.resolution.cardinality import detect_cardinality, sample_rows
    from kgalign.selection.predicates import build_profiles, configured_selection

    texts = []
    for side in ("left", "right"):
        _, table = load_entities(pairs[kind][side], side)
        texts.append([p.text(True) for p in build_profiles(table, configured_selection(table, AlignConfig()))])
    whole = detect_cardinality(*texts)
    part = detect_cardinality(*texts, sample=30)
    assert not whole.sampled and whole.left_measured == len(texts[0])
    assert part.sampled and part.left_measured == 30 and part.right_measured == 30
    assert part.choice == whole.choice == kind
    assert abs(part.left_share - whole.left_share) < 0.25 and abs(part.right_share - whole.right_share) < 0.25
    assert "measured on samples of 30 and 30 entities" in part.summary()
    assert list(sample_rows(5, 10)) == [0, 1, 2, 3, 4] and list(sample_rows(10, 3)) == [0, 4, 9]


@pytest.mark.parametrize("kind", ["1:n", "n:m"])
def test_detection_scores_on_every_feature_when_the_search_prunes(pairs, kind, monkeypatch):
    """Past PRUNE_FROM_TARGETS targets the lexical search ignores common features; the
    detection scores what it finds on every feature, so it sees the same counterparts."""
    import kgalign.retrieval.retrieve as retrieve
    from kgalign.io.entities import load_entities
    from kgalign.resolution.cardinality import detect_cardinality
    from kgalign.selection.predicates import build_profiles, configured_selection

    texts = []
    for side in ("left", "right"):
        _, table = load_entities(pairs[kind][side], side)
        texts.append([p.text(True) for p in build_profiles(table, configured_selection(table, AlignConfig()))])
    whole = detect_cardinality(*texts)
    # At this scale, as on a large graph: the features of more than 3% of the targets ignored
    # in the search (scored on those alone, a third of the several counterparts fell below the floor).
    monkeypatch.setattr(retrieve, "PRUNE_FROM_TARGETS", 10)
    monkeypatch.setattr(retrieve, "COMMON_FEATURE_SHARE", 0.03)
    pruned = detect_cardinality(*texts)
    assert pruned.choice == whole.choice == kind
    assert abs(pruned.left_share - whole.left_share) < 0.05 and abs(pruned.right_share - whole.right_share) < 0.05


# --- The judge's answers in the cardinality ------------------------------------------


@pytest.fixture(scope="module")
def namesakes(persons, tmp_path_factory) -> dict[str, Path]:
    """The persons example (1:1) with, for half of the right persons, a relative of the same
    name at the same address (bench/make_cardinality.py's namesakes): lexically one-to-many."""
    from bench.make_cardinality import add_namesakes

    folder = tmp_path_factory.mktemp("namesakes")
    right, made = add_namesakes(Graph().parse(persons["right"]), PERSON2, random.Random(3), 0.5)
    assert made >= 25
    write_sorted(right, folder / "right.nt")
    return {"left": persons["left"], "right": folder / "right.nt", "gold": persons["gold"]}


def _oracle(gold_file: Path):
    from kgalign.evaluation.metrics import read_pairs
    from kgalign.judging.testing import ScriptedJudge, pick

    wanted: dict[str, set[str]] = defaultdict(set)
    for a, b in read_pairs(gold_file):
        wanted[a].add(b)
    return ScriptedJudge(lambda q: pick(next((o.iri for o in q.options if o.iri in wanted[q.source.iri]), None)))


def test_look_alikes_that_the_judge_refutes_make_the_run_one_to_one(namesakes, embedder, tmp_path):
    """Retrieval alone takes the namesakes for records of the same person (1:n, precision
    < 1); a judge that knows better accepts one option per set, so the run is revised to
    1:1: every link right, the evidence in run.json, the log, inspect and the report."""
    alone = align(namesakes["left"], namesakes["right"], AlignConfig(gold=str(namesakes["gold"])), embedder=embedder)
    assert alone.effective.resolve == "1:n" and alone.prepared.cardinality.judge is None
    assert alone.metrics is not None and alone.metrics["precision"] < 0.8

    judged = align(namesakes["left"], namesakes["right"], AlignConfig(gold=str(namesakes["gold"])), embedder=embedder, judge=_oracle(namesakes["gold"]))
    evidence = judged.prepared.cardinality
    assert evidence.retrieval_choice == "1:n" and evidence.choice == "1:1" and judged.effective.resolve == "assignment"
    assert evidence.judge is not None and evidence.judge.left_checked >= 20 and evidence.judge.left_confirmed == 0
    # The sources with a namesake are gated (their original scores far ahead); fewer than
    # SET_AUDIT here, so the audit judges all of their sets.
    namesake_of = {str(link.left) for link in alone.links if str(link.right).endswith("-namesake")}
    assert namesake_of and all(d.rounds for d in judged.decisions if d.source in namesake_of)
    assert not [link for link in judged.links if link.right.endswith("-namesake")]
    assert judged.metrics is not None and judged.metrics["recall"] == 1.0 and judged.metrics["f1"] >= 0.99, judged.metrics
    info = judged.run_info()["cardinality"]
    assert info["choice"] == "1:1" and info["retrieval_choice"] == "1:n"
    assert info["judge"]["left_rate"] == 0.0 and info["judge"]["left_judged_share"] == 0.0

    judged.save(tmp_path / "out")
    shown = cli(["inspect", tmp_path / "out" / "votes.jsonl"]).output
    assert "judge: left: 0 of " in shown and "revised from 1:n (retrieval) to 1:1" in shown
    assert cli(["report", tmp_path / "out"]).exit_code == 0
    assert '"retrieval_choice":"1:n"' in (tmp_path / "out" / "report.html").read_text().replace(" ", "")

    # Forced 1:n: no detection, so no audit: the gated sources keep retrieval's extras (the namesakes).
    forced = align(namesakes["left"], namesakes["right"], AlignConfig(resolve="1:n", gold=str(namesakes["gold"])), embedder=embedder, judge=_oracle(namesakes["gold"]))
    assert forced.prepared.cardinality is None and forced.effective.resolve == "1:n"
    gated = {d.source for d in forced.decisions if d.gated and d.source in namesake_of}
    assert gated and gated <= {link.left for link in forced.links if link.right.endswith("-namesake")}


def test_a_judge_confirming_several_records_keeps_one_to_many(pairs, embedder, caplog):
    pair = pairs["1:n"]
    with caplog.at_level("INFO", logger="kgalign.pipeline"):
        result = align(pair["left"], pair["right"], AlignConfig(gold=str(pair["gold"])), embedder=embedder, judge=_oracle(pair["gold"]))
    evidence = result.prepared.cardinality
    assert evidence.choice == evidence.retrieval_choice == "1:n" and result.effective.resolve == "1:n"
    assert evidence.judge is not None and evidence.judge.left_rate is not None and evidence.judge.left_rate >= 0.9
    assert result.metrics is not None and result.metrics["f1"] == 1.0
    assert any("the judge: " in r.message and "cardinality 1:n kept" in r.message for r in caplog.records)


def test_a_judge_that_rejects_everything_leaves_the_choice(pairs, embedder):
    """An untuned model that answers "none of these" to every question says nothing about
    how many records a person has: the detected 1:n stands, and the gated sources keep
    their records."""
    from kgalign.judging.testing import ScriptedJudge, pick

    pair = pairs["1:n"]
    result = align(pair["left"], pair["right"], AlignConfig(gold=str(pair["gold"])), embedder=embedder, judge=ScriptedJudge(lambda q: pick(None)))
    evidence = result.prepared.cardinality
    assert result.counts["judged"] > 0 and evidence.judge is not None
    assert evidence.judge.left_rate is None and evidence.judge.right_rate is None
    assert evidence.choice == "1:n" and result.effective.resolve == "1:n"
    assert "too few of retrieval's claims" in evidence.judge_summary()
    # The audited gated sources were asked, and keep the gate's match all the same.
    audited = [d for d in result.decisions if d.gated and d.rounds]
    assert audited and all(d.kind == "match" and not d.by_judge for d in audited)


def _decision(source: str, target: str | None, judged: bool = True, gated: bool = False, accepted: tuple[str, ...] = ()) -> Decision:
    from kgalign.model import OptionVote, Round

    rounds = [Round(order=[target or "none"], raw="A", choice="A", target=target)] if judged else []
    votes = [OptionVote(iri, 2, 3, True, 0.6) for iri in accepted]
    return Decision(source, "match" if target else "none", target, 0.9, rounds=rounds, gated=gated, option_votes=votes)


def test_judge_evidence_checks_retrievals_claims_and_never_turns_a_side_many():
    from kgalign.resolution.cardinality import JUDGE_MIN_CHECKED, CardinalityEvidence, judge_evidence, with_judge

    n = JUDGE_MIN_CHECKED
    # n:1: r_i is strong for two sources, a_i (gated) and b_i (judged); b_i picks r_i for half of them.
    candidates = [_candidates(f"a{i}", (f"r{i}", 0.9)) for i in range(n)] + [_candidates(f"b{i}", (f"r{i}", 0.8), (f"x{i}", 0.1)) for i in range(n)]
    decisions = [_decision(f"a{i}", f"r{i}", judged=False, gated=True) for i in range(n)]
    decisions += [_decision(f"b{i}", f"r{i}" if i % 2 == 0 else None) for i in range(n)]
    evidence = judge_evidence(decisions, candidates, sets=False)
    assert (evidence.right_checked, evidence.right_confirmed) == (n, n // 2) and evidence.right_rate == 0.5
    assert evidence.left_rate is None  # one-winner questions say nothing about several per source
    n1 = CardinalityEvidence("n:1", 100, 0, 100, 40)
    assert with_judge(n1, evidence).choice == "n:1"  # 40% x 0.5 = 20%
    assert with_judge(CardinalityEvidence("n:1", 100, 0, 100, 20), evidence).choice == "1:1"  # 20% x 0.5 = 10%
    # A person's decision is not the judge's: with b0..b9 decided by hand, too few claims checked.
    human = [d if not d.source.startswith("b") or int(d.source[1:]) >= n // 2 else Decision(d.source, "match", d.target, 1.0, human=True) for d in decisions]
    assert judge_evidence(human, candidates, sets=False).right_rate is None
    # The judge never makes a side many.
    assert with_judge(CardinalityEvidence("1:1", 100, 0, 100, 0), evidence).choice == "1:1"
    # A judge that links fewer than half of the sources it is asked about is no evidence.
    silent = judge_evidence(decisions[:n] + [_decision(f"b{i}", None) for i in range(n)], candidates, sets=False)
    assert silent.right_checked == n and silent.right_rate is None and with_judge(n1, silent).choice == "n:1"
    # Judged sets: a source with two strong candidates is a claim; confirmed when both are accepted.
    pairs = [_candidates(f"l{i}", (f"r{i}", 0.9), (f"s{i}", 0.8)) for i in range(n)]
    sets = judge_evidence([_decision(f"l{i}", f"r{i}", accepted=(f"r{i}", f"s{i}") if i < n // 4 else (f"r{i}",)) for i in range(n)], pairs, sets=True)
    assert (sets.left_checked, sets.left_confirmed) == (n, n // 4) and sets.right_rate is None
    nm = CardinalityEvidence("n:m", 100, 80, 100, 50)
    revised = with_judge(nm, sets)
    assert revised.choice == "n:m" and revised.judged_shares()[0] == 0.8 * 0.25
    assert with_judge(CardinalityEvidence("n:m", 100, 50, 100, 50), sets).choice == "n:1"
    # A set that accepted nothing is no check.
    nothing = judge_evidence([_decision(f"l{i}", None, accepted=()) for i in range(n)], pairs, sets=True)
    assert nothing.left_checked == 0 and nothing.left_rate is None
    # Too few claims checked: the retrieval's choice stands.
    few = judge_evidence([_decision("l0", "r0", accepted=("r0",))], pairs[:1], sets=True)
    assert few.left_rate is None and with_judge(nm, few).choice == "n:m"
    assert "too few of retrieval's claims" in with_judge(nm, few).judge_summary()
