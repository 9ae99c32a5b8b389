"""Which classes of the two graphs correspond: links are made only between their instances.

A class is an ``rdf:type`` IRI, or an untyped node's IRI pattern
(:mod:`kgalign.io.kinds`). Correspondences are found without help, each class taking
the first of these that gives it a partner:

1. the same class IRI (or IRI pattern) on both sides;
2. the same class name (the IRI's local name, letter case and punctuation aside);
3. untyped entities with untyped entities (the patterns left);
4. the overlap of their instances' values (IRIs and whole values), at least
   :data:`MIN_OVERLAP` of the smaller class's;

and then, for every class, the classes of the confident links: where the lexical
channel's mutual best matches (leading by :data:`CONFIDENT_MARGIN`) join instances of
two classes often enough (:data:`MIN_LINKS`, and :data:`MIN_LINK_SHARE` of either
class's confident links), they correspond too: a graph that retyped some records
(a course as a work, a paper as an article) is followed.

``class_map`` (``--class-map LEFT=RIGHT``) replaces what was found for the classes it
names. The correspondences group the entities into *blocks* (connected by classes that
correspond, or that one entity holds together): candidates are searched within each
block, and a candidate pair is kept only where a class of the source corresponds to a
class of the target. A class that corresponds to nothing is not aligned (said in one
line). run.json (``classes``) and ``kgalign profile`` show them.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from kgalign.io.entities import IRI_VALUE
from kgalign.io.kinds import class_keys, is_pattern
from kgalign.model import Candidates, Entity, EntityTable, local_name
from kgalign.selection.alignability import normalised

log = logging.getLogger(__name__)

#: Share of the smaller class's distinct values the other class must hold (step 4)...
MIN_OVERLAP = 0.2
#: ... and at least this many.
MIN_SHARED_VALUES = 3
#: Values of each class kept for the overlap.
OVERLAP_VALUES = 5000
#: A lexical mutual best match leading its runner-ups by this much is confident.
CONFIDENT_MARGIN = 0.05
#: ... and scoring at least this much.
CONFIDENT_FLOOR = 0.3
#: Confident links two classes need to correspond through them...
MIN_LINKS = 3
#: ... and the share of either class's confident links they must be.
MIN_LINK_SHARE = 0.1


@dataclass(frozen=True)
class Correspondence:
    """A left class that corresponds to a right class, how it was found, and its support."""

    left: str
    right: str
    how: str
    support: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ClassAlignment:
    """The correspondences of a run's classes and the entity blocks they make."""

    correspondences: list[Correspondence]
    #: Each side's classes (with their entities' count) that correspond to nothing.
    unaligned: dict[str, dict[str, int]] = field(default_factory=dict)
    #: Per block, the IRIs of its entities on each side (only blocks with both sides).
    blocks: list[tuple[list[str], list[str]]] = field(default_factory=list)
    #: Entities left out: of a class that corresponds to nothing.
    left_out: dict[str, int] = field(default_factory=dict)
    _pairs: set[tuple[str, str]] = field(default_factory=set, repr=False)
    _keys: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict, repr=False)

    @property
    def trivial(self) -> bool:
        """One block holding every entity: nothing to restrict."""
        return len(self.blocks) <= 1 and not any(self.left_out.values())

    def allowed(self, source: str, target: str) -> bool:
        """Whether a class of the left entity ``source`` corresponds to one of the right entity ``target``."""
        if self.trivial:
            return True
        left = self._keys.get("left", {}).get(source, ())
        right = self._keys.get("right", {}).get(target, ())
        return any((a, b) in self._pairs for a in left for b in right)

    def filter(self, candidates: list[Candidates]) -> list[Candidates]:
        """``candidates`` without the targets of a class the source's classes do not correspond to."""
        if self.trivial:
            return candidates
        kept = []
        for cands in candidates:
            items = [item for item in cands.items if self.allowed(cands.source, item.iri)]
            if len(items) != len(cands.items):
                for rank, item in enumerate(items, 1):
                    item.rank = rank
                cands.items = items
                cands.margin = items[0].score - items[1].score if len(items) > 1 else (items[0].score if items else 0.0)
            kept.append(cands)
        return kept

    def to_dict(self) -> dict:
        return {
            "correspondences": [c.to_dict() for c in self.correspondences],
            "unaligned": self.unaligned,
            "blocks": [{"left": len(a), "right": len(b)} for a, b in self.blocks],
            "left_out": self.left_out,
        }

    def summary(self) -> str:
        found = Counter(c.how for c in self.correspondences)
        how = ", ".join(f"{n} by {what}" for what, n in found.most_common())
        text = f"{len(self.correspondences)} class correspondences ({how}), {len(self.blocks)} blocks of entities"
        if any(self.left_out.values()):
            text += f"; not aligned, of a class that corresponds to nothing: {self.left_out.get('left', 0)} left and {self.left_out.get('right', 0)} right entities"
        return text


def entity_keys(entity: Entity, aliases: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """An entity's classes: its informative types, else its IRI pattern (as its graph counts them)."""
    return class_keys(entity.types, entity.iri, aliases)


_NAME = re.compile(r"[^0-9a-z]+")


def class_name(key: str) -> str:
    """A class's name as step 2 compares it: the local name (a pattern's last path part),
    lower-cased, without punctuation."""
    stem = key[:-1].rstrip("/#:") if is_pattern(key) else key
    return _NAME.sub("", local_name(stem).lower())


def align_classes(
    left: EntityTable,
    right: EntityTable,
    class_map: Sequence[str] = (),
    lexical: Callable[[], tuple] | None = None,
    left_order: Sequence[str] | None = None,
    right_order: Sequence[str] | None = None,
) -> ClassAlignment:
    """The class correspondences of two tables and their entity blocks (see the module
    text). ``lexical`` gives both sides' TF-IDF rows in ``left_order`` and
    ``right_order`` (the tables' order by default), for the confident links (called
    only where the graphs have several classes); without it that step is skipped."""
    single = [_single_class(table) for table in (left, right)]
    if all(single) and not class_map:
        # One class a side (DBP15K, a table): nothing to restrict, nothing to work out.
        return ClassAlignment([Correspondence(single[0], single[1], "only classes")], {"left": {}, "right": {}}, [(list(left.entities), list(right.entities))], {"left": 0, "right": 0})  # type: ignore[arg-type]
    keys = {side: _keys_of(table) for side, table in (("left", left), ("right", right))}
    counts = {side: Counter(k for ks in found.values() for k in ks) for side, found in keys.items()}
    if len(counts["left"]) <= 1 and len(counts["right"]) <= 1 and not class_map:
        # One class a side (DBP15K, a table): nothing to restrict.
        return _blocks([Correspondence(a, b, "only classes") for a in counts["left"] for b in counts["right"]], keys, counts)
    pairs: list[Correspondence] = []
    partnered: dict[str, set[str]] = {"left": set(), "right": set()}

    def add(a: str, b: str, how: str, support: float | None = None) -> None:
        pairs.append(Correspondence(a, b, how, None if support is None else round(float(support), 4)))
        partnered["left"].add(a)
        partnered["right"].add(b)

    for key in sorted(counts["left"]):
        if key in counts["right"]:
            add(key, key, "same class")
    open_left = [k for k in sorted(counts["left"]) if k not in partnered["left"]]
    open_right = [k for k in sorted(counts["right"]) if k not in partnered["right"]]
    by_name: dict[str, list[str]] = {}
    for key in open_right:
        by_name.setdefault(class_name(key), []).append(key)
    for key in open_left:
        for other in by_name.get(class_name(key), []) if class_name(key) else []:
            add(key, other, "same name")
    open_left = [k for k in open_left if k not in partnered["left"]]
    open_right = [k for k in open_right if k not in partnered["right"]]
    untyped_left, untyped_right = [k for k in open_left if is_pattern(k)], [k for k in open_right if is_pattern(k)]
    for a in untyped_left:
        for b in untyped_right:
            add(a, b, "untyped")
    open_left = [k for k in open_left if k not in partnered["left"]]
    open_right = [k for k in open_right if k not in partnered["right"]]
    if open_left or open_right:
        for a, b, overlap in _value_overlaps(left, right, keys, open_left, open_right):
            add(a, b, "shared values", overlap)
    if lexical is not None:
        known = {(c.left, c.right) for c in pairs}
        for a, b, support in _confident_links(lexical(), keys, left_order or list(left.entities), right_order or list(right.entities)):
            if (a, b) not in known:
                add(a, b, "confident links", support)
    if class_map:
        pairs = _mapped(pairs, class_map)
    return _blocks(pairs, keys, counts)


def _single_class(table: EntityTable) -> str | None:
    """The one class of a table whose load decided one class of entities and typed none
    of them otherwise; None where that is not known without reading every entity."""
    if table.kinds is None:
        return None
    kept = [c.key for c in table.kinds.classes if c.kept]
    return kept[0] if len(kept) == 1 and len(table.kinds.classes) == 1 else None


def _keys_of(table: EntityTable) -> dict[str, tuple[str, ...]]:
    aliases = table.kinds.aliases if table.kinds is not None else None
    return {iri: entity_keys(entity, aliases) for iri, entity in table.entities.items()}


def _mapped(found: list[Correspondence], class_map: Sequence[str]) -> list[Correspondence]:
    """``found`` where the classes ``class_map`` names take the correspondences it gives."""
    given = []
    for item in class_map:
        a, _, b = item.partition("=")
        given.append(Correspondence(a.strip(), b.strip(), "given"))
    named_left = {c.left for c in given}
    named_right = {c.right for c in given}
    return [c for c in found if c.left not in named_left and c.right not in named_right] + given


def _value_overlaps(
    left: EntityTable, right: EntityTable, keys: dict[str, dict[str, tuple[str, ...]]], open_left: list[str], open_right: list[str]
) -> Iterable[tuple[str, str, float]]:
    """Step 4: each open class of a side with the other side's classes whose instances'
    values overlap it most (at least MIN_OVERLAP, and half the best)."""
    values = {"left": _class_values(left, keys["left"]), "right": _class_values(right, keys["right"])}
    seen: set[tuple[str, str]] = set()
    for side, open_keys, other in (("left", open_left, "right"), ("right", open_right, "left")):
        for key in open_keys:
            mine = values[side].get(key, set())
            scored = []
            for theirs_key, theirs in values[other].items():
                shared = len(mine & theirs)
                if shared >= MIN_SHARED_VALUES:
                    overlap = shared / min(len(mine), len(theirs))
                    if overlap >= MIN_OVERLAP:
                        scored.append((overlap, theirs_key))
            if scored:
                best = max(scored)[0]
                for overlap, theirs_key in sorted(scored, reverse=True):
                    pair = (key, theirs_key) if side == "left" else (theirs_key, key)
                    if overlap >= best / 2 and pair not in seen:
                        seen.add(pair)
                        yield pair[0], pair[1], overlap


def _class_values(table: EntityTable, keys: dict[str, tuple[str, ...]]) -> dict[str, set[str]]:
    """Each class's values, each with the local name of the predicate that holds it (two
    kinds of thing pointing to one IRI by different predicates are not alike)."""
    found: dict[str, set[str]] = {}
    for iri, entity in table.entities.items():
        texts = [
            f"{local_name(path)}\x00{v.text if v.datatype == IRI_VALUE else normalised(v.text)}"
            for path, values in entity.attributes.items()
            for v in values
        ]
        texts += [f"{local_name(predicate)}\x00{t}" for predicate, targets in entity.relations.items() for t in targets]
        for key in keys[iri]:
            bucket = found.setdefault(key, set())
            if len(bucket) < OVERLAP_VALUES:
                bucket.update(texts)
    return found


def _confident_links(
    lexical: tuple, keys: dict[str, dict[str, tuple[str, ...]]], left_order: Sequence[str], right_order: Sequence[str]
) -> Iterable[tuple[str, str, float]]:
    """The class pairs that enough confident lexical links join (see the module text)."""
    from kgalign.resolution.cardinality import _sorted_topk

    left_rows, right_rows = lexical
    if left_rows.shape[0] == 0 or right_rows.shape[0] == 0:
        return
    k = min(2, right_rows.shape[0])
    scores, ids = _sorted_topk(left_rows, right_rows, k)
    _, back = _sorted_topk(right_rows, left_rows, 1)
    votes: Counter[tuple[str, str]] = Counter()
    per_left: Counter[str] = Counter()
    per_right: Counter[str] = Counter()
    for i in range(left_rows.shape[0]):
        j = int(ids[i, 0])
        lead = scores[i, 0] - (scores[i, 1] if k > 1 else 0.0)
        if scores[i, 0] < CONFIDENT_FLOOR or lead < CONFIDENT_MARGIN or int(back[j, 0]) != i:
            continue
        a_keys, b_keys = keys["left"][left_order[i]], keys["right"][right_order[j]]
        for a in a_keys:
            per_left[a] += 1
            for b in b_keys:
                votes[(a, b)] += 1
        for b in b_keys:
            per_right[b] += 1
    for (a, b), n in sorted(votes.items()):
        share = min(n / per_left[a], n / per_right[b])
        if n >= MIN_LINKS and share >= MIN_LINK_SHARE:
            yield a, b, float(np.round(share, 4))


def _blocks(pairs: list[Correspondence], keys: dict[str, dict[str, tuple[str, ...]]], counts: dict[str, Counter]) -> ClassAlignment:
    """The entity blocks the correspondences make (union-find over the classes)."""
    parent: dict[tuple[str, str], tuple[str, str]] = {}

    def find(node: tuple[str, str]) -> tuple[str, str]:
        parent.setdefault(node, node)
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    def union(a: tuple[str, str], b: tuple[str, str]) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    for c in pairs:
        union(("left", c.left), ("right", c.right))
    for side in ("left", "right"):
        for found in keys[side].values():
            for key in found[1:]:
                union((side, found[0]), (side, key))
    members: dict[tuple[str, str], tuple[list[str], list[str]]] = {}
    for side, index in (("left", 0), ("right", 1)):
        for iri, found in keys[side].items():
            members.setdefault(find((side, found[0])), ([], []))[index].append(iri)
    blocks = [(a, b) for _, (a, b) in sorted(members.items()) if a and b]
    left_out = {"left": sum(len(a) for a, b in members.values() if not b), "right": sum(len(b) for a, b in members.values() if not a)}
    paired = {"left": {c.left for c in pairs if c.right in counts["right"]}, "right": {c.right for c in pairs if c.left in counts["left"]}}
    unaligned = {side: {key: n for key, n in sorted(counts[side].items()) if key not in paired[side]} for side in ("left", "right")}
    alignment = ClassAlignment(sorted(pairs, key=lambda c: (c.left, c.right)), unaligned, blocks, left_out)
    alignment._pairs = {(c.left, c.right) for c in pairs}
    alignment._keys = keys
    for side, classes in unaligned.items():
        if classes:
            shown = ", ".join(f"{key} ({n})" for key, n in list(classes.items())[:5])
            more = f" and {len(classes) - 5} more" if len(classes) > 5 else ""
            # Said aloud where entities are left out (not where each also holds a class that corresponds).
            level = logging.WARNING if left_out[side] else logging.INFO
            log.log(level, "%s classes that correspond to no %s class, not aligned: %s%s", side, "right" if side == "left" else "left", shown, more)
    return alignment
