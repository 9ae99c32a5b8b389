"""One call that wires the stages: load, select, retrieve, judge and vote, resolve, fuse.

>>> result = align("left.ttl", "right.ttl", AlignConfig(judge="none"))  # doctest: +SKIP
>>> result.save("out/")                                                  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import platform
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from rdflib import URIRef

from kgalign import __version__
from kgalign.retrieval.embed import DEFAULT_MAX_TOKENS, CachedEmbedder, Embedder, SentenceTransformerEmbedder, encode_sides
from kgalign.errors import KgalignError
from kgalign.evaluation.metrics import Pair, evaluate_links, filter_gold, ranking_metrics, read_pairs
from kgalign.fusion.export import FusedRows, provenance_dataset, write_alignment, write_dataset, write_fused, write_links
from kgalign.fusion.fuse import FusionResult, fuse
from kgalign.runtime.gctune import relaxed_gc
from kgalign.judging.base import Judge, check_judge, judge_spec, make_judge
from kgalign.judging.cache import AnswerCache, CachedJudge
from kgalign.judging.lazy import LazyJudge
from kgalign.io.load import load_entities
from kgalign.review.votes import decision_record, write_votes
from kgalign.runtime.device import resolve_device
from kgalign.review.corrections import check_corrections, human_decisions, read_corrections
from kgalign.model import Candidate, Candidates, Decision, EntityProfile, EntityTable, Link
from kgalign.runtime.progress import progress_bar
from kgalign.runtime.redact import redact_options
from kgalign.resolution.resolve import Conflict, resolve
from kgalign.retrieval.retrieve import AUTO_STRUCTURE_WEIGHT, RetrievalConfig, lexical_vectors, retrieve
from kgalign.selection.predicates import build_profiles, choose_predicates, predicate_stats
from kgalign.runtime.stages import StageTimer
from kgalign.io.triples import TripleSource
from kgalign.retrieval.structure import adjacency, has_structure, neighbour_vectors, propagate_seeds
from kgalign.io.atomic import deferred_renames, write_text_atomic
from kgalign.retrieval.cascade import CascadeStats, cascade
from kgalign.vocab import KGA
from kgalign.judging.vote import VoteConfig, decide, explain_decisions

log = logging.getLogger(__name__)

OUTPUT_FILES = ("fused.ttl", "links.ttl", "alignment.rdf", "votes.jsonl", "run.json", "provenance.trig", "metrics.json")


@dataclass
class AlignConfig:
    """Every option of a run. Defaults are the ones chosen by benchmark (see README)."""

    judge: str = "none"
    model: str | None = None
    adapter: str | None = None
    judge_options: dict[str, Any] = field(default_factory=dict)
    embedder: str | None = None
    embed_precision: str = "auto"
    embed_engine: str = "auto"
    embed_max_tokens: int | None = DEFAULT_MAX_TOKENS
    device: str = "auto"
    left_format: str | None = None
    right_format: str | None = None
    classes: list[str] = field(default_factory=list)
    attributes: list[str] = field(default_factory=list)
    relations: list[str] = field(default_factory=list)
    max_attributes: int = 8
    max_neighbours: int = 5
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    vote: VoteConfig = field(default_factory=VoteConfig)
    resolve: str = "assignment"
    canonical: str = "left"
    conflicts: str = "keep-all"
    cache_path: str | None = None
    seed: int = 0
    seed_links: list[tuple[str, str]] = field(default_factory=list)
    only_left: list[str] = field(default_factory=list)
    only_right: list[str] = field(default_factory=list)
    corrections: str | None = None
    explain: bool = False


@dataclass
class Prepared:
    """What a run builds before the judge: input triples, entity tables, profiles and candidates.

    ``left_profiles`` and ``right_profiles`` map IRIs to what the judge is shown;
    ``human`` holds the decisions of the corrections file, by source IRI; ``seeds``
    the seed links naming entities of the inputs.
    """

    left_graph: TripleSource
    right_graph: TripleSource
    left_table: EntityTable
    right_table: EntityTable
    left_profiles: dict[str, EntityProfile]
    right_profiles: dict[str, EntityProfile]
    candidates: list[Candidates]
    human: dict[str, Decision]
    seeds: list[tuple[str, str]] = field(default_factory=list)
    cascade: CascadeStats | None = None


@dataclass
class AlignmentResult:
    """Everything a run produced: the :class:`Prepared` stages, then the judge's and what followed.

    ``left_graph``, ``left_table``, ``left_profiles``, ``candidates`` (and their right
    counterparts) are read-only views of ``prepared``, kept for older callers.
    """

    config: AlignConfig
    left_path: str
    right_path: str
    prepared: Prepared
    decisions: list[Decision]
    links: list[Link]
    conflicts: list[Conflict]
    fusion: FusionResult
    timer: StageTimer
    counts: dict[str, int]
    judge_id: str | None
    metrics: dict[str, Any] | None = None
    started: float = field(default_factory=time.time)

    @property
    def left_graph(self) -> TripleSource:
        return self.prepared.left_graph

    @property
    def right_graph(self) -> TripleSource:
        return self.prepared.right_graph

    @property
    def left_table(self) -> EntityTable:
        return self.prepared.left_table

    @property
    def right_table(self) -> EntityTable:
        return self.prepared.right_table

    @property
    def left_profiles(self) -> dict[str, EntityProfile]:
        return self.prepared.left_profiles

    @property
    def right_profiles(self) -> dict[str, EntityProfile]:
        return self.prepared.right_profiles

    @property
    def candidates(self) -> list[Candidates]:
        return self.prepared.candidates

    def evaluate(self, gold: list[Pair], name: str = "gold") -> dict[str, Any]:
        """Score links and retrieval against ``gold``. Seed links are known, not found:
        they and the gold pairs of their sources are left out of every figure."""
        seeds = set(self.config.seed_links)
        seed_sources = {a for a, _ in seeds}
        gold = [pair for pair in gold if pair[0] not in seed_sources]
        _, missing = filter_gold(gold, set(self.left_table.entities), set(self.right_table.entities), name)
        link = evaluate_links([l for l in self.links if (l.left, l.right) not in seeds], gold)
        metrics: dict[str, Any] = asdict(link)
        metrics.update(ranking_metrics(self.candidates, gold))
        metrics["gold_pairs_not_in_graphs"] = missing
        self.metrics = metrics
        return metrics

    def vote_records(self) -> list[dict[str, Any]]:
        lost = {c.source: c.winner for c in self.conflicts}
        linked = {link.left: link.right for link in self.links}
        return [
            decision_record(d, c, self.left_profiles[d.source], self.right_profiles, lost.get(d.source), linked.get(d.source))
            for d, c in zip(self.decisions, self.candidates)
        ]

    def run_info(self) -> dict[str, Any]:
        config = asdict(self.config)
        config["judge_options"] = redact_options(config["judge_options"])  # --llm-url may carry credentials
        return {
            "kgalign": __version__,
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started)),
            "left": str(self.left_path),
            "right": str(self.right_path),
            "seed": self.config.seed,
            "judge": self.judge_id,
            "adapter": self.config.adapter,
            "config": config,
            "versions": package_versions(),
            "stages": self.timer.stages,
            "total_seconds": self.timer.total_seconds,
            "peak_rss_mb": StageTimer.process_peak_mb(),
            "counts": self.counts,
            "metrics": self.metrics,
        }

    def save(self, outdir: str | Path) -> dict[str, Path]:
        """Write every output file into ``outdir``: all of them, or none.

        Each file is written under a temporary name, and all are renamed into place
        only after the last one is written (:func:`kgalign.io.atomic.deferred_renames`), so
        a failure or an interrupt while writing leaves ``outdir`` as it was. Without
        metrics, a metrics.json left by an earlier run is removed, so that it cannot be
        read as this run's.
        """
        outdir = Path(outdir)
        paths = {name: outdir / name for name in OUTPUT_FILES}
        if self.metrics is None:
            paths.pop("metrics.json")
        try:
            outdir.mkdir(parents=True, exist_ok=True)
            with relaxed_gc(), deferred_renames():
                with self.timer.stage("write"):
                    rendered = FusedRows.of(self.fusion)  # for fused.ttl (when large) and provenance.trig
                    write_fused(self.fusion, paths["fused.ttl"], rendered)
                    write_links(self.links, paths["links.ttl"])
                    write_alignment(self.links, paths["alignment.rdf"], Path(self.left_path).name, Path(self.right_path).name)
                    write_votes(self.vote_records(), paths["votes.jsonl"])
                    run_iri = URIRef(f"{KGA}run/{int(self.started)}")
                    write_dataset(provenance_dataset(self.fusion, run_iri, self.left_path, self.right_path, rendered), paths["provenance.trig"])
                    if self.metrics is not None:
                        write_json(paths["metrics.json"], self.metrics)
                write_json(paths["run.json"], self.run_info())
            if self.metrics is None and (outdir / "metrics.json").is_file():
                (outdir / "metrics.json").unlink()
                log.info("%s: removed the metrics.json of an earlier run (this run has no gold)", outdir)
        except OSError as exc:
            raise KgalignError(f"{exc.filename or outdir}: cannot write the outputs ({exc.strerror or exc})") from None
        return paths


VERSIONED_PACKAGES = {
    "rdflib": "rdflib",
    "faiss": "faiss-cpu",
    "torch": "torch",
    "sentence_transformers": "sentence-transformers",
    "scikit_learn": "scikit-learn",
    "numpy": "numpy",
}


def package_versions() -> dict[str, str]:
    """Python's and the main libraries' versions, read from the installed metadata.

    Nothing is imported: a run whose vectors come from the cache never loads torch or
    sentence-transformers, and importing them only for their version took seconds.
    """
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": platform.python_version()}
    for name, distribution in VERSIONED_PACKAGES.items():
        try:
            versions[name] = version(distribution)
        except PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def write_json(path: Path, data: Any) -> None:
    import json

    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def build_judge(config: AlignConfig, cache_path: str | Path | None) -> tuple[CachedJudge | None, AnswerCache | None]:
    if config.judge == "none":
        return None, None
    options = dict(config.judge_options)
    if config.model:
        options["model"] = config.model
    if config.adapter:
        options["adapter"] = config.adapter
    if judge_spec(config.judge).takes_device:
        config.device = resolve_device(config.device)
        options.setdefault("device", config.device)
    # Built on the first question: a run whose every source is gated loads no model.
    inner = LazyJudge(config.judge, lambda: make_judge(config.judge, **options))
    cache = AnswerCache(cache_path) if cache_path else None
    return CachedJudge(inner, cache), cache


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
    timer = timer or StageTimer()
    with timer.stage("load"):
        left_graph, left_table = load_entities(left, "left", config.left_format, config.classes or None)
        right_graph, right_table = load_entities(right, "right", config.right_format, config.classes or None)
        human = _read_human_decisions(config.corrections, left_table, right_table)

    if config.retrieval.structure_weight < 0:
        related = has_structure(left_table) and has_structure(right_table)
        config.retrieval.structure_weight = AUTO_STRUCTURE_WEIGHT if related else 0.0

    with timer.stage("select"):
        profiles = []
        for table in (left_table, right_table):
            selection = choose_predicates(
                predicate_stats(table),
                config.attributes or None,
                config.relations or None,
                max_attributes=config.max_attributes,
                max_neighbours=config.max_neighbours,
            )
            profiles.append(build_profiles(table, selection))
        left_profiles, right_profiles = profiles
        # With the structure channel on, neighbours are compared through their own
        # vectors, so the embedded text keeps to the entity's name and attributes.
        with_neighbours = config.retrieval.structure_weight <= 0
        left_texts = [p.text(with_neighbours) for p in left_profiles]
        right_texts = [p.text(with_neighbours) for p in right_profiles]

    left_by_iri = {p.iri: p for p in left_profiles}
    right_by_iri = {p.iri: p for p in right_profiles}
    if not retrieve_candidates:
        return Prepared(left_graph, right_graph, left_table, right_table, left_by_iri, right_by_iri, [], human)

    seeds = _known_seeds(config.seed_links, left_table, right_table)
    if embedder is None:
        config.device = resolve_device(config.device)
        embedder = CachedEmbedder(
            SentenceTransformerEmbedder(
                config.embedder,
                device=config.device,
                precision=config.embed_precision,
                max_tokens=config.embed_max_tokens,
                engine=config.embed_engine,
            )
        )
    if config.retrieval.mode == "cascade":
        candidates, stats = _cascade_candidates(
            config, seeds, left_table, right_table, left_profiles, right_profiles, left_texts, right_texts, embedder, timer
        )
        return Prepared(left_graph, right_graph, left_table, right_table, left_by_iri, right_by_iri, candidates, human, seeds=seeds, cascade=stats)

    left_vectors = right_vectors = None
    with timer.stage("embed"):
        if config.retrieval.needs_embeddings:
            left_vectors, right_vectors = encode_sides(embedder, left_texts, right_texts)
        else:
            log.info("no embeddings: candidates from the lexical channel alone (--dense-weight 0)")

    with timer.stage("retrieve"):
        candidates = _retrieve_candidates(
            config, seeds, left_table, right_table, left_profiles, right_profiles, left_texts, right_texts, left_vectors, right_vectors
        )
    return Prepared(left_graph, right_graph, left_table, right_table, left_by_iri, right_by_iri, candidates, human, seeds=seeds)


def _cascade_candidates(
    config: AlignConfig,
    seeds: list[tuple[str, str]],
    left_table: EntityTable,
    right_table: EntityTable,
    left_profiles: list[EntityProfile],
    right_profiles: list[EntityProfile],
    left_texts: list[str],
    right_texts: list[str],
    embedder: Embedder,
    timer: StageTimer,
) -> tuple[list[Candidates], CascadeStats]:
    """Candidates by :func:`kgalign.retrieval.cascade.cascade`: TF-IDF rows of every entity (the
    neighbour channel averages them), embeddings only for what the lexical pass leaves open."""
    retrieval = replace(config.retrieval, exclusive=config.retrieval.exclusive and config.resolve != "many-to-one")
    left_iris, right_iris, rows, cols = _participants(config, seeds, left_profiles, right_profiles)
    with timer.stage("retrieve"):
        left_lex, right_lex = lexical_vectors(left_texts, right_texts)
        left_struct = right_struct = None
        if _uses_structure(retrieval, left_table, right_table):
            left_struct, right_struct = _neighbour_channel(left_table, right_table, left_iris, right_iris, left_lex, right_lex, seeds, rows, cols)

    def encode(left: list[str], right: list[str]) -> tuple[np.ndarray, np.ndarray]:
        return encode_sides(embedder, left, right)

    with progress_bar("retrieve", len(rows)) as advance:
        candidates, stats = cascade(
            [left_iris[i] for i in rows],
            [right_iris[j] for j in cols],
            [left_texts[i] for i in rows],
            [right_texts[j] for j in cols],
            left_lex[rows],
            right_lex[cols],
            encode,
            retrieval,
            left_struct,
            right_struct,
            timer.stage,
            advance,
        )
    if "embed" not in timer.stages:
        timer.stages["embed"] = {"seconds": 0.0, "peak_rss_mb": StageTimer.current_mb()}
    return candidates, stats


def align(
    left: str | Path,
    right: str | Path,
    config: AlignConfig | None = None,
    embedder: Embedder | None = None,
    judge: Judge | None = None,
) -> AlignmentResult:
    """Run the whole pipeline on two graph files and return everything it produced.

    Without a ``judge`` object, the backend ``config.judge`` is checked first
    (:func:`kgalign.judging.base.check_judge`): a missing package stops the run before
    the graphs are loaded.
    """
    with relaxed_gc():
        return _align(left, right, config or AlignConfig(), embedder, judge)


def _align(left: str | Path, right: str | Path, config: AlignConfig, embedder: Embedder | None, judge: Judge | None) -> AlignmentResult:
    if judge is None and config.judge != "none":
        check_judge(config.judge, config.model, config.adapter)
    config.vote.seed = config.seed
    timer = StageTimer()
    prepared = prepare(left, right, config, embedder, timer)
    left_table, right_table = prepared.left_table, prepared.right_table
    left_by_iri, right_by_iri = prepared.left_profiles, prepared.right_profiles
    candidates, seeds, human = prepared.candidates, prepared.seeds, prepared.human
    cache: AnswerCache | None = None
    with timer.stage("judge"):
        if judge is not None:
            cached_judge: CachedJudge | None = CachedJudge(judge, AnswerCache(config.cache_path) if config.cache_path else None)
            cache = cached_judge.cache
        else:
            cached_judge, cache = build_judge(config, config.cache_path)
        questions_total = config.vote.rounds * sum(1 for c in candidates if c.items and c.source not in human)
        with progress_bar("judge", questions_total if cached_judge else 0) as advance:
            if cached_judge is not None:
                cached_judge.on_answered = advance
            decisions = decide(candidates, left_by_iri, right_by_iri, cached_judge, config.vote, decided=human)
        if cache is not None:
            cache.close()

    explained = 0
    if config.explain:
        with timer.stage("explain"):
            explained = explain_decisions(decisions, left_by_iri, right_by_iri, cached_judge, config.vote.datamark)

    with timer.stage("resolve"):
        links, conflicts = resolve(decisions, _with_human_targets(candidates, decisions), config.resolve, config.vote.min_score)
        seed_links = [Link(a, b, 1.0) for a, b in seeds]
        links = sorted(links + seed_links, key=lambda link: (link.left, link.right))

    with timer.stage("fuse"):
        fusion = fuse(prepared.left_graph, prepared.right_graph, links, config.canonical, config.conflicts)

    counts = {
        "entities_left": len(left_table),
        "entities_right": len(right_table),
        "triples_left": left_table.triple_count,
        "triples_right": right_table.triple_count,
        "candidates": sum(len(c.items) for c in candidates),
        "embedded_entities": _embedded_entities(prepared, config),
        "settled_lexically": prepared.cascade.settled if prepared.cascade else 0,
        "gated": sum(1 for d in decisions if d.gated),
        "judged": sum(1 for d in decisions if d.rounds),
        "llm_questions": cached_judge.sent if cached_judge else 0,
        "cache_hits": cached_judge.hits if cached_judge else 0,
        "prompt_tokens": cached_judge.prompt_tokens if cached_judge else 0,
        "answer_tokens": cached_judge.answer_tokens if cached_judge else 0,
        "matches": sum(1 for d in decisions if d.kind == "match"),
        "uncertain": sum(1 for d in decisions if d.kind == "uncertain"),
        "none": sum(1 for d in decisions if d.kind == "none"),
        "human": sum(1 for d in decisions if d.human),
        "explained": explained,
        "links": len(links),
        "seed_links": len(seed_links),
        "conflicts": len(conflicts),
        "clusters": len(fusion.clusters),
        "fused_triples": len(fusion),
        "dropped_triples": len(fusion.dropped),
    }
    return AlignmentResult(
        config=config,
        left_path=str(left),
        right_path=str(right),
        prepared=prepared,
        decisions=decisions,
        links=links,
        conflicts=conflicts,
        fusion=fusion,
        timer=timer,
        counts=counts,
        judge_id=_judge_id(cached_judge, config),
    )


def _judge_id(judge: CachedJudge | None, config: AlignConfig) -> str:
    """The judge's model id for run.json; a backend never built (nothing asked) is named by its options."""
    if judge is None:
        return "none"
    if judge.loaded:
        return judge.model_id
    model = Path(config.model).name if config.model else config.judge_options.get("llm_model") or "default model"
    return f"{config.judge}:{model} (not loaded: no question was asked)"


def _embedded_entities(prepared: Prepared, config: AlignConfig) -> int:
    """How many entities (sources and targets) the embedder was given."""
    if prepared.cascade is not None:
        return prepared.cascade.embedded_sources + prepared.cascade.embedded_targets
    return len(prepared.left_table) + len(prepared.right_table) if config.retrieval.needs_embeddings else 0


def _read_human_decisions(path: str | None, left: EntityTable, right: EntityTable) -> dict[str, Decision]:
    """The human decisions of a corrections file, checked against the loaded graphs."""
    if not path:
        return {}
    corrections = read_corrections(path)
    check_corrections(corrections, path, left.entities, right.entities)
    log.info("%s: %d human decisions override the judge", path, len(corrections))
    return human_decisions(corrections)


def _with_human_targets(candidates: list[Candidates], decisions: list[Decision]) -> list[Candidates]:
    """The candidates that resolution sees: a human match's target is its source's only one, at the top score.

    So a person's pick is linked even when retrieval did not find it, and no resolver
    prefers another candidate of that source. The list written to the log and scored
    by the ranking metrics stays the retrieved one.
    """
    human = {d.source: d.target for d in decisions if d.human and d.target is not None}
    if not human:
        return candidates
    resolved = []
    for cands in candidates:
        target = human.get(cands.source)
        if target is None:
            resolved.append(cands)
            continue
        score = max([1.0, *(item.score for item in cands.items)])
        resolved.append(Candidates(source=cands.source, items=[Candidate(iri=target, score=score, rank=1)], margin=score, mutual=cands.mutual))
    return resolved


def _retrieve_candidates(
    config: AlignConfig,
    seeds: list[tuple[str, str]],
    left_table: EntityTable,
    right_table: EntityTable,
    left_profiles: list[EntityProfile],
    right_profiles: list[EntityProfile],
    left_texts: list[str],
    right_texts: list[str],
    left_vectors: np.ndarray | None,
    right_vectors: np.ndarray | None,
) -> list[Candidates]:
    """Candidates for the sources that take part, among the targets that take part.

    Seed-linked entities take no part (their match is known); ``only_left`` and
    ``only_right`` restrict both sides further (the closed-world protocol of the
    DBP15K papers). Neighbourhood vectors are built over all entities: from the
    embeddings, or from the TF-IDF rows of every entity's text
    (``structure_vectors="lexical"``).
    """
    retrieval = config.retrieval
    left_iris, right_iris, rows, cols = _participants(config, seeds, left_profiles, right_profiles)
    structure = _uses_structure(retrieval, left_table, right_table)
    lexical_structure = structure and retrieval.structure_vectors == "lexical"
    lex: tuple = (None, None)
    if lexical_structure:
        # Neighbours may be any entity: fit and keep the TF-IDF rows of all of them.
        everyone = lexical_vectors(left_texts, right_texts)
        name_vectors = everyone
        if retrieval.dense_weight < 1.0 or left_vectors is None:
            lex = (everyone[0][rows], everyone[1][cols])
    else:
        name_vectors = (left_vectors, right_vectors)
        if retrieval.dense_weight < 1.0 or left_vectors is None:
            lex = lexical_vectors([left_texts[i] for i in rows], [right_texts[j] for j in cols])
    left_struct = right_struct = None
    if structure:
        left_struct, right_struct = _neighbour_channel(left_table, right_table, left_iris, right_iris, *name_vectors, seeds, rows, cols)
    with progress_bar("retrieve", len(rows)) as advance:
        return retrieve(
            [left_iris[i] for i in rows],
            [right_iris[j] for j in cols],
            None if left_vectors is None else left_vectors[rows],
            None if right_vectors is None else right_vectors[cols],
            lex[0],
            lex[1],
            retrieval,
            advance,
            left_struct,
            right_struct,
        )


def _participants(
    config: AlignConfig, seeds: list[tuple[str, str]], left_profiles: list[EntityProfile], right_profiles: list[EntityProfile]
) -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
    """Both sides' IRIs, and the rows (sources) and columns (targets) that take part."""
    left_iris = [p.iri for p in left_profiles]
    right_iris = [p.iri for p in right_profiles]
    rows = _taking_part(left_iris, {a for a, _ in seeds}, set(config.only_left))
    cols = _taking_part(right_iris, {b for _, b in seeds}, set(config.only_right))
    return left_iris, right_iris, rows, cols


def _uses_structure(retrieval: RetrievalConfig, left_table: EntityTable, right_table: EntityTable) -> bool:
    return retrieval.structure_weight > 0 and has_structure(left_table) and has_structure(right_table)


def _neighbour_channel(
    left_table: EntityTable,
    right_table: EntityTable,
    left_iris: list[str],
    right_iris: list[str],
    left_names: Any,
    right_names: Any,
    seeds: list[tuple[str, str]],
    rows: np.ndarray,
    cols: np.ndarray,
) -> tuple[Any, Any]:
    """Neighbour vectors of the taking-part sources and targets: the mean of each entity's
    neighbours' name vectors (dense or TF-IDF rows, of every entity), seed targets
    carrying their left partner's names."""
    propagated = propagate_seeds(left_names, right_names, left_iris, right_iris, seeds)
    left_struct = neighbour_vectors(adjacency(left_table, left_iris), left_names)[rows]
    right_struct = neighbour_vectors(adjacency(right_table, right_iris), propagated)[cols]
    return left_struct, right_struct


def _taking_part(iris: list[str], excluded: set[str], only: set[str]) -> np.ndarray:
    return np.array([i for i, iri in enumerate(iris) if iri not in excluded and (not only or iri in only)], dtype=np.int64)


def _known_seeds(seeds: list[tuple[str, str]], left: EntityTable, right: EntityTable) -> list[tuple[str, str]]:
    known = [(a, b) for a, b in seeds if a in left.entities and b in right.entities]
    if len(known) < len(seeds):
        log.warning("%d of %d seed links name IRIs that are not entities of the inputs; ignored", len(seeds) - len(known), len(seeds))
    return known


def load_gold(path: str | Path) -> list[Pair]:
    return read_pairs(path)
