"""Talking to a SPARQL endpoint over HTTP: queries, updates and graph uploads that survive a flaky server.

Every request is retried on what a busy or restarting server answers (429, 500, 502,
503, 504), on a timeout and on a dropped connection, waiting ``backoff`` seconds and
twice as long at each next try (or what a ``Retry-After`` header asks, up to
:data:`MAX_WAIT`). What cannot be retried fails in one :class:`EndpointError` line
naming the endpoint: a 4xx answer (with the server's first line of explanation), a
query the endpoint rejects, an answer that is not SPARQL results.

Credentials come from the environment, never from the command line or a config file:
``KGALIGN_SPARQL_USER`` and ``KGALIGN_SPARQL_PASSWORD`` (HTTP basic authentication, or
digest with ``KGALIGN_SPARQL_AUTH=digest``, as Virtuoso's ``/sparql-auth`` asks), or
``KGALIGN_SPARQL_TOKEN`` (a bearer token). They are registered as secrets, so no log
line or error shows them; a user and password written into the URL are redacted too.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

from kgalign.errors import InputError, one_line
from kgalign.runtime.redact import redact_url, register_secret, register_url_secrets

log = logging.getLogger(__name__)

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
#: The longest wait between two tries, whatever Retry-After asks.
MAX_WAIT = 60.0
RESULTS_JSON = "application/sparql-results+json"
FORM = "application/x-www-form-urlencoded"
USER_ENV, PASSWORD_ENV, TOKEN_ENV, AUTH_ENV = "KGALIGN_SPARQL_USER", "KGALIGN_SPARQL_PASSWORD", "KGALIGN_SPARQL_TOKEN", "KGALIGN_SPARQL_AUTH"


class EndpointError(InputError):
    """An endpoint cannot be reached, refuses a request or answers something unreadable."""


@dataclass(frozen=True)
class HttpSettings:
    """Timeouts and retries of every request (the ``sparql`` section of the config)."""

    timeout: float = 60.0
    retries: int = 4
    backoff: float = 1.0

    @classmethod
    def of(cls, section: Any) -> HttpSettings:
        return cls(timeout=section.timeout, retries=section.retries, backoff=section.backoff)


def _auth_from_env() -> tuple[httpx.Auth | None, dict[str, str]]:
    token = os.environ.get(TOKEN_ENV)
    if token:
        register_secret(token)
        return None, {"Authorization": f"Bearer {token}"}
    user, password = os.environ.get(USER_ENV), os.environ.get(PASSWORD_ENV)
    if user is None and password is None:
        return None, {}
    register_secret(password)
    if os.environ.get(AUTH_ENV, "basic").lower() == "digest":
        return httpx.DigestAuth(user or "", password or ""), {}
    return httpx.BasicAuth(user or "", password or ""), {}


class SparqlClient:
    """One endpoint's HTTP connection pool, shared by the threads that query it."""

    def __init__(self, url: str, settings: HttpSettings | None = None, *, pool: int = 4) -> None:
        self.url = url
        self.shown = redact_url(url)
        self.settings = settings or HttpSettings()
        register_url_secrets(url)
        auth, headers = _auth_from_env()
        limits = httpx.Limits(max_connections=pool, max_keepalive_connections=pool)
        self._client = httpx.Client(
            auth=auth, headers={"User-Agent": "kgalign", **headers}, timeout=self.settings.timeout, limits=limits, follow_redirects=True
        )
        self._lock = threading.Lock()
        self.requests = 0
        self.retried = 0

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> SparqlClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ----- the three kinds of request -----

    def select(self, query: str) -> list[dict[str, dict[str, str]]]:
        """The bindings of a SELECT query (SPARQL 1.1 JSON results), one dict per row.

        Parameters in the endpoint URL (``?default-graph-uri=IRI``, the protocol's way to
        choose the graphs a query reads) travel in the form with the query, as the
        protocol asks of a URL-encoded POST.
        """
        base, params = _split_params(self.url)
        form = urlencode([*params, ("query", query)]).encode("utf-8")
        response = self._send("POST", base, content=form, headers={"Accept": RESULTS_JSON, "Content-Type": FORM}, what="query")
        return parse_results(response, self.shown)

    def update(self, text: str, url: str | None = None) -> None:
        """Run a SPARQL 1.1 Update request (one request: the server applies it whole or not at all)."""
        self._send("POST", url or self.url, data={"update": text}, what="update")

    def put_graph(self, graph: str, body: bytes, url: str | None = None) -> None:
        """Replace named graph ``graph`` with ``body`` (N-Triples) by the Graph Store HTTP Protocol."""
        self._send(
            "PUT", url or self.url, params={"graph": graph}, content=body, headers={"Content-Type": "application/n-triples"}, what="graph upload"
        )

    # ----- retries -----

    def _send(self, method: str, url: str, *, what: str, **kwargs: Any) -> httpx.Response:
        settings = self.settings
        shown = redact_url(url)
        reason = ""
        for attempt in range(settings.retries + 1):
            wait = settings.backoff * (2**attempt)
            with self._lock:
                self.requests += 1
            try:
                # Not streamed: the whole body is read here, so a connection dropped
                # mid-answer raises here too and is tried again.
                response = self._client.request(method, url, **kwargs)
            except httpx.TimeoutException:
                reason = f"no answer within {settings.timeout:g} s"
            except httpx.TransportError as exc:
                reason = f"connection failed: {one_line(str(exc)) or type(exc).__name__}"
            else:
                if response.status_code not in RETRY_STATUS:
                    _check_status(response, shown, what)
                    return response
                detail = _first_line(response)
                reason = f"HTTP {response.status_code} {response.reason_phrase}{': ' + detail if detail else ''}"
                wait = max(wait, _retry_after(response.headers))
            if attempt < settings.retries:
                wait = min(wait, MAX_WAIT)
                with self._lock:
                    self.retried += 1
                log.warning("%s: %s; trying again in %.1f s (%d of %d)", shown, reason, wait, attempt + 1, settings.retries)
                time.sleep(wait)
        tries = settings.retries + 1
        raise EndpointError(f"{shown}: {what} failed after {tries} {'try' if tries == 1 else 'tries'} ({reason})")


def _split_params(url: str) -> tuple[str, list[tuple[str, str]]]:
    parts = urlsplit(url)
    if not parts.query:
        return url, []
    return urlunsplit(parts._replace(query="")), parse_qsl(parts.query, keep_blank_values=True)


def _retry_after(headers: Mapping[str, str]) -> float:
    value = headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return 0.0  # an HTTP date: the exponential wait applies


def _check_status(response: httpx.Response, shown: str, what: str) -> None:
    status = response.status_code
    if status < 400:
        return
    detail = _first_line(response)
    if status in (401, 403):
        raise EndpointError(
            f"{shown}: the endpoint refused the {what} (HTTP {status} {response.reason_phrase}); "
            f"set {USER_ENV} and {PASSWORD_ENV} (or {TOKEN_ENV}) for an endpoint that needs credentials"
        )
    if status == 400:
        raise EndpointError(f"{shown}: the endpoint rejected the {what} (HTTP 400){': ' + detail if detail else ''}")
    raise EndpointError(f"{shown}: the endpoint answered HTTP {status} {response.reason_phrase} to the {what}{': ' + detail if detail else ''}")


def _first_line(response: httpx.Response) -> str:
    text = response.content[:2000].decode("utf-8", "replace")
    for line in text.splitlines():
        line = one_line(line)
        if line and not line.startswith("<"):
            return line[:300]
    return ""


def parse_results(response: httpx.Response, shown: str) -> list[dict[str, dict[str, str]]]:
    """The bindings of a SPARQL JSON results document; one line for anything else."""
    content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if "json" not in content_type:
        raise EndpointError(f"{shown}: the answer is not SPARQL JSON results (Content-Type {content_type or 'missing'})")
    try:
        document = json.loads(response.content)
        bindings = document["results"]["bindings"]
    except (ValueError, KeyError, TypeError):
        raise EndpointError(f"{shown}: the answer is not SPARQL JSON results (unreadable {content_type} document)") from None
    if not isinstance(bindings, list) or not all(isinstance(row, dict) for row in bindings):
        raise EndpointError(f"{shown}: the answer is not SPARQL JSON results (bindings are not a list of rows)")
    return bindings

