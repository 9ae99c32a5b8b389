"""What an input of a run is: a file, or a SPARQL endpoint URL; and how the outputs name it."""

from __future__ import annotations

from pathlib import Path

from kgalign.runtime.redact import redact_url


def is_endpoint(value: str | Path) -> bool:
    """True for an input given as an http(s) URL (a SPARQL endpoint) rather than a file."""
    return isinstance(value, str) and value.lower().startswith(("http://", "https://"))


def describe_input(value: str | Path) -> str:
    """How run.json names an input: an endpoint's URL (redacted), a file's path as given."""
    return redact_url(str(value)) if is_endpoint(str(value)) else str(value)


def input_name(value: str | Path) -> str:
    """How alignment.rdf names an input: an endpoint's URL (redacted), a file's name."""
    return redact_url(str(value)) if is_endpoint(str(value)) else Path(value).name or Path(value).resolve().name


def input_uri(value: str | Path) -> str:
    """The IRI the provenance gives an input: an endpoint's URL (redacted), a file's file: URI."""
    return redact_url(str(value)) if is_endpoint(str(value)) else Path(value).resolve().as_uri()
