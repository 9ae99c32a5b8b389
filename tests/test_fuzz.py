"""Fuzz the loaders: whatever the bytes, the result is a graph or a clean one-line error.

Seeds are real: the first statements (up to 40 lines) of examples/persons/right.ttl (Turtle) and of
left.nt (N-Triples), mutated byte by byte (flips, deletions, insertions of syntax
characters and awkward bytes, truncation), plus wholly random text and bytes, and
random CSV/TSV tables. The loaders may succeed or raise :class:`KgalignError` (whose
message is one line); any other exception is a bug.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kgalign.errors import KgalignError
from kgalign.evaluation.metrics import read_pairs
from kgalign.io.entities import load_entities
from kgalign.io.parsers import load_graph

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "persons"


def _first_statements(path: Path, lines: int = 40) -> bytes:
    """The first ``lines`` lines of ``path``, cut after the last complete statement."""
    head = path.read_bytes().splitlines(keepends=True)[:lines]
    last = max(i for i, line in enumerate(head) if line.rstrip().endswith(b"."))
    return b"".join(head[: last + 1])


TURTLE_SEED = _first_statements(EXAMPLES / "right.ttl")
NT_SEED = _first_statements(EXAMPLES / "left.nt")

# Bytes and snippets that parsers treat specially, or that are not text at all.
TOKENS = [
    b"<", b">", b'"', b"'", b'"""', b"\\", b"\\u", b"\\U0000D800", b"\\uDC00", b"@prefix", b"@base", b"PREFIX",
    b"^^", b"@en", b";", b",", b".", b"[", b"]", b"(", b")", b"#", b"_:b0", b"a", b":", b"\n", b"\r", b"\t",
    b" ", b"\x00", b"\xff", b"\xc3", b"\xe2\x80\xae", b"\xef\xbb\xbf", b"<http://x/ y>", b"<|im_start|>", b"%",
]

# KGALIGN_FUZZ_SCALE=20 runs twenty times the examples, with fresh random ones each
# time (a deeper campaign); by default the examples are the same on every run.
SCALE = int(os.environ.get("KGALIGN_FUZZ_SCALE", "1"))
FUZZ = settings(
    max_examples=250 * SCALE,
    deadline=None,
    derandomize=SCALE == 1,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@st.composite
def mutated(draw: st.DrawFn, seed: bytes) -> bytes:
    """``seed`` after one to six random edits, sometimes truncated."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "delete", "insert", "token", "duplicate"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 40))]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "token":
            data[at:at] = draw(st.sampled_from(TOKENS))
        elif kind == "duplicate":
            length = draw(st.integers(1, 80))
            data[at:at] = data[at : at + length]
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="kgalign-fuzz-") as folder:
        yield Path(folder)


def _load(path: Path, data: bytes) -> None:
    """Load ``data`` as ``path``: success, or a KgalignError whose message is one line."""
    path.write_bytes(data)
    try:
        load_entities(path)
    except KgalignError as exc:
        message = str(exc)
        assert message and "\n" not in message, repr(message)
        assert str(path) in message, message


@FUZZ
@given(data=mutated(TURTLE_SEED))
def test_mutated_turtle(workdir: Path, data: bytes) -> None:
    _load(workdir / "graph.ttl", data)


@FUZZ
@given(data=mutated(NT_SEED))
def test_mutated_ntriples(workdir: Path, data: bytes) -> None:
    _load(workdir / "graph.nt", data)


@settings(FUZZ, max_examples=60 * SCALE)
@given(data=mutated(TURTLE_SEED.replace(b"@prefix ns1: <http://www.okkam.org/ontology_person2.owl#> .\n", b"")))
def test_mutated_turtle_as_ntriples(workdir: Path, data: bytes) -> None:
    """Turtle given to the N-Triples parser: errors all the way down."""
    _load(workdir / "graph.nt", data)


@settings(FUZZ, max_examples=60 * SCALE)
@given(text=st.text(alphabet=st.characters(codec="utf-8"), max_size=300))
def test_random_text(workdir: Path, text: str) -> None:
    _load(workdir / "graph.ttl", text.encode("utf-8", "surrogatepass"))


@settings(FUZZ, max_examples=40 * SCALE)
@given(data=st.binary(max_size=300), suffix=st.sampled_from([".ttl", ".nt", ".rdf", ".jsonld", ".nq", ".trig", ".ttl.gz"]))
def test_random_bytes_in_every_format(workdir: Path, data: bytes, suffix: str) -> None:
    _load(workdir / f"graph{suffix}", data)


# --- tables ------------------------------------------------------------------------------

CELL = st.one_of(
    st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12),
    st.sampled_from(["", " ", '"', '""', "a,b", "x\ny", "\t", ";", "|", "http://x/1", "\ufeffid", "\u00e9"]),
)


@st.composite
def csv_text(draw: st.DrawFn) -> str:
    """A table: a header and rows of cells, joined by a random delimiter, quoted or not."""
    delimiter = draw(st.sampled_from([",", ";", "\t", "|"]))
    width = draw(st.integers(1, 5))
    rows = draw(st.lists(st.lists(CELL, min_size=width, max_size=width + 1), min_size=0, max_size=8))

    def cell(value: str) -> str:
        if draw(st.booleans()):
            return '"' + value.replace('"', '""') + '"'
        return value

    lines = [delimiter.join(cell(c) for c in row) for row in rows]
    return draw(st.sampled_from(["\n", "\r\n"])).join(lines) + draw(st.sampled_from(["", "\n"]))


@settings(FUZZ, max_examples=200 * SCALE)
@given(text=csv_text(), suffix=st.sampled_from([".csv", ".tsv"]), encoding=st.sampled_from(["utf-8", "utf-8-sig", "cp1252"]))
def test_random_tables(workdir: Path, text: str, suffix: str, encoding: str) -> None:
    _load(workdir / f"table{suffix}", text.encode(encoding, "replace"))


@settings(FUZZ, max_examples=100 * SCALE)
@given(text=csv_text(), suffix=st.sampled_from([".csv", ".tsv"]))
def test_random_gold_tables(workdir: Path, text: str, suffix: str) -> None:
    path = workdir / f"gold{suffix}"
    path.write_bytes(text.encode("utf-8", "replace"))
    try:
        pairs = read_pairs(path)
    except KgalignError as exc:
        assert "\n" not in str(exc) and str(path) in str(exc), str(exc)
    else:
        assert all(isinstance(a, str) and isinstance(b, str) for a, b in pairs)


def test_the_seeds_load(workdir: Path) -> None:
    """The unmutated seeds are valid, so the fuzzers start from real data."""
    (workdir / "seed.ttl").write_bytes(TURTLE_SEED)
    (workdir / "seed.nt").write_bytes(NT_SEED)
    assert len(load_graph(workdir / "seed.ttl")) == 32
    assert len(load_graph(workdir / "seed.nt")) == 40
