"""Which subjects of a graph are entities: decided per class, from the data.

Every IRI subject that is typed or carries a literal (a label included) is a
*candidate*; schema nodes (classes, properties, ontology headers: anything typed as
vocabulary, used as a predicate or a class, or described by RDFS/OWL schema
predicates) never are, nor blank nodes. Candidates are grouped by *class*: each of
their ``rdf:type`` IRIs, or, for an untyped node, its IRI pattern (the IRI up to its
last ``/``, ``#`` or ``:``, then ``*``: ``http://data.doremus.org/Expression_Creation/F28/*``).

A class is *auxiliary* when nearly all its instances (:data:`AUXILIARY_SHARE`) hang
off an owner: each is referenced by a few other subjects at most (:data:`MAX_OWNERS`:
the descriptions of one thing, as a record and its copies that share one address), and
none of them is an instance of the same class (a friend of one person is a peer, not a
part of them). A node that many subjects point to is shared by many things: a course,
a city, a work that its assignments, performances and publications all point to.
Addresses, time spans, titles or identifiers minted as nodes are such classes, unless
most of their instances have a label (:data:`NAMED_SHARE`: a named thing is one in its
own right, whoever points to it). Their nodes are folded into their owner's description (:mod:`kgalign.io.entities`); the
instances of every other class are entities. A node with several classes is an entity
when one of them is kept.

A person may override the decision by class IRI or pattern (``--keep-class``,
``--fold-class``). ``kgalign profile`` lists every class with its instances, whether it
was kept, and why; run.json records the same (``classes``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field

from rdflib.namespace import OWL, RDFS

#: A class is folded when at least this share of its instances hang off one owner...
AUXILIARY_SHARE = 0.9
#: ... unless this share of them have a label: named things stand on their own.
NAMED_SHARE = 0.5
#: Predicates whose subjects and objects describe the vocabulary, not the data.
SCHEMA_PREDICATES = frozenset(
    str(p)
    for p in (
        RDFS.subClassOf,
        RDFS.subPropertyOf,
        RDFS.domain,
        RDFS.range,
        OWL.inverseOf,
        OWL.equivalentClass,
        OWL.equivalentProperty,
        OWL.disjointWith,
        OWL.onProperty,
        OWL.someValuesFrom,
        OWL.allValuesFrom,
        OWL.imports,
    )
)
#: Types that say nothing of what kind of thing an instance is.
UNINFORMATIVE_TYPES = frozenset(str(t) for t in (OWL.Thing, OWL.NamedIndividual, RDFS.Resource))
#: An instance hangs off its owner when at most this many subjects point to it (the few
#: descriptions of one thing: a record and its copies sharing an address, a work's
#: expression and its creation event sharing a time span), none of its own class.
MAX_OWNERS = 4



def iri_pattern(iri: str) -> str:
    """The class key of an untyped IRI node: the IRI up to its last ``/`` or ``#`` (past
    its scheme; its last ``:`` in an IRI without either, as ``urn:isbn:``), then ``*``.
    Every node minted under one path shares it. (Where local names hold a ``/`` of
    their own, :func:`decide` merges the patterns back into the larger one.)"""
    body = iri.rstrip("/#")
    slashes = body.find("://")
    if slashes > 0:
        start = slashes + 3
    else:
        colon = body.find(":")
        start = colon + 1 if colon > 0 else 0
    cut = max(body.rfind("/"), body.rfind("#"))
    if cut < start:
        cut = body.rfind(":")
    if cut < start:
        return body[:start] + "*"
    return body[: cut + 1] + "*"


def merged_patterns(tallies: Mapping[str, ClassTally]) -> dict[str, str]:
    """Each IRI pattern that lies under a pattern of more instances, mapped to the
    largest such (``http://dbpedia.org/resource/AC/*`` under ``http://dbpedia.org/resource/*``):
    a local name with a ``/`` in it is no class of its own."""
    patterns = {key: tally.instances for key, tally in tallies.items() if is_pattern(key)}
    aliases: dict[str, str] = {}
    for key, count in patterns.items():
        stem = key[:-1]
        best, best_count = None, count
        cut = stem.rfind("/", 0, len(stem) - 1)
        while cut > 0:
            above = stem[: cut + 1] + "*"
            found = patterns.get(above)
            if found is not None and found > best_count:
                best, best_count = above, found
            cut = stem.rfind("/", 0, cut)
        if best is not None:
            aliases[key] = best
    return aliases


def is_pattern(key: str) -> bool:
    """Whether a class key is an IRI pattern (an untyped node's) rather than a class IRI."""
    return key.endswith("*")


def class_keys(types: Iterable[str], iri: str, aliases: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """A node's classes: its informative ``rdf:type`` IRIs, else its IRI pattern; with
    ``aliases`` (:attr:`EntityKinds.aliases`), as its graph counts them."""
    typed = tuple(t for t in types if t not in UNINFORMATIVE_TYPES)
    keys = typed if typed else (iri_pattern(iri),)
    return tuple(dict.fromkeys(aliases.get(k, k) for k in keys)) if aliases else keys


@dataclass
class ClassTally:
    """What one graph (or one partition of it) holds of one class."""

    instances: int = 0
    #: Instances referenced by exactly one subject, of another class.
    owned: int = 0
    #: Instances with a label (a name of their own).
    labelled: int = 0

    def add(self, other: ClassTally) -> None:
        self.instances += other.instances
        self.owned += other.owned
        self.labelled += other.labelled


@dataclass(frozen=True)
class ClassDecision:
    """Whether the instances of one class are entities, and why."""

    key: str
    instances: int
    owned: int
    labelled: int
    kept: bool
    reason: str

    @property
    def typed(self) -> bool:
        return not is_pattern(self.key)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class EntityKinds:
    """The class decisions of one graph (see the module text)."""

    classes: tuple[ClassDecision, ...] = ()
    #: Overrides given: the class IRIs or patterns to keep, and to fold.
    keep: tuple[str, ...] = ()
    fold: tuple[str, ...] = ()
    kept_keys: frozenset[str] = field(default=frozenset(), compare=False)
    #: IRI patterns counted as a larger one (:func:`merged_patterns`).
    aliases: Mapping[str, str] = field(default_factory=dict, compare=False)

    def is_entity(self, keys: Iterable[str]) -> bool:
        kept, aliases = self.kept_keys, self.aliases
        return any(aliases.get(key, key) in kept for key in keys)

    def to_dict(self) -> dict:
        return {"classes": [c.to_dict() for c in self.classes], "keep": list(self.keep), "fold": list(self.fold)}

    def summary(self) -> str:
        kept = [c for c in self.classes if c.kept]
        folded = [c for c in self.classes if not c.kept]
        return f"{len(kept)} classes kept as entities, {len(folded)} folded into their owners"


def decide(tallies: Mapping[str, ClassTally], keep: Iterable[str] = (), fold: Iterable[str] = ()) -> EntityKinds:
    """Each class kept or folded (see the module text), overrides first; the classes
    listed largest first."""
    keep, fold = tuple(dict.fromkeys(keep)), tuple(dict.fromkeys(fold))
    aliases = merged_patterns(tallies)
    merged: dict[str, ClassTally] = {}
    for key, tally in tallies.items():
        merged.setdefault(aliases.get(key, key), ClassTally()).add(tally)
    decisions = []
    for key, tally in merged.items():
        share = tally.owned / tally.instances if tally.instances else 0.0
        if key in fold:
            kept, reason = False, "folded as asked (--fold-class)"
        elif key in keep:
            kept, reason = True, "kept as asked (--keep-class)"
        elif share >= AUXILIARY_SHARE and tally.labelled < NAMED_SHARE * tally.instances:
            kept, reason = False, f"{tally.owned} of {tally.instances} instances hang off an owner each"
        elif share >= AUXILIARY_SHARE:
            kept, reason = True, f"{tally.labelled} of {tally.instances} instances have a name of their own"
        else:
            kept, reason = True, f"{tally.instances - tally.owned} of {tally.instances} instances stand on their own"
        decisions.append(ClassDecision(key, tally.instances, tally.owned, tally.labelled, kept, reason))
    decisions.sort(key=lambda d: (-d.instances, d.key))
    return EntityKinds(tuple(decisions), keep, fold, frozenset(d.key for d in decisions if d.kept), aliases)


def unknown_overrides(kinds: EntityKinds) -> list[str]:
    """The classes named to keep or fold that the graph does not have."""
    known = {c.key for c in kinds.classes}
    return [key for key in (*kinds.keep, *kinds.fold) if key not in known]
