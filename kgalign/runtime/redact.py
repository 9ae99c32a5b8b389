"""Credentials kept out of what kgalign writes: run.json, votes.jsonl, log records, error lines.

A URL loses its user and password (``http://***@host/v1``) and the values of its query
(and fragment) parameters that are named like credentials (``api_key``, ``token``,
``sig``...) or look like one (``sk-...``, long opaque strings): ``?api_key=***``.
Secrets a judge holds (its API key, the password of its URL) are registered with
:func:`register_secret` and blotted out of any text passed to :func:`redact_text`.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

MASK = "***"
#: Shorter secrets are not blotted out of free text (they would mangle ordinary words).
MIN_SECRET_CHARS = 4

_SENSITIVE_NAME = re.compile(r"key|token|secret|passw|pwd|auth|sig|credential|session|jwt|bearer", re.IGNORECASE)
_SECRET_VALUE = re.compile(
    r"(?:sk|pk|rk|hf|ghp|gho|ghs|glpat|xox[abpr])[-_][A-Za-z0-9_\-]{8,}"  # vendors' key prefixes
    r"|(?=[A-Za-z0-9_\-.~+/=%]*\d)(?=[A-Za-z0-9_\-.~+/=%]*[A-Za-z])[A-Za-z0-9_\-.~+/=%]{32,}"  # long opaque tokens
)
_USERINFO = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)?(?P<userinfo>[^/?#\s]*@)")
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>]+")

_secrets: set[str] = set()
_lock = threading.Lock()


def redact_url(url: str) -> str:
    """``url`` without credentials: userinfo and credential-like parameter values become ``***``."""
    url = _USERINFO.sub(lambda m: f"{m.group('scheme') or ''}{MASK}@", url, count=1)
    head, hash_sign, fragment = url.partition("#")
    base, question_mark, query = head.partition("?")
    return base + question_mark + _redact_params(query) + hash_sign + _redact_params(fragment)


def url_secrets(url: str) -> list[str]:
    """The credential parts of ``url`` (user, password, credential-like parameter values), undecoded and decoded."""
    found: list[str] = []
    match = _USERINFO.match(url)
    if match:
        user, _, password = match.group("userinfo")[:-1].partition(":")
        found += [user, password]
    head = url.partition("#")
    for params in (head[0].partition("?")[2], head[2]):
        for param in params.split("&"):
            name, _, value = param.partition("=")
            if value and _is_secret_param(name, value):
                found.append(value)
    return [s for text in found for s in dict.fromkeys((text, unquote(text))) if s]


def redact_text(text: str) -> str:
    """``text`` with every URL in it redacted and every registered secret replaced by ``***``."""
    text = _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text


def redact_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """A judge's options as run.json stores them: URLs redacted, values of credential-named options masked.

    Options naming an environment variable (``key_env``) keep their value: it is a name, not the secret.
    """
    redacted: dict[str, Any] = {}
    for name, value in options.items():
        if isinstance(value, str) and value:
            if "://" in value or name.endswith("url"):
                value = redact_url(value)
            elif _SENSITIVE_NAME.search(name) and not name.endswith("_env"):
                value = MASK
        redacted[name] = value
    return redacted


def register_secret(secret: str | None) -> None:
    """Blot ``secret`` out of every later :func:`redact_text` (and so out of the CLI's log)."""
    if secret and len(secret) >= MIN_SECRET_CHARS:
        with _lock:
            _secrets.add(secret)


def register_url_secrets(url: str) -> None:
    for secret in url_secrets(url):
        register_secret(secret)


class RedactingFilter(logging.Filter):
    """A handler filter that passes every record through :func:`redact_text`, its traceback included."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a malformed record: logging reports it itself
            return True
        cleaned = redact_text(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        return True


def _redact_params(params: str) -> str:
    if not params:
        return params
    out = []
    for param in params.split("&"):
        name, equals, value = param.partition("=")
        out.append(f"{name}={MASK}" if equals and value and _is_secret_param(name, value) else param)
    return "&".join(out)


def _is_secret_param(name: str, value: str) -> bool:
    return bool(_SENSITIVE_NAME.search(unquote(name)) or _SECRET_VALUE.fullmatch(unquote(value)))
