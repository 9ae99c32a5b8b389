"""Training recipes over many datasets: ``kgalign finetune --recipe FILE`` (TOML).

A recipe lists the sources of training questions, each built exactly as a run asks
them (:func:`kgalign.finetune.data.build_examples`: the same serialisation, options,
orders and datamark setting), and optionally the options of training::

    [questions]            # kgalign.finetune.DataConfig: options, permutations, none_share, val_share, seed, datamark, question, negatives
    options = 5

    [train]                # kgalign.finetune.TrainConfig: max_steps, batch_size, lr, lora_r, ...
    max_steps = 2000

    [[source]]             # two graphs and gold links: the questions show a run's real candidates
    name = "persons"
    kind = "graphs"
    left = "persons/left.nt"
    right = "persons/right.ttl"
    links = "persons/gold.tsv"
    corrections = "review/corrections.tsv"   # optional: a reviewer's verdicts override the links

    [[source]]             # a DBP15K/SRPRS folder: converted once (as `kgalign convert dbp15k`, kept in
    name = "dbp15k"        # $KGALIGN_CACHE/conversions), trained on its seed (train) split only
    kind = "dbp15k"
    folder = "data/seu_dbp_fr_en"
    cap = 4000
    seed_share = 0.3       # graphs and dbp15k: asked as a seeded run asks (below)

    [[source]]             # a labelled pair file (Ditto text or DeepMatcher CSV, as `kgalign pairs`)
    name = "beer"
    kind = "pairs"
    file = "beer/train.txt"
    valid = "beer/valid.txt"   # optional: validation questions from this file instead of a share of the train file
    cap = 2000                 # at most this many training questions from this source
    weight = 2.0               # each training question of this source seen twice per epoch
    max_none_share = 0.25      # at most a quarter of its questions answer "none of these"

    [[source]]             # a teacher run's confident decisions (its votes.jsonl and run.json)
    name = "teacher"
    kind = "votes"
    file = "out/votes.jsonl"
    min_confidence = 0.8

Relative paths are read from the recipe file's folder. Each source is split into
training and validation questions by source entity (``val_share``, or its ``valid``
file), its training questions cut to ``cap`` (whole source entities, in the seeded
order) and repeated by ``weight`` (a fractional weight repeats a seeded share of them
once more). Validation questions are taken from every source in turn, so ``max_val``
keeps each represented; the accuracy of each source is printed and saved
(``kgalign-finetune.json``: ``after.accuracy_by_source``).

A pair file's question for a left record shows its right records, best retrieval score
first (:func:`kgalign.pairs.score_pairs`), as ``kgalign pairs`` asks it; the answer is
its right record labelled 1, or "none of these" where there is none. A left record with
several right records labelled 1 (WDC's test sets have some) is left out. The
``none_share`` of a pairs source defaults to 0: such files hold their own negatives.

A graph source's questions are by default asked among candidates retrieved over all
its entities without seed links. A run on a benchmark's test split is given the train
links as seeds and aligns only the test entities (``--seed-links --only-gold-entities``),
so its candidates differ: the seeds' entities are out, and neighbours are compared
through the seeds. ``seed_share`` asks a source's questions that way: that share of its
links (seeded) become seed links, and the rest are asked among themselves (0.3 gives
DBP15K's ratio of 4,500 seeds to 10,500 test links); no entity outside the links is read.

A blocker's negatives make most of a pair file's questions answer "none of these" (55
to 65% in the WDC and DeepMatcher files), while the sources a run asks the judge about
mostly have their match among the candidates. ``max_none_share`` rebalances a source:
whole source entities answering "none" are dropped, in a seeded order, until they make
at most that share of its training questions, and likewise of its validation questions
(so that the best step is chosen on the same mix).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from kgalign.config import read_config_file
from kgalign.errors import ConfigError, KgalignError
from kgalign.finetune.data import DataConfig, Example, Labels, TrainingData, build_examples, split_sources
from kgalign.finetune.mining import retrieval_scores

log = logging.getLogger(__name__)

KINDS = ("graphs", "dbp15k", "pairs", "votes")
_PATHS = {"left", "right", "links", "corrections", "file", "valid", "folder"}
#: Keys each kind of source takes (besides name, kind, cap, weight, none_share, max_none_share).
_KEYS: dict[str, set[str]] = {
    "graphs": {"left", "right", "links", "corrections", "top_k", "attributes", "format", "id_column", "seed_share"},
    "dbp15k": {"folder", "top_k", "seed_share"},
    "pairs": {"file", "valid"},
    "votes": {"file", "left", "right", "min_confidence", "include_none", "corrections", "id_column"},
}
_COMMON = {"name", "kind", "cap", "weight", "none_share", "max_none_share"}


@dataclass(frozen=True)
class RecipeSource:
    """One source of training questions (see the module docstring)."""

    name: str
    kind: str
    options: Mapping[str, Any] = field(default_factory=dict)
    cap: int | None = None
    weight: float = 1.0
    none_share: float | None = None
    #: At most this share of the source's questions answer "none of these" (None: as built).
    max_none_share: float | None = None

    def path(self, key: str) -> Path | None:
        value = self.options.get(key)
        return Path(value) if value else None


@dataclass(frozen=True)
class Recipe:
    """A parsed recipe: its sources, the question settings and the training overrides."""

    path: Path
    sources: tuple[RecipeSource, ...]
    questions: DataConfig
    train: Mapping[str, Any] = field(default_factory=dict)

    def without(self, names: Sequence[str]) -> Recipe:
        """The recipe less the sources ``names`` (leave-one-dataset-out); an unknown name is an error."""
        known = [s.name for s in self.sources]
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ConfigError(f"{self.path}: no source named '{unknown[0]}' (sources: {', '.join(known)})")
        kept = tuple(s for s in self.sources if s.name not in names)
        if not kept:
            raise ConfigError(f"{self.path}: leaving out {', '.join(names)} leaves no source")
        return replace(self, sources=kept)


def load_recipe(path: str | Path) -> Recipe:
    """Read and check a recipe file; every mistake is one line naming the file and the setting."""
    from kgalign.finetune.train import TrainConfig

    path = Path(path)
    data = read_config_file(path)
    unknown = sorted(set(data) - {"questions", "train", "source"})
    if unknown:
        raise ConfigError(f"{path}: unknown section '{unknown[0]}' (a recipe has [questions], [train] and [[source]])")
    questions = _table(path, data.get("questions", {}), "questions")
    known = {f.name for f in fields(DataConfig)}
    _no_unknown(path, questions, known, "questions.")
    try:
        question_config = DataConfig(**questions)
    except TypeError as exc:
        raise ConfigError(f"{path}: [questions]: {exc}") from None
    _check_questions(path, question_config)
    train = _table(path, data.get("train", {}), "train")
    _no_unknown(path, train, {f.name for f in fields(TrainConfig)} - {"resume", "force", "device", "threads", "init_adapter"}, "train.")
    raw_sources = data.get("source", [])
    if not isinstance(raw_sources, list) or not raw_sources:
        raise ConfigError(f"{path}: a recipe needs at least one [[source]]")
    sources = [_source(path, index, raw) for index, raw in enumerate(raw_sources, start=1)]
    names = [s.name for s in sources]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"{path}: two sources are named '{repeated[0]}'")
    return Recipe(path=path, sources=tuple(sources), questions=question_config, train=train)


def _table(path: Path, value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{path}: [{name}] must be a table of settings")
    return dict(value)


def _no_unknown(path: Path, table: Mapping[str, Any], known: set[str], prefix: str) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        import difflib

        close = difflib.get_close_matches(unknown[0], sorted(known), n=1)
        hint = f"; did you mean '{prefix}{close[0]}'?" if close else ""
        raise ConfigError(f"{path}: unknown setting '{prefix}{unknown[0]}'{hint}")


def _check_questions(path: Path, config: DataConfig) -> None:
    if not isinstance(config.options, int) or not 1 <= config.options <= 20:
        raise ConfigError(f"{path}: questions.options must be an integer from 1 to 20")
    if not isinstance(config.permutations, int) or not 1 <= config.permutations <= 24:
        raise ConfigError(f"{path}: questions.permutations must be an integer from 1 to 24")
    if config.question not in ("choice", "pairwise"):
        raise ConfigError(f"{path}: questions.question must be choice or pairwise")
    if not isinstance(config.negatives, int) or not 0 <= config.negatives <= 20:
        raise ConfigError(f"{path}: questions.negatives must be an integer from 0 to 20")
    if not isinstance(config.mine, bool):
        raise ConfigError(f"{path}: questions.mine must be true or false")
    for name in ("positives", "attribute_pairs"):
        value = getattr(config, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ConfigError(f"{path}: questions.{name} must be a whole number, 0 or more")
    if (config.mine or config.attribute_pairs) and config.question != "pairwise":
        raise ConfigError(f"{path}: questions.mine and questions.attribute_pairs are for pairwise questions (questions.question = \"pairwise\")")
    for name in ("none_share", "val_share"):
        value = getattr(config, name)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= 0.9:
            raise ConfigError(f"{path}: questions.{name} must be a number from 0 to 0.9")


def _source(path: Path, index: int, raw: Any) -> RecipeSource:
    where = f"{path}: source {index}"
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: must be a table of settings")
    kind = raw.get("kind")
    if kind not in KINDS:
        raise ConfigError(f"{where}: kind must be one of {', '.join(KINDS)}, not {kind!r}")
    name = raw.get("name", f"{kind}-{index}")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{where}: name must be a non-empty string")
    where = f"{path}: source '{name}'"
    _no_unknown(path, raw, _KEYS[kind] | _COMMON, f"source '{name}'.")
    cap, weight, none_share = raw.get("cap"), raw.get("weight", 1.0), raw.get("none_share")
    if cap is not None and (not isinstance(cap, int) or isinstance(cap, bool) or cap < 1):
        raise ConfigError(f"{where}: cap must be a positive integer (training questions)")
    if not isinstance(weight, (int, float)) or isinstance(weight, bool) or not 0 < weight <= 100:
        raise ConfigError(f"{where}: weight must be a number above 0 and at most 100")
    if none_share is not None and (not isinstance(none_share, (int, float)) or not 0 <= none_share <= 0.9):
        raise ConfigError(f"{where}: none_share must be a number from 0 to 0.9")
    max_none = raw.get("max_none_share")
    if max_none is not None and (not isinstance(max_none, (int, float)) or isinstance(max_none, bool) or not 0 <= max_none <= 1):
        raise ConfigError(f"{where}: max_none_share must be a number from 0 to 1")
    options = {key: value for key, value in raw.items() if key not in _COMMON}
    for key in _PATHS & set(options):
        if not isinstance(options[key], str) or not options[key]:
            raise ConfigError(f"{where}: {key} must be a path")
        resolved = (path.parent / options[key]) if not Path(options[key]).is_absolute() else Path(options[key])
        if not resolved.exists():
            raise ConfigError(f"{where}: {key} {resolved} does not exist")
        options[key] = str(resolved)
    required = {"graphs": ("left", "right"), "dbp15k": ("folder",), "pairs": ("file",), "votes": ("file",)}[kind]
    missing = [key for key in required if key not in options]
    if missing:
        raise ConfigError(f"{where}: a {kind} source needs {missing[0]}")
    if kind == "graphs" and "links" not in options and "corrections" not in options:
        raise ConfigError(f"{where}: a graphs source needs links (or corrections)")
    seed_share = options.get("seed_share", 0.0)
    if not isinstance(seed_share, (int, float)) or isinstance(seed_share, bool) or not 0 <= seed_share <= 0.9:
        raise ConfigError(f"{where}: seed_share must be a number from 0 to 0.9 (the share of its links given to retrieval as seed links)")
    return RecipeSource(
        name=name.strip(),
        kind=kind,
        options=options,
        cap=cap,
        weight=float(weight),
        none_share=float(none_share) if none_share is not None else None,
        max_none_share=float(max_none) if max_none is not None else None,
    )


def recipe_data(recipe: Recipe, device: str = "cpu", embedder: Any | None = None) -> TrainingData:
    """Every source's questions, split, capped, weighted and merged into one :class:`TrainingData`."""
    train: list[Example] = []
    val_by_source: list[list[Example]] = []
    counts: dict[str, int] = {}
    per_source: dict[str, Any] = {}
    if embedder is None and any(source.kind != "votes" for source in recipe.sources):
        embedder = recipe_embedder(device)  # loaded once, shared by every source that retrieves
    for source in recipe.sources:
        config = recipe.questions
        if source.none_share is not None:
            config = replace(config, none_share=source.none_share)
        elif source.kind == "pairs":
            config = replace(config, none_share=0.0)
        log.info("recipe source '%s' (%s)", source.name, source.kind)
        data = _source_data(source, config, device, embedder)
        if config.mine or config.attribute_pairs:
            data = _anymatch(data, config, source.name)
        seed = recipe.questions.seed
        # The "none" share holds after the cap too (the cap keeps the first questions).
        kept = _limit_none(_cap(_limit_none(data.train, source.max_none_share, seed, source.name), source.cap), source.max_none_share, seed, source.name)
        weighted = _weight(kept, source.weight, seed, source.name)
        tagged_train = [replace(e, group=source.name) for e in weighted]
        tagged_val = [replace(e, group=source.name) for e in _limit_none(data.val, source.max_none_share, seed, source.name)]
        train.extend(tagged_train)
        val_by_source.append(tagged_val)
        per_source[source.name] = {
            "kind": source.kind,
            "inputs": data.inputs,
            "train_questions": len(kept),
            "train_questions_weighted": len(tagged_train),
            "val_questions": len(tagged_val),
            "cap": source.cap,
            "weight": source.weight,
            "none_share": config.none_share,
            "max_none_share": source.max_none_share,
            "none_answers": sum(1 for e in kept if e.target is None),
            "counts": data.counts,
        }
        for key, value in data.counts.items():
            counts[f"{source.name}.{key}"] = value
    random.Random(recipe.questions.seed + 1).shuffle(train)
    val = _interleave(val_by_source)
    merged = TrainingData(
        train=train,
        val=val,
        recipe="multi-dataset",
        config=recipe.questions,
        counts=counts,
        inputs={"recipe": str(recipe.path), "sources": per_source},
    )
    if not merged.train:
        raise KgalignError(f"{recipe.path}: the recipe's sources gave no training questions")
    return merged


def _source_data(source: RecipeSource, config: DataConfig, device: str, embedder: Any | None) -> TrainingData:
    from kgalign.finetune.data import gold_align_config, gold_data, teacher_data

    opts = source.options
    if source.kind == "dbp15k":
        from kgalign.io.importers.cached import convert_cached
        from kgalign.retrieval.embed import cache_root

        folder = Path(opts["folder"])
        converted = convert_cached("dbp15k", [folder], cache_root() / "conversions" / f"dbp15k-{folder.name}")
        opts = {**opts, "left": converted.outdir / "left.ttl", "right": converted.outdir / "right.ttl", "links": converted.outdir / "gold_train.tsv"}
    if source.kind in ("graphs", "dbp15k"):
        align_config = gold_align_config(
            device, opts.get("format"), opts.get("id_column"), opts.get("attributes", ()), int(opts.get("top_k", 10)), config.seed
        )
        return gold_data(
            opts["left"], opts["right"], opts.get("links"), config, align_config, opts.get("corrections"), embedder, seed_share=float(opts.get("seed_share", 0.0))
        )
    if source.kind == "votes":
        return teacher_data(
            opts["file"],
            config,
            opts.get("left"),
            opts.get("right"),
            float(opts.get("min_confidence", 0.8)),
            bool(opts.get("include_none", False)),
            opts.get("corrections"),
            id_column=opts.get("id_column"),
        )
    return pairs_data(opts["file"], config, opts.get("valid"), device, embedder)


def pairs_data(file: str | Path, config: DataConfig, valid: str | Path | None = None, device: str = "cpu", embedder: Any | None = None) -> TrainingData:
    """Questions from a labelled pair file, one per left record, as ``kgalign pairs`` asks them.

    With ``valid``, the validation questions come from that file and every question of
    ``file`` is trained on; otherwise ``config.val_share`` of the left records is held out.
    """
    embedder = embedder if embedder is not None else recipe_embedder(device)
    train, counts, scores = _pair_examples(file, config, device, embedder)
    inputs = {"file": str(file), "valid": str(valid) if valid else None}
    if valid:
        val, val_counts, _ = _pair_examples(valid, config, device, embedder)
        counts.update({f"valid.{key}": value for key, value in val_counts.items()})
        flat_train = [e for examples in train.values() for e in examples]
        random.Random(config.seed + 1).shuffle(flat_train)
        flat_val = [e for examples in val.values() for e in examples]
        return TrainingData(train=flat_train, val=flat_val, recipe="pairs", config=config, counts=counts, inputs=inputs, scores=scores)
    split_train, split_val = split_sources(train, config)
    return TrainingData(train=split_train, val=split_val, recipe="pairs", config=config, counts=counts, inputs=inputs, scores=scores)


def recipe_embedder(device: str) -> Any:
    """The embedder of the default config on ``device``: what ``kgalign pairs`` and the gold recipe retrieve with."""
    from kgalign.pairs import pairs_config
    from kgalign.retrieval.embed import configured_embedder

    return configured_embedder(pairs_config(device=device))


def _pair_examples(
    file: str | Path, config: DataConfig, device: str, embedder: Any
) -> tuple[dict[str, list[Example]], dict[str, int], dict[tuple[str, str], float]]:
    from kgalign.io.pairs import read_pair_file
    from kgalign.pairs import pairs_config, score_pairs

    pair_file = read_pair_file(file)
    align_config = pairs_config(device=device).replace(vote={"options": config.options})
    scored = score_pairs(pair_file, align_config, embedder)
    positives: dict[str, set[str]] = {}
    for pair in pair_file.pairs:
        positives.setdefault(pair.left, set())
        if pair.label:
            positives[pair.left].add(pair.right)
    labels: Labels = {left: next(iter(rights)) if rights else None for left, rights in positives.items() if len(rights) <= 1}
    counts = {"pairs": len(pair_file.pairs), "left_records": len(positives), "skipped_several_matches": len(positives) - len(labels)}
    if config.question == "pairwise":
        # Every labelled pair of a left record: its matches (several where the file has
        # them), and its hardest labelled non-matches (retrieval's best first).
        from kgalign.finetune.data import pair_examples

        matches = {left: sorted(rights) for left, rights in positives.items() if rights}
        counts["skipped_several_matches"] = 0
        by_source = pair_examples({left: None for left in positives}, scored.candidates, pair_file.left, pair_file.right, config, counts, matches)
    else:
        by_source = build_examples(labels, scored.candidates, pair_file.left, pair_file.right, config, counts)
    return by_source, counts, retrieval_scores(scored.candidates)


def _anymatch(data: TrainingData, config: DataConfig, name: str) -> TrainingData:
    """A source's training questions after AnyMatch's mining and with its attribute pairs
    (:mod:`kgalign.finetune.mining`); its validation questions stay the record pairs."""
    from kgalign.finetune.mining import attribute_examples, mine

    by_source: dict[str, list[Example]] = {}
    for example in data.train:
        by_source.setdefault(example.source, []).append(example)
    counts = dict(data.counts)
    if config.mine:
        by_source, mined = mine(by_source, data.scores, config.positives, config.negatives, config.seed, name)
        counts.update(mined)
    train = [e for examples in by_source.values() for e in examples]
    if config.attribute_pairs:
        extra, attributes = attribute_examples(by_source, config.attribute_pairs, config.seed, name)
        train.extend(extra)
        counts.update(attributes)
    random.Random(f"{config.seed}:{name}:order").shuffle(train)
    return replace(data, train=train, counts=counts)


def _limit_none(examples: list[Example], share: float | None, seed: int, name: str) -> list[Example]:
    """``examples`` less whole source entities answering "none", seeded, until "none" is at most ``share``.

    The questions kept stay in their order. With ``share`` None, or already within it,
    ``examples`` is returned as it is.
    """
    if share is None or not examples or examples[0].question.pairwise:  # pairwise: the negatives' ratio governs
        return examples
    none_sources: dict[str, int] = {}
    for example in examples:
        if example.target is None:
            none_sources[example.source] = none_sources.get(example.source, 0) + 1
    answered = len(examples) - sum(none_sources.values())
    # The most "none" questions n with n / (answered + n) <= share.
    allowed = len(examples) if share >= 1 else int(share * answered / (1 - share) + 1e-9)
    order = sorted(none_sources)
    random.Random(f"{seed}:{name}:none").shuffle(order)
    kept_sources: set[str] = set()
    total = 0
    for source in order:
        if total + none_sources[source] <= allowed:
            kept_sources.add(source)
            total += none_sources[source]
    if total == sum(none_sources.values()):
        return examples
    return [e for e in examples if e.target is not None or e.source in kept_sources]


def _cap(examples: list[Example], cap: int | None) -> list[Example]:
    """The first ``cap`` questions, whole source entities only (all orders of a source, or none)."""
    if cap is None or len(examples) <= cap:
        return examples
    by_source: dict[str, list[Example]] = {}
    for example in examples:
        by_source.setdefault(example.source, []).append(example)
    kept: list[Example] = []
    for group in by_source.values():
        if len(kept) + len(group) > cap:
            break
        kept.extend(group)
    return kept or examples[:cap]


def _weight(examples: list[Example], weight: float, seed: int, name: str) -> list[Example]:
    """Each question ``int(weight)`` times, plus a seeded share ``weight % 1`` of them once more."""
    whole, share = int(weight), weight - int(weight)
    out = [e for e in examples for _ in range(whole)]
    if share > 0:
        extra = list(examples)
        random.Random(f"{seed}:{name}").shuffle(extra)
        out.extend(extra[: round(len(extra) * share)])
    return out


def _interleave(groups: list[list[Example]]) -> list[Example]:
    """One question of each source in turn (whole sources keep their own order)."""
    out: list[Example] = []
    longest = max((len(g) for g in groups), default=0)
    for i in range(longest):
        for group in groups:
            if i < len(group):
                out.append(group[i])
    return out
