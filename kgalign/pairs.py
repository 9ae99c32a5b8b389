"""The pairs protocol of entity matching (DeepMatcher, Ditto): label given candidate pairs, score F1.

A labelled pair file (:mod:`kgalign.io.pairs`) lists candidate pairs of records, each
labelled match (1) or not (0). kgalign labels them as ``kgalign run`` decides:

1. **Score.** Each pair gets kgalign's retrieval score, computed for the given pairs
   only (no search): ``dense_weight * cos(MiniLM) + (1 - dense_weight) * cos(TF-IDF of
   character n-grams and words)`` (:func:`kgalign.retrieval.retrieve.lexical_vectors`;
   the TF-IDF is fitted on the file's own records), on each record's text (label, then
   the other values).
2. **Group.** The pairs of one left record make one question: its right records,
   best score first, are the candidates (:class:`~kgalign.model.Candidates`, with
   margin and mutual-best flag as retrieval sets them). The judge is shown the best
   ``vote.options`` of them plus "none of these"; the pairs past that are predicted 0.
3. **Decide.** :func:`kgalign.judging.vote.decide` runs exactly as in ``kgalign run``:
   rounds in different orders, strict majority, early stop, the answer cache. The gate
   is off by default here (:func:`pairs_config`): every question is asked when a judge
   is used. Without a judge (``judge="none"``), the best-scoring right record of each
   question wins when its score reaches the threshold (``vote.min_score``), chosen on
   a validation file (:func:`choose_threshold`: the best positive-class F1 under the
   same rule, the lowest such threshold on a tie) or given. With a judge and a
   validation file, the vote's bias on "none of these" is chosen there the same way
   (:func:`choose_none_bias`), unless given. The test file's labels are never used to
   choose anything. There is no 1:1 resolution: two left records may
   pick the same right record.
4. **Predict.** A pair is predicted a match iff its right record is its question's
   decided target; so at most one pair per left record is a match (where a left record
   has several true matches, as in the WDC test sets, the others count as missed:
   ``metrics["recall_ceiling"]`` is the best recall one pick per question allows).

Each pair's **confidence** is a match score in [0, 1]: for a question the judge voted
on, the share of the rounds that chose the pair's right record, weighted by the
answers' probabilities where the judge gives them (the formula of the decision's own
confidence, so the winner's confidence is the decision's); for a question decided
without the judge (``judge="none"``, or gated), the pair's retrieval score clipped to
[0, 1] (the winner's equals the decision's confidence).

>>> result = match_pairs("test.txt", valid="valid.txt")   # doctest: +SKIP
>>> result.metrics["f1"], result.save("out/")              # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kgalign.config import AlignConfig
from kgalign.errors import InputError, KgalignError
from kgalign.io.pairs import PairFile, read_pair_file
from kgalign.judging.adapters import trained_pair_threshold, with_trained_threshold
from kgalign.judging.base import Judge
from kgalign.model import Candidate, Candidates, Decision
from kgalign.retrieval.embed import Embedder, configured_embedder
from kgalign.runtime.stages import StageTimer

log = logging.getLogger(__name__)

#: The files :meth:`PairsResult.save` writes.
PAIRS_OUTPUTS = ("predictions.tsv", "votes.jsonl", "metrics.json")


def pairs_config(**changes: Any) -> AlignConfig:
    """The defaults of the pairs protocol: :class:`AlignConfig`'s, with the gate off (every
    question is asked when a judge is used), plus ``changes`` (as :meth:`AlignConfig.replace`)."""
    return AlignConfig().replace(vote={"gate": False}).replace(**changes)


@dataclass
class ScoredPairs:
    """A pair file with every pair's retrieval score and its questions (one per left record)."""

    file: PairFile
    #: Retrieval score of each distinct (left IRI, right IRI) pair.
    scores: dict[tuple[str, str], float]
    #: One per left record, in the order left records first appear; items best first.
    candidates: list[Candidates]
    #: The indices of each left record's pairs, in input order.
    by_left: dict[str, list[int]]

    def score(self, index: int) -> float:
        pair = self.file.pairs[index]
        return self.scores[(pair.left, pair.right)]


@dataclass(frozen=True)
class PairPrediction:
    """The outcome for one input pair: ``prediction`` 1 is a match; ``confidence`` a match score
    in [0, 1] (see the module docstring); ``label`` the file's, ``score`` the retrieval score."""

    index: int
    prediction: int
    confidence: float
    label: int
    score: float


@dataclass
class PairsResult:
    """What :func:`match_pairs` produced; :meth:`save` writes it."""

    file: PairFile
    #: The config used, "auto" values resolved and the threshold set as ``vote.min_score``.
    config: AlignConfig
    candidates: list[Candidates]
    decisions: list[Decision]
    predictions: list[PairPrediction]
    metrics: dict[str, Any]
    by_left: dict[str, list[int]] = field(default_factory=dict)

    @property
    def threshold(self) -> float | None:
        return self.metrics.get("threshold")

    def vote_records(self) -> list[dict[str, Any]]:
        """One decision record per question (votes.jsonl as ``kgalign run`` writes it), plus the
        0-based indices of the question's pairs (``pair_indices``)."""
        from kgalign.review.votes import decision_record

        records = []
        for decision, cands in zip(self.decisions, self.candidates):
            linked = decision.target if decision.kind == "match" else None
            record = decision_record(decision, cands, self.file.left[decision.source], self.file.right, linked=linked)
            record["pair_indices"] = self.by_left.get(decision.source, [])
            records.append(record)
        return records

    def predictions_tsv(self) -> str:
        """``index<TAB>prediction<TAB>confidence`` per input pair, input order, no header."""
        return "".join(f"{p.index}\t{p.prediction}\t{p.confidence:.4f}\n" for p in self.predictions)

    def save(self, outdir: str | Path) -> dict[str, Path]:
        """Write predictions.tsv, votes.jsonl and metrics.json into ``outdir``: all of them, or none."""
        from kgalign.io.atomic import deferred_renames, write_text_atomic
        from kgalign.review.votes import write_votes

        outdir = Path(outdir)
        paths = {name: outdir / name for name in PAIRS_OUTPUTS}
        try:
            outdir.mkdir(parents=True, exist_ok=True)
            with deferred_renames():
                write_text_atomic(paths["predictions.tsv"], self.predictions_tsv())
                write_votes(self.vote_records(), paths["votes.jsonl"])
                write_text_atomic(paths["metrics.json"], json.dumps(self.metrics, indent=2, sort_keys=True) + "\n")
        except OSError as exc:
            raise KgalignError(f"{exc.filename or outdir}: cannot write the outputs ({exc.strerror or exc})") from None
        return paths


def match_pairs(
    path: str | Path,
    valid: str | Path | None = None,
    config: AlignConfig | None = None,
    judge: Judge | None = None,
    embedder: Embedder | None = None,
    threshold: float | None = None,
    none_bias: float | None = None,
    pair_threshold: float | None = None,
    check: bool = True,
) -> PairsResult:
    """Label the pairs of ``path`` and score them against its labels (see the module docstring).

    ``config`` defaults to :func:`pairs_config` (a config given is used as it is: build it
    with ``pairs_config(...)`` to keep the gate off). ``judge`` is a judge object (else
    ``config.judge`` is built, behind the answer cache at ``config.cache_path``).
    ``threshold`` is the least retrieval score a question's best pair needs to be a
    match without the judge; with ``valid`` (a labelled pair file) and no ``threshold``
    it is chosen there. ``judge="none"`` needs one of the two; with a judge they apply
    to gated questions only. ``none_bias`` is the vote's bias on "none of these"; None:
    with a judge and ``valid``, the one with the best F1 there (:func:`choose_none_bias`),
    else ``config.vote.none_bias``.

    With ``config.vote.question == "pairwise"`` each pair is its own question (every pair
    of a left record is asked, up to 20, in rounds of both record orders), and a pair is
    predicted a match iff its rounds' mean probability of yes reaches ``pair_threshold``;
    None: ``config.vote.pair_threshold`` where set; else, with ``valid``, the one with the
    best F1 there (:func:`choose_pair_threshold`); else the one the judge's pairwise
    training chose on its own validation questions
    (:func:`~kgalign.judging.adapters.settle_pair_threshold`), else 0.5.

    ``check``: where the judge is asked on ``valid`` (to choose its bias or threshold),
    it must do there at least as well as retrieval alone (best F1 against retrieval's
    best F1); a judge that does worse is not asked about ``path``, whose questions are
    then decided as ``judge="none"`` decides them (``metrics["judge_check"]``).
    """
    from kgalign.judging.base import check_judge

    config = config or pairs_config()
    judged = judge is not None or config.judge != "none"
    if threshold is not None and valid is not None:
        raise KgalignError("give a threshold or a validation file to choose it on, not both")
    if not judged and threshold is None and valid is None:
        raise KgalignError("--judge none needs a threshold: give --valid FILE (a labelled pair file to choose it on) or --threshold X")
    if judge is None and config.judge != "none":
        check_judge(*config.judge_choice)
    timer = StageTimer()
    with timer.stage("read"):
        test = read_pair_file(path)
        valid_file = read_pair_file(valid) if valid is not None else None
    effective = _effective(config, judged)
    pairwise = judged and effective.vote.question == "pairwise"
    if pairwise:  # every pair its own question: as many per left record as the vote allows
        effective = effective.replace(vote={"options": 20})
    if pair_threshold is None:
        pair_threshold = config.vote.pair_threshold
    if pair_threshold is not None:
        effective = effective.replace(vote={"pair_threshold": float(pair_threshold)})
    trained = None
    if pairwise and judge is None:
        trained = trained_pair_threshold(config.judge, config.model, config.adapter)
    pair_threshold_from = "given" if pair_threshold is not None else "config"
    if pair_threshold is None:
        # The judge's trained threshold, else 0.5; with ``valid`` it only places the early
        # stop of the validation rounds, until the threshold is chosen there.
        effective = with_trained_threshold(effective, trained)  # read once, above
        if trained is not None and valid_file is None:
            pair_threshold_from = "training"
    if embedder is None and effective.retrieval.dense_weight > 0:
        embedder = configured_embedder(effective)

    valid_f1 = None
    threshold_from = "given" if threshold is not None else None
    valid_scored = None
    if valid_file is not None:
        with timer.stage("threshold"):
            valid_scored = score_pairs(valid_file, effective, embedder)
            threshold, valid_f1 = choose_threshold(valid_scored)
        threshold_from = "valid"
        log.info("threshold %.4f chosen on %s (F1 %.4f there)", threshold, valid, valid_f1)
    if threshold is not None:
        if not -1.0 <= threshold <= 1.0 or math.isnan(threshold):
            raise KgalignError(f"threshold: {threshold} is out of range (must be between -1 and 1)")
        effective = effective.replace(vote={"min_score": float(threshold)})
    if none_bias is not None:
        effective = effective.replace(vote={"none_bias": float(none_bias)})
    tune_on = valid_scored if judged and (pair_threshold is None if pairwise else none_bias is None) else None
    vote = effective.vote

    with timer.stage("score"):
        scored = score_pairs(test, effective, embedder)
    capped = [c for c in scored.candidates if len(c.items) > vote.options]
    beyond = sum(1 for c in capped for i in scored.by_left[c.source] if test.pairs[i].right not in {x.iri for x in c.items[: vote.options]})
    if judged and capped:
        log.info(
            "%d of %d questions have more than %d right records: the judge is shown the %d best by retrieval score, "
            "and the other %d pairs are predicted 0",
            len(capped), len(scored.candidates), vote.options, vote.options, beyond,
        )

    with timer.stage("judge"):
        trust_from = valid_f1 if check and tune_on is not None else None
        decisions, cached_judge, tuned, trusted = _decide(scored, effective, judge if judged else None, tune_on, trust_from)
    if tuned is not None:
        effective = effective.replace(vote={"pair_threshold": tuned.value} if pairwise else {"none_bias": tuned.value})
    from kgalign.judging.build import judge_id

    predictions = predict(scored, decisions, effective.vote.resolved_pair_threshold)
    metrics = pair_metrics(predictions)
    if tuned is not None and trained is not None:
        # What the training's own threshold would have scored, beside the one chosen on valid.
        metrics["trained_pair_threshold_f1"] = pair_metrics(predict(scored, decisions, trained))["f1"]
    metrics.update(
        file=str(path),
        layout=test.layout,
        valid=str(valid) if valid_file is not None else None,
        threshold=None if threshold is None else round(float(threshold), 6),
        threshold_from=threshold_from,
        valid_f1=None if valid_f1 is None else round(valid_f1, 6),
        questions=len(scored.candidates),
        left_records=len(test.left),
        right_records=len(test.right),
        recall_ceiling=_recall_ceiling(scored, vote.options),
        capped_questions=len(capped),
        pairs_beyond_options=beyond,
        judge=judge_id(cached_judge, effective),
        asked=sum(1 for d in decisions if d.rounds),
        gated=sum(1 for d in decisions if d.gated),
        llm_questions=cached_judge.sent - (tuned.sent if tuned else 0) if cached_judge else 0,
        cache_hits=cached_judge.hits - (tuned.hits if tuned else 0) if cached_judge else 0,
        question=effective.vote.question if judged else None,
        none_bias=effective.vote.none_bias,
        none_bias_from="valid" if tuned is not None and not pairwise else "given" if none_bias is not None else "config",
        none_bias_valid_f1=tuned.f1 if tuned and not pairwise else None,
        none_bias_valid_f1_unbiased=tuned.f1_neutral if tuned and not pairwise else None,
        pair_threshold=effective.vote.resolved_pair_threshold if pairwise else None,
        pair_threshold_from=("valid" if tuned is not None else pair_threshold_from) if pairwise else None,
        trained_pair_threshold=trained,
        pair_threshold_valid_f1=tuned.f1 if tuned and pairwise else None,
        valid_llm_questions=tuned.sent if tuned else 0,
        judge_check=_check_record(tuned, trust_from, trusted),
        rounds=vote.rounds,
        options=vote.options,
        gate=vote.gate,
        seed=effective.seed,
        dense_weight=effective.retrieval.dense_weight,
        stages=timer.stages,
        seconds=timer.total_seconds,
    )
    return PairsResult(test, effective, scored.candidates, decisions, predictions, metrics, scored.by_left)


def _effective(config: AlignConfig, judged: bool) -> AlignConfig:
    """``config`` with the device resolved (where a model runs) and the vote seeded by ``seed``."""
    from kgalign.runtime.device import resolve_device

    changes: dict[str, Any] = {"vote": {"seed": config.seed}}
    if config.device == "auto" and (judged or config.retrieval.dense_weight > 0):
        changes["device"] = resolve_device(config.device)
    return config.replace(**changes)


def score_pairs(file: PairFile, config: AlignConfig, embedder: Embedder | None = None) -> ScoredPairs:
    """Every pair's retrieval score (see the module docstring) and the file's questions."""
    from kgalign.retrieval.embed import encode_sides
    from kgalign.retrieval.retrieve import lexical_vectors, sparse_pair_dots

    left_iris, right_iris = list(file.left), list(file.right)
    left_row = {iri: i for i, iri in enumerate(left_iris)}
    right_row = {iri: i for i, iri in enumerate(right_iris)}
    left_texts = [file.left[iri].text() for iri in left_iris]
    right_texts = [file.right[iri].text() for iri in right_iris]
    unique = list(dict.fromkeys((p.left, p.right) for p in file.pairs))
    rows = np.fromiter((left_row[a] for a, _ in unique), dtype=np.int64, count=len(unique))
    cols = np.fromiter((right_row[b] for _, b in unique), dtype=np.int64, count=len(unique))
    weight = config.retrieval.dense_weight
    scores = np.zeros(len(unique), dtype=np.float32)
    if weight < 1.0:
        left_lex, right_lex = lexical_vectors(left_texts, right_texts)
        scores += (1.0 - weight) * sparse_pair_dots(left_lex, right_lex, rows, cols)
    if weight > 0.0:
        if embedder is None:
            raise KgalignError("dense_weight > 0 needs an embedder")
        left_dense, right_dense = encode_sides(embedder, left_texts, right_texts)
        scores += weight * np.einsum("ij,ij->i", left_dense[rows], right_dense[cols]).astype(np.float32)
    by_pair = {pair: round(score, 6) for pair, score in zip(unique, scores.astype(np.float64).tolist())}
    return ScoredPairs(file, by_pair, *_questions(file, by_pair))


def _questions(file: PairFile, scores: dict[tuple[str, str], float]) -> tuple[list[Candidates], dict[str, list[int]]]:
    """One :class:`Candidates` per left record (right records best first, ties in input order)."""
    by_left: dict[str, list[int]] = defaultdict(list)
    best_left: dict[str, tuple[float, str]] = {}
    for pair in file.pairs:
        by_left[pair.left].append(pair.index)
        score = scores[(pair.left, pair.right)]
        if pair.right not in best_left or score > best_left[pair.right][0]:
            best_left[pair.right] = (score, pair.left)
    candidates = []
    for left, indices in by_left.items():
        rights = list(dict.fromkeys(file.pairs[i].right for i in indices))
        rights.sort(key=lambda right: -scores[(left, right)])  # stable: ties keep input order
        items = [Candidate(iri=right, score=scores[(left, right)], rank=rank) for rank, right in enumerate(rights, start=1)]
        margin = items[0].score - items[1].score if len(items) > 1 else items[0].score
        mutual = best_left[items[0].iri][1] == left
        candidates.append(Candidates(source=left, items=items, margin=round(margin, 6), mutual=mutual))
    return candidates, dict(by_left)


def choose_threshold(scored: ScoredPairs) -> tuple[float, float]:
    """The threshold with the best positive-class F1 on ``scored`` (a validation file) under the
    rule of ``judge="none"`` (each question's best pair is a match when its score reaches the
    threshold); the lowest such threshold on a tie. Returns (threshold, F1)."""
    positives = scored.file.positives
    if positives == 0:
        raise InputError(f"{scored.file.path}: no pair is labelled 1, so no threshold can be chosen on it")
    tops = []
    for cands in scored.candidates:
        top = cands.top
        assert top is not None
        chosen = [i for i in scored.by_left[cands.source] if scored.file.pairs[i].right == top.iri]
        tops.append((top.score, len(chosen), sum(scored.file.pairs[i].label for i in chosen)))
    tops.sort(key=lambda t: -t[0])
    best_f1, best = -1.0, tops[-1][0]
    predicted = correct = 0
    i = 0
    while i < len(tops):
        score = tops[i][0]
        while i < len(tops) and tops[i][0] == score:
            predicted += tops[i][1]
            correct += tops[i][2]
            i += 1
        f1 = 2 * correct / (predicted + positives)
        if f1 >= best_f1:  # scores fall: on a tie the lower threshold wins
            best_f1, best = f1, score
    return best, best_f1


def _decide(
    scored: ScoredPairs, config: AlignConfig, judge: Judge | None, tune_on: ScoredPairs | None = None, trust_from: float | None = None
) -> tuple[list[Decision], Any, ValidChoice | None, bool | None]:
    """The decisions of every question, as ``kgalign run`` makes them (judge built as a run
    builds it); with ``tune_on`` (a validation file's pairs), under the none bias or the
    pairwise threshold chosen there with the same judge and answer cache
    (:func:`choose_none_bias`, :func:`choose_pair_threshold`). With ``trust_from`` too
    (retrieval's best F1 on ``tune_on``), a judge whose best F1 there falls below it is
    not asked: every question is decided by retrieval, as ``--judge none`` decides it.
    The last value says whether the judge was trusted (None: not checked)."""
    from kgalign.judging.build import build_judge
    from kgalign.judging.vote import check_answered, decide, questions_estimate
    from kgalign.runtime.progress import progress_bar

    if judge is None and config.judge == "none":
        return decide(scored.candidates, scored.file.left, scored.file.right, None, config.vote), None, None, None
    cached_judge, cache = build_judge(config, judge)
    assert cached_judge is not None
    tuned = None
    trusted = None
    try:
        if tune_on is not None and config.vote.question == "pairwise":
            tuned = choose_pair_threshold(tune_on, config, cached_judge)
            config = config.replace(vote={"pair_threshold": tuned.value})
        elif tune_on is not None:
            tuned = choose_none_bias(tune_on, config, cached_judge)
            if tuned is not None:
                config = config.replace(vote={"none_bias": tuned.value})
        if tuned is not None and trust_from is not None:
            assert tune_on is not None  # the judge was asked on it
            trusted = tuned.f1 >= trust_from
            if not trusted:
                log.warning(
                    "the judge is not trusted on %s: its best F1 there is %.4f, retrieval's %.4f; every question is decided without it",
                    tune_on.file.path, tuned.f1, trust_from,
                )
                return decide(scored.candidates, scored.file.left, scored.file.right, None, config.vote), cached_judge, tuned, False
        total = questions_estimate(config.vote, len(scored.candidates))
        with progress_bar("judge", total) as advance:
            cached_judge.on_answered = advance
            decisions = decide(scored.candidates, scored.file.left, scored.file.right, cached_judge, config.vote)
        check_answered(decisions, cached_judge.name)
    finally:
        if cache is not None:
            cache.close()
    return decisions, cached_judge, tuned, trusted


def _check_record(tuned: ValidChoice | None, retrieval_f1: float | None, trusted: bool | None) -> dict[str, Any] | None:
    """metrics.json's ``judge_check``: the judge's and retrieval's best F1 on the valid
    pairs and the verdict (None where the judge was not checked)."""
    if trusted is None or tuned is None or retrieval_f1 is None:
        return None
    return {"judge_valid_f1": tuned.f1, "retrieval_valid_f1": round(retrieval_f1, 6), "trusted": trusted}


#: The biases on "none of these" tried on a validation file, in log-probability.
NONE_BIASES = tuple(step / 4 for step in range(-24, 25))


@dataclass(frozen=True)
class ValidChoice:
    """A vote setting chosen on a validation file (the bias on "none of these", or a
    pairwise vote's threshold), its F1 there and the F1 at the setting's neutral value
    (bias 0, threshold 0.5), and the questions the choice asked the judge (``sent``) or
    found in its cache (``hits``)."""

    value: float
    f1: float
    f1_neutral: float
    sent: int
    hits: int


class _Remembered:
    """A judge's answers kept by prompt, so that the votes under each bias tried ask every
    question once (the answers are then chosen again under each bias by the vote)."""

    def __init__(self, judge: Any) -> None:
        self.judge = judge
        self.name = judge.name
        self.source_block = getattr(judge, "source_block", None)
        self.answers: dict[str, Any] = {}

    @property
    def model_id(self) -> str:
        return str(self.judge.model_id)

    def cache_params(self) -> dict[str, Any]:
        return dict(self.judge.cache_params())

    def answer(self, questions: list[Any]) -> list[Any]:
        texts = [q.text() for q in questions]
        missing = {text: q for text, q in zip(texts, questions) if text not in self.answers}
        if missing:
            self.answers.update(zip(missing, self.judge.answer(list(missing.values()))))
        return [self.answers[text] for text in texts]


def choose_none_bias(valid: ScoredPairs, config: AlignConfig, judge: Any) -> ValidChoice | None:
    """The bias on "none of these" (:data:`NONE_BIASES`) whose votes give the best
    positive-class F1 on ``valid``, the one nearest 0 on a tie; None where the judge does
    not score every letter (the bias needs its scores, :func:`kgalign.judging.vote.with_none_bias`).

    A small judge answers "none" too often on some data and too rarely on other: which,
    only labelled pairs of the same data tell. The votes run as the file's will, rounds,
    early stop and all; each question is asked once (through ``judge``, so its answer is
    cached as any other), and chosen again under each bias.
    """
    from dataclasses import replace

    from kgalign.judging.vote import NoLetterScores, decide, questions_estimate
    from kgalign.runtime.progress import progress_bar

    sent, hits = judge.sent, judge.hits
    remembered = _Remembered(judge)
    f1: dict[float, float] = {}
    with progress_bar("judge valid", questions_estimate(config.vote, len(valid.candidates))) as advance:
        judge.on_answered = advance
        for bias in sorted(NONE_BIASES, key=abs):  # 0 first: it asks most of the questions
            try:
                decisions = decide(valid.candidates, valid.file.left, valid.file.right, remembered, replace(config.vote, none_bias=bias))
            except NoLetterScores:
                log.info("judge %s does not score every letter: no bias on 'none of these' is chosen on the validation file", judge.name)
                return None
            f1[bias] = pair_metrics(predict(valid, decisions))["f1"]
    best = max(NONE_BIASES, key=lambda b: (f1[b], -abs(b)))
    log.info("bias on 'none of these' %+.2f chosen on %s (F1 %.4f there, %.4f without it)", best, valid.file.path, f1[best], f1[0.0])
    return ValidChoice(best, f1[best], f1[0.0], judge.sent - sent, judge.hits - hits)


#: The thresholds on a pairwise vote's mean probability of yes tried on a validation file.
PAIR_THRESHOLDS = tuple(step / 100 for step in range(2, 99, 2))


def choose_pair_threshold(valid: ScoredPairs, config: AlignConfig, judge: Any) -> ValidChoice:
    """The threshold on a pairwise vote's mean probability of yes (:data:`PAIR_THRESHOLDS`)
    with the best positive-class F1 on ``valid``, the one nearest 0.5 on a tie (returned
    as a :class:`ValidChoice`).
    Every question is asked once, through ``judge`` (so its answer is cached as any other)."""
    from kgalign.judging.vote import decide, questions_estimate
    from kgalign.runtime.progress import progress_bar

    sent, hits = judge.sent, judge.hits
    with progress_bar("judge valid", questions_estimate(config.vote, len(valid.candidates))) as advance:
        judge.on_answered = advance
        decisions = decide(valid.candidates, valid.file.left, valid.file.right, judge, config.vote)
    f1 = {t: pair_metrics(predict(valid, decisions, t))["f1"] for t in (*PAIR_THRESHOLDS, 0.5)}
    best = max(PAIR_THRESHOLDS, key=lambda t: (f1[t], -abs(t - 0.5)))
    log.info("pairwise threshold %.2f chosen on %s (F1 %.4f there, %.4f at 0.5)", best, valid.file.path, f1[best], f1[0.5])
    return ValidChoice(best, f1[best], f1[0.5], judge.sent - sent, judge.hits - hits)


def predict(scored: ScoredPairs, decisions: Sequence[Decision], pair_threshold: float = 0.5) -> list[PairPrediction]:
    """One prediction per input pair, in input order (see the module docstring for the
    confidence); a pairwise vote's pair by its mean probability of yes against ``pair_threshold``."""
    from kgalign.judging.pairwise import candidate_votes

    file = scored.file
    out: list[PairPrediction | None] = [None] * len(file.pairs)
    for cands, decision in zip(scored.candidates, decisions):
        votes = candidate_votes(decision.rounds) if any(r.first for r in decision.rounds) else None
        for index in scored.by_left[cands.source]:
            pair = file.pairs[index]
            score = scored.scores[(pair.left, pair.right)]
            won = decision.kind == "match" and decision.target == pair.right
            if votes is not None:
                asked = votes.get(pair.right)
                mean = sum(asked) / len(asked) if asked else 0.0
                out[index] = PairPrediction(index, int(bool(asked) and mean >= pair_threshold), round(mean, 6), pair.label, score)
                continue
            if decision.rounds:
                confidence = decision.confidence if won else _vote_share(decision, pair.right)
            else:
                confidence = min(1.0, max(0.0, score))
            out[index] = PairPrediction(index, int(won), round(float(confidence), 6), pair.label, score)
    done = [p for p in out if p is not None]
    assert len(done) == len(out), "every pair belongs to one question"
    return done


def _vote_share(decision: Decision, iri: str) -> float:
    """The share of the rounds that chose ``iri``, times those answers' mean probability (as _tally)."""
    votes = [r for r in decision.rounds if r.target == iri]
    if not votes:
        return 0.0
    probs = [math.exp(r.logprob) for r in votes if r.logprob is not None]
    return len(votes) / len(decision.rounds) * (sum(probs) / len(probs) if probs else 1.0)


def pair_metrics(predictions: Sequence[PairPrediction]) -> dict[str, Any]:
    """Precision, recall and F1 of the positive class, and the counts they come from."""
    positives = sum(p.label for p in predictions)
    predicted = sum(p.prediction for p in predictions)
    correct = sum(1 for p in predictions if p.prediction and p.label)
    precision = correct / predicted if predicted else 0.0
    recall = correct / positives if positives else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": round(precision, 6),
        "recall": round(recall, 6),
        "f1": round(f1, 6),
        "pairs": len(predictions),
        "positives": positives,
        "predicted": predicted,
        "true_positives": correct,
    }


def _recall_ceiling(scored: ScoredPairs, options: int) -> float | None:
    """The best recall one pick per question among its shown options allows (labels read to report it, never to choose)."""
    file = scored.file
    if not file.positives:
        return None
    reachable = 0
    for cands in scored.candidates:
        shown = {c.iri for c in cands.items[:options]}
        hits: dict[str, int] = defaultdict(int)
        for index in scored.by_left[cands.source]:
            pair = file.pairs[index]
            if pair.label and pair.right in shown:
                hits[pair.right] += 1
        reachable += max(hits.values(), default=0)
    return round(reachable / file.positives, 6)
