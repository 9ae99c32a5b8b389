"""Build development data with known one-to-many and duplicate structure from OAEI 2010 Person1.

    python -m bench.make_cardinality [--data ../shared/data] [--out DIR] [--seed 0] [--max-copies 4]

Person1's two graphs describe the same 500 persons once each (1:1). This script keeps
the left graph (person11.nt) as it is and writes a right graph in which each person of
person12.nt appears one to ``--max-copies`` times: the original record and noisy copies
(new IRIs ``...-copyN``), each copy changed as duplicate records are in practice:

- typos: in one or two of its literal values, a character dropped, doubled, replaced or
  two neighbours swapped;
- a blanked field: one attribute left out (not the name);
- swapped name fields: given name and surname exchanged (one copy in four).

A copy points to the original's address node (addresses are not duplicated). Written:

- ``one-to-many/left.nt``, ``one-to-many/right.nt``, ``one-to-many/gold.tsv``: every left
  person linked to each record of it on the right (run it in either order: right first
  is the many-to-one case);
- ``many-to-many/``: the same, with copies made of the left persons too (another draw of
  the noise): each record of a person on the left linked to each of it on the right;
- ``duplicates/persons.nt``, ``duplicates/gold.tsv``: the right graph alone, with the pairs
  of records of one person (the within-graph duplicate set);
- ``namesakes/``: one-to-one, with look-alikes that are not the same person: Person1's
  right graph plus, for half of its persons, a relative of the same name at the same
  address with the same phone (IRI ``...-namesake``) and their own age, date of birth
  and social security number. Lexically each such person has two strong, mutually
  consistent counterparts; the gold links only the original (the pair on which a
  judge's answers must revise the cardinality retrieval finds);
- ``SUMMARY.json``: counts, seed, and how many copies of each kind.

Only literals of persons are changed; the noise is seeded, so the same seed gives the
same files.
"""

from __future__ import annotations

import argparse
import json
import random
from collections import defaultdict
from itertools import combinations
from pathlib import Path

from rdflib import Graph, Literal, URIRef
from rdflib.namespace import RDF

ROOT = Path(__file__).resolve().parent.parent
PERSON1 = URIRef("http://www.okkam.org/ontology_person1.owl#Person")
PERSON2 = URIRef("http://www.okkam.org/ontology_person2.owl#Person")
NAME_FIELDS = ("given_name", "surname")
LETTERS = "abcdefghijklmnopqrstuvwxyz"


def typo(text: str, rng: random.Random) -> str:
    """``text`` with one edit: a character dropped, doubled, replaced, or two neighbours swapped."""
    if len(text) < 2:
        return text + rng.choice(LETTERS)
    i = rng.randrange(len(text) - 1)
    kind = rng.choice(("drop", "double", "replace", "swap"))
    if kind == "drop":
        return text[:i] + text[i + 1 :]
    if kind == "double":
        return text[: i + 1] + text[i] + text[i + 1 :]
    if kind == "replace":
        pool = "0123456789" if text[i].isdigit() else LETTERS
        return text[:i] + rng.choice(pool.replace(text[i], "") or pool) + text[i + 1 :]
    return text[:i] + text[i + 1] + text[i] + text[i + 2 :]


def noisy_copy(values: dict[URIRef, list[Literal]], rng: random.Random, counts: dict[str, int]) -> dict[URIRef, list[Literal]]:
    """A changed copy of one person's literal attributes (see the module text)."""
    copy = {p: list(v) for p, v in values.items()}
    names = {str(p).rsplit("#", 1)[-1]: p for p in copy}
    filled = [p for p, v in copy.items() if any(str(x) for x in v)]
    for predicate in rng.sample(filled, k=min(len(filled), rng.choice((1, 2)))):
        copy[predicate] = [Literal(typo(str(v), rng), lang=v.language, datatype=v.datatype) if str(v) else v for v in copy[predicate]]
        counts["typos"] += 1
    blankable = [p for p in filled if str(p).rsplit("#", 1)[-1] not in NAME_FIELDS]
    if blankable and rng.random() < 0.5:
        del copy[rng.choice(blankable)]
        counts["blanked"] += 1
    given, surname = (names.get(field) for field in NAME_FIELDS)
    if given is not None and surname is not None and rng.random() < 0.25:
        copy[given], copy[surname] = copy[surname], copy[given]
        counts["swapped_names"] += 1
    return copy


def add_copies(graph: Graph, person: URIRef, rng: random.Random, max_copies: int, counts: dict[str, int]) -> tuple[Graph, dict[str, list[str]]]:
    """``graph`` plus zero to ``max_copies - 1`` noisy copies of each subject of type ``person``;
    with, per original IRI, the IRIs of all its records (the original first)."""
    written = Graph()
    for triple in graph:
        written.add(triple)
    records: dict[str, list[str]] = {}
    for subject in sorted(set(graph.subjects(RDF.type, person)), key=str):
        literals: dict[URIRef, list[Literal]] = defaultdict(list)
        links = []
        for p, o in graph.predicate_objects(subject):
            if isinstance(o, Literal):
                literals[p].append(o)
            elif p != RDF.type:
                links.append((p, o))
        names = [str(subject)]
        for n in range(2, rng.randint(1, max_copies) + 1):
            iri = URIRef(f"{subject}-copy{n}")
            written.add((iri, RDF.type, person))
            for p, o in links:
                written.add((iri, p, o))
            for p, values in noisy_copy(literals, rng, counts).items():
                for value in values:
                    written.add((iri, p, value))
            names.append(str(iri))
            counts["copies"] += 1
        records[str(subject)] = names
    return written, records


def add_namesakes(graph: Graph, person: URIRef, rng: random.Random, share: float) -> tuple[Graph, int]:
    """``graph`` plus, for ``share`` of its subjects of type ``person``, a namesake: the same
    literals and links except a new age, date of birth and social security number."""
    written = Graph()
    for triple in graph:
        written.add(triple)
    made = 0
    for subject in sorted(set(graph.subjects(RDF.type, person)), key=str):
        if rng.random() >= share:
            continue
        iri = URIRef(f"{subject}-namesake")
        made += 1
        for p, o in graph.predicate_objects(subject):
            field = str(p).rsplit("#", 1)[-1]
            if field == "age":
                o = Literal(str(rng.randint(18, 90)))
            elif field == "date_of_birth":
                o = Literal(f"{rng.randint(1920, 2005)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}")
            elif field == "soc_sec_id":
                o = Literal(str(rng.randint(1_000_000, 9_999_999)))
            written.add((iri, p, o))
    return written, made


def write_sorted(graph: Graph, path: Path) -> None:
    """``graph`` as N-Triples, lines sorted (the same file in every process, unlike rdflib's set order)."""
    lines = sorted(line for line in graph.serialize(format="nt", encoding="utf-8").decode("utf-8").splitlines() if line.strip())
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def build(data: Path, out: Path, seed: int, max_copies: int) -> dict:
    from kgalign.evaluation.metrics import read_pairs

    folder = data / "oaei2010_persons1"
    left_file, right_file = folder / "person11.nt", folder / "person12.nt"
    gold = read_pairs(folder / "dataset11_dataset12_goldstandard_person.xml")
    rng = random.Random(seed)
    counts: dict[str, int] = defaultdict(int)
    written, records = add_copies(Graph().parse(right_file, format="nt"), PERSON2, rng, max_copies, counts)

    left_written, left_records = add_copies(Graph().parse(left_file, format="nt"), PERSON1, rng, max_copies, defaultdict(int))

    one_to_many = out / "one-to-many"
    many_to_many = out / "many-to-many"
    duplicates = out / "duplicates"
    for folder_out in (one_to_many, many_to_many, duplicates):
        folder_out.mkdir(parents=True, exist_ok=True)
    write_sorted(left_written, many_to_many / "left.nt")
    write_sorted(written, many_to_many / "right.nt")
    cross = sorted((a, b) for x, y in gold for a in left_records.get(x, [x]) for b in records.get(y, [y]))
    (many_to_many / "gold.tsv").write_text("".join(f"{a}\t{b}\n" for a, b in cross))
    (one_to_many / "left.nt").write_bytes(left_file.read_bytes())
    for path in (one_to_many / "right.nt", duplicates / "persons.nt"):
        write_sorted(written, path)
    pairs = [(a, r) for a, b in gold for r in records.get(b, [b])]
    (one_to_many / "gold.tsv").write_text("".join(f"{a}\t{b}\n" for a, b in sorted(pairs)))
    namesakes = out / "namesakes"
    namesakes.mkdir(parents=True, exist_ok=True)
    namesake_graph, namesake_count = add_namesakes(Graph().parse(right_file, format="nt"), PERSON2, random.Random(seed), 0.5)
    (namesakes / "left.nt").write_bytes(left_file.read_bytes())
    write_sorted(namesake_graph, namesakes / "right.nt")
    (namesakes / "gold.tsv").write_text("".join(f"{a}\t{b}\n" for a, b in sorted(gold)))
    duplicate_pairs = sorted((a, b) for names in records.values() for a, b in combinations(sorted(names), 2))
    (duplicates / "gold.tsv").write_text("".join(f"{a}\t{b}\n" for a, b in duplicate_pairs))
    sizes: dict[int, int] = defaultdict(int)
    for names in records.values():
        sizes[len(names)] += 1
    summary = {
        "seed": seed,
        "max_copies": max_copies,
        "left_persons": len({a for a, _ in gold}),
        "right_records": sum(len(v) for v in records.values()),
        "records_per_person": dict(sorted(sizes.items())),
        "gold_links": len(pairs),
        "many_to_many_left_records": sum(len(v) for v in left_records.values()),
        "many_to_many_gold_links": len(cross),
        "duplicate_pairs": len(duplicate_pairs),
        "namesakes": namesake_count,
        "changes": dict(counts),
    }
    (out / "SUMMARY.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="Folder of the public benchmarks (default: ../shared/data).")
    parser.add_argument("--out", type=Path, default=Path("/tmp/kgalign-cardinality"), help="Output folder (default: /tmp/kgalign-cardinality).")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the noise (default: 0).")
    parser.add_argument("--max-copies", type=int, default=4, help="Most records of one person on the right (default: 4).")
    args = parser.parse_args(argv)
    print(json.dumps(build(args.data, args.out, args.seed, args.max_copies), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
