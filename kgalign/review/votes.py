"""The decision log (votes.jsonl): one JSON object per source entity, and its summaries."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any

from kgalign.errors import InputError
from kgalign.io.atomic import atomic_open
from kgalign.judging.pairwise import order_bias
from kgalign.judging.prompt import option_letter
from kgalign.model import Candidate, Candidates, Decision, EntityProfile, OptionVote, Round

SCHEMA_VERSION = 1
GZIP_MAGIC = b"\x1f\x8b"


#: Fields of a round written only where set (a pairwise round's), so that the log of a
#: multiple-choice vote reads as before.
PAIRWISE_FIELDS = ("first", "p_yes")


def round_record(round_: Round) -> dict[str, Any]:
    """One round as votes.jsonl keeps it."""
    record = asdict(round_)
    for name in PAIRWISE_FIELDS:
        if record[name] is None:
            del record[name]
    return record


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
        "below_cut": candidates.below_cut,
        "rounds": [round_record(r) for r in decision.rounds],
        "decision": decision.kind,
        "target": decision.target,
        "confidence": decision.confidence,
        "gated": decision.gated,
        "early_stopped": decision.early_stopped,
        "human": decision.human,
        "kept": decision.kept,
        **({"over_budget": True} if decision.over_budget else {}),
        **({"to_retrieval": True} if decision.to_retrieval else {}),
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
    """Each decision record of a votes.jsonl, in order; one-line errors naming the file and line."""
    for _, record in numbered_votes(path):
        yield record


def numbered_votes(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Each decision record of a votes.jsonl with its line number (from 1)."""
    path = Path(path)
    try:
        handle = path.open("rb")
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not a votes.jsonl") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    with handle:
        for number, raw in enumerate(_lines(path, handle), start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                why = "gzip-compressed: decompress it first" if number == 1 and raw.startswith(GZIP_MAGIC) else f"byte 0x{raw[exc.start]:02x}"
                raise InputError(f"{path}:{number}: not UTF-8 text ({why})") from None
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
            if not isinstance(record, dict) or "source" not in record or "decision" not in record:
                raise InputError(f"{path}:{number}: not a kgalign decision record")
            yield number, record


def _lines(path: Path, handle: IO[bytes]) -> Iterator[bytes]:
    """The lines of a file opened in binary mode; an error while reading is one line."""
    try:
        yield from handle
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None


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
        below_cut=bool(record.get("below_cut")),
    )


def record_decision(record: Mapping[str, Any]) -> Decision:
    """The decision one record of votes.jsonl logged, with its rounds and option votes.

    The inverse of the decision fields :func:`decision_record` writes (a field missing
    from an older record takes its default); the IRIs, answers and numbers are checked
    for their types, and a record that fails raises a :class:`ValueError` saying which
    field (:func:`numbered_votes` gives the line to name)."""
    kind = record.get("decision")
    if kind not in ("match", "none", "uncertain"):
        raise ValueError(f"unknown decision {kind!r}")
    tokens = record.get("tokens") or {}
    if not isinstance(tokens, dict):
        raise ValueError("tokens: not an object")
    try:
        return Decision(
            source=_text(record.get("source"), "source"),
            kind=kind,
            target=_text(record.get("target"), "target", optional=True),
            confidence=float(record.get("confidence", 0.0)),
            rounds=[_round(r) for r in _list(record.get("rounds"), "rounds")],
            gated=bool(record.get("gated")),
            early_stopped=bool(record.get("early_stopped")),
            human=bool(record.get("human")),
            prompt=_text(record.get("prompt"), "prompt", optional=True),
            prompt_tokens=int(tokens.get("prompt", 0)),
            answer_tokens=int(tokens.get("answer", 0)),
            latency_s=float(record.get("latency_s", 0.0)),
            explanation=_text(record.get("explanation"), "explanation", optional=True),
            option_votes=[_option_vote(v) for v in _list(record.get("option_votes"), "option_votes")],
            kept=bool(record.get("kept")),
            over_budget=bool(record.get("over_budget")),
            to_retrieval=bool(record.get("to_retrieval")),
        )
    except TypeError as exc:  # a number field holding a list or an object
        raise ValueError(str(exc)) from None


def _text(value: Any, name: str, optional: bool = False) -> Any:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{name}: not a string")
    return value


def _list(value: Any, name: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise ValueError(f"{name}: not a list of objects")
    return value


def _round(data: dict[str, Any]) -> Round:
    order = data.get("order")
    if not isinstance(order, list) or not all(isinstance(iri, str) for iri in order):
        raise ValueError("rounds: an order that is not a list of IRIs")
    unknown = set(data) - set(Round.__dataclass_fields__)
    if unknown:
        raise ValueError(f"rounds: unknown field {sorted(unknown)[0]!r}")
    return Round(
        order=list(order),
        raw=_text(data.get("raw", ""), "rounds: raw"),
        choice=_text(data.get("choice"), "rounds: choice", optional=True),
        target=_text(data.get("target"), "rounds: target", optional=True),
        logprob=None if data.get("logprob") is None else float(data["logprob"]),
        cached=bool(data.get("cached")),
        error=_text(data.get("error"), "rounds: error", optional=True),
        retries=int(data.get("retries", 0)),
        step=int(data.get("step", 0)),
        first=_text(data.get("first"), "rounds: first", optional=True),
        p_yes=None if data.get("p_yes") is None else float(data["p_yes"]),
    )


def _option_vote(data: dict[str, Any]) -> OptionVote:
    return OptionVote(
        iri=_text(data.get("iri"), "option_votes: iri"),
        picked=int(data.get("picked", 0)),
        rounds=int(data.get("rounds", 0)),
        accepted=bool(data.get("accepted")),
        confidence=float(data.get("confidence", 0.0)),
    )


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
    pair_rounds = {r["source"]: [_round(x) for x in r["rounds"] if x.get("first")] for r in judged if any(x.get("first") for x in r["rounds"])}
    for record in judged:
        if any(x.get("first") for x in record["rounds"]):
            continue  # a pairwise vote: its order bias below, not positions
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
    bias = order_bias(pair_rounds)
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
        "pairwise_rounds": sum(len(rounds) for rounds in pair_rounds.values()),
        "order_bias": None if bias is None else round(bias, 4),
        "position_wins": {option_letter(p): n for p, n in sorted(position_wins.items())},
        "conflicts": sum(1 for r in records if r.get("conflict_with")),
        "prompt_tokens": sum(r.get("tokens", {}).get("prompt", 0) for r in records),
        "questions": sum(len(r["rounds"]) for r in judged),
        "judged_sets": sum(1 for r in judged if r.get("option_votes")),
    }
