"""bench/table.py end to end on the DBP15K excerpt: conversion, a real `kgalign run`, the table.

One real run (the excerpt's 51 x 50 entities, seeds and test split as on the full set)
in a subprocess, as the script runs every dataset; then a rerun with --reuse, which
must take that run and the cached conversion instead of redoing them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import table as bench_table
from kgalign.evaluation.runs import score_run

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def table():
    return bench_table


def test_table_on_the_dbp15k_excerpt(table, tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    (data / "seu_dbp_fr_en").symlink_to(ROOT / "tests" / "data" / "dbp15k_mini" / "dbp_fr_en")
    monkeypatch.setenv("KGALIGN_CACHE", str(tmp_path / "cache"))
    peers = tmp_path / "peers.json"  # absent: the peers part says "not run"
    argv = ["--data", str(data), "--datasets", "dbp15k", "--judges", "none,local", "--work", str(tmp_path / "work"),
            "--out", str(tmp_path / "out"), "--peers", str(peers)]

    report = table.main(argv)

    none, local = report["runs"]
    assert local["skipped"].startswith("not run: too large")  # DBP15K is not run with the LLM judge
    assert none["exit_code"] == 0, none.get("error")
    assert none["conversion"]["cached"] is False
    # An empty cache directory, or nothing to embed (the cascade settled every source).
    assert none["vector_cache"]["state"] in ("cold", "none embedded")
    command = none["command"]
    assert command[command.index("--judge") + 1] == "none"
    assert "--only-gold-entities" in command and "--seed-links" in command and "--test-gold" in command
    metrics = none["metrics"]["test"]
    assert set(metrics) >= {"precision", "recall", "f1", "hits@1", "hits@10", "mrr"}
    assert none["sources"] == metrics["gold"]  # closed world: the test sources only
    assert none["peak_rss_gb"] > 0.02 and none["wall_s"] >= none["stages_total_s"] > 0
    assert none["questions_per_source"] == 0

    # Scoring a run against a gold file from its links.ttl and votes.jsonl (how the
    # official Restaurants gold is scored) gives what kgalign wrote in metrics.json.
    out = Path(none["outdir"])
    gold = tmp_path / "work" / "converted" / "seu_dbp_fr_en" / "gold_test.tsv"
    again = score_run(out, gold)  # the seed links from run.json
    assert set(again) >= {"precision", "recall", "f1", "hits@1", "hits@10", "mrr", "true_positives", "predicted", "gold"}
    assert again == {k: metrics[k] for k in again}

    md = (tmp_path / "out" / "table.md").read_text()
    assert "| DBP15K fr-en (test 70%, seeds 30%) | none |" in md
    assert "not run: " in md and "peers.json not found" in md
    assert json.loads((tmp_path / "out" / "table.json").read_text())["runs"][0]["metrics"] == none["metrics"]

    peers.write_text(json.dumps([{"dataset": "DBP15K fr-en", "system": "Splink", "variant": "splink", "config": "c", "F1": None, "error": "boom", "wall_s": 1.0}]))
    rerun = table.main([*argv, "--reuse"])
    assert rerun["runs"][0]["reused"] is True
    assert rerun["runs"][0]["conversion"]["cached"] is True
    assert "| DBP15K fr-en | Splink (splink) | c | failed: boom |" in (tmp_path / "out" / "table.md").read_text()


def test_unknown_names_in_comma_lists_are_usage_errors(table, capsys):
    for argv, message in (
        (["--datasets", "dbp15k,nope"], "unknown dataset 'nope'; choose from dbp15k, srprs"),
        (["--judges", "none, bad"], "unknown judge 'bad'; choose from none, local, local-nogate"),
        (["--llm-datasets", "person1,x"], "unknown dataset 'x' in --llm-datasets; choose from dbp15k"),
    ):
        with pytest.raises(SystemExit) as stopped:
            table.main(argv)
        assert stopped.value.code == 2 and message in capsys.readouterr().err
    parser = table.argparse.ArgumentParser()
    assert table.choice_list(parser, " none, local ,,", table.oaei.JUDGES, "judge") == ["none", "local"]
