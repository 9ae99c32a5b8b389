"""The decision log (votes.jsonl): one JSON object per source entity, and its summaries."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from kgalign.errors import InputError
from kgalign.io.atomic import atomic_open
from kgalign.judging.prompt import option_letter
from kgalign.model import Candidate, Candidates, Decision, EntityProfile, OptionVote, Round

SCHEMA_VERSION = 1


def decision_record(
    decision: Decision,
    candidates: Candidates,
    source: EntityProfile,
    right_profiles: Mapping[str, EntityProfile],
    conflict_with: str | None = None,
    linked: str | None = None,
) -> dict[str, Any]:
    """One line of votes.jsonl. ``target`` is what the decision chose; ``linked`` is the
    target the source is finally linked to after 1:1 resolution (None: no link)."""
    return {
        "schema": SCHEMA_VERSION,
        "source": decision.source,
        "source_label": source.label,
        "source_attributes": [list(a) for a in source.attributes],
        "candidates": [
            {
                "iri": c.iri,
                "label": _label(right_profiles.get(c.iri)),
                "score": c.score,
                "rank": c.rank,
            }
            for c in candidates.items
        ],
        "margin": candidates.margin,
        "mutual": candidates.mutual,
        "contested_by": candidates.contested_by,
        "rounds": [asdict(r) for r in decision.rounds],
        "decision": decision.kind,
        "target": decision.target,
        "confidence": decision.confidence,
        "gated": decision.gated,
        "early_stopped": decision.early_stopped,
        "human": decision.human,
        "kept": decision.kept,
        "conflict_with": conflict_with,
        "linked": linked,
        "prompt": decision.prompt,
        "tokens": {"prompt": decision.prompt_tokens, "answer": decision.answer_tokens},
        "latency_s": decision.latency_s,
        "explanation": decision.explanation,
        "option_votes": [asdict(vote) for vote in decision.option_votes],
    }


def _label(profile: EntityProfile | None) -> str:
    if profile is None:
        return ""
    return profile.label or "; ".join(value for _, value in profile.attributes[:3])


def write_votes(records: Iterable[dict[str, Any]], path: Path) -> None:
    with atomic_open(path) as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")


def read_votes(path: str | Path) -> Iterator[dict[str, Any]]:
    path = Path(path)
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    with handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
            if not isinstance(record, dict) or "source" not in record or "decision" not in record:
                raise InputError(f"{path}:{number}: not a kgalign decision record")
            yield record


def record_candidates(record: Mapping[str, Any]) -> Candidates:
    """The retrieval candidates one decision record logged, as the run ranked them.

    The inverse of the ``candidates``, ``margin``, ``mutual`` and ``contested_by`` fields
    :func:`decision_record` writes; a field missing from a hand-made record takes a
    neutral value (score 0, rank by position, margin 0, not mutual).
    """
    items = [
        Candidate(iri=c["iri"], score=float(c.get("score", 0.0)), rank=int(c.get("rank", i + 1)))
        for i, c in enumerate(record.get("candidates", []))
    ]
    return Candidates(
        source=record["source"],
        items=items,
        margin=float(record.get("margin", 0.0)),
        mutual=bool(record.get("mutual")),
        contested_by=record.get("contested_by"),
    )


def record_decision(record: Mapping[str, Any]) -> Decision:
    """The decision one record of votes.jsonl logged, with its rounds and option votes.

    The inverse of the decision fields :func:`decision_record` writes (a field missing
    from an older record takes its default); a record it cannot read raises
    :class:`~kgalign.errors.InputError` naming the source."""
    try:
        kind = record["decision"]
        if kind not in ("match", "none", "uncertain"):
            raise ValueError(f"unknown decision {kind!r}")
        tokens = record.get("tokens") or {}
        return Decision(
            source=str(record["source"]),
            kind=kind,
            target=record.get("target"),
            confidence=float(record.get("confidence", 0.0)),
            rounds=[Round(**{**r, "order": list(r["order"])}) for r in record.get("rounds") or ()],
            gated=bool(record.get("gated")),
            early_stopped=bool(record.get("early_stopped")),
            human=bool(record.get("human")),
            prompt=record.get("prompt"),
            prompt_tokens=int(tokens.get("prompt", 0)),
            answer_tokens=int(tokens.get("answer", 0)),
            latency_s=float(record.get("latency_s", 0.0)),
            explanation=record.get("explanation"),
            option_votes=[OptionVote(**vote) for vote in record.get("option_votes") or ()],
            kept=bool(record.get("kept")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"decision of {record.get('source')!r}: not a kgalign decision record ({exc})") from None


def read_candidates(path: str | Path) -> list[Candidates]:
    """Every source's retrieval candidates from a run's votes.jsonl, in the log's order."""
    return [record_candidates(record) for record in read_votes(path)]


def summarise(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Decisions by kind, agreement between rounds, and which option position won."""
    kinds = Counter(r["decision"] for r in records)
    judged = [r for r in records if r.get("rounds")]
    agreement = []
    position_wins: Counter[int] = Counter()
    invalid = 0
    none_votes = 0
    for record in judged:
        # A judged set asks several steps a round; agreement is on the first answer of each.
        targets = [round_["target"] for round_ in record["rounds"] if not round_.get("step")]
        valid = [t for t in targets if t is not None]
        invalid += len(targets) - len(valid)
        if valid:
            agreement.append(Counter(valid).most_common(1)[0][1] / len(targets))
        for round_ in (r for r in record["rounds"] if not r.get("step")):
            order = round_["order"]
            target = round_["target"]
            if target == "none":
                none_votes += 1
            elif target is not None and target in order:
                position_wins[order.index(target)] += 1
    total_rounds = sum(sum(1 for x in r["rounds"] if not x.get("step")) for r in judged)
    return {
        "entities": len(records),
        "decisions": dict(sorted(kinds.items())),
        "gated": sum(1 for r in records if r.get("gated")),
        "judged": len(judged),
        "human": sum(1 for r in records if r.get("human")),
        "early_stopped": sum(1 for r in records if r.get("early_stopped")),
        "rounds": total_rounds,
        "invalid_votes": invalid,
        "none_votes": none_votes,
        "mean_round_agreement": round(sum(agreement) / len(agreement), 4) if agreement else None,
        "position_wins": {option_letter(p): n for p, n in sorted(position_wins.items())},
        "conflicts": sum(1 for r in records if r.get("conflict_with")),
        "prompt_tokens": sum(r.get("tokens", {}).get("prompt", 0) for r in records),
        "questions": sum(len(r["rounds"]) for r in judged),
        "judged_sets": sum(1 for r in judged if r.get("option_votes")),
    }
