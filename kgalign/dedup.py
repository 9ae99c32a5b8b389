"""Duplicates within one graph: one graph aligned against itself, its records of one thing merged.

>>> result = deduplicate("persons.nt", AlignConfig())   # doctest: +SKIP
>>> result.save("out/")                                  # doctest: +SKIP

The stages are those of :func:`kgalign.pipeline.align` with the graph on both sides:
load and select once, retrieval of every entity among the others (never itself:
``retrieval.self_join``; no target is withheld, since a record may have several
duplicates), the judge where one is asked, then:

- each entity keeps its decided match and every other strong candidate (as a many-to-many
  run: :func:`kgalign.resolution.resolve.several_links`); a match retrieval alone made
  must score at least ``DUPLICATE_FLOOR``, as a record with no duplicate otherwise takes
  its nearest look-alike;
- the links form clusters (networkx components); a cluster that grew through a weak
  bridge is split (every record of a thing should be linked to every other:
  :func:`kgalign.resolution.clusters.check_clusters`);
- links.ttl holds every pair of records within each cluster (``owl:sameAs``, each pair
  once, the smaller IRI first); fused.ttl the graph with each cluster under one IRI (the
  smallest, or by ``canonical``) and ``owl:sameAs`` to the others, every input triple kept.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from itertools import combinations
from pathlib import Path

from kgalign.config import AlignConfig
from kgalign.errors import ConfigError
from kgalign.fusion.fuse import fuse
from kgalign.io.entities import load_entities
from kgalign.io.triples import TripleSet
from kgalign.judging.adapters import settle_pair_threshold
from kgalign.judging.base import Judge, check_judge
from kgalign.judging.build import build_judge, judge_id
from kgalign.judging.vote import decide, questions_estimate
from kgalign.model import Candidates, Decision, EntityProfile, EntityTable, Link
from kgalign.resolution.cardinality import CardinalityEvidence
from kgalign.resolution.clusters import ClusterCheck, check_clusters, components
from kgalign.resolution.resolve import several_links
from kgalign.result import AlignmentResult, Prepared
from kgalign.retrieval.candidates import Side, find_candidates
from kgalign.retrieval.cascade import CascadeStats
from kgalign.retrieval.embed import Embedder, configured_embedder
from kgalign.runtime.device import resolve_device
from kgalign.runtime.gctune import relaxed_gc
from kgalign.runtime.progress import progress_bar
from kgalign.runtime.stages import StageTimer
from kgalign.selection.predicates import build_profiles, check_named_predicates, configured_selection

log = logging.getLogger(__name__)

#: A duplicate found by retrieval alone scores at least this much (the judge's word is taken as it is).
DUPLICATE_FLOOR = 0.5


def deduplicate(path: str | Path, config: AlignConfig | None = None, embedder: Embedder | None = None, judge: Judge | None = None) -> AlignmentResult:
    """Find the records of one graph that describe the same thing; see the module text."""
    config = config or AlignConfig()
    if judge is None and config.judge != "none":
        check_judge(*config.judge_choice)
    with relaxed_gc():
        return _deduplicate(path, config, embedder, judge)


def _deduplicate(path: str | Path, config: AlignConfig, embedder: Embedder | None, judge: Judge | None) -> AlignmentResult:
    settled = settle_pair_threshold(config, judge is not None)  # before the graph is read: a bad record stops at once
    timer = StageTimer()
    classes = list(config.classes) or None
    with timer.stage("load"):
        graph, table = load_entities(path, "graph", config.left_format, classes, id_column=config.id_column, keep=config.keep_classes, fold=config.fold_classes)
    if config.resolve != "auto":
        raise ConfigError(f"resolve: {config.resolve!r} settles two graphs; kgalign dedup finds its own clusters (leave --resolve out)")
    changes: dict = {"vote": {"seed": config.seed}}
    if config.device == "auto":
        changes["device"] = resolve_device(config.device)
    effective = self_join(settled.replace(**changes))
    with timer.stage("select"):
        selection = configured_selection(table, config)
        check_named_predicates([selection], config.attributes, config.relations)
        profiles = build_profiles(table, selection)
    by_iri = {p.iri: p for p in profiles}
    cached_judge, cache = build_judge(effective, judge)
    try:
        candidates, stats, decisions = retrieve_and_decide(table, profiles, effective, embedder or configured_embedder(effective), cached_judge, timer)
    finally:
        if cache is not None:
            cache.close()

    with timer.stage("resolve"):
        links, check = duplicate_links(decisions, candidates)

    with timer.stage("fuse"):
        clusters = [[str(iri) for iri in members] for members in components((a.left, a.right, a.confidence) for a in links)]
        stars = [Link(members[0], member, 1.0) for members in clusters for member in members[1:]]
        fusion = fuse(graph, TripleSet(), stars, "mint" if config.canonical == "mint" else "left", config.conflicts)

    prepared = Prepared(graph, TripleSet(), table, table, by_iri, by_iri, candidates, {}, cascade=stats)
    result = AlignmentResult(
        config=config,
        effective=effective,
        left_path=str(path),
        right_path=str(path),
        prepared=prepared,
        decisions=decisions,
        links=links,
        conflicts=[],
        fusion=fusion,
        timer=timer,
        counts={},
        judge_id=judge_id(cached_judge, effective),
    )
    result.counts = result.count(cached_judge, 0, 0)
    result.clusters = {
        "command": "dedup",
        "split": check.split,
        "removed_links": [[str(a), str(b), c] for a, b, c in check.removed],
        "flagged": [[str(n) for n in nodes] for nodes in check.flagged],
    }
    log.info(
        "%d clusters of duplicates (%d records), %d split at a weak link, %d flagged",
        len(fusion.clusters),
        sum(len(c) for c in fusion.clusters),
        check.split,
        len(check.flagged),
    )
    gold = config.test_gold or config.gold
    if gold:
        from kgalign.evaluation.metrics import read_pairs

        result.evaluate(sorted({(min(a, b), max(a, b)) for a, b in read_pairs(gold)}), str(gold))
    return result


def self_join(config: AlignConfig) -> AlignConfig:
    """The settings of one graph against itself: no entity its own candidate, no target
    withheld, every entity a source and a target."""
    return config.replace(retrieval={"self_join": True, "exclusive": False}, only_left=(), only_right=())


def retrieve_and_decide(
    table: EntityTable, profiles: list[EntityProfile], config: AlignConfig, embedder: Embedder, judge: Judge | None, timer: StageTimer
) -> tuple[list[Candidates], CascadeStats | None, list[Decision]]:
    """Candidates of every entity among the others (``config`` from :func:`self_join`), and the decisions on them."""
    texts = [profile.text(True) for profile in profiles]
    iris = [profile.iri for profile in profiles]
    side = Side(table, iris, texts)
    candidates, stats = find_candidates(config, [], side, side, embedder, timer)
    by_iri = {profile.iri: profile for profile in profiles}
    with timer.stage("judge"), progress_bar("judge", questions_estimate(config.vote, len(candidates)) if judge else 0) as advance:
        if judge is not None:
            judge.on_answered = advance  # type: ignore[attr-defined]
        decisions = decide(candidates, by_iri, by_iri, judge, config.vote, several=config.vote.sets)
    return candidates, stats, decisions


def side_duplicates(
    table: EntityTable, profiles: Mapping[str, EntityProfile], config: AlignConfig, embedder: Embedder, judge: Judge | None
) -> tuple[list[Link], ClusterCheck]:
    """The duplicate pairs among one graph's entities, as ``kgalign run --dedup`` finds them."""
    ordered = [profiles[iri] for iri in table.entities if iri in profiles]
    candidates, _, decisions = retrieve_and_decide(table, ordered, self_join(config), embedder, judge, StageTimer())
    return duplicate_links(decisions, candidates)


def dedup_sides(dedup: str, cardinality: CardinalityEvidence | None) -> list[str]:
    """The graphs whose duplicates a run looks for: as given, or (auto) the sides the
    cardinality detection found to hold several records of a thing."""
    if dedup == "both":
        return ["left", "right"]
    if dedup in ("left", "right"):
        return [dedup]
    if dedup == "auto" and cardinality is not None:
        # 1:n: each left entity has several right records, so the right graph holds duplicates.
        return {"1:n": ["right"], "n:1": ["left"], "n:m": ["left", "right"]}.get(cardinality.choice, [])
    return []


def duplicate_links(decisions: list[Decision], candidates: list[Candidates]) -> tuple[list[Link], ClusterCheck]:
    """The pairs of duplicates: each entity's strong matches (see the module text), clusters
    checked for weak chains, then every pair within a cluster, smaller IRI first."""
    directed, _ = several_links(decisions, candidates, shared_targets=True, floor=DUPLICATE_FLOOR)
    edges: dict[tuple[str, str], float] = {}
    for link in directed:
        key = (min(link.left, link.right), max(link.left, link.right))
        edges[key] = max(edges.get(key, 0.0), link.confidence)
    check = check_clusters((a, b, c) for (a, b), c in edges.items())
    pairs: list[Link] = []
    for members in ([str(iri) for iri in component] for component in components(check.edges)):
        weakest = min((edges.get((a, b), 1.0) for a, b in combinations(members, 2) if (a, b) in edges), default=1.0)
        for a, b in combinations(sorted(members), 2):
            pairs.append(Link(a, b, round(edges.get((a, b), weakest), 6)))
    return sorted(pairs, key=lambda link: (link.left, link.right)), check
