"""An input given as a SPARQL endpoint URL, turned into the local file a run reads.

``kgalign run http://host/sparql right.ttl --class IRI -o OUT`` reads the endpoint once
into ``OUT/sources/left.nt`` (:mod:`kgalign.io.sparql.fetch`) and then aligns that copy
exactly as it aligns a file. A rerun into the same folder with the same endpoint,
classes, graph and pattern reads the copy and sends no request (``--refresh`` reads the
endpoint again). The Python API without a ``sparql.cache_dir`` fetches into a temporary
folder, removed once the copy is loaded.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kgalign.errors import KgalignError
from kgalign.io.inputs import is_endpoint
from kgalign.runtime.redact import redact_url

log = logging.getLogger(__name__)

def check_endpoint_inputs(left: str | Path, right: str | Path, config: Any) -> None:
    """Fail in one line, before any work, on an endpoint input the run cannot read."""
    endpoints = [(side, value) for side, value in (("LEFT", left), ("RIGHT", right)) if is_endpoint(value)]
    if not endpoints:
        return
    if not config.classes:
        side, value = endpoints[0]
        raise KgalignError(f"{redact_url(str(value))}: {side} is a SPARQL endpoint; name the entities' type with --class IRI (repeatable)")
    from kgalign.io.sparql.queries import is_writable_iri

    for iri in config.classes:
        if not is_writable_iri(iri):
            raise KgalignError(f"--class {iri!r}: not an absolute IRI")
    if len(endpoints) == 2 and left == right:
        raise KgalignError(f"{redact_url(str(left))}: the same endpoint was given as LEFT and RIGHT")


@contextlib.contextmanager
def local_input(value: str | Path, side: str, config: Any) -> Iterator[tuple[Path, str | None]]:
    """The file to load for one input, and its format: the input itself, or an endpoint's copy."""
    fmt = config.left_format if side == "left" else config.right_format
    if not is_endpoint(value):
        yield Path(value), fmt
        return
    from kgalign.io.sparql.fetch import EndpointQuery, fetch_copy, read_copy_info

    settings = config.sparql
    query = EndpointQuery(url=str(value), classes=tuple(config.classes), graph=settings.graph, where=settings.where)
    with contextlib.ExitStack() as stack:
        if settings.cache_dir:
            folder = Path(settings.cache_dir)
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise KgalignError(f"{folder}: cannot create the folder for endpoint copies ({exc.strerror or exc})") from None
        else:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kgalign-sparql-")))
        path = folder / f"{side}.nt"
        info = read_copy_info(path)
        if info is not None and info.key == query.key() and not settings.refresh:
            log.info("%s: reading the copy fetched %s (%d entities; --refresh reads the endpoint again)", info.endpoint, info.fetched, info.entities)
        else:
            fetch_copy(query, path, settings, label=side)
        yield path, "nt"
