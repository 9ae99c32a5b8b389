"""Convert the DBP15K / SRPRS id-file layout into two Turtle graphs and gold TSV files.

The layout (as published with DBP15K, SRPRS and the OpenEA-style forks):

- ``ent_ids_1``, ``ent_ids_2``: ``id <TAB> IRI``, one entity a line, one file per graph;
- ``triples_1``, ``triples_2``: ``head <TAB> relation <TAB> tail``, all ids;
- ``rel_ids_1``, ``rel_ids_2`` (optional): ``id <TAB> IRI`` of the relations. DBP15K
  ships none: its relation ids become ``urn:kgalign:relation:<id>``;
- ``ref_ent_ids``: gold pairs ``id1 <TAB> id2``; ``sup_ent_ids`` (optional) the seed pairs;
- ``translated_names.json`` (optional): ``[[id, [token, ...]], ...]``, an English name
  for every entity (machine-translated on the non-English side), written as
  ``rdfs:label "..."@en``. An entity without a name gets its IRI's local name
  (underscores as spaces, no language tag) so that every entity has a label.

Gold splits follow the published protocols: with ``sup_ent_ids`` (SRPRS) the seed pairs
are ``gold_train.tsv`` and ``ref_ent_ids`` is ``gold_test.tsv``; without it (DBP15K)
the first 30% of ``ref_ent_ids`` are the training pairs and the remaining 70% the test
pairs. ``gold.tsv`` holds every pair. Lines may end in CRLF.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

from kgalign.errors import InputError
from kgalign.io.atomic import atomic_open
from kgalign.io.importers.common import ConversionReport, check_outdir, write_pairs, writing
from kgalign.io.importers.terms import RDFS_LABEL, escape_iri, iri_term, literal_term, mint_iri, write_prefixes, write_subject
from kgalign.runtime.progress import progress_bar

log = logging.getLogger(__name__)

NAMES_FILE = "translated_names.json"
NAMES_LANG = "en"
DEFAULT_TRAIN_SHARE = 0.3
#: The files :func:`convert_dbp15k` writes into its output folder.
OUTPUTS = ("left.ttl", "right.ttl", "gold_train.tsv", "gold_test.tsv", "gold.tsv")


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text without line ending) of every non-blank line."""
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            for number, line in enumerate(handle, start=1):
                line = line.rstrip("\r\n")
                if line.strip():
                    yield number, line
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None


def _int(path: Path, number: int, text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise InputError(f"{path}:{number}: {what} {text.strip()!r} is not an integer id") from None


def read_id_file(path: Path) -> dict[int, str]:
    """``id <TAB> IRI`` lines as {id: IRI}; a malformed line or repeated id is an error."""
    ids: dict[int, str] = {}
    for number, line in _lines(path):
        fields = line.split("\t")
        if len(fields) != 2 or not fields[1].strip():
            raise InputError(f"{path}:{number}: expected 'id<TAB>IRI', found {len(fields)} tab-separated field(s)")
        key = _int(path, number, fields[0], "id")
        if key in ids:
            raise InputError(f"{path}:{number}: id {key} is listed twice")
        ids[key] = fields[1].strip()
    if not ids:
        raise InputError(f"{path}: no ids found")
    return ids


def read_int_rows(path: Path, width: int) -> list[tuple[int, tuple[int, ...]]]:
    """(line number, ids) of every line of ``width`` tab- or space-separated integers."""
    rows = []
    for number, line in _lines(path):
        fields = line.split("\t") if "\t" in line else line.split()
        if len(fields) != width:
            raise InputError(f"{path}:{number}: expected {width} tab-separated ids, found {len(fields)}")
        rows.append((number, tuple(_int(path, number, f, "field") for f in fields)))
    return rows


def read_names(path: Path) -> dict[int, str]:
    """``translated_names.json`` as {id: name}, the tokens joined by spaces."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not isinstance(data, list):
        raise InputError(f"{path}: expected a JSON list of [id, [tokens]] entries")
    names: dict[int, str] = {}
    for index, entry in enumerate(data):
        if (
            not isinstance(entry, list)
            or len(entry) != 2
            or not isinstance(entry[0], int)
            or not isinstance(entry[1], list)
            or not all(isinstance(token, str) for token in entry[1])
        ):
            raise InputError(f"{path}: entry {index} is not [id, [tokens]]: {json.dumps(entry)[:80]}")
        names[entry[0]] = " ".join(token.strip() for token in entry[1] if token.strip())
    return names


def fallback_name(iri: str) -> str:
    """A readable name from an IRI: its last path segment, unquoted, underscores as spaces."""
    tail = iri.rstrip("/").rsplit("/", 1)[-1].rsplit("#", 1)[-1]
    return unquote(tail).replace("_", " ").strip() or iri


def _check_pairs(path: Path, rows: list[tuple[int, tuple[int, ...]]], left: dict[int, str], right: dict[int, str]) -> list[tuple[str, str]]:
    pairs = []
    for number, (a, b) in rows:
        if a not in left:
            raise InputError(f"{path}:{number}: id {a} is not in ent_ids_1 (pairs are 'id1<TAB>id2')")
        if b not in right:
            raise InputError(f"{path}:{number}: id {b} is not in ent_ids_2 (pairs are 'id1<TAB>id2')")
        pairs.append((escape_iri(left[a]), escape_iri(right[b])))
    return pairs


def _relation_iris(path: Path | None, rows: list[tuple[int, tuple[int, ...]]]) -> dict[int, str]:
    if path is not None:
        return read_id_file(path)
    return {rel: mint_iri("relation", str(rel)) for rel in sorted({row[1] for _, row in rows})}


def graph_edges(
    entities: dict[int, str],
    triples: list[tuple[int, tuple[int, ...]]],
    triples_path: Path,
    relations: dict[int, str],
    relations_path: Path | None,
    side: str,
) -> dict[int, dict[str, list[str]]]:
    """Each head's outgoing edges (predicate term -> object terms), every id checked:
    a triple naming an unknown entity or relation is an error naming its line."""
    terms = {key: iri_term(iri) for key, iri in entities.items()}
    relation_terms = {key: iri_term(iri) for key, iri in relations.items()}
    outgoing: dict[int, dict[str, list[str]]] = {}
    with progress_bar(f"read triples_{side}", len(triples)) as advance:
        for index, (number, (head, rel, tail)) in enumerate(triples, start=1):
            for key in (head, tail):
                if key not in terms:
                    raise InputError(f"{triples_path}:{number}: entity id {key} is not in ent_ids_{side}")
            predicate = relation_terms.get(rel)
            if predicate is None:
                raise InputError(f"{triples_path}:{number}: relation id {rel} is not in {relations_path}")
            outgoing.setdefault(head, {}).setdefault(predicate, []).append(terms[tail])
            if index % 10000 == 0:
                advance(10000)
        advance(len(triples) % 10000)
    return outgoing


def write_graph_file(
    out: Path,
    source: str,
    entities: dict[int, str],
    outgoing: dict[int, dict[str, list[str]]],
    relation_count: int,
    names: dict[int, str] | None,
    side: str,
) -> dict[str, int]:
    """Write one graph (its edges checked by :func:`graph_edges`) as Turtle, grouped by subject; returns counts."""
    terms = {key: iri_term(iri) for key, iri in entities.items()}
    label = iri_term(RDFS_LABEL)
    fallbacks = written = 0
    with atomic_open(out) as handle, progress_bar(f"write {out.name}", len(entities)) as advance:
        write_prefixes(handle, [], comment=f"Converted by kgalign from {source} (graph {side}).")
        for index, (key, subject) in enumerate(terms.items(), start=1):
            name = names.get(key, "") if names is not None else ""
            if name:
                pairs = [(label, literal_term(name, NAMES_LANG))]
            else:
                fallbacks += 1
                pairs = [(label, literal_term(fallback_name(entities[key])))]
            for predicate, objects in outgoing.get(key, {}).items():
                pairs.extend((predicate, obj) for obj in objects)
            written += write_subject(handle, subject, pairs)
            if index % 5000 == 0:
                advance(5000)
        advance(len(terms) % 5000)
    if fallbacks:
        log.warning("%s: %d entities have no translated name; labelled with their IRI's local name", out.name, fallbacks)
    log.info("wrote %s: %d entities, %d triples", out, len(entities), written)
    return {"entities": len(entities), "triples": written, "relations": relation_count}


def convert_dbp15k(indir: str | Path, outdir: str | Path, train_share: float = DEFAULT_TRAIN_SHARE) -> ConversionReport:
    """Convert one DBP15K/SRPRS folder into ``left.ttl``, ``right.ttl`` and gold TSV files in ``outdir``."""
    indir = Path(indir)
    if not indir.is_dir():
        raise InputError(f"{indir}: not a directory (expected a DBP15K/SRPRS folder with ent_ids_1, triples_1, ...)")
    if not 0.0 <= train_share < 1.0:
        raise InputError(f"train share {train_share} must be in [0, 1)")
    for required in ("ent_ids_1", "ent_ids_2", "triples_1", "triples_2", "ref_ent_ids"):
        if not (indir / required).is_file():
            raise InputError(f"{indir / required}: no such file (a DBP15K/SRPRS folder has ent_ids_1/2, triples_1/2, ref_ent_ids)")
    outdir = check_outdir(outdir)
    report = ConversionReport(outdir=outdir)

    # Every input is read and checked before anything is written.
    entities = {side: read_id_file(indir / f"ent_ids_{side}") for side in ("1", "2")}
    shared = entities["1"].keys() & entities["2"].keys()
    if shared:
        raise InputError(f"{indir / 'ent_ids_2'}: ids also used in ent_ids_1 (e.g. {min(shared)}); the two graphs must not share ids")
    names_path = indir / NAMES_FILE
    names = read_names(names_path) if names_path.is_file() else None
    if names is None:
        log.warning("%s: not found; entities are labelled with their IRI's local name", names_path)
    graphs = {}
    for side in ("1", "2"):
        triples_path = indir / f"triples_{side}"
        triples = read_int_rows(triples_path, 3)
        rel_path = indir / f"rel_ids_{side}"
        relations_path = rel_path if rel_path.is_file() else None
        relations = _relation_iris(relations_path, triples)
        edges = graph_edges(entities[side], triples, triples_path, relations, relations_path, side)
        graphs[side] = (edges, len({rel for _, (_, rel, _) in triples}))

    ref_path = indir / "ref_ent_ids"
    ref = _check_pairs(ref_path, read_int_rows(ref_path, 2), entities["1"], entities["2"])
    sup_path = indir / "sup_ent_ids"
    if sup_path.is_file():
        train = _check_pairs(sup_path, read_int_rows(sup_path, 2), entities["1"], entities["2"])
        test = ref
        log.info("gold: %s is the training split, %s the test split", sup_path.name, ref_path.name)
    else:
        cut = round(len(ref) * train_share)
        train, test = ref[:cut], ref[cut:]
        log.info("gold: first %d of %d pairs of %s are the training split, the rest the test split", cut, len(ref), ref_path.name)

    with writing(outdir, OUTPUTS, report):
        for side, out_name in (("1", "left.ttl"), ("2", "right.ttl")):
            edges, relation_count = graphs[side]
            counts = write_graph_file(outdir / out_name, indir.name, entities[side], edges, relation_count, names, side)
            report.files[out_name] = outdir / out_name
            which = "left" if side == "1" else "right"
            report.counts.update({f"{which}_{key}": value for key, value in counts.items()})
        for name, pairs in (("gold_train.tsv", train), ("gold_test.tsv", test), ("gold.tsv", train + test)):
            report.files[name] = outdir / name
            report.counts[name.removesuffix(".tsv") + "_pairs"] = write_pairs(outdir / name, pairs)
    return report
