"""Select each entity's most identifying attributes and relations.

Measured per predicate within one graph (the heuristic of LLM-Align):
- coverage: the share of entities that have a non-empty value for it;
- distinctiveness: the share of its values that are distinct (1.0 for an ID).
Importance is their product. Each entity keeps its top attributes by importance, and
the names of its neighbours through its most important relations.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from kgalign.errors import KgalignError
from kgalign.io.entities import PATH_SEPARATOR
from kgalign.io.entity_file import EntityFile
from kgalign.model import Entity, EntityProfile, EntityTable, PredicateStats, local_name

if TYPE_CHECKING:
    from kgalign.config import AlignConfig

log = logging.getLogger(__name__)

MAX_VALUE_CHARS = 300


def predicate_stats(table: EntityTable) -> list[PredicateStats]:
    """Coverage and distinctiveness of every attribute path and relation, best first.

    One pass over the entities (read one at a time where the table is in a file), each
    predicate's distinct values kept, not every value."""
    n = max(len(table.entities), 1)
    attr: dict[str, _Tally] = {}
    rel: dict[str, _Tally] = {}
    for entity in table.entities.values():
        for path, values in entity.attributes.items():
            texts = [normalise(v.text) for v in values if v.text.strip()]
            if texts:
                tally = attr.get(path) or attr.setdefault(path, _Tally())
                tally.add(texts)
        for predicate, targets in entity.relations.items():
            if targets:
                tally = rel.get(predicate) or rel.setdefault(predicate, _Tally())
                tally.add(targets)
    stats = [tally.stats(path, "attribute", n) for path, tally in attr.items()] + [tally.stats(pred, "relation", n) for pred, tally in rel.items()]
    stats.sort(key=lambda s: (-s.importance, s.predicate))
    return stats


class _Tally:
    """One predicate's entities with a value, values and distinct values."""

    __slots__ = ("entities", "values", "distinct")

    def __init__(self) -> None:
        self.entities = 0
        self.values = 0
        self.distinct: set[str] = set()

    def add(self, values: list[str]) -> None:
        self.entities += 1
        self.values += len(values)
        self.distinct.update(values)

    def stats(self, predicate: str, kind: Literal["attribute", "relation"], n: int) -> PredicateStats:
        distinct = len(self.distinct)
        return PredicateStats(
            predicate=predicate,
            kind=kind,
            coverage=self.entities / n,
            distinctiveness=distinct / max(self.values, 1),
            entities_with=self.entities,
            distinct_values=distinct,
        )


_SPACES = re.compile(r"\s+")


def normalise(text: str) -> str:
    return _SPACES.sub(" ", text).strip().lower()


def short_name(path: str) -> str:
    """A readable name for an attribute path: local names joined by '/'."""
    return "/".join(local_name(part) for part in path.split(PATH_SEPARATOR))


@dataclass
class Selection:
    """Which predicates to show, in order of importance.

    ``unmatched_attributes`` and ``unmatched_relations``: the names a user list gave
    (``--attributes``, ``--relations``) that no predicate of the graph matched.
    """

    attributes: list[str]
    relations: list[str]
    max_attributes: int = 8
    max_neighbours: int = 5
    unmatched_attributes: tuple[str, ...] = ()
    unmatched_relations: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self._attribute_rank = {p: i for i, p in enumerate(self.attributes)}
        self._relation_rank = {p: i for i, p in enumerate(self.relations)}

    def ranked_attributes(self, entity: Entity) -> list[str]:
        """The entity's own selected attribute paths, most important first.

        Walking the entity's few predicates, not the graph's full ranking, keeps
        profiling linear on graphs with thousands of predicates (DBP15K has ~2,000).
        """
        rank = self._attribute_rank
        return sorted((p for p in entity.attributes if p in rank), key=rank.__getitem__)

    def ranked_relations(self, entity: Entity) -> list[str]:
        """The entity's own selected relations, most important first."""
        rank = self._relation_rank
        return sorted((p for p in entity.relations if p in rank), key=rank.__getitem__)


def choose_predicates(
    stats: Sequence[PredicateStats],
    attributes: Iterable[str] | None = None,
    relations: Iterable[str] | None = None,
    min_importance: float = 0.0,
    max_attributes: int = 8,
    max_neighbours: int = 5,
) -> Selection:
    """Rank predicates by importance; user lists override (matched by IRI or short name;
    the names matching no predicate are kept on the selection, :func:`check_named_predicates`)."""
    ranked_attrs = [s.predicate for s in stats if s.kind == "attribute" and s.importance > min_importance]
    ranked_rels = [s.predicate for s in stats if s.kind == "relation" and s.importance > min_importance]
    unmatched_attrs: list[str] = []
    unmatched_rels: list[str] = []
    if attributes:
        ranked_attrs, unmatched_attrs = _override(list(attributes), [s.predicate for s in stats if s.kind == "attribute"])
    if relations:
        ranked_rels, unmatched_rels = _override(list(relations), [s.predicate for s in stats if s.kind == "relation"])
    return Selection(ranked_attrs, ranked_rels, max_attributes, max_neighbours, tuple(unmatched_attrs), tuple(unmatched_rels))


def _override(wanted: list[str], known: list[str]) -> tuple[list[str], list[str]]:
    """The predicates of ``known`` that the names ``wanted`` match, in their order; and the
    names that match none."""
    chosen = []
    unmatched = []
    for item in wanted:
        found = False
        for predicate in known:
            if item in (predicate, short_name(predicate), local_name(predicate.split(PATH_SEPARATOR)[-1])):
                found = True
                if predicate not in chosen:
                    chosen.append(predicate)
        if not found and item not in unmatched:
            unmatched.append(item)
    return chosen, unmatched


def check_named_predicates(selections: Sequence[Selection], attributes: Sequence[str], relations: Sequence[str]) -> None:
    """Fail where the predicates named to show (``--attributes``, ``--relations``) occur in
    none of the graphs (``selections``: one per graph): every entity would be shown without
    them. A one-line error where no name of a list matches; a warning naming the missing
    ones where some do."""
    scope = "the graph" if len(selections) == 1 else "either graph"
    for option, kind, named, unmatched in (
        ("--attributes", "attribute", attributes, [set(s.unmatched_attributes) for s in selections]),
        ("--relations", "relation", relations, [set(s.unmatched_relations) for s in selections]),
    ):
        names = list(dict.fromkeys(named))
        missing = [name for name in names if all(name in side for side in unmatched)]
        if not missing:
            continue
        listed = ", ".join(missing)
        what = f"no {kind} predicate of {'that name' if len(missing) == 1 else 'these names'} in {scope}"
        if len(missing) == len(names):
            raise KgalignError(f"{option} {listed}: {what}, so no entity would show one (name them by IRI or short name, as `kgalign profile` lists them)")
        log.warning("%s %s: %s; only the others named are shown", option, listed, what)


def configured_selection(table: EntityTable, config: AlignConfig) -> Selection:
    """The predicates ``table``'s profiles show under ``config``: ranked from the data,
    the config's attribute and relation lists first when it has them (the names no
    predicate matched kept on it: :func:`check_named_predicates` across the graphs)."""
    return choose_predicates(
        predicate_stats(table),
        list(config.attributes) or None,
        list(config.relations) or None,
        max_attributes=config.max_attributes,
        max_neighbours=config.max_neighbours,
    )


def build_profiles(table: EntityTable, selection: Selection) -> list[EntityProfile]:
    """One profile per entity: label, top attributes, top neighbours' labels."""
    return list(iter_profiles(table, selection))


def iter_profiles(table: EntityTable, selection: Selection) -> Iterator[EntityProfile]:
    """:func:`build_profiles`, one profile at a time (a lean run writes each to a file as it is made)."""
    for entity in table.entities.values():
        yield profile_entity(entity, table, selection)


def profile_entity(entity: Entity, table: EntityTable, selection: Selection) -> EntityProfile:
    attributes: list[tuple[str, str]] = []
    seen_values: set[str] = set()
    for path in selection.ranked_attributes(entity):
        if len(attributes) >= selection.max_attributes:
            break
        for value in entity.attributes.get(path, ()):
            text = _clip(value.text)
            key = normalise(text)
            if key and key not in seen_values:
                seen_values.add(key)
                attributes.append((short_name(path), text))
                break
    neighbours: list[tuple[str, str]] = []
    for predicate in selection.ranked_relations(entity):
        if len(neighbours) >= selection.max_neighbours:
            break
        for target in entity.relations.get(predicate, ()):
            if len(neighbours) >= selection.max_neighbours:
                break
            name = _label(table, target)
            neighbours.append((local_name(predicate), _clip(name)))
    has_label = any(v.text.strip() for v in entity.labels)
    label = _clip(entity.label) if (has_label or not attributes) else ""
    return EntityProfile(iri=entity.iri, label=label, attributes=attributes, neighbours=neighbours)


def _label(table: EntityTable, iri: str) -> str:
    """The label of the entity ``iri`` of ``table``, else the IRI's local name; read
    without making the entity where the table is in a file."""
    entities = table.entities
    if isinstance(entities, EntityFile):
        found = entities.label(iri)
        return found if found is not None else local_name(iri)
    other = entities.get(iri)
    return other.label if other is not None else local_name(iri)


def _clip(text: str) -> str:
    text = _SPACES.sub(" ", text).strip()
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "\u2026"


@dataclass(frozen=True)
class PredicatePair:
    left: str
    right: str
    overlap: float


def suggest_pairs(left: EntityTable, right: EntityTable, min_overlap: float = 0.05) -> list[PredicatePair]:
    """Attribute paths whose value sets overlap across the graphs (Jaccard), best first."""
    left_values = _value_sets(left)
    right_values = _value_sets(right)
    pairs = []
    for lp, lv in left_values.items():
        for rp, rv in right_values.items():
            inter = len(lv & rv)
            if inter:
                jaccard = inter / len(lv | rv)
                if jaccard >= min_overlap:
                    pairs.append(PredicatePair(lp, rp, jaccard))
    pairs.sort(key=lambda p: -p.overlap)
    best: list[PredicatePair] = []
    used_left: set[str] = set()
    used_right: set[str] = set()
    for pair in pairs:
        if pair.left not in used_left and pair.right not in used_right:
            best.append(pair)
            used_left.add(pair.left)
            used_right.add(pair.right)
    return best


def _value_sets(table: EntityTable) -> dict[str, set[str]]:
    sets: dict[str, set[str]] = {}
    for entity in table.entities.values():
        for path, values in entity.attributes.items():
            bucket = sets.setdefault(path, set())
            bucket.update(normalise(v.text) for v in values if v.text.strip())
    return sets
