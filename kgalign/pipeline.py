"""One call that runs the stages in order: load, select, retrieve, judge and vote, resolve, fuse.

>>> result = align("left.ttl", "right.ttl", AlignConfig(judge="none"))  # doctest: +SKIP
>>> result.save("out/")                                                  # doctest: +SKIP

The config is never changed: values left to "auto" are resolved into a copy
(``result.effective``), which run.json saves beside the config as given.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

from kgalign.config import AlignConfig
from kgalign.dedup import dedup_sides, side_duplicates
from kgalign.evaluation.metrics import Pair, read_pairs
from kgalign.fusion.fuse import FusionResult, fuse
from kgalign.incremental.keep import keeps_earlier, kept_decisions
from kgalign.incremental.since import OldRun, check_overlap, compare, read_old, reuse_answers, summary_line
from kgalign.incremental.state import release_contents
from kgalign.io.entities import load_entities
from kgalign.io.entity_file import spill_table
from kgalign.io.inputs import is_endpoint
from kgalign.io.reloaded import ReloadedTriples, fingerprint
from kgalign.io.sparql.source import check_endpoint_inputs, local_input
from kgalign.io.triples import TripleSource
from kgalign.judging.adapters import settle_pair_threshold
from kgalign.judging.base import Judge, check_judge
from kgalign.judging.build import Serve, build_judge, judge_id
from kgalign.judging.check import check_on_confident, required_auc
from kgalign.judging.vote import check_answered, decide, explain_decisions, is_gated, questions_estimate
from kgalign.model import Decision, EntityProfile, EntityTable, Link
from kgalign.resolution.cardinality import detect_cardinality, detect_in_blocks, judge_evidence, with_judge
from kgalign.resolution.cut import Cut, apply_cuts, cut_by_block, lexical_scorer
from kgalign.resolution.guard import bound_clusters, excess_warning
from kgalign.resolution.resolve import MODE_OF_CARDINALITY, ONE_TO_ONE, SEVERAL_PER_SOURCE, resolve
from kgalign.result import AlignmentResult, Prepared
from kgalign.retrieval.candidates import Side, find_candidates, known_seeds
from kgalign.retrieval.embed import Embedder, configured_embedder
from kgalign.retrieval.retrieve import AUTO_STRUCTURE_WEIGHT, lexical_vectors
from kgalign.retrieval.structure import has_structure
from kgalign.review.corrections import read_human_decisions, with_human_targets
from kgalign.runtime.device import resolve_device
from kgalign.runtime.gctune import relaxed_gc
from kgalign.runtime.progress import progress_bar
from kgalign.runtime.stages import StageTimer
from kgalign.selection.alignability import vocabulary
from kgalign.selection.classes import ClassAlignment, align_classes
from kgalign.selection.predicates import Selection, check_named_predicates, configured_selection, iter_profiles
from kgalign.selection.profile_file import profile_map

log = logging.getLogger(__name__)

class Loader(Protocol):
    """An engine's load of the input files."""

    def __call__(
        self, path: Path, side: str, fmt: str | None, classes: list[str] | None, keep: tuple[str, ...], fold: tuple[str, ...], /
    ) -> tuple[TripleSource, EntityTable] | None:
        """One input file's number and prefixes of triples (a TripleSource that fusion
        does not iterate: the file is read again) and its entity table (the table of
        :func:`kgalign.io.entities.load_entities`), or None where the run must load the file itself."""

    def close(self) -> None:
        """Let go of what the loads held; called once the run's inputs are loaded."""


#: An engine's fusion: the arguments of :func:`kgalign.fusion.fuse.fuse` to its result,
#: or None where the run must fuse in this process.
Fuser = Callable[[TripleSource, TripleSource, list[Link], str, str, dict[str, list[Link]]], FusionResult | None]


def align(
    left: str | Path,
    right: str | Path,
    config: AlignConfig | None = None,
    embedder: Embedder | None = None,
    judge: Judge | None = None,
    since: str | Path | AlignmentResult | OldRun | None = None,
) -> AlignmentResult:
    """Run the whole pipeline on two graph files and return everything it produced.

    Either input may be a SPARQL endpoint URL (with ``config.classes``): it is read into
    a local copy first (``config.sparql``; :mod:`kgalign.io.sparql.source`).

    Without a ``judge`` object, the backend ``config.judge`` is checked first
    (:func:`kgalign.judging.base.check_judge`): a missing package stops the run before
    the graphs are loaded. With ``config.gold`` (or ``test_gold``) the result is scored.
    """
    config = config or AlignConfig()
    old = None
    if since is not None:
        old = since if isinstance(since, OldRun) else OldRun.from_result(since) if isinstance(since, AlignmentResult) else read_old(since)
        if keeps_earlier(config, judge is not None or config.judge != "none"):
            old.judged_before()  # a log that cannot be read stops the run now, not after retrieval
        elif config.keep_earlier is not None:
            log.warning("keep_earlier keeps decisions the earlier run's judge made: without a judge it does nothing")
    elif config.keep_earlier is not None:
        log.warning("keep_earlier keeps decisions of an earlier run: without since it does nothing")
    from kgalign.runtime.engines import ENGINES

    if judge is not None and config.adapt.enabled:
        log.warning("adapt trains the configured judge backend's model; a judge object is asked as it is")
        config = config.replace(adapt={"enabled": False})
    if config.adapt.enabled and not config.adapt.folder:
        # The adapter lives as long as the run's judge: in a folder removed after the run.
        with tempfile.TemporaryDirectory(prefix="kgalign-adapt-") as folder:
            return ENGINES.get(config.engine)(left, right, config.replace(adapt={"folder": folder}), embedder, judge, old)
    return ENGINES.get(config.engine)(left, right, config, embedder, judge, old)


def run_local(left: str | Path, right: str | Path, config: AlignConfig, embedder: Embedder | None, judge: Judge | None, old: OldRun | None) -> AlignmentResult:
    """The ``local`` engine: every stage in this process."""
    with relaxed_gc():
        return _align(left, right, config, embedder, judge, old)


def _align(
    left: str | Path,
    right: str | Path,
    config: AlignConfig,
    embedder: Embedder | None,
    judge: Judge | None,
    old: OldRun | None = None,
    serve: Serve | None = None,
    judge_device: str | None = None,
    lean: bool = False,
    models_done: Callable[[], None] | None = None,
    loader: Loader | None = None,
    fuser: Fuser | None = None,
) -> AlignmentResult:
    """The stages in order; ``serve`` (an engine's) makes the judge from its backend, built
    for ``judge_device`` (the engine's workers') when given (see
    :func:`kgalign.judging.build.build_judge`). A ``lean`` run holds only what the later
    stages read: an input file's triples are not kept after its entity table is built
    (fusion reads the file again: :class:`kgalign.io.reloaded.ReloadedTriples`), and,
    unless duplicates are searched, the tables' entity contents are let go once the
    retrieval has read them (:func:`kgalign.incremental.state.release_contents`).
    ``models_done`` is called once no later stage asks the embedder or the judge
    (before fusion): an engine lets its model workers go there. A lean run's
    ``loader`` (an engine's) builds an input file's entity table where it can, without
    the driver parsing the file (:class:`Loader`), and its ``fuser`` the fusion
    (:class:`Fuser`)."""
    check_endpoint_inputs(left, right, config)
    if judge is None and config.judge != "none":
        check_judge(*config.judge_choice)
    gold, gold_name = _gold(config)
    timer = StageTimer()
    keeps = old is not None and keeps_earlier(config, judge is not None or config.judge != "none")
    # The pairwise threshold is settled before the graphs are read: a judge's training
    # record that cannot be read stops the run at once.
    prepared, effective = _prepare(left, right, settle_pair_threshold(config, judge is not None), embedder, timer, True, gold, old, lean, loader)
    vote = effective.vote
    reused_answers = False
    if old is not None:
        reused_answers = reuse_answers(old, config.cache_path)

    several = vote.sets and effective.resolve in SEVERAL_PER_SOURCE
    kept: dict[str, tuple[Decision, str]] = {}
    minimum = config.keep_earlier if keeps else None
    if old is not None and minimum is not None:
        with timer.stage("keep"):
            left_side, right_side = (prepared.left_table, prepared.left_profiles), (prepared.right_table, prepared.right_profiles)
            kept = kept_decisions(old, prepared.candidates, left_side, right_side, effective, minimum, prepared.human, several)

    guard: dict[str, Any] = {}
    candidates, human = prepared.candidates, prepared.human
    decided = {**human, **{source: decision for source, (decision, _) in kept.items()}}
    # Sources the judge would be asked about: adaptation and the judge check are for them.
    contested = sum(1 for c in candidates if c.items and c.source not in decided and not is_gated(c, vote))
    adaptation = None
    if config.adapt.enabled and judge is None:
        if contested:
            from kgalign.finetune.adapt import adapt_judge

            with timer.stage("adapt"):
                adaptation = adapt_judge(prepared, effective)
            if adaptation is not None:
                log.info("%s", adaptation.brief())
                trained: dict[str, Any] = {"model": adaptation.folder, "adapter": "none"} if config.adapt.method == "full" else {"adapter": adaptation.folder}
                if config.vote.pair_threshold is None and vote.question == "pairwise":
                    # One half, as measured (docs/judge.md): the adapted judge's own record chose
                    # its threshold on a fifth of the run's confident sources, its easiest.
                    trained["vote"] = {"pair_threshold": 0.5}
                effective = effective.replace(**trained)
                vote = effective.vote
        else:
            log.info("--adapt: every source is decided without the judge; nothing to adapt it for")

    cached_judge, cache = build_judge(effective, judge, serve, judge_device)
    asked_judge = cached_judge  # counted and named in run.json, whether or not the check passes
    judge_check = None
    required = required_auc(effective, judge is not None) if cached_judge is not None and adaptation is None else None
    if cached_judge is not None and required is not None and contested:
        with timer.stage("check"):
            judge_check = check_on_confident(cached_judge, candidates, prepared.left_profiles, prepared.right_profiles, effective, decided, required, contested)
    if judge_check is not None and not judge_check.passed:
        # Not trusted on this data: every source is decided as without a judge (its
        # answers to the check stay in the cache).
        if cache is not None:
            cache.close()
        cached_judge, cache = None, None

    # One counterpart a source at most: its runner-up is a non-match (the cut's premise).
    cuts: dict[str, Cut] = {}
    scorer = None
    if cached_judge is None and vote.cut and vote.min_score == 0.0 and prepared.lexical is not None and effective.resolve in ONE_TO_ONE:
        with timer.stage("cut"):
            scorer = lexical_scorer(prepared.lexical, list(prepared.left_profiles), list(prepared.right_profiles))
            cuts = cut_by_block(prepared.candidates, scorer, prepared.classes)

    with timer.stage("judge"):
        questions_total = questions_estimate(vote, sum(1 for c in candidates if c.items and c.source not in decided))
        with progress_bar("judge", questions_total if cached_judge else 0) as advance:
            if cached_judge is not None:
                cached_judge.on_answered = advance
            # In an auto run the judge also checks a sample of retrieval's confident extra records.
            audit = several and prepared.cardinality is not None
            decisions = decide(candidates, prepared.left_profiles, prepared.right_profiles, cached_judge, vote, decided=decided, several=several, audit=audit)
        if cache is not None:
            cache.close()
        if cached_judge is not None:
            check_answered(decisions, cached_judge.name)

    if prepared.cardinality is not None and cached_judge is not None:
        # The judge's answers confirm or refute the "many" sides retrieval found.
        prepared.cardinality = with_judge(prepared.cardinality, judge_evidence(decisions, candidates, several))
        effective = effective.replace(resolve=MODE_OF_CARDINALITY[prepared.cardinality.choice])
        log.info("%s; --resolve %s", prepared.cardinality.judge_summary(), effective.resolve)

    explained = 0
    if config.explain:
        with timer.stage("explain"):
            explained = explain_decisions(decisions, prepared.left_profiles, prepared.right_profiles, cached_judge, vote.datamark)

    with timer.stage("resolve"):
        links, conflicts = resolve(decisions, with_human_targets(candidates, decisions), effective.resolve, vote.min_score)
        if effective.resolve not in ONE_TO_ONE and config.resolve != "n:m":
            links, bounded = bound_clusters(links)
            guard["clusters"] = bounded.to_dict()
        if cuts and scorer is not None:
            by_person = {d.source for d in decisions if d.human}
            mutual = {(c.source, c.items[0].iri) for c in candidates if c.items and c.mutual}
            links, applied, unlinked = apply_cuts(links, cuts, scorer, by_person.__contains__, mutual)
            guard["cut"] = [cut.to_dict() for cut in applied]
            for cands in candidates:
                cands.below_cut = cands.source in unlinked
        seed_links = [Link(a, b, 1.0) for a, b in prepared.seeds]
        links = sorted(links + seed_links, key=lambda link: (link.left, link.right))
    warnings = []
    excess = excess_warning(len(links), len(prepared.left_table), len(prepared.right_table), prepared.cardinality.choice if prepared.cardinality else effective.resolve)
    if excess:
        log.warning("%s", excess)
        warnings.append(excess)

    duplicates: dict[str, list[Link]] = {}
    duplicate_checks = {}
    sides = dedup_sides(config.dedup, prepared.cardinality)
    if sides:
        with timer.stage("dedup"):
            own_embedder = embedder or configured_embedder(effective)
            for side in sides:
                table = prepared.left_table if side == "left" else prepared.right_table
                profiles = prepared.left_profiles if side == "left" else prepared.right_profiles
                duplicates[side], duplicate_checks[side] = side_duplicates(table, profiles, effective, own_embedder, cached_judge)
                log.info("%s graph: %d duplicate pairs", side, len(duplicates[side]))

    if models_done is not None:
        models_done()
    with timer.stage("fuse"):
        fused = fuser(prepared.left_graph, prepared.right_graph, links, config.canonical, config.conflicts, duplicates) if fuser is not None else None
        fusion = fused if fused is not None else fuse(prepared.left_graph, prepared.right_graph, links, config.canonical, config.conflicts, duplicates)

    result = AlignmentResult(
        config=config,
        effective=effective,
        left_path=str(left),
        right_path=str(right),
        prepared=prepared,
        decisions=decisions,
        links=links,
        conflicts=conflicts,
        fusion=fusion,
        timer=timer,
        counts={},
        judge_id=judge_id(asked_judge, effective),
    )
    result.duplicates = duplicates
    result.guard = guard
    result.adaptation = adaptation.to_dict() if adaptation is not None else None
    result.judge_check = judge_check.to_dict() if judge_check is not None else None
    if judge_check is not None and not judge_check.passed:
        warnings.append(judge_check.brief())
    result.warnings = warnings
    if sides:
        result.clusters = {
            "duplicates": {
                side: {"pairs": len(duplicates[side]), "split": check.split, "flagged": [list(map(str, nodes)) for nodes in check.flagged]}
                for side, check in duplicate_checks.items()
            },
        }
    result.counts = result.count(asked_judge, explained, len(seed_links))
    if gold is not None:
        result.evaluate(gold, gold_name)
    if old is not None:
        with timer.stage("since"):
            result.changes, result.since = compare(old, result, {source: reason for source, (_, reason) in kept.items()})
        result.since["reused"] = {
            "judge_answers": reused_answers,
            "cache_hits": result.counts["cache_hits"],
            "llm_questions": result.counts["llm_questions"],
            "decisions_kept": result.counts["kept"],
            "vectors_read": result.counts["vectors_read"],
            "vectors_computed": result.counts["vectors_computed"],
        }
        log.info("%s", summary_line(result.since, result.counts))
    return result


def prepare(
    left: str | Path,
    right: str | Path,
    config: AlignConfig,
    embedder: Embedder | None = None,
    timer: StageTimer | None = None,
    retrieve_candidates: bool = True,
) -> Prepared:
    """The stages before the judge: load, select, embed, retrieve, exactly as :func:`align` runs them.

    With ``retrieve_candidates`` false it stops after the profiles (no embedding, no
    candidates): enough to rebuild the judge's questions from a decision log.
    """
    prepared, _ = _prepare(left, right, config, embedder, timer or StageTimer(), retrieve_candidates, _gold(config)[0])
    return prepared


def _profiled(table: EntityTable, selection: Selection, with_neighbours: bool, spill: bool) -> tuple[Mapping[str, EntityProfile], list[str]]:
    """``table``'s profiles by IRI (:func:`profile_map`: in a file with ``spill``) and
    their texts to embed, in the table's order; each profile is made, its text taken,
    and it is written, one batch at a time."""
    texts: list[str] = []

    def profiles() -> Iterator[EntityProfile]:
        for profile in iter_profiles(table, selection):
            texts.append(profile.text(with_neighbours))
            yield profile

    return profile_map(profiles(), spill), texts


def _prepare(
    left: str | Path,
    right: str | Path,
    config: AlignConfig,
    embedder: Embedder | None,
    timer: StageTimer,
    retrieve_candidates: bool,
    gold: list[Pair] | None,
    old: OldRun | None = None,
    lean: bool = False,
    loader: Loader | None = None,
) -> tuple[Prepared, AlignConfig]:
    """Load, select and retrieve; ``old``: the earlier run of an update (``--since``), whose
    entities the inputs must share (checked once they are loaded) and whose attribute
    order the prompts keep where only the order changed (:func:`keep_earlier_order`)."""
    classes = list(config.classes) or None
    with timer.stage("load"):
        try:
            left_graph, left_table = _load(left, "left", config, classes, lean, loader)
            right_graph, right_table = _load(right, "right", config, classes, lean, loader)
        finally:
            if loader is not None:
                loader.close()
        human = read_human_decisions(config.corrections, left_table, right_table)
    if old is not None:
        check_overlap(old, left_table.entities, right_table.entities)
    earlier_selection = old.selection if old is not None else None

    effective = _resolve_auto(config, has_structure(left_table) and has_structure(right_table), retrieve_candidates and embedder is None, gold)
    retrieval = effective.retrieval
    with timer.stage("select"):
        selections = {}
        # With the structure channel on, neighbours are compared through their own
        # vectors, so the embedded text keeps to the entity's name and attributes.
        with_neighbours = (retrieval.structure_weight or 0.0) <= 0
        sides = []
        tables = (("left", left_table), ("right", right_table))
        # Each graph's predicates are ranked by how well their values can agree with the
        # other's (where entities have attributes: labels alone are not ranked).
        words = {side: vocabulary(table) if _has_attributes(table) else None for side, table in tables}
        chosen = {side: configured_selection(table, config, words["right" if side == "left" else "left"]) for side, table in tables}
        # A predicate named to show that neither graph has fails here, before any profile.
        check_named_predicates(list(chosen.values()), config.attributes, config.relations)
        for side, table in tables:
            selection = chosen[side]
            # The profiles by IRI, each text to embed taken as its profile is made; in a
            # file where the run is lean (only a few are read at a time from here on).
            by_iri, texts = _profiled(table, selection, with_neighbours, lean)
            shown = keep_earlier_order(selection, (earlier_selection or {}).get(side), side)
            if shown is not selection:
                # The prompts show the attributes in the earlier order; retrieval scores the
                # texts in this run's, as a full run does.
                by_iri, _ = _profiled(table, shown, with_neighbours, lean)
            selections[side] = shown
            sides.append((by_iri, texts))
        (left_by_iri, left_texts), (right_by_iri, right_texts) = sides

    lexical = None

    def rows() -> tuple:
        """The TF-IDF rows of every entity, fitted once: for the classes, the cardinality
        detection, the no-counterpart cut and retrieval, whichever asks first."""
        nonlocal lexical
        if lexical is None:
            lexical = lexical_vectors(left_texts, right_texts, spill=lean)
        return lexical

    left_order, right_order = list(left_by_iri), list(right_by_iri)
    aligned: ClassAlignment | None = None
    block_rows = None
    if not config.classes:
        with timer.stage("classes"):
            aligned = align_classes(left_table, right_table, config.class_map, rows, left_order, right_order)
        if not aligned.trivial:
            log.info("%s", aligned.summary())
            block_rows = _block_rows(aligned, left_order, right_order)

    cardinality = None
    if config.resolve == "auto":
        with timer.stage("cardinality"):
            if block_rows is not None:
                cardinality = detect_in_blocks(left_texts, right_texts, block_rows, vectors=rows())
            else:
                cardinality = detect_cardinality(left_texts, right_texts, vectors=rows())
            effective = effective.replace(resolve=MODE_OF_CARDINALITY[cardinality.choice])
        log.info("%s; --resolve %s", cardinality.summary(), effective.resolve)

    if not retrieve_candidates:
        return Prepared(
            left_graph, right_graph, left_table, right_table, left_by_iri, right_by_iri, [], human, cardinality=cardinality, selections=selections, classes=aligned
        ), effective

    if config.judge == "none" and config.vote.cut:
        rows()  # the no-counterpart cut's scale, and retrieval's
    seed_pairs = _seed_pairs(config)
    seeds = known_seeds(seed_pairs, left_table, right_table)
    if embedder is None:
        embedder = configured_embedder(effective)
    read, computed = getattr(embedder, "read", 0), getattr(embedder, "computed", 0)

    def release() -> None:
        for table in (left_table, right_table):
            release_contents(table)

    candidates, stats = find_candidates(
        effective,
        seeds,
        Side(left_table, list(left_by_iri), left_texts),
        Side(right_table, list(right_by_iri), right_texts),
        embedder,
        timer,
        lexical,
        release if lean and config.dedup == "none" else None,
        spill=lean,
        blocks=None if aligned is None or aligned.trivial else aligned.blocks,
    )
    if aligned is not None:
        candidates = aligned.filter(candidates)
    prepared = Prepared(
        left_graph,
        right_graph,
        left_table,
        right_table,
        left_by_iri,
        right_by_iri,
        candidates,
        human,
        seeds=seeds,
        cascade=stats,
        seed_pairs=seed_pairs,
        cardinality=cardinality,
        selections=selections,
        vectors={"read": getattr(embedder, "read", 0) - read, "computed": getattr(embedder, "computed", 0) - computed},
        classes=aligned,
        lexical=lexical,
    )
    return prepared, effective


def _has_attributes(table: EntityTable) -> bool:
    """Whether any entity of ``table`` has an attribute (read until the first that does)."""
    return any(entity.attributes for entity in table.entities.values())


def _block_rows(classes: ClassAlignment, left_order: list[str], right_order: list[str]) -> list[tuple[Any, Any]]:
    """Each block of ``classes`` as row numbers of each side's order."""
    import numpy as np

    left_at = {iri: i for i, iri in enumerate(left_order)}
    right_at = {iri: j for j, iri in enumerate(right_order)}
    return [(np.array(sorted(left_at[i] for i in a), dtype=np.int64), np.array(sorted(right_at[j] for j in b), dtype=np.int64)) for a, b in classes.blocks]


def _load(
    value: str | Path, side: str, config: AlignConfig, classes: list[str] | None, reload_graph: bool, loader: Loader | None = None
) -> tuple[TripleSource, EntityTable]:
    """One input's triples and entity table. An endpoint input is read into a local copy
    first (kgalign.io.sparql), then loaded as a file; with ``reload_graph`` a file input's
    triples are dropped once its table is built, to be read again by fusion (an
    endpoint's copy is temporary: its triples are kept) and the table's entities kept in
    a temporary file (:mod:`kgalign.io.entity_file`), and ``loader`` may build the
    table instead of this process."""
    with local_input(value, side, config) as (file, fmt):
        reloaded = reload_graph and not is_endpoint(value)
        taken = fingerprint(Path(file)) if reloaded else None
        if reloaded and loader is not None:
            loaded = loader(Path(file), side, fmt, classes, config.keep_classes, config.fold_classes)
            if loaded is not None:
                return ReloadedTriples(file, fmt, config.id_column, loaded[0], taken), loaded[1]
        graph, table = load_entities(file, side, fmt, classes, id_column=config.id_column, keep=config.keep_classes, fold=config.fold_classes)
        if reload_graph:  # a lean run: the entities in a file, as the partitions' loader gives them
            spill_table(table)
        if reloaded:
            return ReloadedTriples(file, fmt, config.id_column, graph, taken), table
        return graph, table


def keep_earlier_order(selection: Selection, earlier: dict[str, list[str]] | None, side: str) -> Selection:
    """``selection``, in the earlier run's order when it ranks the same predicates
    (``--since``); ``selection`` itself otherwise.

    The ranking follows the data, so new records can reorder the attributes; that would
    change every prompt, and the judge's earlier answers would all be lost. When the
    same attributes and relations are chosen, the prompts keep their earlier order. (The
    texts retrieval scores keep this run's order, so that the scores, candidates and
    gated sources are a full run's: :func:`_prepare`.)
    """
    if not earlier:
        return selection
    attributes, relations = list(earlier.get("attributes", [])), list(earlier.get("relations", []))
    if set(attributes) != set(selection.attributes) or set(relations) != set(selection.relations):
        log.info("%s: the attribute ranking changed since the earlier run; the new one is used", side)
        return selection
    if attributes == selection.attributes and relations == selection.relations:
        return selection  # the same order: nothing to profile again
    return dataclasses.replace(selection, attributes=attributes, relations=relations)


def _resolve_auto(config: AlignConfig, related: bool, embeds: bool, gold: list[Pair] | None) -> AlignConfig:
    """A copy of ``config`` with "auto" values made concrete for these inputs."""
    retrieval = config.retrieval
    structure_weight = retrieval.structure_weight
    if structure_weight is None:
        structure_weight = AUTO_STRUCTURE_WEIGHT if related else 0.0
    structure_vectors = retrieval.structure_vectors
    if structure_vectors == "auto":
        structure_vectors = "lexical" if retrieval.mode == "cascade" else "dense"
    changes: dict = {
        "retrieval": {"structure_weight": structure_weight, "structure_vectors": structure_vectors},
        "vote": {"seed": config.seed},
    }
    if config.device == "auto" and (embeds or config.judge != "none"):
        changes["device"] = resolve_device(config.device)
    if config.only_gold_entities and gold is not None:
        changes["only_left"] = sorted({a for a, _ in gold})
        changes["only_right"] = sorted({b for _, b in gold})
    if config.vote.closed_world is None:
        # Aligning only the gold links' entities, each source has a counterpart.
        changes["vote"]["closed_world"] = bool(config.only_gold_entities and gold is not None)
    return config.replace(**changes)


def _gold(config: AlignConfig) -> tuple[list[Pair] | None, str]:
    """The gold pairs a run is scored on (test_gold before gold), and their file's name."""
    path = config.test_gold or config.gold
    return (read_pairs(path), str(path)) if path else (None, "")


def _seed_pairs(config: AlignConfig) -> list[tuple[str, str]]:
    if isinstance(config.seed_links, str):
        return read_pairs(config.seed_links)
    return list(config.seed_links)  # validated: (left, right) tuples
