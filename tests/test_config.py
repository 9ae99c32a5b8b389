"""One validated config per run: AlignConfig, --config FILE, run.json's effective block, rerun."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest
from helpers import cli, relative_run

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
        ({"ray": {"block_attempts": 0}}, "ray.block_attempts: 0 is out of range (must be between 1 and 100)"),
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


def test_command_line_numbers_take_the_config_fields_ranges() -> None:
    """One range per setting: each number option's Click range is its config field's, so
    --help shows it (and a value outside is a usage error before any config is made)."""
    from kgalign.cli.run_options import click_options
    from kgalign.config import field_range

    ranged = 0
    for option, made in zip(RUN_OPTIONS, click_options()):
        found = field_range(option.path) if option.path else None
        if found is None:
            continue
        ranged += 1
        kind, low, high = found
        assert isinstance(made.type, click.FloatRange if kind is float else click.IntRange), option.decls
        assert (made.type.min, made.type.max) == (low, high), option.decls
    assert ranged >= 20
    help_text = " ".join(cli(["run", "--help-all"]).output.split())
    assert "--gate-margin FLOAT RANGE Lead over the runner-up" in help_text and "[default: 0.05; -1.0<=x<=1.0]" in help_text


@pytest.mark.parametrize(
    ("flags", "option"),
    [
        (["--gate-margin", "5"], "--gate-margin"),
        (["--min-score", "7"], "--min-score"),
        (["--taken-window", "2"], "--taken-window"),
        (["--spare-margin", "-3"], "--spare-margin"),
        (["--options", "0"], "--options"),
        (["--push", "ftp://x"], "--push"),  # the config's own check, named by the option
        (["--graph", "not-an-iri"], "--graph"),
        (["--judge", "local", "--dtype", "float16"], "--dtype"),  # a judge backend's check (before any model loads)
    ],
)
def test_a_bad_command_line_value_is_a_usage_error_naming_its_option(persons: dict[str, Path], tmp_path: Path, flags: list[str], option: str) -> None:
    out = tmp_path / "out"
    for command in (["run", persons["left"], persons["right"], "-o", out], ["dedup", persons["left"], "-o", out]):
        if command[0] == "dedup" and option in ("--push", "--graph"):
            continue  # refused by dedup
        result = cli([*command, *flags])
        assert result.exit_code == 2, result.output
        assert f"Invalid value for '{option}'" in result.output, result.output
        assert "." + option.lstrip("-").replace("-", "_") not in result.output and "command line:" not in result.output
        assert not out.exists()
    # pairs takes the vote options too.
    if option == "--gate-margin":
        result = cli(["pairs", tmp_path / "pairs.txt", *flags])
        assert result.exit_code == 2 and "Invalid value for '--gate-margin'" in result.output, result.output


def test_a_bad_value_from_the_config_file_still_names_the_file_and_field(persons: dict[str, Path], tmp_path: Path) -> None:
    settings = tmp_path / "run.toml"
    settings.write_text('[push]\nurl = "ftp://x"\n')
    result = cli(["run", persons["left"], persons["right"], "-o", tmp_path / "out", "--config", settings, "--gate-margin", "0.1"])
    assert result.exit_code == 1 and f"kgalign: error: {settings}: push.url: 'ftp://x' is not an http(s) URL" in result.output, result.output
    # The same setting given on the command line overrides the file's, and is named as an option.
    result = cli(["run", persons["left"], persons["right"], "-o", tmp_path / "out", "--config", settings, "--push", "nope"])
    assert result.exit_code == 2 and "Invalid value for '--push': 'nope' is not an http(s) URL" in result.output, result.output
    assert str(settings) not in result.output


def test_only_gold_entities_without_gold_is_a_usage_error(persons: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = cli(["run", persons["left"], persons["right"], "-o", out, "--only-gold-entities"])
    assert result.exit_code == 2 and "--only-gold-entities" in result.output and "--gold FILE or --test-gold FILE" in result.output, result.output
    assert "only_gold_entities" not in result.output and not out.exists()
    # Gold from the config file serves it.
    settings = tmp_path / "run.toml"
    settings.write_text(f'gold = "{persons["gold"]}"\n')
    result = cli(["run", persons["left"], persons["right"], "-o", out, "--only-gold-entities", "--config", settings, "--quiet"])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "run.json").read_text())["config"]["only_gold_entities"] is True


def test_config_errors_keep_the_field_and_reason() -> None:
    with pytest.raises(ConfigError) as error:
        AlignConfig.from_dict({"vote": {"gate_margin": 5}}, "run.toml")
    assert str(error.value) == "run.toml: vote.gate_margin: 5.0 is out of range (must be between -1.0 and 1.0)"
    assert error.value.field == "vote.gate_margin" and error.value.reason == "5.0 is out of range (must be between -1.0 and 1.0)"


def test_rerun_finds_a_runs_relative_inputs_from_any_folder(persons: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = relative_run(persons, project, monkeypatch)
    info = json.loads((out / "run.json").read_text())
    assert info["left"] == persons["left"].name and info["config"]["gold"] == persons["gold"].name  # as given
    assert info["working_directory"] == str(project)

    monkeypatch.chdir(elsewhere)
    result = cli(["rerun", out, "-o", "again", "--quiet"])
    assert result.exit_code == 0, result.output
    for name in ("links.ttl", "votes.jsonl", "metrics.json"):
        assert (elsewhere / "again" / name).read_bytes() == (out / name).read_bytes(), name
    # And from Python.
    from kgalign.replay import rerun

    assert rerun(out, elsewhere / "again-py").metrics == json.loads((out / "metrics.json").read_text())

    # A file that is really gone: one line naming it and the run.json it came from.
    (project / persons["gold"].name).rename(project / "moved.tsv")
    result = cli(["rerun", out, "-o", "gone", "--quiet"])
    assert result.exit_code == 1 and not (elsewhere / "gone").exists()
    assert result.output.strip() == (
        f"kgalign: error: {project / persons['gold'].name}: no such file or folder (--gold of the run that {out / 'run.json'} records)"
    )
    (project / "moved.tsv").rename(project / persons["gold"].name)

    # A run.json of an older kgalign records no folder: relative to the current one, as before.
    del info["working_directory"]
    (out / "run.json").write_text(json.dumps(info))
    result = cli(["rerun", out, "-o", "old", "--quiet"])
    assert result.exit_code == 1, result.output
    line = result.output.strip()
    assert line.startswith(f"kgalign: error: {persons['left'].name}: no such file or folder (LEFT of the run that {out / 'run.json'} records")
    assert "run the command from that folder" in line
    monkeypatch.chdir(project)
    result = cli(["rerun", out, "-o", elsewhere / "old", "--quiet"])
    assert result.exit_code == 0, result.output

