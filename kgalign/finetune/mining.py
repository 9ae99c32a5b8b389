"""AnyMatch's training-data recipe for the pairwise judge, on kgalign's own parts.

AnyMatch (Zhang et al., arXiv 2409.04073; code Jantory/anymatch) trains its small
matcher, per training dataset, on:

- **hard positives**: the matching pairs a cheap model gets wrong (an AutoML model on
  the raw columns there), topped up at random with other matching pairs to at most 400
  a dataset, and non-matching pairs at twice the positives;
- **attribute pairs**: one attribute's value against the other record's value of the
  same attribute, labelled the same where the values are equal or one contains the
  other (numbers: where they are equal), the pair's label otherwise, balanced per
  attribute name and capped.

Here the cheap model is kgalign's retrieval: a pair is a predicted match when its
candidate is the source's best and its score reaches the threshold that gives the
best F1 on the source's own training pairs (:func:`cheap_threshold`). No second model
is trained, and the questions stay the run's own (the record serialisation with its
field names, which the run's prompts show).
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace

from kgalign.finetune.data import Example
from kgalign.model import Candidates, EntityProfile

_NUMBER = re.compile(r"^[+-]?\d+(?:[.,]\d+)?$")


def cheap_threshold(scored: Sequence[tuple[float, bool]]) -> float:
    """The score threshold with the best F1 on ``(score, is_match)`` pairs (ties: the higher
    threshold); +inf when no pair is a match."""
    positives = sum(1 for _, same in scored if same)
    if not positives:
        return float("inf")
    best, best_f1, found, predicted = float("inf"), -1.0, 0, 0
    for score, same in sorted(scored, key=lambda item: -item[0]):
        predicted += 1
        found += same
        f1 = 2 * found / (predicted + positives)
        if f1 >= best_f1:
            best, best_f1 = score, f1
    return best


def retrieval_scores(candidates: Sequence[Candidates]) -> dict[tuple[str, str], float]:
    """(source, candidate) -> retrieval's score: what the cheap model of :func:`mine` reads."""
    return {(c.source, item.iri): item.score for c in candidates for item in c.items}


def mine(
    by_source: Mapping[str, list[Example]],
    scores: Mapping[tuple[str, str], float],
    positives: int,
    negatives: int,
    seed: int,
    name: str = "",
) -> tuple[dict[str, list[Example]], dict[str, int]]:
    """The sources whose questions are trained on, AnyMatch's way: first every source
    with a match the cheap model gets wrong (a pair it does not score best among the
    source's candidates, or below :func:`cheap_threshold`; ``scores`` from
    :func:`retrieval_scores`), then the others with a match, in a seeded order,
    until ``positives`` matching pairs are kept (0: every one); then sources with no match
    until the non-matching pairs reach ``negatives`` times the matching ones.

    Questions are kept whole per source (both orders of a pair stay together)."""
    top: dict[str, tuple[float, str]] = {}
    for (source, iri), score in scores.items():
        if source not in top or score > top[source][0]:
            top[source] = (score, iri)
    pairs = [(scores.get((e.source, e.option_iri), float("-inf")), e.target is not None) for examples in by_source.values() for e in examples]
    threshold = cheap_threshold(pairs)

    def missed(example: Example) -> bool:
        score = scores.get((example.source, example.option_iri), float("-inf"))
        best = top.get(example.source)
        return example.target is not None and not (best is not None and best[1] == example.option_iri and score >= threshold)

    hard, easy, without = [], [], []
    for source in sorted(by_source):
        examples = by_source[source]
        if any(missed(e) for e in examples):
            hard.append(source)
        elif any(e.target is not None for e in examples):
            easy.append(source)
        else:
            without.append(source)
    rng = random.Random(f"{seed}:{name}:mine")
    for group in (hard, easy, without):
        rng.shuffle(group)
    kept: dict[str, list[Example]] = {}
    matched = unmatched = 0

    def pairs_of(source: str) -> tuple[int, int]:
        yes = {e.option_iri for e in by_source[source] if e.target is not None}
        no = {e.option_iri for e in by_source[source] if e.target is None}
        return len(yes), len(no)

    for source in hard + easy:
        if positives and matched >= positives:
            break
        kept[source] = by_source[source]
        yes, no = pairs_of(source)
        matched, unmatched = matched + yes, unmatched + no
    for source in without:
        if negatives and unmatched >= negatives * matched:
            break
        kept[source] = by_source[source]
        unmatched += pairs_of(source)[1]
    counts = {
        "mined_hard_sources": sum(1 for s in hard if s in kept),
        "mined_sources": len(kept),
        "mined_pairs_match": matched,
        "mined_pairs_no_match": unmatched,
    }
    return kept, counts


def _number(text: str) -> float | None:
    return float(text.replace(",", ".")) if _NUMBER.match(text.strip()) else None


def same_value(left: str, right: str, records_match: bool) -> bool:
    """AnyMatch's label of an attribute pair: numbers equal or not; texts equal, or one
    containing the other (case aside); otherwise the records' own label."""
    a, b = _number(left), _number(right)
    if a is not None and b is not None:
        return a == b
    x, y = left.strip().casefold(), right.strip().casefold()
    if x and y and (x == y or x in y or y in x):
        return True
    return records_match


def attribute_examples(by_source: Mapping[str, list[Example]], per_attribute: int, seed: int, name: str = "") -> tuple[list[Example], dict[str, int]]:
    """Attribute pairs from the record pairs of ``by_source``: for each field both records
    show under the same name, a pairwise question on that one value each, labelled by
    :func:`same_value`; per field name as many "same" as "not the same" (the smaller
    count), at most ``per_attribute`` in all, seeded."""
    from kgalign.judging.pairwise import CANDIDATE_FIRST, SOURCE_FIRST, pair_question

    by_name: dict[str, dict[bool, list[Example]]] = {}
    seen: set[tuple[str, str, str]] = set()
    for examples in by_source.values():
        for example in examples:
            question = example.question
            source, candidate = question.source, question.options[0]
            left, right = dict(_first_values(source)), dict(_first_values(candidate))
            for key in sorted(left.keys() & right.keys()):
                if (key, left[key], right[key]) in seen:
                    continue
                seen.add((key, left[key], right[key]))
                same = same_value(left[key], right[key], example.target is not None)
                first = SOURCE_FIRST if not question.candidate_first else CANDIDATE_FIRST
                asked = pair_question(_one(source, key, left[key]), _one(candidate, key, right[key]), first, None, question.datamark)
                by_name.setdefault(key, {True: [], False: []})[same].append(
                    replace(example, question=asked, answer="A" if same else "B", target=candidate.iri if same else None)
                )
    out: list[Example] = []
    rng = random.Random(f"{seed}:{name}:attributes")
    for key in sorted(by_name):
        groups = by_name[key]
        size = min(len(groups[True]), len(groups[False]), per_attribute // 2)
        for label in (True, False):
            rng.shuffle(groups[label])
            out.extend(groups[label][:size])
    rng.shuffle(out)
    return out, {"attribute_pairs": len(out), "attribute_names": sum(1 for g in by_name.values() if min(len(g[True]), len(g[False])))}


def _first_values(profile: EntityProfile) -> list[tuple[str, str]]:
    values: dict[str, str] = {}
    if profile.label:
        values["name"] = profile.label
    for key, value in profile.attributes:
        values.setdefault(key, value)
    return [(key, value) for key, value in values.items() if value.strip()]


def _one(profile: EntityProfile, key: str, value: str) -> EntityProfile:
    return EntityProfile(iri=f"{profile.iri}#{key}", label="", attributes=[(key, value)])
