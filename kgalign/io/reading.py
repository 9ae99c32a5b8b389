"""Reading an input file's bytes (gzip looked through), and the checks made before parsing.

Files are read as a stream of chunks, never held in memory whole unless a caller asks
(:func:`read_bytes`, for tables). Before an RDF file is parsed, one streaming pass
(:func:`scan`) checks that it is not blank and is UTF-8 (RDF/XML declares its own
encoding, and is checked for an XML entity expansion attack instead), and notes the
first line that escapes a UTF-16 surrogate. Every failure is one :class:`InputError`
line naming the file (and line).
"""

from __future__ import annotations

import codecs
import contextlib
import gzip
import json
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

from kgalign.errors import InputError

READ_CHUNK = 1 << 20
_GZIP_ERRORS = (OSError, EOFError, zlib.error)


@contextlib.contextmanager
def open_input(path: Path) -> Iterator[IO[bytes]]:
    """The file as a binary stream, decompressed when it ends in ``.gz``; one-line errors."""
    try:
        handle: IO[bytes] = path.open("rb")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not a graph file") from None
    except PermissionError:
        raise InputError(f"{path}: permission denied") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    with handle:
        if path.suffix.lower() == ".gz":
            with gzip.GzipFile(fileobj=handle, mode="rb") as unzipped:
                # A binary file object, though typeshed does not declare GzipFile an IO[bytes].
                yield cast(IO[bytes], unzipped)
        else:
            yield handle


def chunks(path: Path, handle: IO[bytes]) -> Iterator[bytes]:
    """``handle`` (opened by :func:`open_input`) in chunks of ``READ_CHUNK`` bytes; one-line errors."""
    while True:
        try:
            chunk = handle.read(READ_CHUNK)
        except _GZIP_ERRORS as exc:
            if path.suffix.lower() == ".gz":
                raise InputError(f"{path}: not a valid gzip file ({exc})") from None
            raise InputError(f"{path}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None
        if not chunk:
            return
        yield chunk


def read_bytes(path: Path) -> bytes:
    """The whole file (decompressed when it ends in ``.gz``), with the errors of :func:`open_input`."""
    with open_input(path) as handle:
        return b"".join(chunks(path, handle))


# \uD800-\uDFFF written as an escape: Turtle, N-Triples and JSON all allow the syntax.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}|\\U0000[dD][89a-fA-F][0-9a-fA-F]{2}")
_UTF16_BOMS = {b"\xff\xfe": "UTF-16 little-endian", b"\xfe\xff": "UTF-16 big-endian"}


@dataclass
class Scan:
    """What the streaming pass before parsing found."""

    blank: bool = True
    surrogate_line: int | None = None


def scan(path: Path, fmt: str) -> Scan:
    """One streaming pass: is the file blank, is it UTF-8, does it escape surrogates.

    A UTF-8 error names its line and byte; a UTF-16 byte-order mark is named as such.
    RDF/XML is exempt from the UTF-8 rule (its XML declaration names the encoding).
    """
    text_format = fmt != "xml"
    decoder = codecs.getincrementaldecoder("utf-8")() if text_format else None
    result = Scan()
    lines_before = 0
    tail = b""
    first = True
    with open_input(path) as handle:
        for chunk in chunks(path, handle):
            if first and text_format:
                _check_not_utf16(path, chunk)
            elif first:
                _check_entity_expansion(path, chunk)
            first = False
            if result.blank and chunk.strip():
                result.blank = False
            if decoder is not None:
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError as exc:
                    _utf8_error(path, exc, lines_before)
            if text_format and result.surrogate_line is None:
                window = tail + chunk
                match = _SURROGATE_ESCAPE.search(window)
                if match:
                    result.surrogate_line = lines_before - tail.count(b"\n") + window[: match.start()].count(b"\n") + 1
                tail = window[-9:]
            lines_before += chunk.count(b"\n")
        if decoder is not None:
            try:
                decoder.decode(b"", final=True)
            except UnicodeDecodeError as exc:
                _utf8_error(path, exc, lines_before)
    return result


def _check_not_utf16(path: Path, head: bytes) -> None:
    """Name UTF-16 for what it is: by its byte-order mark, or by NUL bytes in every other place."""
    if head[:2] in _UTF16_BOMS:
        raise InputError(
            f"{path}:1: not valid UTF-8 ({_UTF16_BOMS[head[:2]]} byte-order mark); "
            "RDF text formats must be UTF-8, re-encode the file"
        )
    sample = head[:4096]
    if sample.count(b"\x00") * 4 > len(sample):
        raise InputError(
            f"{path}:1: not UTF-8 text (NUL bytes: UTF-16 without a byte-order mark?); "
            "RDF text formats must be UTF-8, re-encode the file"
        )


MAX_ENTITY_EXPANSION = 1_000_000
_ENTITY_DECLARATION = re.compile(rb"""<!ENTITY\s+(?:%\s+)?([^\s%"'>]+)\s+(?:"([^"]*)"|'([^']*)')""")
_ENTITY_REFERENCE = re.compile(rb"[&%]([^\s;&%<>\"']+);")


def _check_entity_expansion(path: Path, head: bytes) -> None:
    """Refuse an XML DTD whose entities expand to more than ``MAX_ENTITY_EXPANSION`` bytes.

    RDF/XML files declare entities for namespace IRIs (``&rdf;``), a few dozen bytes
    each. Entities built from other entities, ten times per level ("billion laughs"),
    expand to gigabytes from a small file; expat stops them only after megabytes of
    expansion, which rdflib's RDF/XML handler takes minutes to collect. The internal
    subset sits before the root element, so the first chunk of the file holds it.
    """
    declarations = {m.group(1): (m.group(2) if m.group(2) is not None else m.group(3), m.start()) for m in _ENTITY_DECLARATION.finditer(head)}
    if not declarations:
        return
    sizes: dict[bytes, int] = {}

    def size(name: bytes, depth: int = 0) -> int:
        if name in sizes:
            return sizes[name]
        if name not in declarations or depth > 50:
            return len(name) + 2
        sizes[name] = 0  # a cycle counts as empty here; expat rejects it
        value = declarations[name][0]
        total = len(_ENTITY_REFERENCE.sub(b"", value))
        for ref in _ENTITY_REFERENCE.finditer(value):
            total += size(ref.group(1), depth + 1)
            if total > MAX_ENTITY_EXPANSION:
                break
        sizes[name] = total
        return total

    for name, (_, offset) in declarations.items():
        if size(name) > MAX_ENTITY_EXPANSION:
            line = head[:offset].count(b"\n") + 1
            raise InputError(
                f"{path}:{line}: XML entity {name.decode('utf-8', 'replace')} expands to over "
                f"{MAX_ENTITY_EXPANSION:,} bytes (an entity expansion attack?); refusing to parse"
            )


def _utf8_error(path: Path, exc: UnicodeDecodeError, lines_before: int) -> None:
    line = lines_before + exc.object[: exc.start].count(b"\n") + 1
    raise InputError(
        f"{path}:{line}: not valid UTF-8 (byte 0x{exc.object[exc.start]:02x}); "
        "RDF text formats must be UTF-8, re-encode the file"
    ) from None


def json_object(text: str, where: str) -> dict[str, Any]:
    """One line of a JSON-lines file as an object; one :class:`InputError` line naming ``where`` (file:line) else."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{where}: not valid JSON ({exc.msg})") from None
    if not isinstance(value, dict):
        raise InputError(f"{where}: expected a JSON object, found {type(value).__name__}")
    return value
