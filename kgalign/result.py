"""What a run produced (:class:`AlignmentResult`), and how it writes itself to a folder."""

from __future__ import annotations

import logging
import platform
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rdflib import URIRef

from kgalign import __version__
from kgalign.config import AlignConfig
from kgalign.errors import KgalignError
from kgalign.evaluation.metrics import Pair, score_alignment
from kgalign.fusion.export import DROPPED_GRAPH, FusedRows, provenance_dataset, provenance_header, write_alignment, write_dataset, write_fused, write_links
from kgalign.fusion.fuse import FusionResult
from kgalign.fusion.shards import remove_stale
from kgalign.incremental.since import write_changes
from kgalign.incremental.state import table_hashes, write_state
from kgalign.io.atomic import deferred_renames, remove_later, write_text_atomic
from kgalign.io.inputs import describe_input, input_name
from kgalign.io.triples import TripleSource
from kgalign.judging.adapters import adapter_name
from kgalign.model import Candidates, Decision, EntityProfile, EntityTable, Link
from kgalign.outputs import OPTIONAL_OUTPUTS, OUTPUT_FILES, RUN_SCHEMA
from kgalign.resolution.cardinality import CardinalityEvidence
from kgalign.resolution.clusters import size_histogram
from kgalign.resolution.resolve import Conflict
from kgalign.retrieval.cascade import CascadeStats
from kgalign.review.votes import decision_record, write_votes
from kgalign.run_paths import WORKING_DIRECTORY, working_directory
from kgalign.runtime.gctune import relaxed_gc
from kgalign.runtime.redact import redact_options, redact_url
from kgalign.runtime.stages import StageTimer
from kgalign.selection.classes import ClassAlignment
from kgalign.selection.predicates import Selection
from kgalign.vocab import KGA

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    """What a run builds before the judge: input triples, entity tables, profiles and candidates.

    ``left_profiles`` and ``right_profiles`` map IRIs to what the judge is shown (read
    only; with ``--engine ray`` a :class:`kgalign.selection.profile_file.ProfileFile`,
    which reads a new profile object on each lookup);
    ``human`` holds the decisions of the corrections file, by source IRI; ``seeds``
    the seed links naming entities of the inputs.
    """

    left_graph: TripleSource
    right_graph: TripleSource
    left_table: EntityTable
    right_table: EntityTable
    left_profiles: Mapping[str, EntityProfile]
    right_profiles: Mapping[str, EntityProfile]
    candidates: list[Candidates]
    human: dict[str, Decision]
    seeds: list[tuple[str, str]] = field(default_factory=list)
    cascade: CascadeStats | None = None
    #: Every seed link read (``seeds`` keeps those naming entities of the inputs).
    seed_pairs: list[tuple[str, str]] = field(default_factory=list)
    #: What ``--resolve auto`` measured and chose (None when the mode was given).
    cardinality: CardinalityEvidence | None = None
    #: The predicates each side's profiles show, in order ("left", "right").
    selections: dict[str, Selection] = field(default_factory=dict)
    #: Texts whose vectors the vector cache gave ("read") and the embedder computed ("computed").
    vectors: dict[str, int] = field(default_factory=dict)
    #: The class correspondences and blocks (:mod:`kgalign.selection.classes`); None with ``classes`` given.
    classes: ClassAlignment | None = None
    #: Both sides' TF-IDF rows, in the profiles' order, where the run made them.
    lexical: tuple | None = field(default=None, repr=False)


@dataclass
class AlignmentResult:
    """Everything a run produced: the :class:`Prepared` stages, then the judge's and what followed.

    ``config`` is the config as given, ``effective`` the same with every "auto" value
    resolved (what the run used). ``left_graph``, ``left_table``, ``left_profiles`` and
    ``candidates`` (and their right counterparts) are read-only views of ``prepared``.
    After ``engine="ray"`` (a lean run) the tables hold each entity's IRI and content
    hash only (``left_table.hashes``), unless duplicates were searched (then they are in
    a temporary file, :mod:`kgalign.io.entity_file`, with their hashes): the profiles
    keep what the run showed of each entity.
    """

    config: AlignConfig
    effective: AlignConfig
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
    #: The folder the run's relative paths (inputs, gold, ...) are relative to (run.json
    #: records it, so that a rerun finds them from anywhere: kgalign.run_paths).
    working_directory: str = field(default_factory=working_directory)
    #: What run.json says of the clusters beyond their sizes (``kgalign dedup``: splits, flags;
    #: ``--dedup``: the duplicates of each side).
    clusters: dict[str, Any] | None = None
    #: Duplicate pairs within a graph (``--dedup``), by side ("left", "right").
    duplicates: dict[str, list[Link]] = field(default_factory=dict)
    #: ``--since``: the records of changes.jsonl, and run.json's summary of them.
    changes: list[dict[str, Any]] | None = None
    since: dict[str, Any] | None = None
    #: What ran the stages: {"name": "local"}, or an engine's description (``--engine ray``:
    #: the cluster, its actors and the calls they took).
    engine: dict[str, Any] = field(default_factory=lambda: {"name": "local"})
    #: What kept the links from running away (:mod:`kgalign.resolution.guard`), and the
    #: no-counterpart cut (:mod:`kgalign.resolution.cut`); run.json ``guard``.
    guard: dict[str, Any] = field(default_factory=dict)
    #: ``--adapt``: what the judge was trained on and how it did (run.json ``adapt``).
    adaptation: dict[str, Any] | None = None
    #: The judge check before the contested sources (kgalign.judging.check), None where none was made.
    judge_check: dict[str, Any] | None = None
    #: Warnings a person should read (also logged): run.json ``warnings``.
    warnings: list[str] = field(default_factory=list)
    _hashes: tuple[dict[str, str], dict[str, str]] | None = field(default=None, repr=False)

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
    def left_profiles(self) -> Mapping[str, EntityProfile]:
        return self.prepared.left_profiles

    @property
    def right_profiles(self) -> Mapping[str, EntityProfile]:
        return self.prepared.right_profiles

    @property
    def candidates(self) -> list[Candidates]:
        return self.prepared.candidates

    def evaluate(self, gold: list[Pair], name: str = "gold") -> dict[str, Any]:
        """Score links and retrieval against ``gold``. Seed links are known, not found:
        they and the gold pairs of their sources are left out of every figure."""
        self.metrics = score_alignment(
            [(found.left, found.right) for found in self.links],
            self.candidates,
            gold,
            self.prepared.seed_pairs,
            entities=(self.left_table.entities, self.right_table.entities),
            name=name,
        )
        return self.metrics

    def count(self, judge: Any, explained: int, seed_links: int) -> dict[str, int]:
        """The figures of run.json's ``counts``; ``judge`` is the run's CachedJudge or None."""
        decisions, prepared, fusion = self.decisions, self.prepared, self.fusion
        return {
            "entities_left": len(prepared.left_table),
            "entities_right": len(prepared.right_table),
            "triples_left": prepared.left_table.triple_count,
            "triples_right": prepared.right_table.triple_count,
            "candidates": sum(len(c.items) for c in prepared.candidates),
            "embedded_entities": self._embedded_entities(),
            "vectors_read": prepared.vectors.get("read", 0),
            "vectors_computed": prepared.vectors.get("computed", 0),
            "settled_lexically": prepared.cascade.settled if prepared.cascade else 0,
            "gated": sum(1 for d in decisions if d.gated),
            "judged": sum(1 for d in decisions if d.rounds),
            "judged_sets": sum(1 for d in decisions if d.option_votes),
            "set_links": sum(len(d.accepted) for d in decisions),
            "llm_questions": judge.sent if judge else 0,
            "cache_hits": judge.hits if judge else 0,
            "prompt_tokens": judge.prompt_tokens if judge else 0,
            "answer_tokens": judge.answer_tokens if judge else 0,
            "matches": sum(1 for d in decisions if d.kind == "match"),
            "uncertain": sum(1 for d in decisions if d.kind == "uncertain"),
            "none": sum(1 for d in decisions if d.kind == "none"),
            "human": sum(1 for d in decisions if d.human),
            "kept": sum(1 for d in decisions if d.kept),
            "over_budget": sum(1 for d in decisions if d.over_budget),
            "to_retrieval": sum(1 for d in decisions if d.to_retrieval),
            "check_questions": (self.judge_check or {}).get("questions", 0),
            "explained": explained,
            "links": len(self.links),
            "seed_links": seed_links,
            "conflicts": len(self.conflicts),
            "clusters": len(fusion.clusters),
            "fused_triples": len(fusion),
            "dropped_triples": len(fusion.dropped),
        }

    def _embedded_entities(self) -> int:
        """How many entities (sources and targets) the embedder was given."""
        prepared = self.prepared
        if prepared.cascade is not None:
            return prepared.cascade.embedded_sources + prepared.cascade.embedded_targets
        return len(prepared.left_table) + len(prepared.right_table) if self.effective.retrieval.needs_embeddings else 0

    def vote_records(self) -> list[dict[str, Any]]:
        """Every decision's record of votes.jsonl, in memory (:meth:`iter_vote_records`)."""
        return list(self.iter_vote_records())

    def iter_vote_records(self) -> Iterator[dict[str, Any]]:
        """Each decision's record of votes.jsonl, made as it is read: the writer holds one
        at a time, not a record (its profiles, candidates and rounds) per source."""
        lost = {c.source: c.winner for c in self.conflicts}
        linked = {link.left: link.right for link in self.links}
        for d, c in zip(self.decisions, self.candidates):
            yield decision_record(d, c, self.left_profiles[d.source], self.right_profiles, lost.get(d.source), linked.get(d.source))

    def run_info(self) -> dict[str, Any]:
        """run.json: the config as given, what "auto" resolved to, versions, timings and counts."""
        config = self.config.to_dict()
        config["judge_options"] = redact_options(config["judge_options"])  # --llm-url may carry credentials
        if config["push"]["url"]:
            config["push"]["url"] = redact_url(config["push"]["url"])
        effective = self.config.diff(self.effective)
        if "judge_options" in effective:
            effective["judge_options"] = redact_options(effective["judge_options"])
        return {
            "schema": RUN_SCHEMA,
            "kgalign": __version__,
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started)),
            "left": describe_input(self.left_path),
            "right": describe_input(self.right_path),
            WORKING_DIRECTORY: self.working_directory,
            "seed": self.config.seed,
            "judge": self.judge_id,
            "adapter": adapter_name(*self.effective.judge_choice),
            "adapt": self.adaptation,
            "judge_check": self.judge_check,
            "config": config,
            "effective": effective,
            "versions": package_versions(),
            "stages": self.timer.stages,
            "total_seconds": self.timer.total_seconds,
            "peak_rss_mb": StageTimer.process_peak_mb(),
            "counts": self.counts,
            "cardinality": self.cardinality_info(),
            "since": self.since,
            "engine": self.engine,
            "selection": {side: {"attributes": sel.attributes, "relations": sel.relations} for side, sel in self.prepared.selections.items()},
            "classes": self.classes_info(),
            "guard": self.guard,
            "warnings": self.warnings,
            "clusters": {"sizes": size_histogram(self.fusion.clusters), **(self.clusters or {})},
            "metrics": self.metrics,
        }

    def entity_hashes(self) -> tuple[dict[str, str], dict[str, str]]:
        """Each entity's content hash, left and right (computed once)."""
        if self._hashes is None:
            self._hashes = (table_hashes(self.left_table), table_hashes(self.right_table))
        return self._hashes

    def classes_info(self) -> dict[str, Any]:
        """Which classes' instances were entities on each side, and which classes corresponded."""
        info: dict[str, Any] = {"given": list(self.config.classes)}
        for side, table in (("left", self.left_table), ("right", self.right_table)):
            if table.kinds is not None:
                info[side] = table.kinds.to_dict()
        if self.prepared.classes is not None:
            info.update(self.prepared.classes.to_dict())
        return info

    def cardinality_info(self) -> dict[str, Any]:
        """The run's cardinality: what --resolve auto measured and chose, or the mode given."""
        evidence = self.prepared.cardinality
        if self.clusters is not None and self.clusters.get("command") == "dedup":
            return {"resolve": "dedup", "detected": False}
        if evidence is None:
            return {"resolve": self.effective.resolve, "detected": False}
        return {"resolve": self.effective.resolve, "detected": True, **evidence.to_dict()}

    def save(self, outdir: str | Path) -> dict[str, Path]:
        """Write every output file into ``outdir``: all of them, or none.

        Each file is written under a temporary name, and all are renamed into place
        only after the last one is written (:func:`kgalign.io.atomic.deferred_renames`), so
        a failure or an interrupt while writing leaves ``outdir`` as it was. Without
        metrics, a metrics.json left by an earlier run is removed, so that it cannot be
        read as this run's.
        """
        outdir = Path(outdir)
        paths = {name: outdir / name for name in (*OUTPUT_FILES, *OPTIONAL_OUTPUTS)}
        if self.metrics is None:
            paths.pop("metrics.json")
        if not self.duplicates:
            paths.pop("duplicates.ttl")
        if self.changes is None:
            paths.pop("changes.jsonl")
        fusion, single = self.fusion, self.fusion.single_files
        if not single:  # the fused graph is in the shards alone
            paths.pop("fused.ttl")
            paths.pop("provenance.trig")
        try:
            outdir.mkdir(parents=True, exist_ok=True)
            with relaxed_gc(), deferred_renames():
                with self.timer.stage("write"):
                    run_iri = URIRef(f"{KGA}run/{int(self.started)}")
                    if single:
                        rendered = FusedRows.of(fusion)  # for fused.ttl (when large) and provenance.trig
                        write_fused(fusion, paths["fused.ttl"], rendered)
                        write_dataset(provenance_dataset(fusion, run_iri, self.left_path, self.right_path, rendered), paths["provenance.trig"])
                        del rendered
                    if fusion.shards is not None:
                        default, dropped = provenance_header(fusion, run_iri, self.left_path, self.right_path)
                        fusion.shards.save(outdir, default, dropped, DROPPED_GRAPH)
                    else:
                        remove_stale(outdir)
                    for name in () if single else ("fused.ttl", "provenance.trig"):
                        if (outdir / name).is_file():
                            remove_later(outdir / name)
                            log.info("%s: removed the %s of an earlier run (this run's fused graph is in the shards alone)", outdir, name)
                    write_links(self.links, paths["links.ttl"])
                    write_alignment(self.links, paths["alignment.rdf"], input_name(self.left_path), input_name(self.right_path))
                    write_votes(self.iter_vote_records(), paths["votes.jsonl"])
                    if self.metrics is not None:
                        write_json(paths["metrics.json"], self.metrics)
                    if self.duplicates:
                        write_links([pair for side in sorted(self.duplicates) for pair in self.duplicates[side]], paths["duplicates.ttl"])
                    if self.changes is not None:
                        write_changes(paths["changes.jsonl"], self.changes)
                    write_state(paths["entities.json.gz"], *self.entity_hashes())
                write_json(paths["run.json"], self.run_info())
            if fusion.shards is not None:
                fusion.shards.saved(outdir)
            if self.metrics is None and (outdir / "metrics.json").is_file():
                (outdir / "metrics.json").unlink()
                log.info("%s: removed the metrics.json of an earlier run (this run has no gold)", outdir)
            if self.changes is None and (outdir / "changes.jsonl").is_file():
                (outdir / "changes.jsonl").unlink()
                log.info("%s: removed the changes.jsonl of an earlier run (this run has no --since)", outdir)
            if not self.duplicates and (outdir / "duplicates.ttl").is_file():
                (outdir / "duplicates.ttl").unlink()
                log.info("%s: removed the duplicates.ttl of an earlier run (this run has no --dedup)", outdir)
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
