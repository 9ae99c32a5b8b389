"""Judge backend ``openai``: any OpenAI-compatible chat-completions server.

Works with ``vllm serve``, llama.cpp's server, or any gateway speaking the OpenAI API.
Each question is one chat-completions request, sent concurrently from a bounded thread
pool, with ``temperature=0`` and ``max_tokens=1`` (a pairwise question held to its two
words by structured output: :data:`~kgalign.judging.prompt.PAIR_ANSWER_TOKENS`).

- Structured output: vLLM servers accept ``structured_outputs={"choice": letters}``,
  which restricts the answer to the option letters (a pairwise question: yes or no). ``structured=None`` (the default)
  tries it and, if the server rejects the field, falls back to strict parsing for the
  rest of the run; other servers' answers are always parsed strictly
  (:func:`kgalign.judging.prompt.parse_answer`): anything but one allowed letter is an
  invalid vote, never a guess.
- Logprobs: asked for (with ``top_logprobs``); a pairwise answer's probability of yes
  is read from both words where the server lists them. A server that rejects them is
  asked again without, and never again with them.
- Retries are ours (the client's own ``max_retries`` is 0) so that they are counted in
  :attr:`Answer.retries`: HTTP 408/409/429 and 5xx, timeouts and dropped connections
  are retried with exponential backoff and jitter, up to ``retries`` times. A request
  that still fails becomes ``Answer(choice=None, error=...)``, which the answer cache
  does not keep, so the next run asks again. A wrong key, model or URL (HTTP 401, 403,
  404) stops the run with one clear line instead.
- The API key is read from the environment variable named by ``key_env`` and is never
  logged, cached or written to the run manifest; nor are the user, password and
  credential-like query parameters of ``base_url`` (:mod:`kgalign.runtime.redact`).
"""

from __future__ import annotations

import logging
import os
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from kgalign.errors import KgalignError, MissingDependencyError
from kgalign.judging.base import Answer
from kgalign.judging.prompt import PAIR_ANSWER_TOKENS, PAIR_TOP_LOGPROBS, Question, answer_logprobs, spells
from kgalign.runtime.redact import redact_text, redact_url, register_secret, register_url_secrets

log = logging.getLogger(__name__)

DEFAULT_KEY_ENV = "OPENAI_API_KEY"
#: Sent when the key variable is unset: local servers (vLLM, llama.cpp) accept any key.
PLACEHOLDER_KEY = "EMPTY"
RETRYABLE_STATUS = frozenset({408, 409, 429})
#: Extra tokens allowed, once, when a server spends its only token on whitespace.
WIDEN_TOKENS = 4
MAX_TOP_LOGPROBS = 20


def server_label(base_url: str) -> str:
    """``host:port`` of a base URL, without user, password, path or query."""
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    return f"{host}:{parts.port}" if parts.port else host


class OpenAIJudge:
    """Judge backend ``openai``: one chat-completions request per question.

    Args:
        base_url: the server's API root, e.g. ``http://127.0.0.1:8000/v1`` (required).
        llm_model: the served model name; falls back to ``model``, and then to the only
            model the server lists under ``/models``.
        model: the generic ``--model`` option (used when ``llm_model`` is not given).
        key_env: name of the environment variable holding the API key.
        concurrency: requests in flight at once.
        timeout: seconds before one request counts as timed out (and is retried).
        retries: how many times one question is sent again after a transient failure.
        structured: send vLLM's ``structured_outputs`` (True), never (False), or try it
            and fall back if the server rejects it (None).
        logprobs: ask for the log-probability of the answer token.
        max_tokens: tokens the server may generate (one letter is one token).
        backoff: first retry delay in seconds; doubled on each further retry.
        backoff_max: upper bound of one retry delay (and of a server's Retry-After).
        adapter: not supported here: serve the adapter as a model of its own instead.
    """

    name = "openai"

    def __init__(
        self,
        base_url: str | None = None,
        llm_model: str | None = None,
        model: str | None = None,
        key_env: str = DEFAULT_KEY_ENV,
        concurrency: int = 8,
        timeout: float = 60.0,
        retries: int = 5,
        structured: bool | None = None,
        logprobs: bool = True,
        max_tokens: int = 1,
        backoff: float = 0.5,
        backoff_max: float = 30.0,
        adapter: str | None = None,
        **_: Any,
    ) -> None:
        try:
            import openai
        except ImportError:
            raise MissingDependencyError("--judge openai", "openai", "openai") from None
        if not base_url:
            raise KgalignError("--judge openai needs --llm-url (the server's API root, e.g. http://127.0.0.1:8000/v1)")
        if adapter:
            raise KgalignError(
                "--adapter is not applied by --judge openai: serve the adapter as a model of its own "
                "(vllm serve MODEL --enable-lora --lora-modules NAME=PATH) and pass --llm-model NAME"
            )
        if urlsplit(base_url).scheme not in ("http", "https"):
            raise KgalignError(f"--llm-url {server_label(base_url) or redact_url(base_url)!r}: expected an http:// or https:// URL")
        self._openai = openai
        self.base_url = base_url.rstrip("/")
        self.server = server_label(self.base_url)
        self.key_env = key_env or DEFAULT_KEY_ENV
        self.concurrency = max(1, int(concurrency))
        self.timeout = float(timeout)
        self.retries = max(0, int(retries))
        self.structured_mode = structured
        self.max_tokens = max(1, int(max_tokens))
        self.backoff = max(0.0, float(backoff))
        self.backoff_max = max(self.backoff, float(backoff_max))
        # Several answers committed per chunk by the cache; a few rounds of the pool each.
        self.chunk_size = self.concurrency * 4
        self._lock = threading.Lock()
        self._structured: bool | None = structured
        self._logprobs = bool(logprobs)
        self._key = os.environ.get(self.key_env) or PLACEHOLDER_KEY
        if self._key != PLACEHOLDER_KEY:
            register_secret(self._key)
        register_url_secrets(self.base_url)
        # The client appends paths to base_url verbatim, so a query (a gateway's token,
        # say) is split off and sent with every request instead.
        parts = urlsplit(self.base_url)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        root = urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))
        self._client = openai.OpenAI(
            base_url=root,
            default_query=query or None,
            api_key=self._key,
            timeout=self.timeout,
            max_retries=0,
        )
        self.model = llm_model or model or self._only_served_model()
        self.model_id = f"openai:{self.model}"
        log.info(
            "openai judge: model %s at %s (concurrency %d, timeout %gs, retries %d, structured %s)",
            self.model,
            self.server,
            self.concurrency,
            self.timeout,
            self.retries,
            "auto" if structured is None else structured,
        )

    def cache_params(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "server": self.server,
            "temperature": 0.0,
            "max_tokens": self.max_tokens,
            "pair_max_tokens": PAIR_ANSWER_TOKENS,
            "structured": "auto" if self.structured_mode is None else self.structured_mode,
        }

    def answer(self, questions: list[Question]) -> list[Answer]:
        """One answer per question, in order; requests run ``concurrency`` at a time."""
        if not questions:
            return []
        workers = min(self.concurrency, len(questions))
        cancelled = threading.Event()
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kgalign-openai")
        try:
            return list(pool.map(lambda question: self._ask(question, cancelled), questions))
        except BaseException:
            # Ctrl-C or a configuration error: stop waiting, retrying and queueing.
            cancelled.set()
            raise
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        self._client.close()

    def _only_served_model(self) -> str:
        """The model name when none was given: the one model the server lists."""
        try:
            names = [m.id for m in self._client.models.list()]
        except self._openai.OpenAIError as exc:
            raise KgalignError(
                f"--judge openai: no --llm-model given and listing the models at {self.server} failed "
                f"({self._describe(exc)}); pass --llm-model NAME"
            ) from None
        if len(names) != 1:
            listed = ", ".join(names[:5]) or "none"
            raise KgalignError(f"--judge openai: the server at {self.server} serves {listed}; pick one with --llm-model NAME")
        return names[0]

    def _request_args(self, question: Question, structured: bool, logprobs: bool, max_tokens: int) -> dict[str, Any]:
        if structured and question.pairwise:
            max_tokens = max(max_tokens, PAIR_ANSWER_TOKENS)  # the grammar stops it after the word
        args: dict[str, Any] = {
            "model": self.model,
            "messages": question.messages(),
            "max_tokens": max_tokens,
            "temperature": 0.0,
        }
        if logprobs:
            args["logprobs"] = True
            args["top_logprobs"] = min(PAIR_TOP_LOGPROBS if question.pairwise else len(question.letters), MAX_TOP_LOGPROBS)
        if structured:
            args["extra_body"] = {"structured_outputs": {"choice": list(question.answers.values())}}
        return args

    def _ask(self, question: Question, cancelled: threading.Event | None = None) -> Answer:
        """Send one question until it is answered, retries run out, or it cannot succeed."""
        openai = self._openai
        cancelled = cancelled or threading.Event()
        with self._lock:
            structured = self._structured is not False
            logprobs = self._logprobs
        max_tokens = self.max_tokens
        retries = 0
        while True:
            if cancelled.is_set():
                return Answer(raw="", choice=None, error="cancelled", retries=retries)
            try:
                response = self._client.chat.completions.create(
                    **self._request_args(question, structured, logprobs, max_tokens)
                )
            except (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError) as exc:
                raise KgalignError(
                    f"--judge openai: the server at {self.server} refused the request for model "
                    f"{self.model!r} ({self._describe(exc)}); check --llm-url, --llm-model and --llm-key-env"
                ) from None
            except openai.APIStatusError as exc:
                status = exc.status_code
                if status in (400, 422):
                    dropped = self._step_down(exc, structured, logprobs)
                    if dropped == "logprobs":
                        logprobs = False
                        continue
                    if dropped == "structured":
                        structured = False
                        continue
                if (status in RETRYABLE_STATUS or status >= 500) and retries < self.retries:
                    retries += 1
                    self._wait(retries, exc.response.headers.get("retry-after"), self._describe(exc), cancelled)
                    continue
                return self._failed(question, self._describe(exc), retries)
            except openai.APIConnectionError as exc:  # timeouts and dropped connections
                if retries < self.retries:
                    retries += 1
                    self._wait(retries, None, self._describe(exc), cancelled)
                    continue
                return self._failed(question, self._describe(exc), retries)
            except openai.OpenAIError as exc:  # a malformed response: not worth retrying
                return self._failed(question, self._describe(exc), retries)

            self._remember(structured, logprobs)
            choice_obj = response.choices[0] if response.choices else None
            raw = (choice_obj.message.content or "") if choice_obj is not None else ""
            if (
                not raw.strip()
                and choice_obj is not None
                and choice_obj.finish_reason == "length"
                and max_tokens == self.max_tokens
            ):
                max_tokens = self.max_tokens + WIDEN_TOKENS
                continue
            usage = response.usage
            choice = question.parse(raw)
            if choice is None:
                log.info("invalid answer %r (answers %s): counted as an invalid vote", raw[:80], "/".join(question.answers.values()))
            every = _answer_logprobs(choice_obj, question.answers) if logprobs else {}
            return Answer(
                raw=raw,
                choice=choice,
                logprob=_letter_logprob(choice_obj, question.answers[choice]) if choice is not None and logprobs else None,
                logprobs=every if len(every) == len(question.letters) else None,
                scores=every if len(every) == len(question.letters) else None,
                prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
                answer_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
                retries=retries,
            )

    def _step_down(self, exc: Exception, structured: bool, logprobs: bool) -> str | None:
        """Which optional request field to leave out after a 400/422, or None if none is left.

        The change is only remembered for the whole run once a request without the
        field succeeds (:meth:`_remember`), so one bad prompt does not switch it off.
        """
        message = self._describe(exc).lower()
        if logprobs and "logprob" in message:
            return "logprobs"
        with self._lock:
            auto = self._structured is None
        if structured and auto:
            return "structured"
        if logprobs:
            return "logprobs"
        return None

    def _remember(self, structured: bool, logprobs: bool) -> None:
        """Record what the server accepted, after a successful request."""
        with self._lock:
            if self._structured is None:
                self._structured = structured
                if structured:
                    log.info("%s accepts structured outputs: answers are restricted to the option letters", self.server)
                else:
                    log.info("%s rejected structured outputs: answers are parsed strictly", self.server)
            if self._logprobs and not logprobs:
                self._logprobs = False
                log.info("%s rejected logprobs: confidence is the vote share alone", self.server)

    def _wait(self, attempt: int, retry_after: str | None, reason: str, cancelled: threading.Event) -> None:
        """Sleep before retry number ``attempt``: exponential, with jitter, bounded."""
        delay = min(self.backoff_max, self.backoff * (2 ** (attempt - 1)))
        delay = random.uniform(delay / 2, delay)
        if retry_after:
            try:
                delay = max(delay, min(self.backoff_max, float(retry_after)))
            except ValueError:
                pass
        log.debug("retry %d/%d in %.2fs after %s", attempt, self.retries, delay, reason)
        cancelled.wait(delay)

    def _describe(self, exc: Exception) -> str:
        """:func:`describe_error`, with the API key and the URL's credentials blotted out should a server echo them."""
        return redact_text(describe_error(exc))

    def _failed(self, question: Question, reason: str, retries: int) -> Answer:
        log.warning(
            "no answer from %s for %r after %d retries: %s",
            self.server,
            question.source.label or question.source.iri,
            retries,
            reason,
        )
        return Answer(raw="", choice=None, error=reason, retries=retries)


def describe_error(exc: Exception) -> str:
    """A short, key-free description of a client error."""
    status = getattr(exc, "status_code", None)
    text = str(getattr(exc, "message", None) or exc).replace("\n", " ")
    if len(text) > 200:
        text = text[:199] + "\u2026"
    name = type(exc).__name__
    return f"{name} (HTTP {status}): {text}" if status else f"{name}: {text}"


def _letter_logprob(choice_obj: Any, letter: str) -> float | None:
    """The log-probability of ``letter`` (an answer: a letter, or a pairwise yes or no, in
    any letter case) at the first non-blank answer position."""
    logprobs = getattr(choice_obj, "logprobs", None)
    for item in getattr(logprobs, "content", None) or []:
        if not (item.token or "").strip():
            continue
        if spells(item.token, letter):
            return float(item.logprob)
        for top in item.top_logprobs or []:
            if spells(top.token, letter):
                return float(top.logprob)
        return None
    return None


def _answer_logprobs(choice_obj: Any, answers: dict[str, str]) -> dict[str, float]:
    """Each letter's log-probability where the server listed its answer among the first
    answer position's top log-probabilities (the best spelling of it)."""
    logprobs = getattr(choice_obj, "logprobs", None)
    for item in getattr(logprobs, "content", None) or []:
        if not (item.token or "").strip():
            continue
        return answer_logprobs([(item.token, item.logprob), *((top.token, top.logprob) for top in item.top_logprobs or [])], answers)
    return {}
