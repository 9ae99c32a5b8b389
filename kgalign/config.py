"""One run = one validated config: :class:`AlignConfig`.

A config is frozen and checked when it is made: every choice against the names the
library owns (judges, resolve modes, conflict and canonical policies come from their
registries), every number against its range. A misspelt field or a value out of range
fails at once with one line naming the field, before any model loads.

A config round-trips through plain data (:meth:`AlignConfig.to_dict`,
:meth:`AlignConfig.from_dict`) and files (:meth:`AlignConfig.to_toml`,
:meth:`AlignConfig.from_file` for ``.toml`` and ``.json``), which is how
``kgalign run --config FILE`` reads one and ``kgalign rerun`` replays the config saved
in ``run.json``. A run never changes its config: values left to "auto" are resolved
into a copy (:meth:`AlignConfig.resolved`), saved beside it as the ``effective`` block.

>>> AlignConfig.from_dict({"judge": "none", "retrieval": {"k": 5}}).retrieval.k
5
"""

from __future__ import annotations

import json
import math
import tomllib
import typing
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, Literal

from kgalign.errors import ConfigError, KgalignError

#: Values a field may take, given as a tuple or as a function returning the names a
#: registry holds now (so a backend registered later is accepted).
Choices = tuple[str, ...] | Callable[[], list[str]]


def choice(default: Any, choices: Choices, help: str = "") -> Any:
    return field(default=default, metadata={"choices": choices, "help": help})


def number(default: Any, low: float | None = None, high: float | None = None, help: str = "") -> Any:
    return field(default=default, metadata={"range": (low, high), "help": help})


def _judges() -> list[str]:
    from kgalign.judging.base import judge_names

    return judge_names()


def _resolvers() -> list[str]:
    from kgalign.resolution.resolve import RESOLVERS

    return ["auto", *RESOLVERS.names()]


def _engines() -> list[str]:
    from kgalign.runtime.engines import ENGINES

    return ENGINES.names()


def _read_formats() -> list[str]:
    from kgalign.io.formats import READ_FORMATS

    return list(READ_FORMATS)


def _canonical() -> list[str]:
    from kgalign.fusion.fuse import CANONICAL_POLICIES

    return CANONICAL_POLICIES.names()


def _conflicts() -> list[str]:
    from kgalign.fusion.fuse import CONFLICT_POLICIES

    return CONFLICT_POLICIES.names()


@dataclass(frozen=True)
class RetrievalConfig:
    """How candidates are found (stage 3). The cascade's knobs were chosen by
    bench/ablation.py on development splits of the DBP15K and SRPRS train links."""

    #: Candidates kept per source entity.
    k: int = number(10, 1, 100)
    #: Candidates scored per source before the top k are kept (full retrieval).
    pool: int = number(30, 1, 10_000)
    #: cascade: lexical first, only unsettled sources and open targets embedded; full:
    #: every entity embedded. cascade measured F1 0.994 vs 0.993 and 0.987 vs 0.973
    #: (closed world), embedding about 1% of the entities.
    mode: Literal["cascade", "full"] = choice("cascade", ("cascade", "full"))
    #: cascade: a source is settled when its lexical best is a mutual nearest neighbour
    #: leading the runner-up by at least this much.
    settle_margin: float = number(0.05, 0.0, 1.0)
    #: cascade: targets a settled source took are not offered to other sources (1:1);
    #: off for many-to-one alignments.
    exclusive: bool = True
    #: cascade: a source whose lexical best a settled source took is contested (not
    #: linked without a judge) unless an open candidate scores within this much of that
    #: best; negative: never contested.
    taken_window: float = number(0.0, -1.0, 1.0)
    #: cascade: a source is never contested when its own second-pass best among the open
    #: entities is a mutual nearest neighbour leading by at least this much; negative: off.
    spare_margin: float = number(0.1, -1.0, 1.0)
    #: cascade: a source is never contested when its best open candidate shares with it
    #: an identifier-like word (model, part, phone numbers) no other target has.
    spare_codes: bool = True
    #: cascade: when the open sources are fewer than one in N of the open targets, only
    #: the open targets among some open source's best N are embedded; 0: every one.
    embed_pool: int = number(100, 0, 1_000_000)
    #: cascade: the second pass also finds candidates by the neighbour channel alone
    #: (its best ``pool`` open targets per open source), not only rescores them. Only
    #: where the neighbour channel is on; full retrieval never searches it.
    neighbour_search: bool = True
    #: Weight of embedding similarity against character n-grams (0: no embeddings).
    dense_weight: float = number(0.5, 0.0, 1.0)
    #: Weight of neighbour similarity; None: 0.5 when both graphs relate their entities
    #: to each other, else 0 (chosen on the DBP15K fr-en train split).
    structure_weight: float | None = number(None, 0.0, 1.0)
    #: What the neighbour channel averages: the neighbours' embeddings or TF-IDF rows;
    #: auto: lexical for the cascade (it embeds few entities), dense for full.
    structure_vectors: Literal["auto", "dense", "lexical"] = choice("auto", ("auto", "dense", "lexical"))
    #: Targets past which FAISS uses an HNSW index instead of an exact one.
    hnsw_threshold: int = number(200_000, 1, None)
    #: Past hnsw_threshold, the targets are cut into equal slices of at most this many,
    #: each searched on its own HNSW graph (the same slices on every engine).
    hnsw_slice: int = number(125_000, 1, None)
    #: Sources scored per block of the exact search (memory against speed).
    block_rows: int = number(1024, 1, 1_000_000)
    #: One graph against itself (kgalign dedup): an entity is never its own candidate.
    self_join: bool = False

    def __post_init__(self) -> None:
        _normalise(self)
        _validate(self, "")

    @property
    def needs_embeddings(self) -> bool:
        vectors = self.structure_vectors
        return self.dense_weight > 0 or ((self.structure_weight or 0) > 0 and vectors == "dense")

    @property
    def resolved_structure_weight(self) -> float:
        """``structure_weight`` as retrieval uses it: the pipeline resolves None (auto)
        before retrieval, so None only remains outside a run and counts as 0."""
        return self.structure_weight or 0.0


@dataclass(frozen=True)
class VoteConfig:
    """How the judge is asked and its rounds counted (stage 4)."""

    #: Rounds of each question, each with the candidates in another order.
    rounds: int = number(3, 1, 15)
    #: Candidates shown to the judge (plus "none of these").
    options: int = number(5, 1, 20)
    #: Accept a mutual nearest neighbour leading by gate_margin without asking.
    gate: bool = True
    gate_margin: float = number(0.05, -1.0, 1.0)
    #: Retrieval score below which no link is made without the judge.
    min_score: float = number(0.0, -1.0, 1.0)
    #: Without a judge and without min_score, in a one-to-one run: links that score below
    #: a cut chosen from the run's own scores are not made, mutual best pairs aside
    #: (kgalign.resolution.cut).
    cut: bool = True
    early_stop: bool = True
    #: Accept a plurality winner when no candidate has a strict majority.
    plurality: bool = False
    #: Seed of the shuffled rounds (set from AlignConfig.seed for a run).
    seed: int = 0
    #: Words of data values joined by '^' in the prompts (spotlighting).
    datamark: bool = False
    #: Judge sets where a source may have several counterparts (--resolve 1:n, n:m, dedup):
    #: each round asks again without the options picked until "none of these", and an
    #: option is accepted when picked in a strict majority of rounds.
    sets: bool = True
    #: Added to the judge's score of "none of these" before its answer is taken (in
    #: log-probability; a judge that scores every letter: local): above 0 it answers
    #: "none" more readily, below 0 less. `kgalign pairs --valid` chooses it there.
    none_bias: float = number(0.0, -20.0, 20.0)
    #: What the judge is asked: "pairwise", each candidate on its own, "are these two the
    #: same?", both record orders, the rounds' probabilities of yes averaged
    #: (kgalign.judging.pairwise; small models transfer this way, and a trained judge is
    #: checked on the run's confident pairs first); "choice", one multiple-choice question
    #: over the candidates and "none of these" a round (for large served models: a
    #: quarter of the questions).
    question: str = choice("pairwise", ("pairwise", "choice"))
    #: A pairwise vote's threshold on the mean probability of yes. None: the one a judge
    #: trained on pairwise questions recorded (chosen on its validation questions:
    #: :func:`kgalign.judging.adapters.settle_pair_threshold`, where a run builds its
    #: judge), else 0.5.
    pair_threshold: float | None = number(None, 0.0, 1.0)
    #: Seconds the judge may take (0: no limit). The sources are asked most uncertain
    #: first (smallest retrieval margin), in blocks; once the time measured so far says
    #: the next block would not fit, the rest are decided by retrieval's scores.
    budget: float = number(0.0, 0.0, 1e7)
    #: Every source has a counterpart among the targets (a closed world, as the DBP15K and
    #: SRPRS protocol says): where the judge rejects every candidate of a source, or its
    #: rounds disagree, retrieval's scores decide instead of leaving the source unlinked
    #: (the judge's rounds stay in the log); and a source whose nearest target another
    #: source took (``contested_by``) is linked to its best open candidate where that is a
    #: mutual best. None: closed under only_gold_entities, else open.
    closed_world: bool | None = None
    #: Pairwise: before the contested sources, the judge is asked about sources the gate's
    #: rule settles (their match and two other candidates, one record order a pair; as many
    #: as are contested, at least 10, at most this many; kgalign.judging.check), and is not
    #: asked at all where it ranks them worse than ``check_auc``. 0: no check.
    check_sources: int = number(40, 0, 10_000)
    #: The ROC AUC the check asks of the judge. None: the one its training measured on its
    #: validation questions (a judge without such a record is not checked).
    check_auc: float | None = number(None, 0.0, 1.0)

    def __post_init__(self) -> None:
        _normalise(self)
        _validate(self, "")

    @property
    def resolved_pair_threshold(self) -> float:
        """``pair_threshold`` as the vote uses it: a run settles None before judging (the
        judge's trained threshold or one half), so None only remains outside a run."""
        return 0.5 if self.pair_threshold is None else self.pair_threshold


@dataclass(frozen=True)
class SparqlConfig:
    """How an input given as a SPARQL endpoint URL is read (stage 1, kgalign.io.sparql)."""

    #: Named graph the entities are read from; None: the endpoint's default graph.
    graph: str | None = None
    #: SPARQL group pattern on ?entity that restricts the entities (with the classes).
    where: str | None = None
    #: Entities listed per query when paging through the endpoint.
    page_size: int = number(10_000, 1, 1_000_000)
    #: Entities (or folded nodes) whose descriptions one query fetches.
    batch_size: int = number(100, 1, 10_000)
    #: Queries in flight at once.
    concurrency: int = number(4, 1, 64)
    #: Seconds one request may take before it is tried again.
    timeout: float = number(60.0, 0.1, 3600.0)
    #: Tries after the first, on 429, 5xx, timeouts and dropped connections.
    retries: int = number(4, 0, 20)
    #: Seconds before the first retry, doubled on each next one (a Retry-After header wins).
    backoff: float = number(1.0, 0.0, 300.0)
    #: Read the endpoint again even when OUTDIR holds a copy fetched with the same query.
    refresh: bool = False
    #: Folder for the fetched copies (the CLI uses OUTDIR/sources); None: a temporary one.
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        _normalise(self)
        _validate(self, "")
        if self.graph is not None:
            _check_iri("graph", self.graph)


#: The judges ``--adapt`` can train: their model is a local folder kgalign fine-tunes.
ADAPTABLE_JUDGES = ("local", "vllm")


@dataclass(frozen=True)
class AdaptConfig:
    """``--adapt``: the judge fine-tuned on the run's own confident decisions before it is
    asked (kgalign.finetune.adapt): each gated match a "yes" (a correct answer with
    ``--question choice``), its hardest other candidates "no"."""

    enabled: bool = False
    #: Training steps at most (a batch of 8 questions each).
    steps: int = number(80, 1, 100_000)
    #: Minutes the training may take (0: no limit); it stops after the step that passes it.
    minutes: float = number(0.0, 0.0, 1e6)
    #: Confident sources trained on at most (a seeded sample); a fifth is held out to validate.
    sources: int = number(200, 8, 1_000_000)
    #: Non-matching candidates per match (retrieval's best first).
    negatives: int = number(2, 0, 20)
    #: "lora": a LoRA adapter on the top 8 layers; "full": every weight of the model (as
    #: ``kgalign finetune --full``; the run's judge then loads the trained model).
    method: str = choice("lora", ("lora", "full"))
    #: Learning rate; None: 0.001 for LoRA, 2e-5 (AnyMatch's) for full fine-tuning.
    lr: float | None = number(None, 1e-7, 1.0)
    #: Where the adapter is written (the command line sets OUTDIR/adapter); None: a
    #: temporary folder, removed after the run.
    folder: str | None = None


@dataclass(frozen=True)
class RayConfig:
    """Where ``--engine ray`` runs (kgalign.runtime.ray_engine); ignored by other engines."""

    #: Address of a running Ray cluster (HOST:PORT, ray://HOST:PORT or "auto"); None: a
    #: local Ray instance is started for the run and stopped after it.
    address: str | None = None
    #: Actors that embed, search and judge; 0: one per CPU the cluster has.
    actors: int = number(0, 0, 4096)
    #: CPUs each actor reserves (and the threads its models use).
    cpus_per_actor: float = number(1.0, 0.01, 256.0)
    #: GPUs each actor reserves; above 0 the actors' models run on CUDA, else on the CPU.
    gpus_per_actor: float = number(0.0, 0.0, 64.0)
    #: Partitions an input (N-Triples, N-Quads, Turtle, TriG) is loaded in, by subject; 0: one per actor.
    partitions: int = number(0, 0, 4096)
    #: Where the inputs are fused by partitions, each also writes its share of the fused
    #: graph and of its provenance: OUTDIR/fused/part-NNNNN.ttl, OUTDIR/provenance/part-NNNNN.trig.
    shards: bool = True
    #: A folder every node of the cluster can write (a shared filesystem), where the
    #: partitions write the shards before they are moved into OUTDIR; None: OUTDIR from the
    #: command line, the temporary directory from align(). A partition that does not see
    #: it leaves its shards to the driver.
    shard_folder: str | None = None
    #: With shards, fused.ttl and provenance.trig are written too up to this many fused
    #: triples; past it the shards alone hold them (0: never the single files).
    single_files_limit: int = number(100_000_000, 0, None)
    #: Times a block of judged sources is asked at most: Ray Data restarts an actor that
    #: died and asks its block again, so a block that kills every actor it goes to (a
    #: model too large for the node, a crashing backend) stops the run at its next start.
    block_attempts: int = number(4, 1, 100)

    def __post_init__(self) -> None:
        _normalise(self)
        _validate(self, "")


@dataclass(frozen=True)
class PushConfig:
    """Where the links (and the fused graph) are written back after a run (kgalign.io.sparql.push)."""

    #: SPARQL 1.1 Update endpoint (protocol update) or Graph Store endpoint (protocol gsp); None: no push.
    url: str | None = None
    protocol: Literal["update", "gsp"] = choice("update", ("update", "gsp"))
    #: Named graph that receives the links (replaced, not appended to).
    links_graph: str = "urn:kgalign:links"
    #: Named graph that receives the fused graph; None: the fused graph is not pushed.
    fused_graph: str | None = None

    def __post_init__(self) -> None:
        _normalise(self)
        _validate(self, "")
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise ConfigError.about("url", f"{self.url!r} is not an http(s) URL")
        _check_iri("links_graph", self.links_graph)
        if self.fused_graph is not None:
            _check_iri("fused_graph", self.fused_graph)
            if self.fused_graph == self.links_graph:
                raise ConfigError.about("fused_graph", "must differ from links_graph (each graph is replaced whole)")


def _check_iri(name: str, value: str) -> None:
    """An absolute IRI that can be written between < and > in a query, or a one-line error."""
    from kgalign.io.sparql.queries import is_writable_iri

    if not is_writable_iri(value):
        raise ConfigError.about(name, f"{value!r} is not an absolute IRI")


@dataclass(frozen=True)
class AlignConfig:
    """Every setting of a run. Defaults are the ones chosen by benchmark (docs/benchmarks.md)."""

    #: Who decides among the candidates: an LLM backend from the registry, or none.
    judge: str = choice("none", _judges)
    #: Judge model: a local folder (local, vllm) or the served model name (openai).
    model: str | None = None
    #: LoRA adapter folder for the judge model.
    adapter: str | None = None
    #: Options of the chosen judge backend (see ``kgalign run --help-all``).
    judge_options: Mapping[str, Any] = field(default_factory=dict)
    #: Folder of a sentence-transformers model; None: the bundled all-MiniLM-L6-v2.
    embedder: str | None = None
    embed_precision: Literal["auto", "float32", "bfloat16"] = choice("auto", ("auto", "float32", "bfloat16"))
    embed_engine: Literal["auto", "numpy", "torch"] = choice("auto", ("auto", "numpy", "torch"))
    embed_max_tokens: int = number(128, 8, 8192)
    #: Where the embedder and the local judge run: auto, cpu, cuda, cuda:N, mps.
    device: str = "auto"
    #: What runs the stages: an engine from the registry (kgalign.runtime.engines).
    engine: str = choice("local", _engines)
    #: The inputs' formats (kgalign.io.formats.READ_FORMATS); None: from the extension.
    left_format: str | None = choice(None, _read_formats)
    right_format: str | None = choice(None, _read_formats)
    #: Id column of CSV/TSV inputs; None: the first column.
    id_column: str | None = None
    #: Align only subjects of these rdf:types (IRIs); empty: the classes are decided from
    #: the data (kgalign.io.kinds) and aligned with their corresponding classes.
    classes: tuple[str, ...] = ()
    #: Classes (IRIs, or IRI patterns ending in '*') whose instances are entities whatever the data says.
    keep_classes: tuple[str, ...] = ()
    #: Classes whose instances are folded into their owners' descriptions whatever the data says.
    fold_classes: tuple[str, ...] = ()
    #: Class correspondences "LEFT=RIGHT" (IRIs or patterns), used instead of the ones
    #: found for the classes they name (kgalign.selection.classes).
    class_map: tuple[str, ...] = ()
    attributes: tuple[str, ...] = ()
    relations: tuple[str, ...] = ()
    max_attributes: int = number(8, 1, 100)
    max_neighbours: int = number(5, 0, 100)
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    vote: VoteConfig = field(default_factory=VoteConfig)
    #: Inputs given as SPARQL endpoint URLs (LEFT/RIGHT): how they are read.
    sparql: SparqlConfig = field(default_factory=SparqlConfig)
    #: Writing the links back to a triple store after the run.
    push: PushConfig = field(default_factory=PushConfig)
    #: The Ray cluster of --engine ray.
    ray: RayConfig = field(default_factory=RayConfig)
    #: ``--adapt``: fine-tune the judge on the run's confident decisions before asking it.
    adapt: AdaptConfig = field(default_factory=AdaptConfig)
    #: How links are settled: auto detects the cardinality (1:1, 1:n, n:1, n:m) from the
    #: data (kgalign.resolution.cardinality); or a resolve mode by name.
    resolve: str = choice("auto", _resolvers)
    #: Duplicates within a graph: none, left, right, both, or auto (the sides --resolve auto
    #: found to hold several records of a thing); their records are merged in fused.ttl.
    dedup: Literal["none", "left", "right", "both", "auto"] = choice("none", ("none", "left", "right", "both", "auto"))
    canonical: str = choice("left", _canonical)
    conflicts: str = choice("keep-all", _conflicts)
    #: The judge's answer cache (SQLite); None: no cache.
    cache_path: str | None = None
    seed: int = 0
    #: Known matches: a gold file's path, or the pairs themselves.
    seed_links: str | tuple[tuple[str, str], ...] = ()
    #: Gold links: the run is scored against them (metrics.json).
    gold: str | None = None
    #: Gold links of a test split: scored on these pairs only (instead of gold).
    test_gold: str | None = None
    #: Align only the sources and targets named in test_gold (or gold).
    only_gold_entities: bool = False
    only_left: tuple[str, ...] = ()
    only_right: tuple[str, ...] = ()
    #: A reviewer's corrections file (from `kgalign report`).
    corrections: str | None = None
    #: With --since: keep an earlier decision of the judge's, instead of asking again,
    #: where only the updated statistics moved its question and its confidence was at
    #: least this (kgalign.incremental.keep); None: ask again (links equal a full run's).
    keep_earlier: float | None = number(None, 0.0, 1.0)
    #: Ask the judge for one sentence of reason per voted decision.
    explain: bool = False

    def __post_init__(self) -> None:
        _normalise(self)
        _validate(self, "")
        for item in self.class_map:
            left, eq, right = item.partition("=")
            if not eq or not left.strip() or not right.strip():
                raise ConfigError.about("class_map", f"{item!r} is not LEFT=RIGHT (two class IRIs or patterns)")
        if self.only_gold_entities and not (self.gold or self.test_gold):
            raise ConfigError("only_gold_entities needs test_gold or gold", "only_gold_entities", "needs test_gold or gold")
        if self.adapt.enabled and self.judge not in ADAPTABLE_JUDGES:
            reason = f"trains the judge's own weights: it needs --judge {' or '.join(ADAPTABLE_JUDGES)}, not {self.judge}"
            raise ConfigError(f"adapt.enabled {reason}", "adapt.enabled", reason)
        if self.judge != "none":
            from kgalign.judging.base import check_judge_options

            try:
                check_judge_options(self.judge, self.judge_options)
            except KgalignError as exc:
                # "judge_options.dtype: 'x' is not one of ...": the field and the reason kept.
                field_name, colon, reason = str(exc).partition(": ")
                if colon and field_name.startswith("judge_options.") and " " not in field_name:
                    raise ConfigError(str(exc), field_name, reason) from None
                raise ConfigError(str(exc)) from None

    @property
    def judge_choice(self) -> tuple[str, str | None, str | None, str]:
        """What picks the judge's weights: ``(judge, model, adapter, question)``, as
        :func:`kgalign.judging.adapters.adapter_name` and ``check_judge`` take them (the
        local judge's default adapter depends on the question it asks)."""
        return self.judge, self.model, self.adapter, self.vote.question

    # ----- plain data and files -----

    def to_dict(self) -> dict[str, Any]:
        """The config as JSON-ready data (tuples become lists)."""
        return _plain(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "config") -> AlignConfig:
        """A config from plain data; an unknown field or a bad value fails in one line naming it."""
        return _build(cls, data, source)

    @classmethod
    def from_file(cls, path: str | Path) -> AlignConfig:
        """Read a ``.toml`` or ``.json`` config file."""
        return cls.from_dict(read_config_file(path), str(path))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    def to_toml(self) -> str:
        return to_toml(self.to_dict())

    def save(self, path: str | Path) -> None:
        """Write the config as TOML or JSON, by the file's extension."""
        from kgalign.io.atomic import write_text_atomic

        path = Path(path)
        write_text_atomic(path, self.to_json() if path.suffix.lower() == ".json" else self.to_toml())

    def replace(self, **changes: Any) -> AlignConfig:
        """A copy with ``changes`` (validated again). Nested sections take dicts of changes."""
        for name in ("retrieval", "vote", "sparql", "push", "ray", "adapt"):
            if isinstance(changes.get(name), Mapping):
                changes[name] = replace(getattr(self, name), **changes[name])
        return replace(self, **changes)

    def diff(self, other: AlignConfig) -> dict[str, Any]:
        """The fields of ``other`` that differ from this config, nested like :meth:`to_dict`."""
        return _diff(self.to_dict(), other.to_dict())


# ----- helpers -----


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The raw data of a TOML or JSON config file, or a one-line error naming the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: the config file is not UTF-8 text") from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    else:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file holds a table of settings")
    return data


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _build(cls: type, data: Mapping[str, Any], source: str, prefix: str = "") -> Any:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: {prefix.rstrip('.') or 'the config'} must be a table of settings, not {type(data).__name__}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        import difflib

        name = unknown[0]
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean '{prefix}{close[0]}'?" if close else ""
        raise ConfigError(f"{source}: unknown setting '{prefix}{name}'{hint}")
    hints = _hints(cls)
    values = {}
    for name, value in data.items():
        hint = hints[name]
        if isinstance(hint, type) and is_dataclass(hint):
            values[name] = _build(hint, value, source, f"{prefix}{name}.")
        else:
            values[name] = value
    try:
        return cls(**values)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {prefix}{exc}", f"{prefix}{exc.field}" if exc.field else None, exc.reason) from None


def _normalise(config: Any) -> None:
    """Lists to tuples (frozen, hashable), read-only judge options; ints accepted as floats."""
    hints = _hints(type(config))
    for f in fields(config):
        value = getattr(config, f.name)
        hint = hints[f.name]
        if isinstance(value, list):
            if f.name == "seed_links":
                value = tuple(tuple(pair) for pair in value)
            else:
                value = tuple(value)
            object.__setattr__(config, f.name, value)
        elif isinstance(value, int) and not isinstance(value, bool) and _is_float(hint):
            object.__setattr__(config, f.name, float(value))
        elif f.name == "judge_options" and isinstance(value, Mapping):
            from types import MappingProxyType

            object.__setattr__(config, f.name, MappingProxyType(dict(value)))


def _is_float(hint: Any) -> bool:
    return hint is float or (typing.get_origin(hint) in (typing.Union, __import__("types").UnionType) and float in typing.get_args(hint))


def _validate(config: Any, prefix: str) -> None:
    hints = _hints(type(config))
    for f in fields(config):
        name = prefix + f.name
        value = getattr(config, f.name)
        hint = hints[f.name]
        if isinstance(hint, type) and is_dataclass(hint):
            if not isinstance(value, hint):
                raise ConfigError.about(name, f"must be a {hint.__name__}, not {type(value).__name__}")
            continue
        _check_type(name, value, hint)
        choices = f.metadata.get("choices")
        if choices is not None and value is not None:
            allowed = list(choices() if callable(choices) else choices)
            if value not in allowed:
                raise ConfigError.about(name, f"{value!r} is not one of {', '.join(map(str, allowed))}")
        bounds = f.metadata.get("range")
        if bounds is not None and value is not None:
            low, high = bounds
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError.about(name, f"{value} is not a finite number")
            if (low is not None and value < low) or (high is not None and value > high):
                span = f"between {low} and {high}" if low is not None and high is not None else (f"at least {low}" if low is not None else f"at most {high}")
                raise ConfigError.about(name, f"{value} is out of range (must be {span})")


def _check_type(name: str, value: Any, hint: Any) -> None:
    if not _matches(value, hint):
        raise ConfigError.about(name, f"{value!r} is not {_describe(hint)}")


def _matches(value: Any, hint: Any) -> bool:
    import types

    origin = typing.get_origin(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(hint))
    if origin is Literal:
        return value in typing.get_args(hint)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, float | int) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_matches(v, args[0]) for v in value)
        return len(value) == len(args) and all(_matches(v, a) for v, a in zip(value, args))
    if origin in (Mapping, dict) or hint is dict:
        return isinstance(value, Mapping)
    return isinstance(value, origin or hint)


def _describe(hint: Any) -> str:
    import types

    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(hint))
    if origin is Literal:
        return "one of " + ", ".join(map(str, typing.get_args(hint)))
    if hint is type(None):
        return "unset"
    if origin is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list ({_describe(args[0])} each)"
        return f"a list of {len(args)} values"
    names = {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}
    return names.get(hint, f"a {getattr(hint, '__name__', hint)}")


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def _diff(given: dict[str, Any], effective: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in effective.items():
        before = given.get(key)
        if isinstance(value, dict) and isinstance(before, dict) and key != "judge_options":
            inner = _diff(before, value)
            if inner:
                out[key] = inner
        elif value != before:
            out[key] = value
    return out


def defaults() -> dict[str, Any]:
    """Every setting with its default, as plain data."""
    return AlignConfig().to_dict()


def field_range(path: str) -> tuple[type, float | None, float | None] | None:
    """The type (int or float) and bounds of the number field at ``path`` ("vote.gate_margin"),
    None for a field without a range. The command line's ranges are read here."""
    cls: Any = AlignConfig
    *parents, last = path.split(".")
    for part in parents:
        cls = _hints(cls)[part]
    found = {f.name: f for f in fields(cls)}[last]
    bounds = found.metadata.get("range")
    if bounds is None:
        return None
    return (float if _is_float(_hints(cls)[last]) else int), bounds[0], bounds[1]


def field_help(cls: type = AlignConfig) -> dict[str, str]:
    """The ``help`` of each field that has one (used by ``--help-all``)."""
    return {f.name: f.metadata.get("help", "") for f in fields(cls) if f.default is not MISSING or f.default_factory is not MISSING}


# ----- TOML -----


def to_toml(data: Mapping[str, Any]) -> str:
    """A small TOML writer for configs: scalars, lists and nested tables; None is left out."""
    lines: list[str] = []
    tables: list[tuple[str, Mapping[str, Any]]] = []
    for key, value in data.items():
        if isinstance(value, Mapping):
            tables.append((key, value))
        elif value is not None:
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
    for key, table in tables:
        body = to_toml(table)
        lines.append("")
        lines.append(f"[{_toml_key(key)}]")
        lines.extend(line if not line.startswith("[") else f"[{_toml_key(key)}.{line[1:]}" for line in body.splitlines() if line)
    return "\n".join(lines).lstrip("\n") + "\n"


def _toml_key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else json.dumps(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{value} cannot be written to TOML")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise ConfigError(f"cannot write {type(value).__name__} to TOML")
