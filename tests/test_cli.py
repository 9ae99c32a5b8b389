"""`kgalign run`, `inspect`, `profile` and `eval` end to end on the real example."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import cli as _run
from rdflib import Graph
from rdflib.namespace import OWL

from kgalign.evaluation.metrics import read_pairs


@pytest.fixture(scope="module")
def none_run(persons, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("none")
    result = _run(["run", str(persons["left"]), str(persons["right"]), "-o", str(out), "--judge", "none", "--gold", str(persons["gold"]), "--quiet"])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def local_run(persons, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local")
    result = _run(["run", str(persons["left"]), str(persons["right"]), "-o", str(out), "--judge", "local", "--gold", str(persons["gold"]), "--quiet"])
    assert result.exit_code == 0, result.output
    return out


def _outputs_agree(out: Path) -> set[tuple[str, str]]:
    links = {(str(s), str(o)) for s, o in Graph().parse(out / "links.ttl").subject_objects(OWL.sameAs)}
    alignment = set(read_pairs(out / "alignment.rdf"))
    fused = Graph().parse(out / "fused.ttl")
    fused_same = {(str(s), str(o)) for s, o in fused.subject_objects(OWL.sameAs)}
    assert links == alignment
    assert links == fused_same  # canonical = left, so each cluster's sameAs is left -> right
    votes = [json.loads(line) for line in (out / "votes.jsonl").read_text().splitlines()]
    assert {(v["source"], v["linked"]) for v in votes if v["linked"]} == links
    assert all(v["linked"] == v["target"] for v in votes if v["linked"] and v["decision"] == "match" and not v["conflict_with"])
    assert len(votes) == 60
    return links


@pytest.mark.parametrize("fixture", ["none_run", "local_run"])
def test_run_writes_consistent_outputs(fixture, request) -> None:
    out: Path = request.getfixturevalue(fixture)
    links = _outputs_agree(out)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["f1"] >= 0.95 and metrics["hits@1"] >= 0.96 and metrics["hits@10"] == 1.0
    run = json.loads((out / "run.json").read_text())
    for key in ("entities_left", "entities_right", "candidates", "llm_questions", "cache_hits", "prompt_tokens", "answer_tokens"):
        assert key in run["counts"]
    assert run["counts"]["entities_left"] == 60 and run["counts"]["entities_right"] == 60
    assert set(run["stages"]) >= {"load", "select", "embed", "retrieve", "judge", "resolve", "fuse", "write"}
    assert all(stage["peak_rss_mb"] > 0 for stage in run["stages"].values())
    assert run["seed"] == 0 and run["versions"]["rdflib"]
    assert len(links) == run["counts"]["links"]
    Graph().parse(out / "provenance.trig", format="trig")
    assert not list(out.glob(".*.tmp"))


def test_local_judge_run_records_its_questions(local_run) -> None:
    run = json.loads((local_run / "run.json").read_text())
    votes = [json.loads(line) for line in (local_run / "votes.jsonl").read_text().splitlines()]
    judged = [v for v in votes if v["rounds"]]
    assert run["judge"].startswith("local:")
    assert run["counts"]["judged"] == len(judged) > 0
    # The judge check's questions (the run's confident pairs, asked first) and the votes' rounds.
    check = run["judge_check"]
    assert check["passed"] and check["questions"] > 0
    assert run["counts"]["llm_questions"] + run["counts"]["cache_hits"] == check["questions"] + sum(len(v["rounds"]) for v in judged)
    assert run["counts"]["prompt_tokens"] > 0
    # Pairwise questions (the default): one candidate a round, in both record orders.
    assert run["config"]["vote"]["question"] == "pairwise"
    for v in judged:
        assert v["prompt"] and "RECORD 1:" in v["prompt"] and "SOURCE:" not in v["prompt"]
        shown = [c["iri"] for c in v["candidates"][:5]]
        for r in v["rounds"]:
            assert r["raw"] in ("yes", "no") and r["p_yes"] is not None and 0.0 <= r["p_yes"] <= 1.0
            assert len(r["order"]) == 1 and r["order"][0] in shown and r["first"] in ("source", "candidate")
    assert {r["first"] for v in judged for r in v["rounds"]} == {"source", "candidate"}


def test_rerun_answers_from_the_cache(local_run, persons) -> None:
    before = json.loads((local_run / "run.json").read_text())["counts"]
    result = _run(["run", str(persons["left"]), str(persons["right"]), "-o", str(local_run), "--judge", "local", "--quiet"])
    assert result.exit_code == 0, result.output
    after = json.loads((local_run / "run.json").read_text())["counts"]
    assert after["llm_questions"] == 0
    assert after["cache_hits"] == before["llm_questions"] + before["cache_hits"]


def test_inspect_summary_filters_and_one_decision(local_run) -> None:
    votes = local_run / "votes.jsonl"
    result = _run(["inspect", str(votes), "--json"])
    summary = json.loads(result.output)
    assert summary["entities"] == 60
    assert sum(summary["decisions"].values()) == 60
    assert summary["judged"] + summary["gated"] <= 60
    assert summary["pairwise_rounds"] == summary["questions"] > 0 and isinstance(summary["order_bias"], float)
    assert summary["position_wins"] == {}  # pairwise rounds show one candidate: no position to win
    text = _run(["inspect", str(votes)]).output
    assert f"pairwise rounds {summary['pairwise_rounds']}; order bias" in text and "position wins" not in text
    records = [json.loads(line) for line in votes.read_text().splitlines()]
    judged = next(r for r in records if r["rounds"])
    full = _run(["inspect", str(votes), "--entity", judged["source"]]).output
    assert "pairwise votes" in full and judged["source"] in full and "RECORD 1:" in full
    uncertain = _run(["inspect", str(votes), "--uncertain", "--json"]).output
    assert all(r["decision"] == "uncertain" for r in json.loads(uncertain))
    missing = _run(["inspect", str(votes), "--entity", "urn:nope"])
    assert missing.exit_code == 1 and "no decision for entity urn:nope" in missing.output


def test_profile_ranks_and_suggests_pairs(persons) -> None:
    result = _run(["profile", str(persons["left"]), str(persons["right"]), "--json"])
    assert result.exit_code == 0
    data = json.loads(result.output)
    assert data["left"][0]["importance"] >= data["left"][-1]["importance"]
    assert any(p["left"].endswith("soc_sec_id") and p["right"].endswith("soc_sec_id") for p in data["pairs"])
    table = _run(["profile", str(persons["left"]), str(persons["right"])]).output
    assert "soc_sec_id" in table and "coverage" in table


def test_eval_scores_links_in_any_format(none_run, persons) -> None:
    result = _run(["eval", "--gold", str(persons["gold"]), str(none_run / "alignment.rdf"), "--json"])
    metrics = json.loads(result.output)
    same = json.loads(_run(["eval", "--gold", str(persons["gold"]), str(none_run / "links.ttl"), "--json"]).output)
    assert metrics == same
    assert metrics["recall"] == 1.0 and metrics["precision"] >= 50 / 60


def test_usage_and_input_errors_have_exit_codes(tmp_path: Path, persons) -> None:
    usage = _run(["run", str(persons["left"])])
    assert usage.exit_code == 2
    bad = tmp_path / "bad.ttl"
    bad.write_text("@prefix ex: <http://example.org/> .\nex:a ex:b .\n")
    out = tmp_path / "out"
    result = _run(["run", str(bad), str(persons["right"]), "-o", str(out), "--judge", "none"])
    assert result.exit_code == 1
    assert f"{bad}:2" in result.output and len(result.output.strip().splitlines()) == 1
    assert not any(p.is_file() for p in out.glob("*")) if out.exists() else True
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    refused = _run(["run", str(persons["left"]), str(persons["right"]), "-o", str(tmp_path / "busy"), "--judge", "none"])
    assert refused.exit_code == 1 and "--force" in refused.output
    same = _run(["run", str(persons["left"]), str(persons["left"]), "-o", str(tmp_path / "o2"), "--judge", "none"])
    assert same.exit_code == 1 and "same file" in same.output


def test_installed_command_runs(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "kgalign.cli.main", "--help"], capture_output=True, text=True, check=True)
    assert "kgalign run LEFT RIGHT -o OUTDIR" in result.stdout
    for command in ("run", "inspect", "profile", "eval"):
        help_text = subprocess.run([sys.executable, "-m", "kgalign.cli.main", command, "--help"], capture_output=True, text=True, check=True).stdout
        assert "Usage:" in help_text


def test_datamark_run_asks_datamarked_questions_and_caches_them_apart(mini_persons, tmp_path) -> None:
    (tmp_path / "mini").mkdir()
    mini = mini_persons(tmp_path / "mini", 4)
    out = tmp_path / "out"
    args = ["run", str(mini["left"]), str(mini["right"]), "-o", str(out), "--judge", "local", "--no-gate", "--rounds", "1", "--options", "1", "--quiet"]
    result = _run([*args, "--datamark"])
    assert result.exit_code == 0, result.output
    run = json.loads((out / "run.json").read_text())
    votes = [json.loads(line) for line in (out / "votes.jsonl").read_text().splitlines()]
    assert run["config"]["vote"]["datamark"] is True and run["counts"]["llm_questions"] == 4
    for v in votes:
        source_line = next(line for line in v["prompt"].splitlines() if line.startswith("RECORD 1: "))
        values = json.loads(source_line.removeprefix("RECORD 1: ")).values()
        assert not any(" " in value for value in values) and any("^" in value for value in values), values  # "axon^street"
    # Without --datamark the same questions are other questions: none is answered from the cache.
    result = _run([*args, "--force"])
    assert result.exit_code == 0, result.output
    run = json.loads((out / "run.json").read_text())
    assert run["config"]["vote"]["datamark"] is False
    assert run["counts"]["llm_questions"] == 4 and run["counts"]["cache_hits"] == 0


def test_a_folder_as_left_gives_the_runs_outputs(tmp_path, persons):
    """LEFT as a folder of RDF files (cut from the example's left file): the same links
    as the file itself; an OUTDIR inside the input folder is refused before any work."""
    from tests.test_load import _split_into_folder

    folder = tmp_path / "left"
    _split_into_folder(persons["left"], folder)
    single, split = tmp_path / "single", tmp_path / "split"
    assert _run(["run", persons["left"], persons["right"], "-o", single, "--quiet"]).exit_code == 0
    result = _run(["run", folder, persons["right"], "-o", split, "--quiet"])
    assert result.exit_code == 0, result.output
    assert (split / "links.ttl").read_bytes() == (single / "links.ttl").read_bytes()
    assert json.loads((split / "run.json").read_text())["left"] == str(folder)
    inside = _run(["run", folder, persons["right"], "-o", folder / "out", "--quiet"])
    assert inside.exit_code != 0 and "is inside the input folder" in inside.output
    assert not (folder / "out").exists()
    nested = _run(["run", folder, folder / "a.nt", "-o", tmp_path / "nested", "--quiet"])
    assert nested.exit_code != 0 and "a.nt: is inside the other input, the folder" in nested.output


def test_outputs_are_as_readable_as_any_new_file(tmp_path: Path, persons) -> None:
    """A run's files get the umask's permissions (0644 under 022), also where they replace
    earlier ones, not mkstemp's owner-only 0600."""
    import os
    import stat

    before = os.umask(0o022)
    try:
        out = tmp_path / "out"
        args = ["run", persons["left"], persons["right"], "-o", out, "--judge", "none", "--gold", persons["gold"], "--quiet"]
        for _ in range(2):  # the second run replaces every file
            assert _run(args).exit_code == 0
            modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()}
            assert set(modes.values()) == {0o644}, modes
        os.umask(0o027)
        assert _run(["report", out]).exit_code == 0
        assert stat.S_IMODE((out / "report.html").stat().st_mode) == 0o640
    finally:
        os.umask(before)


def _one_error_line(result, *names: object) -> str:
    """The one error line of a failed command (exit 1, no traceback), naming ``names``."""
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kgalign: error: "), result.output
    for name in names:
        assert str(name) in lines[0], lines[0]
    return lines[0]


def test_an_os_error_no_command_handled_is_one_line_naming_its_file(tmp_path: Path) -> None:
    """The group's safety net: an OSError a command let through is one line naming its
    file (a rename's destination), exit code 1, no traceback."""
    import os

    import click
    from click.testing import CliRunner

    from kgalign.cli.main import KgalignGroup

    (tmp_path / "file").write_text("x")
    (tmp_path / "folder").mkdir()

    @click.group(cls=KgalignGroup)
    def group() -> None:
        pass

    @group.command()
    def under_a_file() -> None:
        (tmp_path / "file" / "x.html").write_text("x")

    @group.command()
    def onto_a_folder() -> None:
        os.replace(tmp_path / "file", tmp_path / "folder")

    line = _one_error_line(CliRunner().invoke(group, ["under-a-file"]))
    assert line == f"kgalign: error: {tmp_path / 'file' / 'x.html'}: Not a directory"
    line = _one_error_line(CliRunner().invoke(group, ["onto-a-folder"]))
    assert line == f"kgalign: error: {tmp_path / 'folder'}: Is a directory"


def test_an_interrupt_while_options_are_parsed_exits_130_without_a_traceback() -> None:
    import click
    from click.testing import CliRunner

    from kgalign.cli.main import KgalignGroup

    def interrupt(ctx: click.Context, param: click.Parameter, value: object) -> object:
        if value:
            raise KeyboardInterrupt
        return value

    @click.group(cls=KgalignGroup)
    @click.option("--stop", is_flag=True, callback=interrupt)
    def group(stop: bool) -> None:
        pass

    @group.command()
    @click.option("--stop", is_flag=True, callback=interrupt)
    def inspect(stop: bool) -> None:
        pass

    for args in (["--stop", "inspect"], ["inspect", "--stop"]):
        result = CliRunner().invoke(group, args)
        assert result.exit_code == 130, (args, result.output)
        assert result.output == "kgalign: interrupted\n", result.output


def test_an_interrupt_while_the_commands_are_built_exits_130(tmp_path: Path) -> None:
    """Ctrl-C while `kgalign` starts (importing the commands builds their options, about
    a second here): exit code 130 and one line, no traceback, wherever it falls. SIGALRM
    stands in for the terminal's SIGINT, at moments from the entry point's first import
    of the commands to their building (the console script is kgalign.cli.entry:main,
    whose module imports nothing of kgalign's before its handler)."""
    from helpers import python_script

    for delay in (0.001, 0.02, 0.1):
        script = (
            "import signal\n"
            "from kgalign.cli.entry import main  # what the console script has loaded\n"
            "def interrupt(*_):\n"
            "    raise KeyboardInterrupt\n"
            "signal.signal(signal.SIGALRM, interrupt)\n"
            f"signal.setitimer(signal.ITIMER_REAL, {delay})\n"
            "main(['--help'])\n"
        )
        done = python_script(script, tmpdir=tmp_path)
        assert done.returncode == 130, (delay, done.stdout + done.stderr)
        assert done.stderr == "kgalign: interrupted\n" and "Traceback" not in done.stdout, delay


def test_votes_logs_that_are_not_utf8_text_or_empty_are_one_line(tmp_path: Path, none_run) -> None:
    import gzip

    votes = none_run / "votes.jsonl"
    packed = tmp_path / "votes.jsonl.gz"
    packed.write_bytes(gzip.compress(votes.read_bytes()))
    line = _one_error_line(_run(["inspect", packed]), f"{packed}:1: not UTF-8 text")
    assert "gzip" in line
    broken = tmp_path / "votes.jsonl"
    lines = votes.read_bytes().splitlines(keepends=True)
    broken.write_bytes(b"".join(lines[:2]) + b'{"source": "caf\xe9"}\n' + b"".join(lines[2:]))
    _one_error_line(_run(["inspect", broken]), f"{broken}:3: not UTF-8 text (byte 0xe9)")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    _one_error_line(_run(["inspect", empty]), f"{empty}: the file is empty")


def test_negative_counts_are_usage_errors(none_run, persons) -> None:
    votes = none_run / "votes.jsonl"
    for args in (["inspect", votes, "--limit", "-1"], ["profile", persons["left"], persons["right"], "--top", "-2"]):
        result = _run(args)
        assert result.exit_code == 2 and "is not in the range x>=0" in result.output, result.output
    counted = _run(["inspect", votes, "--uncertain", "--limit", "0"])
    assert counted.exit_code == 0 and "(showing 0)" in counted.output


def test_eval_says_what_it_wants(none_run, persons, tmp_path: Path) -> None:
    """A missing file is missing; an output folder is pointed to its links.ttl; an unknown
    extension lists the formats (eval has no --format to advise)."""
    gold = persons["gold"]
    line = _one_error_line(_run(["eval", "--gold", gold, tmp_path / "nope.ttl"]), tmp_path / "nope.ttl")
    assert line.endswith(": no such file")
    line = _one_error_line(_run(["eval", "--gold", gold, "/nonexistent"]), "/nonexistent")
    assert line.endswith(": no such file") and "--format" not in line
    line = _one_error_line(_run(["eval", "--gold", gold, none_run]), none_run)
    assert "give its links.ttl" in line and "fused.ttl" not in line
    odd = tmp_path / "links.data"
    odd.write_text("a b\n")
    line = _one_error_line(_run(["eval", "--gold", gold, odd]), odd)
    assert "--format" not in line and ".csv/.tsv" in line


def test_inputs_inside_the_output_folder_are_refused(tmp_path: Path, persons) -> None:
    """An input the run would replace (or read back as its own) in OUTDIR is a usage
    error before any work; OUTDIR/sources (endpoint copies) aside."""
    out = tmp_path / "o"
    out.mkdir()
    (out / "links.ttl").write_bytes(persons["right"].read_bytes())
    refused = _run(["run", persons["left"], out / "links.ttl", "-o", out, "--quiet"])
    assert refused.exit_code == 2 and "RIGHT lies in the output directory" in refused.output, refused.output
    assert (out / "links.ttl").read_bytes() == persons["right"].read_bytes() and sorted(p.name for p in out.iterdir()) == ["links.ttl"]
    for option in ("--gold", "--test-gold", "--seed-links", "--corrections"):
        result = _run(["run", persons["left"], persons["right"], "-o", out, option, out / "links.ttl", "--quiet"])
        assert result.exit_code == 2 and f"{option} lies in the output directory" in result.output, (option, result.output)
    (out / "run.toml").write_text('judge = "none"\n')
    config = _run(["run", persons["left"], persons["right"], "-o", out, "--config", out / "run.toml", "--force", "--quiet"])
    assert config.exit_code == 2 and "--config lies in the output directory" in config.output, config.output
    # Through a symbolic link to OUTDIR too.
    (tmp_path / "alias").symlink_to(out)
    linked = _run(["run", tmp_path / "alias" / "links.ttl", persons["right"], "-o", out, "--force", "--quiet"])
    assert linked.exit_code == 2 and "LEFT lies in the output directory" in linked.output
    dedup = _run(["dedup", out / "links.ttl", "-o", out, "--force", "--quiet"])
    assert dedup.exit_code == 2 and "GRAPH lies in the output directory" in dedup.output, dedup.output
    assert sorted(p.name for p in out.iterdir()) == ["links.ttl", "run.toml"]
    # OUTDIR/sources is the run's own: an input there is fine.
    (out / "sources").mkdir()
    (out / "sources" / "right.ttl").write_bytes(persons["right"].read_bytes())
    (out / "links.ttl").unlink()
    (out / "run.toml").unlink()
    kept = _run(["run", persons["left"], out / "sources" / "right.ttl", "-o", out, "--judge", "none", "--quiet"])
    assert kept.exit_code == 0, kept.output


def test_rerun_into_the_folder_it_reproduces_is_refused(none_run, tmp_path: Path) -> None:
    before = {p.name: p.read_bytes() for p in none_run.iterdir() if p.is_file()}
    for target in (none_run, none_run.parent / ".." / none_run.parent.name / none_run.name):
        result = _run(["rerun", none_run, "-o", target])
        assert result.exit_code == 2 and "-o names the folder of the run to reproduce" in result.output, result.output
    assert {p.name: p.read_bytes() for p in none_run.iterdir() if p.is_file()} == before
    again = _run(["rerun", none_run, "-o", tmp_path / "again", "--quiet"])
    assert again.exit_code == 0, again.output
    assert (tmp_path / "again" / "links.ttl").read_bytes() == (none_run / "links.ttl").read_bytes()


def test_an_unknown_format_is_a_usage_error_before_any_work(tmp_path: Path, persons) -> None:
    """--format is checked by the command line (exit 2, naming the option and the formats
    kgalign reads), for run, profile and finetune alike; --help lists the formats."""
    from kgalign.io.formats import READ_FORMATS

    out = tmp_path / "out"
    for args in (
        ["run", persons["left"], persons["right"], "-o", out],
        ["dedup", persons["right"], "-o", out],
        ["profile", persons["left"], persons["right"]],
        ["finetune", persons["left"], persons["right"], "--links", persons["gold"], "-o", out],
    ):
        result = _run([*args, "--format", "bogus"])
        assert result.exit_code == 2, (args[0], result.output)
        assert "Invalid value for '--format': 'bogus' is not one of 'turtle'" in result.output and "PluginException" not in result.output
        assert not out.exists()
        help_text = " ".join(_run([args[0], "--help"]).output.split())
        assert "--format FORMAT Format of both inputs: turtle, nt, nquads, trig, xml (RDF/XML), json-ld, n3, csv or tsv" in help_text.replace("Gold recipe: format", "Format"), args[0]
    for name in ("TTL", "turtle"):  # N-Triples is Turtle too
        result = _run(["run", persons["left"], persons["right"], "-o", tmp_path / name, "--format", name, "--quiet"])
        assert result.exit_code == 0, result.output
        assert json.loads((tmp_path / name / "run.json").read_text())["config"]["left_format"] == name.lower()
    assert "ttl" in READ_FORMATS
