"""Read gold alignments and score links and candidate rankings against them.

Gold (and links) files may be the OAEI Alignment format (RDF/XML), owl:sameAs triples
in any RDF syntax, or two-column CSV/TSV (a ``#`` line is a comment; a header row whose
cells are not IRIs is skipped).
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Collection, Container, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rdflib import Graph, Namespace, URIRef
from rdflib.namespace import OWL

from kgalign.errors import InputError
from kgalign.io.formats import FORMAT_BY_SUFFIX, OUTPUT_MARKERS
from kgalign.io.parsers import load_graph
from kgalign.model import Candidates, Link

log = logging.getLogger(__name__)

ALIGN = Namespace("http://knowledgeweb.semanticweb.org/heterogeneity/alignment#")
ALIGN_NO_HASH = Namespace("http://knowledgeweb.semanticweb.org/heterogeneity/alignment")

Pair = tuple[str, str]
#: What a links or gold file may be, by its extension (optionally .gz).
LINK_FORMATS = (
    "give an OAEI alignment (.rdf, .xml), owl:sameAs triples in an RDF file (.ttl, .nt, ...) or a two-column .csv/.tsv/.txt file"
)


def read_pairs(path: str | Path) -> list[Pair]:
    """Pairs (left IRI, right IRI) from an alignment, sameAs or CSV/TSV file."""
    path = Path(path)
    name = path.name.lower().removesuffix(".gz")
    if path.is_dir() and all((path / marker).is_file() for marker in OUTPUT_MARKERS):
        raise InputError(f"{path}: a kgalign output folder, not a links file (give its links.ttl)")
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if name.endswith((".csv", ".tsv", ".txt")):
        return _read_table(path)
    if not path.is_dir() and Path(name).suffix.lower() not in FORMAT_BY_SUFFIX:  # a folder of RDF files is read whole
        raise InputError(f"{path}: cannot tell the format of the links from the extension; {LINK_FORMATS}")
    graph = load_graph(path)
    pairs = _alignment_cells(graph)
    if not pairs:
        pairs = sorted((str(s), str(o)) for s, o in graph.subject_objects(OWL.sameAs))
    if not pairs:
        raise InputError(f"{path}: no alignment cells and no owl:sameAs triples found")
    return pairs


def _alignment_cells(graph: Graph) -> list[Pair]:
    pairs = []
    for ns in (ALIGN, ALIGN_NO_HASH):
        for cell, e1 in graph.subject_objects(URIRef(str(ns) + "entity1")):
            e2 = graph.value(cell, URIRef(str(ns) + "entity2"))
            relation = graph.value(cell, URIRef(str(ns) + "relation"))
            if e2 is not None and (relation is None or str(relation).strip() in ("=", "")):
                pairs.append((str(e1), str(e2)))
    return sorted(set(pairs))


def _read_table(path: Path) -> list[Pair]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise InputError(f"{path}: no pairs found")
    delimiter = "\t" if "\t" in lines[0] else ","
    pairs = []
    for number, row in enumerate(csv.reader(io.StringIO("\n".join(lines)), delimiter=delimiter), start=1):
        if len(row) < 2:
            raise InputError(f"{path}:{number}: expected two columns, found {len(row)}")
        left, right = row[0].strip(), row[1].strip()
        if number == 1 and not _looks_like_id(left):
            continue  # header
        pairs.append((left, right))
    return pairs


def _looks_like_id(value: str) -> bool:
    return ":" in value or value.isdigit()


@dataclass
class LinkMetrics:
    precision: float
    recall: float
    f1: float
    true_positives: int
    predicted: int
    gold: int


def link_metrics(predicted: Iterable[Pair], gold: Iterable[Pair]) -> LinkMetrics:
    predicted_set, gold_set = set(predicted), set(gold)
    tp = len(predicted_set & gold_set)
    precision = tp / len(predicted_set) if predicted_set else 0.0
    recall = tp / len(gold_set) if gold_set else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return LinkMetrics(round(precision, 6), round(recall, 6), round(f1, 6), tp, len(predicted_set), len(gold_set))


def ranking_metrics(candidates: Sequence[Candidates], gold: Iterable[Pair]) -> dict[str, float]:
    """Hits@1, Hits@10 and MRR of retrieval over the gold source entities."""
    by_source = {c.source: c for c in candidates}
    gold_list = list(gold)
    if not gold_list:
        return {"hits@1": 0.0, "hits@10": 0.0, "mrr": 0.0}
    hits1 = hits10 = 0
    mrr = 0.0
    for left, right in gold_list:
        cands = by_source.get(left)
        rank = None
        if cands is not None:
            for item in cands.items:
                if item.iri == right:
                    rank = item.rank
                    break
        if rank is not None:
            hits1 += rank == 1
            hits10 += rank <= 10
            mrr += 1.0 / rank
    n = len(gold_list)
    return {"hits@1": round(hits1 / n, 6), "hits@10": round(hits10 / n, 6), "mrr": round(mrr / n, 6)}


def filter_gold(gold: Sequence[Pair], left: set[str], right: set[str], name: str = "gold") -> tuple[list[Pair], int]:
    """Keep gold pairs whose IRIs are both entities of the run; warn about the rest."""
    kept = [(a, b) for a, b in gold if a in left and b in right]
    missing = len(gold) - len(kept)
    if missing:
        log.warning(
            "%s: %d of %d pairs name IRIs that are not entities of the input graphs; scored as misses%s",
            name, missing, len(gold), unknown_hint(gold, left, right),
        )
    return kept, missing


def unknown_hint(pairs: Iterable[Sequence[str]], left: Container[str], right: Container[str]) -> str:
    """What to say of the pairs naming IRIs that are not entities: most of them name a right
    entity first and a left one second (the columns swapped), or else the first such IRI."""
    unknown = [(a, b) for a, b in pairs if a not in left or b not in right]
    if not unknown:
        return ""
    swapped = sum(1 for a, b in unknown if a in right and b in left)
    if 2 * swapped >= len(unknown):
        return f"; {swapped} of them name a RIGHT entity first and a LEFT entity second: are the two columns swapped?"
    a, b = unknown[0]
    return f"; the first: {a if a not in left else b}"


def evaluate_links(links: Sequence[Link], gold: Sequence[Pair]) -> LinkMetrics:
    return link_metrics(((link.left, link.right) for link in links), gold)


def score_alignment(
    links: Iterable[Pair],
    candidates: Sequence[Candidates],
    gold: Iterable[Pair],
    seed_links: Iterable[Sequence[str]] = (),
    entities: tuple[Collection[str], Collection[str]] | None = None,
    name: str = "gold",
) -> dict[str, Any]:
    """Precision, recall and F1 of ``links`` and Hits@1, Hits@10 and MRR of ``candidates``
    against ``gold``, as a run reports them (metrics.json).

    Seed links are known, not found: they and the gold pairs of their sources are left
    out of every figure. With ``entities`` (the left and the right entity IRIs of the
    run), the gold pairs that name other IRIs are counted in
    ``gold_pairs_not_in_graphs`` (and warned about; they are scored as misses).
    """
    seeds = {(a, b) for a, b in seed_links}
    seed_sources = {a for a, _ in seeds}
    gold = [pair for pair in gold if pair[0] not in seed_sources]
    missing = None
    if entities is not None:
        _, missing = filter_gold(gold, set(entities[0]), set(entities[1]), name)
    metrics: dict[str, Any] = asdict(link_metrics((pair for pair in links if pair not in seeds), gold))
    metrics.update(ranking_metrics(candidates, gold))
    if missing is not None:
        metrics["gold_pairs_not_in_graphs"] = missing
    return metrics
