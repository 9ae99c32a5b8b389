"""Build an open-world development pair: most left records have no counterpart, and
each of those has same-brand, same-line look-alikes on the right.

    python -m bench.make_open_world [--source abt-buy|wdc] [--seed 0] [--data ../shared/data] OUTDIR

``--source abt-buy`` (the default) from the Leipzig Abt-Buy tables and their
one-to-one mapping, a small catalogue against a large one: the Abt records are grouped
by product line (the first two words of the name: "sony bravia", "canon powershot").
In every line of two or more records, one (chosen by the seed) loses its Buy
counterpart: a left record without a counterpart, whose line's other products are on
the right. Of all the other records, one in three is a left record with its
counterpart on the right, two in three are on the right only (products the small
catalogue does not list). Writes left.csv, right.csv (the tables' own columns), gold.tsv.

``--source wdc`` from the WDC product pair files (``--categories``, ``--split``,
never the test file). From each category's labelled pairs of the split (``train`` or ``valid``: never the
test file), every distinct left offer and every distinct right offer (by title):

- the positive pairs, taken greedily in file order so that each offer is in at most
  one (a one-to-one gold; WDC clusters hold several offers of a product);
- (an offer that is a left offer in one pair and a right one in another is left out,
  with its pairs: it would be its own match)
- left: the offers of those pairs, and every left offer that is in no positive pair
  at all and whose title does not occur on the right (its pairs are all negatives:
  look-alikes of it are on the right, its own product is not);
- right: every right offer (the matched ones and all the negatives).

Writes OUTDIR/left.csv and OUTDIR/right.csv (``id,title``), OUTDIR/gold.tsv, and
OUTDIR/README.md with the counts. Offers a positive pair left out of the gold (the
second offer of a cluster) stay out of both sides, so that no unlabelled match is
scored as an error.
"""

from __future__ import annotations

import argparse
import csv
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_VALUE = re.compile(r"COL title VAL\s*(.*)$", re.S)


def title(offer: str) -> str:
    found = _VALUE.match(offer.strip())
    return " ".join((found.group(1) if found else offer).split())


def read_pairs(path: Path) -> list[tuple[str, str, int]]:
    pairs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split("\t")
        if len(parts) == 3:
            pairs.append((title(parts[0]), title(parts[1]), int(parts[2])))
    return pairs


def build(pairs: list[tuple[str, str, int]]) -> tuple[list[str], list[str], list[tuple[str, str]]]:
    """Left titles, right titles and the gold pairs (see the module text)."""
    # An offer of both sides (left in one pair, right in another) would be its own match.
    both = {a for a, _, _ in pairs} & {b for _, b, _ in pairs}
    pairs = [(a, b, label) for a, b, label in pairs if a not in both and b not in both]
    positive_left = {a for a, _, label in pairs if label}
    positive_right = {b for _, b, label in pairs if label}
    used_left: set[str] = set()
    used_right: set[str] = set()
    gold = []
    for a, b, label in pairs:
        if label and a not in used_left and b not in used_right:
            used_left.add(a)
            used_right.add(b)
            gold.append((a, b))
    rights = {b for _, b, _ in pairs if b not in positive_right or b in used_right}
    alone = sorted({a for a, _, _ in pairs if a not in positive_left and a not in rights})
    lefts = sorted(used_left) + alone
    return lefts, sorted(rights), gold


def write(outdir: Path, lefts: list[str], rights: list[str], gold: list[tuple[str, str]], note: str) -> None:
    outdir.mkdir(parents=True, exist_ok=True)
    ids = {}
    for side, titles in (("left", lefts), ("right", rights)):
        with open(outdir / f"{side}.csv", "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["id", "title"])
            for i, text in enumerate(titles):
                key = f"{side[0]}{i}"
                ids[(side, text)] = key
                writer.writerow([key, text])
    with open(outdir / "gold.tsv", "w", encoding="utf-8") as handle:
        for a, b in gold:
            # The IRIs kgalign gives the rows of a table (urn:kgalign:table:<file stem>:<id>).
            handle.write(f"urn:kgalign:table:left:{ids[('left', a)]}\turn:kgalign:table:right:{ids[('right', b)]}\n")
    (outdir / "README.md").write_text(note, encoding="utf-8")


def read_table(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("cp1252", errors="replace")
    reader = csv.DictReader(text.splitlines())
    return list(reader.fieldnames or []), list(reader)


def line_of(name: str) -> str:
    """A product's line: the first two words of its name, lower-cased."""
    return " ".join(re.findall(r"\w+", name.lower())[:2])


def build_abt_buy(data: Path, outdir: Path, seed: int, brands: int = 0) -> str:
    import random

    folder = data / "leipzig_abt-buy"
    abt_fields, abt = read_table(folder / "Abt.csv")
    buy_fields, buy = read_table(folder / "Buy.csv")
    _, mapping = read_table(folder / "abt_buy_perfectMapping.csv")
    counterpart: dict[str, str] = {}
    taken: set[str] = set()
    for row in mapping:  # one-to-one: the first pair of each record
        a, b = row["idAbt"], row["idBuy"]
        if a not in counterpart and b not in taken:
            counterpart[a] = b
            taken.add(b)
    records = [row for row in abt if row["id"] in counterpart]
    if brands:
        # The records of the most frequent brands only (a small pair, for the tests).
        counts: dict[str, int] = {}
        for row in records:
            counts[line_of(row["name"]).split(" ")[0]] = counts.get(line_of(row["name"]).split(" ")[0], 0) + 1
        kept = set(sorted(counts, key=lambda b: (-counts[b], b))[:brands])
        records = [row for row in records if line_of(row["name"]).split(" ")[0] in kept]
    lines: dict[str, list[dict[str, str]]] = {}
    for row in records:
        lines.setdefault(line_of(row["name"]), []).append(row)
    rng = random.Random(seed)
    alone, matched, right_only = [], [], []
    rest: list[dict[str, str]] = []
    for key in sorted(lines):
        group = sorted(lines[key], key=lambda row: row["id"])
        rng.shuffle(group)
        if len(group) > 1:
            alone.append(group[0])  # its line-mates are on the right
            group = group[1:]
        rest += group
    for i, row in enumerate(rest):
        (matched if i % 3 == 0 else right_only).append(row)
    left_rows = sorted(matched + alone, key=lambda row: row["id"])
    right_ids = {counterpart[row["id"]] for row in matched + right_only}
    right_rows = [row for row in buy if row["id"] in right_ids]
    outdir.mkdir(parents=True, exist_ok=True)
    for name, fields, rows in (("left.csv", abt_fields, left_rows), ("right.csv", buy_fields, right_rows)):
        with open(outdir / name, "w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)
    with open(outdir / "gold.tsv", "w", encoding="utf-8") as handle:
        for row in sorted(matched, key=lambda row: row["id"]):
            handle.write(f"urn:kgalign:table:left:{row['id']}\turn:kgalign:table:right:{counterpart[row['id']]}\n")
    note = (
        f"# Open-world pair from Leipzig Abt-Buy (seed {seed})\n\n"
        f"Built by `python -m bench.make_open_world --source abt-buy --seed {seed}{f' --brands {brands}' if brands else ''}`.\n\n"
        f"- left: {len(left_rows):,} Abt records, {len(matched):,} with a counterpart, {len(alone):,} without (each with a same-line product on the right)\n"
        f"- right: {len(right_rows):,} Buy records, {len(right_only):,} of them products the left does not list\n"
    )
    (outdir / "README.md").write_text(note, encoding="utf-8")
    return note


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("outdir", type=Path, help="folder for left.csv, right.csv, gold.tsv and README.md")
    parser.add_argument("--source", choices=["abt-buy", "wdc"], default="abt-buy", help="the benchmark the pair is cut from")
    parser.add_argument("--seed", type=int, default=0, help="abt-buy: which records of each line lose their counterpart")
    parser.add_argument("--brands", type=int, default=0, help="abt-buy: only the records of this many most frequent brands (0: all)")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="folder of the public benchmarks (../shared/data)")
    parser.add_argument("--categories", default="computers", help="wdc: comma-separated WDC categories (computers, cameras, watches, shoes)")
    parser.add_argument("--split", choices=["train", "valid"], default="train", help="wdc: the pair file read (never test)")
    args = parser.parse_args()
    if args.source == "abt-buy":
        print(build_abt_buy(args.data, args.outdir, args.seed, args.brands))
        return
    pairs: list[tuple[str, str, int]] = []
    for category in args.categories.split(","):
        pairs += read_pairs(args.data / f"ditto_wdc_{category}" / f"{args.split}.txt")
    lefts, rights, gold = build(pairs)
    note = (
        f"# Open-world pair from WDC {args.categories} ({args.split}.txt)\n\n"
        f"Built by `python -m bench.make_open_world --categories {args.categories} --split {args.split}`.\n\n"
        f"- left: {len(lefts):,} offers, {len(gold):,} with a counterpart, {len(lefts) - len(gold):,} without\n"
        f"- right: {len(rights):,} offers\n"
    )
    write(args.outdir, lefts, rights, gold, note)
    print(note)


if __name__ == "__main__":
    main()
