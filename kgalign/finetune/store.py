"""A built question set on disk: make the questions where the data is, train where the GPU is.

``kgalign finetune ... --save-questions FILE`` writes the :class:`TrainingData` a recipe
built (every training and validation question, its answer, how it was made, and a
recipe's ``[train]`` settings) and stops before any model is loaded;
``kgalign finetune --questions FILE -o ADAPTER_DIR`` trains on it. Building needs the
benchmark files, the graphs' retrieval and the embedder; training needs none of them,
so the file is all a GPU machine has to receive.

The file is gzipped JSON lines: a header (format, version, question settings, counts,
inputs, train settings, the training fingerprint), then each distinct entity profile
once, then one line per question that names its profiles by number. Reading checks
the format, every line, and that the questions read back give the fingerprint that
was written, so a truncated or edited file stops with one line naming it.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Mapping
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from kgalign.errors import InputError, KgalignError, error_filename
from kgalign.finetune.data import DataConfig, Example, TrainingData
from kgalign.io.atomic import atomic_open
from kgalign.io.reading import json_object
from kgalign.judging.prompt import Question
from kgalign.model import EntityProfile

FORMAT = "kgalign-questions"
VERSION = 1
_SPLITS = ("train", "val")


def save_questions(data: TrainingData, path: str | Path, train: Mapping[str, Any] | None = None) -> Path:
    """Write ``data`` (and a recipe's ``[train]`` settings) to ``path``, atomically."""
    path = Path(path)
    profiles: dict[int, int] = {}  # id(profile) -> number; a profile object is written once
    entity_lines: list[str] = []
    question_lines: list[str] = []

    def number(profile: EntityProfile) -> int:
        key = id(profile)
        if key not in profiles:
            profiles[key] = len(entity_lines)
            entity_lines.append(json.dumps({"e": [profile.iri, profile.label, profile.attributes, profile.neighbours]}, ensure_ascii=False))
        return profiles[key]

    for split in _SPLITS:
        for example in getattr(data, split):
            question = example.question
            record = {
                "split": split,
                "answer": example.answer,
                "source": example.source,
                "target": example.target,
                "group": example.group,
                "q": [number(question.source), [number(o) for o in question.options], question.datamark, question.compact]
                + ([question.candidate_first] if question.pairwise else []),
            }
            question_lines.append(json.dumps(record, ensure_ascii=False))
    header = {
        "format": FORMAT,
        "version": VERSION,
        "recipe": data.recipe,
        "config": asdict(data.config),
        "counts": data.counts,
        "inputs": data.inputs,
        "train_settings": dict(train or {}),
        "fingerprint": data.fingerprint(),
        "entities": len(entity_lines),
        "questions": len(question_lines),
    }
    try:
        with atomic_open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as out:
            for line in [json.dumps(header, ensure_ascii=False, default=str), *entity_lines, *question_lines]:
                out.write(line.encode("utf-8") + b"\n")
    except OSError as exc:
        raise KgalignError(f"{error_filename(exc, path)}: cannot write the questions ({exc.strerror or exc})") from None
    return path


def load_questions(path: str | Path) -> tuple[TrainingData, dict[str, Any]]:
    """The question set and the ``[train]`` settings saved in ``path``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such question file")
    try:
        with gzip.open(path, "rt", encoding="utf-8") as lines:
            return _read(path, lines)
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a readable question file ({exc})") from exc


def _read(path: Path, lines: Any) -> tuple[TrainingData, dict[str, Any]]:
    header = json_object(next(lines, ""), f"{path}:1")
    if header.get("format") != FORMAT:
        raise InputError(f"{path}:1: not a kgalign question file (made by `kgalign finetune --save-questions`)")
    if header.get("version") != VERSION:
        raise InputError(f"{path}:1: question file version {header.get('version')!r}; this kgalign reads version {VERSION}")
    known = {f.name for f in fields(DataConfig)}
    config = DataConfig(**{k: v for k, v in header["config"].items() if k in known})
    entities: list[EntityProfile] = []
    split: dict[str, list[Example]] = {name: [] for name in _SPLITS}
    for number, text in enumerate(lines, start=2):
        record = json_object(text, f"{path}:{number}")
        try:
            if "e" in record:
                iri, label, attributes, neighbours = record["e"]
                entities.append(EntityProfile(iri, label, [tuple(a) for a in attributes], [tuple(n) for n in neighbours]))
                continue
            source, options, datamark, compact, *pair = record["q"]
            # A fifth field: a pairwise question, whether the candidate was shown first.
            question = Question(
                entities[source], tuple(entities[o] for o in options), datamark=datamark, compact=compact, pairwise=bool(pair), candidate_first=bool(pair and pair[0])
            )
            example = Example(question, record["answer"], record["source"], record["target"], record.get("group", ""))
            split[record["split"]].append(example)
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise InputError(f"{path}:{number}: malformed question record ({exc!r})") from exc
        if example.answer not in question.letters:
            raise InputError(f"{path}:{number}: answer {example.answer!r} is not one of the question's letters")
    data = TrainingData(
        train=split["train"], val=split["val"], recipe=header["recipe"], config=config,
        counts=dict(header.get("counts", {})), inputs={**header.get("inputs", {}), "questions_file": str(path)},
    )
    if len(data.train) + len(data.val) != header.get("questions") or data.fingerprint() != header.get("fingerprint"):
        raise InputError(f"{path}: the questions read back differ from those written (truncated or edited file)")
    return data, dict(header.get("train_settings", {}))

