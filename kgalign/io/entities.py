"""Turn a parsed graph into the table of entities to align, descriptions folded in.

Which IRI subjects are entities is decided per class from the data
(:mod:`kgalign.io.kinds`): the instances of a class that hang off one owner each (an
address, a time span, an identifier assignment) and blank nodes are not entities:
their literals are folded into the description of every entity that points to them,
under an attribute path such as ``has_address / is_in_suburb / name``. An IRI an
entity points to that is no subject of the graph (or no entity and nothing to fold)
is kept as an attribute value too (:data:`IRI_VALUE`): two graphs that name the same
thing by the same IRI agree on it. ``classes`` restricts the entities to subjects of
those rdf:types instead. A graph without any literal has nothing to fold: there every
IRI subject (schema nodes aside) is an entity, compared by its IRI and its relations
alone (a warning says so).
"""

from __future__ import annotations

import logging
import sys
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from rdflib import BNode, Literal, URIRef
from rdflib.namespace import FOAF, OWL, RDF, RDFS, SKOS

from kgalign.errors import InputError
from kgalign.io import kinds as kinds_module
from kgalign.io.importers.terms import RDFS_LABEL
from kgalign.io.kinds import MAX_OWNERS, NAMED_SHARE, SCHEMA_PREDICATES, ClassTally, EntityKinds, class_keys
from kgalign.io.parsers import read_triples
from kgalign.io.triples import TripleSet, TripleSource
from kgalign.model import Entity, EntityTable, Value

log = logging.getLogger(__name__)

SCHEMA_NAME = URIRef("http://schema.org/name")
SCHEMA_NAME_HTTPS = URIRef("https://schema.org/name")
LABEL_PREDICATES: tuple[URIRef, ...] = (
    RDFS.label,
    SKOS.prefLabel,
    SKOS.altLabel,
    SCHEMA_NAME,
    SCHEMA_NAME_HTTPS,
    FOAF.name,
)
# Subjects of these types describe the vocabulary, not the data.
SCHEMA_TYPES = frozenset(
    {
        OWL.Class,
        RDFS.Class,
        OWL.ObjectProperty,
        OWL.DatatypeProperty,
        OWL.AnnotationProperty,
        RDF.Property,
        OWL.Ontology,
    }
)
_SCHEMA_TYPE_NAMES = frozenset(str(t) for t in SCHEMA_TYPES)
PATH_SEPARATOR = " / "
#: How many links deep label-less nodes are folded into their owner's description.
FOLD_DEPTH = 3
#: Referrers of a node the index keeps (the same subject may come twice: see Index).
REFERRERS_KEPT = MAX_OWNERS + 3
#: The datatype of an attribute value that is an IRI the entity points to (an IRI that is
#: no entity of its graph and has nothing to fold): compared by the IRI itself.
IRI_VALUE = "@id"


class Index:
    """One pass over a graph: literals, links, types and in-degree per node.

    Predicate, class and datatype IRIs repeat on every triple; each is turned into a
    ``str`` once and shared, instead of once per triple. So is each literal's
    :class:`Value` (an immutable object) and each node's IRI string: on large graphs
    most values repeat.
    """

    def __init__(self, graph: TripleSource) -> None:
        self.literals: dict[object, dict[str, list[Value]]] = defaultdict(lambda: defaultdict(list))
        self.labels: dict[object, list[Value]] = defaultdict(list)
        self.links: dict[object, dict[str, list[object]]] = defaultdict(lambda: defaultdict(list))
        self.types: dict[object, list[str]] = defaultdict(list)
        #: The nodes another subject links to.
        self.referenced: set[object] = set()
        #: Referrers (other subjects linking to a node), the first few met, of the nodes
        #: asked (:meth:`find_referrers`): nodes, or (a partition's, of another partition's
        #: subjects) their classes as tuples. None until asked.
        self.referrer: dict[object, list] | None = None
        self.subjects: set[object] = set()
        #: Nodes that describe the vocabulary: subjects and objects of schema predicates.
        self.schema: set[object] = set()
        label_set = set(LABEL_PREDICATES)
        referenced = self.referenced
        rdf_type = RDF.type  # a namespace attribute is a slow lookup: once, not per triple
        names: dict[object, str] = {}
        name = names.get
        # Keyed by the exact text: rdflib's Literal equality takes "01" and "1" (integers)
        # or "a"@EN and "a"@en for one term.
        values: dict[tuple[str, str | None, object], Value] = {}
        for s, p, o in graph:
            self.subjects.add(s)
            if isinstance(o, Literal):
                datatype = o.datatype
                key = (str(o), o.language, datatype)
                value = values.get(key)
                if value is None:
                    value = values[key] = Value(
                        text=key[0],
                        lang=o.language,
                        datatype=(name(datatype) or names.setdefault(datatype, str(datatype))) if datatype else None,
                    )
                if p in label_set:
                    self.labels[s].append(value)
                else:
                    self.literals[s][name(p) or names.setdefault(p, str(p))].append(value)
            elif p == rdf_type:
                self.types[s].append(name(o) or names.setdefault(o, str(o)))
            else:
                predicate = name(p) or names.setdefault(p, str(p))
                self.links[s][predicate].append(o)
                if o != s:
                    referenced.add(o)
                if predicate in SCHEMA_PREDICATES:
                    self.schema.add(s)
                    self.schema.add(o)
        #: Every predicate, class and datatype IRI of the graph, as a term.
        self.vocabulary = names.keys()
        self._iri_values: dict[object, Value] = {}
        self._keys: dict[object, tuple[str, ...]] = {}
        #: The candidate subjects and their classes, once :func:`tally_classes` found them.
        self.candidates: dict[object, tuple[str, ...]] | None = None

    def find_referrers(self, nodes: set[object] | None = None) -> dict[object, list]:
        """The referrers of ``nodes`` (every referenced node: None), the first few met of
        each, a subject once a run of its links (distinct ones are counted where read:
        :func:`referrers_of`, as comparing terms is slow); kept in :attr:`referrer`."""
        found: dict[object, list] = {}
        for s, predicates in self.links.items():
            for targets in predicates.values():
                for o in targets:
                    if o is s or (nodes is not None and o not in nodes) or o == s:
                        continue
                    known = found.get(o)
                    if known is None:
                        found[o] = [s]
                    elif len(known) < REFERRERS_KEPT and known[-1] is not s:
                        known.append(s)
        self.referrer = found
        return found

    def iri_value(self, node: object) -> Value:
        """The attribute value (:data:`IRI_VALUE`) standing for the IRI ``node``, one per IRI."""
        value = self._iri_values.get(node)
        if value is None:
            value = self._iri_values[node] = Value(text=str(node), datatype=IRI_VALUE)
        return value

    def is_schema(self, node: object) -> bool:
        """Whether ``node`` describes the vocabulary rather than the data (see :mod:`kgalign.io.kinds`)."""
        return node in self.schema or node in self.vocabulary or _is_schema_node(self.types.get(node, ()))

    def keys_of(self, node: object) -> tuple[str, ...]:
        """``node``'s classes (:func:`kgalign.io.kinds.class_keys`), worked out once a node."""
        keys = self._keys.get(node)
        if keys is None:
            keys = self._keys[node] = class_keys(self.types.get(node, ()), str(node))
        return keys


def _is_schema_node(types: Iterable[str]) -> bool:
    return any(t in _SCHEMA_TYPE_NAMES for t in types)


def build_entity_table(
    graph: TripleSource,
    name: str,
    classes: Iterable[str] | None = None,
    origin: str | None = None,
    keep: Iterable[str] = (),
    fold: Iterable[str] = (),
) -> EntityTable:
    """Turn a graph into the table of entities to align, descriptions folded in.

    ``origin`` (the file, by default ``name``) is what error messages name. ``keep`` and
    ``fold``: class IRIs or IRI patterns whose instances are entities, or folded, whatever
    the data says (:mod:`kgalign.io.kinds`).
    """
    index = Index(graph)
    wanted = {str(c) for c in classes} if classes else None
    # Without any literal there is nothing to fold: every IRI subject is an entity.
    literal_free = not index.literals and not index.labels
    kinds = None
    if wanted is None and not literal_free:
        kinds = kinds_module.decide(tally_classes(index), keep, fold)
        _warn_unknown_overrides(origin or name, kinds)
    entity_nodes = find_entity_nodes(index, wanted, literal_free, kinds)
    if wanted is not None and not entity_nodes:
        raise InputError(no_subject_of_class(origin or name, wanted))
    # One string per entity IRI, shared by its row and every relation pointing to it.
    iri_of: dict[object, str] = {node: str(node) for node in entity_nodes}
    entities = {entity.iri: entity for entity in build_entities(index, entity_nodes, iri_of)}
    log.info("%s: %d entities%s", name, len(entities), f" ({kinds.summary()})" if kinds is not None else "")
    return EntityTable(name=name, entities=entities, triple_count=len(graph), kinds=kinds)


def _warn_unknown_overrides(origin: str, kinds: EntityKinds) -> None:
    unknown = kinds_module.unknown_overrides(kinds)
    if unknown:
        log.warning("%s: no subject of class %s (named by --keep-class or --fold-class)", origin, ", ".join(unknown))


def no_subject_of_class(origin: str, wanted: Iterable[str]) -> str:
    return f"{origin}: no subject has rdf:type {', '.join(sorted(wanted))}"


def is_candidate(index: Index, node: object) -> bool:
    """Whether ``node`` may be an entity: an IRI subject that is typed, has a literal or a
    label of its own, or is referenced by no other subject (a root: what it links to is
    its description), and does not describe the vocabulary."""
    return (
        isinstance(node, URIRef)
        and (node in index.types or node in index.literals or node in index.labels or node not in index.referenced)
        and not index.is_schema(node)
    )


def tally_classes(index: Index) -> dict[str, ClassTally]:
    """Each class's instances among the candidate subjects of ``index``
    (:func:`is_candidate`), those with a label, and, in the classes mostly unnamed (only
    those can be folded: :func:`kgalign.io.kinds.decide`), those owned (referenced by at
    most MAX_OWNERS subjects, none of its own class). A referrer is a node of ``index``,
    or (a partition's index) the classes of a node another partition holds, as a tuple."""
    tallies: dict[str, ClassTally] = {}
    candidates = index.candidates = {}
    for node in index.subjects:
        if not is_candidate(index, node):
            continue
        keys = candidates[node] = index.keys_of(node)
        labelled = node in index.labels
        for key in keys:
            tally = tallies.get(key)
            if tally is None:
                tally = tallies[key] = ClassTally()
            tally.instances += 1
            tally.labelled += labelled
    unnamed = {key for key, tally in tallies.items() if tally.labelled < NAMED_SHARE * tally.instances}
    if not unnamed:
        return tallies
    asked = {node for node, keys in candidates.items() if unnamed.intersection(keys)}
    if index.referrer is None:
        index.find_referrers(asked)
    for node in asked:
        keys = candidates[node]
        refs = referrers_of(index, node)
        if refs and len(refs) <= MAX_OWNERS:
            own = set(keys)
            if not any(own.intersection(ref if isinstance(ref, tuple) else index.keys_of(ref)) for ref in refs):
                for key in keys:
                    tallies[key].owned += 1
    return tallies


def referrers_of(index: Index, node: object) -> list:
    """The distinct referrers ``index`` kept of ``node`` (up to MAX_OWNERS + 1 of them),
    in the order met. A partition's index holds, for a node of another partition, the
    classes of each of its referrers there (tuples), already distinct subjects."""
    refs = (index.referrer or {}).get(node)
    if not refs or len(refs) == 1 or isinstance(refs[0], tuple):
        return refs or []
    distinct: dict[str, object] = {}
    for ref in refs:
        distinct.setdefault(str(ref), ref)  # a str hashes in C, a term in Python
        if len(distinct) > MAX_OWNERS:
            break
    return list(distinct.values())


def find_entity_nodes(index: Index, wanted: set[str] | None, literal_free: bool, kinds: EntityKinds | None = None) -> list[URIRef]:
    """The subjects of ``index`` that are entities (see the module text); ``literal_free``:
    the whole graph has no literal (a partition of it may lack them alone); ``kinds``:
    the classes decided (:func:`kgalign.io.kinds.decide`), needed unless ``wanted`` or
    ``literal_free``."""
    entity_nodes: list[URIRef] = []
    for node in index.subjects:
        if not isinstance(node, URIRef):
            continue
        types = index.types.get(node, ())
        if wanted is not None:
            if wanted.intersection(types):
                entity_nodes.append(node)
        elif literal_free:
            if not _is_schema_node(types):
                entity_nodes.append(node)
        elif kinds is not None:
            keys = index.candidates.get(node) if index.candidates is not None else (index.keys_of(node) if is_candidate(index, node) else None)
            if keys is not None and kinds.is_entity(keys):
                entity_nodes.append(node)
    return entity_nodes


def build_entities(index: Index, entity_nodes: Iterable[URIRef], iri_of: dict[object, str]) -> list[Entity]:
    """The entities of ``entity_nodes``, in IRI order, their descriptions folded in from
    ``index``; ``iri_of``: every entity node a relation may point to, with its IRI."""
    entities = []
    for node in sorted(entity_nodes):
        entity = Entity(iri=iri_of[node], labels=list(index.labels.get(node, ())), types=list(index.types.get(node, ())))
        _fold(index, node, entity, prefix="", depth=FOLD_DEPTH, entity_iris=iri_of, seen={node})
        entities.append(entity)
    return entities


def _fold(
    index: Index,
    node: object,
    entity: Entity,
    prefix: str,
    depth: int,
    entity_iris: dict[object, str],
    seen: set,
) -> None:
    """Copy ``node``'s literals into ``entity`` and follow links to non-entity nodes.
    ``entity_iris`` maps each entity node to its IRI string. A folded path is interned:
    every entity with an address spells out the same ones."""
    for predicate, values in index.literals.get(node, {}).items():
        entity.attributes.setdefault(sys.intern(prefix + predicate) if prefix else predicate, []).extend(values)
    if prefix:
        # A folded node's own labels become attributes of the owner.
        labels = index.labels.get(node, ())
        if labels:
            entity.attributes.setdefault(sys.intern(prefix + RDFS_LABEL), []).extend(labels)
    for predicate, targets in index.links.get(node, {}).items():
        for target in targets:
            iri = entity_iris.get(target)
            if iri is not None:
                # A folded node's link to an entity is the owner's, under its path (a
                # person's address in a city: ``has_address / is_in_city``).
                if not prefix or iri != entity.iri:
                    entity.relations.setdefault(sys.intern(prefix + predicate) if prefix else predicate, []).append(iri)
                continue
            if depth <= 0:
                continue  # too deep: neither folded nor shown (what a partition never fetches)
            if isinstance(target, (URIRef, BNode)) and (target in index.literals or target in index.links or target in index.labels):
                if target not in seen:
                    seen.add(target)
                    _fold(index, target, entity, sys.intern(prefix + predicate + PATH_SEPARATOR), depth - 1, entity_iris, seen)
                    seen.discard(target)
                continue
            if isinstance(target, URIRef):
                # An IRI with nothing to fold (no subject here, or only typed): a value the
                # other graph may name alike. Not in the content hash, as an IRI's becoming an
                # entity must not change its referrers (Entity.outside stands for it there).
                if not prefix:
                    entity.link_outside(predicate, str(target))
                entity.attributes.setdefault(sys.intern(prefix + predicate) if prefix else predicate, []).append(index.iri_value(target))


def load_entities(
    path: str | Path,
    name: str | None = None,
    fmt: str | None = None,
    classes: Iterable[str] | None = None,
    *,
    id_column: str | None = None,
    keep: Iterable[str] = (),
    fold: Iterable[str] = (),
) -> tuple[TripleSet, EntityTable]:
    """Parse a file and build its entity table; fail clearly if there is nothing to align.

    ``id_column`` names the id column of a CSV/TSV input (default: its first column);
    it is ignored for RDF files (see :func:`kgalign.io.parsers.read_triples`). ``keep``
    and ``fold``: see :func:`build_entity_table`.
    """
    path = Path(path)
    graph = read_triples(path, fmt, id_column=id_column)
    table = build_entity_table(graph, name=name or str(path), classes=classes, origin=str(path), keep=keep, fold=fold)
    check_table(path, table)
    return graph, table


def check_table(path: Path, table: EntityTable) -> None:
    """Fail clearly if ``table`` (read from ``path``) has nothing to align; warn if its
    entities hold no literal."""
    if not table.entities:
        raise InputError(
            f"{path}: no entities found (no IRI subject is typed or has a literal, or every class hangs off one owner); "
            "choose the entities' type with --class or --keep-class"
        )
    if not any(entity.attributes or entity.labels for entity in table.entities.values()):
        log.warning("%s: no entity has a literal; only IRIs and relations can be compared", path)
