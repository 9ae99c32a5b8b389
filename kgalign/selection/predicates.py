"""Select each entity's most identifying attributes and relations.

Measured per predicate within one graph (the heuristic of LLM-Align):
- coverage: the share of entities that have a non-empty value for it;
- distinctiveness: the share of its values that are distinct (1.0 for an ID);
and, where the other graph is known, across the two:
- alignability: the share of its values that can agree with the other graph's
  (:mod:`kgalign.selection.alignability`; opaque identifiers never do).
Importance is their product (alignability saturating). Each entity keeps its top
attributes by importance (up to MAX_VALUES of each), and the names of its neighbours
through its most important relations.

An entity that points to a label-less entity of another class (a work to its creation
event, a publication to its authors) shows that entity's values too, under the
relation's path (:class:`Lender`): a thing without a name is known by what it holds.
Its IRI is a value of the relation (compared as an IRI: the other graph may name it).
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from kgalign.errors import KgalignError
from kgalign.io.entities import IRI_VALUE, PATH_SEPARATOR
from kgalign.io.entity_file import EntityFile
from kgalign.io.kinds import class_keys
from kgalign.model import Entity, EntityProfile, EntityTable, PredicateStats, Value, local_name
from kgalign.selection.alignability import SAMPLE_VALUES, Vocabulary, alignabilities

if TYPE_CHECKING:
    from kgalign.config import AlignConfig

log = logging.getLogger(__name__)

MAX_VALUE_CHARS = 300
#: Distinct values of one attribute path an entity shows (a work's titles in two languages).
MAX_VALUES = 3
#: Attribute paths of lower importance are not shown: a value (nearly) every entity
#: shares, such as a cataloguing rule or the agency's name, tells them apart from nothing.
MIN_IMPORTANCE = 0.01
#: A path whose sampled values are this long (characters, median) holds free text.
LONG_TEXT_CHARS = 100


#: A label-less entity lends its values to the entities that point to it when they are
#: at most this many (a part of one or two things, as a creation event of a work and of
#: its expression); one that more entities point to is a thing of its own (a work that
#: its identifier assignments, performances and publications all point to).
MAX_BORROWERS = 2


class Lender:
    """The label-less entities of a table that other entities point to: each relation
    shows their IRIs as values (:data:`IRI_VALUE`; the other graph may name the same
    IRI), and the entities that point to them show their values too (see the module
    text), unless both are of one class (a friend is a peer, not a part) or more than
    MAX_BORROWERS entities point to it."""

    def __init__(self, lent: dict[str, Entity], alias: dict[str, str] | None = None, nameless: frozenset[str] = frozenset()) -> None:
        self.lent = lent
        self.nameless = nameless | frozenset(lent)
        self._alias = alias or {}
        #: What a label-less entity is called where it is a neighbour: its first value
        #: by the ranking (:func:`name_nameless`).
        self.names: dict[str, str] = {}

    @classmethod
    def of(cls, table: EntityTable, labelless: set[str], targets: Counter[str]) -> Lender:
        nameless = frozenset(iri for iri in labelless if targets[iri])
        wanted = sorted(iri for iri in nameless if targets[iri] <= MAX_BORROWERS)
        alias = dict(table.kinds.aliases) if table.kinds is not None else {}
        return cls({iri: table.entities[iri] for iri in wanted}, alias, nameless)

    def keys(self, entity: Entity) -> set[str]:
        return set(class_keys(entity.types, entity.iri, self._alias))

    def borrowed(self, entity: Entity) -> Iterator[tuple[str, list[Value]]]:
        """``entity``'s paths through the label-less entities it points to: each
        relation's IRIs (:data:`IRI_VALUE`), and each lent entity's values."""
        if not self.nameless:
            return
        own: set[str] | None = None
        for predicate, targets in entity.relations.items():
            nameless = [t for t in targets if t in self.nameless]
            if not nameless:
                continue
            yield predicate, [Value(t, None, IRI_VALUE) for t in nameless]
            lent = [self.lent[t] for t in nameless if t in self.lent]
            if not lent:
                continue
            if own is None:
                own = self.keys(entity)
            paths: dict[str, list[Value]] = {}
            for other in lent:
                if own & self.keys(other):
                    continue
                for path, values in other.attributes.items():
                    paths.setdefault(predicate + PATH_SEPARATOR + path, []).extend(values)
            yield from paths.items()


NO_LENDER = Lender({})


def described(entity: Entity, lender: Lender) -> Iterator[tuple[str, list[Value]]]:
    """Every attribute path of ``entity`` with its values: its own, then the ones it
    borrows from label-less entities it points to."""
    yield from entity.attributes.items()
    yield from lender.borrowed(entity)


def predicate_stats(table: EntityTable, other: Vocabulary | None = None) -> list[PredicateStats]:
    """Coverage and distinctiveness of every attribute path and relation, best first;
    with ``other`` (the other graph's :func:`kgalign.selection.alignability.vocabulary`)
    each attribute's alignability too. See :func:`measure`."""
    return measure(table, other)[0]


@dataclass
class ClassRanks:
    """Where a graph holds several classes: each class's own ranking of its attribute
    paths (coverage among its instances), which its instances' profiles follow (an
    entity of several classes: its largest class's)."""

    ranks: dict[str, dict[str, int]]
    sizes: dict[str, int]
    aliases: dict[str, str]

    def rank_of(self, entity: Entity) -> dict[str, int] | None:
        keys = class_keys(entity.types, entity.iri, self.aliases)
        known = [key for key in keys if key in self.ranks]
        if not known:
            return None
        return self.ranks[max(known, key=lambda key: (self.sizes[key], key))]


def _is_multi_class(table: EntityTable) -> bool:
    return table.kinds is not None and sum(1 for c in table.kinds.classes if c.kept) > 1


def measure(table: EntityTable, other: Vocabulary | None = None) -> tuple[list[PredicateStats], Lender]:
    """:func:`predicate_stats`, and the :class:`Lender` of the table (see :func:`measure_classes`)."""
    stats, lender, _ = measure_classes(table, other)
    return stats, lender


def measure_classes(table: EntityTable, other: Vocabulary | None = None) -> tuple[list[PredicateStats], Lender, ClassRanks | None]:
    """:func:`predicate_stats`, the :class:`Lender` of the table, and where it holds several
    classes each one's ranking (:class:`ClassRanks`).

    A pass over the entities (read one at a time where the table is in a file), each
    predicate's distinct values kept, not every value; a second over the entities that
    point to label-less entities, where any does."""
    n = max(len(table.entities), 1)
    attr: dict[str, _Tally] = {}
    rel: dict[str, _Tally] = {}
    labelless: set[str] = set()
    aliases = dict(table.kinds.aliases) if table.kinds is not None else {}
    per_class: dict[str, dict[str, _Tally]] | None = {} if _is_multi_class(table) else None
    sizes: Counter[str] = Counter()
    for iri, entity in table.entities.items():
        if not entity.labels:
            labelless.add(iri)
        if per_class is not None:
            keys = class_keys(entity.types, iri, aliases)
            sizes.update(keys)
            for key in keys:
                mine = per_class.setdefault(key, {})
                for path, values in entity.attributes.items():
                    _tally(mine, path, values, sample=False)
        for path, values in entity.attributes.items():
            _tally(attr, path, values)
        for predicate, found in entity.relations.items():
            if found:
                tally = rel.get(predicate) or rel.setdefault(predicate, _Tally())
                tally.add(found)
    lender = NO_LENDER
    if labelless:
        # How many entities point to each: a second pass, only where an entity has no label.
        targets: Counter[str] = Counter()
        for iri, entity in table.entities.items():
            if entity.relations:
                targets.update({t for found in entity.relations.values() for t in found if t != iri and t in labelless})
        if targets:
            lender = Lender.of(table, labelless, targets)
    if lender.nameless:
        for entity in table.entities.values():
            keys = class_keys(entity.types, entity.iri, aliases) if per_class is not None else ()
            for path, values in lender.borrowed(entity):
                _tally(attr, path, values)
                for key in keys:
                    _tally(per_class[key], path, values, sample=False)  # type: ignore[index]
    aligned = alignabilities({path: list(tally.sample) for path, tally in attr.items()}, other) if other is not None else {}
    stats = [tally.stats(path, "attribute", n, aligned.get(path)) for path, tally in attr.items()] + [
        tally.stats(pred, "relation", n) for pred, tally in rel.items()
    ]
    # Short values first (they name and identify), long free text after, each by importance.
    stats.sort(key=_order)
    ranks = None
    if per_class is not None:
        ranks = ClassRanks({}, dict(sizes), aliases)
        for key, tallies in per_class.items():
            own = [tally.stats(path, "attribute", sizes[key], aligned.get(path)) for path, tally in tallies.items()]
            own.sort(key=_order)
            ranks.ranks[key] = {s.predicate: i for i, s in enumerate(own) if s.importance > MIN_IMPORTANCE}
    return stats, lender, ranks


def _order(stats: PredicateStats) -> tuple:
    return (stats.long_text, -stats.importance, stats.predicate)


def _tally(tallies: dict[str, _Tally], path: str, values: list[Value], sample: bool = True) -> None:
    texts = [normalise(v.text) for v in values if v.text.strip()]
    if texts:
        tally = tallies.get(path) or tallies.setdefault(path, _Tally())
        tally.add(texts)
        if len(tally.lengths) < SAMPLE_VALUES:
            tally.lengths.extend(len(text) for text in texts)
        if sample and len(tally.sample) < SAMPLE_VALUES:
            for value in values:
                tally.sample.setdefault(value, None)


class _Tally:
    """One predicate's entities with a value, values and distinct values, and a sample
    of its values (the first met)."""

    __slots__ = ("entities", "values", "distinct", "sample", "lengths")

    def __init__(self) -> None:
        self.entities = 0
        self.values = 0
        self.distinct: set[str] = set()
        self.sample: dict[Value, None] = {}
        self.lengths: list[int] = []

    def add(self, values: list[str]) -> None:
        self.entities += 1
        self.values += len(values)
        self.distinct.update(values)

    def stats(self, predicate: str, kind: Literal["attribute", "relation"], n: int, alignability: float | None = None) -> PredicateStats:
        distinct = len(self.distinct)
        return PredicateStats(
            predicate=predicate,
            kind=kind,
            coverage=self.entities / n,
            distinctiveness=distinct / max(self.values, 1),
            entities_with=self.entities,
            distinct_values=distinct,
            alignability=None if alignability is None else round(alignability, 4),
            long_text=bool(self.lengths) and sorted(self.lengths)[len(self.lengths) // 2] >= LONG_TEXT_CHARS,
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
    #: Where entities borrow the values of label-less entities they point to.
    lender: Lender = field(default=NO_LENDER, repr=False, compare=False)
    #: Each class's own ranking, where the graph has several (None: ``attributes``' order for all).
    class_ranks: ClassRanks | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._attribute_rank = {p: i for i, p in enumerate(self.attributes)}
        self._relation_rank = {p: i for i, p in enumerate(self.relations)}

    def ranked_attributes(self, entity: Entity) -> list[tuple[str, list[Value]]]:
        """The entity's selected attribute paths (its own and borrowed), with their
        values, most important first.

        Walking the entity's few predicates, not the graph's full ranking, keeps
        profiling linear on graphs with thousands of predicates (DBP15K has ~2,000).
        """
        rank = self._attribute_rank
        paths = described(entity, self.lender) if self.lender.nameless else entity.attributes.items()
        if self.class_ranks is not None:
            own = self.class_ranks.rank_of(entity)
            if own is not None:
                return sorted(((p, values) for p, values in paths if p in own and p in rank), key=lambda item: own[item[0]])
        return sorted(((p, values) for p, values in paths if p in rank), key=lambda item: rank[item[0]])

    def ranked_relations(self, entity: Entity) -> list[str]:
        """The entity's own selected relations, most important first."""
        rank = self._relation_rank
        return sorted((p for p in entity.relations if p in rank), key=rank.__getitem__)


def choose_predicates(
    stats: Sequence[PredicateStats],
    attributes: Iterable[str] | None = None,
    relations: Iterable[str] | None = None,
    min_importance: float = MIN_IMPORTANCE,
    max_attributes: int = 8,
    max_neighbours: int = 5,
    lender: Lender = NO_LENDER,
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
    return Selection(ranked_attrs, ranked_rels, max_attributes, max_neighbours, tuple(unmatched_attrs), tuple(unmatched_rels), lender)


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


def configured_selection(table: EntityTable, config: AlignConfig, other: Vocabulary | None = None) -> Selection:
    """The predicates ``table``'s profiles show under ``config``: ranked from the data
    (with ``other``, the other graph's vocabulary, by alignability too), the config's
    attribute and relation lists first when it has them (the names no predicate
    matched kept on it: :func:`check_named_predicates` across the graphs)."""
    stats, lender, ranks = measure_classes(table, other)
    selection = choose_predicates(
        stats,
        list(config.attributes) or None,
        list(config.relations) or None,
        max_attributes=config.max_attributes,
        max_neighbours=config.max_neighbours,
        lender=lender,
    )
    if ranks is not None and not config.attributes:
        selection.class_ranks = ranks
    name_nameless(table, selection)
    return selection


def name_nameless(table: EntityTable, selection: Selection) -> None:
    """Give each label-less entity a neighbour points to a name: the first short value of
    its best-ranked attribute (a city's name, a course's title), as its neighbours show it."""
    lender = selection.lender
    for iri in sorted(lender.nameless):
        entity = table.entities.get(iri)
        if entity is None:
            continue
        for path, values in selection.ranked_attributes(entity):
            if path in entity.attributes:
                text = next((display(v) for v in values if v.text.strip() and len(v.text) < LONG_TEXT_CHARS), "")
                if text:
                    lender.names[iri] = _clip(text)
                    break


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
    paths = 0  # max_attributes counts attribute paths shown (each with up to MAX_VALUES values)
    for path, values in selection.ranked_attributes(entity):
        if paths >= selection.max_attributes:
            break
        name, shown = short_name(path), 0
        for value in values:
            text = _clip(display(value))
            key = normalise(text)
            if key and key not in seen_values:
                seen_values.add(key)
                attributes.append((name, text))
                shown += 1
                if shown >= MAX_VALUES:
                    break
        paths += shown > 0
    # Short values first (names, titles, dates, codes), long free text after: the
    # embedder reads the first words, and a judge reads what identifies first.
    attributes = [item for item in attributes if len(item[1]) < LONG_TEXT_CHARS] + [item for item in attributes if len(item[1]) >= LONG_TEXT_CHARS]
    neighbours: list[tuple[str, str]] = []
    for predicate in selection.ranked_relations(entity):
        if len(neighbours) >= selection.max_neighbours:
            break
        for target in entity.relations.get(predicate, ()):
            if len(neighbours) >= selection.max_neighbours:
                break
            name = selection.lender.names.get(target) or _label(table, target)
            if name:
                neighbours.append((local_name(predicate), _clip(name)))
    has_label = any(v.text.strip() for v in entity.labels)
    label = _clip(entity.label) if has_label or (not attributes and not looks_opaque(entity.label)) else ""
    return EntityProfile(iri=entity.iri, label=label, attributes=attributes, neighbours=neighbours)


_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def display(value: Value) -> str:
    """A value as a profile shows it: an IRI value without its scheme (its words are what
    agree: ``www.Department0.University0.edu/Course0``)."""
    if value.datatype == IRI_VALUE:
        return _SCHEME.sub("", value.text)
    return value.text


_OPAQUE = re.compile(r"^(?:[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}|[0-9a-f]{16,}|N[0-9a-f]{32}|\d{6,})$", re.IGNORECASE)


def looks_opaque(name: str) -> bool:
    """Whether a local name is an identifier minted by a machine (a UUID, a hash, a long
    number): it names the node in its own graph only, and never heads a profile."""
    return bool(_OPAQUE.match(name.strip()))


def _label(table: EntityTable, iri: str) -> str:
    """The label of the entity ``iri`` of ``table``, else the IRI's local name unless it
    looks opaque (:func:`looks_opaque`; such a neighbour is known by the values it lends,
    :class:`Lender`); read without making the entity where the table is in a file."""
    entities = table.entities
    if isinstance(entities, EntityFile):
        found = entities.label(iri)
        if found is not None and found != local_name(iri):
            return found
    else:
        other = entities.get(iri)
        if other is not None and other.labels:
            return other.label
    name = local_name(iri)
    return "" if looks_opaque(name) else name


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
