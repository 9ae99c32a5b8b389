"""Generate a large synthetic pair of person graphs with a known gold alignment.

    python -m bench.make_large_pair --triples 1000000 --out bench/large [--seed 0] [--gzip]

Writes OUT/left.nt, OUT/right.nt (``.nt.gz`` with ``--gzip``) and OUT/gold.tsv (left IRI,
tab, right IRI). Both sides hold about ``--triples`` triples. The data imitates the
OAEI person benchmarks at scale:

- left: ``person1-<n>`` with given name, surname, birth date (``xsd:date``), phone and a
  linked address node (street, house number, postcode) that links to a shared city node
  whose name is a literal, so addresses are folded through two hops;
- right: ``person2-<n>`` with one full-name label (typos in about a third of them),
  birth date as ``DD/MM/YYYY``, phone in another layout, the address as one literal,
  and often an e-mail;
- 90 % of the left persons have a counterpart on the right; the other right persons
  (about half of them) are distractors drawn from the same distributions;
- names from frequency-weighted first and last name lists, cities with Zipf-like
  frequency, each attribute missing with a small probability.

Everything is a function of ``--seed`` and the person's number, so the output is the
same on every run, and it is streamed to disk: memory stays flat whatever the size.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import gzip
import hashlib
import itertools
import math
import random
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

FIRST_NAMES = (
    "james mary john patricia robert jennifer michael linda william elizabeth david barbara richard susan joseph "
    "jessica thomas sarah charles karen christopher lisa daniel nancy matthew betty anthony margaret mark sandra "
    "donald ashley steven kimberly paul emily andrew donna joshua michelle kenneth carol kevin amanda brian dorothy "
    "george melissa timothy deborah ronald stephanie edward rebecca jason sharon jeffrey laura ryan cynthia jacob "
    "kathleen gary amy nicholas angela eric shirley jonathan anna stephen brenda larry pamela justin emma scott "
    "nicole brandon helen benjamin samantha samuel katherine gregory christine alexander debra frank rachel patrick "
    "carolyn raymond janet jack catherine dennis maria jerry heather tyler diane aaron ruth jose julie adam olivia "
    "nathan joyce henry virginia douglas victoria zachary kelly peter lauren kyle christina ethan joan walter evelyn "
    "noah judith jeremy megan christian andrea keith cheryl roger hannah terry jacqueline gerald martha harold gloria "
    "sean teresa austin ann carl sara arthur madison lawrence frances dylan kathryn jesse janice jordan jean bryan "
    "abigail billy alice joe judy bruce sophia gabriel grace logan denise albert amber willie doris alan marilyn "
    "juan danielle wayne beverly elijah isabella randy theresa roy diana vincent natalie ralph brittany eugene "
    "charlotte russell marie bobby kayla mason alexis philip lori louis chelsea conner aleisha riley jamie"
).split()
LAST_NAMES = (
    "smith johnson williams brown jones garcia miller davis rodriguez martinez hernandez lopez gonzalez wilson "
    "anderson thomas taylor moore jackson martin lee perez thompson white harris sanchez clark ramirez lewis robinson "
    "walker young allen king wright scott torres nguyen hill flores green adams nelson baker hall rivera campbell "
    "mitchell carter roberts gomez phillips evans turner diaz parker cruz edwards collins reyes stewart morris "
    "morales murphy cook rogers gutierrez ortiz morgan cooper peterson bailey reed kelly howard ramos kim cox ward "
    "richardson watson brooks chavez wood james bennett gray mendoza ruiz hughes price alvarez castillo sanders patel "
    "myers long ross foster jimenez powell jenkins perry russell sullivan bell coleman butler henderson barnes "
    "gonzales fisher vasquez simmons romero jordan patterson alexander hamilton graham reynolds griffin wallace "
    "moreno west cole hayes bryant herrera gibson ellis tran medina aguilar stevens murray ford castro marshall owens "
    "harrison fernandez mcdonald woods washington kennedy wells vargas henry chen freeman webb tucker guzman burns "
    "crawford olson simpson porter hunter gordon mendez silva shaw snyder mason dixon munoz hunt hicks holmes palmer "
    "wagner black robertson boyd rose stone salazar fox warren mills meyer rice schmidt garza daniels ferguson nichols "
    "stephens soto weaver ryan gardner payne grant dunn kelley spencer hawkins arnold pierce vazquez hansen peters "
    "santos hart bradley knight elliott cunningham duncan armstrong hudson carroll lane riley andrews alvarado ray "
    "delgado berry perkins hoffman johnston matthews pena richards willis carpenter lawrence sandoval gourlay knights"
).split()
STREETS = (
    "main oak pine maple cedar elm washington lake hill park view sunset river spring church high school north south "
    "mill forest meadow ridge valley willow cherry walnut chestnut birch ash poplar laurel magnolia highland railroad "
    "center union market bridge water franklin jefferson lincoln madison jackson adams monroe wilson grant jones "
    "axon bent beach bay harbour ocean canal dock quarry orchard garden vine rose lily station college academy "
    "victoria albert george king queen princess duke regent wellington nelson clarence kent york oxford cambridge"
).split()
STREET_TYPES = ("street", "road", "avenue", "lane", "drive", "court", "place", "crescent", "way", "terrace")
CITIES = tuple(
    "sydney;melbourne;brisbane;perth;adelaide;gold coast;newcastle;canberra;wollongong;geelong;hobart;townsville;"
    "cairns;darwin;toowoomba;ballarat;bendigo;albury;launceston;mackay;rockhampton;bunbury;bundaberg;coffs harbour;"
    "wagga wagga;hervey bay;mildura;shepparton;port macquarie;gladstone;tamworth;traralgon;orange;bowral;dubbo;"
    "geraldton;nowra;bathurst;warrnambool;kalgoorlie;busselton;albany;warragul;devonport;mount gambier;lismore;"
    "nelson bay;armidale;goulburn;whyalla;gympie;echuca;forster;griffith;wangaratta;grafton;murray bridge;mount isa;"
    "camden haven;broken hill;moe;karratha;horsham;batemans bay;singleton;ulladulla;port lincoln;warwick;kingaroy;"
    "emerald;sale;port hedland;lithgow;mudgee;muswellbrook;colac;esperance;portland;northam;swan hill;kempsey;"
    "castlemaine;yeppoon;morwell;parkes;ballina;inverell;bairnsdale;moree;cowra;young;gunnedah;narrabri;"
    "charters towers;roma;cooma;tumut;deniliquin;kingscliff;lorne;byron bay;yamba;katoomba;springwood;glenbrook;"
    "blackheath;leura;penrith;richmond;windsor;gosford;wyong;kiama;gerringong;berry;moruya;narooma;eden;merimbula;"
    "st kilda;bondi;manly;parramatta;fremantle;glenelg;sandy bay;south yarra;fortitude valley;surfers paradise"
    .split(";")
)
EMAIL_DOMAINS = ("gmail.com", "yahoo.com", "outlook.com", "bigpond.com", "optusnet.com.au", "hotmail.com")

LEFT_NS = "http://www.okkam.org/oaie/person1-"
RIGHT_NS = "http://www.okkam.org/oaie/person2-"
LEFT_ONT = "http://www.okkam.org/ontology_person1.owl#"
RIGHT_ONT = "http://www.okkam.org/ontology_person2.owl#"
RDF_TYPE = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"
RDFS_LABEL = "http://www.w3.org/2000/01/rdf-schema#label"
XSD_DATE = "http://www.w3.org/2001/XMLSchema#date"

MATCH_SHARE = 0.9  # share of left persons that have a right counterpart
MISSING = 0.07  # chance that any one attribute is missing
TYPO_SHARE = 0.35  # share of right names with at least one typo
EMAIL_SHARE = 0.6  # share of right persons with an e-mail address
# Expected triples per person (from the probabilities in left_triples / right_triples),
# used to size both sides for --triples.
LEFT_PER_PERSON = (
    1 + (1 - MISSING) + (1 - MISSING / 2) + (1 - MISSING) + (1 - 2 * MISSING) + (1 - MISSING) * (5 + (1 - MISSING))
)
RIGHT_PER_PERSON = 2 + (1 - MISSING) + (1 - 2 * MISSING) + (1 - MISSING) + EMAIL_SHARE


class Weighted:
    """Draws from a list with Zipf-like weights (rank ** -exponent)."""

    def __init__(self, items: Sequence[str], exponent: float) -> None:
        self.items = list(items)
        weights = [1.0 / (rank**exponent) for rank in range(1, len(self.items) + 1)]
        self.cumulative = list(itertools.accumulate(weights))

    def draw(self, rng: random.Random) -> str:
        return self.items[bisect.bisect_left(self.cumulative, rng.random() * self.cumulative[-1])]


FIRST = Weighted(FIRST_NAMES, 0.8)
LAST = Weighted(LAST_NAMES, 0.7)
CITY = Weighted(CITIES, 1.1)
STREET = Weighted(STREETS, 0.6)


@dataclass
class Person:
    """One real-world person; both sides derive their description from it."""

    given: str
    surname: str
    born: tuple[int, int, int]
    phone: str
    street: str
    house: int
    postcode: str
    city: int

    @property
    def city_name(self) -> str:
        return CITIES[self.city]


def _rng(seed: int, kind: str, number: int) -> random.Random:
    digest = hashlib.blake2b(f"{seed}:{kind}:{number}".encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big"))


def make_person(seed: int, kind: str, number: int) -> Person:
    """The person ``number`` of the stream ``kind`` (left persons, or right distractors)."""
    rng = _rng(seed, kind, number)
    city_name = CITY.draw(rng)
    city = CITIES.index(city_name)
    return Person(
        given=FIRST.draw(rng),
        surname=LAST.draw(rng),
        born=(rng.randint(1920, 2005), rng.randint(1, 12), rng.randint(1, 28)),
        phone=f"0{rng.randint(2, 8)} {rng.randint(10_000_000, 99_999_999)}",
        street=f"{STREET.draw(rng)} {rng.choice(STREET_TYPES)}",
        house=int(rng.paretovariate(1.2)) + rng.randint(0, 40),
        postcode=str(2000 + (city * 37) % 7000),
        city=city,
    )


def typo(word: str, rng: random.Random) -> str:
    """One keyboard-style slip: a dropped, doubled, swapped or replaced letter."""
    if len(word) < 3:
        return word
    i = rng.randrange(1, len(word) - 1)
    kind = rng.randrange(4)
    if kind == 0:
        return word[:i] + word[i + 1 :]
    if kind == 1:
        return word[:i] + word[i] + word[i:]
    if kind == 2:
        return word[: i - 1] + word[i] + word[i - 1] + word[i + 1 :]
    return word[:i] + rng.choice("abcdefghijklmnopqrstuvwxyz") + word[i + 1 :]


def _lit(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return f'"{escaped}"'


def left_triples(seed: int, number: int, person: Person) -> Iterator[str]:
    """N-Triples lines of one left person and its address node."""
    rng = _rng(seed, "left-missing", number)
    s = f"<{LEFT_NS}Person{number}>"
    address = f"<{LEFT_NS}Address{number}>"
    yield f"{s} <{RDF_TYPE}> <{LEFT_ONT}Person> .\n"
    if rng.random() > MISSING:
        yield f"{s} <{LEFT_ONT}given_name> {_lit(person.given)} .\n"
    if rng.random() > MISSING / 2:
        yield f"{s} <{LEFT_ONT}surname> {_lit(person.surname)} .\n"
    if rng.random() > MISSING:
        y, m, d = person.born
        yield f'{s} <{LEFT_ONT}date_of_birth> "{y:04d}-{m:02d}-{d:02d}"^^<{XSD_DATE}> .\n'
    if rng.random() > MISSING * 2:
        yield f"{s} <{LEFT_ONT}phone_number> {_lit(person.phone)} .\n"
    if rng.random() > MISSING:
        yield f"{s} <{LEFT_ONT}has_address> {address} .\n"
        yield f"{address} <{RDF_TYPE}> <{LEFT_ONT}Address> .\n"
        yield f"{address} <{LEFT_ONT}street> {_lit(person.street)} .\n"
        yield f"{address} <{LEFT_ONT}house_number> {_lit(str(person.house))} .\n"
        if rng.random() > MISSING:
            yield f"{address} <{LEFT_ONT}postcode> {_lit(person.postcode)} .\n"
        yield f"{address} <{LEFT_ONT}is_in_city> <{LEFT_NS}City{person.city}> .\n"


def city_triples(used: set[int]) -> Iterator[str]:
    """The shared city nodes of the left graph that some address names.

    Their names are not labels, so they fold into the persons' addresses; a city no
    address names would be a root, hence an entity of its own.
    """
    for number in sorted(used):
        name = CITIES[number]
        s = f"<{LEFT_NS}City{number}>"
        yield f"{s} <{RDF_TYPE}> <{LEFT_ONT}City> .\n"
        yield f"{s} <{LEFT_ONT}name> {_lit(name)} .\n"


def right_triples(seed: int, number: int, person: Person) -> Iterator[str]:
    """N-Triples lines of one right person: flat literals in other layouts."""
    rng = _rng(seed, "right-noise", number)
    s = f"<{RIGHT_NS}Person{number}>"
    given, surname = person.given, person.surname
    if rng.random() < TYPO_SHARE:
        if rng.random() < 0.5:
            given = typo(given, rng)
        else:
            surname = typo(surname, rng)
    yield f"{s} <{RDF_TYPE}> <{RIGHT_ONT}Person> .\n"
    yield f"{s} <{RDFS_LABEL}> {_lit(f'{given} {surname}'.title())} .\n"
    if rng.random() > MISSING:
        y, m, d = person.born
        yield f"{s} <{RIGHT_ONT}birth_date> {_lit(f'{d:02d}/{m:02d}/{y:04d}')} .\n"
    if rng.random() > MISSING * 2:
        area, rest = person.phone.split(" ")
        yield f"{s} <{RIGHT_ONT}telephone> {_lit(f'({area}) {rest[:4]}-{rest[4:]}')} .\n"
    if rng.random() > MISSING:
        address = f"{person.house} {person.street.title()}, {person.city_name.title()} {person.postcode}"
        yield f"{s} <{RIGHT_ONT}address> {_lit(address)} .\n"
    if rng.random() < EMAIL_SHARE:
        domain = EMAIL_DOMAINS[rng.randrange(len(EMAIL_DOMAINS))]
        yield f"{s} <{RIGHT_ONT}email> {_lit(f'{person.given}.{person.surname}{rng.randint(1, 99)}@{domain}')} .\n"


@dataclass
class Plan:
    """How many persons each side holds and how right numbers map to left ones."""

    left_persons: int
    right_persons: int
    seed: int

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)
        self.step = self._coprime(rng)
        self.offset = rng.randrange(self.right_persons)
        self.inverse = pow(self.step, -1, self.right_persons)
        self.matched = min(round(self.left_persons * MATCH_SHARE), self.right_persons)

    def _coprime(self, rng: random.Random) -> int:
        while True:
            step = rng.randrange(1, self.right_persons) if self.right_persons > 1 else 1
            if math.gcd(step, self.right_persons) == 1:
                return step

    def right_of(self, left: int) -> int | None:
        """The right number of left person ``left``, or None when it has no counterpart."""
        if left >= self.matched:
            return None
        return (self.step * left + self.offset) % self.right_persons

    def left_of(self, right: int) -> int | None:
        left = ((right - self.offset) * self.inverse) % self.right_persons
        return left if left < self.matched else None


def plan_for(triples: int, seed: int) -> Plan:
    left = max(2, round((triples - 2 * len(CITIES)) / LEFT_PER_PERSON))
    right = max(left + 1, round(triples / RIGHT_PER_PERSON))
    return Plan(left, right, seed)


@contextlib.contextmanager
def _open(path: Path, compress: bool) -> Iterator[IO[str]]:
    if compress:
        with gzip.open(path, "wt", encoding="utf-8", compresslevel=6, newline="\n") as handle:
            yield handle
    else:
        with path.open("w", encoding="utf-8", newline="\n", buffering=1 << 20) as handle:
            yield handle


def generate(out: Path, triples: int, seed: int = 0, compress: bool = False) -> dict[str, object]:
    """Write left, right and gold into ``out``; return the file paths and counts."""
    out.mkdir(parents=True, exist_ok=True)
    plan = plan_for(triples, seed)
    suffix = ".nt.gz" if compress else ".nt"
    left_path, right_path, gold_path = out / f"left{suffix}", out / f"right{suffix}", out / "gold.tsv"
    counts = {"left_triples": 0, "right_triples": 0, "gold_pairs": 0}
    used_cities: set[int] = set()
    with _open(left_path, compress) as left, gold_path.open("w", encoding="utf-8") as gold:
        gold.write("# left\tright (synthetic, bench/make_large_pair.py)\n")
        for number in range(plan.left_persons):
            person = make_person(seed, "person", number)
            for line in left_triples(seed, number, person):
                if "is_in_city" in line:
                    used_cities.add(person.city)
                left.write(line)
                counts["left_triples"] += 1
            right = plan.right_of(number)
            if right is not None:
                gold.write(f"{LEFT_NS}Person{number}\t{RIGHT_NS}Person{right}\n")
                counts["gold_pairs"] += 1
        for line in city_triples(used_cities):
            left.write(line)
            counts["left_triples"] += 1
    with _open(right_path, compress) as handle:
        for number in range(plan.right_persons):
            left_number = plan.left_of(number)
            person = (
                make_person(seed, "person", left_number)
                if left_number is not None
                else make_person(seed, "distractor", number)
            )
            for line in right_triples(seed, number, person):
                handle.write(line)
                counts["right_triples"] += 1
    return {
        "left": str(left_path),
        "right": str(right_path),
        "gold": str(gold_path),
        "left_persons": plan.left_persons,
        "right_persons": plan.right_persons,
        **counts,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--triples", type=int, default=1_000_000, help="Triples per side (about).")
    parser.add_argument("--out", type=Path, default=Path("bench/large"), help="Output folder.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the generator: the same seed writes the same pair (default 0).")
    parser.add_argument("--gzip", action="store_true", help="Write .nt.gz instead of .nt.")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    info = generate(args.out, args.triples, args.seed, args.gzip)
    info["seconds"] = round(time.perf_counter() - started, 1)
    width = max(len(k) for k in info)
    for key, value in info.items():
        print(f"{key:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
