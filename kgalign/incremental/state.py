"""Each entity's content hash, saved beside a run's outputs so that a later run can tell
what was added, removed or changed (``OUTDIR/entities.json.gz``)."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

from kgalign.errors import KgalignError
from kgalign.io.atomic import atomic_open
from kgalign.io.entities import IRI_VALUE
from kgalign.model import Entity, EntityTable

STATE_FILE = "entities.json.gz"
#: 2: a link counts by the IRI it points to, whether that is an entity or not (1: links
#: to entities only, so an entity whose neighbour was added or removed was "changed").
STATE_VERSION = 2


def entity_hash(entity: Entity) -> str:
    """A hash of what an entity's own triples say: labels, types, attributes (folded
    nodes included), and the IRIs it links to, whether those are entities of the graph
    or not (order-free). So an entity is changed when its own description is, not when an
    entity it links to is added or removed (that shows in its prompt, not in its data)."""

    def values(items) -> list:
        return sorted([v.text, v.lang or "", v.datatype or ""] for v in items)

    payload = [
        values(entity.labels),
        sorted(entity.types),
        # IRI values stand for links, which links_digest holds whether their IRIs are entities or not.
        sorted([path, values(own)] for path, items in entity.attributes.items() if (own := [v for v in items if v.datatype != IRI_VALUE])),
        format(entity.links_digest(), "016x"),
    ]
    return hashlib.sha1(json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")).hexdigest()[:20]


#: What a table whose contents were let go holds for each of its IRIs (one shared
#: object: never edited).
RELEASED = Entity(iri="")


def table_hashes(table: EntityTable) -> dict[str, str]:
    if table.hashes is not None:
        return table.hashes
    return {iri: entity_hash(entity) for iri, entity in table.entities.items()}


def release_contents(table: EntityTable) -> None:
    """Keep each entity's IRI and content hash, and let its labels, attributes and
    relations go: what a run needs of a table once its candidates are being retrieved
    (the IRIs for the counts, the scores and ``--since``; the hashes for the entity
    state). The driver of ``--engine ray`` does this to hold less while it searches;
    every entity then maps to :data:`RELEASED`."""
    table.hashes = table_hashes(table)
    table.entities = dict.fromkeys(table.entities, RELEASED)


def write_state(path: Path, left: dict[str, str], right: dict[str, str]) -> None:
    """The entity hashes of both sides, gzipped JSON, written atomically."""
    data = json.dumps({"version": STATE_VERSION, "left": left, "right": right}, separators=(",", ":"), sort_keys=True).encode("utf-8")
    with atomic_open(path, "wb", encoding=None) as handle:
        handle.write(gzip.compress(data, compresslevel=6, mtime=0))


def read_state(path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """The (left, right) entity hashes of a run folder's state file; one-line errors."""
    try:
        data = json.loads(gzip.decompress(path.read_bytes()))
    except FileNotFoundError:
        raise KgalignError(f"{path}: missing; the folder was written by an older kgalign or is not a run's output (run it again without --since)") from None
    except (OSError, EOFError, ValueError) as exc:
        raise KgalignError(f"{path}: not a readable entity state ({exc})") from None
    version = data.get("version") if isinstance(data, dict) else None
    if isinstance(version, int) and 0 < version < STATE_VERSION:
        raise KgalignError(f"{path}: written by an earlier kgalign (entity state version {version}, this one reads {STATE_VERSION}); run the earlier inputs again without --since")
    if not isinstance(data, dict) or version != STATE_VERSION or not all(isinstance(data.get(side), dict) for side in ("left", "right")):
        raise KgalignError(f"{path}: not an entity state of this kgalign (version {version if version is not None else '?'})")
    return data["left"], data["right"]
