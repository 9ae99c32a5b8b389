"""LoRA supervised fine-tuning of the judge on its own questions.

The model reads each question as the local judge does (the chat template with the
assistant turn opened, :func:`kgalign.judging.local.chat_prompt`) followed by the
answer letter's token; the loss is on that token only, from the logits of the last
prompt position (the one the judge reads), under bfloat16 autocast where the hardware
computes it natively (``dtype="auto"``).
Validation accuracy is the local judge's own answer (:meth:`LocalJudge.choose` on
:meth:`LocalJudge.letter_scores`, calibrated as at run time) on held-out sources. For
pairwise questions, whose answers are a probability of yes compared with a threshold,
validation also ranks: the best F1 over every threshold and the ROC AUC of the
probabilities (:func:`ranking`). The adapter kept is the one with the best validation
score (:meth:`Evaluation.selection_score`: best F1 for pairwise questions, else accuracy), which may
be the untrained one. Training stops at ``max_steps``, after ``patience`` evaluations without
improvement, or when the time budget is spent.

ADAPTER_DIR afterwards holds the best adapter (``adapter_config.json``,
``adapter_model.safetensors``: what ``kgalign run --adapter`` and vLLM load),
``kgalign-finetune.json`` (recipe, data sizes, seed, base model, metrics before and
after), ``best/`` (the best adapter so far) and the last two ``checkpoint-N/`` folders
(adapter, optimizer and scheduler state, trainer state) that ``resume`` continues from.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import platform
import random
import re
import shutil
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, cast

from kgalign import __version__
from kgalign.errors import KgalignError, first_line
from kgalign.finetune.data import Example, TrainingData, position_name
from kgalign.io.atomic import check_output_path, make_output_dir, write_text_atomic
from kgalign.judging.adapters import TRAINING_RECORD
from kgalign.judging.local import LocalJudge, answer_token_id, chat_prompt, default_model_path, load_tokenizer
from kgalign.judging.vote import two_way_yes
from kgalign.runtime.device import resolve_device
from kgalign.runtime.precision import float32_output_head, precision_context, resolve_precision
from kgalign.runtime.progress import progress_bar
from kgalign.runtime.quiet_loading import loading_quietly
from kgalign.runtime.torch_env import cpu_kernel_defaults

log = logging.getLogger(__name__)

METADATA_FILE = TRAINING_RECORD
STATE_FILE = "trainer_state.json"
OPTIMIZER_FILE = "optimizer.pt"
BEST_DIR = "best"
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin", "README.md", METADATA_FILE)
#: What a fully fine-tuned model's folder holds besides its metadata: the weights, their
#: config and the base model's tokenizer, so that ``--model DIR`` loads it as it is.
MODEL_FILES = ("config.json", "generation_config.json", "model.safetensors")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja", "vocab.json", "merges.txt")
KEEP_CHECKPOINTS = 2
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


@dataclass
class TrainConfig:
    """Every option of a fine-tuning run."""

    model: str | None = None
    max_steps: int = 300
    batch_size: int = 8
    lr: float = 2e-4
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_layers: int = 0  # 0: every layer; N: the top N transformer layers only
    warmup_steps: int = 10
    eval_every: int = 50
    save_every: int = 50
    patience: int = 3
    max_val: int = 256
    eval_batch_size: int = 8
    #: Most prompt tokens (rows x padded width) in one forward pass; a step's batch is cut
    #: into micro-batches within it and their gradients summed, so memory does not grow
    #: with --batch-size or with the length of the questions.
    token_budget: int = 1024
    #: Recompute each layer's activations in the backward pass instead of keeping them:
    #: "auto" on a CPU (memory bound, about a third more compute), off on a GPU.
    gradient_checkpointing: str = "auto"
    minutes: float | None = None
    seed: int = 0
    resume: bool = False
    force: bool = False
    #: An adapter folder whose weights training starts from (its LoRA settings replace lora_*).
    init_adapter: str | None = None
    #: Train every weight of the model (AnyMatch's full fine-tuning) instead of a LoRA
    #: adapter: the output folder then holds a whole model (``kgalign run --model DIR``),
    #: and lora_* do not apply.
    full: bool = False
    device: str | None = None  # None or "auto": the first CUDA GPU when torch sees one, else the CPU
    dtype: str = "auto"
    threads: int | None = None


@dataclass
class Evaluation:
    """Validation figures of one model state."""

    step: int
    accuracy: float
    accuracy_raw: float
    questions: int
    position_wins: dict[str, int]
    gold_positions: dict[str, int]
    accuracy_by_position: dict[str, float]
    #: Accuracy of each recipe source's validation questions (empty outside a recipe).
    accuracy_by_source: dict[str, float] = field(default_factory=dict)
    #: Pairwise questions only (None otherwise, or without both answers among them): the
    #: best F1 of "yes" over every threshold on the probability of yes, that threshold,
    #: and the ROC AUC. Accuracy at one half misses what a judge biased to "no" has learnt:
    #: with two non-matches a match, answering "no" to all is right three times in four.
    best_f1: float | None = None
    best_threshold: float | None = None
    auc: float | None = None
    #: Pairwise questions: each recipe source's ROC AUC (sources with both answers).
    auc_by_source: dict[str, float] = field(default_factory=dict)

    def brief(self) -> str:
        ranked = f", best F1 {self.best_f1:.4f} at p >= {self.best_threshold:.3f}, ROC AUC {self.auc:.4f}" if self.best_f1 is not None and self.auc is not None else ""
        return f"step {self.step}: validation accuracy {self.accuracy:.4f} (uncalibrated {self.accuracy_raw:.4f}, {self.questions} questions{ranked})"

    def selection_score(self) -> float:
        """What chooses the adapter kept: best F1 for pairwise questions, else the better accuracy."""
        if self.best_f1 is not None:
            return self.best_f1
        return max(self.accuracy, self.accuracy_raw)


@dataclass
class FinetuneResult:
    """What :func:`finetune` did; ``model`` is the trained peft model, with the best adapter loaded."""

    output: Path
    before: Evaluation
    after: Evaluation
    steps: int
    best_step: int
    stopped: str
    resumed_from: int | None
    history: list[dict[str, Any]]
    metadata: dict[str, Any]
    model: Any = field(repr=False, default=None)
    tokenizer: Any = field(repr=False, default=None)


def load_base(model: str | None, device: str, dtype: str = "auto", attention: str | None = None) -> tuple[Any, Any, Path]:
    """The base causal LM (float32 weights unless ``dtype`` is bfloat16), its tokenizer, its folder.

    ``auto`` keeps float32 weights everywhere: the arithmetic still runs in bfloat16
    where the hardware has it (autocast, see :func:`finetune`), while the weights and
    the optimizer's updates stay in float32 (the configuration measured on an H100;
    bfloat16 weights halve the memory).
    ``attention`` picks transformers' attention implementation (default: the model's).
    """
    import torch
    from transformers import AutoModelForCausalLM

    path = Path(model) if model else default_model_path()
    if not path.is_dir():
        raise KgalignError(f"{path}: model folder not found")
    if dtype == "auto":
        dtype = "float32"
    tokenizer = load_tokenizer(path)
    extra = {"attn_implementation": attention} if attention else {}
    with loading_quietly():
        base = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype), **extra).to(device)
    return base, tokenizer, path


def add_lora(base: Any, config: TrainConfig) -> Any:
    """``base`` with fresh LoRA adapters on its linear layers (the output head excluded).

    With ``config.lora_layers`` N > 0 only the top N transformer layers get adapters:
    the gradient then stops below them, which on a CPU makes a step about twice as
    fast and takes a third of the memory (SmolLM2-135M, top 8 of 30 layers).
    """
    from peft import LoraConfig, get_peft_model

    options: dict[str, Any] = {"target_modules": "all-linear"}
    layers = int(getattr(base.config, "num_hidden_layers", 0) or 0)
    if 0 < config.lora_layers < layers:
        options = {
            "target_modules": _linear_names(base),
            "layers_to_transform": list(range(layers - config.lora_layers, layers)),
        }
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        bias="none",
        task_type="CAUSAL_LM",
        **options,
    )
    return get_peft_model(base, lora)


def _from_adapter(base: Any, folder: str, model_path: Path) -> Any:
    """``base`` with the LoRA adapter in ``folder`` loaded as trainable weights (one line
    if it does not fit; a warning where it names another base model)."""
    from peft import PeftModel

    try:
        named = json.loads((Path(folder) / "adapter_config.json").read_text(encoding="utf-8")).get("base_model_name_or_path")
    except (OSError, ValueError):
        named = None
    if named and Path(str(named)).name != model_path.name:
        log.warning("%s was trained on %s, not on %s: its weights may not suit this model", folder, named, model_path.name)
    try:
        model = PeftModel.from_pretrained(base, folder, is_trainable=True)
    except (RuntimeError, ValueError, KeyError, OSError) as exc:
        raise KgalignError(f"{folder}: this adapter does not fit the base model ({first_line(exc)})") from None
    log.info("starting from the adapter in %s", folder)
    return model


def _linear_names(model: Any) -> list[str]:
    """Names of the linear layers inside the transformer blocks (``q_proj``, ``up_proj``...)."""
    import torch

    output = model.get_output_embeddings()
    names = {name.rsplit(".", 1)[-1] for name, module in model.named_modules() if isinstance(module, torch.nn.Linear) and module is not output}
    return sorted(names)


def encode(tokenizer: Any, examples: list[Example]) -> list[list[int]]:
    """Token ids of each example: its prompt exactly as the local judge reads it, then the answer token."""
    texts = [chat_prompt(tokenizer, e.question) for e in examples]
    prompts = tokenizer(texts, add_special_tokens=False)["input_ids"]
    return [list(ids) + [answer_token_id(tokenizer, e.question.answers[e.answer])] for ids, e in zip(prompts, examples)]


def collate(sequences: list[list[int]], pad_id: int, device: str) -> dict[str, Any]:
    """A left-padded batch of the prompts (each sequence but its last token) and their answer tokens."""
    import torch

    width = max(len(s) for s in sequences) - 1
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        input_ids[row, width - len(seq) + 1 :] = torch.tensor(seq[:-1])
        attention[row, width - len(seq) + 1 :] = 1
    answers = torch.tensor([seq[-1] for seq in sequences], dtype=torch.long)
    return {"input_ids": input_ids.to(device), "attention_mask": attention.to(device), "answers": answers.to(device)}


def micro_batches(sequences: list[list[int]], token_budget: int) -> list[list[list[int]]]:
    """``sequences`` cut into consecutive groups whose padded size (rows x longest) fits ``token_budget``.

    A sequence longer than the budget alone is a group of its own. Sorting by length
    first would waste less padding but would change which examples share a forward
    pass; the answers' loss does not depend on it, so the order is kept.
    """
    groups: list[list[list[int]]] = []
    current: list[list[int]] = []
    width = 0
    for seq in sequences:
        wider = max(width, len(seq) - 1)
        if current and wider * (len(current) + 1) > token_budget:
            groups.append(current)
            current, wider = [], len(seq) - 1
        current.append(seq)
        width = wider
    if current:
        groups.append(current)
    return groups


def answer_loss(model: Any, batch: dict[str, Any], precision: str = "float32", device: str = "cpu") -> Any:
    """Mean cross-entropy of the answer tokens, from the logits of the last prompt position only.

    The judge reads exactly these logits at run time; computing the vocabulary-sized
    output at that one position, not at every one, saves most of the memory and a
    fifth of the compute of a small model's step.
    """
    import torch

    with precision_context(precision, device):
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], logits_to_keep=1).logits
    return torch.nn.functional.cross_entropy(logits[:, -1, :].float(), batch["answers"])


def batch_loss(model: Any, tokenizer: Any, examples: list[Example], device: str = "cpu", precision: str = "float32") -> float:
    """Mean cross-entropy of the answer tokens of ``examples`` (no gradient, dropout off)."""
    import torch

    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            batch = collate(encode(tokenizer, examples), tokenizer.pad_token_id, device)
            return float(answer_loss(model, batch, precision, device))
    finally:
        model.train(was_training)


def evaluate(model: Any, tokenizer: Any, examples: list[Example], step: int, device: str = "cpu", batch_size: int = 8) -> Evaluation:
    """Validation accuracy of ``model`` answering as the local judge answers, and where its answers fall."""
    was_training = model.training
    model.eval()
    try:
        judge = LocalJudge.from_loaded(model, tokenizer, "local:finetune", device=device, batch_size=batch_size)
        scores = judge.letter_scores([e.question for e in examples]) if examples else []
        right = right_raw = 0
        wins: Counter[str] = Counter()
        gold: Counter[str] = Counter()
        right_at: Counter[str] = Counter()
        asked: Counter[str] = Counter()
        right_in: Counter[str] = Counter()
        for example, letter_scores in zip(examples, scores):
            chosen = judge.choose(example.question, letter_scores)
            raw = judge.choose(example.question, letter_scores, calibrate=False)
            right += chosen == example.answer
            right_raw += raw == example.answer
            wins[position_name(example.question, chosen)] += 1
            gold[example.position] += 1
            right_at[example.position] += chosen == example.answer
            if example.group:
                asked[example.group] += 1
                right_in[example.group] += chosen == example.answer
    finally:
        model.train(was_training)
    n = len(examples)
    return Evaluation(
        step=step,
        accuracy=round(right / n, 4) if n else 0.0,
        accuracy_raw=round(right_raw / n, 4) if n else 0.0,
        questions=n,
        position_wins=_ordered(wins),
        gold_positions=_ordered(gold),
        accuracy_by_position={p: round(right_at[p] / gold[p], 4) for p in _ordered(gold)},
        accuracy_by_source={g: round(right_in[g] / asked[g], 4) for g in sorted(asked)},
        **_pairwise_ranking(examples, scores),
    )


def _pairwise_ranking(examples: list[Example], scores: list[dict[str, float]]) -> dict[str, Any]:
    """best_f1, best_threshold, auc and auc_by_source of the pairwise questions among ``examples`` (None and empty without any)."""
    probabilities: list[float] = []
    labels: list[bool] = []
    groups: dict[str, tuple[list[float], list[bool]]] = {}
    for example, letter_scores in zip(examples, scores):
        question = example.question
        if not question.pairwise:
            continue
        yes, no = question.letters
        probabilities.append(two_way_yes(letter_scores[yes], letter_scores[no]))
        labels.append(example.answer == yes)
        if example.group:
            group = groups.setdefault(example.group, ([], []))
            group[0].append(probabilities[-1])
            group[1].append(labels[-1])
    best_f1, threshold, auc = ranking(probabilities, labels)
    by_source = {name: ranking(*pairs)[2] for name, pairs in sorted(groups.items())}
    return {"best_f1": best_f1, "best_threshold": threshold, "auc": auc, "auc_by_source": {k: v for k, v in by_source.items() if v is not None}}


def ranking(probabilities: list[float], labels: list[bool]) -> tuple[float | None, float | None, float | None]:
    """Best F1 over every threshold, that threshold, and ROC AUC of ``probabilities`` against ``labels``.

    The threshold lies in the middle of the best cut's gap, in log-odds: between the
    lowest probability the cut keeps and the highest it leaves out (pairs at or above it
    are matches; every point of the gap gives the same F1 here). A judge trained to
    answer yes or no crowds its probabilities near 0 and 1, and a threshold on the gap's
    upper edge (0.987 on one run) drops new matches that fall just short of it. ROC AUC
    counts ties as half (Mann-Whitney). All None unless both labels occur.
    """
    positives = sum(labels)
    negatives = len(labels) - positives
    if not positives or not negatives:
        return None, None, None
    ranked = sorted(zip(probabilities, labels), key=lambda pair: -pair[0])
    count = len(ranked)
    best_f1, best_threshold, best_end = 0.0, ranked[0][0], count - 1
    true_pos = false_pos = 0
    rank_sum = 0.0  # of the positives' ascending ranks (Mann-Whitney U), ties at their mean
    start = 0
    while start < count:  # one group of equal probabilities at a time, highest first
        end = start
        while end + 1 < count and ranked[end + 1][0] == ranked[start][0]:
            end += 1
        group_positives = sum(label for _, label in ranked[start : end + 1])
        true_pos += group_positives
        false_pos += end + 1 - start - group_positives
        f1 = 2 * true_pos / (positives + true_pos + false_pos)
        if f1 > best_f1:
            best_f1, best_threshold, best_end = f1, ranked[start][0], end
        # Descending places start..end are ascending ranks count-end..count-start.
        rank_sum += (count - (start + end) / 2) * group_positives
        start = end + 1
    auc = (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)
    if best_end + 1 < count:
        best_threshold = _gap_middle(best_threshold, ranked[best_end + 1][0])
    return round(best_f1, 4), best_threshold, round(auc, 4)


def _gap_middle(upper: float, lower: float) -> float:
    """The point halfway between two probabilities in log-odds, to 6 decimals, strictly above
    ``lower`` and at most ``upper`` (``upper`` itself where rounding leaves no room)."""
    def logit(p: float) -> float:
        p = min(max(p, 1e-9), 1 - 1e-9)
        return math.log(p / (1 - p))

    middle = round(1 / (1 + math.exp(-(logit(upper) + logit(lower)) / 2)), 6)
    return middle if lower < middle <= upper else upper


def _evaluation(entry: dict[str, Any]) -> Evaluation:
    """An :class:`Evaluation` back from its record in the trainer state."""
    return Evaluation(**{f.name: entry[f.name] for f in fields(Evaluation) if f.name in entry})


def _ordered(counts: Counter[str]) -> dict[str, int]:
    return {key: counts[key] for key in sorted(counts, key=lambda k: (k == "none", k))}


def finetune(data: TrainingData, config: TrainConfig, output: str | Path) -> FinetuneResult:
    """Train a LoRA adapter for the judge on ``data`` and save the best one into ``output``."""
    cpu_kernel_defaults()
    import torch

    output = Path(output)
    started = time.monotonic()
    device = resolve_device(config.device)
    if config.threads:
        torch.set_num_threads(config.threads)
    checkpoint = _prepare_output(output, config)
    random.seed(config.seed)
    torch.manual_seed(config.seed)
    # Float32 weights train under bfloat16 autocast where the hardware has it natively.
    precision = resolve_precision(config.dtype if config.dtype != "float16" else "float32", device, "fine-tuning dtype")
    # Under bfloat16 with PyTorch's SDPA attention, training diverged on an H100 (loss NaN
    # within 20 steps; most likely the backward of left-padding rows, which attend to
    # nothing), while eager attention trained, faster than float32. Inference is not affected.
    attention = "eager" if precision == "bfloat16" else None
    base, tokenizer, model_path = load_base(config.model, device, config.dtype, attention)
    if precision != "float32":
        float32_output_head(base)  # the answer's loss from float32 logits, as the judge reads them
    state: dict[str, Any]
    if checkpoint is not None:
        if config.full:
            _load_weights(base, checkpoint / "model.safetensors", device)
            model = base
        else:
            from peft import PeftModel

            model = PeftModel.from_pretrained(base, checkpoint, is_trainable=True)
        state = json.loads((checkpoint / STATE_FILE).read_text(encoding="utf-8"))
        if state["fingerprint"] != data.fingerprint():
            raise KgalignError(
                f"{checkpoint}: the training questions differ from the checkpoint's (other inputs or options); "
                "pass the same ones, or start over with --force"
            )
        log.info("resuming from %s (step %d)", checkpoint, state["step"])
    else:
        if config.full and config.init_adapter:
            # Every weight trains from the adapter's model: its update merged into them.
            model = _from_adapter(base, config.init_adapter, model_path).merge_and_unload()
            model.requires_grad_(True)  # PEFT froze the base weights
        elif config.full:
            model = base
        else:
            model = add_lora(base, config) if not config.init_adapter else _from_adapter(base, config.init_adapter, model_path)
        state = {"step": 0, "best_step": 0, "best_accuracy": -1.0, "bad_evals": 0, "history": [], "fingerprint": data.fingerprint()}
    if _checkpointing(config.gradient_checkpointing, device):
        enable_checkpointing(model)
    model.train()
    val = data.val[: config.max_val]
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=0.0)
    warmup = max(0, config.warmup_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup) if warmup else 1.0)
    if checkpoint is not None:
        saved = torch.load(checkpoint / OPTIMIZER_FILE, map_location=device, weights_only=False)
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        # map_location moved the saved RNG states onto the device; torch wants them on the CPU.
        torch.set_rng_state(saved["rng"].cpu())
        if "cuda_rng" in saved and device.startswith("cuda"):
            torch.cuda.set_rng_state(saved["cuda_rng"].cpu(), device)
    resumed_from = state["step"] if checkpoint is not None else None

    if "before" not in state:
        before = evaluate(model, tokenizer, val, 0, device, config.eval_batch_size)
        log.info("before training: %s", before.brief())
        state["before"] = asdict(before)
        _record_eval(state, before, output, model, config)
    before = _evaluation(state["before"])

    sequences = encode(tokenizer, data.train)
    stopped = "max_steps"
    losses: list[float] = []
    step = state["step"]
    last_eval = step if checkpoint is not None else 0
    with progress_bar("finetune", max(0, config.max_steps - step)) as advance:
        while step < config.max_steps:
            if config.patience > 0 and val and state["bad_evals"] >= config.patience:
                stopped = "early_stopping"
                break
            if config.minutes is not None and time.monotonic() - started > config.minutes * 60:
                stopped = "time_budget"
                break
            chosen = [sequences[i] for i in _batch_indices(step, config.batch_size, len(sequences), config.seed)]
            loss = 0.0
            for part in micro_batches(chosen, config.token_budget):
                batch = collate(part, tokenizer.pad_token_id, device)
                part_loss = answer_loss(model, batch, precision, device) * (len(part) / len(chosen))
                part_loss.backward()
                loss += float(part_loss.detach())
                del batch, part_loss
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            state["step"] = step
            losses.append(loss)
            advance(1)
            if not math.isfinite(losses[-1]):
                raise KgalignError(f"training diverged at step {step} (loss {losses[-1]}); lower --lr")
            if config.eval_every > 0 and step % config.eval_every == 0:
                _evaluate_and_record(model, tokenizer, val, step, device, config, state, output, losses)
                last_eval = step
            if config.save_every > 0 and step % config.save_every == 0:
                _save_checkpoint(output, model, optimizer, scheduler, state)
    if step != last_eval:
        _evaluate_and_record(model, tokenizer, val, step, device, config, state, output, losses)
    if config.save_every > 0 and not (output / f"checkpoint-{step}").is_dir() and step > 0:
        _save_checkpoint(output, model, optimizer, scheduler, state)

    best_dir = output / BEST_DIR
    lora_record: dict[str, Any] | None = None  # a fully trained model has no LoRA settings
    if config.full:
        _best_model(model, best_dir, output, model_path, device)
    else:
        lora_record = _best_adapter(model, best_dir, output, device)
    after = next(_evaluation(e) for e in reversed(state["history"]) if e["step"] == state["best_step"])
    metadata = {
        "kgalign": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "recipe": data.recipe,
        "data": data.summary(),
        "seed": config.seed,
        "base_model": {"path": str(model_path), "name": model_path.name},
        "device": device,
        "train": asdict(config),
        # The adapter's own settings (an --init-adapter's replace the lora_* of "train");
        # None for a fully fine-tuned model.
        "lora": lora_record,
        "full": config.full,
        "steps": step,
        "best_step": state["best_step"],
        # How the local judge decodes with this adapter: calibrated against the content-free prompt, or not.
        "calibrate": bool(state.get("best_calibrate", True)),
        "stopped": stopped,
        "resumed_from": resumed_from,
        "seconds": round(time.monotonic() - started, 1),
        "before": asdict(before),
        "after": asdict(after),
        "history": state["history"],
        "versions": _versions(),
    }
    write_text_atomic(output / METADATA_FILE, json.dumps(metadata, indent=2, sort_keys=True) + "\n")
    log.info("after training (best, step %d): %s", state["best_step"], after.brief())
    return FinetuneResult(
        output=output,
        before=before,
        after=after,
        steps=step,
        best_step=state["best_step"],
        stopped=stopped,
        resumed_from=resumed_from,
        history=state["history"],
        metadata=metadata,
        model=model,
        tokenizer=tokenizer,
    )


def _best_adapter(model: Any, best_dir: Path, output: Path, device: str) -> dict[str, Any]:
    """Load the best adapter into ``model``, copy it into ``output``; its LoRA settings."""
    from peft import LoraConfig, set_peft_model_state_dict
    from safetensors.torch import load_file

    set_peft_model_state_dict(model, load_file(str(best_dir / "adapter_model.safetensors"), device=device))
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        shutil.copyfile(best_dir / name, output / name)
    lora = cast(LoraConfig, model.peft_config["default"])  # add_lora's, or the resumed checkpoint's
    # peft declares target_modules as given (a list, "all-linear" or None); injecting the
    # adapter replaces it with the set of module names it matched.
    target_modules = cast(set[str], lora.target_modules)
    return {
        "r": lora.r,
        "alpha": lora.lora_alpha,
        "dropout": lora.lora_dropout,
        "layers": sorted(lora.layers_to_transform) if isinstance(lora.layers_to_transform, list) else "all",
        "target_modules": sorted(target_modules),
    }


def _best_model(model: Any, best_dir: Path, output: Path, model_path: Path, device: str) -> None:
    """Load the best fully trained weights into ``model`` and make ``output`` a model folder
    ``--model`` loads as it is: the weights, their config and the base model's tokenizer."""
    _load_weights(model, best_dir / "model.safetensors", device)
    for name in MODEL_FILES:
        if (best_dir / name).is_file():
            shutil.copyfile(best_dir / name, output / name)
    for name in TOKENIZER_FILES:
        if (model_path / name).is_file():
            shutil.copyfile(model_path / name, output / name)


#: The output head of a model whose head is tied to its token embeddings: saved weights
#: leave it out (it is the embeddings).
TIED_HEAD = "lm_head.weight"


def _load_weights(model: Any, path: Path, device: str) -> None:
    """A full model's saved weights loaded into ``model`` (a tied output head is not saved: not strict)."""
    from safetensors.torch import load_file

    missing, unexpected = model.load_state_dict(load_file(str(path), device=device), strict=False)
    if unexpected or set(missing) - {TIED_HEAD}:
        raise KgalignError(f"{path}: these weights do not fit the model ({len(missing)} missing, {len(unexpected)} unexpected)")


def enable_checkpointing(model: Any) -> None:
    """Recompute activations in the backward pass (non-reentrant checkpointing).

    transformers also makes the input embeddings' output require a gradient, which only
    reentrant checkpointing needs: with it the backward pass ran through every layer
    below the adapters, and recomputed them, for gradients nothing uses. That hook is
    removed: SmolLM2-135M, a batch of two 300-token prompts, adapters in the top 4 of 30
    layers: backward 2.88 s against 0.49 s, the adapters' gradients identical
    (``python -m bench.checkpoint_backward``, bench/results/checkpoint-backward.md).
    """
    # Training keeps no key/value cache: said before, transformers need not say it each step.
    model.config.use_cache = False
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.disable_input_require_grads()


def _checkpointing(setting: str | bool, device: str) -> bool:
    """Whether to recompute activations in the backward pass: ``auto`` means on a CPU only."""
    if isinstance(setting, bool):
        return setting
    if setting not in ("auto", "on", "off"):
        raise KgalignError(f"gradient_checkpointing must be auto, on or off, not {setting!r}")
    return setting == "on" or (setting == "auto" and not device.startswith("cuda"))


def _batch_indices(step: int, batch_size: int, n: int, seed: int) -> list[int]:
    """The examples of a step: consecutive slices of a seeded permutation, a new one each epoch.

    A function of the step alone, so a resumed run sees the batches it would have seen.
    """
    indices = []
    for k in range(step * batch_size, (step + 1) * batch_size):
        epoch, offset = divmod(k, n)
        indices.append(_epoch_order(seed, epoch, n)[offset])
    return indices


@functools.lru_cache(maxsize=4)
def _epoch_order(seed: int, epoch: int, n: int) -> tuple[int, ...]:
    order = list(range(n))
    random.Random(seed * 100_003 + epoch).shuffle(order)
    return tuple(order)


def _evaluate_and_record(
    model: Any, tokenizer: Any, val: list[Example], step: int, device: str, config: TrainConfig, state: dict[str, Any], output: Path, losses: list[float]
) -> None:
    evaluation = evaluate(model, tokenizer, val, step, device, config.eval_batch_size)
    recent = losses[-config.eval_every :] if config.eval_every > 0 else losses
    log.info("%s, training loss %.4f", evaluation.brief(), sum(recent) / max(1, len(recent)))
    _record_eval(state, evaluation, output, model, config, sum(recent) / len(recent) if recent else None)


def _record_eval(state: dict[str, Any], evaluation: Evaluation, output: Path, model: Any, config: TrainConfig, loss: float | None = None) -> None:
    """Add an evaluation to the history; a better selection score saves the adapter as the best one.

    ``best_accuracy`` in the state keeps its name (checkpoints written before the pairwise
    scores resume as they are) but holds :meth:`Evaluation.selection_score`."""
    entry = asdict(evaluation)
    entry["train_loss"] = round(loss, 4) if loss is not None else None
    state["history"].append(entry)
    # Without validation questions every evaluation reads 0: the latest adapter is kept.
    # An adapter is judged by its better decoding, calibrated or not (training may make
    # the calibration prior obsolete); the judge then decodes as recorded ("calibrate").
    score = evaluation.selection_score()
    if score > state["best_accuracy"] or evaluation.questions == 0:
        state["best_accuracy"] = score
        state["best_calibrate"] = evaluation.accuracy >= evaluation.accuracy_raw
        state["best_step"] = evaluation.step
        state["bad_evals"] = 0
        _save_adapter(model, output / BEST_DIR)
    else:
        state["bad_evals"] += 1


def _save_adapter(model: Any, folder: Path) -> None:
    """Save the adapter into ``folder``, replacing it only once written."""
    tmp = make_output_dir(f".{folder.name}-", folder.parent)
    try:
        with loading_quietly():  # transformers draws a bar for writing a whole model
            model.save_pretrained(tmp)
        old = folder.with_name(f".{folder.name}-old")
        if folder.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(folder, old)
        os.replace(tmp, folder)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _save_checkpoint(output: Path, model: Any, optimizer: Any, scheduler: Any, state: dict[str, Any]) -> None:
    """checkpoint-N: adapter, optimizer, scheduler, RNG and trainer state; older ones beyond the last two removed."""
    import torch

    folder = output / f"checkpoint-{state['step']}"
    tmp = make_output_dir(f".{folder.name}-", output)
    try:
        with loading_quietly():  # transformers draws a bar for writing a whole model
            model.save_pretrained(tmp)
        saved = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": torch.get_rng_state()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            saved["cuda_rng"] = torch.cuda.get_rng_state()  # LoRA dropout on a GPU draws from it
        torch.save(saved, tmp / OPTIMIZER_FILE)
        (tmp / STATE_FILE).write_text(json.dumps(state, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        # The best adapter as of this step: a resumed run starts again from this pair.
        shutil.copytree(output / BEST_DIR, tmp / BEST_DIR)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.debug("saved %s", folder)
    for old in _checkpoints(output)[:-KEEP_CHECKPOINTS]:
        shutil.rmtree(old, ignore_errors=True)


def _checkpoints(output: Path) -> list[Path]:
    """The checkpoint-N folders of ``output``, by step."""
    if not output.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in output.iterdir() if p.is_dir() and (m := _CHECKPOINT.match(p.name))]
    return [p for _, p in sorted(found)]


def last_checkpoint(output: str | Path) -> Path | None:
    """The checkpoint with the highest step in ``output`` (one with its state written), or None."""
    complete = [p for p in _checkpoints(Path(output)) if (p / STATE_FILE).is_file()]
    return complete[-1] if complete else None


def check_output(output: str | Path, resume: bool = False, force: bool = False) -> None:
    """Raise a :class:`KgalignError` when training into ``output`` would be refused (nothing is changed).

    A directory that holds an earlier adapter or checkpoints needs ``resume`` or
    ``force``; one that holds other files is refused either way.
    """
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise KgalignError(f"{output}: exists and is not a directory")
    if not output.is_dir():
        check_output_path(output, folder=True)  # a file where a parent folder should be
        return
    entries = [p for p in output.iterdir() if not p.name.startswith(".")]
    known = {*ADAPTER_FILES, *MODEL_FILES, *TOKENIZER_FILES, BEST_DIR}
    others = [p.name for p in entries if p.name not in known and not _CHECKPOINT.match(p.name)]
    if others:
        raise KgalignError(f"{output}: holds files that are not a kgalign adapter's ({', '.join(sorted(others)[:3])}); choose another directory")
    if entries and not resume and not force:
        raise KgalignError(f"{output}: holds an earlier adapter; pass --resume to continue its training or --force to start over")


def _prepare_output(output: Path, config: TrainConfig) -> Path | None:
    """Check or clear ADAPTER_DIR; the checkpoint to resume from, if any."""
    check_output(output, config.resume, config.force)
    if config.resume:
        checkpoint = last_checkpoint(output)
        if checkpoint is None:
            log.warning("%s: no checkpoint to resume from; starting afresh", output)
        elif not any((checkpoint / BEST_DIR / name).is_file() for name in ("adapter_model.safetensors", "model.safetensors")):
            raise KgalignError(f"{checkpoint}: {BEST_DIR}/ is missing, cannot resume; start over with --force")
        else:
            shutil.rmtree(output / BEST_DIR, ignore_errors=True)
            shutil.copytree(checkpoint / BEST_DIR, output / BEST_DIR)
            return checkpoint
    if output.is_dir():
        for path in output.iterdir():
            if path.name.startswith("."):
                continue
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise KgalignError(f"{output}: cannot create the adapter directory ({exc.strerror or exc})") from None
    return None


def _versions() -> dict[str, str]:
    import peft
    import torch
    import transformers

    return {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__}


def summary_lines(result: FinetuneResult) -> list[str]:
    """What ``kgalign finetune`` prints: accuracy and position bias, before and after."""
    before, after = result.before, result.after
    data = result.metadata["data"]
    lines = [
        f"{data['recipe']} recipe: {data['train']['questions']} training questions ({data['train']['sources']} sources), "
        f"{after.questions} validation questions ({data['val']['sources']} sources)",
        f"steps: {result.steps} ({result.stopped}), best at step {result.best_step}"
        + (f", resumed from step {result.resumed_from}" if result.resumed_from is not None else ""),
        f"validation accuracy: before {before.accuracy:.4f}  after {after.accuracy:.4f}  "
        f"(uncalibrated: {before.accuracy_raw:.4f} -> {after.accuracy_raw:.4f})",
    ]
    if before.best_f1 is not None and after.best_f1 is not None:
        lines.append(
            f"pairwise ranking: best F1 before {before.best_f1:.4f}  after {after.best_f1:.4f} (at p(yes) >= {after.best_threshold:.3f}); "
            f"ROC AUC before {before.auc:.4f}  after {after.auc:.4f}  (what chose the adapter kept)"
        )
    else:
        lines.append(f"the judge decodes {'calibrated' if result.metadata.get('calibrate', True) else 'uncalibrated'} with this adapter (the better on validation)")
    positions = list(dict.fromkeys([*after.gold_positions, *before.position_wins, *after.position_wins]))
    lines.append("position       " + "  ".join(f"{p:>6}" for p in positions))
    lines.append("gold answers   " + "  ".join(f"{after.gold_positions.get(p, 0):>6}" for p in positions))
    lines.append("wins before    " + "  ".join(f"{before.position_wins.get(p, 0):>6}" for p in positions))
    lines.append("wins after     " + "  ".join(f"{after.position_wins.get(p, 0):>6}" for p in positions))
    lines.append("acc. before    " + "  ".join(f"{before.accuracy_by_position.get(p, 0.0):>6.2f}" for p in positions))
    lines.append("acc. after     " + "  ".join(f"{after.accuracy_by_position.get(p, 0.0):>6.2f}" for p in positions))
    for group, accuracy in after.accuracy_by_source.items():
        line = f"source {group}: validation accuracy before {before.accuracy_by_source.get(group, 0.0):.4f}  after {accuracy:.4f}"
        if group in after.auc_by_source:
            # A run resumed from a checkpoint older than the per-source AUC has none before.
            earlier = f"{before.auc_by_source[group]:.4f}" if group in before.auc_by_source else "n/a"
            line += f"; ROC AUC before {earlier}  after {after.auc_by_source[group]:.4f}"
        lines.append(line)
    if result.metadata.get("full"):
        lines.append(f"model (every weight trained): {result.output}  -> kgalign run --model {result.output}")
    else:
        lines.append(f"adapter: {result.output}")
    return lines
