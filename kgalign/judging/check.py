"""The judge checked on the run's own confident decisions before it is trusted with the rest.

A trained pairwise judge is only as good as its data is like what it was trained on. On
data unlike it (other records, another language, another kind of thing) it can answer
yes to pairs that have nothing in common, and then it does worse than retrieval alone.
Before the contested sources are asked, the run asks the judge about the pairs it is
surest of without a judge: sources the gate's rule settles (a mutual nearest neighbour
leading its runner-up), as many as there are contested sources (at least 10, at most
``vote.check_sources``), each with its match (yes) and its two best other candidates
(no), in one seeded record order a pair, as the judge was trained and validated.
No label is read. The judge must rank these pairs at least as well (ROC AUC of the
rounds' probabilities of yes) as it ranked its own validation questions in training
(``after.auc`` of its training record): those were hard-mined pairs of the training
datasets, and these are a run's easiest. A judge that falls short is not asked: every
contested source is decided by retrieval's scores, as with ``--judge none``; the summary
and run.json (``judge_check``) say why.

Only pairwise questions are checked (the check reads probabilities), and only a judge
whose training recorded its validation AUC, unless ``vote.check_auc`` sets the bar. A
run that adapted its judge (``--adapt``) is not checked: the adaptation holds out a share
of the same confident sources and keeps the judge as it was where training did not help.
The check's answers go through the answer cache like any other.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from kgalign.judging.vote import yes_probability
from kgalign.model import Candidates, Decision, EntityProfile

if TYPE_CHECKING:
    from kgalign.config import AlignConfig
    from kgalign.judging.cache import CachedJudge

log = logging.getLogger(__name__)

#: Fewer confident matches than this and the check is not made (too few to rank).
MIN_MATCHES = 8
#: Sources checked: as many as the judge will be asked about, at least this many, at most
#: ``vote.check_sources`` (so the check costs a fraction of the judging it guards).
MIN_SOURCES = 10
#: Non-matching candidates asked per confident match (its retrieval runners-up).
NEGATIVES = 2


@dataclass(frozen=True)
class JudgeCheck:
    """What the check asked and found."""

    sources: int
    matches: int
    questions: int
    #: ROC AUC of the rounds' probabilities of yes, matches against non-matches.
    auc: float | None
    required: float
    #: Where ``required`` comes from: "training" (the judge's record) or "given".
    required_from: str
    passed: bool
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def brief(self) -> str:
        verdict = "asked about the contested sources" if self.passed else "not asked: retrieval's scores decide"
        auc = "no ranking" if self.auc is None else f"ROC AUC {self.auc:.3f}"
        source = "its training's" if self.required_from == "training" else "the one given"
        return f"judge check on {self.sources:,} confident sources ({self.questions:,} questions): {auc} against {source} {self.required:.3f}; {verdict}"


def required_auc(config: AlignConfig, judge_given: bool = False) -> tuple[float, str] | None:
    """The AUC the judge must reach and where it comes from, or None where there is no check:
    off (``check_sources`` 0), multiple-choice questions, or a judge without a recorded AUC
    (a served model, the bare model, a judge object) and no ``check_auc`` given."""
    vote = config.vote
    if vote.check_sources == 0 or vote.question != "pairwise" or (config.judge == "none" and not judge_given):
        return None
    if vote.check_auc is not None:
        return vote.check_auc, "given"
    if judge_given:
        return None
    from kgalign.judging.adapters import trained_auc

    recorded = trained_auc(config.judge, config.model, config.adapter)
    return (recorded, "training") if recorded is not None else None


def check_questions(
    candidates: Sequence[Candidates],
    left_profiles: Mapping[str, EntityProfile],
    right_profiles: Mapping[str, EntityProfile],
    config: AlignConfig,
    decided: Mapping[str, Decision],
    contested: int,
) -> tuple[list[Any], int]:
    """The check's questions (training's :class:`kgalign.finetune.data.Example`, answer
    "A" for yes) and the number of sources they come from; ``contested``: the sources the
    judge would be asked about."""
    from kgalign.finetune.adapt import confident_labels
    from kgalign.finetune.data import DataConfig, pair_examples

    vote = config.vote
    limit = min(vote.check_sources, max(MIN_SOURCES, contested))
    labels = confident_labels(candidates, config, {s: d for s, d in decided.items() if d.human}, limit)
    labels = {source: target for source, target in labels.items() if target is not None}
    data_config = DataConfig(options=vote.options, permutations=1, seed=config.seed, datamark=vote.datamark, question="pairwise", negatives=NEGATIVES)
    by_source = pair_examples(labels, candidates, left_profiles, right_profiles, data_config)
    return [example for examples in by_source.values() for example in examples], len(by_source)


def check_on_confident(
    judge: CachedJudge,
    candidates: Sequence[Candidates],
    left_profiles: Mapping[str, EntityProfile],
    right_profiles: Mapping[str, EntityProfile],
    config: AlignConfig,
    decided: Mapping[str, Decision],
    required: tuple[float, str],
    contested: int,
) -> JudgeCheck | None:
    """Ask ``judge`` the check's questions (``contested``: the sources it would be asked
    about); None (and a log line) where there are too few confident matches."""
    from kgalign.finetune.train import ranking

    started = time.monotonic()
    examples, sources = check_questions(candidates, left_profiles, right_profiles, config, decided, contested)
    matches = sum(1 for e in examples if e.answer == "A")
    if matches < MIN_MATCHES or matches == len(examples):
        log.info("judge check: %d confident matches with other candidates (at least %d are needed); the judge is asked unchecked", matches, MIN_MATCHES)
        return None
    from kgalign.runtime.progress import progress_bar

    with progress_bar("judge check", len(examples)) as advance:
        judge.on_answered = advance
        try:
            answers = judge.answer([e.question for e in examples])
        finally:
            judge.on_answered = None
    probabilities: list[float] = []
    labels: list[bool] = []
    for example, answer in zip(examples, answers):
        p = yes_probability(answer, example.question)
        if p is not None:
            probabilities.append(p)
            labels.append(example.answer == "A")
    _, _, auc = ranking(probabilities, labels)
    bar, source = required
    check = JudgeCheck(
        sources=sources,
        matches=matches,
        questions=len(examples),
        auc=None if auc is None else round(auc, 4),
        required=round(bar, 4),
        required_from=source,
        passed=auc is not None and auc >= bar,
        seconds=round(time.monotonic() - started, 2),
    )
    (log.info if check.passed else log.warning)("%s", check.brief())
    return check
