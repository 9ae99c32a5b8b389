"""LoRA adapters shipped inside the package, found by name (``--adapter cross-domain``).

``--judge local`` on its default model (no ``--model``) loads the adapter trained on the
question it asks (:data:`DEFAULT_LOCAL`) unless ``--adapter`` names another folder, or
``none`` for the bare model: the bare SmolLM2-135M is near chance on kgalign's questions.

Both are SmolLM2-135M-Instruct's adapters trained on every public training split of the
benchmarks beside the project (two knowledge graphs, five product-offer sets, one
non-product table). ``pairwise`` scores one pair at a time (the default question,
``--question pairwise``); ``cross-domain`` answers the multiple-choice question
(``--question choice``). Each folder holds its model card (``README.md``) and its
training record (``kgalign-finetune.json``), which tells the question it learnt
(:func:`trained_question`): a run that asks the other one warns.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kgalign.errors import KgalignError

if TYPE_CHECKING:
    from kgalign.config import AlignConfig

log = logging.getLogger(__name__)

#: Name -> folder beside this module.
SHIPPED = {"cross-domain": "cross_domain", "pairwise": "pairwise"}
#: The adapter of ``--judge local`` on its default model, by the question it asks.
DEFAULT_LOCAL = {"choice": "cross-domain", "pairwise": "pairwise"}
#: ``--adapter none``: the bare model.
NO_ADAPTER = "none"


def shipped_adapter(name: str) -> Path:
    """The folder of the shipped adapter ``name``."""
    try:
        return Path(__file__).resolve().parent / SHIPPED[name]
    except KeyError:
        raise KgalignError(f"no shipped adapter named {name!r} (shipped: {', '.join(SHIPPED)})") from None


def adapter_name(judge: str, model: str | None, adapter: str | None, question: str = "pairwise") -> str | None:
    """The adapter a judge backend loads, as the user would name it: ``--adapter`` as given;
    for the local judge on its default model, the one trained on ``question``
    (:data:`DEFAULT_LOCAL`); None for none."""
    if adapter == NO_ADAPTER or judge == "none":
        return None
    if adapter:
        return adapter
    if judge == "local" and not model:
        return DEFAULT_LOCAL[question]
    return None


def judge_adapter(judge: str, model: str | None, adapter: str | None, question: str = "pairwise") -> str | None:
    """The folder of :func:`adapter_name` (None for none); one line for a name that is neither a folder nor shipped."""
    name = adapter_name(judge, model, adapter, question)
    return adapter_folder(name) if name else None


def adapter_folder(value: str | Path) -> str:
    """An adapter folder from ``--adapter``: an existing folder as given, else a shipped adapter's name.

    A folder of that name in the working directory wins over the shipped adapter; a value
    that is neither stops with one line.
    """
    path = Path(value)
    if path.is_dir():
        return str(path)
    if str(value) in SHIPPED:
        return str(shipped_adapter(str(value)))
    raise KgalignError(f"{value}: adapter folder not found (and not a shipped adapter: {', '.join(SHIPPED)})")


#: The training record ``kgalign finetune`` writes beside an adapter or a fully trained model.
TRAINING_RECORD = "kgalign-finetune.json"


def training_record(folder: str | Path) -> dict | None:
    """``folder``'s training record (:data:`TRAINING_RECORD`), None when it has none; one line
    naming the file when it cannot be read."""
    import json

    path = Path(folder) / TRAINING_RECORD
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise KgalignError(f"{path}: cannot read the judge's training record ({exc})") from None
    if not isinstance(record, dict):
        raise KgalignError(f"{path}: cannot read the judge's training record (not a JSON object)")
    return record


def judge_folder(judge: str, model: str | None, adapter: str | None, question: str) -> str | None:
    """The folder of weights kgalign may have trained for this judge, where its training
    record would be: the adapter it loads, else its model folder; None for a served
    model (``openai``) or the bare default model."""
    if judge not in ("local", "vllm"):
        return None
    return judge_adapter(judge, model, adapter, question) or model


def trained_question(folder: str | Path) -> str | None:
    """The question the judge in ``folder`` (an adapter, or a model kgalign trained) was
    trained on, read from its training record: ``data.question``; in a record written
    before it was kept, "pairwise" where its validation recorded a best F1 (pairwise
    training does), else "choice"; None for a folder without a record (a model kgalign
    did not train)."""
    record = training_record(folder)
    if record is None:
        return None
    data = record.get("data")
    if isinstance(data, dict) and data.get("question") in QUESTION_NAMES:
        return str(data["question"])
    after = record.get("after")
    return "pairwise" if isinstance(after, dict) and after.get("best_f1") is not None else "choice"


def warn_other_question(judge: str, model: str | None, adapter: str | None, question: str) -> None:
    """Warn where the judge's weights were trained on the other question than the run asks
    (an adapter trained on multiple-choice questions asked pairwise ones scores pairs near
    chance): one line naming the folder and the option that asks what it learnt."""
    folder = judge_folder(judge, model, adapter, question)
    if not folder or not Path(folder).is_dir():
        return
    trained = trained_question(folder)
    if trained is not None and trained != question:
        log.warning(
            "the judge %s was trained on %s questions and this run asks %s ones: add --question %s to ask what it learnt",
            folder, QUESTION_NAMES[trained], QUESTION_NAMES[question], trained,
        )


#: How a warning names each question.
QUESTION_NAMES = {"pairwise": "pairwise", "choice": "multiple-choice"}


def trained_pair_threshold(judge: str, model: str | None, adapter: str | None) -> float | None:
    """The pairwise threshold the judge's own training chose, or None.

    A judge trained on pairwise questions records, for its kept model, the threshold on
    the probability of yes with the best F1 over its validation questions (the training
    datasets' held-out sources: ``after.best_threshold`` in :data:`TRAINING_RECORD`). A
    judge trained at two non-matches a match puts most matches below one half, so a run
    of such a judge without a threshold of its own takes this one. None for a judge
    without a folder kgalign trained (a served model, the bare model), or one trained on
    multiple-choice questions. The local judge on its default model reads the shipped
    ``pairwise`` adapter's record.
    """
    found = _pairwise_validation(judge, model, adapter)
    if found is None:
        return None
    folder, after = found
    threshold = after.get("best_threshold")
    if not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0:
        raise KgalignError(f"{Path(folder) / TRAINING_RECORD}: after.best_threshold must be a number between 0 and 1, not {threshold!r}")
    return float(threshold)


def trained_auc(judge: str, model: str | None, adapter: str | None) -> float | None:
    """The ROC AUC the judge's own training measured on its validation questions
    (``after.auc``), or None where :func:`trained_pair_threshold` finds no pairwise record.
    The judge check (:mod:`kgalign.judging.check`) holds a run's judge to it."""
    found = _pairwise_validation(judge, model, adapter)
    if found is None:
        return None
    folder, after = found
    auc = after.get("auc")
    if auc is None:
        return None
    if not isinstance(auc, (int, float)) or not 0.0 <= auc <= 1.0:
        raise KgalignError(f"{Path(folder) / TRAINING_RECORD}: after.auc must be a number between 0 and 1, not {auc!r}")
    return float(auc)


def _pairwise_validation(judge: str, model: str | None, adapter: str | None) -> tuple[str, dict[str, Any]] | None:
    """The judge's folder and its record's ``after`` (the kept model's validation) where it
    was trained on pairwise questions (a best F1 recorded), else None."""
    folder = judge_folder(judge, model, adapter, "pairwise")
    if not folder:
        return None
    record = training_record(folder)
    after = record.get("after") if record else None
    if not isinstance(after, dict) or after.get("best_f1") is None:
        return None
    return str(folder), after


def settle_pair_threshold(config: AlignConfig, judge_given: bool = False) -> AlignConfig:
    """``config`` with ``vote.pair_threshold`` set, as a run with it judges: the one given;
    else the one its judge's training chose (:func:`trained_pair_threshold`); else 0.5.

    A judge object (``judge_given``) brings no record, so it takes 0.5 (and so does a
    judge a run trains on its own decisions: ``_align`` after ``--adapt``). Only pairwise
    questions read the threshold; a config that asks multiple-choice questions is
    returned as it is. A malformed record stops with one line naming it.
    """
    vote = config.vote
    if vote.question != "pairwise" or vote.pair_threshold is not None:
        return config
    return with_trained_threshold(config, None if judge_given else trained_pair_threshold(config.judge, config.model, config.adapter))


def with_trained_threshold(config: AlignConfig, trained: float | None) -> AlignConfig:
    """``config`` with ``vote.pair_threshold`` set to ``trained`` (read by
    :func:`trained_pair_threshold`), or 0.5 for None; unchanged where the threshold is
    given or the questions are multiple-choice."""
    if config.vote.question != "pairwise" or config.vote.pair_threshold is not None:
        return config
    if trained is not None:
        log.info("pairwise threshold %.3f: the one the judge's training chose on its validation questions", trained)
    return config.replace(vote={"pair_threshold": 0.5 if trained is None else trained})
