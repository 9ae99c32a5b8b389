"""Plain typed data passed between the stages of the pipeline.

Every stage takes and returns these objects, so a stage can be rerun, tested or
replaced on its own.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from typing import Literal as TypingLiteral

if TYPE_CHECKING:
    from kgalign.io.kinds import EntityKinds

Side = TypingLiteral["left", "right"]
DecisionKind = TypingLiteral["match", "none", "uncertain"]


@dataclass(frozen=True, slots=True)
class Value:
    """One literal value of an attribute, with its language tag or datatype."""

    text: str
    lang: str | None = None
    datatype: str | None = None


_LINK_MASK = (1 << 64) - 1


def link_digest(predicate: str, iri: str) -> int:
    """A 64-bit hash of one (predicate, IRI) link: an entity's links are summed modulo
    2**64 (order-free, :meth:`Entity.links_digest`) into its content hash
    (:func:`kgalign.incremental.state.entity_hash`)."""
    return int.from_bytes(hashlib.blake2b(f"{predicate}\x00{iri}".encode(), digest_size=8).digest(), "little")


@dataclass(slots=True)
class Entity:
    """One entity of a graph, with its description folded in.

    ``attributes`` maps an attribute *path* to its values. A path is one predicate
    IRI, or several joined by ``" / "`` when the literal sits on a label-less node
    folded into this entity (a person's address, a blank node).
    ``relations`` maps a predicate IRI to the IRIs of the *entities* it points to.
    ``outside`` stands for the IRIs its own triples point to that are not entities (nor
    folded in): an order-free sum of :func:`link_digest` over those (predicate, IRI)
    pairs (:meth:`link_outside`). Nothing reads it but the content hash, which thus does
    not change when such an IRI becomes an entity of the graph, or stops being one.
    """

    iri: str
    labels: list[Value] = field(default_factory=list)
    attributes: dict[str, list[Value]] = field(default_factory=dict)
    relations: dict[str, list[str]] = field(default_factory=dict)
    types: list[str] = field(default_factory=list)
    outside: int = 0

    def link_outside(self, predicate: str, iri: str) -> None:
        """Count one link of its own to an IRI that is no entity (see ``outside``)."""
        self.outside = (self.outside + link_digest(predicate, iri)) & _LINK_MASK

    def links_digest(self) -> int:
        """All its own links, to entities (``relations``) or not (``outside``), as one
        order-free 64-bit number: the same whichever of the IRIs are entities."""
        total = self.outside
        for predicate, targets in self.relations.items():
            for target in targets:
                total = (total + link_digest(predicate, target)) & _LINK_MASK
        return total

    @property
    def label(self) -> str:
        """The best display label: an English or untagged label first, else the IRI's local name."""
        return best_label(self.iri, [(value.text, value.lang) for value in self.labels])


@dataclass
class EntityTable:
    """The entities of one graph that take part in the alignment."""

    name: str
    #: A dict, or an :class:`kgalign.io.entity_file.EntityFile` in a lean run's driver.
    entities: Mapping[str, Entity]
    triple_count: int = 0
    #: Each entity's content hash, in table order, where known: once the contents were
    #: let go (a lean run's driver, after retrieval:
    #: :func:`kgalign.incremental.state.release_contents`), or from the load where the
    #: entities went to a file (:mod:`kgalign.io.entity_file`); else None.
    hashes: dict[str, str] | None = None
    #: Which classes' instances are entities and which were folded, and why
    #: (:mod:`kgalign.io.kinds`); None where ``--class`` chose them, or the graph has no literal.
    kinds: EntityKinds | None = None

    def __len__(self) -> int:
        return len(self.entities)

    def iris(self) -> list[str]:
        return list(self.entities)


@dataclass(frozen=True)
class PredicateStats:
    """How identifying a predicate (or attribute path) is within one graph."""

    predicate: str
    kind: TypingLiteral["attribute", "relation"]
    coverage: float
    distinctiveness: float
    entities_with: int
    distinct_values: int
    #: Share of its values that can agree with the other graph's
    #: (:mod:`kgalign.selection.alignability`); None: not measured (one graph alone).
    alignability: float | None = None
    #: Its values are long free text (a description, a note): ranked after the short
    #: values that name and identify (titles, names, dates, codes).
    long_text: bool = False

    @property
    def importance(self) -> float:
        # Both must be high: a predicate that few entities fill, or whose values
        # repeat across entities, identifies little; one whose values never agree with
        # the other graph's (an identifier of its own) tells nothing across them.
        within = self.coverage * self.distinctiveness
        if self.alignability is None:
            return within
        from kgalign.selection.alignability import alignment_factor

        return within * alignment_factor(self.alignability)


@dataclass(slots=True)
class EntityProfile:
    """What is shown of an entity to the embedder and to the judge."""

    iri: str
    label: str
    attributes: list[tuple[str, str]] = field(default_factory=list)
    neighbours: list[tuple[str, str]] = field(default_factory=list)

    def text(self, with_neighbours: bool = True) -> str:
        """Text to embed: label then values, most identifying first, then neighbour names."""
        parts = [self.label] if self.label else []
        parts += [value for _, value in self.attributes if value != self.label]
        if with_neighbours:
            parts += [name for _, name in self.neighbours]
        return " | ".join(parts)


@dataclass(slots=True)
class Candidate:
    iri: str
    score: float
    rank: int


@dataclass(slots=True)
class Candidates:
    """Top-k candidates of one source entity, best first."""

    source: str
    items: list[Candidate]
    margin: float
    mutual: bool
    # Set by the cascade: the lexical best of this source was taken by a clear match
    # (``contested_by``), and no open candidate came close to it. Without a judge such
    # a source is not linked: it most likely has no counterpart of its own.
    contested_by: str | None = None
    #: Its link scored below the run's no-counterpart cut and was not made
    #: (:mod:`kgalign.resolution.cut`; set after the resolution, for the log).
    below_cut: bool = False

    @property
    def top(self) -> Candidate | None:
        return self.items[0] if self.items else None


@dataclass(slots=True)
class Round:
    """One question of the multiple-choice vote: the order shown and the answer.

    When sets are judged (a source may have several counterparts), one round is several
    questions: ``step`` 0 shows every option, and each later step asks again without the
    options picked at the steps before, until "none of these"."""

    order: list[str]
    raw: str
    choice: str | None
    target: str | None = None
    logprob: float | None = None
    cached: bool = False
    error: str | None = None
    retries: int = 0
    step: int = 0
    #: A pairwise round (:mod:`kgalign.judging.pairwise`): which record was shown first
    #: ("source" or "candidate"), and the judge's probability that the two are the same.
    first: str | None = None
    p_yes: float | None = None


@dataclass(frozen=True, slots=True)
class OptionVote:
    """How one option fared in a judged set (see :class:`Round`): the rounds in which the
    judge picked it before "none of these", out of the rounds asked; accepted with a
    strict majority of the configured rounds."""

    iri: str
    picked: int
    rounds: int
    accepted: bool
    confidence: float


@dataclass(slots=True)
class Decision:
    source: str
    kind: DecisionKind
    target: str | None
    confidence: float
    rounds: list[Round] = field(default_factory=list)
    gated: bool = False
    early_stopped: bool = False
    human: bool = False
    prompt: str | None = None
    prompt_tokens: int = 0
    answer_tokens: int = 0
    latency_s: float = 0.0
    explanation: str | None = None
    #: Judged sets only: every option shown, with its votes, accepted ones first.
    option_votes: list[OptionVote] = field(default_factory=list)
    #: Taken over from an earlier run (``--since`` with ``keep_earlier``) with its votes,
    #: not asked in this run (:mod:`kgalign.incremental.keep`).
    kept: bool = False
    #: Left to retrieval's scores because the judge's time budget ran out before its turn
    #: (``--judge-budget``; the most uncertain sources are asked first).
    over_budget: bool = False
    #: Left to retrieval's scores in a closed world (``vote.closed_world``): the judge
    #: rejected every candidate, or its rounds disagreed, but the source has a counterpart.
    #: Its rounds are kept; the decision is retrieval's.
    to_retrieval: bool = False

    @property
    def shown(self) -> set[str]:
        """Every option its rounds showed the judge (any order, any step)."""
        return {iri for r in self.rounds for iri in r.order}

    @property
    def by_judge(self) -> bool:
        """Whether the judge's answers decided it (not the gate, retrieval or a person; a
        gated match whose audit rounds accepted nothing stays the gate's; nor one left to
        retrieval in a closed world)."""
        return bool(self.rounds) and not self.gated and not self.human and not self.to_retrieval

    @property
    def judged_set(self) -> bool:
        """Whether a judged set decided it: its accepted options are its links."""
        return bool(self.option_votes) and self.by_judge

    @property
    def accepted(self) -> list[OptionVote]:
        """The options a judged set accepted (strongest first); empty for a one-winner vote."""
        return [vote for vote in self.option_votes if vote.accepted]


@dataclass(frozen=True, slots=True)
class Link:
    left: str
    right: str
    confidence: float


def best_label(iri: str, labels: list[tuple[str, str | None]]) -> str:
    """:attr:`Entity.label` of ``iri`` from its labels' ``(text, language)`` pairs: an
    English or untagged one first, else any other, else the IRI's local name."""
    for text, lang in labels:
        if lang in (None, "", "en") and text.strip():
            return text
    for text, _ in labels:
        if text.strip():
            return text
    return local_name(iri)


def local_name(iri: str) -> str:
    """The part of an IRI after its last '#', '/' or ':'."""
    for sep in ("#", "/", ":"):
        if sep in iri:
            tail = iri.rsplit(sep, 1)[1]
            if tail:
                return tail
    return iri
