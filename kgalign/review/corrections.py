"""Human corrections of the judge: read, check, and turn into decisions or labels.

A corrections file is JSON Lines, one object per corrected source entity::

    {"version": 1, "source": "http://left/e1", "action": "accept", "target": "http://right/e9"}
    {"version": 1, "source": "http://left/e2", "action": "reject", "target": "http://right/e4"}
    {"version": 1, "source": "http://left/e3", "action": "pick", "target": "http://right/e7"}

- ``version`` must be ``1`` (:data:`CORRECTIONS_VERSION`);
- ``source`` is the IRI of an entity of the left graph, at most once per file;
- ``action`` is one of:

  - ``accept``: the reviewer agrees with the decision shown; ``target`` is the
    accepted right IRI (a match), or null (the reviewer agrees there is no match);
  - ``reject``: the source has no match; ``target`` optionally names the rejected IRI;
  - ``pick``: the source matches ``target`` (required), which may be any entity of the
    right graph, not only one of the retrieved candidates;

- any other key (``note``, ``judge_decision``, ``judge_target``, ``reviewer``, ``time``)
  is kept for people and ignored by kgalign, except ``note``, which becomes the
  decision's explanation.

Blank lines and lines starting with ``#`` are skipped. ``kgalign run --corrections FILE``
turns every correction into a human decision (``human: true``, confidence 1.0, kind
``match`` or ``none``) that overrides the judge: a corrected source is never asked.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from kgalign.errors import InputError
from kgalign.io.atomic import atomic_open
from kgalign.io.reading import json_object
from kgalign.model import Candidate, Candidates, Decision, EntityTable

log = logging.getLogger(__name__)

CORRECTIONS_VERSION = 1
ACTIONS = ("accept", "reject", "pick")
MAX_NOTE_CHARS = 200

Action = Literal["accept", "reject", "pick"]


@dataclass(frozen=True)
class Correction:
    """One reviewer's verdict on one source entity."""

    source: str
    action: Action
    target: str | None = None
    note: str | None = None
    line: int = 0

    @property
    def match(self) -> str | None:
        """The right IRI the source is linked to after the correction, or None for no link."""
        if self.action == "reject":
            return None
        return self.target

    def decision(self) -> Decision:
        """The human decision that replaces the judge's for this source."""
        target = self.match
        return Decision(
            source=self.source,
            kind="match" if target is not None else "none",
            target=target,
            confidence=1.0,
            human=True,
            explanation=self.note,
        )

    def record(self) -> dict[str, Any]:
        """The correction as one line of a corrections file."""
        data: dict[str, Any] = {"version": CORRECTIONS_VERSION, "source": self.source, "action": self.action, "target": self.target}
        if self.note:
            data["note"] = self.note
        return data


def read_corrections(path: str | Path) -> list[Correction]:
    """Parse and validate a corrections file; errors are one line naming ``file:line``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise InputError(f"{path}: cannot read the corrections file ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: the corrections file is not UTF-8 text") from None
    corrections: list[Correction] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        correction = _parse_line(stripped, f"{path}:{number}", number)
        if correction.source in seen:
            raise InputError(
                f"{path}:{number}: second correction for {correction.source} (first on line {seen[correction.source]})"
            )
        seen[correction.source] = number
        corrections.append(correction)
    log.info("%s: %d corrections", path, len(corrections))
    return corrections


def _parse_line(text: str, where: str, number: int) -> Correction:
    data = json_object(text, where)
    version = data.get("version")
    if version is None:
        raise InputError(f"{where}: missing \"version\" (expected {CORRECTIONS_VERSION})")
    if version != CORRECTIONS_VERSION or isinstance(version, bool):
        raise InputError(f"{where}: unsupported corrections version {version!r} (expected {CORRECTIONS_VERSION})")
    source = data.get("source")
    if not isinstance(source, str) or not source.strip():
        raise InputError(f"{where}: \"source\" must be a non-empty IRI string")
    action = data.get("action")
    if action not in ACTIONS:
        raise InputError(f"{where}: \"action\" must be one of {', '.join(ACTIONS)}, found {action!r}")
    target = data.get("target")
    if target is not None and (not isinstance(target, str) or not target.strip()):
        raise InputError(f"{where}: \"target\" must be an IRI string or null")
    if action == "pick" and target is None:
        raise InputError(f"{where}: action \"pick\" needs a \"target\" IRI")
    note = data.get("note")
    if note is not None and not isinstance(note, str):
        raise InputError(f"{where}: \"note\" must be a string")
    if note is not None:
        note = " ".join(note.split())[:MAX_NOTE_CHARS] or None
    return Correction(source=source.strip(), action=action, target=target.strip() if target else None, note=note, line=number)


def check_corrections(
    corrections: Iterable[Correction],
    path: str | Path,
    left_iris: Collection[str],
    right_iris: Collection[str],
) -> None:
    """Raise an :class:`InputError` naming ``file:line`` if a correction names an IRI the graphs lack."""
    for c in corrections:
        if c.source not in left_iris:
            raise InputError(f"{path}:{c.line}: source {c.source} is not an entity of the left graph")
        if c.match is not None and c.match not in right_iris:
            raise InputError(f"{path}:{c.line}: target {c.match} of action \"{c.action}\" is not an entity of the right graph")


def human_decisions(corrections: Iterable[Correction]) -> dict[str, Decision]:
    """Source IRI -> the human decision that replaces the judge's."""
    return {c.source: c.decision() for c in corrections}


def corrections_to_labels(path: str | Path) -> list[tuple[str, str | None]]:
    """Labelled pairs for fine-tuning: (source, the right IRI it matches, or None for no match)."""
    return [(c.source, c.match) for c in read_corrections(path)]


def write_corrections(corrections: Iterable[Correction], path: str | Path) -> None:
    """Write corrections as a JSON Lines file that :func:`read_corrections` reads back."""
    with atomic_open(path) as handle:
        for c in corrections:
            handle.write(json.dumps(c.record(), ensure_ascii=False) + "\n")


def read_human_decisions(path: str | None, left: EntityTable, right: EntityTable) -> dict[str, Decision]:
    """The human decisions of a corrections file, checked against the loaded graphs."""
    if not path:
        return {}
    corrections = read_corrections(path)
    check_corrections(corrections, path, left.entities, right.entities)
    log.info("%s: %d human decisions override the judge", path, len(corrections))
    return human_decisions(corrections)


def with_human_targets(candidates: list[Candidates], decisions: list[Decision]) -> list[Candidates]:
    """The candidates that resolution sees: a human match's target is its source's only one, at the top score.

    So a person's pick is linked even when retrieval did not find it, and no resolver
    prefers another candidate of that source. The list written to the log and scored
    by the ranking metrics stays the retrieved one.
    """
    human = {d.source: d.target for d in decisions if d.human and d.target is not None}
    if not human:
        return candidates
    resolved = []
    for cands in candidates:
        target = human.get(cands.source)
        if target is None:
            resolved.append(cands)
            continue
        score = max([1.0, *(item.score for item in cands.items)])
        resolved.append(Candidates(source=cands.source, items=[Candidate(iri=target, score=score, rank=1)], margin=score, mutual=cands.mutual))
    return resolved
