"""Cut the small real excerpts of tests/data/doremus_mini and tests/data/uobm_mini.

    python tests/data/make_real_excerpts.py [--data ../shared/data]

DOREMUS 4-heterogeneities (PP-2.owl, BnF-2.owl): the first WORKS gold pairs of works,
each side with every triple of the nodes within three links of those works (both
directions, not through nodes of more than HUB triples), other works and the ontology left out; gold.tsv the pairs. UOBM small
(Abox1.nt, Abox2.nt): the subjects of the first PERSONS, COURSES and PUBLICATIONS gold
pairs of each kind, with all their triples; gold.tsv the pairs. Written as N-Triples,
sorted. The data are OAEI benchmark copies (see each folder's SOURCE.txt in ../shared/data).
"""

from __future__ import annotations

import argparse
import re
from collections import defaultdict
from pathlib import Path

from rdflib import BNode, URIRef

from kgalign.evaluation.metrics import read_pairs
from kgalign.io.parsers import read_triples

HERE = Path(__file__).resolve().parent
WORK = "http://data.doremus.org/ontology/Self_Contained_Expression"
RDF_TYPE = URIRef("http://www.w3.org/1999/02/22-rdf-syntax-ns#type")
WORKS = 12
#: Nodes with more triples than this are not walked through (they hold every work).
HUB = 30


def nt(term) -> str:
    return term.n3()


def neighbourhood(triples, seeds: set, depth: int, stop: set) -> list:
    by_node = defaultdict(list)
    for s, p, o in triples:
        by_node[s].append((s, p, o))
        if not isinstance(o, (URIRef, BNode)) or p == RDF_TYPE:
            continue
        by_node[o].append((s, p, o))
    seen, frontier = set(seeds), set(seeds)
    for _ in range(depth):
        following = set()
        for node in frontier:
            if len(by_node[node]) > HUB and node not in seeds:
                continue  # a node most works point to (an institution, an agency): not walked through
            for s, _, o in by_node[node]:
                for other in (s, o):
                    if isinstance(other, (URIRef, BNode)) and other not in seen and other not in stop:
                        following.add(other)
        seen |= following
        frontier = following
    return sorted({t for node in seen for t in by_node[node] if t[0] in seen and (not isinstance(t[2], (URIRef, BNode)) or t[1] == RDF_TYPE or t[2] in seen or t[2] not in stop)}, key=lambda t: tuple(map(nt, t)))


def write(path: Path, triples) -> None:
    path.write_text("".join(f"{nt(s)} {nt(p)} {nt(o)} .\n" for s, p, o in triples), encoding="utf-8")


def doremus(data: Path) -> None:
    folder = data / "oaei_doremus_4het"
    gold = read_pairs(folder / "refalign.rdf")[:WORKS]
    out = HERE / "doremus_mini"
    for name, side, file in (("left.nt", 0, "PP-2.owl"), ("right.nt", 1, "BnF-2.owl")):
        triples = list(read_triples(folder / file, None))
        works = {s for s, p, o in triples if p == RDF_TYPE and str(o) == WORK}
        chosen = {URIRef(pair[side]) for pair in gold}
        write(out / name, neighbourhood(triples, chosen, 3, works - chosen))
    (out / "gold.tsv").write_text("".join(f"{a}\t{b}\n" for a, b in gold), encoding="utf-8")


def uobm(data: Path) -> None:
    folder = data / "oaei_uobm_small"
    gold = read_pairs(folder / "refalign.rdf")
    kinds = {"person": 24, "Course": 8, "Publication": 8}
    taken = []
    for kind, count in kinds.items():
        found = [pair for pair in gold if (re.search(r"/(Course|Publication)\d+$", pair[0]) is None if kind == "person" else re.search(rf"/{kind}\d+$", pair[0]))]
        taken += found[:count]
    out = HERE / "uobm_mini"
    for name, side, file in (("left.nt", 0, "Abox1.nt"), ("right.nt", 1, "Abox2.nt")):
        wanted = {URIRef(pair[side]) for pair in taken}
        triples = sorted((t for t in read_triples(folder / file, None) if t[0] in wanted), key=lambda t: tuple(map(nt, t)))
        write(out / name, triples)
    (out / "gold.tsv").write_text("".join(f"{a}\t{b}\n" for a, b in taken), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=HERE.parent.parent.parent / "shared" / "data")
    args = parser.parse_args()
    doremus(args.data)
    uobm(args.data)


if __name__ == "__main__":
    main()
