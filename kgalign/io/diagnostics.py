"""What is wrong with an RDF file, said in one line naming the file and line.

- :func:`parse_error_message`: a parser's exception as one line, with the line of the
  bad statement looked up in the file when the parser does not say where it is;
- :func:`check_terms`: after parsing, every IRI is checked against the characters RDF
  forbids in IRIs (spaces, controls, ``<>"{}|^`\\``): such IRIs would make the written
  Turtle invalid, so they fail here, naming the file, line and IRI. So do
  ``\\uD800``-style escapes of UTF-16 surrogates, which no UTF-8 output can hold;
- :func:`quiet_term_warnings` and :func:`report_term_warnings`: literals that do not
  fit their datatype (``"abc"^^xsd:integer``) are kept as text, with one warning per
  file instead of rdflib's warning with a traceback per literal.
"""

from __future__ import annotations

import ast
import contextlib
import io
import logging
import re
from collections.abc import Callable, Iterator
from pathlib import Path

from rdflib import Dataset, Graph, Literal, URIRef

from kgalign.errors import InputError, one_line
from kgalign.io.importers.terms import IRIREF_EXCLUDED
from kgalign.io.reading import chunks, open_input
from kgalign.io.triples import TripleSource

log = logging.getLogger(__name__)


def find_line(path: Path, needle: bytes, shift: int = 0) -> int | None:
    """The line of the first occurrence of ``needle`` (plus ``shift`` bytes) in the file."""
    if not needle:
        return None
    lines_before = 0
    tail = b""
    with contextlib.suppress(InputError), open_input(path) as handle:
        for chunk in chunks(path, handle):
            window = tail + chunk
            at = window.find(needle)
            if at >= 0:
                return lines_before - tail.count(b"\n") + window[: at + shift].count(b"\n") + 1
            keep = len(needle) - 1
            tail = window[-keep:] if keep else b""
            lines_before += chunk.count(b"\n")
    return None


_LINE_PATTERNS = (
    re.compile(r"line[:\s]+(\d+)", re.IGNORECASE),
    re.compile(r":(\d+):(\d+):"),
)
_NT_INVALID = re.compile(r"^Invalid line: (.+)$", re.DOTALL)
_NQ_INVALID = re.compile(r"^Invalid line \(.*\):\n('.*'|\".*\")$", re.DOTALL)
_CARET_CONTEXT = re.compile(r" at \^ in:? (.+)$", re.DOTALL)


def _line_of_bad_statement(path: Path, fmt: str, text: str) -> int | None:
    """The line of the statement a parser rejected without saying where.

    rdflib's N-Triples parser reports the unparsed rest of the bad line, its N-Quads
    parser the whole line, and its Turtle parser (for some errors) the text around
    the position as ``before^after``; each is looked up in the file.
    """
    if fmt in ("nt", "nquads"):
        match = _NQ_INVALID.match(text)
        if match:
            with contextlib.suppress(ValueError, SyntaxError):
                wanted = str(ast.literal_eval(match.group(1))).strip()
                return _first_line(path, lambda line: line.strip() == wanted and bool(wanted))
        match = _NT_INVALID.match(text)
        if match:
            rest = match.group(1).strip()
            return _first_line(path, lambda line: bool(rest) and line.rstrip().endswith(rest) and not _parses(line, fmt))
        return None
    match = _CARET_CONTEXT.search(text)
    if match:
        context = match.group(1)
        for at in [i for i, ch in enumerate(context) if ch == "^"]:
            before, after = context[:at], context[at + 1 :]
            line = find_line(path, (before + after).encode("utf-8", "replace"), len(before.encode("utf-8", "replace")))
            if line is not None:
                return line
    return None


def _first_line(path: Path, test: Callable[[str], bool]) -> int | None:
    """The number of the first line of the (UTF-8) file for which ``test(line)`` holds."""
    with contextlib.suppress(InputError), open_input(path) as handle:
        reader = io.TextIOWrapper(handle, encoding="utf-8", errors="replace", newline="")
        for number, line in enumerate(reader, start=1):
            if test(line):
                return number
    return None


def _parses(line: str, fmt: str) -> bool:
    try:
        Dataset().parse(data=line, format=fmt) if fmt == "nquads" else Graph().parse(data=line, format=fmt)
    except Exception:
        return False
    return True


def _syntax_detail(exc: BaseException) -> str:
    """rdflib's Turtle/N3 ``BadSyntax`` as "why at ^ in 'before^after'" (it prints bytes reprs)."""
    data, at, why = getattr(exc, "_str", None), getattr(exc, "_i", None), getattr(exc, "_why", None)
    if not isinstance(data, bytes) or not isinstance(at, int) or why is None:
        return str(exc)
    if not 0 <= at <= len(data):
        at = len(data)  # -1: at the end of the input
    before = data[max(0, at - 30) : at].decode("utf-8", "replace")
    after = data[at : at + 30].decode("utf-8", "replace")
    return f'{why} at ^ in "{before}^{after}"'


def parse_error_message(path: Path, exc: BaseException, fmt: str) -> str:
    """A parser's exception as one line: ``path:line: not valid RDF (Kind: detail)``."""
    raw = str(exc)
    text = one_line(_syntax_detail(exc))
    line = getattr(exc, "lineno", None) or getattr(exc, "line", None)
    lines = getattr(exc, "lines", None)
    if not isinstance(line, int) and isinstance(lines, int):
        line = lines + 1  # BadSyntax counts from 0
    if not isinstance(line, int):
        line = None
        for pattern in _LINE_PATTERNS:
            match = pattern.search(text)
            if match:
                line = int(match.group(1))
                break
    if line is None:
        line = _line_of_bad_statement(path, fmt, raw)
    if len(text) > 200:
        text = text[:200] + "..."
    where = f"{path}:{line}" if isinstance(line, int) else str(path)
    return f"{where}: not valid RDF ({type(exc).__name__}: {text})"


# The characters IRIREF excludes, and UTF-16 surrogates.
_BAD_IRI_CHAR = re.compile(rf"[{IRIREF_EXCLUDED}\ud800-\udfff]")
_IRI_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _describe_char(char: str) -> str:
    if char == " ":
        return "a space (write it as %20)"
    if ord(char) < 0x20 or 0xD800 <= ord(char) <= 0xDFFF:
        return f"the character U+{ord(char):04X}"
    return f"'{char}' (percent-encode it as %{ord(char):02X})"


def _shown(text: object, limit: int = 80) -> str:
    """``text`` (an rdflib term, say) for a one-line message: escaped, clipped."""
    text = str(text)
    shown = text.encode("unicode_escape").decode("ascii") if _SURROGATE.search(text) else repr(text)[1:-1]
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def check_terms(path: Path, graph: TripleSource, surrogate_line: int | None) -> None:
    """Fail on the first IRI that RDF forbids, and on surrogates in literals.

    Literals are searched only when the file escapes a surrogate somewhere
    (``surrogate_line``, found by :func:`kgalign.io.reading.scan`), which keeps the
    common case fast.
    """
    last_subject = None
    predicates: set[object] = set()
    for s, p, o in graph:
        if s is not last_subject:
            last_subject = s
            if isinstance(s, URIRef):
                _check_iri(path, s)
        if p not in predicates:
            predicates.add(p)
            _check_iri(path, str(p))
        if isinstance(o, URIRef):
            _check_iri(path, o)
        elif surrogate_line is not None and isinstance(o, Literal) and _SURROGATE.search(o):
            where = f"{path}:{surrogate_line}"
            raise InputError(
                f'{where}: literal "{_shown(o)}" of <{_shown(s)}> holds a UTF-16 surrogate escape, not a character; '
                "write the character itself (or as one \\U00XXXXXX escape)"
            )


def _check_iri(path: Path, iri: str) -> None:
    bad = _BAD_IRI_CHAR.search(iri)
    if bad is None and _IRI_SCHEME.match(iri):
        return
    problem = f"contains {_describe_char(bad.group(0))}" if bad else "has no scheme (such as http:)"
    line = None
    if bad is None or not _SURROGATE.match(bad.group(0)):
        # As written, else the part before the bad character (it may be escaped).
        line = find_line(path, f"<{iri}>".encode("utf-8", "replace"))
        if line is None and bad is not None and bad.start() > 0:
            line = find_line(path, f"<{iri[: bad.start()]}".encode("utf-8", "replace"))
    where = f"{path}:{line}" if line else str(path)
    raise InputError(f"{where}: invalid IRI <{_shown(iri)}>: {problem}")


class TermWarnings(logging.Filter):
    """Swallows rdflib's per-term warnings while a file is parsed, counting them.

    rdflib logs a warning with a traceback for every literal that does not fit its
    datatype, and one for every IRI it finds suspicious (which :func:`check_terms`
    then rejects with a clearer message).
    """

    def __init__(self) -> None:
        super().__init__()
        self.ill_typed = 0
        self.datatypes: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith("Failed to convert Literal lexical form"):
            self.ill_typed += 1
            found = re.search(r"Datatype=(\S+?),", message)
            if found:
                self.datatypes.add(found.group(1).rsplit("#", 1)[-1].rsplit("/", 1)[-1])
            return False
        return "does not look like a valid URI" not in message


@contextlib.contextmanager
def quiet_term_warnings() -> Iterator[TermWarnings]:
    """Within this block rdflib's per-term warnings are counted, not shown (see :func:`report_term_warnings`)."""
    logger = logging.getLogger("rdflib.term")
    counter = TermWarnings()
    logger.addFilter(counter)
    try:
        yield counter
    finally:
        logger.removeFilter(counter)


def report_term_warnings(path: Path, counter: TermWarnings) -> None:
    """One warning for the literals of ``path`` that did not fit their datatype (if any)."""
    if counter.ill_typed:
        log.warning(
            "%s: %d literals do not fit their datatype (%s); kept as text",
            path,
            counter.ill_typed,
            ", ".join(sorted(counter.datatypes)) or "?",
        )
