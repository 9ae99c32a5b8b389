"""bench/pairs_table.py: question accuracy of `kgalign pairs` runs, one pick per left record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.pairs_table import question_accuracy, render, rows
from kgalign.io.pairs import read_pair_file

PAIRS = Path(__file__).parent / "data" / "pairs"


def _run(folder: Path, predictions: list[int], f1: float) -> Path:
    folder.mkdir(parents=True)
    (folder / "predictions.tsv").write_text("".join(f"{i}\t{p}\t0.5000\n" for i, p in enumerate(predictions)))
    (folder / "metrics.json").write_text(json.dumps({"precision": f1, "recall": f1, "f1": f1, "llm_questions": 3}))
    return folder


def test_question_accuracy_counts_one_pick_per_left_record(tmp_path: Path) -> None:
    data = tmp_path / "data" / "abt"
    data.mkdir(parents=True)
    test = data / "test.txt"
    test.write_bytes((PAIRS / "abt_buy_test.txt").read_bytes())
    pairs = read_pair_file(test).pairs
    lefts = {p.left for p in pairs}
    without_match = {p.left for p in pairs} - {p.left for p in pairs if p.label}
    perfect = _run(tmp_path / "full-abt", [p.label for p in pairs], 0.9)
    assert question_accuracy(perfect, test) == (1.0, len(lefts))
    silent = _run(tmp_path / "none-abt", [0] * len(pairs), 0.5)
    assert question_accuracy(silent, test) == (len(without_match) / len(lefts), len(lefts))
    wrong = _run(tmp_path / "wrong-abt", [1 - p.label for p in pairs], 0.1)
    accuracy, _ = question_accuracy(wrong, test)
    assert accuracy < len(without_match) / len(lefts)
    found = rows([wrong, perfect, silent], tmp_path / "data")
    assert [r["variant"] for r in found] == ["none", "full", "wrong"]  # none first, then by name
    table = render(found)
    assert "| abt | full | 0.900 | 0.900 | 0.900 | +0.400 | 1.000 |" in table
    short = _run(tmp_path / "short-abt", [0], 0.0)
    with pytest.raises(SystemExit, match="1 predictions for"):
        question_accuracy(short, test)
