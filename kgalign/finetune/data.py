"""Training questions for the judge, asked exactly as a run asks them.

Both recipes end in :func:`build_examples`: labelled source entities (a right IRI, or
None for "no match"), their retrieval candidates and the profiles a run shows. Each
labelled source gives one question (its top ``options`` candidates, as the vote shows
them) repeated in several candidate orders (:func:`kgalign.judging.vote.round_order`: by score,
reversed, then seeded shuffles), so the model sees the answer at every position. For a
share of the sources with a match (``none_share``) the match is taken out of the
candidates and the answer is "none of these". A match that retrieval missed, or ranked
below the options shown, takes the place of the last option shown.

- Gold recipe (:func:`gold_data`): the graphs go through load, select, embed and
  retrieve (:func:`kgalign.pipeline.prepare`), so the candidates are the real hard
  negatives of a run; the labels are the gold links.
- Teacher recipe (:func:`teacher_data`): the labels are the confident decisions of an
  earlier run (its votes.jsonl). A decision record holds the source's profile but only
  the labels of its candidates, so the questions cannot be rebuilt from the log alone:
  the graphs named in the run's run.json (or LEFT and RIGHT given instead) are loaded
  again and profiled with the run's options, and the candidates are taken from the
  record, in its order. Records whose source or candidates the graphs lack are skipped;
  a source whose attributes differ from the logged ones is counted in the summary.

Corrections (``--corrections``) are human labels: they override the recipe's label of
the same source. Train and validation are split by source entity, so no order of a
validation question is ever trained on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kgalign.errors import InputError, KgalignError
from kgalign.evaluation.metrics import read_pairs
from kgalign.judging.prompt import LETTERS, Question
from kgalign.judging.vote import round_order
from kgalign.model import Candidates, EntityProfile
from kgalign.review.corrections import corrections_to_labels
from kgalign.review.votes import read_votes, record_candidates

if TYPE_CHECKING:
    from kgalign.config import AlignConfig
    from kgalign.result import Prepared

log = logging.getLogger(__name__)

#: Share of the sources with a match whose match is removed ("none of these" examples).
NONE_SHARE = 0.2
#: Candidate orders per question.
PERMUTATIONS = 4
#: Share of the labelled sources held out for validation.
VAL_SHARE = 0.2
#: Teacher decisions below this confidence are not used.
MIN_CONFIDENCE = 0.8

Labels = dict[str, str | None]


@dataclass(frozen=True)
class DataConfig:
    """How questions are built from labels."""

    options: int = 5
    permutations: int = PERMUTATIONS
    none_share: float = NONE_SHARE
    val_share: float = VAL_SHARE
    seed: int = 0
    datamark: bool = False  # as `kgalign run --datamark`: train on the prompts the judge will read
    #: "pairwise": one question a pair (:func:`pair_examples`), as `kgalign run` asks them
    #: by default; "choice": multiple-choice questions as above (`--question choice`).
    question: str = "pairwise"
    #: Pairwise: the hardest non-matching candidates (by retrieval score) taken per source,
    #: at most this many per match (AnyMatch: negatives at twice the positives).
    negatives: int = 2
    #: Pairwise recipe sources (kgalign.finetune.mining): train first on the matches
    #: retrieval gets wrong, topped up to ``positives`` matching pairs a source, with the
    #: non-matching ones at ``negatives`` times those (AnyMatch's hard-example mining).
    mine: bool = False
    positives: int = 400
    #: Pairwise recipe sources: add up to this many attribute pairs per field name (one
    #: value against the other record's value of the field, balanced; 0: none).
    attribute_pairs: int = 0


@dataclass(frozen=True)
class Example:
    """One training question and its answer letter."""

    question: Question
    answer: str
    source: str
    target: str | None
    #: The recipe source the question comes from ("" outside a recipe).
    group: str = ""

    @property
    def order(self) -> tuple[str, ...]:
        """The right IRIs shown, in order."""
        return tuple(option.iri for option in self.question.options)

    @property
    def option_iri(self) -> str:
        """The first option's IRI: a pairwise question's candidate."""
        return self.question.options[0].iri if self.question.options else ""

    @property
    def position(self) -> str:
        """The answer's position: the option letter, or ``none``."""
        return position_name(self.question, self.answer)


@dataclass
class TrainingData:
    """Training and validation questions, and how they were made."""

    train: list[Example]
    val: list[Example]
    recipe: str
    config: DataConfig
    counts: dict[str, int] = field(default_factory=dict)
    inputs: dict[str, Any] = field(default_factory=dict)
    #: (source, candidate) -> retrieval's score, where the recipe retrieved (AnyMatch's
    #: mining reads it: kgalign.finetune.mining); not saved with the questions.
    scores: dict[tuple[str, str], float] = field(default_factory=dict, repr=False)
    #: The last fingerprint and the training list it was computed for (its identity and length).
    _digest: tuple[int, int, str] | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def question(self) -> str:
        """The question trained, "pairwise" or "choice" (a saved set's, as its questions are)."""
        if self.train:
            return "pairwise" if self.train[0].question.pairwise else "choice"
        return self.config.question

    def summary(self) -> dict[str, Any]:
        """Sizes and provenance, for kgalign-finetune.json."""
        def describe(examples: list[Example]) -> dict[str, int]:
            return {
                "questions": len(examples),
                "sources": len({e.source for e in examples}),
                "none_answers": sum(1 for e in examples if e.target is None),
            }

        return {
            "recipe": self.recipe,
            "inputs": self.inputs,
            "question": self.question,
            "options": self.config.options,
            "permutations": self.config.permutations,
            "none_share": self.config.none_share,
            "val_share": self.config.val_share,
            "train": describe(self.train),
            "val": describe(self.val),
            "counts": dict(self.counts),
            "fingerprint": self.fingerprint(),
        }

    def fingerprint(self) -> str:
        """A digest of the training questions, their text included (resuming checks it
        against the checkpoint's; ``--adapt`` reuses an adapter trained on the same).

        Computed once per training list: the questions are built whole and not changed
        afterwards (another list, or one of another length, is digested again).
        """
        if self._digest is not None and self._digest[:2] == (id(self.train), len(self.train)):
            return self._digest[2]
        digest = hashlib.sha256()
        for example in self.train:
            digest.update(json.dumps([example.source, example.order, example.answer, example.question.messages()]).encode())
        value = digest.hexdigest()[:16]
        self._digest = (id(self.train), len(self.train), value)
        return value


def position_name(question: Question, letter: str) -> str:
    """``none`` for the question's 'none of these' letter, else the letter itself."""
    return "none" if letter == question.none_letter else letter


def _unit(seed: int, source: str, purpose: str) -> float:
    """A number in [0, 1) fixed by the seed and the source (stable across runs and machines)."""
    digest = hashlib.sha256(f"{seed}:{purpose}:{source}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def build_examples(
    labels: Mapping[str, str | None],
    candidates: Sequence[Candidates],
    left_profiles: Mapping[str, EntityProfile],
    right_profiles: Mapping[str, EntityProfile],
    config: DataConfig,
    counts: dict[str, int] | None = None,
) -> dict[str, list[Example]]:
    """Source IRI -> its questions, each in ``config.permutations`` candidate orders.

    Sources without a label, without a profile, or left without any candidate to show
    are skipped (and counted in ``counts``).
    """
    counts = counts if counts is not None else {}
    if config.question == "pairwise":
        return pair_examples(labels, candidates, left_profiles, right_profiles, config, counts)
    if not 1 <= config.options < len(LETTERS):
        raise KgalignError(f"options must be between 1 and {len(LETTERS) - 1}, not {config.options}")
    by_source: dict[str, list[Example]] = {}
    for cands in candidates:
        if cands.source not in labels:
            continue
        target = labels[cands.source]
        source = left_profiles.get(cands.source)
        if source is None or (target is not None and target not in right_profiles):
            _count(counts, "skipped_unknown_entity")
            continue
        retrieved = [item.iri for item in cands.items if item.iri in right_profiles]
        answer_target = target
        if target is not None and _unit(config.seed, cands.source, "none") < config.none_share:
            shown = [iri for iri in retrieved if iri != target][: config.options]
            answer_target = None
            _count(counts, "match_removed")
        elif target is not None:
            shown = retrieved[: config.options]
            if target not in shown:
                shown = shown[: config.options - 1] + [target]
                _count(counts, "match_added")
        else:
            shown = retrieved[: config.options]
        if not shown:
            _count(counts, "skipped_no_candidates")
            continue
        orders: list[tuple[str, ...]] = []
        for index in range(max(1, config.permutations)):
            order = tuple(round_order(shown, index, cands.source, config.seed))
            if order not in orders:
                orders.append(order)
        examples = []
        for order in orders:
            question = Question(
                source=source, options=tuple(right_profiles[iri] for iri in order), datamark=config.datamark
            )
            letter = question.none_letter if answer_target is None else question.letters[order.index(answer_target)]
            examples.append(Example(question=question, answer=letter, source=cands.source, target=answer_target))
        by_source[cands.source] = examples
        _count(counts, "sources_none" if answer_target is None else "sources_match")
    return by_source


def pair_examples(
    labels: Mapping[str, str | None],
    candidates: Sequence[Candidates],
    left_profiles: Mapping[str, EntityProfile],
    right_profiles: Mapping[str, EntityProfile],
    config: DataConfig,
    counts: dict[str, int] | None = None,
    matches: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, list[Example]]:
    """Source IRI -> its pairwise questions (:mod:`kgalign.judging.pairwise`): each of its
    matches (the label, or every IRI ``matches`` names) answered yes, and its hardest
    non-matching candidates (retrieval's best first, among the top ``options``) answered
    no, at most ``negatives`` per match (``negatives`` for a source without one).

    Each pair is shown with the source record first or second by a seeded coin, or in
    both orders with ``permutations`` >= 2, so that the judge learns neither order."""
    from kgalign.judging.pairwise import CANDIDATE_FIRST, SOURCE_FIRST, pair_question

    counts = counts if counts is not None else {}
    by_source: dict[str, list[Example]] = {}
    for cands in candidates:
        if cands.source not in labels and not (matches and cands.source in matches):
            continue
        source = left_profiles.get(cands.source)
        found = list(matches[cands.source]) if matches and cands.source in matches else [t for t in [labels.get(cands.source)] if t is not None]
        if source is None or any(t not in right_profiles for t in found):
            _count(counts, "skipped_unknown_entity")
            continue
        wrong = [item.iri for item in cands.items if item.iri in right_profiles and item.iri not in found][: config.options or None]
        wrong = wrong[: config.negatives * max(1, len(found))]
        pairs = [(iri, True) for iri in found] + [(iri, False) for iri in wrong]
        if not pairs:
            _count(counts, "skipped_no_candidates")
            continue
        examples = []
        for iri, same in pairs:
            if config.permutations >= 2:
                firsts = [SOURCE_FIRST, CANDIDATE_FIRST]
            else:
                firsts = [SOURCE_FIRST if _unit(config.seed, cands.source + "\x1f" + iri, "first") < 0.5 else CANDIDATE_FIRST]
            for first in firsts:
                question = pair_question(source, right_profiles[iri], first, None, config.datamark)
                examples.append(Example(question=question, answer="A" if same else "B", source=cands.source, target=iri if same else None))
        by_source[cands.source] = examples
        _count(counts, "pairs_match", len(found))
        _count(counts, "pairs_no_match", len(wrong))
    return by_source


def split_sources(by_source: Mapping[str, list[Example]], config: DataConfig) -> tuple[list[Example], list[Example]]:
    """Training and validation questions, split by source (a seeded shuffle of the sources)."""
    sources = sorted(by_source)
    random.Random(config.seed).shuffle(sources)
    n_val = int(round(len(sources) * config.val_share))
    if config.val_share > 0 and len(sources) >= 2:
        n_val = min(max(1, n_val), len(sources) - 1)
    val_sources, train_sources = sources[:n_val], sources[n_val:]
    train = [e for s in train_sources for e in by_source[s]]
    val = [e for s in val_sources for e in by_source[s]]
    random.Random(config.seed + 1).shuffle(train)
    return train, val


def gold_labels(links: str | Path) -> tuple[Labels, dict[str, int]]:
    """Source -> target from a gold file; sources with more than one target are left out."""
    targets: dict[str, set[str]] = {}
    for left, right in read_pairs(links):
        targets.setdefault(left, set()).add(right)
    labels: Labels = {source: next(iter(t)) for source, t in targets.items() if len(t) == 1}
    counts = {"gold_pairs": sum(len(t) for t in targets.values()), "skipped_several_targets": len(targets) - len(labels)}
    if counts["skipped_several_targets"]:
        log.warning("%s: %d sources have several gold targets; left out", links, counts["skipped_several_targets"])
    return labels, counts


def teacher_labels(records: Iterable[dict[str, Any]], min_confidence: float, include_none: bool) -> tuple[Labels, dict[str, int]]:
    """Source -> target from the confident decisions of a decision log.

    Human decisions are always taken; ``match`` decisions at or above
    ``min_confidence``; ``none`` decisions likewise when ``include_none``; ``uncertain``
    decisions never.
    """
    labels: Labels = {}
    counts = {"records": 0, "teacher_match": 0, "teacher_none": 0, "teacher_below_confidence": 0}
    for record in records:
        counts["records"] += 1
        kind, target = record.get("decision"), record.get("target")
        confident = float(record.get("confidence") or 0.0) >= min_confidence or bool(record.get("human"))
        if kind == "match" and target:
            if confident:
                labels[record["source"]] = target
                counts["teacher_match"] += 1
            else:
                counts["teacher_below_confidence"] += 1
        elif kind == "none" and include_none:
            if confident:
                labels[record["source"]] = None
                counts["teacher_none"] += 1
            else:
                counts["teacher_below_confidence"] += 1
    return labels, counts


def add_corrections(labels: Labels, corrections: str | Path | None, counts: dict[str, int]) -> Labels:
    """``labels`` with the human labels of a corrections file taking precedence."""
    if not corrections:
        return labels
    human = dict(corrections_to_labels(corrections))
    counts["corrections"] = len(human)
    return {**labels, **human}


def gold_align_config(
    device: str,
    fmt: str | None = None,
    id_column: str | None = None,
    attributes: Sequence[str] = (),
    top_k: int = 10,
    seed: int = 0,
    embedder: str | None = None,
) -> AlignConfig:
    """How the gold recipe loads, selects and retrieves (as ``kgalign run`` with these options, no judge)."""
    from kgalign.config import AlignConfig, RetrievalConfig

    return AlignConfig(
        judge="none",
        embedder=embedder,
        device=device,
        left_format=fmt,
        right_format=fmt,
        id_column=id_column,
        attributes=tuple(attributes),
        retrieval=RetrievalConfig(k=top_k),
        seed=seed,
    )


def gold_data(
    left: str | Path,
    right: str | Path,
    links: str | Path | None,
    config: DataConfig,
    align_config: AlignConfig | None = None,
    corrections: str | Path | None = None,
    embedder: Any | None = None,
    prepared: Prepared | None = None,
    seed_share: float = 0.0,
) -> TrainingData:
    """Questions for the gold links (and corrections) of LEFT and RIGHT, with a run's real candidates.

    ``align_config`` (a :class:`kgalign.pipeline.AlignConfig`) sets loading, selection
    and retrieval as for ``kgalign run``; its number of options is ``config.options``.
    ``prepared`` (from :func:`kgalign.pipeline.prepare`) saves building them again when
    the caller has them already.

    With ``seed_share``, the questions are asked as a seeded run asks about its test
    split (``--seed-links SEEDS --only-gold-entities``): that share of the matched
    sources (seeded) is given to retrieval as seed links and asks nothing, and the other
    labelled sources are asked, each among the candidates a run finds for it with those
    seeds: the seeds' entities left out, neighbours compared through the seeds, and only
    the asked links' entities taken part (no entity outside the labels is read).
    """
    from kgalign.config import AlignConfig
    from kgalign.pipeline import prepare

    if not links and not corrections:
        raise KgalignError("the gold recipe needs --links GOLD (or --corrections FILE)")
    align_config = align_config or AlignConfig(judge="none")
    counts: dict[str, int] = {}
    labels: Labels = {}
    if links:
        labels, counts = gold_labels(links)
    labels = add_corrections(labels, corrections, counts)
    if seed_share > 0:
        if prepared is not None:
            raise ValueError("seed_share prepares the graphs itself: pass no prepared graphs")
        labels, align_config = _as_seeded_run(labels, align_config, seed_share, config.seed, counts)
    prepared = prepared or prepare(left, right, align_config, embedder)
    counts["labelled_sources"] = len(labels)
    counts["labelled_without_candidates"] = sum(1 for s in labels if s not in {c.source for c in prepared.candidates})
    by_source = build_examples(labels, prepared.candidates, prepared.left_profiles, prepared.right_profiles, config, counts)
    train, val = split_sources(by_source, config)
    inputs = {"left": str(left), "right": str(right), "links": str(links) if links else None, "corrections": str(corrections) if corrections else None}
    from kgalign.finetune.mining import retrieval_scores

    data = TrainingData(train=train, val=val, recipe="gold", config=config, counts=counts, inputs=inputs, scores=retrieval_scores(prepared.candidates))
    _check_not_empty(data)
    return data


def _as_seeded_run(labels: Labels, align_config: AlignConfig, share: float, seed: int, counts: dict[str, int]) -> tuple[Labels, AlignConfig]:
    """``labels`` less a seeded ``share`` of its matches, and ``align_config`` with those
    as seed links and only the other labels' entities taking part (see :func:`gold_data`)."""
    matched = sorted(source for source, target in labels.items() if target is not None)
    random.Random(f"{seed}:seed-links").shuffle(matched)
    seeds = set(matched[: int(round(len(matched) * share))])
    asked = {source: target for source, target in labels.items() if source not in seeds}
    if not seeds or not asked:
        raise KgalignError(f"seed_share {share} of {len(matched)} matched sources leaves no seed link or no question: give more links or another share")
    counts["seed_links"] = len(seeds)
    seed_links = tuple(sorted((source, target) for source, target in labels.items() if source in seeds and target is not None))
    only_right = tuple(sorted({target for target in asked.values() if target is not None}))
    return asked, align_config.replace(seed_links=seed_links, only_left=tuple(sorted(asked)), only_right=only_right)


def run_config(votes: str | Path) -> dict[str, Any]:
    """The run.json beside a votes.jsonl: {} when there is none."""
    path = Path(votes).parent / "run.json"
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # ValueError: not JSON, or not UTF-8 text
        raise InputError(f"{path}: cannot read the run's settings ({exc})") from None


def teacher_data(
    votes: str | Path,
    config: DataConfig | None = None,
    left: str | Path | None = None,
    right: str | Path | None = None,
    min_confidence: float = MIN_CONFIDENCE,
    include_none: bool = False,
    corrections: str | Path | None = None,
    *,
    id_column: str | None = None,
) -> TrainingData:
    """Questions labelled by an earlier run's confident decisions (see the module docstring).

    ``config.options`` of 0 takes the run's number of options from its run.json.
    ``id_column`` names the id column of CSV/TSV graphs (default: their first column).
    """
    from kgalign.config import AlignConfig
    from kgalign.pipeline import prepare
    from kgalign.run_paths import RecordedPaths

    records = list(read_votes(votes))
    info = run_config(votes)
    settings = info.get("config", {})
    # The graphs run.json names, found from any working directory (kgalign.run_paths).
    recorded = RecordedPaths.of(Path(votes).parent, info)
    left = left or (recorded.input(info["left"], "LEFT") if info.get("left") else None)
    right = right or (recorded.input(info["right"], "RIGHT") if info.get("right") else None)
    if not left or not right:
        raise KgalignError(f"{votes}: no run.json beside it names the graphs; give LEFT and RIGHT")
    config = config or DataConfig()
    if config.options <= 0:
        config = replace(config, options=int(settings.get("vote", {}).get("options", 5)))
    align_config = AlignConfig(
        judge="none",
        left_format=settings.get("left_format"),
        right_format=settings.get("right_format"),
        classes=tuple(settings.get("classes", [])),
        attributes=tuple(settings.get("attributes", [])),
        relations=tuple(settings.get("relations", [])),
        max_attributes=int(settings.get("max_attributes", 8)),
        max_neighbours=int(settings.get("max_neighbours", 5)),
        id_column=id_column,
    )
    labels, counts = teacher_labels(records, min_confidence, include_none)
    labels = add_corrections(labels, corrections, counts)
    prepared = prepare(left, right, align_config, retrieve_candidates=False)
    candidates = []
    for record in records:
        source = prepared.left_profiles.get(record["source"])
        if source is None:
            _count(counts, "records_unknown_source")
            continue
        logged = record_candidates(record)
        if any(item.iri not in prepared.right_profiles for item in logged.items):
            _count(counts, "records_unknown_candidate")
            continue
        if [list(a) for a in source.attributes] != record.get("source_attributes", [list(a) for a in source.attributes]):
            _count(counts, "records_profile_differs")
        candidates.append(logged)
    if counts.get("records_unknown_source") or counts.get("records_unknown_candidate"):
        log.warning(
            "%s: %d records name entities the graphs %s and %s lack; skipped",
            votes,
            counts.get("records_unknown_source", 0) + counts.get("records_unknown_candidate", 0),
            left,
            right,
        )
    if counts.get("records_profile_differs"):
        log.warning("%s: %d sources are profiled differently from the logged run", votes, counts["records_profile_differs"])
    counts["labelled_sources"] = len(labels)
    by_source = build_examples(labels, candidates, prepared.left_profiles, prepared.right_profiles, config, counts)
    train, val = split_sources(by_source, config)
    inputs = {
        "votes": str(votes),
        "left": str(left),
        "right": str(right),
        "min_confidence": min_confidence,
        "include_none": include_none,
        "corrections": str(corrections) if corrections else None,
    }
    data = TrainingData(train=train, val=val, recipe="teacher", config=config, counts=counts, inputs=inputs)
    _check_not_empty(data)
    return data


def _check_not_empty(data: TrainingData) -> None:
    if not data.train:
        raise KgalignError(
            f"no training questions ({data.recipe} recipe): no labelled source has candidates to show "
            f"(counts: {json.dumps(data.counts, sort_keys=True)})"
        )
    log.info(
        "%s recipe: %d training and %d validation questions from %d and %d sources",
        data.recipe,
        len(data.train),
        len(data.val),
        len({e.source for e in data.train}),
        len({e.source for e in data.val}),
    )


def _count(counts: dict[str, int], key: str, n: int = 1) -> None:
    counts[key] = counts.get(key, 0) + n
