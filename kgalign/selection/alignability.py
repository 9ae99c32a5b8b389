"""Whether a predicate's values can agree with the other graph's: its *alignability*.

Coverage and distinctiveness (LLM-Align's heuristic) are measured within one graph: a
catalogue number or a UUID minted by one institution scores as high as a title there,
and never agrees with anything on the other side. Alignability asks the other graph:

- a literal value is *anchored* when most of its informative words (those that fewer
  than half the predicate's values share: not "http", "op.", a unit) occur among the
  other graph's words, or, with no informative word, when the whole value occurs there;
- an IRI value (:data:`kgalign.io.entities.IRI_VALUE`) is anchored when the other graph
  names the same IRI (two graphs that point to one IRI agree on it).

A predicate's alignability is the share of its sampled values that are anchored
(:func:`alignabilities`). Its importance is scaled by it (:func:`alignment_factor`): a
predicate whose values mostly anchor keeps its importance, one whose values never
do (opaque identifiers, numbers of one graph's own) drops out of the selection.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from kgalign.io.entities import IRI_VALUE
from kgalign.model import Entity, EntityTable, Value

#: Values sampled per predicate (the first ones met, in table order).
SAMPLE_VALUES = 2000
#: A word that at least this share of a predicate's sampled values hold is not informative.
COMMON_WORD_SHARE = 0.5
#: A value is anchored when at least this share of its informative words occur in the other graph.
ANCHORED_WORDS = 0.5
#: Alignability from which a predicate keeps its full importance; below, scaled down linearly.
FULL_ALIGNABILITY = 0.5
#: Below this alignability a predicate is not shown at all (its values never agree).
MIN_ALIGNABILITY = 0.05

_WORD = re.compile(r"\w\w+", re.UNICODE)


def words(text: str) -> list[str]:
    """The words of a value, lower-cased (two characters or more)."""
    return _WORD.findall(text.lower())


def normalised(text: str) -> str:
    return " ".join(text.split()).lower()


@dataclass
class Vocabulary:
    """What one graph says, as the other graph's values are checked against it."""

    words: set[str] = field(default_factory=set)
    values: set[str] = field(default_factory=set)
    iris: set[str] = field(default_factory=set)

    def add_value(self, value: Value) -> None:
        if value.datatype == IRI_VALUE:
            self.iris.add(value.text)
            return
        self.values.add(normalised(value.text))
        self.words.update(words(value.text))


def vocabulary(table: EntityTable) -> Vocabulary:
    """Every word, value and IRI of ``table``'s entities: labels, attributes (IRI values
    included), entity IRIs and the IRIs their relations point to."""
    found = Vocabulary()
    for iri, entity in table.entities.items():
        found.iris.add(iri)
        for value in entity.labels:
            found.add_value(value)
        for values in entity.attributes.values():
            for value in values:
                found.add_value(value)
        for targets in entity.relations.values():
            found.iris.update(targets)
    return found


def alignabilities(samples: Mapping[str, list[Value]], other: Vocabulary) -> dict[str, float]:
    """Each predicate's alignability against ``other`` (see the module text), from the
    sampled values of each predicate."""
    return {path: _alignability(values, other) for path, values in samples.items()}


def _alignability(values: list[Value], other: Vocabulary) -> float:
    if not values:
        return 0.0
    literal = [v for v in values if v.datatype != IRI_VALUE]
    anchored = sum(1 for v in values if v.datatype == IRI_VALUE and v.text in other.iris)
    if literal:
        tokenised = [set(words(v.text)) for v in literal]
        counts = Counter(word for found in tokenised for word in found)
        common = COMMON_WORD_SHARE * len(literal)
        for value, found in zip(literal, tokenised):
            informative = [word for word in found if counts[word] < common]
            if informative:
                shared = sum(1 for word in informative if word in other.words)
                anchored += shared >= ANCHORED_WORDS * len(informative)
            else:
                anchored += normalised(value.text) in other.values
    return anchored / len(values)


def alignment_factor(alignability: float) -> float:
    """What a predicate's importance is multiplied by (see the module text)."""
    if alignability < MIN_ALIGNABILITY:
        return 0.0
    return min(1.0, alignability / FULL_ALIGNABILITY)


def sample_values(entities: Iterable[Entity], limit: int = SAMPLE_VALUES) -> dict[str, list[Value]]:
    """Up to ``limit`` distinct values of each attribute path, the first met."""
    samples: dict[str, dict[Value, None]] = {}
    for entity in entities:
        for path, values in entity.attributes.items():
            kept = samples.setdefault(path, {})
            if len(kept) < limit:
                for value in values:
                    if value.text.strip():
                        kept[value] = None
    return {path: list(kept)[:limit] for path, kept in samples.items()}
