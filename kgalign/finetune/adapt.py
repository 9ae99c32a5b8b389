"""``kgalign run --adapt``: the judge fine-tuned on the run's own confident decisions before it is asked.

The sources the judge would not be asked about are the run's teacher (as DistillER
trains a student on a teacher's labels of the target data itself): each gated source
(a mutual nearest neighbour leading its runner-up by the gate's margin) and each
source a reviewer decided (the corrections file) gives its match as a "yes" and its
hardest other candidates (retrieval's best first) as "no" answers, asked exactly as the
run will ask the contested sources (:func:`kgalign.finetune.data.build_examples`: the
run's question, options and data marks). A seeded fifth of these sources is held out:
the adapter kept is the one that answers them best, which may be the judge as it was.

The adapter is trained with :func:`kgalign.finetune.train.finetune` into
``AdaptConfig.folder`` (OUTDIR/adapter from the command line), checkpointed as it goes:
a run started again on the same inputs and options finds the finished adapter there and
takes it as it is (or resumes an interrupted training), so the judge's cached answers
stay valid. Nothing is trained when no source is contested, or when fewer than
:data:`MIN_MATCHES` confident matches exist (a warning says so).
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kgalign.errors import KgalignError
from kgalign.finetune.data import NONE_SHARE, DataConfig, Labels, TrainingData, build_examples, split_sources
from kgalign.finetune.train import METADATA_FILE, STATE_FILE, TrainConfig, finetune, last_checkpoint
from kgalign.judging.adapters import judge_adapter
from kgalign.judging.vote import is_gated
from kgalign.model import Candidates, Decision

if TYPE_CHECKING:
    from kgalign.config import AlignConfig
    from kgalign.result import Prepared

log = logging.getLogger(__name__)

#: Fewer confident matches than this and the judge is asked as it is.
MIN_MATCHES = 8
#: Share of the confident sources held out to choose the adapter, and most questions kept for it.
VAL_SHARE = 0.2
MAX_VAL = 64
BATCH_SIZE = 8
#: Only the top layers are adapted: the backward pass stops there, which keeps a CPU step short.
LORA_LAYERS = 8
SAVE_EVERY = 20
LORA_LR = 1e-3
#: AnyMatch's learning rate for full fine-tuning.
FULL_LR = 2e-5


@dataclass(frozen=True)
class Adaptation:
    """What ``--adapt`` did (run.json ``adapt``)."""

    folder: str
    #: Confident sources the questions came from: gated matches and reviewers' decisions.
    sources: int
    train_questions: int
    val_questions: int
    steps: int
    best_step: int
    #: Validation accuracy of the judge as it was, and of the adapter kept.
    accuracy_before: float
    accuracy_after: float
    seconds: float
    #: The adapter of an earlier start of this run, taken as it was (no training).
    reused: bool
    #: Why training stopped: max_steps, time_budget, early_stopping.
    stopped: str
    #: The adapter training started from (None: the bare model).
    started_from: str | None
    #: "lora" (an adapter) or "full" (the folder holds a whole model).
    method: str = "lora"
    #: Pairwise questions: the held-out best F1 (over every threshold) before and after,
    #: what chose the adapter kept; None for multiple-choice questions.
    f1_before: float | None = None
    f1_after: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def brief(self) -> str:
        what = "taken from an earlier start" if self.reused else f"{self.steps} steps in {self.seconds:.0f}s"
        return (
            f"judge adapted on {self.sources} confident sources ({self.train_questions} questions, {what}); "
            f"held-out {held_out(self.accuracy_before, self.accuracy_after, self.f1_before, self.f1_after)}"
        )


def held_out(accuracy_before: float, accuracy_after: float, f1_before: float | None, f1_after: float | None) -> str:
    """The held-out figure that chose the adapter: best F1 for pairwise questions, else accuracy."""
    if f1_before is not None and f1_after is not None:
        return f"best F1 {f1_before:.3f} -> {f1_after:.3f}"
    return f"accuracy {accuracy_before:.3f} -> {accuracy_after:.3f}"


def confident_labels(candidates: Sequence[Candidates], config: AlignConfig, human: Mapping[str, Decision], limit: int) -> Labels:
    """Source -> its match (None: a reviewer's "no match") for the sources the gate's rule
    settles (with or without ``--no-gate``) and the reviewed ones; at most ``limit`` of them, a
    sample fixed by the seed."""
    # The gate's rule, whether or not this run lets the gate decide (--no-gate asks every
    # source, the confident ones included: they still teach).
    gate = replace(config.vote, gate=True)
    labels: Labels = {}
    for cands in candidates:
        decision = human.get(cands.source)
        if decision is not None:
            if decision.kind in ("match", "none"):
                labels[cands.source] = decision.target if decision.kind == "match" else None
        elif cands.items and is_gated(cands, gate):
            labels[cands.source] = cands.items[0].iri
    if len(labels) > limit:

        def key(source: str) -> bytes:
            return hashlib.sha256(f"{config.seed}:adapt:{source}".encode()).digest()

        labels = {source: labels[source] for source in sorted(labels, key=key)[:limit]}
    return labels


def adaptation_data(prepared: Prepared, config: AlignConfig) -> TrainingData:
    """The adaptation's training and validation questions (see the module text)."""
    adapt, vote = config.adapt, config.vote
    labels = confident_labels(prepared.candidates, config, prepared.human, adapt.sources)
    data_config = DataConfig(
        options=vote.options,
        permutations=2,  # pairwise: both record orders; choice: two candidate orders
        none_share=NONE_SHARE,
        val_share=VAL_SHARE,
        seed=config.seed,
        datamark=vote.datamark,
        question=vote.question,
        negatives=adapt.negatives,
    )
    counts: dict[str, int] = {"confident_sources": len(labels), "confident_matches": sum(1 for t in labels.values() if t)}
    by_source = build_examples(labels, prepared.candidates, prepared.left_profiles, prepared.right_profiles, data_config, counts)
    train, val = split_sources(by_source, data_config)
    return TrainingData(train=train, val=val, recipe="adapt", config=data_config, counts=counts, inputs={})


def train_config(config: AlignConfig) -> TrainConfig:
    """How the adapter is trained: small batches, the top layers, one validation at the end."""
    adapt = config.adapt
    steps = adapt.steps
    full = adapt.method == "full"
    return TrainConfig(
        model=config.model,
        max_steps=steps,
        batch_size=BATCH_SIZE,
        lr=adapt.lr or (FULL_LR if full else LORA_LR),
        full=full,
        lora_layers=LORA_LAYERS,
        warmup_steps=min(5, steps),
        eval_every=0,
        save_every=SAVE_EVERY,
        # Small batches of short questions on the top layers: the activations fit, and
        # not recomputing them saves a share of each CPU step.
        gradient_checkpointing="off",
        patience=0,
        max_val=MAX_VAL,
        minutes=adapt.minutes or None,
        seed=config.seed,
        init_adapter=judge_adapter(*config.judge_choice),  # full: merged, then every weight trains
        device=config.device,
        dtype=str(config.judge_options.get("dtype") or "auto"),
    )


def adapt_judge(prepared: Prepared, config: AlignConfig) -> Adaptation | None:
    """Train the run's judge on its confident decisions into ``config.adapt.folder``; None
    when there are too few of them (a warning says so)."""
    folder = config.adapt.folder
    if not folder:
        raise KgalignError("adapt.folder is not set: where should the adapter be written?")
    data = adaptation_data(prepared, config)
    matches = data.counts["confident_matches"]
    if matches < MIN_MATCHES or not data.train:
        log.warning("--adapt: %d confident matches (at least %d are needed to train on); the judge is asked as it is", matches, MIN_MATCHES)
        return None
    settings = train_config(config)
    started = time.monotonic()
    earlier = _finished(Path(folder), data, settings)
    if earlier is not None:
        log.info("--adapt: the adapter in %s was trained on these questions; taken as it is", folder)
        return _adaptation(folder, data, earlier, settings, reused=True, seconds=0.0)
    resume = _checkpoint_matches(Path(folder), data)
    result = finetune(data, replace(settings, resume=resume, force=not resume), folder)
    metadata = result.metadata
    del result
    _release_memory()
    return _adaptation(folder, data, metadata, settings, reused=False, seconds=time.monotonic() - started)


def _adaptation(folder: str, data: TrainingData, metadata: Mapping[str, Any], settings: TrainConfig, reused: bool, seconds: float) -> Adaptation:
    return Adaptation(
        folder=str(folder),
        sources=data.counts["confident_sources"],
        train_questions=len(data.train),
        val_questions=min(len(data.val), settings.max_val),
        steps=int(metadata["steps"]),
        best_step=int(metadata["best_step"]),
        accuracy_before=round(float(metadata["before"]["accuracy"]), 4),
        accuracy_after=round(float(metadata["after"]["accuracy"]), 4),
        seconds=round(seconds, 1),
        reused=reused,
        stopped=str(metadata["stopped"]),
        started_from=settings.init_adapter,
        method="full" if settings.full else "lora",
        f1_before=_f1(metadata["before"]),
        f1_after=_f1(metadata["after"]),
    )


def _f1(evaluation: Mapping[str, Any]) -> float | None:
    value = evaluation.get("best_f1")
    return None if value is None else round(float(value), 4)


def _comparable(settings: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in settings.items() if key not in ("resume", "force")}


def _finished(folder: Path, data: TrainingData, settings: TrainConfig) -> dict[str, Any] | None:
    """The metadata of a finished adapter in ``folder`` trained on ``data`` with ``settings``, else None."""
    path = folder / METADATA_FILE
    weights = "model.safetensors" if settings.full else "adapter_model.safetensors"
    if not path.is_file() or not (folder / weights).is_file():
        return None
    try:
        metadata = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    same_data = metadata.get("data", {}).get("fingerprint") == data.fingerprint()
    same_training = _comparable(metadata.get("train", {})) == _comparable(asdict(settings))
    return metadata if same_data and same_training else None


def _checkpoint_matches(folder: Path, data: TrainingData) -> bool:
    """Whether the last checkpoint in ``folder`` was training on these questions (else training starts over)."""
    checkpoint = last_checkpoint(folder)
    if checkpoint is None:
        return False
    try:
        state = json.loads((checkpoint / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(state.get("fingerprint") == data.fingerprint())


def _release_memory() -> None:
    """Let the trained model's memory go before the judge loads its own copy."""
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover - torch is a dependency of the local judge
        pass
