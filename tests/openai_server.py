"""A small OpenAI-compatible chat-completions server for tests, with scripted faults.

It listens on 127.0.0.1 only and answers deterministically: the letter of the option
whose JSON text shares the most character bigrams with the SOURCE line
(:func:`expected_letter`); to a pairwise question, yes where the two records' bigram
overlap reaches one half, with the log-probabilities of both words
(:func:`pair_probability`); or a reply given by script. Faults are scripted too, either
for the next requests in arrival order (``faults``) or for the questions whose SOURCE
line contains a given text (``faults_for``):

- ``"429"``: Too Many Requests (with ``Retry-After: 0``);
- ``"500"``, ``"502"``, ``"503"``: server errors;
- ``"401"``, ``"404"``: a wrong key or model;
- ``"hang"``: no answer for ``hang_seconds`` (longer than the client's timeout);
- ``"drop"``: the connection is closed without any response.

Every request body is recorded in :attr:`FakeOpenAIServer.requests` (headers too,
except that ``authorization`` is kept only as given, for the tests to check).
"""

from __future__ import annotations

import json
import logging
import math
import re
import socket
import threading
from collections import Counter, deque
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit
from typing import Any

log = logging.getLogger(__name__)

_OPTION = re.compile(r"^([A-Z]): (.*)$")
FAKE_LOGPROB = -0.25


def _bigrams(text: str) -> Counter[str]:
    text = text.lower()
    return Counter(text[i : i + 2] for i in range(len(text) - 1))


def expected_letter(messages: list[dict[str, str]]) -> str:
    """The letter the fake server answers for a kgalign question."""
    user = next(m["content"] for m in messages if m["role"] == "user")
    source = ""
    options: list[tuple[str, str]] = []
    for line in user.splitlines():
        if line.startswith("SOURCE: "):
            source = line[len("SOURCE: ") :]
            continue
        match = _OPTION.match(line)
        if match:
            options.append((match.group(1), match.group(2)))
    if not options:
        return "A"
    source_grams = _bigrams(source)
    best_letter, best_score = options[-1][0], 0
    for letter, text in options:
        if text == "none of these":
            continue
        score = sum((_bigrams(text) & source_grams).values())
        if score > best_score:
            best_letter, best_score = letter, score
    return best_letter


def _records(messages: list[dict[str, str]]) -> list[str]:
    """A pairwise question's two records (RECORD 1, RECORD 2); empty for any other question."""
    user = next((m["content"] for m in messages if m["role"] == "user"), "")
    return [line.split(": ", 1)[1] for line in user.splitlines() if line.startswith(("RECORD 1: ", "RECORD 2: "))]


def pair_probability(messages: list[dict[str, str]]) -> float | None:
    """The probability of yes the fake server gives a pairwise question: the Dice overlap
    of the two records' character bigrams, kept within [0.02, 0.98]; None for another question."""
    records = _records(messages)
    if len(records) != 2:
        return None
    first, second = (_bigrams(record) for record in records)
    total = sum(first.values()) + sum(second.values())
    dice = 2 * sum((first & second).values()) / total if total else 0.0
    return min(0.98, max(0.02, dice))


def source_line(messages: list[dict[str, str]]) -> str:
    """The question's SOURCE line; for a pairwise question, its two records' lines (so a
    scripted fault or reply keyed on a text reaches every question that shows it)."""
    user = next((m["content"] for m in messages if m["role"] == "user"), "")
    lines = user.splitlines()
    return next((line for line in lines if line.startswith("SOURCE: ")), "") or "\n".join(line for line in lines if line.startswith(("RECORD 1: ", "RECORD 2: ")))


class FakeOpenAIServer:
    """An OpenAI-compatible server on 127.0.0.1 that answers, or fails, by script.

    Args:
        model: the one model listed under ``/v1/models``.
        faults: faults for the next requests, in arrival order.
        faults_for: faults for the requests whose SOURCE line contains the key.
        replies: a fixed reply for the requests whose SOURCE line contains the key.
        reject_structured: answer HTTP 400 to requests with ``structured_outputs``.
        reject_logprobs: answer HTTP 400 to requests asking for logprobs.
        hang_seconds: how long a ``"hang"`` fault stays silent.
    """

    def __init__(
        self,
        model: str = "fake-judge",
        faults: Iterable[str] = (),
        faults_for: dict[str, Iterable[str]] | None = None,
        replies: dict[str, str] | None = None,
        reject_structured: bool = False,
        reject_logprobs: bool = False,
        hang_seconds: float = 3.0,
    ) -> None:
        self.model = model
        self.faults: deque[str] = deque(faults)
        self.faults_for = {key: deque(values) for key, values in (faults_for or {}).items()}
        self.replies = dict(replies or {})
        self.reject_structured = reject_structured
        self.reject_logprobs = reject_logprobs
        self.hang_seconds = hang_seconds
        self.requests: list[dict[str, Any]] = []
        self.answered = 0
        self.injected: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> FakeOpenAIServer:
        server = self

        class Handler(_Handler):
            owner = server

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def next_fault(self, source: str) -> str | None:
        with self._lock:
            for key, queue in self.faults_for.items():
                if key in source and queue:
                    fault = queue.popleft()
                    self.injected.append(fault)
                    return fault
            if self.faults:
                fault = self.faults.popleft()
                self.injected.append(fault)
                return fault
        return None

    def reply_for(self, messages: list[dict[str, str]]) -> str:
        source = source_line(messages)
        for key, reply in self.replies.items():
            if key in source:
                return reply
        p_yes = pair_probability(messages)
        if p_yes is not None:
            return "yes" if p_yes >= 0.5 else "no"
        return expected_letter(messages)


class _Handler(BaseHTTPRequestHandler):
    owner: FakeOpenAIServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
        log.debug("fake server: " + format, *args)

    def _send_json(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        body = json.dumps(payload).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True

    def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        self._send_json(status, {"error": {"message": message, "type": "invalid_request_error", "code": status}}, headers)

    def do_GET(self) -> None:  # noqa: N802 (stdlib name)
        if urlsplit(self.path).path.rstrip("/") == "/v1/models":
            model = {"id": self.owner.model, "object": "model", "created": 0, "owned_by": "kgalign-tests"}
            self._send_json(200, {"object": "list", "data": [model]})
        else:
            self._error(404, f"no route {self.path}")

    def do_POST(self) -> None:  # noqa: N802 (stdlib name)
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        owner = self.owner
        with owner._lock:
            owner.requests.append({"body": body, "authorization": self.headers.get("Authorization"), "query": urlsplit(self.path).query})
        if urlsplit(self.path).path.rstrip("/") != "/v1/chat/completions":
            self._error(404, f"no route {self.path}")
            return
        messages = body.get("messages") or []
        fault = owner.next_fault(source_line(messages))
        if fault == "drop":
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if fault == "hang":
            owner._stop.wait(owner.hang_seconds)
            self.close_connection = True
            return
        if fault == "429":
            self._error(429, "rate limited", {"Retry-After": "0"})
            return
        if fault is not None and fault.isdigit():
            self._error(int(fault), f"scripted failure {fault}")
            return
        if body.get("model") != owner.model:
            self._error(404, f"The model `{body.get('model')}` does not exist.")
            return
        if owner.reject_structured and "structured_outputs" in body:
            self._error(400, "Unrecognized request argument supplied: structured_outputs")
            return
        if owner.reject_logprobs and body.get("logprobs"):
            self._error(400, "logprobs are not supported by this server")
            return
        reply = owner.reply_for(messages)
        prompt_tokens = sum(len(m.get("content", "")) for m in messages) // 4
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": reply},
            "finish_reason": "length",
            "logprobs": None,
        }
        if body.get("logprobs"):
            token = {"token": reply, "logprob": FAKE_LOGPROB, "bytes": list(reply.encode("utf-8"))}
            top = [token]
            p_yes = pair_probability(messages)
            if p_yes is not None and reply in ("yes", "no"):
                # A pairwise answer: both words listed, as a served model's top log-probabilities list them.
                words = {"yes": math.log(p_yes), "no": math.log(1.0 - p_yes)}
                top = [{"token": word, "logprob": logprob, "bytes": list(word.encode("utf-8"))} for word, logprob in words.items()]
                token = next(t for t in top if t["token"] == reply)
            choice["logprobs"] = {"content": [dict(token, top_logprobs=top)]}
        with owner._lock:
            owner.answered += 1
        self._send_json(
            200,
            {
                "id": f"chatcmpl-{owner.answered}",
                "object": "chat.completion",
                "created": 0,
                "model": owner.model,
                "choices": [choice],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 1, "total_tokens": prompt_tokens + 1},
            },
        )
