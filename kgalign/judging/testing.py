"""A judge that answers by script, for tests (kgalign's own, and those of code built on kgalign).

:class:`ScriptedJudge` implements the :class:`~kgalign.judging.base.Judge` protocol
without a model: it answers each question as its script says, records every question
it is asked, and can explain. It goes wherever a backend goes::

    from kgalign import align
    from kgalign.judging.testing import ScriptedJudge, pick

    judge = ScriptedJudge({"urn:l:1": pick("urn:r:7")}, default=None)
    result = align("left.ttl", "right.ttl", judge=judge)
    judge.sources  # the source IRIs it was asked about, one per question

A *script* says what to answer to one question. It is one of

- a ``str``: the model's reply. It is parsed as the real backends parse theirs
  (:func:`~kgalign.judging.prompt.parse_answer`): an allowed letter (``"B"``, ``" (B) "``)
  is that choice, anything else (``"I think it is A"``, a letter the question does not
  allow) is an invalid vote, with the text kept as ``raw``;
- ``None``: "none of these" (the question's ``none_letter``);
- :func:`pick` ``(iri)``: the option with that IRI, wherever the round shows it;
- an :class:`~kgalign.judging.base.Answer`: returned as it is (a copy), for answers
  no reply gives (a transport ``error``, particular token counts);
- a callable ``(question) -> script``: decides on the question;
- a mapping from source IRI to script: what to answer about each source;
- a list of scripts: the n-th question about a source (in a vote, its n-th round)
  gets the n-th.

Scripts nest (a mapping of lists of picks, say). A source missing from a mapping, or
asked more often than a list is long, gets ``default``, or fails the call with a
:class:`LookupError` naming it where no ``default`` is given.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from kgalign.judging.base import Answer
from kgalign.judging.prompt import Question

Script = str | None | Answer | Callable[[Question], Any] | Mapping[str, Any] | Sequence[Any]
Explanations = str | Mapping[str, str] | Callable[[Question, str], str]

_NO_DEFAULT: Any = object()


class pick:
    """The script "the option whose IRI is ``iri``": its letter in the round asked, or
    "none of these" where no option shown has that IRI (or ``iri`` is None)."""

    def __init__(self, iri: str | None) -> None:
        self.iri = iri

    def __call__(self, question: Question) -> str:
        """The reply naming it: its letter, or a pairwise question's "yes" ("no" where the candidate is another)."""
        for letter, option in zip(question.letters, question.options):
            if option.iri == self.iri:
                return question.answers[letter]
        return question.answers[question.none_letter]

    def __repr__(self) -> str:
        return f"pick({self.iri!r})"


class ScriptedJudge:
    """A :class:`~kgalign.judging.base.Judge` whose answers come from ``script`` (see the module docstring).

    Args:
        script: what to answer.
        default: the script for what ``script`` leaves out (a source missing from a
            mapping, a list run out); without it, such a question raises LookupError.
        logprob: the ``logprob`` of every valid answer: a number, None, or a callable
            ``(question, letter) -> float | None``. Invalid votes have none.
        prompt_tokens: the ``prompt_tokens`` of every answer; by default a rough count
            (a token per four characters of the question's text), as a server reports.
        explanations: given, the judge has ``explain`` (``kgalign run --explain``): one
            text for all, a mapping from source IRI to text (missing: ``""``), or a
            callable ``(question, chosen letter) -> text``; returned as given, not cleaned.
            Without it the judge has no ``explain`` attribute at all, as a backend that
            cannot explain.
        name, model_id: as a backend's (the answer cache keys on both).
        batch_size: questions per call the answer cache hands over (None: its default).
        params: what :meth:`cache_params` returns; by default a description of the
            script (callables by name: give ``params`` where two scripted judges with
            different callables share an answer cache).

    Everything it is asked is recorded: ``asked`` (the questions, in order),
    ``batches`` (the size of each ``answer`` call) and ``explained`` (the
    ``(question, chosen letter)`` pairs given to ``explain``).
    """

    def __init__(
        self,
        script: Script,
        *,
        default: Script = _NO_DEFAULT,
        logprob: float | Callable[[Question, str], float | None] | None = None,
        prompt_tokens: int | None = None,
        explanations: Explanations | None = None,
        name: str = "scripted",
        model_id: str = "scripted",
        batch_size: int | None = None,
        params: dict[str, Any] | None = None,
    ) -> None:
        self.script = script
        self.default = default
        self.logprob = logprob
        self.prompt_tokens = prompt_tokens
        self.explanations = explanations
        self.name = name
        self.model_id = model_id
        self.batch_size = batch_size
        self.params = params
        self.asked: list[Question] = []
        self.batches: list[int] = []
        self.explained: list[tuple[Question, str]] = []
        self._times_asked: dict[str, int] = {}
        if explanations is not None:
            # An instance attribute, so that a judge without explanations has no
            # ``explain`` and kgalign treats it as a backend that cannot explain.
            self.explain: Callable[[list[Question], list[str]], list[str]] = self._explain

    @property
    def sources(self) -> list[str]:
        """The source IRI of every question asked, in order."""
        return [q.source.iri for q in self.asked]

    @property
    def calls(self) -> int:
        """How many times ``answer`` was called."""
        return len(self.batches)

    def cache_params(self) -> dict[str, Any]:
        if self.params is not None:
            return dict(self.params)
        return {
            "script": _describe(self.script),
            "default": None if self.default is _NO_DEFAULT else _describe(self.default),
            "logprob": _describe(self.logprob),
        }

    def answer(self, questions: list[Question]) -> list[Answer]:
        self.batches.append(len(questions))
        answers = []
        for question in questions:
            source = question.source.iri
            round_index = self._times_asked.get(source, 0)
            self._times_asked[source] = round_index + 1
            self.asked.append(question)
            answers.append(self._resolve(self.script, question, round_index))
        return answers

    def _resolve(self, script: Any, question: Question, round_index: int) -> Answer:
        source = question.source.iri
        while True:
            if isinstance(script, Answer):
                return dataclasses.replace(script)
            if script is None:
                return self._reply(question, question.answers[question.none_letter])
            if isinstance(script, str):
                return self._reply(question, script)
            if isinstance(script, Mapping):
                script = script[source] if source in script else self._fallback(f"no answer scripted for source {source}")
            elif isinstance(script, Sequence):
                if round_index < len(script):
                    script = script[round_index]
                else:
                    script = self._fallback(f"source {source} asked {round_index + 1} times, scripted for {len(script)}")
            elif callable(script):
                script = script(question)
            else:
                raise TypeError(f"ScriptedJudge: cannot answer with {script!r} (a {type(script).__name__})")

    def _fallback(self, problem: str) -> Any:
        if self.default is _NO_DEFAULT:
            raise LookupError(f"ScriptedJudge: {problem}, and no default")
        return self.default

    def _reply(self, question: Question, raw: str) -> Answer:
        choice = question.parse(raw)
        logprob: float | None = None
        if choice is not None:
            logprob = self.logprob(question, choice) if callable(self.logprob) else self.logprob
        return Answer(
            raw=raw,
            choice=choice,
            logprob=None if logprob is None else float(logprob),
            prompt_tokens=len(question.text()) // 4 if self.prompt_tokens is None else self.prompt_tokens,
            answer_tokens=max(1, len(raw) // 4) if raw else 0,
        )

    def _explain(self, questions: list[Question], chosen: list[str]) -> list[str]:
        reasons = []
        for question, letter in zip(questions, chosen, strict=True):
            self.explained.append((question, letter))
            script = self.explanations
            if isinstance(script, str):
                reasons.append(script)
            elif isinstance(script, Mapping):
                reasons.append(script.get(question.source.iri, ""))
            else:
                assert callable(script)
                reasons.append(script(question, letter))
        return reasons


def _describe(script: Any) -> Any:
    """A script as JSON-serialisable data, for :meth:`ScriptedJudge.cache_params`."""
    if script is None or isinstance(script, (str, int, float, bool)):
        return script
    if isinstance(script, Answer):
        return dataclasses.asdict(script)
    if isinstance(script, pick):
        return {"pick": script.iri}
    if isinstance(script, Mapping):
        return {str(key): _describe(value) for key, value in script.items()}
    if isinstance(script, Sequence):
        return [_describe(item) for item in script]
    return f"<{getattr(script, '__module__', '?')}.{getattr(script, '__qualname__', type(script).__qualname__)}>"
