"""One validated config per run: AlignConfig, --config FILE, run.json's effective block, rerun."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import cli

from kgalign import AlignConfig, ConfigError
from kgalign.cli.run_options import RUN_OPTIONS, default_of
from kgalign.config import RetrievalConfig, VoteConfig


def test_round_trip_through_dict_toml_and_json(tmp_path: Path) -> None:
    config = AlignConfig(
        judge="local",
        judge_options={"batch_size": 8, "dtype": "float32"},
        classes=["http://x/Person"],
        seed_links=[("urn:a", "urn:b")],
        retrieval=RetrievalConfig(k=7, structure_weight=0.25),
        vote=VoteConfig(rounds=5, datamark=True),
        resolve="greedy",
    )
    assert AlignConfig.from_dict(config.to_dict()) == config
    for name in ("run.toml", "run.json"):
        config.save(tmp_path / name)
        assert AlignConfig.from_file(tmp_path / name) == config
    assert config.classes == ("http://x/Person",) and config.seed_links == (("urn:a", "urn:b"),)


def test_frozen() -> None:
    config = AlignConfig()
    with pytest.raises(AttributeError):
        config.judge = "local"  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.judge_options["x"] = 1  # type: ignore[index]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"judg": "local"}, "unknown setting 'judg'; did you mean 'judge'?"),
        ({"retrieval": {"kk": 3}}, "unknown setting 'retrieval.kk'; did you mean 'retrieval.k'?"),
        ({"retrieval": {"k": 0}}, "retrieval.k: 0 is out of range (must be between 1 and 100)"),
        ({"vote": {"rounds": "3"}}, "vote.rounds: '3' is not a whole number"),
        ({"judge": "locl"}, "judge: 'locl' is not one of none, local, openai, vllm"),
        ({"resolve": "one-to-one"}, "resolve: 'one-to-one' is not one of auto, assignment, greedy, many-to-one, 1:1, 1:n, n:1, n:m"),
        ({"retrieval": {"mode": "fast"}}, "retrieval.mode: 'fast' is not one of cascade, full"),
        ({"judge": "local", "judge_options": {"batchsize": 2}}, "judge_options.batchsize: not an option of --judge local"),
        ({"judge": "local", "judge_options": {"dtype": "float16"}}, "judge_options.dtype: 'float16' is not one of auto, bfloat16, float32"),
        ({"only_gold_entities": True}, "only_gold_entities needs test_gold or gold"),
        ({"left_format": "bogus"}, "left_format: 'bogus' is not one of turtle, nt, nquads, trig, xml, json-ld, n3, csv, tsv, ttl"),
    ],
)
def test_bad_settings_fail_naming_the_field(data: dict, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        AlignConfig.from_dict(data, "run.toml")
    assert str(error.value).startswith("run.toml: ") and message in str(error.value)
    assert "\n" not in str(error.value)


def test_command_line_defaults_are_the_library_defaults() -> None:
    from kgalign.cli.run_options import click_options

    for option, made in zip(RUN_OPTIONS, click_options()):
        if option.path is not None and not option.kwargs.get("multiple") and default_of(option.path) not in (None, []):
            assert made.default == default_of(option.path), option.decls


def test_a_misspelt_config_file_fails_at_once_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "run.toml"
    bad.write_text('judge = "none"\n[retrieval]\nsettle_margn = 0.1\n')
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "kgalign.cli.main", "run", "a.nt", "b.nt", "-o", str(tmp_path / "out"), "--config", str(bad)],
        capture_output=True,
        text=True,
    )
    elapsed = time.perf_counter() - started
    assert done.returncode == 1
    assert done.stderr.strip() == f"kgalign: error: {bad}: unknown setting 'retrieval.settle_margn'; did you mean 'retrieval.settle_margin'?"
    assert not (tmp_path / "out").exists()
    assert elapsed < 5  # the interpreter's start included; the check itself loads no model


def test_config_file_then_command_line_then_run_json_then_rerun(persons: dict[str, Path], tmp_path: Path) -> None:
    settings = tmp_path / "run.toml"
    settings.write_text('[retrieval]\nk = 4\nsettle_margin = 0.1\n[vote]\nrounds = 5\n')
    out = tmp_path / "out"
    result = cli(["run", persons["left"], persons["right"], "-o", out, "--config", settings, "-k", "6", "--gold", persons["gold"], "--quiet"])
    assert result.exit_code == 0, result.output

    run = json.loads((out / "run.json").read_text())
    given = run["config"]
    assert given["retrieval"]["k"] == 6  # the command line wins over the file
    assert given["retrieval"]["settle_margin"] == 0.1 and given["vote"]["rounds"] == 5  # the file's
    assert given["retrieval"]["structure_weight"] is None and given["device"] == "auto"  # as given: auto
    effective = run["effective"]
    assert effective["device"] == "cpu"
    assert effective["retrieval"]["structure_weight"] == 0.0 and effective["retrieval"]["structure_vectors"] == "lexical"
    assert AlignConfig.from_dict(given).retrieval.k == 6

    again = tmp_path / "again"
    result = cli(["rerun", out, "-o", again, "--quiet"])
    assert result.exit_code == 0, result.output
    for name in ("links.ttl", "votes.jsonl", "alignment.rdf", "metrics.json"):
        assert (again / name).read_bytes() == (out / name).read_bytes(), name
    assert json.loads((again / "run.json").read_text())["config"] == {**given, "cache_path": str(again / "judge-cache.sqlite")}


def test_a_run_does_not_change_its_config(persons: dict[str, Path]) -> None:
    from kgalign import align

    config = AlignConfig(gold=str(persons["gold"]), only_gold_entities=True)
    before = config.to_dict()
    result = align(persons["left"], persons["right"], config)
    assert config.to_dict() == before and result.config is config
    assert result.effective.only_left and result.effective.retrieval.structure_weight == 0.0
    assert result.metrics is not None and result.metrics["f1"] > 0.9


def test_rerun_of_a_folder_that_is_no_run(tmp_path: Path) -> None:
    result = cli(["rerun", tmp_path, "-o", tmp_path / "new"])
    assert result.exit_code == 1
    assert "run.json: cannot read it" in result.output
