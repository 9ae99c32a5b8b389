"""Keeping an earlier decision that only the updated statistics moved (``keep_earlier``).

A ``--since`` run is a whole run: the global statistics retrieval depends on (TF-IDF
document frequencies, attribute ranking) are recomputed, and a source whose question
they changed (other unchanged candidates shown, or the same ones in another order) is
asked again, so that the links equal a full run's. With ``keep_earlier`` (a confidence
from 0 to 1), such a source keeps its earlier decision instead, with its votes, without
a question, where all of these hold:

- the earlier run's judge decided it (not the gate, retrieval or a person), with at
  least that confidence;
- the source is unchanged (content hash), and so is every option shown, then and now;
- the source and the options shown before look to the judge as they did: the earlier
  first question, rebuilt from this run's profiles, is the same text (a related
  entity added, removed or renamed changes it);
- the options it chose are among those this run would show, and it is a judged set
  where this run judges sets (and a one-winner vote where it does not);
- the judge (backend, model, adapter) and the vote's settings are the earlier run's.

(Where the attributes shown changed, the rebuilt question reads otherwise, and the source
is asked again.)

What stays approximate: an unchanged candidate the new statistics rank into the
options may be the better match, and the earlier vote did not see it; a decision
whose earlier confidence was low is the most likely to change (docs/incremental.md
measures both). A source whose question is the same as before is not kept here: its
answers come from the earlier run's answer cache, exactly.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace

from kgalign.config import AlignConfig
from kgalign.incremental.since import STATISTICS_REASONS, OldRun, earlier_settings_differ
from kgalign.incremental.state import entity_hash
from kgalign.judging.prompt import Question
from kgalign.judging.vote import is_gated
from kgalign.model import Candidates, Decision, EntityProfile, EntityTable

log = logging.getLogger(__name__)


def keeps_earlier(config: AlignConfig, judged: bool) -> bool:
    """Whether a ``--since`` run keeps what the earlier run decided: ``keep_earlier`` given
    and a judge asked (``judged``); without a judge there is no decision to keep."""
    return config.keep_earlier is not None and judged

#: The reasons a decision is kept (changes.jsonl ``decision_kept``): the question moved
#: for the statistics alone, to other candidates or to the same ones in another order.
KEPT_REASONS = STATISTICS_REASONS


def _hash(table: EntityTable, iri: str, cache: dict[str, str | None]) -> str | None:
    if iri not in cache:
        if table.hashes is not None:
            cache[iri] = table.hashes.get(iri)
        else:
            entity = table.entities.get(iri)
            cache[iri] = entity_hash(entity) if entity is not None else None
    return cache[iri]


def kept_decisions(
    old: OldRun,
    candidates: Sequence[Candidates],
    left: tuple[EntityTable, Mapping[str, EntityProfile]],
    right: tuple[EntityTable, Mapping[str, EntityProfile]],
    effective: AlignConfig,
    min_confidence: float,
    decided: Mapping[str, Decision],
    several: bool,
) -> dict[str, tuple[Decision, str]]:
    """The earlier decisions this run keeps (see the module text), per source, each
    marked ``kept`` and with its reason (:data:`KEPT_REASONS`). ``decided``: sources
    decided already (a reviewer's corrections), never kept; ``several``: this run judges
    sets (a one-winner vote of the earlier run is not kept there, nor a set elsewhere)."""
    differ = earlier_settings_differ(old, effective)
    if differ is not None:
        log.warning("%s: no earlier decision is kept: %s changed since", old.name, differ)
        return {}
    vote = effective.vote
    judged = old.judged_before()
    (left_table, left_profiles), (right_table, right_profiles) = left, right
    left_hashes: dict[str, str | None] = {}
    right_hashes: dict[str, str | None] = {}

    def unchanged(iris: Sequence[str]) -> bool:
        return all(old.right.get(iri) is not None and old.right.get(iri) == _hash(right_table, iri, right_hashes) for iri in iris)

    kept: dict[str, tuple[Decision, str]] = {}
    for cands in candidates:
        source = cands.source
        decision = judged.get(source)
        if decision is None or source in decided or not cands.items or is_gated(cands, vote):
            continue
        if decision.confidence < min_confidence or not decision.rounds or decision.prompt is None or bool(decision.option_votes) != several:
            continue
        if decision.rounds[0].first:
            continue  # a pairwise vote's questions are about one candidate each: asked again (answers cached)
        if old.left.get(source) is None or old.left.get(source) != _hash(left_table, source, left_hashes):
            continue
        # The options as the earlier question showed them: its first round is in rank order
        # (a decision kept before keeps the rounds of the run that asked them).
        shown, shown_before = [c.iri for c in cands.items[: vote.options]], decision.rounds[0].order
        chosen = {v.iri for v in decision.accepted} if decision.option_votes else {decision.target} if decision.kind == "match" else set()
        if not chosen <= set(shown) or not unchanged(shown) or not unchanged(shown_before):
            continue
        question = Question(source=left_profiles[source], options=tuple(right_profiles[iri] for iri in shown_before), datamark=vote.datamark)
        if question.text() != decision.prompt:
            continue  # the source or an earlier option looks otherwise (a related entity changed)
        if shown == shown_before:
            continue  # the same question: its answers are in the earlier run's cache
        reason = KEPT_REASONS[0] if set(shown) != set(shown_before) else KEPT_REASONS[1]
        kept[source] = (replace(decision, kept=True), reason)
    if kept:
        log.info("kept %d earlier decisions that only the updated statistics moved (confidence at least %g)", len(kept), min_confidence)
    return kept
